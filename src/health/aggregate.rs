//! From check views to the liveness, readiness and startup verdicts.
//!
//! - startup: 200 once every critical startup check has passed once (latched
//!   by the caller); with none, from the start.
//! - liveness: 200 until started, whatever the liveness checks say (as
//!   Kubernetes holds liveness back during startup); then 503 when a critical
//!   liveness check is `fail`.
//! - readiness: 200 when started and no critical readiness check is `fail`
//!   or `starting` (`warn` serves: degraded, not down). A failing
//!   `dependency = true` check is named in the 200's body instead.
//! - a `dependency = true` check never fails liveness or readiness; it still
//!   gates startup (a rollout should not proceed while a dependency is down).

use std::sync::Arc;

use bytes::Bytes;

use super::Group;
use super::Status;
use super::snapshot::{CheckView, Drain, Verdict};

/// How many check names a one-line reason lists before "and N more".
const NAMES_IN_REASON: usize = 5;

/// Whether no startup check holds startup back (see [`blocks`]).
pub fn startup_done(checks: &[Arc<CheckView>]) -> bool {
    !checks.iter().any(|c| blocks(c, Group::Startup))
}

/// `/startupz`
pub fn startup(checks: &[Arc<CheckView>], started: bool) -> Verdict {
    if started {
        return ok();
    }
    not_ok(format!(
        "not started: waiting for {}",
        blocking(checks, Group::Startup)
    ))
}

/// `/livez`
pub fn liveness(checks: &[Arc<CheckView>], started: bool) -> Verdict {
    if !started {
        return ok();
    }
    let failing = blocking(checks, Group::Liveness);
    if failing.is_empty() {
        ok()
    } else {
        not_ok(format!("not live: {failing}"))
    }
}

/// `/readyz`
pub fn readiness(checks: &[Arc<CheckView>], started: bool) -> Verdict {
    if !started {
        let waiting = blocking(checks, Group::Startup);
        return not_ok(format!("not ready: not started, waiting for {waiting}"));
    }
    let blockers = blocking(checks, Group::Readiness);
    if !blockers.is_empty() {
        return not_ok(format!("not ready: {blockers}"));
    }
    let ignored = names(
        checks
            .iter()
            .filter(|c| c.dependency && c.in_group(Group::Readiness) && c.status == Status::Fail),
    );
    if ignored.is_empty() {
        ok()
    } else {
        Verdict {
            ok: true,
            reason: Bytes::from(format!("ok (dependency failing, not counted: {ignored})")),
        }
    }
}

/// `/readyz` while draining, whatever the checks say.
pub fn draining(drain: &Drain) -> Verdict {
    not_ok(format!("draining: {}", drain.reason))
}

/// `/health`'s overall status.
pub fn overall(checks: &[Arc<CheckView>], live: &Verdict, ready: &Verdict) -> Status {
    if !live.ok || !ready.ok {
        Status::Fail
    } else if checks
        .iter()
        .any(|c| matches!(c.status, Status::Warn | Status::Starting | Status::Fail))
    {
        Status::Warn
    } else {
        Status::Pass
    }
}

/// Whether `check` holds back `group`'s verdict: a critical member that has
/// not passed once (startup), is `fail` or `starting` (readiness) or is `fail` (liveness).
/// A check added by a reload holds back nothing until its first verdict.
pub fn blocks(check: &CheckView, group: Group) -> bool {
    check.critical
        && check.in_group(group)
        && !check.provisional
        && match group {
            Group::Startup => !check.ever_passed,
            Group::Readiness => {
                check.status == Status::Starting
                    || (check.status == Status::Fail && !check.dependency)
            }
            Group::Liveness => check.status == Status::Fail && !check.dependency,
        }
}

/// "api fail, db starting and 3 more": the checks holding back `group`.
fn blocking(checks: &[Arc<CheckView>], group: Group) -> String {
    names(checks.iter().filter(|c| blocks(c, group)))
}

/// "cache warn, slow starting": every check not passing, critical or not.
pub fn not_passing(checks: &[Arc<CheckView>]) -> String {
    names(checks.iter().filter(|c| c.status != Status::Pass))
}

fn names<'a>(checks: impl Iterator<Item = &'a Arc<CheckView>>) -> String {
    use std::fmt::Write;
    let mut line = String::new();
    let mut count = 0;
    for c in checks {
        if count < NAMES_IN_REASON {
            let sep = if count == 0 { "" } else { ", " };
            let _ = write!(line, "{sep}{} {}", c.name, c.status);
        }
        count += 1;
    }
    // Only the first few are written: 10,000 starting checks cost one
    // count, not 10,000 strings, at every snapshot until they have verdicts.
    if count > NAMES_IN_REASON {
        let _ = write!(line, " and {} more", count - NAMES_IN_REASON);
    }
    line
}

fn ok() -> Verdict {
    Verdict {
        ok: true,
        reason: Bytes::from_static(b"ok"),
    }
}

fn not_ok(reason: String) -> Verdict {
    Verdict {
        ok: false,
        reason: Bytes::from(reason),
    }
}
