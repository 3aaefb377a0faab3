//! Probes observe: each runs once against its target and returns an [`Outcome`].
//! They keep no verdict state; thresholds live in `health`.

pub mod cert;
pub mod disk;
pub mod dns;
pub mod exec;
pub mod grpc;
pub mod http;
pub mod memory;
mod net;
pub mod orphans;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub use cert::CertProbe;
pub use disk::DiskProbe;
pub use dns::DnsProbe;
pub use exec::ExecProbe;
pub use grpc::GrpcProbe;
pub use http::HttpProbe;
pub use memory::MemoryProbe;
pub use tcp::TcpProbe;
pub use udp::UdpProbe;

/// Why a probe failed. A small, stable set: dashboards and alerts group by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The target's name did not resolve.
    Dns,
    /// The target refused the connection.
    ConnectRefused,
    /// The connection was not established within the timeout.
    ConnectTimeout,
    /// Any other connect failure (unreachable network, reset).
    Connect,
    /// Connected (or asked), but no complete answer within the timeout.
    Timeout,
    /// The TLS handshake failed (bad certificate chain, wrong name, protocol).
    Tls,
    /// (warn) The earliest expiry in the certificate chain is within `expect.cert_min_validity`.
    CertExpiring,
    /// A certificate in the chain has expired (or is not yet valid).
    CertExpired,
    /// The answer was not valid HTTP (or gRPC, or DNS), or the connection broke mid-answer.
    Protocol,
    /// The HTTP status was not an accepted one.
    StatusMismatch,
    /// The body did not contain or match what was expected.
    BodyMismatch,
    /// The body was not JSON, or a pointer did not hold the expected value.
    JsonMismatch,
    /// The body was larger than `max_body_bytes` and an expectation needed it.
    BodyTooLarge,
    /// A tcp exchange's answer did not match its `expect`, or the peer closed first.
    ResponseMismatch,
    /// The gRPC health service answered `NOT_SERVING`.
    GrpcNotServing,
    /// The gRPC health service answered `UNKNOWN`.
    GrpcUnknown,
    /// The gRPC health service does not know the service name (`NOT_FOUND` or `SERVICE_UNKNOWN`).
    GrpcServiceUnknown,
    /// The health RPC itself failed with another gRPC status (e.g. `UNIMPLEMENTED`).
    GrpcError,
    /// The DNS answer's response code was not the expected one (e.g. `NXDOMAIN`, `SERVFAIL`).
    DnsRcode,
    /// The DNS answers did not hold what was expected.
    DnsAnswerMismatch,
    /// Disk or inode usage is above `warn_above` (warn) or `fail_above`.
    DiskThreshold,
    /// Memory usage or pressure is above `warn_above` (warn) or `fail_above`.
    MemoryThreshold,
    /// The figures of a disk or memory check could not be read.
    ResourceRead,
    /// The run passed but took longer than `expect.max_duration`.
    Slow,
    /// The command exited with another code (Nagios: 2 `CRITICAL`, 3 `UNKNOWN`), or was killed by a signal.
    ExecExitCode,
    /// (warn) A Nagios-style command exited 1 (`WARNING`).
    ExecWarning,
    /// The command's output did not contain or match what was expected.
    ExecOutputMismatch,
    /// The command did not finish within the timeout; its process group was killed.
    ExecTimeout,
    /// The command could not be started.
    ExecSpawn,
    /// A push check's reporter said `warn` or `fail`.
    Reported,
    /// No report reached a push check within its `ttl`.
    TtlExpired,
}

impl Category {
    /// Every category, for documentation and exporters.
    pub const ALL: [Category; 31] = [
        Category::Dns,
        Category::ConnectRefused,
        Category::ConnectTimeout,
        Category::Connect,
        Category::Timeout,
        Category::Tls,
        Category::CertExpiring,
        Category::CertExpired,
        Category::Protocol,
        Category::StatusMismatch,
        Category::BodyMismatch,
        Category::JsonMismatch,
        Category::BodyTooLarge,
        Category::ResponseMismatch,
        Category::GrpcNotServing,
        Category::GrpcUnknown,
        Category::GrpcServiceUnknown,
        Category::GrpcError,
        Category::DnsRcode,
        Category::DnsAnswerMismatch,
        Category::DiskThreshold,
        Category::MemoryThreshold,
        Category::ResourceRead,
        Category::Slow,
        Category::ExecExitCode,
        Category::ExecWarning,
        Category::ExecOutputMismatch,
        Category::ExecTimeout,
        Category::ExecSpawn,
        Category::Reported,
        Category::TtlExpired,
    ];

