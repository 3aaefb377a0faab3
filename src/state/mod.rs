//! Memory across time: every run rolled up by check and hour, and every
//! status change, kept in a crash-safe store under `state.dir`
//! ([`store`]), gathered on the collector and written in batches off the
//! probe path ([`recorder`]). A store that cannot be written (a full disk,
//! a read-only directory) is logged and counted
//! (`healthgate_state_write_errors_total`), and the gateway carries on.

pub mod config;
pub mod recorder;
pub mod report;
pub mod rollup;
pub mod store;
pub mod uptime;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use crate::health::Published;

pub use config::StateSection;
pub use recorder::Recorder;
use rollup::{HOUR, Rollup};
use store::{Change, Store};

/// Most hourly rows the store keeps, whatever the check count: 30 days of
/// 1,388 checks. With [`MAX_TRANSITIONS`], about 180 MB at most (a row
/// takes about 90 bytes once compacted).
const MAX_ROLLUPS: u64 = 1_000_000;
/// Most status changes the store keeps, whatever the check count: past it
/// (checks flapping for days), the oldest hours of changes go first.
const MAX_TRANSITIONS: u64 = 1_000_000;
/// Time between prunes of what is past the retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Time between computations of every check's uptime, per check (each
/// reads up to 721 hourly rows): 10 s at 1,000 checks, at least one batch
/// and at most a minute apart.
const UPTIME_PER_CHECK: Duration = Duration::from_millis(10);
/// Longest time between computations of the uptimes.
const UPTIME_AT_MOST: Duration = Duration::from_secs(60);

/// Each name's uptime over [`uptime::WINDOWS`].
pub type Uptimes = HashMap<Arc<str>, [Option<f64>; 4]>;

/// Least time between two attempts to open a store that would not open.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// The store once open, and the last attempt to open it.
#[derive(Default)]
struct Slot {
    store: Option<Arc<Store>>,
    tried: Option<tokio::time::Instant>,
    failing: bool,
}

/// The store, what feeds it, and the task that writes it.
pub struct State {
    dir: PathBuf,
    store: Mutex<Slot>,
    /// What the collector tells it.
    pub recorder: Arc<Recorder>,
    retention: Duration,
    /// Uptime of every check and verdict, refreshed every
    /// [`UPTIME_PER_CHECK`] per check.
    uptimes: ArcSwap<Uptimes>,
}

impl State {
    /// Opens the store `section` names (`None` when `state.dir` is unset);
    /// one that cannot be opened is reported and tried again at each batch.
    pub fn open(section: &StateSection) -> Option<Arc<Self>> {
        let dir = section.dir.clone()?;
        let state = Arc::new(Self {
            dir,
            store: Mutex::default(),
            recorder: Arc::default(),
            retention: section.retention.get(),
            uptimes: ArcSwap::default(),
        });
        state.store();
        Some(state)
    }

    /// The open store, opening it if it is not (at most once per
    /// [`REOPEN_EVERY`]: a request never waits on a store that keeps failing).
    fn store(&self) -> Option<Arc<Store>> {
        let mut slot = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let due = slot.tried.is_none_or(|at| at.elapsed() >= REOPEN_EVERY);
        if slot.store.is_none() && due {
            slot.tried = Some(tokio::time::Instant::now());
            match Store::open(&self.dir) {
                Ok((store, note)) => {
                    if let Some(note) = note {
                        tracing::warn!(%note, "state store damaged or of another version");
                    }
                    tracing::info!(dir = %self.dir.display(), "state store open");
                    slot.store = Some(Arc::new(store));
                    slot.failing = false;
                }
                Err(error) => {
                    self.recorder
                        .stats
                        .write_errors
                        .fetch_add(1, Ordering::Relaxed);
                    // Once per failing streak: the counter tells the rest.
                    if !std::mem::replace(&mut slot.failing, true) {
                        tracing::error!(%error, "state store cannot be opened; history is kept in memory until it can (tried again every second)");
                    }
                }
            }
        }
        slot.store.clone()
    }

