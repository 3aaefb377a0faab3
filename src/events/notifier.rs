//! One notifier's task: takes events from its queue, keeps those its
//! filters want, paces them per subject ([`Coalescer`]), and posts them one
//! at a time, in order, each with its retries. While it posts, events wait
//! in its bounded queue (and past it are dropped, counted): a slow or dead
//! receiver delays only this notifier.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::{Instant, sleep_until};

use super::alertmanager::Alerts;
use super::coalesce::{Coalescer, Offer, Subject};
use super::config::{EventType, Notifier, NotifierKind};
use super::deliver::Deliverer;
use super::stats::{Sent, Stats};
use super::{Identity, webhook};
use crate::health::{Event, EventKind, Queue};

/// Runs `notifier` on `queue` until the queue closes.
pub async fn run(notifier: Notifier, mut queue: Queue, who: Arc<Identity>, stats: Arc<Stats>) {
    let deliverer = match Deliverer::new(&notifier) {
        Ok(deliverer) => deliverer,
        Err(error) => {
            tracing::error!(notifier = %notifier.name, %error, "notifier cannot start; its events are dropped");
            while let Some(_event) = queue.recv().await {
                stats.sent(&notifier.name, Sent::Failed, 1);
            }
            return;
        }
    };
    let mut task = Task {
        notifier,
        deliverer,
        who,
        stats,
        alerts: Alerts::default(),
        failing: HashSet::new(),
    };
    let mut pacing = Coalescer::new(task.notifier.min_interval);
    let alerting = task.notifier.kind == NotifierKind::Alertmanager;
    let mut resend = tokio::time::interval_at(
        Instant::now() + task.notifier.resend_interval,
        task.notifier.resend_interval,
    );
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = pacing.next_due();
        tokio::select! {
            event = queue.recv() => {
                let Some(event) = event else { return };
                if !task.wants(&event) {
                    continue;
                }
                if let Offer::Send(event) = pacing.offer(event, Instant::now()) {
                    task.send(&event).await;
                }
            }
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let (events, unchanged) = pacing.due(Instant::now());
                task.stats.sent(&task.notifier.name, Sent::Coalesced, unchanged as u64);
                for event in events {
                    task.send(&event).await;
                }
            }
            _ = resend.tick(), if alerting => {
                if let Some(body) = task.alerts.resend(&task.notifier, std::time::SystemTime::now()) {
                    task.post(body, None).await;
                }
            }
        }
    }
}

struct Task {
    notifier: Notifier,
    deliverer: Deliverer,
    who: Arc<Identity>,
    stats: Arc<Stats>,
    alerts: Alerts,
    /// Subjects whose last change this notifier took was a failure: a
    /// recovery is news only for those (a check passing at start is not).
    failing: HashSet<Subject>,
}

impl Task {
    /// Whether the notifier's filters let `event` through.
    fn wants(&mut self, event: &Event) -> bool {
        let n = &self.notifier;
        if !n.events.contains(&EventType::of(event)) {
            return false;
        }
        let passes = match &event.kind {
            EventKind::Check(c) => n.checks.as_ref().is_none_or(|set| set.contains(&c.check)),
            EventKind::Verdict(v) => n.verdicts.contains(v.verdict),
            EventKind::Drain(_) | EventKind::Reload { .. } => true,
        };
        if !passes {
            return false;
        }
        let Some((subject, _)) = Subject::of(event) else {
            return true;
        };
        match event.failing() {
            Some(true) => {
                self.failing.insert(subject);
                true
            }
            Some(false) => self.failing.remove(&subject),
            None => false,
        }
    }

    /// Sends one event as this notifier's type says.
    async fn send(&mut self, event: &Event) {
        match self.notifier.kind {
            NotifierKind::Webhook => {
                if event.failing() == Some(false) && !self.notifier.send_resolved {
                    return;
                }
                let body = webhook::body(event, &self.who);
                self.post(body, Some(event.id)).await;
            }
            NotifierKind::Alertmanager => {
                if let Some(body) = self.alerts.apply(event, &self.notifier, &self.who) {
                    self.post(body, Some(event.id)).await;
                }
            }
        }
    }

    async fn post(&self, body: Bytes, event: Option<u64>) {
        let signature = self
            .notifier
            .secret
            .as_ref()
            .map(|key| (webhook::SIGNATURE, webhook::signature(key, &body)));
        let extra: Vec<_> = signature.into_iter().collect();
        let name = &self.notifier.name;
        match self.deliverer.post(body, &extra).await {
            Ok(attempts) => {
                self.stats.sent(name, Sent::Delivered, 1);
                tracing::debug!(notifier = %name, event, attempts, "notification delivered");
            }
            Err(error) => {
                self.stats.sent(name, Sent::Failed, 1);
                tracing::warn!(notifier = %name, event, %error, "notification not delivered");
            }
        }
    }
}