    /// The category's name as shown in output and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Dns => "dns",
            Category::ConnectRefused => "connect_refused",
            Category::ConnectTimeout => "connect_timeout",
            Category::Connect => "connect",
            Category::Timeout => "timeout",
            Category::Tls => "tls",
            Category::CertExpiring => "cert_expiring",
            Category::CertExpired => "cert_expired",
            Category::Protocol => "protocol",
            Category::StatusMismatch => "status_mismatch",
            Category::BodyMismatch => "body_mismatch",
            Category::JsonMismatch => "json_mismatch",
            Category::BodyTooLarge => "body_too_large",
            Category::ResponseMismatch => "response_mismatch",
            Category::GrpcNotServing => "grpc_not_serving",
            Category::GrpcUnknown => "grpc_unknown",
            Category::GrpcServiceUnknown => "grpc_service_unknown",
            Category::GrpcError => "grpc_error",
            Category::DnsRcode => "dns_rcode",
            Category::DnsAnswerMismatch => "dns_answer_mismatch",
            Category::DiskThreshold => "disk_threshold",
            Category::MemoryThreshold => "memory_threshold",
            Category::ResourceRead => "resource_read",
            Category::Slow => "slow",
            Category::ExecExitCode => "exec_exit_code",
            Category::ExecWarning => "exec_warning",
            Category::ExecOutputMismatch => "exec_output_mismatch",
            Category::ExecTimeout => "exec_timeout",
            Category::ExecSpawn => "exec_spawn",
            Category::Reported => "reported",
            Category::TtlExpired => "ttl_expired",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `None` when the run passed; why it failed otherwise.
    pub failure: Option<Category>,
    /// Set when the run passed but something is wrong enough to show:
    /// a certificate near expiry, a slow answer, a Nagios `WARNING`, a
    /// threshold crossed. Counts as a success for thresholds; the check
    /// reports `warn` (which fails no verdict).
    pub warning: Option<Category>,
    /// A short human message (one line, bounded, never a secret).
    pub message: String,
    /// How long the run took.
    pub duration: Duration,
    /// The HTTP status of the last response, for http checks that got one.
    pub http_status: Option<u16>,
    /// When the run started (wall clock, for traces).
    pub started_at: SystemTime,
    /// The timed phases of the run (dns, connect, tls, first_byte, body), in order.
    pub phases: Vec<Phase>,
    /// What the run talked to, for traces; never holds a secret.
    pub target: Option<Arc<Target>>,
    /// The earliest expiry in the TLS chain the server presented (https).
    pub cert_not_after: Option<SystemTime>,
}

/// One timed phase of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// `dns`, `connect`, `tls`, `first_byte` or `body`.
    pub name: &'static str,
    /// When it started.
    pub start: SystemTime,
    /// How long it took.
    pub duration: Duration,
}

/// Times one phase: `Timer::start()`, then `finish(name)`.
pub struct Timer(SystemTime, Instant);

impl Timer {
    /// Starts timing now.
    pub fn start() -> Self {
        Self(SystemTime::now(), Instant::now())
    }

    /// The phase, ending now.
    pub fn finish(self, name: &'static str) -> Phase {
        Phase {
            name,
            start: self.0,
            duration: self.1.elapsed(),
        }
    }
}

/// What a probe talks to, as OpenTelemetry's semantic conventions name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `server.address`: host name or IP.
    pub address: String,
    /// `server.port`.
    pub port: u16,
    /// `url.full`, without userinfo and with query values redacted.
    pub url: Option<String>,
    /// `http.request.method`.
    pub method: Option<String>,
}

impl Target {
    /// `host:port`, with no URL or method: what a tcp, udp or tls check talks to.
    pub fn endpoint(host: &str, port: u16) -> Arc<Self> {
        Arc::new(Self {
            address: host.to_owned(),
            port,
            url: None,
            method: None,
        })
    }
}

