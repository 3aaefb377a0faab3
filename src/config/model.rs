//! The config file as the user writes it: serde types whose doc comments are the reference.
//!
//! These types are only the *shape*. `validate` turns them into the resolved
//! [`Config`](super::Config) the engine runs, with defaults applied and every
//! value checked. Every duration is humantime (`"250ms"`, `"1h 30m"`) and at
//! most `"3650d"`, and most keys have a tighter bound, given with the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[server]`: the listeners. The load-balancer listener serves only the
/// verdicts; everything that changes state or shows more lives on the admin
/// listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address of the load-balancer listener serving `/livez`, `/readyz`,
    /// `/startupz` and `/health`, as `IP:PORT`. Port 0 picks a free port (logged at start).
    /// Default `"127.0.0.1:8090"`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the admin listener: `/metrics`, `/admin/drain` and the JSON
    /// API (`/api/checks`), plus the verdict endpoints. Keep it on loopback or
    /// a private port: a non-loopback address needs `server.admin.token_file`
    /// or mTLS (`server.admin.tls.client_ca_file`). Default `"127.0.0.1:8091"`.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Address of the gRPC health listener (`grpc.health.v1.Health`: Check,
    /// Watch, List), for Envoy, Kubernetes `grpc` probes and gRPC-aware load
    /// balancers. Uses `server.tls` when set. Off unless set.
    #[serde(default)]
    pub grpc_listen: Option<SocketAddr>,
    /// Address of the HAProxy agent-check listener: one line (`up`, `down
    /// #reason`, `drain`, `maint`) per connection. Off unless set.
    #[serde(default)]
    pub agent_listen: Option<SocketAddr>,
    /// How long in-flight requests may take to finish once the listeners
    /// close (after the drain). At most `"10m"`. Default `"5s"`.
    #[serde(default = "default_shutdown_timeout", with = "super::duration")]
    pub shutdown_timeout: Duration,
    /// Accept a config with no checks (the verdicts are then always 200).
    /// Off by default: a file cut short (a full disk, a truncated copy) that
    /// still parses must not remove every check and turn `/readyz` green, so
    /// such a file is an error, and a reload to it is rejected while the
    /// previous checks keep running. Default `false`.
    #[serde(default)]
    pub allow_no_checks: bool,
    /// `[server.drain]`: what happens between SIGTERM and closing the listeners.
    #[serde(default)]
    pub drain: DrainSection,
    /// `[server.tls]`: TLS on the load-balancer and gRPC listeners. Off unless set.
    #[serde(default)]
    pub tls: Option<ListenerTlsSection>,
    /// `[server.admin]`: the admin listener's protection.
    #[serde(default)]
    pub admin: AdminSection,
    /// `[server.agent]`: the HAProxy agent-check replies.
    #[serde(default)]
    pub agent: AgentSection,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            grpc_listen: None,
            agent_listen: None,
            shutdown_timeout: default_shutdown_timeout(),
            allow_no_checks: false,
            drain: DrainSection::default(),
            tls: None,
            admin: AdminSection::default(),
            agent: AgentSection::default(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8091))
}

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `[server.drain]`: on SIGTERM (or SIGINT) readiness fails at once in every
/// dialect while liveness stays up and probing goes on; the listeners keep
/// serving for at least `min`, and until the load balancer has been seen
/// asking (`observed_probes` failing readiness answers) or `max` has passed.
/// Then the listeners close and in-flight requests get `shutdown_timeout`.
/// A second signal exits at once. Set Kubernetes'
/// `terminationGracePeriodSeconds` above `max + shutdown_timeout` plus a few seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DrainSection {
    /// Least time the listeners keep serving after the signal, so that load
    /// balancers that probe on an interval, and proxies whose endpoint lists
    /// lag, stop sending. `"0s"` skips the wait. At most `"1h"`, and not
    /// more than `max`. Default `"5s"`.
    #[serde(default = "default_drain_min", with = "super::duration")]
    pub min: Duration,
    /// Longest the drain lasts, whether or not anything asked. At most
    /// `"1h"`, so a SIGTERM always ends. Default `"20s"`.
    #[serde(default = "default_drain_max", with = "super::duration")]
    pub max: Duration,
    /// Failing readiness answers (`/readyz` 503, gRPC `NOT_SERVING` for
    /// readiness, agent-check `drain`) to serve after the drain began before
    /// closing: proof that the load balancer has seen it. `0` waits for `min`
    /// only. At most `10000`. Default `1`.
    #[serde(default = "default_observed_probes")]
    pub observed_probes: u32,
}

