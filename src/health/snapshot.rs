//! The immutable view endpoints and exporters read: published whole after
//! every batch of results, read without locks.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::watch;

use super::Status;
use super::{Group, Groups};
use crate::probe::Category;

/// Where the latest snapshot lives: one writer (the engine), many lock-free
/// readers, and a change signal for those that stream (gRPC Watch).
#[derive(Clone)]
pub struct Published(Arc<Cell>);

struct Cell {
    current: ArcSwap<Snapshot>,
    changes: watch::Sender<u64>,
}

impl Published {
    /// A cell holding `first`.
    pub fn new(first: Snapshot) -> Self {
        Self(Arc::new(Cell {
            current: ArcSwap::from_pointee(first),
            changes: watch::Sender::new(0),
        }))
    }

    /// The latest snapshot (lock-free).
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.0.current.load()
    }

    /// The latest snapshot, to keep.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.0.current.load_full()
    }

    /// Publishes `next` and wakes every subscriber.
    pub fn store(&self, next: Snapshot) {
        self.0.current.store(Arc::new(next));
        self.0.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes after this call wake the receiver (several may coalesce into one wake-up).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.changes.subscribe()
    }
}

/// Everything the endpoints need, computed once per publish.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every check, in config order.
    pub checks: Vec<Arc<CheckView>>,
    /// Whether every critical startup check has passed once (latched).
    pub started: bool,
    /// `/livez`
    pub liveness: Verdict,
    /// `/readyz`
    pub readiness: Verdict,
    /// `/startupz`
    pub startup: Verdict,
    /// The health score ([`super::score`]).
    pub score: super::Score,
    /// `/health`'s overall status: `fail` when live or ready fails, `warn`
    /// when any check warns or is still starting, else `pass`.
    pub overall: Status,
    /// What the config reloads did.
    pub reloads: Reloads,
    /// Set while readiness is failed on purpose (shutdown or maintenance).
    pub drain: Option<Drain>,
    /// The maintenance windows open now.
    pub maintenance: Arc<[Open]>,
    /// The `/health` body, rendered by the first request that needs it and
    /// then served to every other request for this snapshot.
    pub health_body: std::sync::OnceLock<Bytes>,
}

/// A maintenance window open now: failures are recorded, notifications
/// and actions about what it covers are held until it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The window's name.
    pub name: Arc<str>,
    /// When it closes.
    pub until: SystemTime,
    /// The checks it covers; `None`: every check.
    pub checks: Option<Arc<[Arc<str>]>>,
    /// Whether it drains the instance.
    pub drain: bool,
}

impl Open {
    /// Whether it covers `check`.
    pub fn covers(&self, check: &str) -> bool {
        self.checks
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| &**n == check))
    }
}

/// Readiness failed on purpose: a shutdown in progress, or an operator's
/// drain or maintenance (`POST /admin/drain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    /// Why, as the endpoints show it.
    pub reason: String,
    /// What the agent-check says: `drain` or `maint`.
    pub mode: DrainMode,
    /// When it began.
    pub since: SystemTime,
    /// Started by SIGTERM/SIGINT: cannot be undone.
    pub shutdown: bool,
}

/// How hard traffic is turned away (HAProxy's two states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainMode {
    /// No new traffic; existing sessions may finish.
    Drain,
    /// Out of rotation entirely.
    Maintenance,
}

impl DrainMode {
    /// As HAProxy and the admin API spell it: `drain` or `maint`.
    pub fn as_str(self) -> &'static str {
        match self {
            DrainMode::Drain => "drain",
            DrainMode::Maintenance => "maint",
        }
    }
}

/// The record of config reloads since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloads {
    /// Reloads applied (including those that changed nothing).
    pub applied: u64,
    /// Reloads rejected; the previous config kept running.
    pub failed: u64,
    /// The latest attempt.
    pub last: Option<ReloadRecord>,
    /// When a config was last loaded successfully (at start, or by a reload).
    pub last_success_at: Option<SystemTime>,
}

/// One reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRecord {
    /// When it happened.
    pub at: SystemTime,
    /// Whether the new config was applied.
    pub successful: bool,
    /// What changed, or why it was rejected.
    pub message: String,
}

/// One endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 200 when true, 503 otherwise.
    pub ok: bool,
    /// `ok`, or a one-line reason.
    pub reason: Bytes,
}

/// One check as the endpoints show it.
#[derive(Debug, Clone)]
pub struct CheckView {
    /// Name.
    pub name: Arc<str>,
    /// Probe type as written (`http`, `tcp`, `grpc`, ...).
    pub kind: &'static str,
    /// Verdicts it takes part in.
    pub groups: Groups,
    /// Whether it is critical.
    pub critical: bool,
    /// A shared dependency: its failure does not fail readiness or liveness.
    pub dependency: bool,
    /// Description, tags and weight (shared with the config).
    pub meta: Arc<crate::config::Meta>,
    /// Current status.
    pub status: Status,
    /// When the status last changed (or the check was created).
    pub since: SystemTime,
    /// Consecutive successes.
    pub consecutive_successes: u32,
    /// Consecutive counted failures.
    pub consecutive_failures: u32,
    /// Whether it has ever passed (for the startup latch).
    pub ever_passed: bool,
    /// Added by a reload and still without a verdict: holds back nothing.
    pub provisional: bool,
    /// The earliest certificate expiry last seen (https checks); kept when a
    /// later run fails before the handshake.
    pub cert_not_after: Option<SystemTime>,
    /// The latest runs, oldest first, at most [`RECENT_RUNS`] (for the admin
    /// API), held inline: one allocation per check, not one per run.
    pub recent: Arc<[LastRun]>,
}

