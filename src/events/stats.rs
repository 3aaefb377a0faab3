//! What the notifiers and actions did, counted for
//! `healthgate_notifications_total{notifier, result}` and
//! `healthgate_actions_total{check, verdict, action, result}`. The label
//! values come from the config (notifier and check names) and from fixed
//! lists, so the series are bounded by the config.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A notification's fate (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sent {
    /// The receiver took it (2xx), retries included.
    Delivered,
    /// Every attempt failed, or the receiver refused it (a 4xx).
    Failed,
    /// Held by `min_interval` and then not sent: nothing new to say.
    Coalesced,
}

impl Sent {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Sent::Delivered => "delivered",
            Sent::Failed => "failed",
            Sent::Coalesced => "coalesced",
        }
    }
}

/// An action run's fate (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ran {
    /// It ran and exited 0.
    Ok,
    /// It ran and failed: a non-zero exit, or it could not start.
    Failed,
    /// It ran past its timeout; its process group was killed.
    Timeout,
    /// Skipped: `max_runs` already ran within `window`.
    RateLimited,
    /// Skipped: its previous run had not ended.
    Busy,
}

impl Ran {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Ran::Ok => "ok",
            Ran::Failed => "failed",
            Ran::Timeout => "timeout",
            Ran::RateLimited => "rate_limited",
            Ran::Busy => "busy",
        }
    }
}

/// Who an action ran for: a check's name, or a verdict's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum For {
    /// A check's `on_failure` / `on_recovery`.
    Check(Arc<str>),
    /// A verdict's, or the restart.
    Verdict(&'static str),
}

/// The counts.
#[derive(Debug, Default)]
pub struct Stats {
    notifications: Mutex<BTreeMap<(Arc<str>, Sent), u64>>,
    actions: Mutex<BTreeMap<(For, &'static str, Ran), u64>>,
}

impl Stats {
    /// Counts a notification of `notifier`.
    pub fn sent(&self, notifier: &Arc<str>, result: Sent, n: u64) {
        let mut counts = self
            .notifications
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *counts.entry((notifier.clone(), result)).or_default() += n;
    }

    /// Counts a run (or a skip) of `action` for `target`.
    pub fn ran(&self, target: &For, action: &'static str, result: Ran) {
        let mut counts = self.actions.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry((target.clone(), action, result)).or_default() += 1;
    }

    /// Every notification count: notifier, result, count.
    pub fn notifications(&self) -> Vec<(Arc<str>, Sent, u64)> {
        let counts = self
            .notifications
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts
            .iter()
            .map(|((n, r), c)| (n.clone(), *r, *c))
            .collect()
    }

    /// Every action count: for whom, action, result, count.
    pub fn actions(&self) -> Vec<(For, &'static str, Ran, u64)> {
        let counts = self.actions.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .iter()
            .map(|((f, a, r), c)| (f.clone(), *a, *r, *c))
            .collect()
    }

    /// Forgets notifiers no longer configured.
    pub fn retain_notifiers(&self, keep: impl Fn(&str) -> bool) {
        let mut counts = self
            .notifications
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.retain(|(n, _), _| keep(n));
    }
}
