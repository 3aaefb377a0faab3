//! One check's state machine: thresholds, start period, hysteresis.
//!
//! `starting` until the first verdict; `pass` after `success_threshold`
//! consecutive successes; `fail` (or `warn` for a non-critical check) after
//! `failure_threshold` consecutive failures; in between the previous verdict
//! stands. Failures inside the start period do not count; one success ends it.
//!
//! With `failure_window` (`success_window`) set, `fail` (`pass`) comes instead
//! after that many failures (successes) among the last `of` counted runs;
//! the window starts empty at each verdict change.
//!
//! A run that passed with a warning counts as a success; while the verdict is
//! healthy and the latest run warned, the check reports `warn` (which holds
//! back no verdict).

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Schedule, Window};
use crate::probe::Outcome;

/// A check's reported status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No verdict yet.
    Starting,
    /// Healthy.
    Pass,
    /// A non-critical check that is failing.
    Warn,
    /// A critical check that is failing.
    Fail,
}

impl Status {
    /// The status as shown in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of status, reported once when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Status before the result.
    pub from: Status,
    /// Status after it.
    pub to: Status,
}

/// The verdict state of one check.
#[derive(Debug, Clone)]
pub struct CheckState {
    success_threshold: u32,
    failure_threshold: u32,
    critical: bool,
    /// `None` while starting; then whether the last verdict was healthy.
    healthy: Option<bool>,
    /// The verdict of the definition this one replaced, shown until this one has its own.
    inherited: Option<bool>,
    /// Added by a reload: while starting it holds back no verdict.
    provisional: bool,
    successes: u32,
    failures: u32,
    /// End of the start period; `None` once it is over.
    start_period_ends: Option<Instant>,
    ever_passed: bool,
    /// The latest counted run passed with a warning.
    warned: bool,
    failure_window: Option<Window>,
    success_window: Option<Window>,
    /// Counted runs since the last verdict change, newest in bit 0, 1 = failed.
    history: u64,
    /// How many bits of `history` hold runs (at most 64).
    recorded: u32,
}

impl CheckState {
    /// A new check, starting now.
    pub fn new(schedule: &Schedule, critical: bool, now: Instant) -> Self {
        Self {
            success_threshold: schedule.success_threshold.max(1),
            failure_threshold: schedule.failure_threshold.max(1),
            critical,
            healthy: None,
            inherited: None,
            provisional: false,
            successes: 0,
            failures: 0,
            start_period_ends: (schedule.start_period > Duration::ZERO)
                .then(|| now + schedule.start_period),
            ever_passed: false,
            warned: false,
            failure_window: schedule.failure_window,
            success_window: schedule.success_window,
            history: 0,
            recorded: 0,
        }
    }

    /// A check added to a running config: `starting`, but holding back no
    /// verdict until its first one, so an edit alone never takes an instance
    /// out of rotation.
    pub fn added(schedule: &Schedule, critical: bool, now: Instant) -> Self {
        Self {
            provisional: true,
            ..Self::new(schedule, critical, now)
        }
    }

    /// A changed check: counters start over under the new definition, but the
    /// previous verdict is shown until the new definition produces one.
    pub fn replacing(
        previous: &CheckState,
        schedule: &Schedule,
        critical: bool,
        now: Instant,
    ) -> Self {
        Self {
            inherited: previous.healthy.or(previous.inherited),
            provisional: previous.provisional && previous.healthy.is_none(),
            ever_passed: previous.ever_passed,
            ..Self::new(schedule, critical, now)
        }
    }

    /// Whether this check, still without a verdict of its own, holds back no verdict.
    pub fn provisional(&self) -> bool {
        self.provisional && self.healthy.is_none() && self.inherited.is_none()
    }

