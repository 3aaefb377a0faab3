//! The open connections of one HTTP listener, in accept order.
//!
//! A listener holds at most [`cap`] connections. A connection must send a
//! complete request head within the header timeout of its accept (TLS
//! handshake and HTTP/2 preface included), or it is closed. When a new
//! connection arrives at the cap, the oldest idle one (no request being
//! answered) is shed to make room, or the oldest of all if none is idle:
//! the newest connection is always served, so however many sockets a
//! client holds open, the load balancer's next probe is answered.
//! Both closings are counted ([`Shed`]) and logged at most once a minute.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use crate::telemetry::shed::{Reason, Shed};

/// Most connections one listener holds, when the descriptor limit allows.
pub const MAX_CONNECTIONS: usize = 1024;
/// Fewest connections one listener holds, however low the descriptor limit.
const MIN_CONNECTIONS: usize = 64;

/// Connections per listener: [`MAX_CONNECTIONS`], or an eighth of the
/// process's descriptor limit when that is lower (the four listeners full
/// leave half of the descriptors to the probes).
pub fn cap() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    cap_for(limit)
}

/// Raises the soft descriptor limit to the hard one: the soft limit systemd
/// and some runtimes give (1,024) is below what the listeners and thousands
/// of checks need at once. Returns the limit now in force (`None`: unlimited).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(error) => {
            tracing::warn!(%error, soft = ?limit.current, hard = ?limit.maximum, "cannot raise the open file limit");
            limit.current
        }
    }
}

fn cap_for(nofile: Option<u64>) -> usize {
    let eighth = nofile.map_or(usize::MAX, |n| usize::try_from(n / 8).unwrap_or(usize::MAX));
    eighth.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// The open connections of one listener.
pub struct Table {
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    cap: usize,
    listener: &'static str,
    shed: Arc<Shed>,
}

/// One open connection, as its table and its requests see it.
#[derive(Default)]
pub struct Conn {
    /// Requests being answered (their response bodies included).
    busy: AtomicU32,
    /// A request head has arrived.
    asked: AtomicBool,
    /// Woken when the table sheds this connection.
    shed: Notify,
}

impl Table {
    /// A table of at most `cap` connections for `listener` (the metric's label).
    pub fn new(listener: &'static str, cap: usize, shed: Arc<Shed>) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            cap: cap.max(1),
            listener,
            shed,
        })
    }

    /// Registers a connection just accepted, shedding another one if the
    /// table is full. The connection leaves the table when the entry drops.
    pub fn admit(self: &Arc<Self>) -> Entry {
        let conn = Arc::new(Conn::default());
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.cap {
            let victim = open
                .iter()
                .find(|(_, c)| c.busy.load(Ordering::Relaxed) == 0)
                .or_else(|| open.iter().next())
                .map(|(id, _)| *id);
            if let Some(shed) = victim.and_then(|id| open.remove(&id)) {
                shed.shed.notify_one();
                self.shed.count(self.listener, Reason::Cap);
            }
        }
        open.insert(id, conn.clone());
        drop(open);
        Entry {
            id,
            conn,
            table: self.clone(),
        }
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.open.lock().map_or(0, |open| open.len())
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection's place in its table; dropping it takes the connection out.
pub struct Entry {
    id: u64,
    conn: Arc<Conn>,
    table: Arc<Table>,
}

impl Entry {
    /// The connection, for [`Tracked`] to mark its requests on.
    pub fn conn(&self) -> Arc<Conn> {
        self.conn.clone()
    }

    /// Resolves when the connection must close: the table shed it, or no
    /// request head arrived within `header_timeout` of `accepted`.
    pub async fn closed(&self, accepted: Instant, header_timeout: Duration) {
        let late = async {
            tokio::time::sleep_until(accepted + header_timeout).await;
            if self.conn.asked.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
            self.table.shed.count(self.table.listener, Reason::Timeout);
        };
        tokio::select! {
            () = self.conn.shed.notified() => {}
            () = late => {}
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&self.id);
    }
}

/// Closes the connection a request came on (found in the request's
/// extensions): for a long answer whose client stopped reading.
#[derive(Clone)]
pub struct Hangup(Arc<Conn>);

impl Hangup {
    /// Closes the connection now, its answers in flight with it.
    pub fn now(&self) {
        self.0.shed.notify_one();
    }
}

/// A service whose requests mark their connection busy until their
/// response body is done, and carry a [`Hangup`] for it.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> Tracked<S> {
    /// `inner`, serving `conn`.
    pub fn new(inner: S, conn: Arc<Conn>) -> Self {
        Self { inner, conn }
    }
}

