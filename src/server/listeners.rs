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
use super::{BindError, Context, Listening, Settings, admin, agent, bind, grpc, serve_http};
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

/// The running listeners.
pub struct Listeners {
    lb: Listening,
    admin: Listening,
    grpc: Option<Listening>,
    agent: Option<Listening>,
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

impl Listeners {
    /// Loads the TLS files and binds every configured listener, then serves them.
    pub async fn start(server: &Server, ctx: Context) -> Result<Self, ListenerError> {
        ctx.settings.store(Arc::new(settings(server, None)?));
        let lb = bind(Kind::Lb.key(), server.listen).await?;
        let admin = bind(Kind::Admin.key(), server.admin_listen).await?;
        let grpc = match server.grpc_listen {
            Some(addr) => Some(bind(Kind::Grpc.key(), addr).await?),
            None => None,
        };
        let agent = match server.agent_listen {
            Some(addr) => Some(bind(Kind::Agent.key(), addr).await?),
            None => None,
        };
        Ok(Self {
            lb: spawn(Kind::Lb, lb, &ctx),
            admin: spawn(Kind::Admin, admin, &ctx),
            grpc: grpc.map(|l| spawn(Kind::Grpc, l, &ctx)),
            agent: agent.map(|l| spawn(Kind::Agent, l, &ctx)),
            ctx,
        })
    }

    /// Where the load-balancer listener is.
    pub fn lb_addr(&self) -> SocketAddr {
        self.lb.addr
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
        let mut bound = Vec::new();
        for kind in KINDS {
            let (before, after) = (kind.address(old), kind.address(new));
            if before != after
                && let Some(addr) = after
            {
                bound.push((kind, bind(kind.key(), addr).await?));
            }
        }
        self.ctx.settings.store(Arc::new(settings));
        for kind in KINDS {
            if kind.address(old) == kind.address(new) {
                continue;
            }
            let replaced = match bound.iter().position(|(k, _)| *k == kind) {
                Some(i) => {
                    let (_, listener) = bound.swap_remove(i);
                    let listening = spawn(kind, listener, &self.ctx);
                    match kind {
                        Kind::Lb => Some(std::mem::replace(&mut self.lb, listening)),
                        Kind::Admin => Some(std::mem::replace(&mut self.admin, listening)),
                        _ => self.slot(kind).replace(listening),
                    }
                }
                None => self.slot(kind).take(),
            };
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
        let mut all = vec![self.lb.stop(grace), self.admin.stop(grace)];
        all.extend(self.grpc.map(|l| l.stop(grace)));
        all.extend(self.agent.map(|l| l.stop(grace)));
        for stopping in all {
            stopping.await;
        }
    }

    fn slot(&mut self, kind: Kind) -> &mut Option<Listening> {
        match kind {
            Kind::Grpc => &mut self.grpc,
            _ => &mut self.agent,
        }
    }
}

/// The settings for `server`, reusing `previous` TLS material whose files are the same.
fn settings(server: &Server, previous: Option<&Settings>) -> Result<Settings, ListenerError> {
    let load = |prefix: &'static str,
                section: &Option<crate::config::model::ListenerTlsSection>,
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
    let listening = match kind {
        Kind::Lb => Listening::spawn(listener, |listener, stopped| {
            let settings = ctx.settings.clone();
            let tls = move || settings.load().tls.as_ref().map(|t| t.acceptor());
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let response = super::verdicts(&ctx, request.method(), request.uri());
                std::future::ready(Ok::<_, Infallible>(response))
            });
            serve_http(listener, tls, service, stopped)
        }),
        Kind::Admin => Listening::spawn(listener, |listener, stopped| {
            let settings = ctx.settings.clone();
            let tls = move || settings.load().admin_tls.as_ref().map(|t| t.acceptor());
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(admin::handle(ctx, request).await) }
            });
            serve_http(listener, tls, service, stopped)
        }),
        Kind::Grpc => Listening::spawn(listener, |listener, stopped| {
            let settings = ctx.settings.clone();
            let tls = move || settings.load().tls.as_ref().map(|t| t.acceptor());
            serve_http(listener, tls, grpc::service(ctx), stopped)
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
