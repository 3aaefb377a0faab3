//! The health score: one number from 0 to 1 for how healthy the instance
//! is, for dashboards and people (the load balancer reads the verdicts).
//!
//! ```text
//! score = Σ wᵢ·vᵢ / Σ wᵢ          over the enabled checks
//! vᵢ    = 1 pass, 0.5 warn or starting, 0 fail (a check that is not
//!         critical reports a failure as warn, so only critical ones reach 0)
//! wᵢ    = the check's `weight` (default 1), doubled when it is critical
//! ```
//!
//! then capped at 0.69 while a critical check that decides a verdict (in a
//! group, not a `dependency`) fails: an instance failing a verdict is at
//! best unhealthy, whatever else passes. With no weight at all, the score
//! is 1. It is rounded to three decimals, and the band read from that:
//! healthy ≥ 0.9, degraded ≥ 0.7, unhealthy ≥ 0.4, critical below.

use std::sync::Arc;

use super::{CheckView, Status};

/// The highest score while a verdict-deciding critical check fails.
const FAILING_CAP: f64 = 0.69;

/// The score's band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Band {
    /// Below 0.4.
    Critical,
    /// 0.4 to 0.69.
    Unhealthy,
    /// 0.7 to 0.89.
    Degraded,
    /// 0.9 and above.
    Healthy,
}

impl Band {
    /// The band of `score` (rounded as [`Score`] rounds).
    pub fn of(score: f64) -> Self {
        if score >= 0.9 {
            Band::Healthy
        } else if score >= 0.7 {
            Band::Degraded
        } else if score >= 0.4 {
            Band::Unhealthy
        } else {
            Band::Critical
        }
    }

    /// Its name in the APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Healthy => "healthy",
            Band::Degraded => "degraded",
            Band::Unhealthy => "unhealthy",
            Band::Critical => "critical",
        }
    }
}

/// The score and its band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// 0 to 1, three decimals.
    pub value: f64,
    /// Its band.
    pub band: Band,
}

impl Score {
    /// The score of `checks` (see the module's doc).
    pub fn of(checks: &[Arc<CheckView>]) -> Self {
        let mut total = 0.0;
        let mut earned = 0.0;
        let mut capped = false;
        for c in checks {
            let weight = c.meta.weight * if c.critical { 2.0 } else { 1.0 };
            let value = match c.status {
                Status::Pass => 1.0,
                Status::Warn | Status::Starting => 0.5,
                Status::Fail => 0.0,
            };
            total += weight;
            earned += weight * value;
            capped |= c.status == Status::Fail
                && c.critical
                && !c.dependency
                && c.groups.iter().next().is_some();
        }
        let mut value = if total > 0.0 { earned / total } else { 1.0 };
        if capped {
            value = value.min(FAILING_CAP);
        }
        let value = (value.clamp(0.0, 1.0) * 1000.0).round() / 1000.0;
        Score {
            value,
            band: Band::of(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Groups;
    use crate::health::fixture::view;

    fn check(status: Status, critical: bool, weight: f64) -> Arc<CheckView> {
        let mut v = view("c", status, critical);
        v.meta = Arc::new(crate::config::Meta {
            weight,
            ..Default::default()
        });
        Arc::new(v)
    }

    #[test]
    fn the_bands_at_their_edges() {
        for (score, band) in [
            (1.0, Band::Healthy),
            (0.9, Band::Healthy),
            (0.899, Band::Degraded),
            (0.7, Band::Degraded),
            (0.699, Band::Unhealthy),
            (0.4, Band::Unhealthy),
            (0.399, Band::Critical),
            (0.0, Band::Critical),
        ] {
            assert_eq!(Band::of(score), band, "{score}");
        }
    }

    #[test]
    fn nine_of_ten_passing_is_exactly_healthy() {
        let mut checks: Vec<_> = (0..9).map(|_| check(Status::Pass, false, 1.0)).collect();
        checks.push(check(Status::Fail, false, 1.0));
        let score = Score::of(&checks);
        assert_eq!(score.value, 0.9);
        assert_eq!(score.band, Band::Healthy);
        // One more failure of the same weight: 8/10, degraded.
        checks[0] = check(Status::Fail, false, 1.0);
        assert_eq!(Score::of(&checks).band, Band::Degraded);
    }

    #[test]
    fn weights_criticality_and_warnings_count_as_documented() {
        // critical pass: w 2, v 1; warn weight 3: w 3, v 0.5; fail weight 0: nothing.
        let checks = [
            check(Status::Pass, true, 1.0),
            check(Status::Warn, false, 3.0),
            check(Status::Fail, false, 0.0),
        ];
        // (2 + 1.5) / 5 = 0.7
        assert_eq!(Score::of(&checks).value, 0.7);
        assert_eq!(Score::of(&[]).value, 1.0);
        assert_eq!(Score::of(&[check(Status::Fail, false, 0.0)]).value, 1.0);
    }

    #[test]
    fn a_failing_critical_check_caps_the_score_at_unhealthy() {
        let mut checks: Vec<_> = (0..99).map(|_| check(Status::Pass, true, 1.0)).collect();
        checks.push(check(Status::Fail, true, 1.0));
        let score = Score::of(&checks);
        assert_eq!((score.value, score.band), (0.69, Band::Unhealthy));
        // Not when it decides no verdict: a dependency, or in no group.
        let mut dependency = (*check(Status::Fail, true, 1.0)).clone();
        dependency.dependency = true;
        checks[99] = Arc::new(dependency.clone());
        assert_eq!(Score::of(&checks).band, Band::Healthy);
        dependency.dependency = false;
        dependency.groups = Groups::default();
        checks[99] = Arc::new(dependency);
        assert_eq!(Score::of(&checks).band, Band::Healthy);
    }
}
