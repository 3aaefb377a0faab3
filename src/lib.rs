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
pub mod client;
pub mod config;
pub mod demo;
pub mod events;
#[doc(hidden)]
pub mod fuzz;
pub mod health;
pub mod maintenance;
pub mod probe;
pub mod reload;
pub mod remote;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod units;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use config::{Config, ConfigError};
use health::ReloadRecord;
use reload::Reloader;
use scheduler::Engine;
use telemetry::metrics::Metrics;

/// Longest the final telemetry flush may delay exit.
const TELEMETRY_FLUSH_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// Longest reload message kept for `/health`.
const MAX_RELOAD_MESSAGE: usize = 1000;

/// Signal names (`"SIGTERM"`) as they arrive: the first starts the drain,
/// the next one ends the process at once.
pub type Signals = tokio::sync::mpsc::Receiver<&'static str>;

/// Runs the gateway for `config` (read from `path`, which held `content`) until a
/// signal arrives, reloading the config as it changes; then drains (see
/// [`config::DrainSection`]) and stops. Binds the listeners first, so
/// a taken port fails at once.
pub async fn run(
    path: &Path,
    content: config::Content,
    mut config: Config,
    mut signals: Signals,
) -> Result<(), RunError> {
    if let Err(error) = probe::orphans::adopt() {
        tracing::warn!(%error, "cannot adopt what exec checks leave behind; a command that calls setsid may outlive its run");
    }
    let dropped = Arc::new(telemetry::otlp::Dropped::default());
    let otlp = telemetry::otlp::metric_reader(&config.telemetry.otlp, dropped.clone())?;
    let resource = telemetry::resource::resource(&config.telemetry);
    let traces =
        telemetry::traces::Traces::new(&config.telemetry, resource.clone(), dropped.clone())?
            .map(Arc::new);
    let metrics = Metrics::new(resource, otlp, dropped)?;
    let state = state::State::open(&config.state);
    let observers = Arc::new(telemetry::Observers {
        metrics: metrics.observer(),
        traces: traces.clone(),
        state: state.as_ref().map(|s| s.recorder.clone()),
    });
    // Watch before announcing: an edit made once we say we serve is never missed.
    let mut reloader = Reloader::new(path, content, &config.reload);
    // The engine owns the checks it runs; `current` keeps the rest of the
    // config: a second copy of every check cost 4-6 MB of RSS at 5,000 checks.
    let count = config.checks.len();
    let mut engine = Engine::start(std::mem::take(&mut config.checks), observers);
    metrics.watch(engine.published());
    let shed = Arc::new(telemetry::shed::Shed::default());
    metrics.watch_shed(shed.clone());
    metrics.watch_events(&engine.events());
    let identity = events::Identity::of(&config.telemetry);
    let mut consumers = events::Consumers::start(
        engine.events(),
        std::mem::take(&mut config.acting),
        identity,
    );
    metrics.watch_acting(consumers.stats());
    let flusher = state
        .as_ref()
        .map(|s| s.start(config.state.flush_interval.get(), engine.published()));
    if let Some(state) = &state {
        metrics.watch_state(state.recorder.clone());
    }
    let mut windows =
        maintenance::Watch::start(config.maintenance.clone(), engine.windows(), engine.wall());
    let metrics = Arc::new(metrics);
    let drains = engine.drains();
    let ctx = server::Context {
        published: engine.published(),
        metrics: metrics.clone(),
        drains: Arc::new(drains.clone()),
        seen: Arc::default(),
        settings: Arc::default(),
        closing: Arc::new(tokio::sync::watch::Sender::new(false)),
        inboxes: engine.inboxes(),
        triggers: engine.triggers(),
        shed,
        events: server::stream::Events::new(engine.events()),
        disabled: Arc::new(ArcSwap::from_pointee(disabled(&config))),
        state: state.clone(),
    };
    let mut listeners = server::Listeners::start(&config.server, ctx.clone()).await?;
    tracing::info!(checks = count, "started");
    let mut current = config;
    let signal = loop {
        tokio::select! {
            signal = signals.recv() => break signal.unwrap_or("shutdown"),
            attempt = reloader.next() => {
                let failure = match attempt {
                    Ok(mut new) => {
                        let acting = std::mem::take(&mut new.acting);
                        let failure = apply(&mut engine, &mut listeners, &mut current, new).await;
                        if failure.is_none() {
                            // Restarted even when unchanged: cheap, and it
                            // tells the engine the windows open now at once.
                            windows = maintenance::Watch::start(
                                current.maintenance.clone(),
                                engine.windows(),
                                engine.wall(),
                            );
                            consumers.apply(acting);
                            ctx.disabled.store(Arc::new(disabled(&current)));
                        }
                        failure
                    }
                    Err(error) => Some(rejected(&error)),
                };
                if let Some(failure) = failure {
                    engine.record_reload(failure).await;
                }
                reloader.update(&current.reload);
            }
        }
    };
    let server = current.server;
    let shutdown = async {
        drain(&drains, &ctx.seen, &server.drain, signal).await;
        tracing::info!(grace = ?server.shutdown_timeout, "listeners closed; finishing in-flight requests");
        listeners.stop(server.shutdown_timeout).await;
        drop(windows);
        drop(engine);
        drop(consumers);
        drop(flusher);
        if let Some(state) = &state {
            state.close().await;
        }
        metrics.shutdown(TELEMETRY_FLUSH_BUDGET).await;
        if let Some(traces) = traces {
            traces.shutdown(TELEMETRY_FLUSH_BUDGET).await;
        }
        tracing::info!("telemetry flushed; stopped");
    };
    tokio::select! {
        () = shutdown => {}
        Some(again) = signals.recv() => tracing::warn!("{again} during shutdown: exiting now"),
    }
    Ok(())
}

