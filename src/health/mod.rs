//! Health decides: per-check state machines turn probe outcomes into statuses,
//! and the aggregate turns statuses into verdicts. No I/O happens here.

pub mod aggregate;
pub mod events;
#[cfg(test)]
pub(crate) mod fixture;
mod groups;
pub mod score;
mod snapshot;
mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

pub use events::{Bus, CheckChange, Event, EventKind, MaintenanceChange, Queue, VerdictChange};
pub use groups::{Group, Groups};
pub use score::{Band, Score};
pub use snapshot::{
    CheckView, Drain, DrainMode, LastRun, Open, Phases, Published, RECENT_RUNS, ReloadRecord,
    Reloads, Snapshot, Verdict,
};
pub use state::{CheckState, Status, Transition};

use crate::config::{Change, Check};
use crate::probe::Outcome;

/// One check of a (re)configuration, as the engine hands it over.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The check.
    pub check: Check,
    /// Which run of the check results must come from; results of older
    /// generations (a replaced check's in-flight run) are dropped.
    pub generation: u64,
    /// How it relates to the previous configuration (ignored by [`Health::new`]).
    pub change: Change,
}

/// The states of every check, and the startup latch.
#[derive(Debug, Default)]
pub struct Health {
    entries: Vec<Entry>,
    index: HashMap<Arc<str>, usize>,
    started: bool,
    reloads: Reloads,
    drain: Option<Drain>,
    /// The drain in force was started by a maintenance window (and ends with it).
    window_drained: bool,
    /// The maintenance windows open now.
    maintenance: Arc<[Open]>,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    state: CheckState,
    view: Arc<CheckView>,
}

impl Health {
    /// The initial configuration: every check `starting` as of `now`.
    pub fn new(slots: &[Slot], now: Instant) -> Self {
        let mut health = Health::default();
        let at = SystemTime::now();
        health.reloads.last_success_at = Some(at);
        health.entries = slots
            .iter()
            .map(|slot| {
                let state = CheckState::new(&slot.check.schedule, slot.check.critical, now);
                entry(slot, state, at)
            })
            .collect();
        health.reindex();
        health
    }

    /// Applies a new configuration: unchanged checks keep their state,
    /// changed ones start over showing their previous verdict, added ones are
    /// provisional, and checks not in `slots` are gone: returns their names.
    pub fn reconfigure(&mut self, slots: &[Slot], now: Instant) -> Vec<Arc<str>> {
        let at = SystemTime::now();
        let mut old: HashMap<Arc<str>, Entry> = self
            .entries
            .drain(..)
            .map(|e| (e.view.name.clone(), e))
            .collect();
        self.entries = slots
            .iter()
            .map(|slot| {
                let (schedule, critical) = (&slot.check.schedule, slot.check.critical);
                match (slot.change, old.remove(&slot.check.name)) {
                    (Change::Unchanged, Some(mut kept)) => {
                        // Its description, tags or weight may have changed.
                        if kept.view.meta != slot.check.meta {
                            Arc::make_mut(&mut kept.view).meta = slot.check.meta.clone();
                        }
                        kept
                    }
                    (Change::Changed, Some(previous)) => {
                        let state = CheckState::replacing(&previous.state, schedule, critical, now);
                        let mut replaced = entry(slot, state, previous.view.since);
                        if let Some(view) = Arc::get_mut(&mut replaced.view) {
                            view.recent = previous.view.recent.clone();
                        }
                        replaced
                    }
                    _ => entry(slot, CheckState::added(schedule, critical, now), at),
                }
            })
            .collect();
        self.reindex();
        old.into_keys().collect()
    }

    /// Records the outcome of a run of `name`'s `generation`. Returns the
    /// transition, if its status changed; a stale generation changes nothing.
    pub fn record(
        &mut self,
        name: &str,
        generation: u64,
        outcome: &Outcome,
        now: Instant,
        at: SystemTime,
    ) -> Option<Transition> {
        let index = *self.index.get(name)?;
        let entry = self.entries.get_mut(index)?;
        if entry.generation != generation {
            return None;
        }
        let transition = entry.state.record(outcome, now);
        let run = LastRun {
            finished: LastRun::micros_since_epoch(at),
            micros: LastRun::saturating_micros(outcome.duration),
            status: outcome.http_status.and_then(std::num::NonZeroU16::new),
            failure: outcome.failure,
            warning: outcome.warning,
            message: match entry.view.last() {
                Some(last) if *last.message == *outcome.message => last.message.clone(),
                _ => Arc::from(outcome.message.as_str()),
            },
            phases: Phases::from_timed(outcome.phases.iter().map(|p| (p.name, p.duration))),
        };
        let state = &entry.state;
        let updated = CheckView {
            status: state.status(),
            since: if transition.is_some() {
                at
            } else {
                entry.view.since
            },
            consecutive_successes: state.consecutive_successes(),
            consecutive_failures: state.consecutive_failures(),
            ever_passed: state.ever_passed(),
            provisional: state.provisional(),
            cert_not_after: outcome.cert_not_after.or(entry.view.cert_not_after),
            recent: recent(&entry.view.recent, run),
            ..CheckView::clone(&entry.view)
        };
        entry.view = Arc::new(updated);
        transition
    }

    /// Records the outcome of a reload attempt.
    pub fn record_reload(&mut self, record: ReloadRecord) {
        if record.successful {
            self.reloads.applied += 1;
            self.reloads.last_success_at = Some(record.at);
        } else {
            self.reloads.failed += 1;
        }
        self.reloads.last = Some(record);
    }

