//! The validated config the engine runs: defaults applied, every value parsed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use rustls_pki_types::CertificateDer;

use super::model::{Groups, RootsKind};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The load-balancer listener.
    pub server: Server,
    /// How changes are picked up.
    pub reload: super::model::ReloadSection,
    /// Resource identity for metrics and traces.
    pub telemetry: super::model::TelemetrySection,
    /// Every check, in file order.
    pub checks: Vec<Check>,
}

/// Listener settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Address of the load-balancer listener (verdict endpoints only).
    pub listen: SocketAddr,
    /// Address of the admin listener.
    pub admin_listen: SocketAddr,
    /// Address of the gRPC health listener, if on.
    pub grpc_listen: Option<SocketAddr>,
    /// Address of the HAProxy agent-check listener, if on.
    pub agent_listen: Option<SocketAddr>,
    /// Bound on finishing in-flight requests at shutdown.
    pub shutdown_timeout: Duration,
    /// What happens between the signal and closing the listeners.
    pub drain: super::model::DrainSection,
    /// TLS on the load-balancer and gRPC listeners.
    pub tls: Option<super::model::ListenerTlsSection>,
    /// TLS on the admin listener.
    pub admin_tls: Option<super::model::ListenerTlsSection>,
    /// The bearer token admin requests need, if any (read from `admin.token_file`).
    pub admin_token: Option<Secret>,
    /// Agent-check weight while a non-critical check is not passing.
    pub agent_weight_on_warn: Option<u8>,
}

/// One validated check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Unique name.
    pub name: Arc<str>,
    /// Verdicts it takes part in.
    pub groups: Groups,
    /// Whether its failure fails its verdicts.
    pub critical: bool,
    /// A shared dependency: its failure does not fail readiness.
    pub dependency: bool,
    /// Latency expectation applied to every run.
    pub max_duration: Option<MaxDuration>,
    /// When and how often it runs, and how results become a verdict.
    pub schedule: Schedule,
    /// What it does.
    pub probe: ProbeSpec,
    /// The check as written (defaults applied into `schedule`), to tell a
    /// changed check from an unchanged one on reload.
    pub definition: Definition,
}

/// With the check's resolved `schedule` (compared by [`Check::same_as`], not
/// copied here), what identifies its behaviour: its table as written
/// (compact JSON with sorted keys: a few hundred bytes, where the parsed tree
/// took several times that per check and copy) and the CA certificates its
/// `tls.ca_file` held when loaded.
/// `Debug` shows nothing: the table may hold header values and passwords.
#[derive(Clone, PartialEq)]
pub struct Definition {
    pub(super) table: Box<str>,
    pub(super) extra_roots: Vec<CertificateDer<'static>>,
}

impl Check {
    /// Whether `other` is this check unchanged: the same table as written,
    /// the same schedule once defaults are applied (a changed `[defaults]`
    /// changes it) and the same CA certificates.
    pub fn same_as(&self, other: &Check) -> bool {
        self.schedule == other.schedule && self.definition == other.definition
    }
}

impl std::fmt::Debug for Definition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Definition(..)")
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

/// `count` of the last `of` runs (1 <= count <= of <= 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Runs needed.
    pub count: u32,
    /// Runs looked at.
    pub of: u32,
}

/// `expect.max_duration` with `expect.slow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxDuration {
    /// Slower passing runs are `slow`.
    pub limit: Duration,
    /// Whether `slow` fails or warns.
    pub slow: super::model::SlowMode,
}

/// What a check does, parsed and ready to run.
#[derive(Debug, Clone)]
pub enum ProbeSpec {
    /// An HTTP(S) request.
    Http(Arc<HttpSpec>),
    /// A TCP connect.
    Tcp(TcpSpec),
    /// A command.
    Exec(Box<ExecSpec>),
    /// A gRPC health check.
    Grpc(Box<GrpcSpec>),
    /// A DNS query.
    Dns(Box<DnsSpec>),
    /// A TLS handshake.
    Tls(Box<TlsProbeSpec>),
    /// Disk space and inodes.
    Disk(Box<DiskSpec>),
    /// Memory against its limit.
    Memory(Box<MemorySpec>),
    /// Reports pushed by the service.
    Push(PushSpec),
}

impl ProbeSpec {
    /// The `type` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeSpec::Http(_) => "http",
            ProbeSpec::Tcp(_) => "tcp",
            ProbeSpec::Exec(s) if s.script => "script",
            ProbeSpec::Exec(_) => "exec",
            ProbeSpec::Grpc(_) => "grpc",
            ProbeSpec::Dns(_) => "dns",
            ProbeSpec::Tls(_) => "tls",
            ProbeSpec::Disk(_) => "disk",
            ProbeSpec::Memory(_) => "memory",
            ProbeSpec::Push(_) => "push",
        }
    }
}

/// A validated http check.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    /// Target URL, userinfo removed.
    pub url: http::Uri,
    /// `Authorization` value built from the URL's userinfo, if any.
    pub basic_auth: Option<Secret>,
    /// Request method.
    pub method: http::Method,
    /// Extra request headers (values are secrets).
    pub headers: Vec<(http::HeaderName, Secret)>,
    /// Request body.
    pub body: Option<bytes::Bytes>,
    /// Follow 3xx responses.
    pub follow_redirects: bool,
    /// Keep one connection between runs.
    pub reuse_connection: bool,
    /// Bound on the body read.
    pub max_body_bytes: usize,
    /// TLS verification.
    pub tls: TlsSpec,
    /// What passes.
    pub expect: HttpExpect,
}

