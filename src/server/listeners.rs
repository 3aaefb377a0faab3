//! The set of listeners of one config, and moving to another config's set:
//! everything that can fail (TLS files, binding new addresses) happens
//! before anything running is touched.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::tls::TlsFiles;
use super::{BindError, Context, Listening, Settings, admin, agent, bind, conns, grpc, serve_http};
use crate::config::{ListenerTlsError, Server};

/// Why a set of listeners could not start (or be reconfigured).
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// An address could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A listener's TLS files could not be used.
    #[error("key `{prefix}.{}`: {source}", source.key)]
    Tls {
        /// `server.tls` or `server.admin.tls`.
        prefix: &'static str,
        /// What is wrong.
        source: ListenerTlsError,
    },
}

/// The running listeners, one slot per [`Kind`] (the load-balancer and
/// admin slots are always filled).
pub struct Listeners {
    running: [Option<Listening>; 4],
    ctx: Context,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lb,
    Admin,
    Grpc,
    Agent,
}

impl Kind {
    /// The `listener` label of its connection metrics.
    fn label(self) -> &'static str {
        match self {
            Kind::Lb => "lb",
            Kind::Admin => "admin",
            Kind::Grpc => "grpc",
            Kind::Agent => "agent",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::Lb => "server.listen",
            Kind::Admin => "server.admin_listen",
            Kind::Grpc => "server.grpc_listen",
            Kind::Agent => "server.agent_listen",
        }
    }

    fn address(self, server: &Server) -> Option<SocketAddr> {
        match self {
            Kind::Lb => Some(server.listen),
            Kind::Admin => Some(server.admin_listen),
            Kind::Grpc => server.grpc_listen,
            Kind::Agent => server.agent_listen,
        }
    }
}

const KINDS: [Kind; 4] = [Kind::Lb, Kind::Admin, Kind::Grpc, Kind::Agent];

/// Binds the listener of each kind whose address `wanted` gives.
async fn bind_all(
    wanted: impl Fn(Kind) -> Option<SocketAddr>,
) -> Result<Vec<(Kind, TcpListener)>, BindError> {
    let mut bound = Vec::new();
    for kind in KINDS {
        if let Some(addr) = wanted(kind) {
            bound.push((kind, bind(kind.key(), addr).await?));
        }
    }
    Ok(bound)
}

impl Listeners {
    /// Loads the TLS files and binds every configured listener, then serves them.
    pub async fn start(server: &Server, ctx: Context) -> Result<Self, ListenerError> {
        ctx.settings.store(Arc::new(settings(server, None)?));
        let bound = bind_all(|kind| kind.address(server)).await?;
        let mut listeners = Self {
            running: [None, None, None, None],
            ctx,
        };
        for (kind, listener) in bound {
            listeners.running[kind as usize] = Some(spawn(kind, listener, &listeners.ctx));
        }
        Ok(listeners)
    }

    /// Where the load-balancer listener is.
    pub fn lb_addr(&self) -> Option<SocketAddr> {
        self.running[Kind::Lb as usize].as_ref().map(|l| l.addr)
    }

    /// Moves from `old`'s listeners to `new`'s. Changed addresses are bound
    /// first (a failure leaves everything as it was); the replaced listeners
    /// finish their in-flight requests within `grace` in the background.
    pub async fn reconfigure(
        &mut self,
        old: &Server,
        new: &Server,
        grace: Duration,
    ) -> Result<(), ListenerError> {
        let previous = self.ctx.settings.load_full();
        let settings = settings(new, Some(&previous))?;
        let changed = |kind: Kind| kind.address(old) != kind.address(new);
        let bound = bind_all(|kind| kind.address(new).filter(|_| changed(kind))).await?;
        self.ctx.settings.store(Arc::new(settings));
        // Both in KINDS order: a changed kind has a new listener unless it was turned off.
        let mut bound = bound.into_iter().peekable();
        for kind in KINDS.into_iter().filter(|k| changed(*k)) {
            let listening = bound
                .next_if(|(k, _)| *k == kind)
                .map(|(_, listener)| spawn(kind, listener, &self.ctx));
            let replaced = std::mem::replace(&mut self.running[kind as usize], listening);
            if let Some(old) = replaced {
                tracing::info!(key = kind.key(), previous = %old.addr, "listener closed");
                tokio::spawn(old.stop(grace));
            }
        }
        Ok(())
    }