/// How many runs each check keeps for `/api/checks/{name}`.
pub const RECENT_RUNS: usize = 10;

impl CheckView {
    /// Whether the check takes part in `group`.
    pub fn in_group(&self, group: Group) -> bool {
        self.groups.contains(group)
    }

    /// The latest run, if any.
    pub fn last(&self) -> Option<&LastRun> {
        self.recent.last()
    }
}

/// One run of a check, as the history and the APIs show it. Ten of these
/// per check, copied at every result, are the largest per-check memory:
/// times are kept in microseconds, 56 bytes in all (80 with `SystemTime`,
/// `Duration` and `Option<u16>`).
#[derive(Debug, Clone)]
pub struct LastRun {
    /// When it finished, in microseconds since the Unix epoch ([`LastRun::at`]).
    pub(super) finished: u64,
    /// How long it took, in microseconds, saturating at ~71 minutes ([`LastRun::duration`]).
    pub(super) micros: u32,
    /// The HTTP status of the response ([`LastRun::http_status`]).
    pub(super) status: Option<NonZeroU16>,
    /// `None` when it passed.
    pub failure: Option<Category>,
    /// Set when it passed with a warning.
    pub warning: Option<Category>,
    /// The probe's message (shared with the previous run when the same).
    pub message: Arc<str>,
    /// How long each timed phase took.
    pub phases: Phases,
}

impl LastRun {
    /// When it finished (to the microsecond).
    pub fn at(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_micros(self.finished)
    }

    /// How long it took (to the microsecond).
    pub fn duration(&self) -> Duration {
        Duration::from_micros(u64::from(self.micros))
    }

    /// The HTTP status of the response, for http checks that got one.
    pub fn http_status(&self) -> Option<u16> {
        self.status.map(NonZeroU16::get)
    }

    /// `at` in microseconds since the Unix epoch (0 before it).
    pub(super) fn micros_since_epoch(at: SystemTime) -> u64 {
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// `duration` in microseconds, saturating.
    pub(super) fn saturating_micros(duration: Duration) -> u32 {
        u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
    }
}

/// The timed phases of one run, kept inline: ten runs per check for
/// thousands of checks make the history the largest per-check memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Microseconds per phase, in [`Phases::NAMES`] order (saturating at ~71 minutes).
    micros: [u32; 5],
    /// Bit `i` set when phase `i` was timed.
    present: u8,
}

impl Phases {
    /// The phases a run can time, in order.
    pub const NAMES: [&'static str; 5] = ["dns", "connect", "tls", "first_byte", "body"];

    /// Keeps the phases of `timed` whose names are known (a repeated phase adds up).
    pub fn from_timed<'a>(timed: impl IntoIterator<Item = (&'a str, Duration)>) -> Self {
        let mut phases = Self::default();
        for (name, duration) in timed {
            if let Some(i) = Self::NAMES.iter().position(|n| *n == name) {
                let micros = LastRun::saturating_micros(duration);
                phases.micros[i] = phases.micros[i].saturating_add(micros);
                phases.present |= 1 << i;
            }
        }
        phases
    }

    /// Whether no phase was timed.
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// Each timed phase and how long it took, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        Self::NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.present & (1 << i) != 0)
            .map(|(i, name)| (*name, Duration::from_micros(u64::from(self.micros[i]))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_keep_known_names_in_order_inline() {
        let ms = Duration::from_millis;
        let phases = Phases::from_timed([
            ("connect", ms(2)),
            ("dns", ms(1)),
            ("bogus", ms(9)),
            ("body", Duration::from_secs(10_000)),
        ]);
        let kept: Vec<_> = phases.iter().collect();
        assert_eq!(
            kept,
            [
                ("dns", ms(1)),
                ("connect", ms(2)),
                ("body", Duration::from_micros(u64::from(u32::MAX)))
            ]
        );
        assert!(Phases::from_timed([]).is_empty());
        assert!(std::mem::size_of::<Phases>() <= 24);
    }

    #[test]
    fn a_run_is_kept_in_56_bytes_to_the_microsecond() {
        assert!(std::mem::size_of::<LastRun>() <= 56);
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_796_000_000, 123_456_789);
        let run = LastRun {
            finished: LastRun::micros_since_epoch(at),
            micros: LastRun::saturating_micros(Duration::from_nanos(1_500_999)),
            status: NonZeroU16::new(503),
            failure: None,
            warning: None,
            message: Arc::from("status 503"),
            phases: Phases::default(),
        };
        assert_eq!(
            run.at(),
            SystemTime::UNIX_EPOCH + Duration::new(1_796_000_000, 123_456_000)
        );
        assert_eq!(run.duration(), Duration::from_micros(1_500));
        assert_eq!(run.http_status(), Some(503));
        let hour = Duration::from_secs(3600);
        assert_eq!(LastRun::saturating_micros(2 * hour), u32::MAX, "saturates");
        assert_eq!(
            LastRun::micros_since_epoch(SystemTime::UNIX_EPOCH - hour),
            0
        );
    }
}