    /// Starts (`Some`) or ends (`None`) a drain. A shutdown's drain is final:
    /// it replaces an operator's, and nothing replaces it.
    pub fn set_drain(&mut self, drain: Option<Drain>) {
        if !self.drain.as_ref().is_some_and(|d| d.shutdown) {
            self.drain = drain;
            self.window_drained = false;
        }
    }

    /// The maintenance windows open now (`open`, as of `now`). A window
    /// that drains starts a drain (`maint`) unless one is in force, and the
    /// drain it started ends when no draining window is open; an
    /// operator's or a shutdown's drain is never touched.
    pub fn set_maintenance(&mut self, open: Vec<Open>, now: SystemTime) {
        match (open.iter().find(|w| w.drain), &self.drain) {
            (Some(window), None) => {
                self.drain = Some(Drain {
                    reason: format!("maintenance window {}", window.name),
                    mode: DrainMode::Maintenance,
                    since: now,
                    shutdown: false,
                });
                self.window_drained = true;
            }
            (None, Some(_)) if self.window_drained => {
                self.drain = None;
                self.window_drained = false;
            }
            _ => {}
        }
        self.maintenance = open.into();
    }

    /// The maintenance windows open now.
    pub fn maintenance(&self) -> &Arc<[Open]> {
        &self.maintenance
    }

    /// The drain in force.
    pub fn drain(&self) -> Option<&Drain> {
        self.drain.as_ref()
    }

    /// The view of `name`, if it is configured with this `generation`
    /// (results of a replaced definition are not its own).
    pub fn current(&self, name: &str, generation: u64) -> Option<&CheckView> {
        let index = *self.index.get(name)?;
        let entry = self.entries.get(index)?;
        (entry.generation == generation).then_some(&*entry.view)
    }

    /// Builds the snapshot for the current states, latching startup.
    pub fn snapshot(&mut self) -> Snapshot {
        let checks: Vec<Arc<CheckView>> = self.entries.iter().map(|e| e.view.clone()).collect();
        self.started = self.started || aggregate::startup_done(&checks);
        let liveness = aggregate::liveness(&checks, self.started);
        let readiness = match &self.drain {
            Some(drain) => aggregate::draining(drain),
            None => aggregate::readiness(&checks, self.started),
        };
        let startup = aggregate::startup(&checks, self.started);
        let overall = aggregate::overall(&checks, &liveness, &readiness);
        let score = Score::of(&checks);
        Snapshot {
            checks,
            score,
            started: self.started,
            liveness,
            readiness,
            startup,
            overall,
            reloads: self.reloads.clone(),
            drain: self.drain.clone(),
            maintenance: self.maintenance.clone(),
            health_body: std::sync::OnceLock::new(),
        }
    }

    fn reindex(&mut self) {
        self.index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.view.name.clone(), i))
            .collect();
    }
}

fn entry(slot: &Slot, state: CheckState, since: SystemTime) -> Entry {
    let check = &slot.check;
    let view = CheckView {
        name: check.name.clone(),
        kind: check.kind,
        groups: check.groups,
        critical: check.critical,
        dependency: check.dependency,
        meta: check.meta.clone(),
        status: state.status(),
        since,
        consecutive_successes: 0,
        consecutive_failures: 0,
        ever_passed: state.ever_passed(),
        provisional: state.provisional(),
        cert_not_after: None,
        recent: Arc::new([]),
    };
    Entry {
        generation: slot.generation,
        state,
        view: Arc::new(view),
    }
}

/// `previous` with `run` appended, keeping the latest [`RECENT_RUNS`].
fn recent(previous: &[LastRun], run: LastRun) -> Arc<[LastRun]> {
    let skip = (previous.len() + 1).saturating_sub(snapshot::RECENT_RUNS);
    previous
        .iter()
        .skip(skip)
        .cloned()
        .chain(std::iter::once(run))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Category;

    fn slots(timeout: &str, generation: u64, change: Change) -> Vec<Slot> {
        let text = format!(
            "[[checks]]\nname = \"a\"\ntype = \"tcp\"\naddress = \"127.0.0.1:9\"\n\
             failure_threshold = 1\ntimeout = \"{timeout}\"\n"
        );
        let config = crate::config::load_str(std::path::Path::new("t.toml"), &text).unwrap();
        config
            .checks
            .into_iter()
            .map(|check| Slot {
                check,
                generation,
                change,
            })
            .collect()
    }

    /// A run of a check's previous definition that reports after the
    /// reconfigure (it was in flight, or queued) changes nothing: not the
    /// status, not the counters, not the runs shown.
    #[tokio::test(start_paused = true)]
    async fn results_of_a_replaced_definition_are_dropped() {
        let now = Instant::now();
        let mut health = Health::new(&slots("1s", 1, Change::Added), now);
        let pass = Outcome::pass("ok");
        let fail = Outcome::fail(Category::Connect, "refused");
        health.record("a", 1, &pass, now, SystemTime::now());
        assert_eq!(health.current("a", 1).unwrap().status, Status::Pass);
        health.reconfigure(&slots("2s", 2, Change::Changed), now);
        let before = health.current("a", 2).unwrap().clone();
        for _ in 0..5 {
            assert_eq!(health.record("a", 1, &fail, now, SystemTime::now()), None);
        }
        let after = health.current("a", 2).unwrap();
        assert_eq!(after.status, before.status);
        assert_eq!(after.consecutive_failures, 0);
        assert_eq!(after.recent.len(), before.recent.len());
        assert!(health.current("a", 1).is_none());
        // The new definition's own results count.
        assert!(
            health
                .record("a", 2, &fail, now, SystemTime::now())
                .is_some()
        );
        assert_eq!(health.current("a", 2).unwrap().status, Status::Fail);
    }
}
