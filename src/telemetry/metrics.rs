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
//!
//! Labels are bounded by the config: never a URL, a message or an address.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::ManualReader;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader as _;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::health::{CheckView, LastRun, Published, Status, Transition};
use crate::probe::Outcome;
use crate::scheduler::Observer;
use crate::telemetry::exposition::{self, SharedReader};
use crate::telemetry::otlp::{Counted, Dropped};

/// Histogram buckets for probe durations, in seconds: 1 ms to 30 s.
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const STATUSES: [Status; 4] = [Status::Starting, Status::Pass, Status::Warn, Status::Fail];

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

/// Counts runs and transitions as the collector records them.
pub struct Recorder {
    lateness: Histogram<f64>,
    runs: Counter<u64>,
    duration: Histogram<f64>,
    transitions: Counter<u64>,
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
        register_gauges(&self.provider.meter("healthgate"), published);
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

/// Niceness of the render thread: the lowest priority.
const RENDER_NICE: i32 = 19;
/// Chunks written ahead of the scraper: the most text a scrape holds.
const CHUNKS_QUEUED: usize = 4;
/// A scraper that takes no text for this long is dropped (Prometheus's
/// default scrape timeout): it holds the render thread, and every scrape
/// queued behind it waits.
const STALLED: Duration = Duration::from_secs(10);

/// What `/metrics` reads: see [`Metrics::scrape`].
pub type Chunks = mpsc::Receiver<io::Result<Bytes>>;

/// Where one scrape's text goes.
type Scrape = mpsc::Sender<io::Result<Bytes>>;

/// Starts the thread that renders `/metrics`, at [`RENDER_NICE`]; it ends
/// with the last sender. Scrapes queue on the returned sender.
fn spawn_renderer(
    reader: Arc<ManualReader>,
    stalled: Duration,
) -> Result<mpsc::Sender<Scrape>, MetricsError> {
    let (renders, mut asks) = mpsc::channel::<Scrape>(1);
    // The thread's own clock for timing out a stalled scraper: the main
    // runtime's timers stop (and panic when polled) as it shuts down, which
    // a scrape in flight could see.
    let clock = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| MetricsError(format!("cannot start the render thread's clock: {e}")))?;
    std::thread::Builder::new()
        .name("metrics-render".into())
        .spawn(move || {
            lower_priority();
            while let Some(chunks) = asks.blocking_recv() {
                stream(&reader, &chunks, &clock, stalled);
            }
        })
        .map_err(|e| MetricsError(format!("cannot start the render thread: {e}")))?;
    Ok(renders)
}

/// Writes one scrape's text into its channel, a chunk at a time.
fn stream(
    reader: &ManualReader,
    chunks: &Scrape,
    clock: &tokio::runtime::Runtime,
    stalled: Duration,
) {
    // A slot kept for the error: a stalled reader that comes back still
    // learns the text was cut short.
    let Ok(error_slot) = chunks.clone().try_reserve_owned() else {
        return; // the scraper has gone
    };
    let mut emit = |text: String| {
        // The timer is made inside `block_on`: it needs the runtime's context.
        let send = async { timeout(stalled, chunks.send(Ok(Bytes::from(text)))).await };
        matches!(clock.block_on(send), Ok(Ok(())))
    };
    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        exposition::write(&collect(reader), &mut emit)
    }));
    if !matches!(written, Ok(true)) {
        tracing::debug!("a /metrics scrape was cut short: the scraper stalled or left");
        error_slot.send(Err(io::Error::other("the exposition was cut short")));
    }
}

/// Lowers the calling thread to [`RENDER_NICE`]. Linux keeps a nice value
/// per thread; elsewhere it is the whole process's, so it is left alone.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), RENDER_NICE)
    {
        tracing::debug!(%error, "cannot lower the render thread's priority");
    }
}

/// What the SDK holds now: every series, read once.
fn collect(reader: &ManualReader) -> ResourceMetrics {
    let mut collected = ResourceMetrics::default();
    if let Err(error) = reader.collect(&mut collected) {
        tracing::warn!(%error, "cannot collect metrics");
    }
    collected
}

