//! Every gauge is read from the published snapshot when metrics are
//! collected: nothing is stored twice, and a removed check leaves every
//! gauge at once.

use std::time::UNIX_EPOCH;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use crate::health::{CheckView, LastRun, Published, Status};

const STATUSES: [Status; 4] = [Status::Starting, Status::Pass, Status::Warn, Status::Fail];

fn check_labels(check: &CheckView) -> [KeyValue; 2] {
    [
        KeyValue::new("check", check.name.clone()),
        KeyValue::new("type", check.kind),
    ]
}

fn flag(value: bool) -> u64 {
    u64::from(value)
}

/// Which labels a per-check gauge carries.
#[derive(Clone, Copy)]
enum Labels {
    /// `check` and `type`.
    CheckAndType,
    /// `check` alone (what only one type reports).
    Check,
}

impl Labels {
    /// Calls `observe` with `c`'s labels (on the stack: a scrape observes
    /// every check of every gauge).
    fn with(self, c: &CheckView, observe: impl FnOnce(&[KeyValue])) {
        match self {
            Labels::CheckAndType => observe(&check_labels(c)),
            Labels::Check => observe(&[KeyValue::new("check", c.name.clone())]),
        }
    }
}

/// A gauge with one series per check that has a value: its name,
/// description, labels and value.
type PerCheck<T> = (
    &'static str,
    &'static str,
    Labels,
    fn(&CheckView) -> Option<T>,
);

/// The per-check gauges of whole numbers.
const PER_CHECK_U64: [PerCheck<u64>; 3] = [
    (
        "healthgate.check.up",
        "1 when the check's status is pass or warn, 0 otherwise.",
        Labels::CheckAndType,
        |c| Some(flag(matches!(c.status, Status::Pass | Status::Warn))),
    ),
    (
        "healthgate.check.consecutive_failures",
        "Consecutive failed runs counted toward failure_threshold.",
        Labels::CheckAndType,
        |c| Some(u64::from(c.consecutive_failures)),
    ),
    (
        "healthgate.http.status_code",
        "The HTTP status of the last response, per http check.",
        Labels::Check,
        |c| c.last().and_then(LastRun::http_status).map(u64::from),
    ),
];

/// The per-check gauges of times, in seconds since the Unix epoch.
const PER_CHECK_TIME: [PerCheck<std::time::SystemTime>; 2] = [
    (
        "healthgate.check.last_change",
        "When the check's status last changed (or the check was created), in seconds since the Unix epoch.",
        Labels::CheckAndType,
        |c| Some(c.since),
    ),
    (
        "healthgate.tls.cert.not_after",
        "Earliest expiry in the certificate chain an https check was last presented, in seconds since the Unix epoch.",
        Labels::Check,
        |c| c.cert_not_after,
    ),
];

