//! From the parsed tree to a [`Config`]: every key checked, every problem
//! collected (not just the first), defaults applied.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use regex::Regex;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::de::DeserializeOwned;
use serde_aux::serde_introspection::serde_introspect;
use serde_json::{Map, Value};

use super::Problem;
use super::model::{
    CheckCommon, CommandLine, DefaultsSection, DiskSection, DnsProtocol, DnsSection, ExecSection,
    ExitCodesKind, Groups, GrpcSection, HttpSection, LatencySection, MemorySection, PushSection,
    ReloadSection, ServerSection, StatusPattern, TcpSection, TelemetrySection, TlsProbeSection,
    TlsSection,
};
use super::resolved::*;

const TOP_KEYS: &[&str] = &["server", "reload", "telemetry", "defaults", "checks"];
const KINDS: &[&str] = &[
    "http", "tcp", "exec", "script", "grpc", "dns", "tls", "disk", "memory", "push",
];
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
const MAX_NAME_LEN: usize = 63;
/// Longest k-of-n window, in runs (one bit each).
const MAX_WINDOW: u32 = 64;
/// Longest interval, timeout or delay: beyond a year a schedule is a typo
/// (and the scheduler's clock arithmetic stays far from overflowing).
const MAX_SCHEDULE: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);
const TOO_LONG: &str = "must be at most 365d";
/// Most consecutive runs a threshold may ask for.
const MAX_THRESHOLD: u32 = 10_000;
const THRESHOLD_TOO_HIGH: &str = "must be at most 10000";
/// Longest a drain may last (`server.drain.min`, `.max`): past it, a
/// SIGTERM would look to a supervisor like a process that never exits.
const MAX_DRAIN: std::time::Duration = std::time::Duration::from_secs(3600);
/// Longest in-flight requests are waited for at shutdown.
const MAX_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(600);
/// Most failing readiness answers a drain may wait for.
const MAX_OBSERVED_PROBES: u32 = 10_000;
/// Longest time between two polls of the config file.
const MAX_POLL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Longest OTLP export interval and timeout.
const MAX_EXPORT: std::time::Duration = std::time::Duration::from_secs(3600);
/// Bound on re-parses of one table while collecting its problems.
const MAX_PARSE_RETRIES: usize = 32;

