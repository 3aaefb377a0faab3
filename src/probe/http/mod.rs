//! `type = "http"`: one request over hyper (rustls for https), a fresh
//! connection per run unless `reuse_connection`, the body read up to
//! `max_body_bytes` and no further, then the expectations judged.

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONNECTION, HOST, LOCATION, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

use super::{BoxFuture, Category, Outcome, Phase, Probe, Target, Timer, net, tls};

mod config;
pub use config::{HttpConfig, HttpExpect, HttpExpectSection, HttpSpec, StatusMatch, StatusPattern};

const MAX_REDIRECTS: usize = 10;
const USER_AGENT_VALUE: &str = concat!("healthgate/", env!("CARGO_PKG_VERSION"));

/// Requests `spec.url` and judges the answer.
pub struct HttpProbe {
    spec: Arc<HttpSpec>,
    /// Built on the first https request (a plain http check, unless a
    /// redirect leads to https, never needs one).
    tls: OnceLock<Result<Arc<ClientConfig>, String>>,
    target: Arc<Target>,
    /// The kept connection with `reuse_connection`, and the origin it belongs to.
    pooled: Mutex<Option<(String, Conn)>>,
    /// What the probe sends that is secret, in every form a target may echo
    /// it back in; blanked out of every message.
    secrets: Box<[Box<str>]>,
}

/// A client connection; dropping it closes the socket.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Driver,
}

/// What reads and writes the socket for hyper.
enum Driver {
    /// A kept connection: a task of its own, ended when this is dropped.
    Task { _close: oneshot::Sender<()> },
    /// A connection for one request: polled by the run itself, alongside
    /// the request ([`drive`]), sparing a task per probe. `None` once done.
    Inline(Option<Pin<Box<Connection>>>),
}

type Connection = http1::Connection<TokioIo<Box<dyn Io>>, Full<Bytes>>;

/// Awaits `work`, polling an inline connection meanwhile (a kept one runs
/// in its own task).
async fn drive<F: Future>(driver: &mut Driver, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let Driver::Inline(slot) = driver
            && slot
                .as_mut()
                .is_some_and(|c| c.as_mut().poll(cx).is_ready())
        {
            *slot = None;
        }
        work.as_mut().poll(cx)
    })
    .await
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What came back, before judging.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    /// `None` when the body was larger than `max_body_bytes`.
    pub(crate) body: Option<Bytes>,
}

impl HttpProbe {
    /// A probe for `spec`; its TLS config is built here, once.
    pub fn new(spec: Arc<HttpSpec>) -> Self {
        let https = spec.url.scheme_str() == Some("https");
        let target = Arc::new(Target {
            address: spec
                .url
                .host()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned(),
            port: spec.url.port_u16().unwrap_or(if https { 443 } else { 80 }),
            url: Some(redacted(&spec.url)),
            method: Some(spec.method.to_string()),
        });
        Self {
            secrets: secrets(&spec),
            spec,
            tls: OnceLock::new(),
            target,
            pooled: Mutex::new(None),
        }
    }

    async fn run(&self, deadline: Instant, notes: &mut Notes) -> Outcome {
        let mut uri = self.spec.url.clone();
        let mut same_origin = true;
        for _ in 0..=MAX_REDIRECTS {
            let answer = match self.exchange(&uri, same_origin, deadline, notes).await {
                Ok(answer) => answer,
                Err(outcome) => return outcome,
            };
            if self.spec.follow_redirects && answer.status.is_redirection() {
                if let Some(next) = answer.location.as_deref().and_then(|l| resolve(&uri, l)) {
                    same_origin &= origin(&next) == origin(&uri);
                    uri = next;
                    continue;
                }
            }
            let status = answer.status.as_u16();
            return self.judge(answer).with_http_status(status);
        }
        Outcome::fail(
            Category::StatusMismatch,
            format!("gave up after {MAX_REDIRECTS} redirects"),
        )
    }