/// Marks a connection busy while it lives.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.asked.store(true, Ordering::Relaxed);
        conn.busy.fetch_add(1, Ordering::Relaxed);
        Self(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, X, B> hyper::service::Service<http::Request<X>> for Tracked<S>
where
    S: hyper::service::Service<http::Request<X>, Response = http::Response<B>>,
{
    type Response = http::Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, mut request: http::Request<X>) -> Self::Future {
        let busy = Busy::new(&self.conn);
        request.extensions_mut().insert(Hangup(self.conn.clone()));
        TrackedFuture {
            inner: self.inner.call(request),
            busy: Some(busy),
        }
    }
}

pin_project! {
    /// The response of a [`Tracked`] service.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        busy: Option<Busy>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx));
        let busy = this.busy.take();
        Poll::Ready(response.map(|r| r.map(|inner| TrackedBody { inner, _busy: busy })))
    }
}

pin_project! {
    /// A response body that keeps its connection busy until it is dropped.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        _busy: Option<Busy>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cap: usize) -> Arc<Table> {
        Table::new("lb", cap, Arc::default())
    }

    #[test]
    fn the_cap_follows_the_descriptor_limit_within_bounds() {
        assert_eq!(cap_for(None), MAX_CONNECTIONS);
        assert_eq!(cap_for(Some(1 << 20)), MAX_CONNECTIONS);
        assert_eq!(cap_for(Some(4096)), 512);
        assert_eq!(cap_for(Some(1024)), 128);
        assert_eq!(cap_for(Some(16)), MIN_CONNECTIONS);
        assert_eq!(cap_for(Some(u64::MAX)), MAX_CONNECTIONS);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_oldest_idle_connection_is_shed() {
        let table = table(3);
        let first = table.admit();
        let second = table.admit();
        let third = table.admit();
        // The oldest is answering a request: the next oldest goes instead.
        let busy = Busy::new(&first.conn());
        let fourth = table.admit();
        assert_eq!(table.len(), 3);
        let shed = |e: &Entry| {
            let closed = e.closed(Instant::now(), Duration::from_secs(3600));
            futures_now(closed)
        };
        assert!(!shed(&first));
        assert!(shed(&second));
        assert!(!shed(&third));
        assert!(!shed(&fourth));
        assert_eq!(table.shed.get("lb", Reason::Cap), 1);
        drop(busy);
        // Now the first is idle and the oldest.
        let _fifth = table.admit();
        assert!(shed(&first));
        assert_eq!(table.shed.get("lb", Reason::Cap), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_connection_is_busy_the_oldest_is_shed() {
        let table = table(2);
        let first = table.admit();
        let second = table.admit();
        let _a = Busy::new(&first.conn());
        let _b = Busy::new(&second.conn());
        let _third = table.admit();
        let closed = |e: &Entry| futures_now(e.closed(Instant::now(), Duration::from_secs(3600)));
        assert!(closed(&first));
        assert!(!closed(&second));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_closes_at_the_header_timeout() {
        let table = table(8);
        let silent = table.admit();
        let asking = table.admit();
        let accepted = Instant::now();
        drop(Busy::new(&asking.conn()));
        let timeout = Duration::from_secs(5);
        tokio::time::advance(Duration::from_millis(4999)).await;
        assert!(!futures_now(silent.closed(accepted, timeout)));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(futures_now(silent.closed(accepted, timeout)));
        assert!(!futures_now(asking.closed(accepted, timeout)));
        assert_eq!(table.shed.get("lb", Reason::Timeout), 1);
    }

    #[test]
    fn a_dropped_entry_leaves_the_table() {
        let table = table(8);
        let entry = table.admit();
        assert_eq!(table.len(), 1);
        drop(entry);
        assert!(table.is_empty());
    }

    /// Whether `future` is ready at its first poll.
    fn futures_now(future: impl Future<Output = ()>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        future.as_mut().poll(&mut cx).is_ready()
    }
}