/// Validates a parsed config tree, returning every problem found.
pub fn validate(raw: Value) -> Result<Config, Vec<Problem>> {
    let mut v = Validator::default();
    let Value::Object(root) = raw else {
        v.push(None, "(root)", "expected a table of settings".into());
        return Err(v.into_problems());
    };
    v.unknown_keys(None, "", &root, TOP_KEYS);
    let server: Option<ServerSection> = v.section(&root, "server");
    let reload: Option<ReloadSection> = v.section(&root, "reload");
    let telemetry: Option<TelemetrySection> = v.section(&root, "telemetry");
    let defaults: Option<DefaultsSection> = v.section(&root, "defaults");
    if let Some(d) = &defaults {
        v.defaults(d);
    }
    let mut checks = Vec::new();
    match root.get("checks") {
        None => {}
        Some(Value::Array(items)) => {
            // Sized once: growing by doubling would hold the old and the new
            // buffer at once (~20 MB at the 8,192 -> 16,384 step of a 10,000-check config).
            checks.reserve_exact(items.len());
            let defaults = defaults.clone().unwrap_or_default();
            for (index, item) in items.iter().enumerate() {
                if let Some(check) = v.check(index, item, &defaults) {
                    checks.push(check);
                }
            }
        }
        Some(_) => v.push(
            None,
            "checks",
            "expected a list of [[checks]] tables".into(),
        ),
    }
    if let Some(Value::Array(items)) = root.get("checks") {
        v.duplicates(items);
    }
    let no_checks = match root.get("checks") {
        None => true,
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    };
    if no_checks && !server.as_ref().is_some_and(|s| s.allow_no_checks) {
        v.push(
            None,
            "checks",
            "no checks: every verdict would be 200. A file cut short or emptied by a \
             failed write looks like this; set server.allow_no_checks = true if it is meant"
                .into(),
        );
    }
    if let Some(r) = &reload {
        if r.debounce > std::time::Duration::from_secs(10) {
            v.push(None, "reload.debounce", "must be at most 10s".into());
        }
        if r.poll_interval > MAX_POLL {
            v.push(
                None,
                "reload.poll_interval",
                "must be at most 1d (0s turns polling off)".into(),
            );
        }
    }
    if let Some(t) = &telemetry {
        v.otlp(&t.otlp);
        if !(0.0..=1.0).contains(&t.traces.sample_ratio) {
            v.push(
                None,
                "telemetry.traces.sample_ratio",
                "must be between 0.0 and 1.0".into(),
            );
        }
    }
    let admin_token = server.as_ref().and_then(|s| v.server(s));
    match (server, reload, telemetry, defaults) {
        (Some(server), Some(reload), Some(telemetry), Some(_)) if v.problems.is_empty() => {
            Ok(Config {
                server: Server {
                    listen: server.listen,
                    admin_listen: server.admin_listen,
                    grpc_listen: server.grpc_listen,
                    agent_listen: server.agent_listen,
                    shutdown_timeout: server.shutdown_timeout,
                    drain: server.drain,
                    tls: server.tls,
                    admin_tls: server.admin.tls,
                    admin_token,
                    agent_weight_on_warn: server.agent.weight_on_warn,
                },
                reload,
                telemetry,
                checks,
            })
        }
        _ => Err(v.into_problems()),
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
    /// Problems past [`MAX_LISTED`], counted only.
    unlisted: usize,
}

/// Most problems listed: a file of a million wrong keys gets a bounded answer.
const MAX_LISTED: usize = 100;

impl Validator {
    /// Every problem listed, and a last one counting those that were not.
    fn into_problems(mut self) -> Vec<Problem> {
        if self.unlisted > 0 {
            self.problems.push(Problem {
                check: None,
                key: "(more)".into(),
                message: format!("{} more problem(s) not listed", self.unlisted),
            });
        }
        self.problems
    }

    fn push(&mut self, check: Option<&str>, key: &str, message: String) {
        if self.problems.len() >= MAX_LISTED {
            self.unlisted += 1;
            return;
        }
        // Keys and values come from the file: a control character in one
        // (an ANSI escape) must not reach a terminal or a log line raw.
        self.problems.push(Problem {
            check: check.map(super::escape_controls),
            key: super::escape_controls(key),
            message: super::escape_controls(&message),
        });
    }

    /// Reports every key of `table` not in `allowed`, with the nearest valid key.
    fn unknown_keys(
        &mut self,
        check: Option<&str>,
        prefix: &str,
        table: &Map<String, Value>,
        allowed: &[&str],
    ) {
        for key in table.keys().filter(|k| !allowed.contains(&k.as_str())) {
            let message = match nearest(key, allowed.iter().copied()) {
                Some(near) => format!("unknown key `{key}`; did you mean `{near}`?"),
                None => format!("unknown key `{key}`; expected one of {}", quoted(allowed)),
            };
            self.push(check, &join(prefix, key), message);
        }
    }

    /// Deserializes `root[name]` (or an empty table) into a section type.
    fn section<T: DeserializeOwned>(&mut self, root: &Map<String, Value>, name: &str) -> Option<T> {
        let empty = Value::Object(Map::new());
        let value = root.get(name).unwrap_or(&empty);
        self.parse(None, name, value)
    }

    /// Deserializes `value`, turning each error into a problem naming its key.
    /// serde stops at the first error, so the offending key is removed and the
    /// rest parsed again, until it parses or nothing more can be removed: one
    /// run reports every bad value.
    fn parse<T: DeserializeOwned>(
        &mut self,
        check: Option<&str>,
        prefix: &str,
        value: &Value,
    ) -> Option<T> {
        let mut value = value.clone();
        for _ in 0..MAX_PARSE_RETRIES {
            match serde_path_to_error::deserialize::<_, T>(&value) {
                // With problems already recorded the config is rejected anyway,
                // but the rest of the table still gets its semantic checks.
                Ok(t) => return Some(t),
                Err(e) => {
                    let path = e.path().clone();
                    let shown = path.to_string();
                    let shown = if shown == "." { String::new() } else { shown };
                    let (key, message) =
                        explain(&join(prefix, &shown), &e.into_inner().to_string());
                    self.push(check, &key, message);
                    if !remove(&mut value, &path) {
                        return None;
                    }
                }
            }
        }
        None
    }

    fn defaults(&mut self, d: &DefaultsSection) {
        let rules = [
            (d.interval.is_zero(), "interval", "must be more than 0s"),
            (d.timeout.is_zero(), "timeout", "must be more than 0s"),
            (d.interval > MAX_SCHEDULE, "interval", TOO_LONG),
            (d.timeout > MAX_SCHEDULE, "timeout", TOO_LONG),
            (d.initial_delay > MAX_SCHEDULE, "initial_delay", TOO_LONG),
            (d.start_period > MAX_SCHEDULE, "start_period", TOO_LONG),
            (
                d.success_threshold > MAX_THRESHOLD,
                "success_threshold",
                THRESHOLD_TOO_HIGH,
            ),
            (
                d.failure_threshold > MAX_THRESHOLD,
                "failure_threshold",
                THRESHOLD_TOO_HIGH,
            ),
            (
                d.success_threshold == 0,
                "success_threshold",
                "must be at least 1",
            ),
            (
                d.failure_threshold == 0,
                "failure_threshold",
                "must be at least 1",
            ),
        ];
        self.rules(None, "defaults.", &rules);
        self.cadence(
            None,
            "defaults.",
            d.start_interval,
            d.failing_interval,
            d.failure_window.map(|w| (w.failures, w.of)),
            d.success_window.map(|w| (w.successes, w.of)),
        );
    }

    /// Rules on the adaptive intervals and the k-of-n windows.
    fn cadence(
        &mut self,
        check: Option<&str>,
        prefix: &str,
        start_interval: Option<std::time::Duration>,
        failing_interval: Option<std::time::Duration>,
        failure_window: Option<(u32, u32)>,
        success_window: Option<(u32, u32)>,
    ) {
        for (key, d) in [
            ("start_interval", start_interval),
            ("failing_interval", failing_interval),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                self.push(
                    check,
                    &format!("{prefix}{key}"),
                    "must be more than 0s".into(),
                );
            }
            if d.is_some_and(|d| d > MAX_SCHEDULE) {
                self.push(check, &format!("{prefix}{key}"), TOO_LONG.into());
            }
        }
        for (key, field, window) in [
            ("failure_window", "failures", failure_window),
            ("success_window", "successes", success_window),
        ] {
            if let Some((count, of)) = window
                && !(1 <= count && count <= of && of <= MAX_WINDOW)
            {
                self.push(
                    check,
                    &format!("{prefix}{key}"),
                    format!(
                        "needs 1 <= {field} <= of <= {MAX_WINDOW}; got {field} = {count}, of = {of}"
                    ),
                );
            }
        }
    }

    /// Takes `expect.max_duration` and `expect.slow` out of a check's table
    /// (dropping an `expect` left empty). `None` when they are invalid;
    /// `Some(None)` when not set.
    fn latency(
        &mut self,
        check: Option<&str>,
        table: &mut Map<String, Value>,
    ) -> Option<Option<MaxDuration>> {
        let Some(Value::Object(expect)) = table.get_mut("expect") else {
            return Some(None);
        };
        let mut taken = Map::new();
        for key in ["max_duration", "slow"] {
            if let Some(value) = expect.remove(key) {
                taken.insert(key.to_owned(), value);
            }
        }
        if expect.is_empty() {
            table.remove("expect");
        }
        if taken.is_empty() {
            return Some(None);
        }
        let section: LatencySection = self.parse(check, "expect", &Value::Object(taken))?;
        match section.max_duration {
            Some(limit) if limit.is_zero() => {
                self.push(check, "expect.max_duration", "must be more than 0s".into());
                None
            }
            Some(limit) if limit > MAX_SCHEDULE => {
                self.push(check, "expect.max_duration", TOO_LONG.into());
                None
            }
            Some(limit) => Some(Some(MaxDuration {
                limit,
                slow: section.slow,
            })),
            None => {
                self.push(
                    check,
                    "expect.slow",
                    "has no effect without `expect.max_duration`".into(),
                );
                None
            }
        }
    }

    /// Rules on what a check sets itself; inherited defaults are checked once, under `defaults`.
    fn overrides(&mut self, check: Option<&str>, c: &CheckCommon) {
        let zero = |d: Option<std::time::Duration>| d.is_some_and(|d| d.is_zero());
        let long = |d: Option<std::time::Duration>| d.is_some_and(|d| d > MAX_SCHEDULE);
        let rules = [
            (zero(c.interval), "interval", "must be more than 0s"),
            (zero(c.timeout), "timeout", "must be more than 0s"),
            (long(c.interval), "interval", TOO_LONG),
            (long(c.timeout), "timeout", TOO_LONG),
            (long(c.initial_delay), "initial_delay", TOO_LONG),
            (long(c.start_period), "start_period", TOO_LONG),
            (
                c.success_threshold.is_some_and(|n| n > MAX_THRESHOLD),
                "success_threshold",
                THRESHOLD_TOO_HIGH,
            ),
            (
                c.failure_threshold.is_some_and(|n| n > MAX_THRESHOLD),
                "failure_threshold",
                THRESHOLD_TOO_HIGH,
            ),
            (
                c.success_threshold == Some(0),
                "success_threshold",
                "must be at least 1",
            ),
            (
                c.failure_threshold == Some(0),
                "failure_threshold",
                "must be at least 1",
            ),
        ];
        self.rules(check, "", &rules);
        self.cadence(
            check,
            "",
            c.start_interval,
            c.failing_interval,
            c.failure_window.map(|w| (w.failures, w.of)),
            c.success_window.map(|w| (w.successes, w.of)),
        );
    }

    fn rules(&mut self, check: Option<&str>, prefix: &str, rules: &[(bool, &str, &str)]) {
        for (broken, key, message) in rules {
            if *broken {
                self.push(check, &format!("{prefix}{key}"), (*message).to_owned());
            }
        }
    }

    fn check(&mut self, index: usize, item: &Value, defaults: &DefaultsSection) -> Option<Check> {
        let fallback = format!("checks[{index}]");
        let Value::Object(table) = item else {
            self.push(Some(&fallback), "", "expected a table".into());
            return None;
        };
        let label = table
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map_or(fallback, str::to_owned);
        let label = Some(label.as_str());
        if let Some(name) = table.get("name").and_then(Value::as_str) {
            self.name(label, name);
        }
        let common_keys = serde_introspect::<CheckCommon>();
        let kind = table.get("type").and_then(Value::as_str);
        let probe_keys: &[&str] = match kind {
            Some("http") => serde_introspect::<HttpSection>(),
            Some("tcp") => serde_introspect::<TcpSection>(),
            Some("exec" | "script") => serde_introspect::<ExecSection>(),
            Some("grpc") => serde_introspect::<GrpcSection>(),
            Some("dns") => serde_introspect::<DnsSection>(),
            Some("tls") => serde_introspect::<TlsProbeSection>(),
            Some("disk") => serde_introspect::<DiskSection>(),
            Some("memory") => serde_introspect::<MemorySection>(),
            Some("push") => serde_introspect::<PushSection>(),
            Some(other) => {
                let hint = nearest(other, KINDS.iter().copied())
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                self.push(
                    label,
                    "type",
                    format!("unknown type `{other}`{hint}; one of {}", quoted(KINDS)),
                );
                return None;
            }
            None if table.contains_key("type") => {
                self.push(
                    label,
                    "type",
                    format!("expected a string, one of {}", quoted(KINDS)),
                );
                return None;
            }
            None => {
                self.push(label, "type", format!("missing; one of {}", quoted(KINDS)));
                return None;
            }
        };
        // `expect.max_duration` and `expect.slow` apply to every type: taken
        // out here (from a copy, only when present), the rest of `expect` is the probe's.
        let carries_latency = table
            .get("expect")
            .and_then(Value::as_object)
            .is_some_and(|e| e.contains_key("max_duration") || e.contains_key("slow"));
        let mut stripped = None;
        let latency = if carries_latency {
            let mut copy = table.clone();
            let latency = self.latency(label, &mut copy);
            stripped = Some(copy);
            latency
        } else {
            Some(None)
        };
        let table = stripped.as_ref().unwrap_or(table);
        let allowed: Vec<&str> = common_keys.iter().chain(probe_keys).copied().collect();
        self.unknown_keys(label, "", table, &allowed);
        let (common, probe): (Map<_, _>, Map<_, _>) = table
            .iter()
            .filter(|(k, _)| allowed.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| common_keys.contains(&k.as_str()));
        let common: Option<CheckCommon> = self.parse(label, "", &Value::Object(common));
        let probe = Value::Object(probe);
        let probe = match kind {
            Some("http") => self.typed(label, &probe, Self::http),
            Some("tcp") => self.typed(label, &probe, Self::tcp),
            Some("grpc") => self.typed(label, &probe, Self::grpc),
            Some("dns") => self.typed(label, &probe, Self::dns),
            Some("tls") => self.typed(label, &probe, Self::tls_probe),
            Some("disk") => self.typed(label, &probe, Self::disk),
            Some("memory") => self.typed(label, &probe, Self::memory),
            Some("push") => self.typed(label, &probe, Self::push_check),
            Some("script") => self.typed(label, &probe, |v, check, s| {
                v.exec(check, s, ExitCodesKind::Nagios)
            }),
            _ => self.typed(label, &probe, |v, check, s| {
                v.exec(check, s, ExitCodesKind::Exact)
            }),
        };
        let common = common?;
        let schedule = Schedule {
            interval: common.interval.unwrap_or(defaults.interval),
            timeout: common.timeout.unwrap_or(defaults.timeout),
            initial_delay: common.initial_delay.unwrap_or(defaults.initial_delay),
            start_period: common.start_period.unwrap_or(defaults.start_period),
            success_threshold: common
                .success_threshold
                .unwrap_or(defaults.success_threshold),
            failure_threshold: common
                .failure_threshold
                .unwrap_or(defaults.failure_threshold),
            start_interval: common.start_interval.or(defaults.start_interval),
            failing_interval: common.failing_interval.or(defaults.failing_interval),
            failure_window: common
                .failure_window
                .or(defaults.failure_window)
                .map(|w| Window {
                    count: w.failures,
                    of: w.of,
                }),
            success_window: common
                .success_window
                .or(defaults.success_window)
                .map(|w| Window {
                    count: w.successes,
                    of: w.of,
                }),
        };
        self.overrides(label, &common);
        let groups: Groups = common.groups.iter().copied().collect();
        let probe = probe?;
        let max_duration = latency?;
        if let Some(m) = max_duration
            && m.limit > schedule.timeout
        {
            self.push(
                label,
                "expect.max_duration",
                format!(
                    "is more than the timeout ({}): a run that slow already fails as `timeout`",
                    crate::probe::human(schedule.timeout)
                ),
            );
            return None;
        }
        let extra_roots = match &probe {
            ProbeSpec::Http(http) => http.tls.extra_roots.clone(),
            ProbeSpec::Tls(tls) => tls.tls.extra_roots.clone(),
            ProbeSpec::Grpc(grpc) => grpc
                .tls
                .as_ref()
                .map(|t| t.extra_roots.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Some(Check {
            name: Arc::from(common.name),
            groups,
            critical: common.critical,
            dependency: common.dependency,
            max_duration,
            schedule,
            probe,
            definition: Definition {
                // serde_json's maps are sorted: equal tables, equal text.
                table: item.to_string().into_boxed_str(),
                extra_roots,
            },
        })
    }

    /// Parses a check's type-specific keys into `T`, then resolves them with `resolve`.
    fn typed<T: DeserializeOwned>(
        &mut self,
        check: Option<&str>,
        probe: &Value,
        resolve: impl FnOnce(&mut Self, Option<&str>, T) -> Option<ProbeSpec>,
    ) -> Option<ProbeSpec> {
        let section = self.parse(check, "", probe)?;
        resolve(self, check, section)
    }

    /// Checks the listeners; returns the admin token read from its file.
    fn server(&mut self, s: &ServerSection) -> Option<Secret> {
        let mut addresses = vec![
            ("server.listen", s.listen),
            ("server.admin_listen", s.admin_listen),
        ];
        addresses.extend(s.grpc_listen.map(|a| ("server.grpc_listen", a)));
        addresses.extend(s.agent_listen.map(|a| ("server.agent_listen", a)));
        for (i, (key, addr)) in addresses.iter().enumerate() {
            if addr.port() == 0 {
                continue;
            }
            if let Some((other, _)) = addresses[..i].iter().find(|(_, a)| a == addr) {
                self.push(None, key, format!("{addr} is already used by `{other}`"));
            }
        }
        let bounds = [
            (
                s.drain.min > MAX_DRAIN,
                "server.drain.min",
                "must be at most 1h",
            ),
            (
                s.drain.max > MAX_DRAIN,
                "server.drain.max",
                "must be at most 1h",
            ),
            (
                s.drain.observed_probes > MAX_OBSERVED_PROBES,
                "server.drain.observed_probes",
                "must be at most 10000",
            ),
            (
                s.shutdown_timeout > MAX_SHUTDOWN,
                "server.shutdown_timeout",
                "must be at most 10m",
            ),
        ];
        self.rules(None, "", &bounds);
        if s.drain.min > s.drain.max {
            self.push(
                None,
                "server.drain.min",
                format!(
                    "{} is longer than server.drain.max ({})",
                    humantime::format_duration(s.drain.min),
                    humantime::format_duration(s.drain.max)
                ),
            );
        }
        if let Some(weight) = s.agent.weight_on_warn
            && !(1..=100).contains(&weight)
        {
            self.push(
                None,
                "server.agent.weight_on_warn",
                "must be a percentage from 1 to 100".into(),
            );
        }
        for (prefix, tls) in [("server.tls", &s.tls), ("server.admin.tls", &s.admin.tls)] {
            if let Some(tls) = tls
                && let Err(e) = super::listener_tls::server_config(tls, &[])
            {
                self.push(None, &format!("{prefix}.{}", e.key), e.message);
            }
        }
        let token =
            s.admin
                .token_file
                .as_ref()
                .and_then(|path| match std::fs::read_to_string(path) {
                    Ok(text) if !text.trim().is_empty() => Some(Secret::new(text.trim())),
                    Ok(_) => {
                        self.push(
                            None,
                            "server.admin.token_file",
                            format!("{} is empty", path.display()),
                        );
                        None
                    }
                    Err(e) => {
                        self.push(
                            None,
                            "server.admin.token_file",
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                });
        let mtls = s
            .admin
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca_file.is_some());
        if !s.admin_listen.ip().is_loopback() && s.admin.token_file.is_none() && !mtls {
            self.push(
                None,
                "server.admin_listen",
                format!(
                    "{} is reachable from other hosts: set server.admin.token_file or \
                     server.admin.tls.client_ca_file, or listen on 127.0.0.1",
                    s.admin_listen
                ),
            );
        }
        token
    }

    fn otlp(&mut self, o: &super::model::OtlpSection) {
        if let Some(endpoint) = &o.endpoint {
            let uri = http::Uri::from_str(endpoint).ok();
            if uri
                .as_ref()
                .and_then(|u| u.authority())
                .is_some_and(|a| !super::valid_port(a))
            {
                self.push(
                    None,
                    "telemetry.otlp.endpoint",
                    "the port must be 1 to 65535".into(),
                );
            }
            let scheme = uri.and_then(|u| u.scheme_str().map(str::to_owned));
            if !matches!(scheme.as_deref(), Some("http" | "https")) {
                self.push(
                    None,
                    "telemetry.otlp.endpoint",
                    "expected an http:// or https:// URL".into(),
                );
            }
        }
        if o.interval.is_zero() {
            self.push(
                None,
                "telemetry.otlp.interval",
                "must be more than 0s".into(),
            );
        }
        if o.interval > MAX_EXPORT {
            self.push(None, "telemetry.otlp.interval", "must be at most 1h".into());
        }
        if o.timeout.is_some_and(|t| t > MAX_EXPORT) {
            self.push(None, "telemetry.otlp.timeout", "must be at most 1h".into());
        }
        if o.tls.cert_file.is_some() != o.tls.key_file.is_some() {
            self.push(
                None,
                "telemetry.otlp.tls",
                "cert_file and key_file go together".into(),
            );
        }
        let files = [
            ("ca_file", &o.tls.ca_file),
            ("cert_file", &o.tls.cert_file),
            ("key_file", &o.tls.key_file),
        ];
        for (key, file) in files {
            if let Some(path) = file
                && let Err(e) = std::fs::metadata(path)
            {
                self.push(
                    None,
                    &format!("telemetry.otlp.tls.{key}"),
                    format!("cannot read {}: {e}", path.display()),
                );
            }
        }
        for name in o.headers.keys() {
            if http::HeaderName::from_str(name).is_err() {
                self.push(
                    None,
                    &format!("telemetry.otlp.headers.{name}"),
                    "not a valid header name".into(),
                );
            }
        }
    }

    fn name(&mut self, check: Option<&str>, name: &str) {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            self.push(
                check,
                "name",
                format!("must be 1 to {MAX_NAME_LEN} characters of a-z, 0-9, `_` and `-`"),
            );
        }
    }

    fn duplicates(&mut self, items: &[Value]) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for name in items.iter().filter_map(|item| item.get("name")?.as_str()) {
            let count = seen.entry(name).or_default();
            *count += 1;
            if *count == 2 {
                self.push(
                    Some(name),
                    "name",
                    "duplicate name; check names must be unique".into(),
                );
            }
        }
    }

    fn http(&mut self, check: Option<&str>, s: HttpSection) -> Option<ProbeSpec> {
        let before = self.problems.len();
        let (url, basic_auth) = match split_url(&s.url) {
            Ok(parts) => parts,
            Err(message) => {
                self.push(check, "url", message);
                (http::Uri::default(), None)
            }
        };
        let method = http::Method::from_str(&s.method)
            .map_err(|_| {
                self.push(
                    check,
                    "method",
                    format!("`{}` is not an HTTP method", s.method),
                )
            })
            .unwrap_or_default();
        let mut headers = Vec::new();
        for (name, value) in &s.headers {
            let key = format!("headers.{name}");
            match http::HeaderName::from_str(name) {
                Ok(header) if http::HeaderValue::from_str(value).is_ok() => {
                    headers.push((header, Secret::new(value)))
                }
                Ok(_) => self.push(
                    check,
                    &key,
                    "value is not a valid header value (value not shown)".into(),
                ),
                Err(_) => self.push(check, &key, "not a valid header name".into()),
            }
        }
        if !(1..=MAX_BODY_BYTES).contains(&s.max_body_bytes) {
            self.push(
                check,
                "max_body_bytes",
                format!("must be between 1 and {MAX_BODY_BYTES}"),
            );
        }
        let tls = self.tls(check, s.tls);
        let mut status = Vec::new();
        for (i, pattern) in s.expect.status.iter().enumerate() {
            match parse_status(pattern) {
                Some(m) => status.push(m),
                None => self.push(
                    check,
                    &format!("expect.status[{i}]"),
                    "expected a code 100..=599 or a class \"1xx\"..\"5xx\"".into(),
                ),
            }
        }
        if s.expect.status.is_empty() {
            self.push(
                check,
                "expect.status",
                "must list at least one code or class".into(),
            );
        }
        let body_regex = self.regex(check, "expect.body_regex", s.expect.body_regex.as_deref());
        for pointer in s.expect.json.keys() {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                self.push(
                    check,
                    &format!("expect.json.{pointer}"),
                    "a JSON pointer starts with `/` (RFC 6901), e.g. \"/status\"".into(),
                );
            }
        }
        if self.problems.len() > before {
            return None;
        }
        Some(ProbeSpec::Http(Arc::new(HttpSpec {
            url,
            basic_auth,
            method,
            headers,
            body: s.body.map(bytes::Bytes::from),
            follow_redirects: s.follow_redirects,
            reuse_connection: s.reuse_connection,
            max_body_bytes: usize::try_from(s.max_body_bytes).unwrap_or(usize::MAX),
            tls: tls?,
            expect: HttpExpect {
                status,
                body_contains: s.expect.body_contains,
                body_regex: body_regex?,
                json: s.expect.json,
            },
        })))
    }

    fn tls(&mut self, check: Option<&str>, s: TlsSection) -> Option<TlsSpec> {
        let mut extra_roots = Vec::new();
        if let Some(path) = &s.ca_file {
            match read_certs(path) {
                Ok(certs) => extra_roots = certs,
                Err(message) => {
                    self.push(check, "tls.ca_file", message);
                    return None;
                }
            }
        }
        if let Some(name) = &s.server_name
            && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            self.push(
                check,
                "tls.server_name",
                "not a valid DNS name or IP address".into(),
            );
            return None;
        }
        Some(TlsSpec {
            roots: s.roots,
            extra_roots,
            server_name: s.server_name,
            insecure_skip_verify: s.insecure_skip_verify,
        })
    }

    fn regex(
        &mut self,
        check: Option<&str>,
        key: &str,
        pattern: Option<&str>,
    ) -> Option<Option<Regex>> {
        match pattern.map(Regex::new).transpose() {
            Ok(re) => Some(re),
            Err(e) => {
                self.push(check, key, format!("invalid regular expression: {e}"));
                None
            }
        }
    }

    fn tcp(&mut self, check: Option<&str>, s: TcpSection) -> Option<ProbeSpec> {
        let before = self.problems.len();
        let address = self.address(check, &s.address);
        if !(1..=MAX_RESPONSE_BYTES).contains(&s.max_response_bytes) {
            self.push(
                check,
                "max_response_bytes",
                format!("must be between 1 and {MAX_RESPONSE_BYTES}"),
            );
        }
        let mut exchange = Vec::new();
        for (i, step) in s.exchange.into_iter().enumerate() {
            if step.send.is_none() && step.expect.is_none() {
                self.push(
                    check,
                    &format!("exchange[{i}]"),
                    "give `send`, `expect` or both".into(),
                );
                continue;
            }
            let expect = self.regex(
                check,
                &format!("exchange[{i}].expect"),
                step.expect.as_deref(),
            );
            if let Some(expect) = expect {
                exchange.push(Step {
                    send: step.send.map(bytes::Bytes::from),
                    expect,
                });
            }
        }
        let (host, port) = address?;
        (self.problems.len() == before).then(|| {
            ProbeSpec::Tcp(TcpSpec {
                host,
                port,
                exchange,
                max_response_bytes: usize::try_from(s.max_response_bytes).unwrap_or(usize::MAX),
            })
        })
    }

    fn exec(
        &mut self,
        check: Option<&str>,
        s: ExecSection,
        default_codes: ExitCodesKind,
    ) -> Option<ProbeSpec> {
        let before = self.problems.len();
        let exit_codes = match (
            s.expect.exit_codes.unwrap_or(default_codes),
            s.expect.exit_code,
        ) {
            (ExitCodesKind::Exact, code) => ExitCodes::Exact(code.unwrap_or(0)),
            (ExitCodesKind::Nagios, None) => ExitCodes::Nagios,
            (ExitCodesKind::Nagios, Some(_)) => {
                self.push(
                    check,
                    "expect.exit_code",
                    "has no effect with `exit_codes = \"nagios\"` (0 pass, 1 warn, 2+ fail)".into(),
                );
                ExitCodes::Nagios
            }
        };
        let argv = match (s.command, s.shell) {
            (CommandLine::Script(script), true) => {
                Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), script])
            }
            (CommandLine::Argv(argv), true) if argv.len() == 1 => Some(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                argv.into_iter().next().unwrap_or_default(),
            ]),
            (CommandLine::Argv(_), true) => {
                self.push(
                    check,
                    "command",
                    "with `shell = true`, give one string: the script".into(),
                );
                None
            }
            (CommandLine::Script(_), false) => {
                self.push(
                    check,
                    "command",
                    "a string runs through a shell only with `shell = true`; without one, \
                     give the program and its arguments as a list, e.g. [\"redis-cli\", \"ping\"]"
                        .into(),
                );
                None
            }
            (CommandLine::Argv(argv), false) => Some(argv),
        };
        // The program, or with a shell the script.
        let named = |a: &Vec<String>| if s.shell { a.get(2) } else { a.first() }.cloned();
        if argv
            .as_ref()
            .is_some_and(|a| named(a).is_none_or(|p| p.trim().is_empty()))
        {
            self.push(
                check,
                "command",
                "must name a program, e.g. [\"redis-cli\", \"ping\"]".into(),
            );
        }
        if !(1..=MAX_OUTPUT_BYTES).contains(&s.max_output_bytes) {
            self.push(
                check,
                "max_output_bytes",
                format!("must be between 1 and {MAX_OUTPUT_BYTES}"),
            );
        }
        for name in s.env.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                self.push(
                    check,
                    &format!("env.{name}"),
                    "not a valid variable name".into(),
                );
            }
        }
        let output_regex = self.regex(
            check,
            "expect.output_regex",
            s.expect.output_regex.as_deref(),
        );
        if self.problems.len() > before {
            return None;
        }
        Some(ProbeSpec::Exec(Box::new(ExecSpec {
            argv: argv?,
            env: s
                .env
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect(),
            working_dir: s.working_dir,
            max_output_bytes: usize::try_from(s.max_output_bytes).unwrap_or(usize::MAX),
            exit_codes,
            script: default_codes == ExitCodesKind::Nagios,
            output_contains: s.expect.output_contains,
            output_regex: output_regex?,
            show_output: s.show_output,
        })))
    }
}