    /// One request and its bounded response. Credentials and custom headers
    /// go only to the configured origin, never across a redirect.
    async fn exchange(
        &self,
        uri: &Uri,
        credentials: bool,
        deadline: Instant,
        notes: &mut Notes,
    ) -> Result<Answer, Outcome> {
        let target = origin(uri);
        let pooled = self.take_pooled(&target);
        let was_pooled = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.open(uri, deadline, notes).await?,
        };
        let timer = Timer::start();
        let sent = self
            .send(&mut conn, uri, credentials, deadline, &target)
            .await;
        let response = match sent {
            // A kept connection the server closed while idle: one retry on a fresh one.
            Err(outcome) if was_pooled && outcome.failure == Some(Category::Protocol) => {
                conn = self.open(uri, deadline, notes).await?;
                self.send(&mut conn, uri, credentials, deadline, &target)
                    .await
            }
            other => other,
        };
        notes.phases.push(timer.finish("first_byte"));
        let mut response = response?;
        let status = response.status();
        let location = response
            .headers_mut()
            .remove(LOCATION)
            .and_then(|v| v.to_str().ok().map(str::to_owned));
        let limited = Limited::new(response.into_body(), self.spec.max_body_bytes);
        let timer = Timer::start();
        let collected = drive(&mut conn.driver, timeout_at(deadline, limited.collect())).await;
        notes.phases.push(timer.finish("body"));
        let body = match collected {
            Err(_) => {
                return Err(Outcome::fail(
                    Category::Timeout,
                    format!(
                        "status {status} from {target}, but the body did not finish within the timeout"
                    ),
                ));
            }
            Ok(Ok(collected)) => Some(collected.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => None,
            Ok(Err(e)) => {
                return Err(Outcome::fail(
                    Category::Protocol,
                    format!("{target}: reading the body: {e}"),
                ));
            }
        };
        if self.spec.reuse_connection && body.is_some() {
            if let Ok(mut slot) = self.pooled.lock() {
                *slot = Some((target, conn));
            }
        }
        Ok(Answer {
            status,
            location,
            body,
        })
    }

    async fn send(
        &self,
        conn: &mut Conn,
        uri: &Uri,
        credentials: bool,
        deadline: Instant,
        target: &str,
    ) -> Result<http::Response<hyper::body::Incoming>, Outcome> {
        let request = conn.sender.send_request(self.request(uri, credentials));
        match drive(&mut conn.driver, timeout_at(deadline, request)).await {
            Err(_) => Err(Outcome::fail(
                Category::Timeout,
                format!("no response from {target} within the timeout"),
            )),
            Ok(Err(e)) => Err(Outcome::fail(Category::Protocol, format!("{target}: {e}"))),
            Ok(Ok(response)) => Ok(response),
        }
    }

    fn take_pooled(&self, target: &str) -> Option<Conn> {
        if !self.spec.reuse_connection {
            return None;
        }
        let (origin, conn) = self.pooled.lock().ok()?.take()?;
        (origin == target && conn.sender.is_ready()).then_some(conn)
    }

