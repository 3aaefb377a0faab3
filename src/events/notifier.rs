//! One notifier's task: takes events from its queue, keeps those its
//! filters want, paces them per subject ([`Coalescer`]), and posts them one
//! at a time, in order, each with its retries. While it posts, events wait
//! in its bounded queue (and past it are dropped, counted): a slow or dead
//! receiver delays only this notifier. While a maintenance window is
//! open, what it covers waits ([`Hold`]).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::{Instant, sleep_until};

use super::alertmanager::Alerts;
use super::coalesce::{Coalescer, Offer, Subject};
use super::config::{EventType, Notifier, NotifierKind};
use super::deliver::Deliverer;
use super::hold::Hold;
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
    let mut hold = Hold::default();
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
                if let EventKind::Reload { successful: true, removed, .. } = &event.kind
                    && !removed.is_empty()
                {
                    hold.forget(removed);
                    task.forget(removed, &mut pacing, &event).await;
                }
                let (now, released) = hold.take(event);
                if let Some(event) = now
                    && task.wants(&event)
                    && let Offer::Send(event) = pacing.offer(event, Instant::now())
                {
                    task.send(&event).await;
                }
                // Released by a window's closing (told after it): news only
                // if it differs from what the receiver was last told.
                for event in released {
                    if !task.wants(&event) {
                        continue;
                    }
                    if pacing.unchanged(&event) {
                        task.stats.sent(&task.notifier.name, Sent::Coalesced, 1);
                    } else if let Offer::Send(event) = pacing.offer(event, Instant::now()) {
                        task.send(&event).await;
                    }
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
    fn wants(&mut self, event: &Event) -> bool {
        wants(&self.notifier, &mut self.failing, event)
    }

    /// Drops what it holds about the checks a reload removed: their pacing,
    /// their failures, and (resolved) their firing alerts.
    async fn forget(&mut self, removed: &[Arc<str>], pacing: &mut Coalescer, reload: &Event) {
        let subjects: Vec<Subject> = removed.iter().cloned().map(Subject::Check).collect();
        for subject in &subjects {
            self.failing.remove(subject);
            pacing.forget(subject);
        }
        if let Some(body) = self.alerts.forget(&subjects, &self.notifier, reload.at) {
            self.post(body, Some(reload.id)).await;
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

/// Whether `n`'s filters let `event` through; `failing` holds the subjects
/// whose last change it took was a failure: a recovery is news only for
/// those (a check passing at start is not).
fn wants(n: &Notifier, failing: &mut HashSet<Subject>, event: &Event) -> bool {
    if !n.events.contains(&EventType::of(event)) {
        return false;
    }
    let about = match &event.kind {
        EventKind::Check(c) => n.checks.as_ref().is_none_or(|set| set.contains(&c.check)),
        EventKind::Verdict(v) => n.verdicts.contains(v.verdict),
        EventKind::Drain(_) | EventKind::Maintenance(_) | EventKind::Reload { .. } => true,
    };
    if !about {
        return false;
    }
    let Some((subject, _)) = Subject::of(event) else {
        return true;
    };
    // Kept whatever `transitions` lets through: a recovery is news
    // only after a failure, sent or not.
    let news = match event.failing() {
        Some(true) => {
            failing.insert(subject);
            true
        }
        Some(false) => failing.remove(&subject),
        None => false,
    };
    news && match &event.kind {
        EventKind::Check(c) => n
            .transitions
            .as_ref()
            .is_none_or(|to| to.iter().any(|t| t.is(c.to))),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::health::{CheckChange, Group, Status, VerdictChange};

    fn notifier(keys: &str) -> Notifier {
        let text = format!(
            "[server]\nallow_no_checks = true\n\
             [[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n\
             [[checks]]\nname = \"api\"\ntype = \"tcp\"\naddress = \"127.0.0.1:2\"\n\
             [[notifiers]]\nname = \"n\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n{keys}"
        );
        let config = crate::config::load_str(std::path::Path::new("t.toml"), &text).unwrap();
        config.acting.notifiers.into_iter().next().unwrap()
    }

    fn check(name: &str, from: Status, to: Status) -> Event {
        Event {
            id: 1,
            at: SystemTime::now(),
            kind: EventKind::Check(CheckChange {
                check: name.into(),
                kind: "tcp",
                from,
                to,
                category: None,
                message: "".into(),
                critical: true,
                groups: Default::default(),
            }),
        }
    }

    fn verdict(ok: bool) -> Event {
        Event {
            id: 1,
            at: SystemTime::now(),
            kind: EventKind::Verdict(VerdictChange {
                verdict: Group::Liveness,
                ok,
                reason: String::new(),
            }),
        }
    }

    #[test]
    fn a_recovery_is_news_only_after_a_failure() {
        let n = notifier("");
        let mut failing = HashSet::new();
        assert!(!wants(
            &n,
            &mut failing,
            &check("db", Status::Starting, Status::Pass)
        ));
        assert!(
            !wants(&n, &mut failing, &verdict(true)),
            "the first 200 is no recovery"
        );
        assert!(wants(
            &n,
            &mut failing,
            &check("db", Status::Pass, Status::Fail)
        ));
        assert!(wants(
            &n,
            &mut failing,
            &check("db", Status::Fail, Status::Pass)
        ));
        assert!(!wants(
            &n,
            &mut failing,
            &check("db", Status::Pass, Status::Starting)
        ));
    }

    #[test]
    fn filters_by_check_verdict_type_and_transition() {
        let n = notifier(
            "checks = [\"db\"]\nverdicts = [\"readiness\"]\ntransitions = [\"fail\"]\nevents = [\"check\", \"verdict\"]\n",
        );
        let mut failing = HashSet::new();
        assert!(
            !wants(&n, &mut failing, &check("api", Status::Pass, Status::Fail)),
            "not in checks"
        );
        assert!(
            !wants(&n, &mut failing, &verdict(false)),
            "liveness is not in verdicts"
        );
        assert!(
            !wants(&n, &mut failing, &check("db", Status::Pass, Status::Warn)),
            "warn is not in transitions"
        );
        assert!(wants(
            &n,
            &mut failing,
            &check("db", Status::Warn, Status::Fail)
        ));
        assert!(
            !wants(&n, &mut failing, &check("db", Status::Fail, Status::Pass)),
            "pass is not in transitions"
        );
        // The recovery was not sent, but it was seen: a new failure is news again.
        assert!(wants(
            &n,
            &mut failing,
            &check("db", Status::Pass, Status::Fail)
        ));
        let reload = Event {
            id: 1,
            at: SystemTime::now(),
            kind: EventKind::Reload {
                successful: false,
                message: String::new(),
                removed: Arc::new([]),
            },
        };
        assert!(!wants(&n, &mut failing, &reload), "reload is not in events");
    }
}