impl Validator {
    fn address(&mut self, check: Option<&str>, address: &str) -> Option<(String, u16)> {
        let parsed = split_host_port(address);
        if parsed.is_none() {
            self.push(
                check,
                "address",
                "expected `host:port`, e.g. \"127.0.0.1:5432\"".into(),
            );
        }
        parsed
    }

    fn grpc(&mut self, check: Option<&str>, s: GrpcSection) -> Option<ProbeSpec> {
        let before = self.problems.len();
        let address = self.address(check, &s.address);
        let mut metadata = Vec::new();
        for (name, value) in &s.metadata {
            let key = format!("metadata.{name}");
            let lower = name.to_ascii_lowercase();
            match tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(
                lower.as_bytes(),
            ) {
                Ok(_) if lower.ends_with("-bin") => self.push(
                    check,
                    &key,
                    "binary (`-bin`) metadata is not supported".into(),
                ),
                Ok(_) if tonic::metadata::MetadataValue::try_from(value.as_str()).is_ok() => {
                    metadata.push((lower, Secret::new(value)))
                }
                Ok(_) => self.push(
                    check,
                    &key,
                    "value is not valid ASCII metadata (value not shown)".into(),
                ),
                Err(_) => self.push(check, &key, "not a valid metadata key".into()),
            }
        }
        if let Some(authority) = &s.authority
            && authority.parse::<http::uri::Authority>().is_err()
        {
            self.push(check, "authority", "not a valid `host[:port]`".into());
        }
        let tls = match s.tls {
            Some(t) => Some(self.tls(check, t)?),
            None => None,
        };
        let (host, port) = address?;
        (self.problems.len() == before).then(|| {
            ProbeSpec::Grpc(Box::new(GrpcSpec {
                host,
                port,
                service: s.service,
                authority: s.authority,
                metadata,
                tls,
            }))
        })
    }