    /// Stops every listener; in-flight requests get `grace` to finish.
    pub async fn stop(self, grace: Duration) {
        self.ctx.closing.send_replace(true);
        for listening in self.running.into_iter().flatten() {
            listening.stop(grace).await;
        }
    }
}

/// The settings for `server`, reusing `previous` TLS material whose files are the same.
fn settings(server: &Server, previous: Option<&Settings>) -> Result<Settings, ListenerError> {
    let load = |prefix: &'static str,
                section: &Option<crate::config::ListenerTlsSection>,
                kept: Option<&Arc<TlsFiles>>| {
        let Some(section) = section else {
            return Ok(None);
        };
        if let Some(kept) = kept.filter(|k| k.section() == section) {
            return Ok(Some(kept.clone()));
        }
        TlsFiles::load(prefix, section)
            .map(|files| Some(Arc::new(files)))
            .map_err(|source| ListenerError::Tls { prefix, source })
    };
    Ok(Settings {
        admin_token: server.admin_token.clone(),
        agent_weight_on_warn: server.agent_weight_on_warn,
        tls: load(
            "server.tls",
            &server.tls,
            previous.and_then(|p| p.tls.as_ref()),
        )?,
        admin_tls: load(
            "server.admin.tls",
            &server.admin_tls,
            previous.and_then(|p| p.admin_tls.as_ref()),
        )?,
    })
}

fn spawn(kind: Kind, listener: TcpListener, ctx: &Context) -> Listening {
    let ctx = ctx.clone();
    // The HTTP listeners' connections; the agent answers and closes at once.
    let table = |ctx: &Context| conns::Table::new(kind.label(), conns::cap(), ctx.shed.clone());
    let listening = match kind {
        Kind::Lb => Listening::spawn(listener, |listener, stopped| {
            let conns = table(&ctx);
            let settings = ctx.settings.clone();
            let tls = move || settings.load().tls.as_ref().map(|t| t.acceptor());
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let response = super::verdicts(
                    &ctx,
                    request.method(),
                    request.uri(),
                    super::routes::Detail::Outcome,
                );
                std::future::ready(Ok::<_, Infallible>(response))
            });
            serve_http(listener, tls, service, conns, stopped)
        }),
        Kind::Admin => Listening::spawn(listener, |listener, stopped| {
            let conns = table(&ctx);
            let settings = ctx.settings.clone();
            let tls = move || settings.load().admin_tls.as_ref().map(|t| t.acceptor());
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(admin::handle(ctx, request).await) }
            });
            serve_http(listener, tls, service, conns, stopped)
        }),
        Kind::Grpc => Listening::spawn(listener, |listener, stopped| {
            let conns = table(&ctx);
            let settings = ctx.settings.clone();
            let tls = move || settings.load().tls.as_ref().map(|t| t.acceptor());
            serve_http(listener, tls, grpc::service(ctx), conns, stopped)
        }),
        Kind::Agent => Listening::spawn(listener, |listener, stopped| {
            agent::serve(listener, ctx, stopped)
        }),
    };
    let addr = listening.addr;
    match kind {
        Kind::Lb => tracing::info!(listen = %addr, "serving /livez /readyz /startupz /health"),
        Kind::Admin => tracing::info!(
            admin_listen = %addr,
            "serving /metrics /api/checks /admin/drain and the verdicts (admin)"
        ),
        Kind::Grpc => tracing::info!(grpc_listen = %addr, "serving grpc.health.v1.Health"),
        Kind::Agent => tracing::info!(agent_listen = %addr, "serving HAProxy agent-check"),
    }
    listening
}
