//! One task per check runs its probe on schedule; one collector task feeds the
//! results to [`Health`] and publishes snapshots.
//!
//! First run after `initial_delay` plus a random jitter within one interval
//! (so sidecars restarted together do not probe in lockstep), then every
//! `interval`, each run bounded by `timeout`. Runs of one check never overlap:
//! a run that overshoots its interval delays the next to the following tick.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::config::{Check, Schedule};
use crate::health::{Health, Published, Status, Transition};
use crate::probe::{self, Outcome, Probe};

/// Results waiting for the collector; probe tasks wait when it is full.
const RESULT_QUEUE: usize = 1024;
/// Most results taken in one batch.
const BATCH: usize = 256;
/// Least time between two snapshots, so thousands of checks cost a bounded
/// number of publishes per second (at most this much added verdict latency).
const MIN_PUBLISH_GAP: Duration = Duration::from_millis(5);

/// One probe result on its way to the collector.
struct Report {
    slot: usize,
    outcome: Outcome,
    now: Instant,
    at: SystemTime,
}

/// The running checks. Dropping it stops every task (and kills exec probes' processes).
pub struct Engine {
    published: Published,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Starts a task per check and the collector; the first snapshot (every
    /// check `starting`) is published before this returns.
    pub fn start(checks: &[Check]) -> Self {
        let probes = checks
            .iter()
            .map(|c| probe::build(&c.probe))
            .collect::<Vec<_>>();
        Self::start_with(checks, probes)
    }

    /// As [`Engine::start`], with the probes given (one per check, same order).
    pub fn start_with(checks: &[Check], probes: Vec<Arc<dyn Probe>>) -> Self {
        let mut health = Health::new(checks, Instant::now());
        let published: Published = Arc::new(ArcSwap::from_pointee(health.snapshot()));
        let (tx, rx) = mpsc::channel(RESULT_QUEUE);
        let mut tasks: Vec<JoinHandle<()>> = checks
            .iter()
            .zip(probes)
            .enumerate()
            .map(|(slot, (check, probe))| {
                tokio::spawn(run_check(slot, check.schedule, probe, tx.clone()))
            })
            .collect();
        tasks.push(tokio::spawn(collect(rx, health, published.clone())));
        Self { published, tasks }
    }

    /// The snapshot cell endpoints read.
    pub fn published(&self) -> Published {
        self.published.clone()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The wait before a check's first run: `initial_delay` plus a jitter in `[0, interval)`.
pub fn first_run_delay(schedule: &Schedule) -> Duration {
    let interval = u64::try_from(schedule.interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    schedule.initial_delay + Duration::from_nanos(rand::random_range(0..interval))
}

async fn run_check(
    slot: usize,
    schedule: Schedule,
    probe: Arc<dyn Probe>,
    tx: mpsc::Sender<Report>,
) {
    let mut next = Instant::now() + first_run_delay(&schedule);
    loop {
        sleep_until(next).await;
        let outcome = probe::run(probe.as_ref(), schedule.timeout).await;
        let now = Instant::now();
        let report = Report {
            slot,
            outcome,
            now,
            at: SystemTime::now(),
        };
        if tx.send(report).await.is_err() {
            return;
        }
        next += schedule.interval;
        if next < now {
            // Overran: skip the ticks already missed, keep the cadence.
            let behind = now.duration_since(next).as_nanos() / schedule.interval.as_nanos().max(1);
            next += schedule.interval * (u32::try_from(behind).unwrap_or(u32::MAX - 1) + 1);
        }
    }
}

async fn collect(mut rx: mpsc::Receiver<Report>, mut health: Health, published: Published) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        for report in batch.drain(..) {
            let slot = report.slot;
            if let Some(transition) = health.record(slot, report.outcome, report.now, report.at) {
                log_transition(&health, slot, transition);
            }
        }
        published.store(Arc::new(health.snapshot()));
        tokio::time::sleep(MIN_PUBLISH_GAP).await;
    }
}

fn log_transition(health: &Health, slot: usize, t: Transition) {
    let Some(view) = health.views().get(slot) else {
        return;
    };
    let last = view.last.as_ref();
    let reason = last.map_or("", |l| l.message.as_str());
    let category = last.and_then(|l| l.failure).map_or("", |c| c.as_str());
    let (from, to) = (t.from.as_str(), t.to.as_str());
    match t.to {
        Status::Fail | Status::Warn => {
            tracing::warn!(check = %view.name, from, to, category, reason, "check is now {to}")
        }
        _ => tracing::info!(check = %view.name, from, to, reason, "check is now {to}"),
    }
}
