//! Shared test helpers: real servers on 127.0.0.1:0, a small client, the real binary.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub use healthgate::config::{Check, Config, load_str};

/// Every async test is bounded by this.
pub const TEST_DEADLINE: Duration = Duration::from_secs(30);

/// Validates `toml` through the real loader and returns its config.
pub fn config(toml: &str) -> Config {
    match load_str(Path::new("test.toml"), toml) {
        Ok(config) => config,
        Err(e) => panic!("test config rejected: {e}"),
    }
}

/// The single check of `toml`.
pub fn one_check(toml: &str) -> Check {
    config(toml).checks.remove(0)
}

/// `checks`, built in code with the typed constructors, as the `[[checks]]`
/// tables of a config file.
pub fn checks_toml(checks: &[healthgate::config::CheckConfig]) -> String {
    let tables: Vec<serde_json::Value> = checks
        .iter()
        .map(healthgate::config::CheckConfig::table)
        .collect();
    toml::to_string(&serde_json::json!({ "checks": tables })).expect("checks as TOML")
}

/// What the test server counts.
#[derive(Default)]
pub struct Counters {
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// Requests answered.
    pub requests: AtomicUsize,
    /// Body bytes the streaming routes got written into the socket.
    pub streamed: AtomicU64,
    /// The status `/flip` answers with.
    pub flip_status: AtomicU16,
    /// Requests `/flip` answered with a non-2xx status.
    pub flip_failures: AtomicUsize,
    /// Requests `/flip` answered with 2xx.
    pub flip_successes: AtomicUsize,
}

/// A real HTTP server on 127.0.0.1:0 with routes for every expectation kind.
pub struct TestServer {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

type Body = BoxBody<Bytes, Infallible>;

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with_tls(None).await
    }

    /// Serves over TLS when `tls` is given.
    pub async fn start_with_tls(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        counters.flip_status.store(200, Ordering::SeqCst);
        let shared = counters.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let counters = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let counters = counters.clone();
                        async move { Ok::<_, Infallible>(route(req, &counters)) }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, counters }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_flip(&self, status: u16) {
        self.counters.flip_status.store(status, Ordering::SeqCst);
    }
}

fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

fn route(req: Request<hyper::body::Incoming>, counters: &Arc<Counters>) -> Response<Body> {
    counters.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/ok" => full(200, "ok: all good"),
        "/json" => full(200, r#"{"status":"UP","details":{"db":"UP"},"n":3}"#),
        "/redirect" => {
            let mut r = full(302, "");
            r.headers_mut().insert("location", "/ok".parse().unwrap());
            r
        }
        "/redirect-away" => {
            let mut r = full(302, "");
            r.headers_mut().insert(
                "location",
                req.uri().query().unwrap_or("/").parse().unwrap(),
            );
            r
        }
        "/headers" => {
            let mut lines = String::new();
            for (name, value) in req.headers() {
                lines.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
            }
            full(200, lines)
        }
        "/headers.json" => {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("?").into()))
                .collect();
            full(200, serde_json::Value::Object(headers).to_string())
        }
        "/flip" => {
            let status = counters.flip_status.load(Ordering::SeqCst);
            if (200..300).contains(&status) {
                counters.flip_successes.fetch_add(1, Ordering::SeqCst);
            } else {
                counters.flip_failures.fetch_add(1, Ordering::SeqCst);
            }
            full(status, "flip")
        }
        "/endless" | "/big" => {
            // 64 KiB chunks: endless, or 100 MiB in all; count what gets sent.
            let limit: u64 = if path == "/big" { 100 << 20 } else { u64::MAX };
            let counters = counters.clone();
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_stream(limit, chunk, counters);
            let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            if path == "/big" {
                r.headers_mut()
                    .insert("content-length", limit.to_string().parse().unwrap());
            }
            r
        }
        "/slow-body" => {
            // Headers at once, the body 300 ms later: a `body` phase to time.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"late")))).await;
            });
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            Response::new(BodyExt::boxed(StreamBody::new(stream)))
        }
        p if p.starts_with("/status/") => full(p[8..].parse().unwrap_or(500), "status"),
        _ => full(404, "not found"),
    }
}

