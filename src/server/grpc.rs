//! `grpc.health.v1.Health` (Check, Watch and List) over the snapshot, for
//! Envoy, Kubernetes `grpc` probes and gRPC-aware load balancers.
//!
//! | service                    | status                                            |
//! |----------------------------|---------------------------------------------------|
//! | `""`, `readiness`          | `SERVING` when `/readyz` is 200                    |
//! | `liveness`                 | `SERVING` when `/livez` is 200                     |
//! | `startup`                  | `SERVING` when `/startupz` is 200                  |
//! | a check's name             | `SERVING` when it passes, `UNKNOWN` while starting |
//!
//! Anything else: Check answers `NOT_FOUND`; Watch sends `SERVICE_UNKNOWN`
//! and keeps the stream open (the name may appear with a reload), as the
//! protocol asks. Watch sends the current status at once, then every change.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;

use hyper::body::Incoming;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower_service::Service;

use super::Context;
use crate::health::{self, Snapshot};

/// Largest request message accepted (a service name).
const MAX_REQUEST: usize = 4096;

/// The gRPC service, as a hyper service for the shared accept loop.
pub fn service(
    ctx: Context,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = hyper::Response<tonic::body::Body>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    let health =
        HealthServer::new(GrpcHealth { ctx: ctx.clone() }).max_decoding_message_size(MAX_REQUEST);
    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut health = health.clone();
        let ctx = ctx.clone();
        async move {
            if request.uri().path() == "/grpc.health.v1.Health/List" {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                    .apply_max_message_size_config(Some(MAX_REQUEST), None);
                Ok(grpc.unary(ListSvc(ctx), request).await)
            } else {
                health.call(request).await
            }
        }
    })
}

struct GrpcHealth {
    ctx: Context,
}

/// The status of `service` in `snapshot`, or `None` when there is no such service.
fn status(snapshot: &Snapshot, service: &str) -> Option<ServingStatus> {
    let verdict = match service {
        "" | "readiness" => &snapshot.readiness,
        "liveness" => &snapshot.liveness,
        "startup" => &snapshot.startup,
        name => {
            let check = snapshot.checks.iter().find(|c| &*c.name == name)?;
            return Some(match check.status {
                health::Status::Pass => ServingStatus::Serving,
                health::Status::Starting => ServingStatus::Unknown,
                health::Status::Warn | health::Status::Fail => ServingStatus::NotServing,
            });
        }
    };
    Some(if verdict.ok {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    })
}

/// Counts a failing readiness answer toward the drain.
fn count(ctx: &Context, snapshot: &Snapshot, service: &str, status: ServingStatus) {
    if matches!(service, "" | "readiness") && status != ServingStatus::Serving {
        ctx.seen.answered(snapshot);
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

type Watching = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for GrpcHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.get_ref().service.as_str();
        let snapshot = self.ctx.published.load();
        let status = status(&snapshot, service)
            .ok_or_else(|| Status::not_found(format!("unknown service {service:?}")))?;
        count(&self.ctx, &snapshot, service, status);
        Ok(Response::new(response(status)))
    }

    type WatchStream = Watching;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let ctx = self.ctx.clone();
        let mut last = None;
        // Yields at once, then on every publish; only changes are sent. Ends
        // when the listeners close, so an open Watch never holds up the exit.
        let changes = WatchStream::new(ctx.published.subscribe()).map(|_| true);
        let closing = WatchStream::new(ctx.closing.subscribe())
            .filter(|closing| *closing)
            .map(|_| false);
        let stream = changes
            .merge(closing)
            .take_while(|open| *open)
            .filter_map(move |_| {
                let snapshot = ctx.published.load();
                let now = status(&snapshot, &service).unwrap_or(ServingStatus::ServiceUnknown);
                (last != Some(now)).then(|| {
                    count(&ctx, &snapshot, &service, now);
                    last = Some(now);
                    Ok(response(now))
                })
            });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// `List`: every service's status. Not in tonic-health's generated code
/// (the method postdates it), so its messages are declared here, as in
/// grpc/grpc-proto `grpc/health/v1/health.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthListRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthListResponse {
    #[prost(map = "string, message", tag = "1")]
    statuses: HashMap<String, HealthCheckResponse>,
}

struct ListSvc(Context);

impl tonic::server::UnaryService<HealthListRequest> for ListSvc {
    type Response = HealthListResponse;
    type Future = std::future::Ready<Result<Response<HealthListResponse>, Status>>;

    fn call(&mut self, _: Request<HealthListRequest>) -> Self::Future {
        let snapshot = self.0.published.load();
        let mut statuses = HashMap::with_capacity(snapshot.checks.len() + 4);
        let names = ["", "liveness", "readiness", "startup"]
            .into_iter()
            .chain(snapshot.checks.iter().map(|c| &*c.name));
        for name in names {
            if let Some(s) = status(&snapshot, name) {
                statuses.insert(name.to_owned(), response(s));
            }
        }
        std::future::ready(Ok(Response::new(HealthListResponse { statuses })))
    }
}
