//! One metrics model, two outputs: instruments from the OpenTelemetry API on
//! one `SdkMeterProvider`, read by a manual reader whose data `/metrics`
//! writes as Prometheus text ([`super::exposition`]; and, with OTLP
//! configured, by a periodic reader too). Runs are counted once, as the
//! collector records them; every gauge is read from the published snapshot
//! when metrics are collected.
//!
//! | OpenTelemetry instrument | Prometheus series | labels |
//! |---|---|---|
//! | `healthgate.check.up` | `healthgate_check_up` | check, type |
//! | `healthgate.check.status` | `healthgate_check_status` (one-hot) | check, type, status |
//! | `healthgate.check.duration` (s) | `healthgate_check_duration_seconds` | check, type, result |
//! | `healthgate.check.runs` | `healthgate_check_runs_total` | check, type, result, category (failures and warnings) |
//! | `healthgate.scheduler.lateness` (s) | `healthgate_scheduler_lateness_seconds` | |
//! | `healthgate.check.transitions` | `healthgate_check_transitions_total` | check, type, from, to |
//! | `healthgate.check.consecutive_failures` | `healthgate_check_consecutive_failures` | check, type |
//! | `healthgate.check.last_change` (s) | `healthgate_check_last_change_seconds` | check, type |
//! | `healthgate.check.critical` | `healthgate_check_critical` | check, type, group |
//! | `healthgate.http.status_code` | `healthgate_http_status_code` | check |
//! | `healthgate.tls.cert.not_after` (s) | `healthgate_tls_cert_not_after_seconds` | check |
//! | `healthgate.ready`, `.live`, `.started` | `healthgate_ready`, `healthgate_live`, `healthgate_started` | |
//! | `healthgate.config.reloads` | `healthgate_config_reloads_total` | result |
//! | `healthgate.config.last_reload_successful` | `healthgate_config_last_reload_successful` | |
//! | `healthgate.config.last_reload_success_time` (s) | `healthgate_config_last_reload_success_time_seconds` | |
//! | `healthgate.build.info` | `healthgate_build_info` | version |
//! | `healthgate.process.cpu.time` (s) | `healthgate_process_cpu_time_seconds_total` | |
//! | `healthgate.process.memory.rss` (By) | `healthgate_process_memory_rss_bytes` | |
//! | `healthgate.telemetry.dropped` | `healthgate_telemetry_dropped_total` | signal |
//! | `healthgate.connections.shed` | `healthgate_connections_shed_total` | listener, reason |
//! | `healthgate.events.dropped` | `healthgate_events_dropped_total` | consumer |
//! | `healthgate.events.queued` | `healthgate_events_queued` | consumer |
//! | `healthgate.notifications` | `healthgate_notifications_total` | notifier, result |
//! | `healthgate.actions` | `healthgate_actions_total` | check, verdict, action, result |
//!
//! Labels are bounded by the config: never a URL, a message or an address.

mod gauges;
mod recorder;
mod render;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::ManualReader;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use tokio::sync::mpsc;

pub use recorder::Recorder;
pub use render::Chunks;
use render::{CHUNKS_QUEUED, STALLED, Scrape, collect, spawn_renderer};

use crate::health::Published;
use crate::scheduler::Observer;
use crate::telemetry::exposition::{self, SharedReader};
use crate::telemetry::otlp::{Counted, Dropped};

/// Why metrics could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("metrics setup: {0}")]
pub struct MetricsError(String);

/// The metrics pipeline: the provider, the reader `/metrics` renders, and the recorder.
pub struct Metrics {
    provider: SdkMeterProvider,
    reader: Arc<ManualReader>,
    recorder: Arc<Recorder>,
    /// Asks the render thread for an exposition (see [`Metrics::scrape`]).
    renders: mpsc::Sender<Scrape>,
}

impl Metrics {
    /// Builds the pipeline, with OTLP export when `otlp` is given. Gauges
    /// come with [`Metrics::watch`].
    pub fn new(
        resource: Resource,
        otlp: Option<PeriodicReader<Counted>>,
        dropped: Arc<Dropped>,
    ) -> Result<Self, MetricsError> {
        Self::build(resource, otlp, dropped, STALLED)
    }