/// A stream of `chunk`s until `limit` bytes, counting each one handed to hyper.
fn futures_stream(
    limit: u64,
    chunk: Bytes,
    counters: Arc<Counters>,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    struct Chunks {
        left: u64,
        chunk: Bytes,
        counters: Arc<Counters>,
    }
    impl futures_core::Stream for Chunks {
        type Item = Result<Frame<Bytes>, Infallible>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.left == 0 {
                return std::task::Poll::Ready(None);
            }
            let n = self.left.min(self.chunk.len() as u64);
            self.left -= n;
            self.counters.streamed.fetch_add(n, Ordering::SeqCst);
            std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
        }
    }
    Chunks {
        left: limit,
        chunk,
        counters,
    }
}

/// A listener that accepts connections and never answers; it holds them until dropped.
pub async fn silent_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// An address on which nothing listens: a socket bound (so the port stays
/// taken) but not listening, so connects are refused. Keep the socket alive.
pub fn refusing_port() -> (SocketAddr, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (socket.local_addr().unwrap(), socket)
}

/// One request with a fresh connection: status, headers, body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> Result<(StatusCode, HeaderMap, String), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, HeaderMap, String) {
    request(addr, "GET", path).await.unwrap()
}

/// `method path` on the admin listener with an optional bearer token and body.
pub async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One sample of a Prometheus text exposition: name, labels, value.
pub type Sample = (String, std::collections::BTreeMap<String, String>, f64);

/// Every sample of `text`.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), std::collections::BTreeMap::new()),
                Some((name, rest)) => {
                    let labels = rest
                        .trim_end_matches('}')
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").unwrap();
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
            };
            (name, labels, value.parse().unwrap())
        })
        .collect()
}

/// The value of the first sample of `name` with (at least) `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