    /// Every `interval` until dropped: samples the verdicts of
    /// `published`, writes what waits, and every [`PRUNE_EVERY`] prunes and
    /// every [`UPTIME_PER_CHECK`] per check computes the uptimes.
    pub fn start(self: &Arc<Self>, interval: Duration, published: Published) -> Flusher {
        let state = self.clone();
        Flusher(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut last = tokio::time::Instant::now();
            let mut pruned_at: Option<tokio::time::Instant> = None;
            let mut counted_at: Option<tokio::time::Instant> = None;
            loop {
                ticks.tick().await;
                state
                    .recorder
                    .sample_verdicts(&published.load(), last.elapsed());
                last = tokio::time::Instant::now();
                state.flush().await;
                if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    state.prune().await;
                    pruned_at = Some(tokio::time::Instant::now());
                }
                let checks = u32::try_from(published.load().checks.len()).unwrap_or(u32::MAX);
                let every =
                    (UPTIME_PER_CHECK * checks).clamp(interval, UPTIME_AT_MOST.max(interval));
                if counted_at.is_none_or(|at| at.elapsed() >= every) {
                    state.count_uptimes(&published).await;
                    counted_at = Some(tokio::time::Instant::now());
                }
            }
        }))
    }

    /// Computes the uptime of every check of `published` and of each verdict.
    async fn count_uptimes(self: &Arc<Self>, published: &Published) {
        let mut names: Vec<Arc<str>> = published
            .load()
            .checks
            .iter()
            .map(|c| c.name.clone())
            .collect();
        names.extend(["/livez", "/readyz", "/startupz"].map(Arc::from));
        let state = self.clone();
        let counted = tokio::task::spawn_blocking(move || {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let now_hour = now - now % HOUR;
            let from = now_hour.saturating_sub(uptime::WINDOWS[3].1 * HOUR);
            let limit = usize::try_from(uptime::WINDOWS[3].1 + 1).unwrap_or(usize::MAX);
            let mut pending = state.recorder.pending_by_check(from);
            names
                .into_iter()
                .map(|name| {
                    let waiting = pending.remove(&name).unwrap_or_default();
                    let (hours, _, _) = state.merged(&name, from, u64::MAX, limit, waiting);
                    let up = uptime::of(&hours, now_hour);
                    (name, up)
                })
                .collect::<Uptimes>()
        })
        .await;
        if let Ok(uptimes) = counted {
            self.uptimes.store(Arc::new(uptimes));
        }
    }

    /// Every check's and verdict's uptime, as last computed.
    pub fn uptimes(&self) -> Arc<Uptimes> {
        self.uptimes.load_full()
    }

    /// Writes what waits now, in one transaction on the blocking pool.
    pub async fn flush(&self) {
        let batch = self.recorder.take();
        if batch.is_empty() {
            return;
        }
        // Verdicts' rollups count milliseconds, not runs.
        let runs: u64 = batch
            .rollups
            .iter()
            .filter(|((name, _), _)| !name.starts_with('/'))
            .map(|(_, r)| r.runs())
            .sum();
        let Some(store) = self.store() else {
            return;
        };
        let stats = self.recorder.clone();
        let written = tokio::task::spawn_blocking(move || store.write(&batch)).await;
        match written {
            Ok(Ok(())) => {
                stats.stats.runs_written.fetch_add(runs, Ordering::Relaxed);
            }
            Ok(Err(error)) => {
                stats.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, runs, "state batch not written; the gateway carries on");
            }
            Err(error) => {
                stats.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "state batch not written");
            }
        }
    }

    /// Deletes what is past the retention (or past [`MAX_ROLLUPS`] rows).
    async fn prune(&self) {
        let Some(store) = self.store() else {
            return;
        };
        let retention = self.retention;
        let result = tokio::task::spawn_blocking(move || {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let from = now.saturating_sub(retention);
            let from_hour = from.as_secs() - from.as_secs() % HOUR;
            let from_us = u64::try_from(from.as_micros()).unwrap_or(0);
            let (rows, _) = store.prune(from_hour, from_us, MAX_TRANSITIONS)?;
            if rows > MAX_ROLLUPS {
                // Keep the newest hours that fit: as many as the rows allow.
                let hours = (retention.as_secs() / HOUR).max(1);
                let keep = (hours * MAX_ROLLUPS / rows).max(1);
                let now_hour = now.as_secs() - now.as_secs() % HOUR;
                store.prune(
                    now_hour.saturating_sub(keep * HOUR),
                    from_us,
                    MAX_TRANSITIONS,
                )?;
            }
            // Pruned and rewritten rows leave free pages: given back.
            store.compact()?;
            Ok::<_, store::StoreError>(())
        })
        .await;
        if let Ok(Err(error)) = result {
            self.recorder
                .stats
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "state store not pruned");
        }
    }

    /// `check`'s rollups of hours in `[from, before)`, newest first, at
    /// most `limit`, what waits for the next batch included; whether there
    /// are more before the last; and why the store could not be read, if
    /// it could not (what waits in memory is still given).
    pub fn history(
        &self,
        check: &str,
        from: u64,
        before: u64,
        limit: usize,
    ) -> (Vec<(u64, Rollup)>, bool, Option<String>) {
        let waiting = self.recorder.pending(check, from, before);
        self.merged(check, from, before, limit, waiting)
    }

    /// As [`State::history`], with `waiting` as what waits for the next batch.
    fn merged(
        &self,
        check: &str,
        from: u64,
        before: u64,
        limit: usize,
        waiting: Vec<(u64, Rollup)>,
    ) -> (Vec<(u64, Rollup)>, bool, Option<String>) {
        let mut hours: BTreeMap<u64, Rollup> = BTreeMap::new();
        let mut unread = None;
        match self
            .store()
            .map(|s| s.history(check, from, before, limit + 1))
        {
            Some(Ok(stored)) => {
                for (hour, r) in stored {
                    hours.entry(hour).or_default().merge(&r);
                }
            }
            Some(Err(error)) => unread = Some(error.to_string()),
            None => unread = Some("the state store is not open".to_owned()),
        }
        for (hour, r) in waiting {
            hours.entry(hour).or_default().merge(&r);
        }
        let mut newest: Vec<(u64, Rollup)> = hours.into_iter().rev().collect();
        let more = newest.len() > limit;
        newest.truncate(limit);
        (newest, more, unread)
    }

    /// `check`'s stored status changes in `[from_us, before_us)`, newest first.
    pub fn changes(&self, check: &str, from_us: u64, before_us: u64, limit: usize) -> Vec<Change> {
        self.store()
            .and_then(|s| s.changes(check, from_us, before_us, limit).ok())
            .unwrap_or_default()
    }

    /// Writes what waits, for a clean stop.
    pub async fn close(&self) {
        self.flush().await;
    }
}

/// The flushing task; stopped when dropped.
pub struct Flusher(JoinHandle<()>);

impl Drop for Flusher {
    fn drop(&mut self) {
        self.0.abort();
    }
}