impl Default for DrainSection {
    fn default() -> Self {
        Self {
            min: default_drain_min(),
            max: default_drain_max(),
            observed_probes: default_observed_probes(),
        }
    }
}

fn default_drain_min() -> Duration {
    Duration::from_secs(5)
}

fn default_drain_max() -> Duration {
    Duration::from_secs(20)
}

fn default_observed_probes() -> u32 {
    1
}

/// TLS on a listener (`[server.tls]`, `[server.admin.tls]`). The files are
/// re-read when they change on disk (cert-manager rotations, Kubernetes
/// secret updates): new connections get the new certificate, open ones are
/// not dropped.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsSection {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf.
    pub key_file: PathBuf,
    /// PEM CA certificates for client certificates: when set, clients must
    /// present a certificate signed by one of them (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Oldest TLS version accepted: `"1.2"` or `"1.3"`. Default `"1.2"`.
    #[serde(default)]
    pub min_version: TlsVersion,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// `[server.admin]`: who may use the admin listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// File holding a bearer token (surrounding whitespace ignored): when
    /// set, every admin request needs `Authorization: Bearer <token>`. Read
    /// at start and on every config reload. Off unless set.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `[server.admin.tls]`: TLS (and optionally mTLS) on the admin listener.
    #[serde(default)]
    pub tls: Option<ListenerTlsSection>,
}

/// `[server.agent]`: how the HAProxy agent-check answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Weight (1-100, percent of the configured one) to announce while ready
    /// but a non-critical check warns or fails, e.g. `50`: HAProxy then
    /// sends this instance less traffic. When set, every `up` carries a
    /// weight (`up 100%` when all is well) so HAProxy restores it. Off unless set.
    #[serde(default)]
    pub weight_on_warn: Option<u8>,
}

/// `[reload]`: how config changes are picked up while running.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadSection {
    /// Watch the config file's directory with inotify (or the platform's
    /// equivalent) and reload on change. Default `true`.
    #[serde(default = "yes")]
    pub watch: bool,
    /// Also re-read the file this often and reload when its content changed: a
    /// safety net, and the only way on filesystems where watching does not
    /// work. `"0s"` disables it. At most `"1d"`. Default `"30s"`.
    #[serde(default = "default_poll_interval", with = "super::duration")]
    pub poll_interval: Duration,
    /// Quiet time after the last file event before reloading, so a burst of
    /// writes applies once. At most `"10s"`. Default `"250ms"`.
    #[serde(default = "default_debounce", with = "super::duration")]
    pub debounce: Duration,
}

impl Default for ReloadSection {
    fn default() -> Self {
        Self {
            watch: true,
            poll_interval: default_poll_interval(),
            debounce: default_debounce(),
        }
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_debounce() -> Duration {
    Duration::from_millis(250)
}

/// `[telemetry]`: how healthgate describes itself to metrics and traces.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// `service.name` of the resource: the service healthgate guards.
    /// `OTEL_SERVICE_NAME` wins over it; default `healthgate`. Changing it needs a restart.
    #[serde(default)]
    pub service_name: Option<String>,
    /// `[telemetry.otlp]`: pushing metrics and traces to an OpenTelemetry collector.
    #[serde(default)]
    pub otlp: OtlpSection,
    /// `[telemetry.traces]`: a span per probe run, over the same OTLP settings.
    #[serde(default)]
    pub traces: TracesSection,
}

/// `[telemetry.traces]`: which probe runs become spans. Traces are exported
/// when OTLP is enabled (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracesSection {
    /// Export traces at all. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fraction of probe runs traced, 0.0 to 1.0. Default `1.0`.
    #[serde(default = "one_f64")]
    pub sample_ratio: f64,
    /// Trace only failed runs and runs that changed a status (then
    /// `sample_ratio` is not applied): a probe every second makes many spans.
    /// Default `false`.
    #[serde(default)]
    pub only_failures_and_transitions: bool,
}

