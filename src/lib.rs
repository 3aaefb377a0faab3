//! healthgate: a sidecar health gateway.
//!
//! Data flows one way: [`config`] → [`probe`] (one task per check, in
//! [`scheduler`]) → [`health`] (state machines, verdicts, snapshot) →
//! [`server`] (endpoints that only read the snapshot).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Nothing on the request or probe paths may panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod check;
pub mod config;
pub mod demo;
pub mod health;
pub mod probe;
pub mod scheduler;
pub mod server;
pub mod telemetry;

use std::future::Future;

use config::Config;
use scheduler::Engine;

/// Runs the gateway for `config` until `shutdown` completes: binds the
/// listener first (so a taken port fails at once), starts the checks, serves.
pub async fn run(
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), server::BindError> {
    let listener = server::bind(config.server.listen).await?;
    let engine = Engine::start(&config.checks);
    let addr = listener
        .local_addr()
        .map_or_else(|_| config.server.listen.to_string(), |a| a.to_string());
    tracing::info!(listen = %addr, checks = config.checks.len(), "serving /livez /readyz /startupz /health");
    server::serve(
        listener,
        engine.published(),
        shutdown,
        config.server.shutdown_timeout,
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}
