//! Push (TTL) checks: nothing is probed; reports posted to the admin API
//! arrive through a bounded inbox per check, each counted as one run at once.
//! With no report for `ttl`, the check gets a `ttl_expired` failure, and
//! again every `ttl` after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use serde::{Deserialize, Serialize};

use super::{Message, Report};
use crate::config::Scope;
use crate::config::bounded::Period;
use crate::probe::{Category, Outcome};

/// `type = "push"`: nothing is probed; the service (or a batch job) reports
/// with `POST /api/checks/{name}/report` on the admin listener (the admin
/// API's auth applies), body `{"status": "pass" | "warn" | "fail",
/// "message": "..."}`. Each report counts as one run at once; with no report
/// for `ttl` the check fails (`ttl_expired`), and again every `ttl` after.
/// For workers that cannot be probed from outside (as Consul's TTL checks).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Longest time between two reports, more than 0s and at most `"365d"`.
    pub ttl: Period,
}

/// A validated push check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushSpec {
    /// Longest time between reports.
    pub ttl: Duration,
}

impl PushConfig {
    /// The spec: every rule of a push check is in its types.
    pub fn resolve(self, _: &mut Scope<'_>) -> Option<PushSpec> {
        Some(PushSpec {
            ttl: self.ttl.get(),
        })
    }
}

/// Reports waiting for one check's task; a reporter faster than that is told to slow down.
const INBOX: usize = 16;

/// What a reporter says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reported {
    /// Healthy.
    Pass,
    /// Working, with a warning.
    Warn,
    /// Not working.
    Fail,
}

/// One report.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The status reported.
    pub status: Reported,
    /// The reporter's message (one bounded line is kept).
    pub message: String,
}

/// Why a report was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No push check of that name.
    #[error("no push check of that name")]
    Unknown,
    /// Its inbox is full.
    #[error("too many reports at once; retry shortly")]
    Busy,
}

/// Every push check's inbox, by name; shared with the admin listener.
#[derive(Clone, Default)]
pub struct Inboxes(Arc<Mutex<HashMap<Arc<str>, mpsc::Sender<PushReport>>>>);

impl Inboxes {
    /// Hands `report` to the check `name`.
    pub fn deliver(&self, name: &str, report: PushReport) -> Result<(), Refused> {
        let sender = self
            .0
            .lock()
            .map_err(|_| Refused::Unknown)?
            .get(name)
            .cloned()
            .ok_or(Refused::Unknown)?;
        sender.try_send(report).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::Busy,
            mpsc::error::TrySendError::Closed(_) => Refused::Unknown,
        })
    }

    /// A new inbox for `name`, replacing any earlier one.
    pub(super) fn open(&self, name: &Arc<str>) -> mpsc::Receiver<PushReport> {
        let (tx, rx) = mpsc::channel(INBOX);
        if let Ok(mut map) = self.0.lock() {
            map.insert(name.clone(), tx);
        }
        rx
    }

    /// Keeps only the inboxes of `names`.
    pub(super) fn retain(&self, names: &[&str]) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|name, _| names.contains(&&**name));
        }
    }
}

/// A push check's task: a result per report, a failure per silent `ttl`.
pub(super) async fn run_push(
    name: Arc<str>,
    generation: u64,
    ttl: Duration,
    mut inbox: mpsc::Receiver<PushReport>,
    tx: mpsc::Sender<Message>,
) {
    let mut expires = Instant::now() + ttl;
    loop {
        let mut outcome = tokio::select! {
            report = inbox.recv() => match report {
                Some(report) => outcome(report),
                None => return,
            },
            () = sleep_until(expires) => Outcome::fail(
                Category::TtlExpired,
                format!("no report for {}", crate::units::human(ttl)),
            ),
        };
        let now = Instant::now();
        expires = now + ttl;
        let at = SystemTime::now();
        outcome.started_at = at;
        let report = Report {
            late: None,
            name: name.clone(),
            generation,
            outcome,
            now,
            at,
        };
        if tx.send(Message::Result(report)).await.is_err() {
            return;
        }
    }
}

fn outcome(report: PushReport) -> Outcome {
    let said = |prefix: &str| {
        if report.message.is_empty() {
            format!("reported {prefix}")
        } else {
            format!("reported {prefix}: {}", report.message)
        }
    };
    match report.status {
        Reported::Pass => Outcome::pass(said("pass")),
        Reported::Warn => Outcome::warn(Category::Reported, said("warn")),
        Reported::Fail => Outcome::fail(Category::Reported, said("fail")),
    }
}
