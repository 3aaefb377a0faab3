//! Health decides: per-check state machines turn probe outcomes into statuses,
//! and the aggregate turns statuses into verdicts. No I/O happens here.

pub mod aggregate;
mod snapshot;
mod state;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

pub use snapshot::{CheckView, LastRun, Published, Snapshot, Verdict};
pub use state::{CheckState, Status, Transition};

use crate::config::Check;
use crate::probe::Outcome;

/// The states of every check, and the startup latch.
#[derive(Debug)]
pub struct Health {
    states: Vec<CheckState>,
    views: Vec<Arc<CheckView>>,
    started: bool,
}

impl Health {
    /// Every check `starting`, as of `now`.
    pub fn new(checks: &[Check], now: Instant) -> Self {
        let created = SystemTime::now();
        let states = checks
            .iter()
            .map(|c| CheckState::new(&c.schedule, c.critical, now))
            .collect();
        let views = checks
            .iter()
            .map(|c| {
                Arc::new(CheckView {
                    name: c.name.clone(),
                    kind: c.probe.kind(),
                    groups: c.groups.clone(),
                    critical: c.critical,
                    status: Status::Starting,
                    since: created,
                    consecutive_successes: 0,
                    consecutive_failures: 0,
                    ever_passed: false,
                    last: None,
                })
            })
            .collect();
        Self {
            states,
            views,
            started: false,
        }
    }

    /// Records the outcome of the check at `slot` (its index in the config).
    /// Returns the transition, if its status changed.
    pub fn record(
        &mut self,
        slot: usize,
        outcome: Outcome,
        now: Instant,
        at: SystemTime,
    ) -> Option<Transition> {
        let (state, view) = (self.states.get_mut(slot)?, self.views.get_mut(slot)?);
        let transition = state.record(&outcome, now);
        let updated = CheckView {
            status: state.status(),
            since: if transition.is_some() { at } else { view.since },
            consecutive_successes: state.consecutive_successes(),
            consecutive_failures: state.consecutive_failures(),
            ever_passed: state.ever_passed(),
            last: Some(LastRun {
                at,
                duration: outcome.duration,
                failure: outcome.failure,
                message: outcome.message,
            }),
            ..CheckView::clone(view)
        };
        *view = Arc::new(updated);
        transition
    }

    /// The check views, in config order.
    pub fn views(&self) -> &[Arc<CheckView>] {
        &self.views
    }

    /// Builds the snapshot for the current states, latching startup.
    pub fn snapshot(&mut self) -> Snapshot {
        self.started = self.started || aggregate::startup_done(&self.views);
        let checks = self.views.clone();
        let liveness = aggregate::liveness(&checks, self.started);
        let readiness = aggregate::readiness(&checks, self.started);
        let startup = aggregate::startup(&checks, self.started);
        let overall = aggregate::overall(&checks, &liveness, &readiness);
        Snapshot {
            checks,
            started: self.started,
            liveness,
            readiness,
            startup,
            overall,
        }
    }
}
