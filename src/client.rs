//! The outgoing HTTP client of notifiers and of the CLI's remote commands:
//! hyper over rustls (the built-in roots, or a CA file), HTTP/1.1, each
//! exchange bounded in time and in the size of the answer read.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::ClientConfig;

use crate::probe::tls::{RootsKind, TlsSpec};

/// Most bytes of an answer read (the rest is not).
pub const MAX_ANSWER: usize = 64 * 1024;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A client for `http://` and `https://` URLs.
#[derive(Clone, Debug)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS settings could not be built.
    #[error("tls: {0}")]
    Tls(String),
    /// No answer within the bound.
    #[error("no answer within {}", crate::units::human(*.0))]
    Timeout(Duration),
    /// The connection or the exchange failed.
    #[error("{0}")]
    Exchange(String),
}

impl Client {
    /// A client trusting the built-in roots and `ca_file`'s certificates.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, ClientError> {
        let extra_roots = match ca_file {
            Some(ca) => crate::config::pem::certificates(ca).map_err(ClientError::Tls)?,
            None => Vec::new(),
        };
        Self::with(&TlsSpec {
            roots: RootsKind::Webpki,
            extra_roots,
            server_name: None,
            insecure_skip_verify: false,
        })
    }

    /// A client for this host's own listener, whose certificate it does not
    /// verify (as `healthgate get` does): it is the gateway's own, named for
    /// the clients it serves, not for the loopback address dialled.
    pub fn own_listener() -> Result<Self, ClientError> {
        Self::with(&TlsSpec {
            roots: RootsKind::Webpki,
            extra_roots: Vec::new(),
            server_name: None,
            insecure_skip_verify: true,
        })
    }

    fn with(spec: &TlsSpec) -> Result<Self, ClientError> {
        let shared = crate::probe::tls::client_config(spec).map_err(ClientError::Tls)?;
        let mut tls = ClientConfig::clone(&shared);
        // hyper-rustls sets ALPN itself (and panics on a config that has it).
        tls.alpn_protocols.clear();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let inner =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector);
        Ok(Self { inner })
    }

    /// Sends `request` and reads the answer (at most [`MAX_ANSWER`] bytes of
    /// it), all within `timeout`.
    pub async fn send(
        &self,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> Result<Response<Bytes>, ClientError> {
        let exchange = async {
            let (parts, body) = request.into_parts();
            let response = self
                .inner
                .request(Request::from_parts(parts, Full::new(body)))
                .await
                .map_err(|e| ClientError::Exchange(chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    /// The client for streams: no bound on the exchange as a whole.
    pub async fn open(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<hyper::body::Incoming>, ClientError> {
        let (parts, body) = request.into_parts();
        self.inner
            .request(Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| ClientError::Exchange(chain(&e)))
    }
}

/// An error with its causes, on one line (hyper's own says only "client error (Connect)").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