    fn dns(&mut self, check: Option<&str>, s: DnsSection) -> Option<ProbeSpec> {
        use hickory_resolver::proto::op::ResponseCode;
        use hickory_resolver::proto::rr::RecordType;
        const TYPES: &[&str] = &[
            "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "NS", "PTR", "SOA", "CAA",
        ];
        const RCODES: &[&str] = &["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"];
        let before = self.problems.len();
        if hickory_resolver::Name::from_utf8(&s.query).is_err() || s.query.is_empty() {
            self.push(check, "query", "not a valid domain name".into());
        }
        let upper = s.record_type.to_ascii_uppercase();
        let record_type = match RecordType::from_str(&upper) {
            Ok(t) if TYPES.contains(&upper.as_str()) => t,
            _ => {
                self.push(
                    check,
                    "record_type",
                    format!(
                        "unknown record type `{}`; one of {}",
                        s.record_type,
                        quoted(TYPES)
                    ),
                );
                RecordType::A
            }
        };
        let server = match &s.server {
            None => None,
            Some(text) => match text.parse::<std::net::SocketAddr>().ok().or_else(|| {
                text.parse::<std::net::IpAddr>()
                    .ok()
                    .map(|ip| (ip, 53).into())
            }) {
                Some(addr) => Some(addr),
                None => {
                    self.push(
                        check,
                        "server",
                        "expected `IP:PORT` or `IP`, e.g. \"10.0.0.2:53\"".into(),
                    );
                    None
                }
            },
        };
        let rcode = match s.expect.rcode.to_ascii_uppercase().as_str() {
            "NOERROR" => ResponseCode::NoError,
            "NXDOMAIN" => ResponseCode::NXDomain,
            "SERVFAIL" => ResponseCode::ServFail,
            "REFUSED" => ResponseCode::Refused,
            other => {
                self.push(
                    check,
                    "expect.rcode",
                    format!("unknown response code `{other}`; one of {}", quoted(RCODES)),
                );
                ResponseCode::NoError
            }
        };
        let answer_regex = self.regex(
            check,
            "expect.answer_regex",
            s.expect.answer_regex.as_deref(),
        );
        let wants_answers = !s.expect.answers_contain.is_empty() || s.expect.answer_regex.is_some();
        if rcode != ResponseCode::NoError
            && (wants_answers || s.expect.min_answers.unwrap_or(0) > 0)
        {
            self.push(
                check,
                "expect",
                format!(
                    "expects answers, but an `rcode` of {} comes with none",
                    s.expect.rcode
                ),
            );
        }
        let min_answers = s
            .expect
            .min_answers
            .unwrap_or(u32::from(rcode == ResponseCode::NoError));
        if self.problems.len() > before {
            return None;
        }
        Some(ProbeSpec::Dns(Box::new(DnsSpec {
            name: s.query,
            record_type,
            server,
            tcp: s.protocol == DnsProtocol::Tcp,
            rcode,
            answers_contain: s.expect.answers_contain,
            answer_regex: answer_regex?,
            min_answers,
        })))
    }