impl Recorder {
    fn new(meter: &Meter) -> Self {
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

fn check_labels(check: &CheckView) -> [KeyValue; 2] {
    [
        KeyValue::new("check", check.name.clone()),
        KeyValue::new("type", check.kind),
    ]
}

fn flag(value: bool) -> u64 {
    u64::from(value)
}

/// Every gauge is an observable read from the snapshot: removed checks vanish
/// from them at once, and nothing is stored twice.
fn register_gauges(meter: &Meter, published: Published) {
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.check.up")
        .with_description("1 when the check's status is pass or warn, 0 otherwise.")
        .with_callback(move |o| {
            for c in &p.load().checks {
                o.observe(
                    flag(matches!(c.status, Status::Pass | Status::Warn)),
                    &check_labels(c),
                );
            }
        })
        .build();
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.check.status")
        .with_description("The check's status, one-hot: starting, pass, warn, fail.")
        .with_callback(move |o| {
            for c in &p.load().checks {
                let [check, kind] = check_labels(c);
                for status in STATUSES {
                    let labels = [
                        check.clone(),
                        kind.clone(),
                        KeyValue::new("status", status.as_str()),
                    ];
                    o.observe(flag(c.status == status), &labels);
                }
            }
        })
        .build();
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.check.consecutive_failures")
        .with_description("Consecutive failed runs counted toward failure_threshold.")
        .with_callback(move |o| {
            for c in &p.load().checks {
                o.observe(u64::from(c.consecutive_failures), &check_labels(c));
            }
        })
        .build();
    let p = published.clone();
    meter
        .f64_observable_gauge("healthgate.check.last_change")
        .with_unit("s")
        .with_description("When the check's status last changed (or the check was created), in seconds since the Unix epoch.")
        .with_callback(move |o| {
            for c in &p.load().checks {
                let seconds = c.since.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                o.observe(seconds, &check_labels(c));
            }
        })
        .build();
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.check.critical")
        .with_description(
            "1 for each group a check takes part in, with whether it is critical as the value.",
        )
        .with_callback(move |o| {
            for c in &p.load().checks {
                let [check, kind] = check_labels(c);
                for group in c.groups.iter() {
                    let labels = [
                        check.clone(),
                        kind.clone(),
                        KeyValue::new("group", group.as_str()),
                    ];
                    o.observe(flag(c.critical), &labels);
                }
            }
        })
        .build();
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.http.status_code")
        .with_description("The HTTP status of the last response, per http check.")
        .with_callback(move |o| {
            for c in &p.load().checks {
                if let Some(code) = c.last().and_then(LastRun::http_status) {
                    o.observe(u64::from(code), &[KeyValue::new("check", c.name.clone())]);
                }
            }
        })
        .build();
    let p = published.clone();
    meter
        .f64_observable_gauge("healthgate.tls.cert.not_after")
        .with_unit("s")
        .with_description("Earliest expiry in the certificate chain an https check was last presented, in seconds since the Unix epoch.")
        .with_callback(move |o| {
            for c in &p.load().checks {
                if let Some(at) = c.cert_not_after {
                    let seconds = at.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                    o.observe(seconds, &[KeyValue::new("check", c.name.clone())]);
                }
            }
        })
        .build();
    for (name, description, pick) in [
        (
            "healthgate.ready",
            "1 when /readyz answers 200.",
            (|s: &crate::health::Snapshot| s.readiness.ok) as fn(&_) -> bool,
        ),
        ("healthgate.live", "1 when /livez answers 200.", |s| {
            s.liveness.ok
        }),
        (
            "healthgate.started",
            "1 once /startupz answers 200 (latched).",
            |s| s.startup.ok,
        ),
        (
            "healthgate.draining",
            "1 while readiness is failed on purpose: a shutdown's drain, or POST /admin/drain.",
            |s| s.drain.is_some(),
        ),
    ] {
        let p = published.clone();
        meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_callback(move |o| o.observe(flag(pick(&p.load())), &[]))
            .build();
    }
    let p = published.clone();
    meter
        .u64_observable_counter("healthgate.config.reloads")
        .with_description("Config reloads, by result (success: applied; failure: rejected, the previous config kept).")
        .with_callback(move |o| {
            let reloads = &p.load().reloads;
            o.observe(reloads.applied, &[KeyValue::new("result", "success")]);
            o.observe(reloads.failed, &[KeyValue::new("result", "failure")]);
        })
        .build();
    let p = published.clone();
    meter
        .u64_observable_gauge("healthgate.config.last_reload_successful")
        .with_description("1 when the last config load (at start or by reload) succeeded.")
        .with_callback(move |o| {
            let ok = p.load().reloads.last.as_ref().is_none_or(|l| l.successful);
            o.observe(flag(ok), &[]);
        })
        .build();
    let p = published;
    meter
        .f64_observable_gauge("healthgate.config.last_reload_success_time")
        .with_unit("s")
        .with_description(
            "When a config was last loaded successfully, in seconds since the Unix epoch.",
        )
        .with_callback(move |o| {
            if let Some(at) = p.load().reloads.last_success_at {
                let seconds = at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                o.observe(seconds, &[]);
            }
        })
        .build();
    meter
        .f64_observable_counter("healthgate.process.cpu.time")
        .with_unit("s")
        .with_description("CPU seconds (user and system) the healthgate process has used.")
        .with_callback(|o| {
            if let Some(seconds) = super::process::cpu_seconds() {
                o.observe(seconds, &[]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("healthgate.process.memory.rss")
        .with_unit("By")
        .with_description("Resident memory of the healthgate process.")
        .with_callback(|o| {
            if let Some(bytes) = super::process::resident_bytes() {
                o.observe(bytes, &[]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("healthgate.build.info")
        .with_description("Always 1; the version of the running healthgate.")
        .with_callback(|o| o.observe(1, &[KeyValue::new("version", env!("CARGO_PKG_VERSION"))]))
        .build();
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

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
