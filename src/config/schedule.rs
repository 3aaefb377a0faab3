//! When a check runs and how its runs become a verdict: one section of
//! optional keys, written as `[defaults]` and in each check. A check's own
//! keys win over `[defaults]`, and [`ScheduleSection::resolve`] fills what
//! neither set with the one built-in default of each knob.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bounded::{Delay, Period, Threshold};

/// Most runs a k-of-n window looks at (one bit each).
const MAX_WINDOW: u32 = 64;

/// The built-in `interval`.
const INTERVAL: Period = Period::known(Duration::from_secs(10));
/// The built-in `timeout`.
const TIMEOUT: Period = Period::known(Duration::from_secs(1));
/// The built-in `success_threshold`.
const SUCCESS_THRESHOLD: Threshold = Threshold::known(1);
/// The built-in `failure_threshold`.
const FAILURE_THRESHOLD: Threshold = Threshold::known(3);

/// `[defaults]`, and the same keys in a `[[checks]]` entry, which override them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Time between the starts of two runs of a check, more than 0s and at
    /// most `"365d"`. Default `"10s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Period>,
    /// Longest a single run may take before it fails as `timeout`, more than
    /// 0s and at most `"365d"`. Default `"1s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Period>,
    /// Wait before the first run; a random jitter within one interval is
    /// added. At most `"365d"`. Default `"0s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Delay>,
    /// Failures inside this period after the check starts do not count; the
    /// check stays `starting`. One success ends the period early. At most
    /// `"365d"`. Default `"0s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Delay>,
    /// Consecutive successes needed to reach `pass`, 1 to 10000. Default `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<Threshold>,
    /// Consecutive failures needed to reach `fail`, 1 to 10000. Default `3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<Threshold>,
    /// Time between runs until the check has its first verdict, so a new
    /// instance becomes ready quickly (as Docker's `start_interval`). More
    /// than 0s and at most `"365d"`. Off unless set: `interval` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Period>,
    /// Time between runs while the latest run failed or the verdict is not
    /// yet healthy again, so a failure is confirmed and a recovery seen
    /// sooner (as Envoy's `unhealthy_interval`). More than 0s and at most
    /// `"365d"`. Off unless set: `interval` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_interval: Option<Period>,
    /// `failure_window = { failures = 3, of = 5 }`: fail when at least
    /// `failures` of the last `of` runs failed, instead of
    /// `failure_threshold` consecutive ones, so a flapping target cannot
    /// hold a healthy verdict by an occasional success. `of` is at most 64.
    /// The window starts empty at every verdict change, so each verdict is
    /// earned by runs made after the last one. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_window: Option<FailureWindow>,
    /// `success_window = { successes = 4, of = 5 }`: pass when at least
    /// `successes` of the last `of` runs passed, instead of
    /// `success_threshold` consecutive ones. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_window: Option<SuccessWindow>,
}

impl ScheduleSection {
    /// These keys, with `under`'s where these are not set.
    pub fn over(self, under: &ScheduleSection) -> ScheduleSection {
        ScheduleSection {
            interval: self.interval.or(under.interval),
            timeout: self.timeout.or(under.timeout),
            initial_delay: self.initial_delay.or(under.initial_delay),
            start_period: self.start_period.or(under.start_period),
            success_threshold: self.success_threshold.or(under.success_threshold),
            failure_threshold: self.failure_threshold.or(under.failure_threshold),
            start_interval: self.start_interval.or(under.start_interval),
            failing_interval: self.failing_interval.or(under.failing_interval),
            failure_window: self.failure_window.or(under.failure_window),
            success_window: self.success_window.or(under.success_window),
        }
    }

    /// The schedule a check runs on: what is set, the built-in default otherwise.
    pub fn resolve(self) -> Schedule {
        Schedule {
            interval: self.interval.unwrap_or(INTERVAL).get(),
            timeout: self.timeout.unwrap_or(TIMEOUT).get(),
            initial_delay: self.initial_delay.unwrap_or_default().get(),
            start_period: self.start_period.unwrap_or_default().get(),
            success_threshold: self.success_threshold.unwrap_or(SUCCESS_THRESHOLD).get(),
            failure_threshold: self.failure_threshold.unwrap_or(FAILURE_THRESHOLD).get(),
            start_interval: self.start_interval.map(Period::get),
            failing_interval: self.failing_interval.map(Period::get),
            failure_window: self.failure_window.map(|w| w.0),
            success_window: self.success_window.map(|w| w.0),
        }
    }
}