    /// [`Metrics::new`], cutting off a scraper stalled for `stalled`.
    fn build(
        resource: Resource,
        otlp: Option<PeriodicReader<Counted>>,
        dropped: Arc<Dropped>,
        stalled: Duration,
    ) -> Result<Self, MetricsError> {
        let reader = Arc::new(ManualReader::builder().build());
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(SharedReader(reader.clone()));
        if let Some(otlp) = otlp {
            builder = builder.with_reader(otlp);
        }
        let provider = builder.build();
        let meter = provider.meter("healthgate");
        let recorder = Arc::new(Recorder::new(&meter));
        meter
            .u64_observable_counter("healthgate.telemetry.dropped")
            .with_description(
                "Telemetry that could not be delivered, by signal: data points of failed OTLP \
                 exports (metrics), spans of failed exports or refused by a full queue (spans).",
            )
            .with_callback(move |o| {
                o.observe(
                    dropped.metrics.load(Ordering::Relaxed),
                    &[KeyValue::new("signal", "metrics")],
                );
                o.observe(
                    dropped.spans.load(Ordering::Relaxed),
                    &[KeyValue::new("signal", "spans")],
                );
            })
            .build();
        Ok(Self {
            provider,
            renders: spawn_renderer(reader.clone(), stalled)?,
            reader,
            recorder,
        })
    }

    /// Registers the gauges, read from `published` whenever metrics are collected.
    pub fn watch(&self, published: Published) {
        gauges::register(&self.provider.meter("healthgate"), published);
    }

    /// Registers `healthgate_connections_shed_total`, read from `shed`.
    pub fn watch_shed(&self, shed: Arc<crate::telemetry::shed::Shed>) {
        self.provider
            .meter("healthgate")
            .u64_observable_counter("healthgate.connections.shed")
            .with_description(
                "Connections a listener closed to keep answering, by listener and reason: \
                 cap (the oldest idle one, to admit a new one at the connection cap) or \
                 header_timeout (no request head within the header timeout of the accept).",
            )
            .with_callback(move |o| {
                for (listener, reason, count) in shed.each() {
                    let labels = [
                        KeyValue::new("listener", listener),
                        KeyValue::new("reason", reason.as_str()),
                    ];
                    o.observe(count, &labels);
                }
            })
            .build();
    }

    /// Registers `healthgate_events_dropped_total{consumer}` and
    /// `healthgate_events_queued{consumer}`, read from `bus`.
    pub fn watch_events(&self, bus: &crate::health::Bus) {
        let meter = self.provider.meter("healthgate");
        let dropped = bus.clone();
        meter
            .u64_observable_counter("healthgate.events.dropped")
            .with_description(
                "Events a consumer had no room for in its queue (a notifier, the actions), \
                 or could not take in time (sse: an event stream client cut off as too slow).",
            )
            .with_callback(move |o| {
                for (consumer, count) in dropped.drops() {
                    o.observe(count, &[KeyValue::new("consumer", consumer.to_string())]);
                }
            })
            .build();
        let queued = bus.clone();
        meter
            .u64_observable_gauge("healthgate.events.queued")
            .with_description("Events waiting in each consumer's queue.")
            .with_callback(move |o| {
                for (consumer, depth) in queued.depths() {
                    let depth = u64::try_from(depth).unwrap_or(u64::MAX);
                    o.observe(depth, &[KeyValue::new("consumer", consumer.to_string())]);
                }
            })
            .build();
    }