/// Fails readiness everywhere and waits until the load balancer has seen it:
/// at least `drain.min`, then until `drain.observed_probes` failing
/// readiness answers were served, at most `drain.max`.
async fn drain(
    drains: &scheduler::Drains,
    seen: &server::DrainSeen,
    settings: &config::DrainSection,
    signal: &str,
) {
    let began = tokio::time::Instant::now();
    let base = seen.count();
    drains
        .set(Some(health::Drain {
            reason: format!("shutting down ({signal})"),
            mode: health::DrainMode::Drain,
            since: SystemTime::now(),
            shutdown: true,
        }))
        .await;
    tracing::info!(
        min = ?settings.min.get(), max = ?settings.max.get(), observed_probes = settings.observed_probes.get(),
        "{signal}: draining: readiness fails in every dialect, liveness and probes go on"
    );
    let enough = async {
        tokio::time::sleep(settings.min.get()).await;
        seen.reached(base + u64::from(settings.observed_probes.get()))
            .await;
    };
    let in_time = tokio::time::timeout(settings.max.get(), enough)
        .await
        .is_ok();
    let answered = seen.count() - base;
    let elapsed = began.elapsed();
    if in_time {
        tracing::info!(
            answered,
            ?elapsed,
            "drained: the failing readiness was served {answered} time(s)"
        );
    } else {
        tracing::warn!(
            answered,
            ?elapsed,
            observed_probes = settings.observed_probes.get(),
            "drain.max reached before enough failing readiness answers were seen; closing anyway"
        );
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener could not be started.
    #[error(transparent)]
    Listen(#[from] server::ListenerError),
    /// The metrics pipeline could not be built.
    #[error(transparent)]
    Metrics(#[from] telemetry::metrics::MetricsError),
    /// OTLP export could not be set up.
    #[error(transparent)]
    Otlp(#[from] telemetry::otlp::OtlpError),
}

/// Applies a valid new config, returning the record of a failure (a success
/// is recorded with the new checks, in the same snapshot). The listeners are
/// the only step that can fail (a new address taken, TLS files gone since
/// validation), so they go first: then nothing else has changed yet.
async fn apply(
    engine: &mut Engine,
    listeners: &mut server::Listeners,
    current: &mut Config,
    mut new: Config,
) -> Option<ReloadRecord> {
    let grace = current.server.shutdown_timeout;
    if let Err(error) = listeners
        .reconfigure(&current.server, &new.server, grace)
        .await
    {
        tracing::error!(%error, still_serving_on = ?listeners.lb_addr(), "config reload rejected");
        return Some(record(
            false,
            format!("rejected: {error}; the previous listeners keep serving"),
        ));
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
    if new.state != current.state {
        new.state = current.state.clone();
        tracing::warn!(
            key = "state",
            "state settings changed: they need a restart to take effect"
        );
        note.push_str("; state.* changed: needs a restart");
    }
    let diff = engine
        .apply(std::mem::take(&mut new.checks), |diff| {
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

/// The checks `config` keeps idle, as the API lists them.
fn disabled(config: &Config) -> Vec<server::listing::Disabled> {
    config.disabled.iter().map(Into::into).collect()
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

impl server::MetricsSource for Metrics {
    fn scrape(&self) -> probe::BoxFuture<'_, server::Chunks> {
        Box::pin(Metrics::scrape(self))
    }
}

impl server::DrainControl for scheduler::Drains {
    fn set(&self, drain: Option<health::Drain>) -> probe::BoxFuture<'_, ()> {
        Box::pin(scheduler::Drains::set(self, drain))
    }
}
