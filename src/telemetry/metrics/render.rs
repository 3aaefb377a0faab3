//! The thread that renders `/metrics`: one scrape at a time, at the lowest
//! CPU priority so that no probe or verdict waits for it, written into a
//! bounded channel a chunk at a time so that a scrape never holds the
//! whole text.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_sdk::metrics::ManualReader;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader as _;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::MetricsError;
use crate::telemetry::exposition;

/// Niceness of the render thread: the lowest priority.
pub(super) const RENDER_NICE: i32 = 19;
/// Chunks written ahead of the scraper: the most text a scrape holds.
pub(super) const CHUNKS_QUEUED: usize = 4;
/// A scraper that takes no text for this long is dropped (Prometheus's
/// default scrape timeout): it holds the render thread, and every scrape
/// queued behind it waits.
pub(super) const STALLED: Duration = Duration::from_secs(10);

/// What `/metrics` reads: see [`Metrics::scrape`].
pub type Chunks = mpsc::Receiver<io::Result<Bytes>>;

/// Where one scrape's text goes.
pub(super) type Scrape = mpsc::Sender<io::Result<Bytes>>;

/// Starts the thread that renders `/metrics`, at [`RENDER_NICE`]; it ends
/// with the last sender. Scrapes queue on the returned sender.
pub(super) fn spawn_renderer(
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
pub(super) fn collect(reader: &ManualReader) -> ResourceMetrics {
    let mut collected = ResourceMetrics::default();
    if let Err(error) = reader.collect(&mut collected) {
        tracing::warn!(%error, "cannot collect metrics");
    }
    collected
}
