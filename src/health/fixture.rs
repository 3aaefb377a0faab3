//! Snapshots built in-process for the tests of what reads them (routes,
//! admin JSON, agent lines): real checks (typed builders), a real `Health`
//! and real outcomes recorded into it, no listener.

use std::time::SystemTime;

use tokio::time::Instant;

use super::{Group, Health, Slot, Snapshot};
use crate::config::{Change, CheckConfig, TypeSection};
use crate::probe::tcp::TcpConfig;
use crate::probe::{Category, Outcome};

/// One check of the fixture: its name, its groups, whether it is critical,
/// and what its one run gave (`None`: not run yet).
pub struct Fixture<'a> {
    /// Check name.
    pub name: &'a str,
    /// Verdicts it takes part in.
    pub groups: &'a [Group],
    /// Whether its failure fails its verdicts.
    pub critical: bool,
    /// The outcome recorded, if any.
    pub ran: Option<Outcome>,
}

/// A failing outcome, as a refused connection.
pub fn refused() -> Option<Outcome> {
    Some(Outcome::fail(
        Category::ConnectRefused,
        "connection refused",
    ))
}

/// A passing outcome.
pub fn passed() -> Option<Outcome> {
    Some(Outcome::pass("connected"))
}

/// The snapshot of `checks` (failure and success thresholds of 1), each
/// having run as given.
pub fn snapshot(checks: &[Fixture<'_>]) -> Snapshot {
    let slots: Vec<Slot> = checks
        .iter()
        .map(|c| {
            let mut config =
                CheckConfig::new(c.name, TypeSection::Tcp(TcpConfig::connect("127.0.0.1:9")))
                    .unwrap_or_else(|e| panic!("fixture {}: {e}", c.name));
            config.common.groups = c.groups.to_vec();
            config.common.critical = c.critical;
            config.schedule.failure_threshold = crate::config::bounded::Threshold::new(1).ok();
            let check = config
                .resolve()
                .unwrap_or_else(|p| panic!("fixture {}: {p:?}", c.name));
            Slot {
                check,
                generation: 1,
                change: Change::Added,
            }
        })
        .collect();
    let now = Instant::now();
    let mut health = Health::new(&slots, now);
    for c in checks {
        if let Some(outcome) = &c.ran {
            health.record(c.name, 1, outcome, now, SystemTime::now());
        }
    }
    health.snapshot()
}

/// A check's view with `status`, in the readiness group, as the
/// aggregate and the score read it.
pub fn view(name: &str, status: super::Status, critical: bool) -> super::CheckView {
    super::CheckView {
        name: name.into(),
        kind: "tcp",
        groups: [Group::Readiness].into_iter().collect(),
        critical,
        dependency: false,
        meta: std::sync::Arc::default(),
        status,
        since: SystemTime::now(),
        consecutive_successes: 0,
        consecutive_failures: 0,
        ever_passed: status == super::Status::Pass,
        provisional: false,
        cert_not_after: None,
        recent: std::sync::Arc::new([]),
    }
}
