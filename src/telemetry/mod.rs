//! What healthgate tells operators about itself: logs, one metrics model
//! (Prometheus text and OTLP), and traces of probe runs and reloads.

pub mod log;
pub mod metrics;
pub mod otlp;
pub mod resource;
pub mod traces;

use std::sync::Arc;

use crate::health::{CheckView, ReloadRecord, Transition};
use crate::probe::Outcome;
use crate::scheduler::Observer;

/// What the collector reports to: the metrics recorder, and traces if enabled.
pub struct Observers {
    /// Counts runs and transitions.
    pub metrics: Arc<dyn Observer>,
    /// Emits spans.
    pub traces: Option<Arc<traces::Traces>>,
}

impl Observer for Observers {
    fn on_result(&self, check: &CheckView, outcome: &Outcome, transition: Option<Transition>) {
        self.metrics.on_result(check, outcome, transition);
        if let Some(traces) = &self.traces {
            traces.record_run(check, outcome, transition);
        }
    }

    fn on_reload(&self, record: &ReloadRecord) {
        if let Some(traces) = &self.traces {
            traces.record_reload(record);
        }
    }
}