    /// Takes one probe result into account, returning the transition if the status changed.
    pub fn record(&mut self, outcome: &Outcome, now: Instant) -> Option<Transition> {
        let from = self.status();
        let before = self.healthy;
        if outcome.passed() {
            self.warned = outcome.warning.is_some();
            self.start_period_ends = None;
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            self.remember(false);
            let reached = match self.success_window {
                Some(w) => self.in_window(w.of, false) >= w.count,
                None => self.successes >= self.success_threshold,
            };
            if reached {
                self.healthy = Some(true);
                self.ever_passed = true;
            }
        } else if self.start_period_ends.is_some_and(|end| now < end) {
            // Inside the start period a failure does not count.
        } else {
            self.start_period_ends = None;
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            self.remember(true);
            let reached = match self.failure_window {
                Some(w) => self.in_window(w.of, true) >= w.count,
                None => self.failures >= self.failure_threshold,
            };
            if reached {
                self.healthy = Some(false);
            }
        }
        if self.healthy != before {
            self.history = 0;
            self.recorded = 0;
        }
        let to = self.status();
        (from != to).then_some(Transition { from, to })
    }

    fn remember(&mut self, failed: bool) {
        self.history = (self.history << 1) | u64::from(failed);
        self.recorded = (self.recorded + 1).min(64);
    }

    /// Failed (`failed`) or passed runs among the last `of` counted ones.
    fn in_window(&self, of: u32, failed: bool) -> u32 {
        let n = of.min(self.recorded);
        let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        let failures = (self.history & mask).count_ones();
        if failed { failures } else { n - failures }
    }

    /// Whether the check is being probed at its failing pace: the latest
    /// counted run failed, or the verdict is not healthy.
    pub fn failing_or_recovering(&self) -> bool {
        self.failures > 0 || self.healthy == Some(false)
    }

    /// Whether the check has a verdict of its own.
    pub fn has_verdict(&self) -> bool {
        self.healthy.is_some()
    }

    /// The reported status.
    pub fn status(&self) -> Status {
        match self.healthy.or(self.inherited) {
            None => Status::Starting,
            Some(true) if self.warned && self.healthy.is_some() => Status::Warn,
            Some(true) => Status::Pass,
            Some(false) if self.critical => Status::Fail,
            Some(false) => Status::Warn,
        }
    }

    /// Consecutive successes so far.
    pub fn consecutive_successes(&self) -> u32 {
        self.successes
    }

    /// Consecutive counted failures so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Whether the check has ever reached `pass`.
    pub fn ever_passed(&self) -> bool {
        self.ever_passed
    }

