//! `GET /api/events` on the admin listener: the event stream as
//! Server-Sent Events (`text/event-stream`).
//!
//! Each event is one frame: `id:` (the event's id), `event:` (its type:
//! `check`, `verdict`, `drain` or `reload`) and `data:` (its JSON, version
//! 1, one line). A client that reconnects with `Last-Event-ID` first gets
//! the events after that id still in the ring (the latest
//! [`crate::health::events::RING`]); if some have left it, or the id is from
//! an earlier run of the gateway, a `gap` frame says so before the replay.
//! Without the header the stream starts with the next event. A comment line
//! every [`HEARTBEAT`] keeps proxies from closing an idle stream.
//!
//! A client that does not take a frame within [`SLOW`] is cut off (its
//! connection closed, the loss counted as `healthgate_events_dropped_total
//! {consumer="sse"}`): it never holds back an event for anyone else. At most
//! [`MAX_STREAMS`] streams are open at once; past that, 503.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Either;
use tokio::sync::{mpsc, watch};

use super::conns::Hangup;
use super::metrics::{AdminBody, Streamed};
use crate::health::{Bus, Event};

/// Most streams open at once.
pub const MAX_STREAMS: usize = 32;
/// Longest a client may leave a frame untaken before it is cut off.
pub const SLOW: Duration = Duration::from_secs(5);
/// Time between two comment lines on an idle stream.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Frames written ahead of the client.
const QUEUED: usize = 64;
/// The consumer name drops are counted under.
pub const CONSUMER: &str = "sse";

/// The bus, and the streams open on it.
#[derive(Clone, Default)]
pub struct Events {
    /// Where the events come from.
    pub bus: Bus,
    open: Arc<AtomicUsize>,
}

impl Events {
    /// The streams of `bus`.
    pub fn new(bus: Bus) -> Self {
        bus.count_drops(CONSUMER);
        Self {
            bus,
            open: Arc::default(),
        }
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// One open stream's place in the count.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Opens a stream for a request with `headers`, or answers 503 at the cap.
/// The stream ends when the client goes, is too slow, or `closing` is set.
pub fn respond(
    events: &Events,
    headers: &HeaderMap,
    closing: watch::Receiver<bool>,
    hangup: Option<Hangup>,
) -> Response<AdminBody> {
    let taken = events
        .open
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        });
    if taken.is_err() {
        let full = super::routes::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(b"too many event streams open\n"),
        );
        return full.map(Either::Left);
    }
    let slot = Slot(events.open.clone());
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (tx, rx) = mpsc::channel(QUEUED);
    let bus = events.bus.clone();
    tokio::spawn(async move {
        let cut = feed(&bus, resume, &tx, closing).await;
        if cut {
            bus.dropped(CONSUMER);
            tracing::info!(
                slow = ?SLOW,
                "event stream client cut off: it did not take a frame in time"
            );
            if let Some(hangup) = hangup {
                hangup.now();
            }
        }
        drop(slot);
    });
    let mut response = Response::new(Either::Right(Streamed::new(
        Bytes::from_static(b"retry: 2000\n\n"),
        rx,
    )));
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Writes the stream into `tx` until the client goes or `closing` is set
/// (`false`), or the client is too slow (`true`).
async fn feed(
    bus: &Bus,
    resume: Option<u64>,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    mut closing: watch::Receiver<bool>,
) -> bool {
    // Subscribed before the ring is read: nothing published in between is missed.
    let mut latest = bus.subscribe();
    let (mut sent, restarted) = match resume {
        // From an earlier run of the gateway (ids start over at each start):
        // everything this run still holds.
        Some(id) if id > bus.latest() => (0, Some(id)),
        Some(id) => (id, None),
        None => (bus.latest(), None),
    };
    let mut first = true;
    loop {
        let (events, complete) = bus.since(sent);
        if first {
            first = false;
            if let Some(after) = restarted.or((!complete).then_some(sent)) {
                let next = events.first().map_or(0, |e| e.id);
                if !send(tx, gap(after, next)).await {
                    return true;
                }
            }
        } else if !complete {
            // Fell a whole ring behind: too slow to follow.
            return true;
        }
        for event in events {
            if !send(tx, frame(&event)).await {
                return true;
            }
            sent = event.id;
        }
        if *closing.borrow() {
            return false;
        }
        tokio::select! {
            changed = latest.changed() => if changed.is_err() { return false },
            () = tokio::time::sleep(HEARTBEAT) => {
                if !send(tx, Bytes::from_static(b": keep-alive\n\n")).await {
                    return true;
                }
            }
            _ = async { closing.wait_for(|c| *c).await.is_ok() } => return false,
            () = tx.closed() => return false,
        }
    }
}

/// Queues `frame`; `false` when the client did not take it within [`SLOW`]
/// (a client gone also returns `false`, and is then not counted as slow:
/// the caller sees the channel closed first).
async fn send(tx: &mpsc::Sender<io::Result<Bytes>>, frame: Bytes) -> bool {
    match tx.send_timeout(Ok(frame), SLOW).await {
        Ok(()) => true,
        Err(mpsc::error::SendTimeoutError::Closed(_)) => true,
        Err(mpsc::error::SendTimeoutError::Timeout(_)) => false,
    }
}

/// One event as an SSE frame.
pub fn frame(event: &Event) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {data}\n\n",
        event.id,
        event.type_name()
    ))
}