    /// Connects (TCP, then TLS for https) and hands the socket to hyper. The
    /// connection task ends with the run (or, kept, when the `Conn` is dropped).
    async fn open(&self, uri: &Uri, deadline: Instant, notes: &mut Notes) -> Result<Conn, Outcome> {
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = net::connect(host, port, deadline, &mut notes.phases).await?;
        let io: Box<dyn Io> = if https {
            let timer = Timer::start();
            let tls = self.handshake(tcp, host, port, deadline).await;
            notes.phases.push(timer.finish("tls"));
            let tls = tls?;
            let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
            notes.cert_not_after = tls::earliest_expiry(chain);
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (sender, connection) =
            match timeout_at(deadline, http1::handshake(TokioIo::new(io))).await {
                Err(_) => return Err(Outcome::fail(Category::Timeout, "HTTP handshake timed out")),
                Ok(Err(e)) => {
                    return Err(Outcome::fail(
                        Category::Protocol,
                        format!("{host}:{port}: {e}"),
                    ));
                }
                Ok(Ok(parts)) => parts,
            };
        if !self.spec.reuse_connection {
            let driver = Driver::Inline(Some(Box::pin(connection)));
            return Ok(Conn { sender, driver });
        }
        // A kept connection's task lives exactly as long as the `Conn`:
        // dropping it (an abandoned run, a stale kept connection) closes the socket.
        let (close, closed) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = closed => {}
            }
        });
        let driver = Driver::Task { _close: close };
        Ok(Conn { sender, driver })
    }

    async fn handshake(
        &self,
        tcp: tokio::net::TcpStream,
        host: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Outcome> {
        let config = self
            .tls
            .get_or_init(|| tls::client_config(&self.spec.tls))
            .as_ref()
            .map_err(|e| Outcome::fail(Category::Tls, e.clone()))?;
        let name = self.spec.tls.server_name.as_deref().unwrap_or(host);
        tls::handshake(config, tcp, name, (host, port), deadline).await
    }

    fn request(&self, uri: &Uri, credentials: bool) -> Request<Full<Bytes>> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::new(Full::new(self.spec.body.clone().unwrap_or_default()));
        *request.method_mut() = self.spec.method.clone();
        *request.uri_mut() = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
        let headers = request.headers_mut();
        if let Some(authority) = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(HOST, authority);
        }
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        if !self.spec.reuse_connection {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if credentials {
            if let Some(auth) = self
                .spec
                .basic_auth
                .as_ref()
                .and_then(|a| HeaderValue::from_str(a.expose()).ok())
            {
                headers.insert(AUTHORIZATION, auth);
            }
            for (name, value) in &self.spec.headers {
                if let Ok(mut value) = HeaderValue::from_str(value.expose()) {
                    value.set_sensitive(true);
                    headers.insert(name.clone(), value);
                }
            }
        }
        request
    }

    pub(crate) fn judge(&self, answer: Answer) -> Outcome {
        let expect = &self.spec.expect;
        let code = answer.status.as_u16();
        if !expect.status.iter().any(|m| m.matches(code)) {
            let wanted: Vec<String> = expect.status.iter().map(ToString::to_string).collect();
            return Outcome::fail(
                Category::StatusMismatch,
                format!("status {code}, expected {}", wanted.join(" or ")),
            );
        }
        let Some(body) = answer.body else {
            let max = self.spec.max_body_bytes;
            return if expect.needs_body() {
                Outcome::fail(
                    Category::BodyTooLarge,
                    format!("body is larger than max_body_bytes ({max})"),
                )
            } else {
                Outcome::pass(format!("status {code} (body cut at max_body_bytes, {max})"))
            };
        };
        let text = String::from_utf8_lossy(&body);
        if let Some(needle) = &expect.body_contains {
            if !text.contains(needle.as_str()) {
                return Outcome::fail(
                    Category::BodyMismatch,
                    format!("body does not contain {needle:?}"),
                );
            }
        }
        if let Some(re) = &expect.body_regex {
            if !re.is_match(&text) {
                return Outcome::fail(
                    Category::BodyMismatch,
                    format!("body does not match /{re}/"),
                );
            }
        }
        if !expect.json.is_empty() {
            let doc: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(doc) => doc,
                Err(e) => {
                    return Outcome::fail(Category::JsonMismatch, format!("body is not JSON: {e}"));
                }
            };
            for (pointer, wanted) in &expect.json {
                match doc.pointer(pointer) {
                    None => {
                        return Outcome::fail(
                            Category::JsonMismatch,
                            format!("{pointer} is missing"),
                        );
                    }
                    Some(got) if got != wanted => {
                        return Outcome::fail(
                            Category::JsonMismatch,
                            format!("{pointer} is {got}, expected {wanted}"),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        Outcome::pass(format!("status {code}"))
    }
}

impl Probe for HttpProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut notes = Notes::default();
            let mut outcome = self.run(deadline, &mut notes).await;
            outcome.phases = notes.phases;
            outcome.cert_not_after = notes.cert_not_after;
            outcome.target = Some(self.target.clone());
            outcome.message = super::scrub(outcome.message, &self.secrets);
            outcome
        })
    }
}

