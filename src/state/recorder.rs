//! What the collector tells the store: each run is added to its check's
//! rollup of the hour, each status change noted, in memory under one short
//! lock (a hash lookup and a few additions per result on the collector);
//! the flusher takes it all every `flush_interval` and writes it in one
//! transaction on the blocking pool. What waits is bounded: past
//! [`MAX_PENDING`] rollups or changes, more are dropped and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::rollup::{Result as Ran, Rollup};
use super::store::{Batch, hour_of};
use crate::health::{CheckView, Snapshot, Status, Transition};
use crate::probe::Outcome;

/// Most rollups (check-hours) or status changes waiting for a batch.
const MAX_PENDING: usize = 200_000;

/// What the store was told and what it did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Batches the store could not write (a full disk, a read-only
    /// directory, a store that would not open).
    pub write_errors: AtomicU64,
    /// Runs written to the store.
    pub runs_written: AtomicU64,
    /// Runs and changes dropped: more waited than [`MAX_PENDING`].
    pub dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    rollups: HashMap<(Arc<str>, u64), Rollup>,
    transitions: Vec<(Arc<str>, u64, Status, Status)>,
}

/// Gathers results between batches.
#[derive(Debug, Default)]
pub struct Recorder {
    pending: Mutex<Pending>,
    /// Counters for the metrics.
    pub stats: Stats,
}

impl Recorder {
    /// Notes one result of `check`.
    pub fn record(&self, check: &CheckView, outcome: &Outcome, transition: Option<Transition>) {
        let now = SystemTime::now();
        let ran = match (outcome.failure, outcome.warning) {
            (Some(_), _) => Ran::Fail,
            (None, Some(_)) => Ran::Warn,
            (None, None) => Ran::Pass,
        };
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (check.name.clone(), hour_of(now));
        let full = pending.rollups.len() >= MAX_PENDING;
        match pending.rollups.get_mut(&key) {
            Some(rollup) => rollup.add(ran, outcome.duration),
            None if full => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            None => pending
                .rollups
                .entry(key)
                .or_default()
                .add(ran, outcome.duration),
        }
        if let Some(t) = transition {
            if pending.transitions.len() >= MAX_PENDING {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                let at = u64::try_from(
                    now.duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_micros(),
                )
                .unwrap_or(u64::MAX);
                pending
                    .transitions
                    .push((check.name.clone(), at, t.from, t.to));
            }
        }
    }

    /// Counts `elapsed` milliseconds of each verdict as ok (`pass`) or not
    /// (`fail`) in the rollup of `/livez`, `/readyz` and `/startupz`: their
    /// uptime is time-based, sampled at each batch.
    pub fn sample_verdicts(&self, snapshot: &Snapshot, elapsed: Duration) {
        let ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        let hour = hour_of(SystemTime::now());
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (endpoint, ok) in [
            ("/livez", snapshot.liveness.ok),
            ("/readyz", snapshot.readiness.ok),
            ("/startupz", snapshot.startup.ok),
        ] {
            let rollup = pending
                .rollups
                .entry((Arc::from(endpoint), hour))
                .or_default();
            if ok {
                rollup.pass = rollup.pass.saturating_add(ms);
            } else {
                rollup.fail = rollup.fail.saturating_add(ms);
            }
        }
    }

    /// Takes everything waiting.
    pub fn take(&self) -> Batch {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        Batch {
            rollups: pending.rollups.into_iter().collect(),
            transitions: pending.transitions,
        }
    }

    /// What waits for `check` in hours `[from, before)`.
    pub fn pending(&self, check: &str, from: u64, before: u64) -> Vec<(u64, Rollup)> {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending
            .rollups
            .iter()
            .filter(|((c, hour), _)| &**c == check && (from..before).contains(hour))
            .map(|((_, hour), r)| (*hour, *r))
            .collect()
    }

    /// What waits for every check in hours from `from`, by check: one
    /// pass under the lock the collector takes, for all checks at once.
    pub fn pending_by_check(&self, from: u64) -> HashMap<Arc<str>, Vec<(u64, Rollup)>> {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let mut by_check: HashMap<Arc<str>, Vec<(u64, Rollup)>> = HashMap::new();
        for ((check, hour), r) in pending.rollups.iter().filter(|((_, h), _)| *h >= from) {
            by_check.entry(check.clone()).or_default().push((*hour, *r));
        }
        by_check
    }
}
