//! The load-balancer listener: serves the verdict endpoints from the published
//! snapshot. A bounded number of connections, a header read timeout, and a
//! bounded graceful shutdown.

pub mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::health::Published;

/// Most connections served at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 1024;
/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The cause.
    pub source: std::io::Error,
}

/// Binds the listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Renders the Prometheus text exposition for `/metrics`.
pub type RenderMetrics = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// What the endpoints read.
#[derive(Clone)]
pub struct Endpoints {
    /// The verdicts.
    pub published: Published,
    /// `/metrics`, when served on this listener.
    pub metrics: Option<RenderMetrics>,
}

/// A listener being served; see [`Listening::stop`].
pub struct Listening {
    /// The bound address.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<Duration>,
    task: tokio::task::JoinHandle<()>,
}

impl Listening {
    /// Stops accepting, lets in-flight requests finish for at most `grace`, and waits.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(grace);
        let _ = self.task.await;
    }
}

/// Serves `listener` in a task of its own until stopped.
pub fn spawn(listener: TcpListener, endpoints: Endpoints) -> Listening {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<Duration>();
    let task = tokio::spawn(serve(listener, endpoints, stopped));
    Listening { addr, stop, task }
}

/// Serves until `shutdown` yields the grace period (or its sender is
/// dropped: no grace), then lets in-flight requests finish within it.
pub async fn serve(
    listener: TcpListener,
    endpoints: Endpoints,
    shutdown: impl Future<Output = Result<Duration, tokio::sync::oneshot::error::RecvError>>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    let grace = loop {
        let stream = tokio::select! {
            grace = &mut shutdown => break grace.unwrap_or_default(),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let endpoints = endpoints.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let response = match (&endpoints.metrics, request.uri().path()) {
                (Some(render), "/metrics") => routes::metrics(request.method(), render()),
                _ => routes::respond(&endpoints.published.load(), request.method(), request.uri()),
            };
            std::future::ready(Ok::<_, Infallible>(response))
        });
        let connection = graceful.watch(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    };
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?grace, "in-flight requests did not finish in time; closing them");
    }
}