impl Default for TracesSection {
    fn default() -> Self {
        Self {
            enabled: true,
            sample_ratio: 1.0,
            only_failures_and_transitions: false,
        }
    }
}

fn one_f64() -> f64 {
    1.0
}

/// `[telemetry.otlp]`: OTLP export. Enabled when `endpoint` is set here or
/// in `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`;
/// the other standard `OTEL_EXPORTER_OTLP_*` variables apply where a key is
/// not set. Changing it needs a restart.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSection {
    /// Collector base URL, e.g. `http://otel-collector:4317` (grpc) or
    /// `http://otel-collector:4318` (http/protobuf; `/v1/metrics` is appended).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`. Default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else `grpc`.
    #[serde(default)]
    pub protocol: Option<OtlpProtocol>,
    /// Headers (gRPC metadata) on every export, e.g. an API key. Values are
    /// secrets: never logged or shown.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Bound on one export, at most `"1h"`. Default:
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, else 10s.
    #[serde(default, with = "super::duration")]
    pub timeout: Option<Duration>,
    /// Time between metric exports, more than 0s and at most `"1h"`. Default `"15s"`.
    #[serde(default = "default_export_interval", with = "super::duration")]
    pub interval: Duration,
    /// `cumulative` (Prometheus, Mimir) or `delta`. Default:
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else `cumulative`.
    #[serde(default)]
    pub temporality: Option<TemporalityKind>,
    /// `[telemetry.otlp.tls]`: verifying the collector, and mTLS.
    #[serde(default)]
    pub tls: OtlpTlsSection,
}

impl Default for OtlpSection {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            timeout: None,
            interval: default_export_interval(),
            temporality: None,
            tls: OtlpTlsSection::default(),
        }
    }
}

impl std::fmt::Debug for OtlpSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSection")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field(
                "headers",
                &self.headers.keys().map(|k| (k, "***")).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("temporality", &self.temporality)
            .field("tls", &self.tls)
            .finish()
    }
}

fn default_export_interval() -> Duration {
    Duration::from_secs(15)
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317 by convention).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by convention).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// Metric temporality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemporalityKind {
    /// Totals since start (what Prometheus expects).
    Cumulative,
    /// Changes since the last export.
    Delta,
}

/// `[telemetry.otlp.tls]`: TLS to the collector (an `https://` endpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpTlsSection {
    /// PEM CA certificates to trust instead of the built-in roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mTLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// `[defaults]`: what every check inherits unless it sets its own value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsSection {
    /// Time between the starts of two runs of a check, more than 0s and at
    /// most `"365d"`. Default `"10s"`.
    #[serde(default = "default_interval", with = "super::duration")]
    pub interval: Duration,
    /// Longest a single run may take before it fails as `timeout`, more than
    /// 0s and at most `"365d"`. Default `"1s"`.
    #[serde(default = "default_timeout", with = "super::duration")]
    pub timeout: Duration,
    /// Wait before the first run; a random jitter within one interval is
    /// added. At most `"365d"`.
    #[serde(default, with = "super::duration")]
    pub initial_delay: Duration,
    /// Failures inside this period after the check starts do not count; the
    /// check stays `starting`. One success ends the period early. At most `"365d"`.
    #[serde(default, with = "super::duration")]
    pub start_period: Duration,
    /// Consecutive successes needed to reach `pass`, 1 to 10000. Default 1.
    #[serde(default = "one")]
    pub success_threshold: u32,
    /// Consecutive failures needed to reach `fail`, 1 to 10000. Default 3.
    #[serde(default = "three")]
    pub failure_threshold: u32,
    /// Time between runs until the check has its first verdict, so a new
    /// instance becomes ready quickly (as Docker's `start_interval`). Off
    /// unless set: `interval` applies.
    #[serde(default, with = "super::duration")]
    pub start_interval: Option<Duration>,
    /// Time between runs while the latest run failed or the verdict is not
    /// yet healthy again, so a failure is confirmed and a recovery seen
    /// sooner (as Envoy's `unhealthy_interval`). Off unless set: `interval` applies.
    #[serde(default, with = "super::duration")]
    pub failing_interval: Option<Duration>,
    /// Fail when at least `failures` of the last `of` runs failed, instead of
    /// `failure_threshold` consecutive ones: a flapping target cannot hold a
    /// healthy verdict by an occasional success. `of` is at most 64. Off unless set.
    #[serde(default)]
    pub failure_window: Option<FailureWindow>,
    /// Pass when at least `successes` of the last `of` runs passed, instead
    /// of `success_threshold` consecutive ones. Off unless set.
    #[serde(default)]
    pub success_window: Option<SuccessWindow>,
}

