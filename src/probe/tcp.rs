//! `type = "tcp"`: passes when a TCP connection is established within the timeout.

use std::sync::Arc;

use tokio::time::Instant;

use super::{BoxFuture, Outcome, Probe, Target, net};
use crate::config::TcpSpec;

/// Connects to `host:port`.
pub struct TcpProbe {
    spec: TcpSpec,
    target: Arc<Target>,
}

impl TcpProbe {
    /// A probe for `spec`.
    pub fn new(spec: TcpSpec) -> Self {
        let target = Arc::new(Target {
            address: spec.host.clone(),
            port: spec.port,
            url: None,
            method: None,
        });
        Self { spec, target }
    }
}

impl Probe for TcpProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut phases = Vec::with_capacity(2);
            let connected =
                net::connect(&self.spec.host, self.spec.port, deadline, &mut phases).await;
            let mut outcome = match connected {
                Ok(stream) => {
                    let peer = stream
                        .peer_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    Outcome::pass(format!("connected to {peer}"))
                }
                Err(outcome) => outcome,
            };
            outcome.phases = phases;
            outcome.target = Some(self.target.clone());
            outcome
        })
    }
}