/// The secrets `spec` sends: each header value, the `Authorization` value
/// of its URL credentials, their base64, `user:password`, and the password.
fn secrets(spec: &HttpSpec) -> Box<[Box<str>]> {
    use base64::Engine as _;
    let mut found: Vec<String> = spec
        .headers
        .iter()
        .map(|(_, value)| value.expose().to_owned())
        .collect();
    if let Some(auth) = &spec.basic_auth {
        let value = auth.expose();
        found.push(value.to_owned());
        if let Some(encoded) = value.strip_prefix("Basic ") {
            found.push(encoded.to_owned());
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) {
                let decoded = String::from_utf8_lossy(&decoded).into_owned();
                if let Some((_, password)) = decoded.split_once(':') {
                    found.push(password.to_owned());
                }
                found.push(decoded);
            }
        }
    }
    super::secrets(found)
}

/// What one run learns besides its outcome.
#[derive(Default)]
struct Notes {
    phases: Vec<Phase>,
    cert_not_after: Option<SystemTime>,
}

/// `scheme://host:port`, the unit a connection (and a credential) belongs to.
/// Never includes userinfo, so it is safe to print.
fn origin(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// The URL for traces: no userinfo (validation removed it) and every query
/// value replaced, since query strings often carry tokens.
fn redacted(uri: &Uri) -> String {
    let base = format!("{}{}", origin(uri), uri.path());
    match uri.query() {
        None => base,
        Some(query) => {
            let keys: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) => format!("{key}=REDACTED"),
                    None => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", keys.join("&"))
        }
    }
}

/// Resolves a `Location` header against the URL that sent it.
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    if let Ok(uri) = location.parse::<Uri>() {
        if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() {
            return uri
                .authority()
                .is_some_and(crate::config::valid_port)
                .then_some(uri);
        }
    }
    if let Some(rest) = location.strip_prefix("//") {
        let uri: Uri = format!("{}://{rest}", base.scheme_str()?).parse().ok()?;
        return uri
            .authority()
            .is_some_and(crate::config::valid_port)
            .then_some(uri);
    }
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{dir}/{location}")
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(path.parse().ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_to_a_port_out_of_range_is_not_followed() {
        let base: Uri = "http://127.0.0.1:8080/a".parse().unwrap();
        for location in [
            "http://127.0.0.1:99999/",
            "//127.0.0.1:0/",
            "https://h:65536/",
        ] {
            assert_eq!(resolve(&base, location), None, "{location}");
        }
        assert_eq!(
            resolve(&base, "//127.0.0.1:9/x").unwrap().to_string(),
            "http://127.0.0.1:9/x"
        );
    }

    #[test]
    fn trace_urls_redact_query_values() {
        let uri: Uri = "https://a.test:8443/h?token=s3cret&x".parse().unwrap();
        assert_eq!(redacted(&uri), "https://a.test:8443/h?token=REDACTED&x");
    }

    #[test]
    fn locations_resolve_against_the_base() {
        let base: Uri = "http://a.test:8080/x/y?q=1".parse().unwrap();
        assert_eq!(
            resolve(&base, "/z").unwrap().to_string(),
            "http://a.test:8080/z"
        );
        assert_eq!(
            resolve(&base, "z").unwrap().to_string(),
            "http://a.test:8080/x/z"
        );
        assert_eq!(
            resolve(&base, "https://b.test/").unwrap().to_string(),
            "https://b.test/"
        );
        assert_eq!(
            resolve(&base, "//c.test/p").unwrap().to_string(),
            "http://c.test/p"
        );
    }
}
