//! Traces: one `healthgate.probe` span per (sampled) run, with child spans for
//! the phases it timed (dns, connect, tls, first_byte, body), and one span per config
//! reload, exported over OTLP.
//!
//! Spans are built after the run, from the outcome's recorded timings, by the
//! collector as it records the result. So "only failures and transitions" is
//! decided where the transition is known, and an unsampled run costs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};

use super::otlp::{self, Dropped, OtlpError};
use crate::config::TelemetrySection;
use crate::health::{CheckView, ReloadRecord, Transition};
use crate::probe::Outcome;

/// Spans waiting for export; past it, new spans are dropped and counted.
const QUEUE: usize = 2048;

/// The tracing pipeline.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    sample_ratio: f64,
    only_failures_and_transitions: bool,
}

impl Traces {
    /// The pipeline, if traces are enabled and OTLP is configured. Call inside the runtime.
    pub fn new(
        settings: &TelemetrySection,
        resource: Resource,
        dropped: Arc<Dropped>,
    ) -> Result<Option<Self>, OtlpError> {
        if !settings.traces.enabled || !otlp::enabled(&settings.otlp, "TRACES") {
            return Ok(None);
        }
        let pending = Arc::new(AtomicUsize::new(0));
        let exporter = CountedSpans {
            inner: otlp::span_exporter(&settings.otlp)?,
            pending: pending.clone(),
            dropped: dropped.clone(),
        };
        // The batch queue is larger than our bound, so it never drops uncounted.
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(QUEUE * 2)
                    .build(),
            )
            .build();
        let processor = Bounded {
            inner: batch,
            pending,
            dropped,
        };
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(processor)
            .build();
        tracing::info!(
            sample_ratio = settings.traces.sample_ratio.get(),
            only_failures_and_transitions = settings.traces.only_failures_and_transitions,
            "exporting traces over OTLP"
        );
        Ok(Some(Self {
            tracer: provider.tracer("healthgate"),
            provider,
            sample_ratio: settings.traces.sample_ratio.get(),
            only_failures_and_transitions: settings.traces.only_failures_and_transitions,
        }))
    }

    fn sampled(&self, outcome: &Outcome, transition: Option<Transition>) -> bool {
        if self.only_failures_and_transitions {
            !outcome.passed() || transition.is_some()
        } else {
            self.sample_ratio >= 1.0 || rand::random::<f64>() < self.sample_ratio
        }
    }

    /// Emits the spans of one run, if sampled.
    pub fn record_run(&self, check: &CheckView, outcome: &Outcome, transition: Option<Transition>) {
        if !self.sampled(outcome, transition) {
            return;
        }
        let mut attributes = vec![
            KeyValue::new("healthgate.check.name", check.name.clone()),
            KeyValue::new("healthgate.check.type", check.kind),
            KeyValue::new("healthgate.check.result", outcome.result()),
            KeyValue::new("healthgate.check.status", check.status.as_str()),
        ];
        if let Some(target) = &outcome.target {
            attributes.push(KeyValue::new("server.address", target.address.clone()));
            attributes.push(KeyValue::new("server.port", i64::from(target.port)));
            if let Some(url) = &target.url {
                attributes.push(KeyValue::new("url.full", url.clone()));
            }
            if let Some(method) = &target.method {
                attributes.push(KeyValue::new("http.request.method", method.clone()));
            }
        }
        if let Some(code) = outcome.http_status {
            attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
        }
        if let Some(category) = outcome.failure {
            attributes.push(KeyValue::new("error.type", category.as_str()));
        }
        if let Some(category) = outcome.warning {
            attributes.push(KeyValue::new("healthgate.check.warning", category.as_str()));
        }
        if let Some(t) = transition {
            attributes.push(KeyValue::new(
                "healthgate.check.transition",
                format!("{}->{}", t.from, t.to),
            ));
        }
        let mut span = self
            .tracer
            .span_builder("healthgate.probe")
            .with_kind(SpanKind::Client)
            .with_start_time(outcome.started_at)
            .with_attributes(attributes)
            .start(&self.tracer);
        if !outcome.passed() {
            span.set_status(Status::error(outcome.message.clone()));
        }
        let cx = Context::current_with_span(span);
        for phase in &outcome.phases {
            self.tracer
                .span_builder(phase.name)
                .with_kind(SpanKind::Internal)
                .with_start_time(phase.start)
                .start_with_context(&self.tracer, &cx)
                .end_with_timestamp(phase.start + phase.duration);
        }
        cx.span()
            .end_with_timestamp(outcome.started_at + outcome.duration);
    }

    /// Emits the span of a reload attempt.
    pub fn record_reload(&self, record: &ReloadRecord) {
        let mut span = self
            .tracer
            .span_builder("healthgate.config.reload")
            .with_start_time(record.at)
            .with_attributes([
                KeyValue::new(
                    "healthgate.reload.result",
                    if record.successful {
                        "success"
                    } else {
                        "failure"
                    },
                ),
                KeyValue::new("healthgate.reload.output", record.message.clone()),
            ])
            .start(&self.tracer);
        if !record.successful {
            span.set_status(Status::error(record.message.clone()));
        }
        span.end_with_timestamp(record.at);
    }

    /// Flushes and stops within `budget` (from the blocking pool: the SDK blocks).
    pub async fn shutdown(&self, budget: Duration) {
        let provider = self.provider.clone();
        super::shutdown_within("traces", budget, move || provider.shutdown()).await;
    }
}

/// Bounds the spans waiting for export, counting what it refuses.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    pending: Arc<AtomicUsize>,
    dropped: Arc<Dropped>,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= QUEUE {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.dropped.spans.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP span exporter, releasing queue room and counting failed spans.
#[derive(Debug)]
struct CountedSpans {
    inner: opentelemetry_otlp::SpanExporter,
    pending: Arc<AtomicUsize>,
    dropped: Arc<Dropped>,
}

impl SpanExporter for CountedSpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len();
        let result = self.inner.export(batch).await;
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(count))
            });
        if let Err(error) = &result {
            self.dropped
                .spans
                .fetch_add(count as u64, Ordering::Relaxed);
            tracing::debug!(%error, dropped = count, "OTLP span export failed");
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