/// Polls `cond` every 20 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `healthgate run` process; killed on drop.
pub struct Gateway {
    pub child: tokio::process::Child,
    /// The load-balancer listener.
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`, `/api`, `/admin`).
    pub admin: SocketAddr,
    pub grpc: Option<SocketAddr>,
    pub agent: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_healthgate")
}

/// Writes `toml` to a temp dir and starts `healthgate run` on it, waiting for
/// the log line that gives the bound address (listen on port 0).
pub async fn start_gateway(toml: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("healthgate.toml");
    std::fs::write(&path, toml).unwrap();
    start_gateway_at(dir, &path).await
}

/// Starts `healthgate run --config path`; `dir` is kept alive with the process.
pub async fn start_gateway_at(dir: tempfile::TempDir, path: &Path) -> Gateway {
    start_gateway_env(dir, path, &[]).await
}

/// As [`start_gateway_at`], with extra environment variables.
pub async fn start_gateway_env(
    dir: tempfile::TempDir,
    path: &Path,
    env: &[(&str, &str)],
) -> Gateway {
    let mut child = tokio::process::Command::new(bin())
        .args(["--log-format", "json", "run", "--config"])
        .arg(path)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info,healthgate::reload=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let lines = log.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        let mut tx = Some(tx);
        let mut addrs = Addrs::default();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let addr = |key: &str| {
                    v.get(key)
                        .and_then(|l| l.as_str())
                        .map(|l| l.parse::<SocketAddr>().unwrap())
                };
                addrs.lb = addrs.lb.or(addr("listen"));
                addrs.admin = addrs.admin.or(addr("admin_listen"));
                addrs.grpc = addrs.grpc.or(addr("grpc_listen"));
                addrs.agent = addrs.agent.or(addr("agent_listen"));
                if v.get("message").and_then(|m| m.as_str()) == Some("started")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addrs).await;
                }
            }
            lines.lock().unwrap().push(line);
        }
    });
    let addrs = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the gateway did not log its addresses in time")
        .expect("the gateway exited before serving");
    Gateway {
        child,
        addr: addrs.lb.expect("no `listen` logged"),
        admin: addrs.admin.expect("no `admin_listen` logged"),
        grpc: addrs.grpc,
        agent: addrs.agent,
        dir,
        log,
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Addrs {
    lb: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    grpc: Option<SocketAddr>,
    agent: Option<SocketAddr>,
}

impl Gateway {
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("healthgate.toml")
    }

    pub fn logs(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// `/health` as JSON.
    pub async fn health(&self) -> serde_json::Value {
        let (_, _, body) = get(self.addr, "/health").await;
        serde_json::from_str(&body).unwrap()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }
}

/// `notAfter` of the test leaf (2031-01-01T00:00:00Z), the earliest in its chain.
pub const LEAF_NOT_AFTER: u64 = 1_924_992_000;

/// A test CA and a leaf for `localhost` / 127.0.0.1 signed by it.
pub struct TestPki {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
    /// The same server certificate, requiring a client certificate from the CA.
    pub server_mtls: Arc<rustls::ServerConfig>,
    /// A client certificate and key signed by the CA (PEM).
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// The leaf's chain (leaf, CA) and key as PEM, for the gateway's own listeners.
    pub server_chain_pem: String,
    pub server_key_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestPki {
    /// Another leaf for localhost / 127.0.0.1 from the same CA, valid until
    /// `year`-01-01: (chain PEM, key PEM).
    pub fn leaf(&self, year: i32) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        (
            format!("{}{}", leaf.pem(), self.ca_pem),
            key.serialize_pem(),
        )
    }
}

impl TestPki {
    /// A server config presenting a leaf (and the CA) for localhost /
    /// 127.0.0.1 valid from `not_before` to `not_after` (seconds from now, may be negative).
    pub fn server_valid_between(
        &self,
        not_before: i64,
        not_after: i64,
    ) -> Arc<rustls::ServerConfig> {
        let now = time::OffsetDateTime::now_utc();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params.not_before = now + time::Duration::seconds(not_before);
        params.not_after = now + time::Duration::seconds(not_after);
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        let ca = rustls_pki_types::CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![leaf.der().clone(), ca], key)
                .unwrap(),
        )
    }
}

pub fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "healthgate test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf_params.not_after = rcgen::date_time_ymd(2031, 1, 1);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let _ = ca.pem();
    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let key = rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["healthgate-client".to_owned()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server_mtls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
        server_mtls: Arc::new(server_mtls),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
        server_chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        server_key_pem: leaf_key.serialize_pem(),
        issuer,
    }
}

/// Runs the single probe of a `[[checks]]` table of `kind` (body: its other keys) once.
pub async fn run_probe(kind: &str, body: &str) -> healthgate::probe::Outcome {
    let check = one_check(&format!(
        "[[checks]]\nname = \"t\"\ntype = \"{kind}\"\n{body}"
    ));
    let healthgate::config::Source::Probe(spec) = &check.source else {
        panic!("a {kind} check is not probed");
    };
    let probe = healthgate::probe::build(spec);
    tokio::time::timeout(
        TEST_DEADLINE,
        healthgate::probe::run(probe.as_ref(), check.schedule.timeout),
    )
    .await
    .expect("the probe outlived the test deadline")
}

pub fn assert_fails(outcome: &healthgate::probe::Outcome, category: healthgate::probe::Category) {
    assert_eq!(
        outcome.failure,
        Some(category),
        "unexpected outcome: {outcome:?}"
    );
}

/// Whether `pid` is a live process (a zombie counts as dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
    }
}

/// A rustls client trusting `ca_pem`, optionally presenting a client certificate.
pub fn tls_client(ca_pem: &str, client: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Whether the tool `name` runs (`name probe...` exits 0). A test that
/// needs it says `SKIPPED` and how to `install` it when it does not, and
/// fails instead under CI (`CI` set), where `.ci/run` installs it.
pub fn tool(name: &str, probe: &[&str], install: &str) -> bool {
    if std::process::Command::new(name)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing under CI: .ci/run must {install}"
    );
    eprintln!("SKIPPED: {name} not found; {install}");
    false
}