impl Outcome {
    /// A passing outcome (duration filled in by [`run`]).
    pub fn pass(message: impl Into<String>) -> Self {
        Self {
            failure: None,
            warning: None,
            message: one_line(message.into()),
            duration: Duration::ZERO,
            http_status: None,
            started_at: SystemTime::UNIX_EPOCH,
            phases: Vec::new(),
            target: None,
            cert_not_after: None,
        }
    }

    /// A failing outcome (duration filled in by [`run`]).
    pub fn fail(category: Category, message: impl Into<String>) -> Self {
        Self {
            failure: Some(category),
            warning: None,
            message: one_line(message.into()),
            duration: Duration::ZERO,
            http_status: None,
            started_at: SystemTime::UNIX_EPOCH,
            phases: Vec::new(),
            target: None,
            cert_not_after: None,
        }
    }

    /// A passing outcome with a warning (duration filled in by [`run`]).
    pub fn warn(category: Category, message: impl Into<String>) -> Self {
        Self {
            warning: Some(category),
            ..Self::pass(message)
        }
    }

    /// `pass`, `warn` or `fail`, as labels and output show the run.
    pub fn result(&self) -> &'static str {
        result_name(self.failure, self.warning)
    }

    /// The category to show: the failure's, else the warning's.
    pub fn category(&self) -> Option<Category> {
        self.failure.or(self.warning)
    }

    /// The same outcome, noting the HTTP status it came with.
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// `pass`, `warn` or `fail` for a run that failed with `failure` or warned with `warning`.
pub fn result_name(failure: Option<Category>, warning: Option<Category>) -> &'static str {
    match (failure, warning) {
        (Some(_), _) => "fail",
        (None, Some(_)) => "warn",
        (None, None) => "pass",
    }
}

const MAX_MESSAGE: usize = 200;

/// First line, control characters escaped (`\u{1b}`: no ANSI escape, NUL
/// or carriage return reaches a terminal, a log line or a load balancer),
/// at most [`MAX_MESSAGE`] bytes (cut on a char boundary).
fn one_line(message: String) -> String {
    let line = message.lines().next().unwrap_or_default().trim_end();
    if line.len() <= MAX_MESSAGE && line.len() == message.len() && !line.contains(char::is_control)
    {
        return message;
    }
    let escaped: String;
    let line = if line.contains(char::is_control) {
        escaped = line
            .chars()
            .flat_map(|c| {
                let escape = c.is_control().then(|| c.escape_default());
                let plain = (!c.is_control()).then_some(c);
                escape.into_iter().flatten().chain(plain)
            })
            .collect();
        escaped.as_str()
    } else {
        line
    };
    if line.len() <= MAX_MESSAGE {
        return line.to_owned();
    }
    let mut end = line.len().min(MAX_MESSAGE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let cut = if end < line.len() { "…" } else { "" };
    format!("{}{cut}", &line[..end])
}

/// Shortest secret blanked out of messages: shorter ones would garble
/// ordinary words.
const MIN_SECRET: usize = 3;

/// `values` as a probe's secrets: long enough to blank, longest first (a
/// secret inside another is blanked with it), each once.
pub(crate) fn secrets(values: impl IntoIterator<Item = String>) -> Box<[Box<str>]> {
    let mut found: Vec<String> = values
        .into_iter()
        .filter(|s| s.len() >= MIN_SECRET)
        .collect();
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found.into_iter().map(String::into_boxed_str).collect()
}

/// `message` with every one of `secrets` replaced by `REDACTED`: what a
/// probe sends as a secret (a header, metadata, a password, an environment
/// value) and a target echoes back (in a body, a JSON value, a status
/// message, a command's output) never reaches a message.
pub(crate) fn scrub(message: String, secrets: &[Box<str>]) -> String {
    if !secrets.iter().any(|s| message.contains(&**s)) {
        return message;
    }
    secrets
        .iter()
        .fold(message, |m, secret| m.replace(&**secret, "REDACTED"))
}

/// A boxed future, as probes return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that can be checked once. Implementations must respect `deadline`
/// themselves (so they can name the stage that ran out of time and clean up);
/// [`run`] only adds a safety net.
pub trait Probe: Send + Sync + 'static {
    /// Runs once, finishing by `deadline`.
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome>;
}