/// `failure_window = { failures = 3, of = 5 }`. The window starts empty at
/// every verdict change, so each verdict is earned by runs made after the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FailureWindow {
    /// Failed runs needed within the window.
    pub failures: u32,
    /// Length of the window, in runs (1-64).
    pub of: u32,
}

/// `success_window = { successes = 4, of = 5 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessWindow {
    /// Passed runs needed within the window.
    pub successes: u32,
    /// Length of the window, in runs (1-64).
    pub of: u32,
}

impl Default for DefaultsSection {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            timeout: default_timeout(),
            initial_delay: Duration::ZERO,
            start_period: Duration::ZERO,
            success_threshold: 1,
            failure_threshold: 3,
            start_interval: None,
            failing_interval: None,
            failure_window: None,
            success_window: None,
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}
fn yes() -> bool {
    true
}

/// The keys every `[[checks]]` entry has, whatever its `type`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckCommon {
    /// Unique name: lowercase letters, digits, `_` and `-`, at most 63 characters.
    pub name: String,
    /// Probe kind: `http` (also `https` URLs), `tcp`, `exec`, `script`,
    /// `grpc`, `dns`, `tls`, `disk`, `memory` or `push`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Verdicts this check takes part in: any of `liveness`, `readiness`,
    /// `startup`. An empty list runs and reports the check without letting it
    /// decide any verdict. Default `["readiness"]`.
    #[serde(default = "default_groups")]
    pub groups: Vec<Group>,
    /// A failing critical check fails its verdicts; a failing non-critical one
    /// reports `warn` and does not. Default `true`.
    #[serde(default = "yes")]
    pub critical: bool,
    /// Overrides `defaults.interval`.
    #[serde(default, with = "super::duration")]
    pub interval: Option<Duration>,
    /// Overrides `defaults.timeout`.
    #[serde(default, with = "super::duration")]
    pub timeout: Option<Duration>,
    /// Overrides `defaults.initial_delay`.
    #[serde(default, with = "super::duration")]
    pub initial_delay: Option<Duration>,
    /// Overrides `defaults.start_period`.
    #[serde(default, with = "super::duration")]
    pub start_period: Option<Duration>,
    /// Overrides `defaults.success_threshold`.
    #[serde(default)]
    pub success_threshold: Option<u32>,
    /// Overrides `defaults.failure_threshold`.
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    /// Overrides `defaults.start_interval`.
    #[serde(default, with = "super::duration")]
    pub start_interval: Option<Duration>,
    /// Overrides `defaults.failing_interval`.
    #[serde(default, with = "super::duration")]
    pub failing_interval: Option<Duration>,
    /// Overrides `defaults.failure_window`.
    #[serde(default)]
    pub failure_window: Option<FailureWindow>,
    /// Overrides `defaults.success_window`.
    #[serde(default)]
    pub success_window: Option<SuccessWindow>,
    /// Marks a check of something every instance shares (a database, a
    /// queue, an upstream API). A failing dependency check does not fail
    /// readiness: it reports `fail` (metrics, alerts, `/health`) while
    /// `/readyz` stays 200 with the failure named. Readiness that fails on a
    /// shared dependency takes every instance out of rotation at once, and
    /// a load balancer with nowhere to send traffic answers 503 for all of
    /// it; serving and letting requests fail on the dependency is usually
    /// better. Leave it `false` when an instance can fail the dependency on
    /// its own (its own connection pool, its own credentials) and should then
    /// leave rotation. Liveness is never affected by a dependency check.
    /// Default `false`.
    #[serde(default)]
    pub dependency: bool,
}