    fn tls_probe(&mut self, check: Option<&str>, s: TlsProbeSection) -> Option<ProbeSpec> {
        let address = self.address(check, &s.address);
        let tls = self.tls(check, s.tls)?;
        let (host, port) = address?;
        Some(ProbeSpec::Tls(Box::new(TlsProbeSpec {
            host,
            port,
            tls,
            cert_min_validity: s.expect.cert_min_validity,
        })))
    }

    /// Each `(key, value)` must be a percentage; returns whether all were.
    fn percentages(&mut self, check: Option<&str>, values: &[(&str, Option<f64>)]) -> bool {
        let mut fine = true;
        for (key, value) in values {
            if let Some(v) = value
                && !(0.0..=100.0).contains(v)
            {
                self.push(
                    check,
                    key,
                    format!("must be a percentage, 0 to 100; got {v}"),
                );
                fine = false;
            }
        }
        fine
    }

    /// `warn_above` must be below `fail_above` to ever be seen.
    fn ordered(
        &mut self,
        check: Option<&str>,
        warn: (&str, Option<f64>),
        fail: (&str, Option<f64>),
    ) {
        if let (Some(w), Some(f)) = (warn.1, fail.1)
            && w >= f
        {
            self.push(
                check,
                warn.0,
                format!("must be below `{}` ({f}), or it never shows", fail.0),
            );
        }
    }