/// Events after `after` are missing: the next one shown is `next` (0: whichever comes).
fn gap(after: u64, next: u64) -> Bytes {
    Bytes::from(format!(
        "event: gap\ndata: {{\"version\":1,\"type\":\"gap\",\"after\":{after},\"next\":{next}}}\n\n"
    ))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::health::EventKind;

    fn publish(bus: &Bus, n: usize) {
        for i in 0..n {
            let kind = EventKind::Reload {
                successful: true,
                message: format!("applied {i}"),
                removed: std::sync::Arc::new([]),
            };
            bus.publish(kind, SystemTime::now());
        }
    }

    /// Runs a stream of `bus` into a queue of `room` frames; returns the
    /// frames' receiver and the stream's task (true: cut off as slow).
    fn open(
        bus: &Bus,
        resume: Option<u64>,
        room: usize,
    ) -> (
        mpsc::Receiver<io::Result<Bytes>>,
        watch::Sender<bool>,
        tokio::task::JoinHandle<bool>,
    ) {
        let (tx, rx) = mpsc::channel(room);
        let (closing, closed) = watch::channel(false);
        let bus = bus.clone();
        let task = tokio::spawn(async move { feed(&bus, resume, &tx, closed).await });
        (rx, closing, task)
    }

    async fn next(rx: &mut mpsc::Receiver<io::Result<Bytes>>) -> String {
        let frame = rx.recv().await.expect("a frame").expect("not an error");
        String::from_utf8(frame.to_vec()).expect("utf-8")
    }

    fn id(frame: &str) -> u64 {
        let line = frame.lines().find(|l| l.starts_with("id: ")).expect(frame);
        line[4..].parse().expect(frame)
    }

    #[tokio::test(start_paused = true)]
    async fn resumes_after_the_last_event_id_then_follows() {
        let bus = Bus::default();
        publish(&bus, 5);
        let (mut rx, closing, task) = open(&bus, Some(2), 16);
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(id(&next(&mut rx).await));
        }
        assert_eq!(ids, [3, 4, 5]);
        publish(&bus, 1);
        let frame = next(&mut rx).await;
        assert_eq!(id(&frame), 6);
        assert!(frame.contains("event: reload\ndata: {\"version\":1,\"id\":6,"));
        assert!(frame.ends_with("}\n\n"), "{frame:?}");
        closing.send_replace(true);
        assert!(
            !task.await.unwrap(),
            "a stream closed by the server is not cut off"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_id_it_starts_with_the_next_event() {
        let bus = Bus::default();
        publish(&bus, 3);
        let (mut rx, _closing, _task) = open(&bus, None, 16);
        tokio::task::yield_now().await;
        publish(&bus, 1);
        assert_eq!(id(&next(&mut rx).await), 4);
    }

    /// An id this run never gave (the gateway restarted) or one the ring no
    /// longer reaches: a `gap` frame, then what the ring holds.
    #[tokio::test(start_paused = true)]
    async fn a_lost_stretch_is_announced_as_a_gap() {
        let bus = Bus::default();
        publish(&bus, 3);
        let (mut rx, _c, _t) = open(&bus, Some(500), 16);
        let gap = next(&mut rx).await;
        assert!(gap.starts_with("event: gap\n"), "{gap}");
        assert!(gap.contains("\"after\":500,\"next\":1"), "{gap}");
        assert_eq!(id(&next(&mut rx).await), 1);

        publish(&bus, crate::health::events::RING);
        let (mut rx, _c, _t) = open(&bus, Some(1), 2048);
        let gap = next(&mut rx).await;
        assert!(gap.contains("\"after\":1,\"next\":4"), "{gap}");
        assert_eq!(id(&next(&mut rx).await), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_sends_heartbeats() {
        let bus = Bus::default();
        let (mut rx, _c, _t) = open(&bus, None, 16);
        let started = tokio::time::Instant::now();
        assert_eq!(next(&mut rx).await, ": keep-alive\n\n");
        assert_eq!(started.elapsed(), HEARTBEAT);
    }

    /// A client that takes nothing is cut off after [`SLOW`], while the
    /// bus goes on publishing to everyone else without waiting.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_takes_nothing_is_cut_off() {
        let bus = Bus::default();
        let (_rx, _c, task) = open(&bus, None, 1);
        let mut others = bus.attach("other", 16);
        let started = tokio::time::Instant::now();
        tokio::task::yield_now().await;
        publish(&bus, 3);
        assert_eq!(others.recv().await.unwrap().id, 1);
        assert!(task.await.unwrap(), "cut off as slow");
        assert_eq!(started.elapsed(), SLOW);
    }

    /// A client gone is not a slow one.
    #[tokio::test(start_paused = true)]
    async fn a_client_gone_ends_the_stream_quietly() {
        let bus = Bus::default();
        let (rx, _c, task) = open(&bus, None, 1);
        drop(rx);
        publish(&bus, 3);
        assert!(!task.await.unwrap());
    }

    #[test]
    fn at_the_cap_a_stream_is_refused() {
        let events = Events::default();
        events.open.store(MAX_STREAMS, Ordering::Relaxed);
        let (_tx, closing) = watch::channel(false);
        let response = respond(&events, &HeaderMap::new(), closing, None);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(events.open(), MAX_STREAMS);
    }
}
