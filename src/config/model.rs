//! The root sections (`[server]`, `[reload]`, `[telemetry]`) as the user
//! writes them: serde types whose doc comments are the reference. A bound
//! on a single value is its type ([`super::bounded`]); `validate` applies
//! the rules across keys and files and builds the [`Config`](super::Config)
//! the engine runs. Every duration is humantime (`"250ms"`, `"1h 30m"`) and
//! at most `"3650d"`, and most keys have a tighter bound, given with the
//! key. `[defaults]` is [`super::ScheduleSection`]; a check's keys are in
//! [`super::check`] and in its type's module.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bounded::{AtMost, Positive, Ratio, UpTo};

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
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: AtMost<600>,
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

fn default_shutdown_timeout() -> AtMost<600> {
    AtMost::known(Duration::from_secs(5))
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
    #[serde(default = "default_drain_min")]
    pub min: AtMost<3600>,
    /// Longest the drain lasts, whether or not anything asked. At most
    /// `"1h"`, so a SIGTERM always ends. Default `"20s"`.
    #[serde(default = "default_drain_max")]
    pub max: AtMost<3600>,
    /// Failing readiness answers (`/readyz` 503, gRPC `NOT_SERVING` for
    /// readiness, agent-check `drain`) to serve after the drain began before
    /// closing: proof that the load balancer has seen it. `0` waits for `min`
    /// only. At most `10000`. Default `1`.
    #[serde(default = "default_observed_probes")]
    pub observed_probes: UpTo<10_000>,
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

fn default_drain_min() -> AtMost<3600> {
    AtMost::known(Duration::from_secs(5))
}

fn default_drain_max() -> AtMost<3600> {
    AtMost::known(Duration::from_secs(20))
}

fn default_observed_probes() -> UpTo<10_000> {
    UpTo::known(1)
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
    #[serde(default = "default_debounce")]
    pub debounce: AtMost<10>,
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

fn default_debounce() -> AtMost<10> {
    AtMost::known(Duration::from_millis(250))
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
    pub sample_ratio: Ratio,
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
            sample_ratio: one_f64(),
            only_failures_and_transitions: false,
        }
    }
}

fn one_f64() -> Ratio {
    Ratio::known(1.0)
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
    #[serde(default)]
    pub timeout: Option<AtMost<3600>>,
    /// Time between metric exports, more than 0s and at most `"1h"`. Default `"15s"`.
    #[serde(default = "default_export_interval")]
    pub interval: Positive<3600>,
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

fn default_export_interval() -> Positive<3600> {
    Positive::known(Duration::from_secs(15))
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

fn yes() -> bool {
    true
}