/// Timing and thresholds of one check, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// Bound on one run.
    pub timeout: Duration,
    /// Wait before the first run (plus jitter).
    pub initial_delay: Duration,
    /// Failures inside it do not count.
    pub start_period: Duration,
    /// Consecutive successes to `pass` (at least 1).
    pub success_threshold: u32,
    /// Consecutive failures to `fail` (at least 1).
    pub failure_threshold: u32,
    /// Time between runs until the first verdict.
    pub start_interval: Option<Duration>,
    /// Time between runs while failing or recovering.
    pub failing_interval: Option<Duration>,
    /// `count` failures of the last `of` runs to `fail`, instead of the consecutive threshold.
    pub failure_window: Option<Window>,
    /// `count` successes of the last `of` runs to `pass`, instead of the consecutive threshold.
    pub success_window: Option<Window>,
}

impl Default for Schedule {
    fn default() -> Self {
        ScheduleSection::default().resolve()
    }
}

/// `count` of the last `of` runs (1 <= count <= of <= 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Runs needed.
    pub count: u32,
    /// Runs looked at.
    pub of: u32,
}

impl Window {
    /// `count` of the last `of` runs, when `1 <= count <= of <= 64`; else
    /// what is wrong, naming the count `counted`.
    fn new(count: u32, of: u32, counted: &str) -> Result<Self, String> {
        if 1 <= count && count <= of && of <= MAX_WINDOW {
            Ok(Self { count, of })
        } else {
            Err(format!(
                "needs 1 <= {counted} <= of <= {MAX_WINDOW}; got {counted} = {count}, of = {of}"
            ))
        }
    }
}

/// `failure_window = { failures = 3, of = 5 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "FailureWindowKeys", into = "FailureWindowKeys")]
pub struct FailureWindow(Window);

/// `success_window = { successes = 4, of = 5 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "SuccessWindowKeys", into = "SuccessWindowKeys")]
pub struct SuccessWindow(Window);

/// The keys of a `failure_window`, as written.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FailureWindowKeys {
    /// Failed runs needed within the window.
    failures: u32,
    /// Length of the window, in runs (1-64).
    of: u32,
}

/// The keys of a `success_window`, as written.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SuccessWindowKeys {
    /// Passed runs needed within the window.
    successes: u32,
    /// Length of the window, in runs (1-64).
    of: u32,
}

impl TryFrom<FailureWindowKeys> for FailureWindow {
    type Error = String;
    fn try_from(k: FailureWindowKeys) -> Result<Self, String> {
        Window::new(k.failures, k.of, "failures").map(Self)
    }
}

impl From<FailureWindow> for FailureWindowKeys {
    fn from(w: FailureWindow) -> Self {
        Self {
            failures: w.0.count,
            of: w.0.of,
        }
    }
}

impl TryFrom<SuccessWindowKeys> for SuccessWindow {
    type Error = String;
    fn try_from(k: SuccessWindowKeys) -> Result<Self, String> {
        Window::new(k.successes, k.of, "successes").map(Self)
    }
}

impl From<SuccessWindow> for SuccessWindowKeys {
    fn from(w: SuccessWindow) -> Self {
        Self {
            successes: w.0.count,
            of: w.0.of,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(json: serde_json::Value) -> ScheduleSection {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_checks_keys_win_and_the_built_in_defaults_fill_the_rest() {
        let defaults = section(serde_json::json!({"interval": "30s", "failure_threshold": 5}));
        let check = section(serde_json::json!({"interval": "2s", "timeout": "500ms"}));
        let s = check.over(&defaults).resolve();
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(s.timeout, Duration::from_millis(500));
        assert_eq!(s.failure_threshold, 5);
        assert_eq!(s.success_threshold, 1);
        assert_eq!(s.initial_delay, Duration::ZERO);
        assert_eq!(s.failure_window, None);
        let built_in = Schedule::default();
        assert_eq!(built_in.interval, Duration::from_secs(10));
        assert_eq!(built_in.timeout, Duration::from_secs(1));
        assert_eq!(built_in.failure_threshold, 3);
    }

    #[test]
    fn windows_hold_one_to_sixty_four_runs() {
        let w = section(serde_json::json!({"failure_window": {"failures": 3, "of": 5}}));
        assert_eq!(w.resolve().failure_window, Some(Window { count: 3, of: 5 }));
        for (count, of) in [(0, 5), (6, 5), (3, 65)] {
            let err = serde_json::from_value::<ScheduleSection>(serde_json::json!(
                {"success_window": {"successes": count, "of": of}}
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(&format!(
                    "needs 1 <= successes <= of <= 64; got successes = {count}, of = {of}"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn a_section_serializes_to_what_it_parses_from() {
        let written = serde_json::json!({
            "interval": "5s", "success_threshold": 2,
            "failure_window": {"failures": 2, "of": 4}
        });
        let parsed = section(written.clone());
        assert_eq!(serde_json::to_value(parsed).unwrap(), written);
    }
}