    fn disk(&mut self, check: Option<&str>, s: DiskSection) -> Option<ProbeSpec> {
        let fine = self.percentages(
            check,
            &[
                ("warn_above", s.warn_above),
                ("fail_above", Some(s.fail_above)),
                ("inodes_warn_above", s.inodes_warn_above),
                ("inodes_fail_above", Some(s.inodes_fail_above)),
            ],
        );
        self.ordered(
            check,
            ("warn_above", s.warn_above),
            ("fail_above", Some(s.fail_above)),
        );
        self.ordered(
            check,
            ("inodes_warn_above", s.inodes_warn_above),
            ("inodes_fail_above", Some(s.inodes_fail_above)),
        );
        if !s.path.is_absolute() {
            self.push(check, "path", "must be an absolute path".into());
            return None;
        }
        fine.then_some(ProbeSpec::Disk(Box::new(DiskSpec {
            path: s.path,
            warn_above: s.warn_above,
            fail_above: s.fail_above,
            min_free_bytes: s.min_free_bytes,
            inodes_warn_above: s.inodes_warn_above,
            inodes_fail_above: s.inodes_fail_above,
        })))
    }

    fn memory(&mut self, check: Option<&str>, s: MemorySection) -> Option<ProbeSpec> {
        let fine = self.percentages(
            check,
            &[
                ("warn_above", s.warn_above),
                ("fail_above", Some(s.fail_above)),
                ("pressure_warn_above", s.pressure_warn_above),
                ("pressure_fail_above", s.pressure_fail_above),
            ],
        );
        self.ordered(
            check,
            ("warn_above", s.warn_above),
            ("fail_above", Some(s.fail_above)),
        );
        self.ordered(
            check,
            ("pressure_warn_above", s.pressure_warn_above),
            ("pressure_fail_above", s.pressure_fail_above),
        );
        fine.then_some(ProbeSpec::Memory(Box::new(MemorySpec {
            warn_above: s.warn_above,
            fail_above: s.fail_above,
            pressure_warn_above: s.pressure_warn_above,
            pressure_fail_above: s.pressure_fail_above,
            cgroup_dir: s.cgroup_dir,
        })))
    }