/// TLS verification for https checks.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    /// Base root store.
    pub roots: RootsKind,
    /// Extra trusted CAs read from `tls.ca_file`.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// SNI and verification name override.
    pub server_name: Option<String>,
    /// Skip verification entirely.
    pub insecure_skip_verify: bool,
}

/// Expectations of an http check.
#[derive(Debug, Clone)]
pub struct HttpExpect {
    /// Accepted statuses.
    pub status: Vec<StatusMatch>,
    /// Substring of the body.
    pub body_contains: Option<String>,
    /// Pattern the body must match.
    pub body_regex: Option<Regex>,
    /// JSON pointer -> expected value.
    pub json: BTreeMap<String, serde_json::Value>,
}

impl HttpExpect {
    /// Whether any expectation needs the body.
    pub fn needs_body(&self) -> bool {
        self.body_contains.is_some() || self.body_regex.is_some() || !self.json.is_empty()
    }
}

/// One accepted status: a code or a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// Exactly this code.
    Code(u16),
    /// Any code `c` with `c / 100 == class`.
    Class(u16),
}

impl StatusMatch {
    /// Whether `code` is accepted.
    pub fn matches(self, code: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == code,
            StatusMatch::Class(class) => code / 100 == class,
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "{c}xx"),
        }
    }
}

/// A validated tcp check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// `host:port`.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Steps after connecting.
    pub exchange: Vec<Step>,
    /// Bound on the answer kept for matching.
    pub max_response_bytes: usize,
}

/// A validated exchange step.
#[derive(Debug, Clone)]
pub struct Step {
    /// What to send.
    pub send: Option<bytes::Bytes>,
    /// What the answer must match.
    pub expect: Option<Regex>,
}

impl PartialEq for Step {
    fn eq(&self, other: &Self) -> bool {
        self.send == other.send
            && self.expect.as_ref().map(Regex::as_str) == other.expect.as_ref().map(Regex::as_str)
    }
}

impl Eq for Step {}

/// A validated exec check.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// argv (with `shell`, `["/bin/sh", "-c", script]`).
    pub argv: Vec<String>,
    /// Extra environment (values are secrets).
    pub env: Vec<(String, Secret)>,
    /// Working directory.
    pub working_dir: Option<PathBuf>,
    /// Bound on each captured stream.
    pub max_output_bytes: usize,
    /// How the exit code is judged.
    pub exit_codes: ExitCodes,
    /// Written as `type = "script"`.
    pub script: bool,
    /// Substring of the output.
    pub output_contains: Option<String>,
    /// Pattern the output must match.
    pub output_regex: Option<Regex>,
    /// Whether the first line of output goes into the message.
    pub show_output: bool,
}

/// A validated grpc check.
#[derive(Debug, Clone)]
pub struct GrpcSpec {
    /// Host to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Service name asked about.
    pub service: String,
    /// `:authority` override.
    pub authority: Option<String>,
    /// Request metadata (values are secrets).
    pub metadata: Vec<(String, Secret)>,
    /// TLS, when on.
    pub tls: Option<TlsSpec>,
}

/// A validated dns check.
#[derive(Debug, Clone)]
pub struct DnsSpec {
    /// Name looked up.
    pub name: String,
    /// Record type asked for.
    pub record_type: hickory_resolver::proto::rr::RecordType,
    /// Resolver to ask (`None`: the system's).
    pub server: Option<SocketAddr>,
    /// Over TCP instead of UDP.
    pub tcp: bool,
    /// Expected response code.
    pub rcode: hickory_resolver::proto::op::ResponseCode,
    /// Answers that must be present.
    pub answers_contain: Vec<String>,
    /// Pattern one answer must match.
    pub answer_regex: Option<Regex>,
    /// Least number of answers.
    pub min_answers: u32,
}

/// A validated tls check.
#[derive(Debug, Clone)]
pub struct TlsProbeSpec {
    /// Host to connect to (and SNI name unless overridden).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Verification.
    pub tls: TlsSpec,
    /// Warn when the chain expires sooner than this.
    pub cert_min_validity: Duration,
}

/// A validated disk check (percentages 0-100).
#[derive(Debug, Clone, PartialEq)]
pub struct DiskSpec {
    /// A path on the filesystem.
    pub path: PathBuf,
    /// Space warn threshold.
    pub warn_above: Option<f64>,
    /// Space fail threshold.
    pub fail_above: f64,
    /// Least free bytes.
    pub min_free_bytes: Option<u64>,
    /// Inode warn threshold.
    pub inodes_warn_above: Option<f64>,
    /// Inode fail threshold.
    pub inodes_fail_above: f64,
}

/// A validated memory check (percentages 0-100).
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySpec {
    /// Usage warn threshold.
    pub warn_above: Option<f64>,
    /// Usage fail threshold.
    pub fail_above: f64,
    /// PSI `some avg10` warn threshold.
    pub pressure_warn_above: Option<f64>,
    /// PSI `some avg10` fail threshold.
    pub pressure_fail_above: Option<f64>,
    /// cgroup v2 directory (`None`: this process's).
    pub cgroup_dir: Option<PathBuf>,
}

/// A validated push check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushSpec {
    /// Longest time between reports.
    pub ttl: Duration,
}

/// How an exec check judges the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCodes {
    /// This code passes, any other fails.
    Exact(i32),
    /// 0 pass, 1 warn, 2 and above fail.
    Nagios,
}

/// A string that must never be shown: `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