/// What a check probes, resolved from its section and ready to run.
#[derive(Debug, Clone)]
pub enum ProbeSpec {
    /// An HTTP(S) request.
    Http(Arc<http::HttpSpec>),
    /// A TCP connect.
    Tcp(tcp::TcpSpec),
    /// A command.
    Exec(Box<exec::ExecSpec>),
    /// A gRPC health check.
    Grpc(Box<grpc::GrpcSpec>),
    /// A DNS query.
    Dns(Box<dns::DnsSpec>),
    /// A TLS handshake.
    Tls(Box<cert::TlsProbeSpec>),
    /// Disk space and inodes.
    Disk(Box<disk::DiskSpec>),
    /// Memory against its limit.
    Memory(Box<memory::MemorySpec>),
    /// A datagram and its answer.
    Udp(Box<udp::UdpSpec>),
}

/// Builds the probe for a validated spec. Built once per check, so clients,
/// TLS configs and compiled patterns are shared by every run.
pub fn build(spec: &ProbeSpec) -> Arc<dyn Probe> {
    match spec {
        ProbeSpec::Http(s) => Arc::new(HttpProbe::new(s.clone())),
        ProbeSpec::Tcp(s) => Arc::new(TcpProbe::new(s.clone())),
        ProbeSpec::Exec(s) => Arc::new(ExecProbe::new(exec::ExecSpec::clone(s))),
        ProbeSpec::Tls(s) => Arc::new(CertProbe::new(cert::TlsProbeSpec::clone(s))),
        ProbeSpec::Grpc(s) => Arc::new(GrpcProbe::new(grpc::GrpcSpec::clone(s))),
        ProbeSpec::Disk(s) => Arc::new(DiskProbe::new(disk::DiskSpec::clone(s))),
        ProbeSpec::Memory(s) => Arc::new(MemoryProbe::new(memory::MemorySpec::clone(s))),
        ProbeSpec::Dns(s) => Arc::new(DnsProbe::new(dns::DnsSpec::clone(s))),
        ProbeSpec::Udp(s) => Arc::new(UdpProbe::new(udp::UdpSpec::clone(s))),
    }
}

/// Grace past the deadline before the safety net drops a probe that ignores it.
const SAFETY_GRACE: Duration = Duration::from_secs(2);

/// Runs `probe` once within `timeout`, measuring its duration.
pub async fn run(probe: &dyn Probe, timeout: Duration) -> Outcome {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let deadline = start + timeout;
    let mut outcome =
        match tokio::time::timeout_at(deadline + SAFETY_GRACE, probe.check(deadline)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::fail(
                Category::Timeout,
                format!("timed out after {}", crate::units::human(timeout)),
            ),
        };
    outcome.duration = start.elapsed();
    outcome.started_at = started_at;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_blanked_longest_first() {
        let secrets = secrets([
            "ab".to_owned(),
            "hunter2".to_owned(),
            "alice:hunter2".to_owned(),
            "hunter2".to_owned(),
        ]);
        assert_eq!(secrets.len(), 2, "too short ones and repeats dropped");
        assert_eq!(
            scrub("got alice:hunter2 and hunter2 ab".into(), &secrets),
            "got REDACTED and REDACTED ab"
        );
        assert_eq!(scrub("nothing here".into(), &secrets), "nothing here");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            one_line("a\u{1b}[31mred\u{1b}[0m".into()),
            "a\\u{1b}[31mred\\u{1b}[0m"
        );
        assert_eq!(one_line("nul\0here".into()), "nul\\u{0}here");
        assert_eq!(one_line("cr\rover".into()), "cr\\rover");
        assert_eq!(one_line("tab\there".into()), "tab\\there");
        let many = one_line("\u{7}".repeat(300));
        assert!(
            many.len() <= MAX_MESSAGE + "…".len() && !many.contains(char::is_control),
            "{many}"
        );
    }

    #[test]
    fn messages_are_one_bounded_line() {
        assert_eq!(one_line("ok".into()), "ok");
        assert_eq!(
            one_line("first\nsecond".into()),
            "first…".trim_end_matches('…')
        );
        let long = "é".repeat(300);
        let cut = one_line(long);
        assert!(cut.len() <= MAX_MESSAGE + "…".len());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn the_readme_lists_every_category() {
        let readme = include_str!("../../README.md");
        for c in Category::ALL {
            assert!(readme.contains(&format!("`{c}`")), "README lacks `{c}`");
        }
    }

    #[test]
    fn category_names_are_snake_case_and_unique() {
        let names: std::collections::HashSet<_> =
            Category::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Category::ALL.len());
        for c in Category::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