    fn push_check(&mut self, check: Option<&str>, s: PushSection) -> Option<ProbeSpec> {
        if s.ttl.is_zero() || s.ttl > MAX_SCHEDULE {
            let message = if s.ttl.is_zero() {
                "must be more than 0s"
            } else {
                TOO_LONG
            };
            self.push(check, "ttl", message.into());
            return None;
        }
        Some(ProbeSpec::Push(PushSpec { ttl: s.ttl }))
    }
}

/// Removes the value at `path` from `root`, so the rest can be parsed again.
fn remove(root: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = root;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key) {
                Some(next) => next,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key).is_some(),
        (Segment::Seq { index }, Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

/// Parses an http(s) URL, moving its userinfo into a basic-auth secret.
/// Messages never repeat the URL: it may hold a password.
fn split_url(raw: &str) -> Result<(http::Uri, Option<Secret>), String> {
    let uri = http::Uri::from_str(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err("scheme must be http or https".into()),
        None => return Err("must be absolute, e.g. \"http://127.0.0.1:8000/healthz\"".into()),
    }
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| "has no host".to_owned())?;
    if !super::valid_port(authority) {
        return Err("the port must be 1 to 65535".into());
    }
    let Some((userinfo, host)) = authority.as_str().rsplit_once('@') else {
        return Ok((uri, None));
    };
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(userinfo)
    );
    let mut parts = uri.clone().into_parts();
    parts.authority =
        Some(http::uri::Authority::from_str(host).map_err(|e| format!("not a valid URL: {e}"))?);
    let uri = http::Uri::from_parts(parts).map_err(|e| format!("not a valid URL: {e}"))?;
    Ok((uri, Some(Secret::new(auth))))
}