/// `expect.max_duration` and `expect.slow`: a latency expectation every
/// check type accepts in its `[checks.expect]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySection {
    /// A run that passes but takes longer than this counts as `slow`. Off unless set.
    #[serde(default, with = "super::duration")]
    pub max_duration: Option<Duration>,
    /// What a slow run is: `fail` (a failure, the default) or `warn` (a
    /// success with a warning: the check reports `warn` and fails no verdict).
    #[serde(default)]
    pub slow: SlowMode,
}

/// How a run slower than `expect.max_duration` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowMode {
    /// As a failure (`slow`).
    #[default]
    Fail,
    /// As a success with a warning (`slow`).
    Warn,
}

fn default_groups() -> Vec<Group> {
    vec![Group::Readiness]
}

/// A verdict a check can take part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// `/livez`: does the process work at all (restart it if not)?
    Liveness,
    /// `/readyz`: may traffic come?
    Readiness,
    /// `/startupz`: has the service finished starting (latched)?
    Startup,
}

impl Group {
    /// The group's name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Liveness => "liveness",
            Group::Readiness => "readiness",
            Group::Startup => "startup",
        }
    }
}

/// The groups a check takes part in: a set of three bits, copied rather than
/// allocated (every result copies its check's view, groups included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Groups(u8);

impl Groups {
    const ALL: [Group; 3] = [Group::Liveness, Group::Readiness, Group::Startup];

    /// Whether `group` is in the set.
    pub fn contains(self, group: Group) -> bool {
        self.0 & Self::bit(group) != 0
    }

    /// The groups in the set, in [`Group`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Group> {
        Self::ALL.into_iter().filter(move |g| self.contains(*g))
    }

    fn bit(group: Group) -> u8 {
        1 << group as u8
    }
}

impl FromIterator<Group> for Groups {
    fn from_iter<I: IntoIterator<Item = Group>>(groups: I) -> Self {
        Self(groups.into_iter().fold(0, |set, g| set | Self::bit(g)))
    }
}

/// `type = "http"`: an HTTP or HTTPS request.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// `http://` or `https://` URL. Userinfo (`https://user:pass@host/`) is sent
    /// as basic auth and never printed.
    pub url: String,
    /// Request method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers. Values are treated as secrets: never logged or shown.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, e.g. for a POST.
    #[serde(default)]
    pub body: Option<String>,
    /// Follow 3xx redirects (at most 10) instead of judging the 3xx itself. Default `false`.
    #[serde(default)]
    pub follow_redirects: bool,
    /// Keep one connection open between runs instead of a fresh connection per
    /// run. A fresh connection (the default, as kubelet does) also catches a
    /// full accept backlog.
    #[serde(default)]
    pub reuse_connection: bool,
    /// Most of the response body read, in bytes (default 65536, at most 16 MiB).
    /// A larger body fails as `body_too_large` when a body expectation needs it,
    /// and is otherwise cut off there.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// `[checks.tls]`: certificate verification for `https://`.
    #[serde(default)]
    pub tls: TlsSection,
    /// `[checks.expect]`: what a passing response looks like.
    #[serde(default)]
    pub expect: HttpExpectSection,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_max_body_bytes() -> u64 {
    64 * 1024
}

/// `[checks.tls]`: how an `https://` server is verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Root certificates to trust: `webpki` (Mozilla's bundle, built in; the
    /// default) or `native` (the system's store).
    #[serde(default)]
    pub roots: RootsKind,
    /// PEM file of extra CA certificates to trust (added to `roots`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name to send as SNI and verify the certificate against, instead of the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any certificate. Only for testing: the connection is encrypted
    /// but not authenticated.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Which root certificate store an https check trusts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootsKind {
    /// Mozilla's root bundle compiled into the binary.
    #[default]
    Webpki,
    /// The operating system's trust store.
    Native,
}

