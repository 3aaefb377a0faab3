//! The listeners. Every one of them only reads the published snapshot.
//!
//! | listener        | serves                                                        |
//! |-----------------|---------------------------------------------------------------|
//! | `listen`        | `/livez` `/readyz` `/startupz` `/health` ([`routes`])          |
//! | `admin_listen`  | the same, `/metrics`, `/admin/drain`, `/api/checks` ([`admin`]) |
//! | `grpc_listen`   | `grpc.health.v1.Health` Check, Watch, List ([`grpc`])         |
//! | `agent_listen`  | HAProxy agent-check, one line per connection ([`agent`])      |
//!
//! HTTP listeners share one accept loop: a bounded number of connections
//! where the oldest idle one makes room for a new one ([`conns`]), a header
//! timeout counted from the accept (TLS handshake and HTTP/2 preface
//! included), optional TLS whose files are re-read when they change, and a
//! bounded graceful shutdown.

pub mod admin;
pub mod agent;
pub mod conns;
pub mod grpc;
pub mod history;
mod listeners;
pub mod listing;
pub mod metrics;
pub mod routes;
pub mod run;
pub mod status;
pub mod stream;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use listeners::{ListenerError, Listeners};
pub use metrics::{Chunks, MetricsSource};

use crate::config::Secret;
use crate::health::{Drain, Published, Snapshot};

/// A client must finish the TLS handshake, then send its request head, within
/// this time of its accept; later requests on the connection within this time
/// of their first byte.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (`{key}`): {source}")]
pub struct BindError {
    /// The config key of the listener.
    pub key: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// The cause.
    pub source: std::io::Error,
}

/// Binds a listener.
pub async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { key, addr, source })
}

/// What `/admin/drain` acts on: starts (`Some`) or ends (`None`) a drain.
pub trait DrainControl: Send + Sync + 'static {
    /// Sets the drain; the verdicts show it from the next snapshot.
    fn set(&self, drain: Option<Drain>) -> crate::probe::BoxFuture<'_, ()>;
}

/// What every listener reads: the verdicts, and the settings a reload may change.
#[derive(Clone)]
pub struct Context {
    /// The verdicts.
    pub published: Published,
    /// `/metrics` on the admin listener.
    pub metrics: Arc<dyn MetricsSource>,
    /// `/admin/drain`.
    pub drains: Arc<dyn DrainControl>,
    /// Failing readiness answers served while draining.
    pub seen: Arc<DrainSeen>,
    /// Token, weights and TLS, swapped whole on reload.
    pub settings: Arc<ArcSwap<Settings>>,
    /// Set when the listeners close: long-lived answers (gRPC Watch) end.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// Push checks' inboxes (`POST /api/checks/{name}/report`).
    pub inboxes: crate::scheduler::Inboxes,
    /// Connections the listeners closed to keep answering.
    pub shed: Arc<conns::Shed>,
    /// Checks' triggers (`POST /api/checks/{name}/run`).
    pub triggers: crate::scheduler::Triggers,
    /// The event bus, for `/api/events`.
    pub events: stream::Events,
    /// The checks written with `enabled = false`, swapped whole on reload.
    pub disabled: Arc<ArcSwap<Vec<listing::Disabled>>>,
    /// The state store (`/api/checks/{name}/history`), if on.
    pub state: Option<Arc<crate::state::State>>,
}

/// The listener settings a reload applies without rebinding.
#[derive(Default)]
pub struct Settings {
    /// Bearer token for the admin listener.
    pub admin_token: Option<Secret>,
    /// Agent-check weight while a non-critical check is not passing.
    pub agent_weight_on_warn: Option<u8>,
    /// TLS of the load-balancer and gRPC listeners.
    pub tls: Option<Arc<tls::TlsFiles>>,
    /// TLS of the admin listener.
    pub admin_tls: Option<Arc<tls::TlsFiles>>,
}

/// Counts failing readiness answers (any dialect) rendered from a draining
/// snapshot: the shutdown waits until the load balancer has been seen asking.
#[derive(Debug, Default)]
pub struct DrainSeen {
    count: AtomicU64,
    notify: Notify,
}

impl DrainSeen {
    /// Counts one answer if `snapshot` is draining.
    pub fn answered(&self, snapshot: &Snapshot) {
        if snapshot.drain.is_some() {
            self.count.fetch_add(1, Ordering::Relaxed);
            self.notify.notify_waiters();
        }
    }

