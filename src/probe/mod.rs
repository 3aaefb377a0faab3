//! Probes observe: each runs once against its target and returns an [`Outcome`].
//! They keep no verdict state; thresholds live in `health`.

mod exec;
mod http;
mod net;
mod tcp;
mod tls;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::config::{HttpSpec, ProbeSpec};

pub use exec::ExecProbe;
pub use http::HttpProbe;
pub use tcp::TcpProbe;

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
    /// Connected, but no complete answer within the timeout.
    Timeout,
    /// The TLS handshake failed (bad certificate, wrong name, protocol).
    Tls,
    /// The answer was not valid HTTP, or the connection broke mid-answer.
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
    /// The command exited with another code, or was killed by a signal.
    ExecExitCode,
    /// The command's output did not contain or match what was expected.
    ExecOutputMismatch,
    /// The command did not finish within the timeout; its process group was killed.
    ExecTimeout,
    /// The command could not be started.
    ExecSpawn,
}

impl Category {
    /// Every category, for documentation and exporters.
    pub const ALL: [Category; 16] = [
        Category::Dns,
        Category::ConnectRefused,
        Category::ConnectTimeout,
        Category::Connect,
        Category::Timeout,
        Category::Tls,
        Category::Protocol,
        Category::StatusMismatch,
        Category::BodyMismatch,
        Category::JsonMismatch,
        Category::BodyTooLarge,
        Category::ResponseMismatch,
        Category::ExecExitCode,
        Category::ExecOutputMismatch,
        Category::ExecTimeout,
        Category::ExecSpawn,
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
            Category::Protocol => "protocol",
            Category::StatusMismatch => "status_mismatch",
            Category::BodyMismatch => "body_mismatch",
            Category::JsonMismatch => "json_mismatch",
            Category::BodyTooLarge => "body_too_large",
            Category::ResponseMismatch => "response_mismatch",
            Category::ExecExitCode => "exec_exit_code",
            Category::ExecOutputMismatch => "exec_output_mismatch",
            Category::ExecTimeout => "exec_timeout",
            Category::ExecSpawn => "exec_spawn",
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
    /// A short human message (one line, bounded, never a secret).
    pub message: String,
    /// How long the run took.
    pub duration: Duration,
    /// The HTTP status of the last response, for http checks that got one.
    pub http_status: Option<u16>,
    /// When the run started (wall clock, for traces).
    pub started_at: SystemTime,
    /// The timed phases of the run (dns, connect, tls, first_byte), in order.
    pub phases: Vec<Phase>,
    /// What the run talked to, for traces; never holds a secret.
    pub target: Option<Arc<Target>>,
    /// The earliest expiry in the TLS chain the server presented (https).
    pub cert_not_after: Option<SystemTime>,
}

/// One timed phase of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// `dns`, `connect`, `tls` or `first_byte`.
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

impl Outcome {
    /// A passing outcome (duration filled in by [`run`]).
    pub fn pass(message: impl Into<String>) -> Self {
        Self {
            failure: None,
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
            message: one_line(message.into()),
            duration: Duration::ZERO,
            http_status: None,
            started_at: SystemTime::UNIX_EPOCH,
            phases: Vec::new(),
            target: None,
            cert_not_after: None,
        }
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

const MAX_MESSAGE: usize = 200;

/// First line, at most [`MAX_MESSAGE`] bytes (cut on a char boundary).
fn one_line(message: String) -> String {
    let line = message.lines().next().unwrap_or_default().trim_end();
    if line.len() <= MAX_MESSAGE && line.len() == message.len() {
        return message;
    }
    let mut end = line.len().min(MAX_MESSAGE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let cut = if end < line.len() { "…" } else { "" };
    format!("{}{cut}", &line[..end])
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

/// Builds the probe for a validated spec. Built once per check, so clients,
/// TLS configs and compiled patterns are shared by every run.
pub fn build(spec: &ProbeSpec) -> Arc<dyn Probe> {
    match spec {
        ProbeSpec::Http(s) => Arc::new(HttpProbe::new(HttpSpec::clone(s))),
        ProbeSpec::Tcp(s) => Arc::new(TcpProbe::new(s.clone())),
        ProbeSpec::Exec(s) => Arc::new(ExecProbe::new(s.clone())),
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
                format!("timed out after {}", human(timeout)),
            ),
        };
    outcome.duration = start.elapsed();
    outcome.started_at = started_at;
    outcome
}

/// A duration as people write it in the config (`250ms`, `5s`).
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 && ms > 0 {
        format!("{}s", ms / 1000)
    } else if ms > 0 {
        format!("{ms}ms")
    } else {
        format!("{}µs", d.as_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn category_names_are_snake_case_and_unique() {
        let names: std::collections::HashSet<_> =
            Category::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Category::ALL.len());
        for c in Category::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
