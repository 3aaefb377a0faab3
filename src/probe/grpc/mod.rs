//! `type = "grpc"`: `grpc.health.v1.Health/Check` on a fresh connection per
//! run. The connection (TCP, then TLS with ALPN `h2`) is made here, so its
//! failures get the same categories and phases as the other probes; tonic
//! then speaks HTTP/2 over it.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use tokio::time::{Instant, timeout_at};
use tonic::Code;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{BoxFuture, Category, Outcome, Probe, Target, Timer, net, tls};

mod config;
pub use config::{GrpcConfig, GrpcSpec};

/// Asks a gRPC server's health service.
pub struct GrpcProbe {
    spec: GrpcSpec,
    tls: Option<Result<Arc<ClientConfig>, String>>,
    target: Arc<Target>,
    /// Metadata values, blanked out of every message.
    secrets: Box<[Box<str>]>,
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Hands tonic the connection made beforehand, once.
#[derive(Clone)]
struct Made(Arc<Mutex<Option<Box<dyn Io>>>>);

impl tower_service::Service<Uri> for Made {
    type Response = TokioIo<Box<dyn Io>>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let io = self.0.lock().ok().and_then(|mut slot| slot.take());
        std::future::ready(io.map(TokioIo::new).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotConnected, "connection already used")
        }))
    }
}

impl GrpcProbe {
    /// A probe for `spec`; its TLS config is built here, once.
    pub fn new(spec: GrpcSpec) -> Self {
        Self {
            tls: spec
                .tls
                .as_ref()
                .map(|t| tls::client_config_alpn(t, &[b"h2"])),
            target: Arc::new(Target {
                address: spec.host.clone(),
                port: spec.port,
                url: None,
                method: Some("grpc.health.v1.Health/Check".into()),
            }),
            secrets: super::secrets(spec.metadata.iter().map(|(_, v)| v.expose().to_owned())),
            spec,
        }
    }

    async fn run(&self, deadline: Instant, phases: &mut Vec<super::Phase>) -> Outcome {
        let (host, port) = (self.spec.host.as_str(), self.spec.port);
        let tcp = match net::connect(host, port, deadline, phases).await {
            Ok(tcp) => tcp,
            Err(outcome) => return outcome,
        };
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(Err(e)) => return Outcome::fail(Category::Tls, e.clone()),
            Some(Ok(config)) => {
                let name = self
                    .spec
                    .tls
                    .as_ref()
                    .and_then(|t| t.server_name.as_deref())
                    .unwrap_or(host);
                let timer = Timer::start();
                let stream = tls::handshake(config, tcp, name, (host, port), deadline).await;
                phases.push(timer.finish("tls"));
                match stream {
                    Ok(stream) => Box::new(stream),
                    Err(outcome) => return outcome,
                }
            }
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let authority = self
            .spec
            .authority
            .clone()
            .unwrap_or_else(|| authority(host, port));
        let origin = match format!("{scheme}://{authority}").parse::<Uri>() {
            Ok(origin) => origin,
            Err(e) => {
                return Outcome::fail(Category::Protocol, format!("authority {authority}: {e}"));
            }
        };
        let endpoint =
            match Endpoint::from_shared(format!("http://{}", self::authority(host, port))) {
                Ok(endpoint) => endpoint.origin(origin),
                Err(e) => return Outcome::fail(Category::Protocol, format!("{host}:{port}: {e}")),
            };
        let timer = Timer::start();
        let outcome = self.ask(endpoint, io, deadline).await;
        phases.push(timer.finish("first_byte"));
        outcome
    }

    /// The HTTP/2 handshake and the Check call over `io`.
    async fn ask(&self, endpoint: Endpoint, io: Box<dyn Io>, deadline: Instant) -> Outcome {
        let (host, port) = (self.spec.host.as_str(), self.spec.port);
        let made = Made(Arc::new(Mutex::new(Some(io))));
        let channel = match timeout_at(deadline, endpoint.connect_with_connector(made)).await {
            Err(_) => {
                return Outcome::fail(
                    Category::Timeout,
                    format!("HTTP/2 handshake with {host}:{port} timed out"),
                );
            }
            Ok(Err(e)) => {
                return Outcome::fail(
                    Category::Protocol,
                    format!("HTTP/2 handshake with {host}:{port}: {}", source_chain(&e)),
                );
            }
            Ok(Ok(channel)) => channel,
        };
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: self.spec.service.clone(),
        });
        for (key, value) in &self.spec.metadata {
            // Validated when the config was loaded.
            if let (Ok(key), Ok(value)) = (
                MetadataKey::from_bytes(key.as_bytes()),
                MetadataValue::try_from(value.expose()),
            ) {
                request.metadata_mut().insert(key, value);
            }
        }
        let service = if self.spec.service.is_empty() {
            "the server".to_owned()
        } else {
            format!("service {:?}", self.spec.service)
        };
        let answer = timeout_at(deadline, HealthClient::new(channel).check(request)).await;
        let status = match answer {
            Err(_) => {
                return Outcome::fail(
                    Category::Timeout,
                    format!("no health answer from {host}:{port} within the timeout"),
                );
            }
            Ok(Err(status)) if status.code() == Code::NotFound => {
                return Outcome::fail(
                    Category::GrpcServiceUnknown,
                    format!("{service} is unknown to {host}:{port} (NOT_FOUND)"),
                );
            }
            // The connection broke, or never spoke HTTP/2 (tonic connects lazily).
            Ok(Err(status)) if is_transport(&status) => {
                return Outcome::fail(
                    Category::Protocol,
                    format!("{host}:{port}: {}", source_chain(&status)),
                );
            }
            Ok(Err(status)) => {
                return Outcome::fail(
                    Category::GrpcError,
                    format!(
                        "Health/Check on {host}:{port} failed: {:?}: {}",
                        status.code(),
                        status.message()
                    ),
                );
            }
            Ok(Ok(response)) => response.into_inner().status(),
        };
        match status {
            ServingStatus::Serving => Outcome::pass(format!("{service} is SERVING")),
            ServingStatus::NotServing => Outcome::fail(
                Category::GrpcNotServing,
                format!("{service} is NOT_SERVING"),
            ),
            ServingStatus::ServiceUnknown => Outcome::fail(
                Category::GrpcServiceUnknown,
                format!("{service} is SERVICE_UNKNOWN"),
            ),
            ServingStatus::Unknown => {
                Outcome::fail(Category::GrpcUnknown, format!("{service} is UNKNOWN"))
            }
        }
    }
}

/// Whether a call failed in the transport rather than in the server.
fn is_transport(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        if cause.is::<tonic::transport::Error>() || cause.is::<hyper::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// An error with its causes, `a: b: c`.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

impl Probe for GrpcProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut phases = Vec::with_capacity(4);
            let mut outcome = self.run(deadline, &mut phases).await;
            outcome.phases = phases;
            outcome.target = Some(self.target.clone());
            outcome.message = super::scrub(outcome.message, &self.secrets);
            outcome
        })
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