    /// Whether failures are still being forgiven at `now`.
    pub fn in_start_period(&self, now: Instant) -> bool {
        self.start_period_ends.is_some_and(|end| now < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Category;

    fn schedule(success: u32, failure: u32, start_period: Duration) -> Schedule {
        Schedule {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            initial_delay: Duration::ZERO,
            start_period,
            success_threshold: success,
            failure_threshold: failure,
            start_interval: None,
            failing_interval: None,
            failure_window: None,
            success_window: None,
        }
    }

    fn run(s: &mut CheckState, pattern: &str) -> Vec<Status> {
        let now = Instant::now();
        pattern
            .chars()
            .map(|c| {
                s.record(if c == 'F' { &BAD } else { &OK }, now);
                s.status()
            })
            .collect()
    }

    static OK: std::sync::LazyLock<Outcome> = std::sync::LazyLock::new(|| Outcome::pass("ok"));
    static BAD: std::sync::LazyLock<Outcome> =
        std::sync::LazyLock::new(|| Outcome::fail(Category::ConnectRefused, "refused"));

    #[tokio::test(start_paused = true)]
    async fn a_failure_window_catches_a_flapping_target() {
        use Status::*;
        let flapping = "SSFSFSFSFS";
        // Consecutive thresholds (3 failures): the alternating target stays `pass`.
        let mut plain = CheckState::new(&schedule(1, 3, Duration::ZERO), true, Instant::now());
        assert!(run(&mut plain, flapping).iter().skip(1).all(|s| *s == Pass));
        // 3 of 5: the third failure within five runs fails it.
        let mut windowed = CheckState::new(
            &Schedule {
                failure_window: Some(Window { count: 3, of: 5 }),
                ..schedule(1, 3, Duration::ZERO)
            },
            true,
            Instant::now(),
        );
        assert_eq!(
            run(&mut windowed, "SSFSFSF"),
            [Pass, Pass, Pass, Pass, Pass, Pass, Fail]
        );
        // Failures that fall out of the window no longer count: F . . . . F F
        let mut spread = CheckState::new(
            &Schedule {
                failure_window: Some(Window { count: 3, of: 5 }),
                ..schedule(1, 3, Duration::ZERO)
            },
            true,
            Instant::now(),
        );
        assert_eq!(run(&mut spread, "SFSSSSFF").last(), Some(&Pass));
        assert_eq!(run(&mut spread, "F").last(), Some(&Fail));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_window_needs_enough_recent_successes_and_starts_over_at_each_verdict() {
        use Status::*;
        let mut s = CheckState::new(
            &Schedule {
                success_window: Some(Window { count: 4, of: 5 }),
                failure_window: Some(Window { count: 2, of: 3 }),
                ..schedule(1, 1, Duration::ZERO)
            },
            true,
            Instant::now(),
        );
        // Four successes of five, not necessarily consecutive.
        assert_eq!(
            run(&mut s, "SSFSS"),
            [Starting, Starting, Starting, Starting, Pass]
        );
        // The window was emptied by the verdict: the earlier F does not count.
        assert_eq!(run(&mut s, "F"), [Pass]);
        assert_eq!(run(&mut s, "SF"), [Pass, Fail]);
        // Recovering: the failures before the verdict are forgotten, four of five after it.
        assert_eq!(run(&mut s, "SSSFS"), [Fail, Fail, Fail, Fail, Pass]);
    }

    fn ok() -> Outcome {
        Outcome::pass("ok")
    }
    fn bad() -> Outcome {
        Outcome::fail(Category::ConnectRefused, "refused")
    }

    #[tokio::test(start_paused = true)]
    async fn thresholds_and_hysteresis() {
        let now = Instant::now();
        let mut s = CheckState::new(&schedule(2, 3, Duration::ZERO), true, now);
        assert_eq!(s.status(), Status::Starting);
        assert_eq!(
            s.record(&ok(), now),
            None,
            "one success of two keeps it starting"
        );
        let t = s.record(&ok(), now).expect("second success passes");
        assert_eq!((t.from, t.to), (Status::Starting, Status::Pass));
        assert_eq!(s.record(&bad(), now), None);
        assert_eq!(s.record(&bad(), now), None);
        assert_eq!(s.consecutive_failures(), 2);
        // A success in between resets the failure count: the verdict stands.
        assert_eq!(s.record(&ok(), now), None);
        assert_eq!(s.consecutive_failures(), 0);
        for _ in 0..2 {
            assert_eq!(s.record(&bad(), now), None);
        }
        let t = s.record(&bad(), now).expect("third failure fails");
        assert_eq!((t.from, t.to), (Status::Pass, Status::Fail));
        // One success of two does not bring it back.
        assert_eq!(s.record(&ok(), now), None);
        assert_eq!(s.status(), Status::Fail);
        assert_eq!(s.record(&ok(), now).map(|t| t.to), Some(Status::Pass));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_from_starting_reach_fail_without_a_pass() {
        let now = Instant::now();
        let mut s = CheckState::new(&schedule(1, 2, Duration::ZERO), true, now);
        assert_eq!(s.record(&bad(), now), None);
        assert_eq!(s.record(&bad(), now).map(|t| t.to), Some(Status::Fail));
        assert!(!s.ever_passed());
    }

    #[tokio::test(start_paused = true)]
    async fn start_period_forgives_failures_until_it_ends_or_a_success() {
        let start = Instant::now();
        let mut s = CheckState::new(&schedule(1, 1, Duration::from_secs(30)), true, start);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(s.record(&bad(), Instant::now()), None);
        assert_eq!(s.status(), Status::Starting);
        assert_eq!(s.consecutive_failures(), 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!s.in_start_period(Instant::now()));
        assert_eq!(
            s.record(&bad(), Instant::now()).map(|t| t.to),
            Some(Status::Fail)
        );

        // One success ends the start period early.
        let mut s = CheckState::new(
            &schedule(1, 1, Duration::from_secs(30)),
            true,
            Instant::now(),
        );
        s.record(&ok(), Instant::now());
        assert!(!s.in_start_period(Instant::now()));
        assert_eq!(
            s.record(&bad(), Instant::now()).map(|t| t.to),
            Some(Status::Fail)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_replacement_shows_the_old_verdict_until_it_has_its_own() {
        let now = Instant::now();
        let mut old = CheckState::new(&schedule(1, 3, Duration::ZERO), true, now);
        old.record(&ok(), now);
        old.record(&bad(), now);
        let mut new = CheckState::replacing(&old, &schedule(2, 1, Duration::ZERO), true, now);
        assert_eq!(new.status(), Status::Pass, "the old verdict stands");
        assert_eq!(new.consecutive_failures(), 0, "counters start over");
        assert_eq!(
            new.record(&ok(), now),
            None,
            "one of two successes: still the old verdict"
        );
        assert_eq!(new.record(&bad(), now).map(|t| t.to), Some(Status::Fail));
        // Criticality follows the new definition.
        let relaxed = CheckState::replacing(&new, &schedule(1, 1, Duration::ZERO), false, now);
        assert_eq!(relaxed.status(), Status::Warn);
    }

    #[tokio::test(start_paused = true)]
    async fn an_added_check_is_provisional_until_its_first_verdict() {
        let now = Instant::now();
        let mut s = CheckState::added(&schedule(1, 2, Duration::ZERO), true, now);
        assert!(s.provisional());
        assert_eq!(s.status(), Status::Starting);
        s.record(&bad(), now);
        assert!(s.provisional(), "no verdict yet");
        s.record(&bad(), now);
        assert!(!s.provisional());
        assert_eq!(s.status(), Status::Fail);
    }

    #[tokio::test(start_paused = true)]
    async fn a_warning_counts_as_success_and_shows_as_warn() {
        let now = Instant::now();
        let warned = || Outcome::warn(Category::CertExpiring, "expires in 3 days");
        let mut s = CheckState::new(&schedule(2, 1, Duration::ZERO), true, now);
        assert_eq!(s.record(&warned(), now), None, "one of two successes");
        assert_eq!(s.record(&warned(), now).map(|t| t.to), Some(Status::Warn));
        assert_eq!(s.record(&ok(), now).map(|t| t.to), Some(Status::Pass));
        assert_eq!(s.record(&bad(), now).map(|t| t.to), Some(Status::Fail));
        // Recovering through warnings: two of them reach `warn`, not `pass`.
        assert_eq!(s.record(&warned(), now), None);
        assert_eq!(s.record(&warned(), now).map(|t| t.to), Some(Status::Warn));
        // A warned replacement shows the inherited verdict, not `warn`, until its own.
        let mut new = CheckState::replacing(&s, &schedule(2, 1, Duration::ZERO), true, now);
        assert_eq!(new.status(), Status::Pass);
        assert_eq!(new.record(&warned(), now), None);
        assert_eq!(new.status(), Status::Pass);
    }

    #[tokio::test(start_paused = true)]
    async fn non_critical_failure_is_warn() {
        let now = Instant::now();
        let mut s = CheckState::new(&schedule(1, 1, Duration::ZERO), false, now);
        s.record(&ok(), now);
        assert_eq!(s.record(&bad(), now).map(|t| t.to), Some(Status::Warn));
    }
}
