//! Runs and transitions, counted once each as the collector records them.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use crate::health::{CheckView, Transition};
use crate::probe::Outcome;
use crate::scheduler::Observer;

/// Histogram buckets for probe durations, in seconds: 1 ms to 30 s.
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Counts runs and transitions as the collector records them.
pub struct Recorder {
    lateness: Histogram<f64>,
    runs: Counter<u64>,
    duration: Histogram<f64>,
    transitions: Counter<u64>,
}

impl Recorder {
    pub(super) fn new(meter: &Meter) -> Self {
        Self {
            runs: meter
                .u64_counter("healthgate.check.runs")
                .with_description("Probe runs, by result and failure category.")
                .build(),
            duration: meter
                .f64_histogram("healthgate.check.duration")
                .with_unit("s")
                .with_description("How long probe runs took, by result.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            lateness: meter
                .f64_histogram("healthgate.scheduler.lateness")
                .with_unit("s")
                .with_description(
                    "How late probe runs started against their schedule (all checks; \
                     CPU starvation or an overloaded scheduler shows here).",
                )
                .with_boundaries(LATENESS_BUCKETS.to_vec())
                .build(),
            transitions: meter
                .u64_counter("healthgate.check.transitions")
                .with_description("Changes of a check's status, by from and to.")
                .build(),
        }
    }
}

/// Run start lateness buckets, in seconds: 1 ms to 1 s.
const LATENESS_BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

impl Observer for Recorder {
    fn on_start(&self, lateness: Duration) {
        self.lateness.record(lateness.as_secs_f64(), &[]);
    }

    fn on_result(&self, check: &CheckView, outcome: &Outcome, transition: Option<Transition>) {
        let result = outcome.result();
        let mut labels = vec![
            KeyValue::new("check", check.name.clone()),
            KeyValue::new("type", check.kind),
            KeyValue::new("result", result),
        ];
        self.duration
            .record(outcome.duration.as_secs_f64(), &labels);
        if let Some(category) = outcome.category() {
            labels.push(KeyValue::new("category", category.as_str()));
        }
        self.runs.add(1, &labels);
        if let Some(t) = transition {
            self.transitions.add(
                1,
                &[
                    KeyValue::new("check", check.name.clone()),
                    KeyValue::new("type", check.kind),
                    KeyValue::new("from", t.from.as_str()),
                    KeyValue::new("to", t.to.as_str()),
                ],
            );
        }
    }
}
