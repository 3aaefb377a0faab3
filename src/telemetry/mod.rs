//! What healthgate tells operators about itself: logs, one metrics model
//! (Prometheus text and OTLP), and traces of probe runs and reloads.

pub mod exposition;
pub mod log;
pub mod metrics;
pub mod otlp;
pub mod resource;
pub mod shed;
pub mod traces;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;

use crate::health::{CheckView, ReloadRecord, Transition};
use crate::probe::Outcome;
use crate::scheduler::Observer;

/// What the collector reports to: the metrics recorder, and traces if enabled.
pub struct Observers {
    /// Counts runs and transitions.
    pub metrics: Arc<dyn Observer>,
    /// Emits spans.
    pub traces: Option<Arc<traces::Traces>>,
    /// Feeds the state store.
    pub state: Option<Arc<crate::state::Recorder>>,
}

impl Observer for Observers {
    fn on_result(&self, check: &CheckView, outcome: &Outcome, transition: Option<Transition>) {
        self.metrics.on_result(check, outcome, transition);
        if let Some(traces) = &self.traces {
            traces.record_run(check, outcome, transition);
        }
        if let Some(state) = &self.state {
            state.record(check, outcome, transition);
        }
    }

    fn on_start(&self, lateness: std::time::Duration) {
        self.metrics.on_start(lateness);
    }

    fn on_reload(&self, record: &ReloadRecord) {
        if let Some(traces) = &self.traces {
            traces.record_reload(record);
        }
    }
}

/// Runs an SDK shutdown within `budget`. The SDK's shutdown blocks, so it runs
/// on the blocking pool: called on a runtime worker it can hang for good
/// (opentelemetry-rust#2583).
pub(crate) async fn shutdown_within(
    what: &'static str,
    budget: Duration,
    shutdown: impl FnOnce() -> OTelSdkResult + Send + 'static,
) {
    match tokio::time::timeout(budget, tokio::task::spawn_blocking(shutdown)).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::debug!(%error, "{what} shutdown"),
        Ok(Err(error)) => tracing::debug!(%error, "{what} shutdown task"),
        Err(_) => tracing::warn!(?budget, "{what} did not flush in time"),
    }
}
pub mod process;
