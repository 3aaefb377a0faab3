//! `type = "tcp"`: passes when a TCP connection is established within the timeout.

use tokio::time::Instant;

use super::{BoxFuture, Outcome, Probe, net};
use crate::config::TcpSpec;

/// Connects to `host:port`.
pub struct TcpProbe {
    spec: TcpSpec,
}

impl TcpProbe {
    /// A probe for `spec`.
    pub fn new(spec: TcpSpec) -> Self {
        Self { spec }
    }
}

impl Probe for TcpProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match net::connect(&self.spec.host, self.spec.port, deadline).await {
                Ok(stream) => {
                    let peer = stream
                        .peer_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    Outcome::pass(format!("connected to {peer}"))
                }
                Err(outcome) => outcome,
            }
        })
    }
}