/// Seconds since the Unix epoch (0 before it).
fn epoch_seconds(at: std::time::SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Every gauge is an observable read from the snapshot: removed checks vanish
/// from them at once, and nothing is stored twice.
pub(super) fn register(meter: &Meter, published: Published) {
    for (name, description, labels, value) in PER_CHECK_U64 {
        let p = published.clone();
        meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_callback(move |o| {
                for c in &p.load().checks {
                    if let Some(v) = value(c) {
                        labels.with(c, |l| o.observe(v, l));
                    }
                }
            })
            .build();
    }
    for (name, description, labels, value) in PER_CHECK_TIME {
        let p = published.clone();
        meter
            .f64_observable_gauge(name)
            .with_unit("s")
            .with_description(description)
            .with_callback(move |o| {
                for c in &p.load().checks {
                    if let Some(at) = value(c) {
                        labels.with(c, |l| o.observe(epoch_seconds(at), l));
                    }
                }
            })
            .build();
    }
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.check.status")
        .with_description("The check's status, one-hot: starting, pass, warn, fail.")
        .with_callback(move |o| {
            for c in &p.load().checks {
                let [check, kind] = check_labels(c);
                for status in STATUSES {
                    let labels = [
                        check.clone(),
                        kind.clone(),
                        KeyValue::new("status", status.as_str()),
                    ];
                    o.observe(flag(c.status == status), &labels);
                }
            }
        })
        .build();
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.check.critical")
        .with_description(
            "1 for each group a check takes part in, with whether it is critical as the value.",
        )
        .with_callback(move |o| {
            for c in &p.load().checks {
                let [check, kind] = check_labels(c);
                for group in c.groups.iter() {
                    let labels = [
                        check.clone(),
                        kind.clone(),
                        KeyValue::new("group", group.as_str()),
                    ];
                    o.observe(flag(c.critical), &labels);
                }
            }
        })
        .build();
    for (name, description, pick) in [
        (
            "healthgate.ready",
            "1 when /readyz answers 200.",
            (|s: &crate::health::Snapshot| s.readiness.ok) as fn(&_) -> bool,
        ),
        ("healthgate.live", "1 when /livez answers 200.", |s| {
            s.liveness.ok
        }),
        (
            "healthgate.started",
            "1 once /startupz answers 200 (latched).",
            |s| s.startup.ok,
        ),
        (
            "healthgate.draining",
            "1 while readiness is failed on purpose: a shutdown's drain, or POST /admin/drain.",
            |s| s.drain.is_some(),
        ),
    ] {
        let p = published.clone();
        meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_callback(move |o| o.observe(flag(pick(&p.load())), &[]))
            .build();
    }
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.check.maintenance")
        .with_description(
            "1 while an open maintenance window covers the check (no series otherwise): alert rules leave such checks alone.",
        )
        .with_callback(move |o| {
            let snapshot = p.load();
            if snapshot.maintenance.is_empty() {
                return;
            }
            for c in &snapshot.checks {
                if snapshot.maintenance.iter().any(|w| w.covers(&c.name)) {
                    o.observe(1, &check_labels(c));
                }
            }
        })
        .build();
    let p = published.clone();
    meter
        .f64_observable_gauge("healthgate.health.score")
        .with_description(
            "The health score, 0 to 1: healthy >= 0.9, degraded >= 0.7, unhealthy >= 0.4, critical below.",
        )
        .with_callback(move |o| o.observe(p.load().score.value, &[]))
        .build();
    let p = published.clone();
    meter
        .u64_observable_counter("healthgate.config.reloads")
        .with_description("Config reloads, by result (success: applied; failure: rejected, the previous config kept).")
        .with_callback(move |o| {
            let reloads = &p.load().reloads;
            o.observe(reloads.applied, &[KeyValue::new("result", "success")]);
            o.observe(reloads.failed, &[KeyValue::new("result", "failure")]);
        })
        .build();
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.config.last_reload_successful")
        .with_description("1 when the last config load (at start or by reload) succeeded.")
        .with_callback(move |o| {
            let ok = p.load().reloads.last.as_ref().is_none_or(|l| l.successful);
            o.observe(flag(ok), &[]);
        })
        .build();
    let p = published;
    meter
        .f64_observable_gauge("healthgate.config.last_reload_success_time")
        .with_unit("s")
        .with_description(
            "When a config was last loaded successfully, in seconds since the Unix epoch.",
        )
        .with_callback(move |o| {
            if let Some(at) = p.load().reloads.last_success_at {
                o.observe(epoch_seconds(at), &[]);
            }
        })
        .build();
    meter
        .f64_observable_counter("healthgate.process.cpu.time")
        .with_unit("s")
        .with_description("CPU seconds (user and system) the healthgate process has used.")
        .with_callback(|o| {
            if let Some(seconds) = crate::telemetry::process::cpu_seconds() {
                o.observe(seconds, &[]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("healthgate.process.memory.rss")
        .with_unit("By")
        .with_description("Resident memory of the healthgate process.")
        .with_callback(|o| {
            if let Some(bytes) = crate::telemetry::process::resident_bytes() {
                o.observe(bytes, &[]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("healthgate.build.info")
        .with_description("Always 1; the version of the running healthgate.")
        .with_callback(|o| o.observe(1, &[KeyValue::new("version", env!("CARGO_PKG_VERSION"))]))
        .build();
}