/// `[checks.expect]` of an http check. Every expectation given must hold.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpectSection {
    /// Accepted status codes: numbers (`301`) and classes (`"2xx"`). Default `["2xx"]`.
    #[serde(default = "default_status")]
    pub status: Vec<StatusPattern>,
    /// The body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The body must match this regular expression (Rust `regex` syntax).
    #[serde(default)]
    pub body_regex: Option<String>,
    /// The body must be JSON, and each RFC 6901 pointer must hold the given
    /// value, e.g. `{ "/status" = "UP" }`.
    #[serde(default)]
    pub json: BTreeMap<String, serde_json::Value>,
}

impl Default for HttpExpectSection {
    fn default() -> Self {
        Self {
            status: default_status(),
            body_contains: None,
            body_regex: None,
            json: BTreeMap::new(),
        }
    }
}

fn default_status() -> Vec<StatusPattern> {
    vec![StatusPattern::Text("2xx".to_owned())]
}

/// A status code (`200`) or class (`"2xx"`) as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StatusPattern {
    /// `200`
    Code(u16),
    /// `"2xx"` or `"200"`
    Text(String),
}

/// `type = "tcp"`: a TCP connect, optionally followed by an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSection {
    /// `host:port` to connect to; a host name is resolved on every run.
    pub address: String,
    /// `[[checks.exchange]]`: steps after connecting, in order, all within the
    /// timeout. Each sends its `send` (if any), then waits until what the peer
    /// has sent so far matches its `expect` (if any). E.g. Redis without
    /// redis-cli: `send = "PING\r\n"`, `expect = "^\\+PONG"`; an SMTP banner:
    /// `expect = "^220 "`. Default: connect only.
    #[serde(default)]
    pub exchange: Vec<ExchangeStep>,
    /// Most bytes of the peer's answers kept for matching (default 4096, at most 64 KiB).
    #[serde(default = "default_max_output_bytes")]
    pub max_response_bytes: u64,
}

/// One step of a tcp exchange.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeStep {
    /// Bytes to send (TOML escapes such as `\r\n` apply).
    #[serde(default)]
    pub send: Option<String>,
    /// Regular expression the peer's answer (everything it sent since the
    /// previous step matched) must match.
    #[serde(default)]
    pub expect: Option<String>,
}

/// `type = "exec"`: a command run on every check. `type = "script"` is the
/// same with `expect.exit_codes = "nagios"` as its default: Nagios plugins
/// and Consul script checks work unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSection {
    /// The program and its arguments (argv), run without a shell:
    /// `["redis-cli", "ping"]`. With `shell = true`, one string run by
    /// `/bin/sh -c`: `"pg_isready && test -f /ready"` (or a list of that one string).
    pub command: CommandLine,
    /// Run `command` through `/bin/sh -c`. Default `false`.
    #[serde(default)]
    pub shell: bool,
    /// Extra environment variables for the command (values never shown).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the command. Default: healthgate's own.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Most bytes of stdout and of stderr kept (each; default 4096, at most 1 MiB).
    /// The rest is read and discarded so the command never blocks on a full pipe.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: u64,
    /// Put the first line of the command's output in the run's message
    /// (`exit code 2: DISK CRITICAL - 97% used`), which every endpoint shows,
    /// the load-balancer listener's `/readyz?verbose` and `/health`
    /// included. Output can hold a secret (a connection string, a token a
    /// tool echoes), so it is off unless set: the message is then the exit
    /// code and the verdict alone. `expect.output_*` match the whole output
    /// either way. Default `false`.
    #[serde(default)]
    pub show_output: bool,
    /// `[checks.expect]`: what a passing run looks like.
    #[serde(default)]
    pub expect: ExecExpectSection,
}

/// An exec check's `command`: a list of arguments, or one string for a shell.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "a list of strings such as [\"redis-cli\", \"ping\"], or one string with shell = true"
)]
pub enum CommandLine {
    /// `"echo hi"`: a script for `/bin/sh -c` (`shell = true` only).
    Script(String),
    /// `["echo", "hi"]`: the program and its arguments.
    Argv(Vec<String>),
}

/// How an exec check reads exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitCodesKind {
    /// `exit_code` passes, anything else fails.
    Exact,
    /// Nagios plugin semantics: 0 pass, 1 warn, 2+ fail.
    Nagios,
}

fn default_max_output_bytes() -> u64 {
    4096
}

