//! The validated config the engine runs: defaults applied, every value parsed.

use std::net::SocketAddr;
use std::time::Duration;

use super::check::Check;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The load-balancer listener.
    pub server: Server,
    /// How changes are picked up.
    pub reload: super::model::ReloadSection,
    /// Resource identity for metrics and traces.
    pub telemetry: super::model::TelemetrySection,
    /// Every enabled check, in file order.
    pub checks: Vec<Check>,
    /// The checks written with `enabled = false`: validated, never run.
    pub disabled: Vec<Check>,
    /// Notifiers and actions.
    pub acting: crate::events::config::Acting,
    /// Maintenance windows.
    pub maintenance: Vec<crate::maintenance::Window>,
    /// The state store.
    pub state: crate::state::StateSection,
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
