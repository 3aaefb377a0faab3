//! healthgate: a sidecar health gateway.
//!
//! Data flows one way: [`config`] → [`probe`] (one task per check, in
//! [`scheduler`]) → [`health`] (state machines, verdicts, snapshot) →
//! [`server`] (endpoints that only read the snapshot). [`reload`] feeds new
//! configs back in at the top.
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
pub mod reload;
pub mod scheduler;
pub mod server;
pub mod telemetry;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use config::{Config, ConfigError};
use health::ReloadRecord;
use reload::Reloader;
use scheduler::Engine;
use telemetry::metrics::Metrics;

/// Longest the final telemetry flush may delay exit.
const TELEMETRY_FLUSH_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// Longest reload message kept for `/health`.
const MAX_RELOAD_MESSAGE: usize = 1000;

/// Runs the gateway for `config` (read from `path` as `text`) until
/// `shutdown` completes, reloading the config as it changes. Binds the
/// listener first, so a taken port fails at once.
pub async fn run(
    path: &Path,
    text: &str,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let listener = server::bind(config.server.listen).await?;
    let dropped = Arc::new(telemetry::otlp::Dropped::default());
    let otlp = telemetry::otlp::metric_reader(&config.telemetry.otlp, dropped.clone())?;
    let resource = telemetry::resource::resource(&config.telemetry);
    let traces =
        telemetry::traces::Traces::new(&config.telemetry, resource.clone(), dropped.clone())?
            .map(Arc::new);
    let metrics = Metrics::new(resource, otlp, dropped)?;
    let observers = Arc::new(telemetry::Observers {
        metrics: metrics.observer(),
        traces: traces.clone(),
    });
    // Watch before announcing: an edit made once we say we serve is never missed.
    let mut reloader = Reloader::new(path, text, &config.reload);
    let mut engine = Engine::start(&config.checks, observers);
    metrics.watch(engine.published());
    let metrics = Arc::new(metrics);
    let render: server::RenderMetrics = {
        let metrics = metrics.clone();
        Arc::new(move || metrics.render())
    };
    let endpoints = server::Endpoints {
        published: engine.published(),
        metrics: Some(render),
    };
    let mut server = server::spawn(listener, endpoints.clone());
    tracing::info!(listen = %server.addr, checks = config.checks.len(), "serving /livez /readyz /startupz /health");
    let mut current = config;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            attempt = reloader.next() => {
                let failure = match attempt {
                    Ok(new) => apply(&mut engine, &mut server, &endpoints, &mut current, new).await,
                    Err(error) => Some(rejected(&error)),
                };
                if let Some(failure) = failure {
                    engine.record_reload(failure).await;
                }
                reloader.update(&current.reload);
            }
        }
    }
    server.stop(current.server.shutdown_timeout).await;
    metrics.shutdown(TELEMETRY_FLUSH_BUDGET).await;
    if let Some(traces) = traces {
        traces.shutdown(TELEMETRY_FLUSH_BUDGET).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listener could not be bound.
    #[error(transparent)]
    Bind(#[from] server::BindError),
    /// The metrics pipeline could not be built.
    #[error(transparent)]
    Metrics(#[from] telemetry::metrics::MetricsError),
    /// OTLP export could not be set up.
    #[error(transparent)]
    Otlp(#[from] telemetry::otlp::OtlpError),
}

/// Applies a valid new config, returning the record of a failure (a success
/// is recorded with the new checks, in the same snapshot). Binding a changed
/// listen address is the only step that can fail, so it goes first: then
/// nothing else has changed yet.
async fn apply(
    engine: &mut Engine,
    server: &mut server::Listening,
    endpoints: &server::Endpoints,
    current: &mut Config,
    mut new: Config,
) -> Option<ReloadRecord> {
    if new.server.listen != current.server.listen {
        match server::bind(new.server.listen).await {
            Ok(listener) => {
                let old = std::mem::replace(server, server::spawn(listener, endpoints.clone()));
                tracing::info!(listen = %server.addr, previous = %old.addr, "serving /livez /readyz /startupz /health");
                // The old listener finishes its in-flight requests meanwhile.
                tokio::spawn(old.stop(current.server.shutdown_timeout));
            }
            Err(error) => {
                tracing::error!(key = "server.listen", %error, still_serving_on = %server.addr, "config reload rejected");
                return Some(record(
                    false,
                    format!(
                        "rejected: key `server.listen`: {error}; still serving on {}",
                        server.addr
                    ),
                ));
            }
        }
    }
    let mut note = String::new();
    if new.telemetry != current.telemetry {
        // The exporters keep running as they are: `current` says so, and every
        // reload repeats this until the file matches or healthgate restarts.
        new.telemetry = current.telemetry.clone();
        tracing::warn!(
            key = "telemetry",
            "telemetry settings changed: they need a restart to take effect"
        );
        note = "; telemetry.* changed: needs a restart".to_owned();
    }
    let diff = engine
        .apply(&new.checks, |diff| {
            record(true, format!("applied: {diff}{note}"))
        })
        .await;
    tracing::info!(
        added = ?diff.added, removed = ?diff.removed, changed = ?diff.changed,
        "config reloaded: {diff}"
    );
    *current = new;
    None
}

/// Logs a rejected config (each problem with its check and key) and records it.
fn rejected(error: &ConfigError) -> ReloadRecord {
    if let ConfigError::Invalid { problems, .. } = error {
        for p in problems {
            tracing::error!(check = p.check.as_deref().unwrap_or(""), key = %p.key, problem = %p.message, "invalid config");
        }
    }
    tracing::error!(%error, "config reload rejected; the previous config keeps running");
    record(false, format!("rejected: {error}"))
}

fn record(successful: bool, message: String) -> ReloadRecord {
    let mut message = message.replace('\n', " ");
    if message.len() > MAX_RELOAD_MESSAGE {
        let mut end = MAX_RELOAD_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    ReloadRecord {
        at: SystemTime::now(),
        successful,
        message,
    }
}