/// `[checks.expect]` of an exec check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecExpectSection {
    /// Exit code of a passing run (with `exit_codes = "exact"`). Default `0`.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// How exit codes are read: `exact` (`exit_code` passes, anything else
    /// fails) or `nagios` (0 `OK` passes, 1 `WARNING` passes with a warning,
    /// 2 `CRITICAL` and 3 `UNKNOWN` or more fail; the first line of stdout is
    /// the message). Default `exact` for `type = "exec"`, `nagios` for `type = "script"`.
    #[serde(default)]
    pub exit_codes: Option<ExitCodesKind>,
    /// Stdout followed by stderr must contain this text.
    #[serde(default)]
    pub output_contains: Option<String>,
    /// Stdout followed by stderr must match this regular expression.
    #[serde(default)]
    pub output_regex: Option<String>,
}

/// `type = "grpc"`: `grpc.health.v1.Health/Check` on a fresh connection per
/// run (as kubelet's grpc probe). `SERVING` passes; `NOT_SERVING`,
/// `UNKNOWN` and an unknown service fail with their own categories.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcSection {
    /// `host:port` of the gRPC server.
    pub address: String,
    /// The service name to ask about; `""` (the default) asks about the server as a whole.
    #[serde(default)]
    pub service: String,
    /// `:authority` to send, e.g. for a server behind a proxy that routes by
    /// it. Default: `address`.
    #[serde(default)]
    pub authority: Option<String>,
    /// Request metadata (gRPC headers), e.g. a token. Values are secrets:
    /// never logged or shown.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// `[checks.tls]`: connect over TLS, verifying the server with these
    /// settings (`tls = {}` for the defaults). Plaintext (h2c) unless set.
    #[serde(default)]
    pub tls: Option<TlsSection>,
}

/// `type = "dns"`: one DNS query, no cache, no retries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// The name to look up. Without a trailing dot the system's search
    /// domains may apply (with `server` unset); write `db.internal.` to mean exactly that name.
    pub query: String,
    /// Record type: `A`, `AAAA`, `CNAME`, `MX`, `TXT`, `SRV`, `NS`, `PTR`,
    /// `SOA` or `CAA`. Default `A`.
    #[serde(default = "default_record_type")]
    pub record_type: String,
    /// `IP:PORT` (or `IP`, port 53) of the resolver to ask. Default: the
    /// first nameserver of `/etc/resolv.conf`.
    #[serde(default)]
    pub server: Option<String>,
    /// `udp` (the default) or `tcp`.
    #[serde(default)]
    pub protocol: DnsProtocol,
    /// `[checks.expect]`: what a passing answer looks like.
    #[serde(default)]
    pub expect: DnsExpectSection,
}

fn default_record_type() -> String {
    "A".to_owned()
}

/// How a dns check talks to the resolver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsProtocol {
    /// UDP.
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

/// `[checks.expect]` of a dns check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsExpectSection {
    /// Expected response code: `NOERROR` (the default), `NXDOMAIN` (the name
    /// must not exist), `SERVFAIL`, `REFUSED`.
    #[serde(default = "default_rcode")]
    pub rcode: String,
    /// Each of these must be among the answers, as written in a zone file
    /// (`10.0.0.5`, `10 mail.example.com.`, a TXT string).
    #[serde(default)]
    pub answers_contain: Vec<String>,
    /// At least one answer must match this regular expression.
    #[serde(default)]
    pub answer_regex: Option<String>,
    /// Least number of answers. Default `1` when `rcode` is `NOERROR`, else `0`.
    #[serde(default)]
    pub min_answers: Option<u32>,
}

impl Default for DnsExpectSection {
    fn default() -> Self {
        Self {
            rcode: default_rcode(),
            answers_contain: Vec::new(),
            answer_regex: None,
            min_answers: None,
        }
    }
}

fn default_rcode() -> String {
    "NOERROR".to_owned()
}

/// `type = "tls"`: connect and complete a TLS handshake, nothing more. Fails
/// on an invalid chain (`tls`) or an expired certificate (`cert_expired`);
/// warns (`cert_expiring`) when the earliest expiry in the chain is closer
/// than `expect.cert_min_validity`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsProbeSection {
    /// `host:port` to connect to. The host is also the SNI name unless `tls.server_name` is set.
    pub address: String,
    /// `[checks.tls]`: how the chain is verified.
    #[serde(default)]
    pub tls: TlsSection,
    /// `[checks.expect]`
    #[serde(default)]
    pub expect: TlsExpectSection,
}