fn parse_status(pattern: &StatusPattern) -> Option<StatusMatch> {
    let code_ok = |c: u16| (100..=599).contains(&c);
    match pattern {
        StatusPattern::Code(c) if code_ok(*c) => Some(StatusMatch::Code(*c)),
        StatusPattern::Code(_) => None,
        StatusPattern::Text(text) => {
            let text = text.to_ascii_lowercase();
            if let Some(class) = text.strip_suffix("xx") {
                let class: u16 = class.parse().ok()?;
                (1..=5)
                    .contains(&class)
                    .then_some(StatusMatch::Class(class))
            } else {
                text.parse()
                    .ok()
                    .filter(|c| code_ok(*c))
                    .map(StatusMatch::Code)
            }
        }
    }
}

/// `host:port`, `[v6]:port`; the host is returned without brackets.
fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| (host.to_owned(), port))
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(format!(
            "{}: holds no usable CA certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// Turns a serde message into (key, message), naming the key and suggesting
/// the nearest valid spelling for unknown fields and variants.
fn explain(path: &str, message: &str) -> (String, String) {
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return (join(path, field), "missing; this key is required".into());
    }
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((got, expected)) = rest.split_once('`')
        {
            let options: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            // serde_path_to_error's path already ends at the unknown key.
            let key = path.to_owned();
            let message = match nearest(got, options.iter().copied()) {
                Some(near) => format!("unknown {what} `{got}`; did you mean `{near}`?"),
                None => format!(
                    "unknown {what} `{got}`; expected one of {}",
                    quoted(&options)
                ),
            };
            return (key, message);
        }
    }
    let key = if path.is_empty() {
        "(root)".to_owned()
    } else {
        path.to_owned()
    };
    let message = &hide_values(&key, message);
    if message.contains("expected a duration") {
        return (
            key,
            format!("{message} such as \"250ms\", \"5s\" or \"1m\""),
        );
    }
    (key, message.to_owned())
}

/// Key segments whose values may be secrets: a header, metadata or
/// environment value, a token, a URL (credentials, query tokens), a command
/// line, what a TCP exchange sends.
const SECRET_KEYS: &[&str] = &[
    "headers", "metadata", "env", "token", "password", "secret", "auth", "url", "endpoint",
    "command", "send", "exchange",
];

/// Whether `key` (dotted, with `[N]` indices) may hold a secret.
fn secret_bearing(key: &str) -> bool {
    key.split(['.', '[', ']']).any(|segment| {
        SECRET_KEYS
            .iter()
            .any(|s| segment.to_ascii_lowercase().contains(s))
    })
}

/// serde's `invalid type: string "…", expected …` quotes the value it got.
/// A wrong type never shows it (the key is then often not what the user
/// thinks, and a secret may sit there); a wrong value shows it only for
/// keys that cannot hold a secret (`"5x"` for a duration helps).
fn hide_values(key: &str, message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        if prefix == "invalid value: " && !secret_bearing(key) {
            return message.to_owned();
        }
        let Some((got, expected)) = rest.split_once(", expected ") else {
            return format!("{}(value not shown)", prefix);
        };
        let kind = got.split(['"', '`']).next().unwrap_or("").trim();
        return format!("{prefix}{kind} (value not shown), expected {expected}");
    }
    message.to_owned()
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if prefix.ends_with('.') => format!("{prefix}{key}"),
        _ => format!("{prefix}.{key}"),
    }
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_suggests_typos_only() {
        let keys = ["interval", "timeout", "failure_threshold"];
        assert_eq!(nearest("intervall", keys.iter().copied()), Some("interval"));
        assert_eq!(
            nearest("failure_treshold", keys.iter().copied()),
            Some("failure_threshold")
        );
        assert_eq!(nearest("colour", keys.iter().copied()), None);
    }

    #[test]
    fn userinfo_moves_into_basic_auth() {
        let (uri, auth) = split_url("https://alice:s3cret@example.test:8443/h?x=1").unwrap();
        assert_eq!(uri.to_string(), "https://example.test:8443/h?x=1");
        assert_eq!(auth.unwrap().expose(), "Basic YWxpY2U6czNjcmV0");
        let err = split_url("ftp://alice:s3cret@example.test/").unwrap_err();
        assert!(!err.contains("s3cret"));
    }

    #[test]
    fn status_patterns() {
        let p = |s: &str| parse_status(&StatusPattern::Text(s.into()));
        assert_eq!(p("2xx"), Some(StatusMatch::Class(2)));
        assert_eq!(p("301"), Some(StatusMatch::Code(301)));
        assert_eq!(p("6xx"), None);
        assert_eq!(p("abc"), None);
        assert_eq!(parse_status(&StatusPattern::Code(99)), None);
    }

    #[test]
    fn serde_never_shows_a_value_of_the_wrong_type_or_of_a_secret_key() {
        let hidden = hide_values(
            "headers",
            r#"invalid type: string "Bearer s3cr3t", expected a map"#,
        );
        assert_eq!(
            hidden,
            "invalid type: string (value not shown), expected a map"
        );
        let hidden = hide_values("interval", "invalid type: integer `5`, expected a duration");
        assert_eq!(
            hidden,
            "invalid type: integer (value not shown), expected a duration"
        );
        let hidden = hide_values("env.TOKEN", r#"invalid value: string "s3cr3t", expected x"#);
        assert!(!hidden.contains("s3cr3t"), "{hidden}");
        let shown = hide_values(
            "interval",
            r#"invalid value: string "5x", expected a duration"#,
        );
        assert!(shown.contains("\"5x\""), "{shown}");
        for key in [
            "headers.Authorization",
            "checks[3].env.PGPASSWORD",
            "telemetry.otlp.headers.x-api-key",
            "exchange[0].send",
            "url",
        ] {
            assert!(secret_bearing(key), "{key}");
        }
        for key in ["interval", "expect.status", "name", "timeout"] {
            assert!(!secret_bearing(key), "{key}");
        }
    }

    #[test]
    fn url_ports_out_of_range_are_refused() {
        for url in [
            "http://127.0.0.1:99999/",
            "http://h:0/",
            "https://[::1]:65536/x",
            "http://h:1:2/",
        ] {
            assert!(split_url(url).is_err(), "{url}");
        }
        for url in [
            "http://127.0.0.1:65535/",
            "http://h/",
            "https://[::1]/",
            "https://[::1]:443/",
            "http://u:p@h:8080/",
            "http://u:p@h/",
            "http://u:p:q@[::1]/",
        ] {
            assert!(split_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(
            split_host_port("db.local:5432"),
            Some(("db.local".into(), 5432))
        );
        assert_eq!(split_host_port("db.local"), None);
        assert_eq!(split_host_port(":80"), None);
    }
}