    /// Registers `healthgate_notifications_total{notifier, result}` and
    /// `healthgate_actions_total{check, verdict, action, result}`.
    /// The state store's counters: batches not written, runs written,
    /// results dropped while waiting.
    pub fn watch_state(&self, recorder: Arc<crate::state::Recorder>) {
        use std::sync::atomic::Ordering::Relaxed;
        let meter = self.provider.meter("healthgate");
        for (name, description, pick) in [
            (
                "healthgate.state.write_errors",
                "State store batches not written (a full disk, a read-only directory, a store that would not open); the gateway carries on.",
                (|s: &crate::state::recorder::Stats| s.write_errors.load(Relaxed)) as fn(&_) -> u64,
            ),
            (
                "healthgate.state.runs_written",
                "Runs written to the state store.",
                |s| s.runs_written.load(Relaxed),
            ),
            (
                "healthgate.state.dropped",
                "Results not kept for the state store: more waited for a batch than it holds.",
                |s| s.dropped.load(Relaxed),
            ),
        ] {
            let recorder = recorder.clone();
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |o| o.observe(pick(&recorder.stats), &[]))
                .build();
        }
    }

    /// Notifications and actions, from the consumers' counters.
    pub fn watch_acting(&self, stats: Arc<crate::events::Stats>) {
        use crate::events::stats::For;
        let meter = self.provider.meter("healthgate");
        let sent = stats.clone();
        meter
            .u64_observable_counter("healthgate.notifications")
            .with_description(
                "Notifications by notifier and result: delivered (retries included), failed \
                 (every attempt failed, or the receiver refused it) or coalesced (held by \
                 min_interval, then nothing new to send).",
            )
            .with_callback(move |o| {
                for (notifier, result, count) in sent.notifications() {
                    let labels = [
                        KeyValue::new("notifier", notifier.to_string()),
                        KeyValue::new("result", result.as_str()),
                    ];
                    o.observe(count, &labels);
                }
            })
            .build();
        meter
            .u64_observable_counter("healthgate.actions")
            .with_description(
                "Action runs by check (or verdict), action and result: ok, failed, timeout, \
                 rate_limited (skipped: max_runs within window) or busy (skipped: the \
                 previous run had not ended).",
            )
            .with_callback(move |o| {
                for (target, action, result, count) in stats.actions() {
                    let (check, verdict) = match &target {
                        For::Check(name) => (name.to_string(), ""),
                        For::Verdict(verdict) => (String::new(), *verdict),
                    };
                    let labels = [
                        KeyValue::new("check", check),
                        KeyValue::new("verdict", verdict),
                        KeyValue::new("action", action),
                        KeyValue::new("result", result.as_str()),
                    ];
                    o.observe(count, &labels);
                }
            })
            .build();
    }

    /// What the collector reports results to.
    pub fn observer(&self) -> Arc<dyn Observer> {
        self.recorder.clone()
    }

    /// The Prometheus text exposition of every metric, whole.
    pub fn render(&self) -> Vec<u8> {
        exposition::to_string(&collect(&self.reader)).into_bytes()
    }

    /// The exposition for a scrape, written on the render thread one scrape
    /// at a time and streamed: [`exposition::CHUNK`]s of text, then the end
    /// of the channel; an `Err` last if the text was cut short (the reader
    /// stalled, or rendering failed), so a client never takes a part for
    /// the whole. Closed with nothing in it if the render thread is gone.
    ///
    /// At 10,000 checks a render is 0.1-0.3 s of CPU: on a runtime worker
    /// (often the only one, in a container limited to less than a core) it
    /// would hold back every probe and every `/readyz` answer due
    /// meanwhile. So it runs on a thread of its own at the lowest CPU
    /// priority, and the runtime's threads come first (`BENCHMARKS.md` has
    /// the lateness with and without). Streamed, a scrape holds a few
    /// chunks rather than the whole text (megabytes at 10,000 checks, which
    /// the allocator would keep).
    pub async fn scrape(&self) -> Chunks {
        let (chunks, text) = mpsc::channel(CHUNKS_QUEUED + 1);
        // If the thread is gone, the request (and its sender) is dropped:
        // the channel closes empty.
        let _ = self.renders.send(chunks).await;
        text
    }

    /// Flushes and stops the exporters within `budget`. The SDK's shutdown
    /// blocks, so it runs on the blocking pool (it hangs if called on a
    /// runtime worker: opentelemetry-rust#2583).
    pub async fn shutdown(&self, budget: Duration) {
        let provider = self.provider.clone();
        super::shutdown_within("metrics", budget, move || provider.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::mpsc;

    use bytes::Bytes;

    use super::render::RENDER_NICE;
    use super::*;

    fn metrics() -> Arc<Metrics> {
        let resource = Resource::builder_empty().build();
        Arc::new(Metrics::new(resource, None, Arc::default()).expect("metrics"))
    }

    /// Every chunk of a scrape, and whether it ended whole.
    async fn chunks_of(mut text: Chunks) -> (Vec<Bytes>, io::Result<()>) {
        let mut chunks = Vec::new();
        while let Some(chunk) = text.recv().await {
            match chunk {
                Ok(chunk) => chunks.push(chunk),
                Err(e) => return (chunks, Err(e)),
            }
        }
        (chunks, Ok(()))
    }

    async fn scraped(metrics: &Metrics) -> String {
        let (chunks, end) = chunks_of(metrics.scrape().await).await;
        end.expect("the whole text");
        String::from_utf8(chunks.concat()).expect("utf8")
    }

    /// Gauges enough for ~800 KB of text: a dozen chunks.
    fn many_series(metrics: &Metrics) {
        let meter = metrics.provider.meter("test");
        for g in 0..32 {
            meter
                .u64_observable_gauge(format!("test.gauge{g}"))
                .with_callback(move |o| {
                    for i in 0..500 {
                        o.observe(i, &[KeyValue::new("check", format!("check-number-{i:05}"))]);
                    }
                })
                .build();
        }
    }

    fn sorted_lines(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines
    }

    /// A render holds no runtime worker: on a single-threaded runtime, a
    /// gauge whose callback waits for that runtime to make progress still
    /// gets its answer. Rendered on the runtime, the callback would time out.
    /// And it runs at the lowest priority.
    #[tokio::test(flavor = "current_thread")]
    async fn a_render_leaves_the_runtime_free() {
        let metrics = metrics();
        let (tx, rx) = mpsc::channel::<()>();
        let rx = std::sync::Mutex::new(rx);
        let meter = metrics.provider.meter("test");
        meter
            .i64_observable_gauge("test.nice")
            .with_callback(|o| {
                let nice = rustix::process::getpriority_process(None).unwrap_or(i32::MIN);
                o.observe(i64::from(nice), &[]);
            })
            .build();
        meter
            .u64_observable_gauge("test.waits")
            .with_callback(move |o| {
                let rx = rx.lock().expect("lock");
                let answered = rx.recv_timeout(Duration::from_secs(10)).is_ok();
                o.observe(u64::from(answered), &[]);
            })
            .build();
        let render = tokio::spawn({
            let metrics = metrics.clone();
            async move { scraped(&metrics).await }
        });
        // This task runs only if the render left the runtime's one thread free.
        tokio::task::yield_now().await;
        tx.send(()).expect("the callback is waiting");
        let text = render.await.expect("join");
        assert!(text.contains("test_waits 1"), "{text}");
        assert!(
            !cfg!(target_os = "linux") || text.contains(&format!("test_nice {RENDER_NICE}\n")),
            "{text}"
        );
    }

    /// Concurrent scrapes take turns and each gets the whole exposition.
    #[tokio::test]
    async fn concurrent_renders_each_get_the_whole_exposition() {
        let metrics = metrics();
        let families = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("# TYPE"))
                .map(str::to_owned)
                .collect()
        };
        let meter = metrics.provider.meter("test");
        for i in 0..8 {
            meter
                .u64_observable_gauge(format!("test.gauge{i}"))
                .with_callback(move |o| o.observe(i, &[]))
                .build();
        }
        let alone = families(&String::from_utf8(metrics.render()).expect("utf8"));
        assert_eq!(alone.len(), 9, "{alone:?}");
        let mut scrapes = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let metrics = metrics.clone();
            scrapes.spawn(async move { scraped(&metrics).await });
        }
        while let Some(text) = scrapes.join_next().await {
            assert_eq!(families(&text.expect("join")), alone);
        }
    }

    /// A scrape gets the text in pieces of about a chunk, each ending at a
    /// line, which together are the whole text.
    #[tokio::test]
    async fn a_scrape_streams_the_text_in_chunks() {
        let metrics = metrics();
        many_series(&metrics);
        let (chunks, end) = chunks_of(metrics.scrape().await).await;
        end.expect("the whole text");
        assert!(chunks.len() >= 10, "{} chunks", chunks.len());
        for chunk in &chunks[..chunks.len() - 1] {
            assert!(
                (exposition::CHUNK..exposition::CHUNK + 200).contains(&chunk.len()),
                "a chunk of {} bytes",
                chunk.len()
            );
            assert!(chunk.ends_with(b"\n"));
        }
        let streamed = String::from_utf8(chunks.concat()).expect("utf8");
        let whole = String::from_utf8(metrics.render()).expect("utf8");
        assert_eq!(sorted_lines(&streamed), sorted_lines(&whole));
        assert!(whole.contains("test_gauge31{check=\"check-number-00499\"} 499\n"));
    }

    /// A scraper that stops reading is cut off after the stall timeout,
    /// its text ends in an error (not a clean end a client would take for
    /// the whole), and the scrape queued behind it is served.
    #[tokio::test]
    async fn a_stalled_scraper_is_cut_off_and_the_next_is_served() {
        let stalled = Duration::from_millis(300);
        let resource = Resource::builder_empty().build();
        let metrics = Metrics::build(resource, None, Arc::default(), stalled).expect("metrics");
        many_series(&metrics);
        let start = tokio::time::Instant::now();
        let stuck = metrics.scrape().await;
        let next = tokio::time::timeout(Duration::from_secs(30), scraped(&metrics))
            .await
            .expect("the next scrape is served once the stalled one is cut off");
        assert!(
            start.elapsed() >= stalled,
            "served after {:?}",
            start.elapsed()
        );
        assert!(next.contains("test_gauge31{check=\"check-number-00499\"} 499\n"));
        let (chunks, end) = chunks_of(stuck).await;
        assert_eq!(chunks.len(), CHUNKS_QUEUED);
        let error = end.expect_err("cut short");
        assert_eq!(error.to_string(), "the exposition was cut short");
    }
}