/// `[checks.expect]` of a tls check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsExpectSection {
    /// Warn when a certificate of the chain expires within this. Default `"14d"`.
    #[serde(default = "default_cert_min_validity", with = "super::duration")]
    pub cert_min_validity: Duration,
}

impl Default for TlsExpectSection {
    fn default() -> Self {
        Self {
            cert_min_validity: default_cert_min_validity(),
        }
    }
}

fn default_cert_min_validity() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}

/// `type = "disk"`: space and inodes of the filesystem holding `path`
/// (statvfs; nothing is run). Percentages count the space root may use, as `df` does.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSection {
    /// A path on the filesystem to watch, e.g. `/var/lib/postgresql`.
    pub path: PathBuf,
    /// Warn above this percentage of space used (0-100). Off unless set.
    #[serde(default)]
    pub warn_above: Option<f64>,
    /// Fail above this percentage of space used (0-100). Default `95`.
    #[serde(default = "default_disk_fail_above")]
    pub fail_above: f64,
    /// Fail when fewer bytes than this are free for unprivileged users. Off unless set.
    #[serde(default)]
    pub min_free_bytes: Option<u64>,
    /// Warn above this percentage of inodes used. Off unless set.
    #[serde(default)]
    pub inodes_warn_above: Option<f64>,
    /// Fail above this percentage of inodes used. Default `95`.
    #[serde(default = "default_disk_fail_above")]
    pub inodes_fail_above: f64,
}

fn default_disk_fail_above() -> f64 {
    95.0
}

/// `type = "memory"`: memory use against the limit that actually applies.
/// Inside a container the host's figures lie, so the cgroup v2 limit and
/// working set are read (`memory.max`; `memory.current` minus
/// `inactive_file` from `memory.stat`, as the kubelet counts it), and PSI
/// pressure from `memory.pressure` where present. Without a cgroup limit, the
/// host's `/proc/meminfo` (`MemTotal` minus `MemAvailable`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySection {
    /// Warn above this percentage of the limit used. Off unless set.
    #[serde(default)]
    pub warn_above: Option<f64>,
    /// Fail above this percentage of the limit used. Default `95`.
    #[serde(default = "default_disk_fail_above")]
    pub fail_above: f64,
    /// Warn when PSI `some avg10` (percent of the last 10 s some task
    /// stalled on memory) is above this. Off unless set.
    #[serde(default)]
    pub pressure_warn_above: Option<f64>,
    /// Fail when PSI `some avg10` is above this. Off unless set.
    #[serde(default)]
    pub pressure_fail_above: Option<f64>,
    /// The cgroup v2 directory to read. Default: this process's own (from
    /// `/proc/self/cgroup`, under `/sys/fs/cgroup`); set it to watch
    /// another container's cgroup from a privileged sidecar.
    #[serde(default)]
    pub cgroup_dir: Option<PathBuf>,
}

/// `type = "push"`: nothing is probed; the service (or a batch job) reports
/// with `POST /api/checks/{name}/report` on the admin listener (the admin
/// API's auth applies), body `{"status": "pass" | "warn" | "fail",
/// "message": "..."}`. Each report counts as one run at once; with no report
/// for `ttl` the check fails (`ttl_expired`), and again every `ttl` after.
/// For workers that cannot be probed from outside (as Consul's TTL checks).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PushSection {
    /// Longest time between two reports.
    #[serde(with = "super::duration")]
    pub ttl: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_a_set_listed_in_order() {
        let groups: Groups = [Group::Startup, Group::Liveness, Group::Startup]
            .into_iter()
            .collect();
        assert!(groups.contains(Group::Startup) && groups.contains(Group::Liveness));
        assert!(!groups.contains(Group::Readiness));
        let listed: Vec<Group> = groups.iter().collect();
        assert_eq!(listed, [Group::Liveness, Group::Startup]);
        assert_eq!(Groups::default().iter().count(), 0);
    }
}