    /// Answers counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until the count reaches `target`.
    pub async fn reached(&self, target: u64) {
        loop {
            let notified = self.notify.notified();
            if self.count() >= target {
                return;
            }
            notified.await;
        }
    }
}

/// A verdict endpoint's answer (both HTTP listeners), counting a `/readyz`
/// 503 toward the drain.
fn verdicts(
    ctx: &Context,
    method: &http::Method,
    uri: &http::Uri,
    detail: routes::Detail,
) -> routes::Response {
    let snapshot = ctx.published.load();
    let uptime = ctx.state.as_ref().filter(|_| {
        detail == routes::Detail::Full
            && uri.path() == "/health"
            && (method == http::Method::GET || method == http::Method::HEAD)
    });
    let response = match uptime {
        Some(state) => routes::health_with_uptime(&snapshot, &state.uptimes()),
        None => routes::respond_with(&snapshot, method, uri, detail),
    };
    if response.status() == http::StatusCode::SERVICE_UNAVAILABLE && uri.path() == "/readyz" {
        ctx.seen.answered(&snapshot);
    }
    response
}

/// A listener being served; see [`Listening::stop`].
pub struct Listening {
    /// The bound address.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<Duration>,
    task: tokio::task::JoinHandle<()>,
}

impl Listening {
    /// Runs `serve(listener, stopped)` in a task of its own.
    fn spawn<F>(listener: TcpListener, serve: impl FnOnce(TcpListener, Stopped) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (stop, stopped) = tokio::sync::oneshot::channel::<Duration>();
        let task = tokio::spawn(serve(listener, stopped));
        Listening { addr, stop, task }
    }

    /// Stops accepting, lets in-flight requests finish for at most `grace`, and waits.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(grace);
        let _ = self.task.await;
    }
}

/// Yields the grace period when the listener is to stop.
type Stopped = tokio::sync::oneshot::Receiver<Duration>;

/// Serves HTTP (1.1 and 2, TLS when `tls` yields an acceptor for the
/// connection) with `service` until stopped, then lets in-flight requests
/// finish within the grace period.
async fn serve_http<S, B>(
    listener: TcpListener,
    tls: impl Fn() -> Option<tokio_rustls::TlsAcceptor>,
    service: S,
    conns: Arc<conns::Table>,
    stopped: Stopped,
) where
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = Arc::new(http_builder());
    // Flipped to true at stop; the sender's `closed()` resolves once every
    // connection task has dropped its receiver.
    let (closing, open) = tokio::sync::watch::channel(false);
    tokio::pin!(stopped);
    let grace = loop {
        let stream = tokio::select! {
            grace = &mut stopped => break grace.unwrap_or_default(),
            stream = next_connection(&listener) => stream,
        };
        let accepted = tokio::time::Instant::now();
        let entry = conns.admit();
        let service = conns::Tracked::new(service.clone(), entry.conn());
        let (builder, mut open) = (builder.clone(), open.clone());
        let acceptor = tls();
        tokio::spawn(async move {
            let serve = async {
                let Some(acceptor) = acceptor else {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    return finish(conn, &mut open).await;
                };
                match acceptor.accept(stream).await {
                    Ok(stream) => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        finish(conn, &mut open).await;
                    }
                    Err(error) => tracing::debug!(%error, "TLS handshake failed"),
                }
            };
            tokio::select! {
                () = serve => {}
                () = entry.closed(accepted, HEADER_READ_TIMEOUT) => {}
            }
        });
    };
    drop(listener);
    drop(open);
    let _ = closing.send(true);
    if tokio::time::timeout(grace, closing.closed()).await.is_err() {
        tracing::warn!(grace = ?grace, "in-flight requests did not finish in time; closing them");
    }
}

/// The HTTP/1 and HTTP/2 connection settings every HTTP listener serves with.
#[doc(hidden)]
pub fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
}

/// The next connection, backing off on accept errors (typically EMFILE:
/// out of descriptors) instead of spinning.
async fn next_connection(listener: &TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves `conn` to its end; when the listener stops, finishes the request
/// in flight and closes (HTTP/1 keep-alive ends, HTTP/2 sends GOAWAY).
async fn finish<I, S, B>(
    conn: hyper_util::server::conn::auto::Connection<'_, I, S, TokioExecutor>,
    open: &mut tokio::sync::watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { open.wait_for(|closing| *closing).await.is_ok() } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
