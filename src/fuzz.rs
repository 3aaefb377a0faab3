//! Entry points for the fuzz targets in `fuzz/` (`cargo +nightly fuzz run
//! NAME`), and for `tests/fuzz_corpus.rs`, which replays their committed
//! corpora on stable. Each takes any input and must return, without a
//! panic, in bounded time. Not an API: the names and shapes follow the
//! targets.
// A broken invariant is reported the way a fuzzer sees it: as a panic.
#![allow(clippy::panic)]

use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::config::{Change, Source, load_str};
use crate::health::{Health, Published, Slot};
use crate::probe::ProbeSpec;
use crate::probe::http::{Answer, HttpProbe};
use crate::probe::tcp::TcpProbe;
use crate::server::{Context, routes};

/// Longest one in-process request may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(5);

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `future` on this thread's runtime (made once: a runtime per input
/// would cost more than the input).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|cell| {
        let mut cell = cell.borrow_mut();
        let runtime = cell.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("fuzz runtime: {e}"))
        });
        runtime.block_on(future)
    })
}

/// Loading a config: `text` as TOML, or YAML when `yaml`, with whatever
/// `HEALTHGATE_*` variables the caller has set.
pub fn config(yaml: bool, text: &str) {
    let path = if yaml { "fuzz.yaml" } else { "fuzz.toml" };
    let _ = load_str(Path::new(path), text);
}

/// A check whose every expectation (status patterns, body substring and
/// regex, JSON pointers of each type) applies to what `judge` is given.
const HTTP_CHECK: &str = r#"
[[checks]]
name = "h"
type = "http"
url = "http://127.0.0.1:1/"
[checks.expect]
status = ["2xx", 301, "418"]
body_contains = "ok"
body_regex = '(?s)^.{0,64}(up|UP)\b'
json = { "/status" = "UP", "/n" = 3, "/a/0/b" = true, "/~1x~0y" = 1.5, "" = { k = "v" }, "/list" = [1, "two"], "/none" = false }
"#;

/// The single check of `text`'s probe spec.
fn spec_of(text: &str) -> ProbeSpec {
    let mut config =
        load_str(Path::new("fuzz.toml"), text).unwrap_or_else(|e| panic!("a fuzz check: {e}"));
    match config.checks.pop() {
        Some(check) => match check.source {
            Source::Probe(spec) => spec,
            Source::Push(_) => panic!("a fuzz check that is not probed"),
        },
        None => panic!("a fuzz config without its check"),
    }
}

fn http_probe() -> &'static HttpProbe {
    static PROBE: OnceLock<HttpProbe> = OnceLock::new();
    PROBE.get_or_init(|| match spec_of(HTTP_CHECK) {
        ProbeSpec::Http(spec) => HttpProbe::new(spec),
        _ => panic!("the fuzz http check is not http"),
    })
}

/// The http expectations judging an answer of `status` and `body`.
pub fn http_answer(status: u16, body: &[u8]) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let outcome = http_probe().judge(Answer {
        status,
        location: None,
        body: Some(Bytes::copy_from_slice(body)),
    });
    assert!(outcome.message.len() <= 210, "{}", outcome.message);
}

const TCP_CHECK: &str = r#"
[[checks]]
name = "t"
type = "tcp"
address = "127.0.0.1:1"
max_response_bytes = 4096
[[checks.exchange]]
expect = '(?m)^\+PONG\r?$|^-ERR .{1,40}$'
"#;

fn tcp_probe() -> &'static TcpProbe {
    static PROBE: OnceLock<TcpProbe> = OnceLock::new();
    PROBE.get_or_init(|| match spec_of(TCP_CHECK) {
        ProbeSpec::Tcp(spec) => TcpProbe::new(spec),
        _ => panic!("the fuzz tcp check is not tcp"),
    })
}

/// A tcp exchange step reading `answer` (then the peer closes).
pub fn exchange(answer: &[u8]) {
    let probe = tcp_probe();
    let Some(step) = probe.exchange_expect(0) else {
        return;
    };
    block_on(async {
        let mut read = answer;
        let mut seen = Vec::new();
        let deadline = Instant::now() + HANG;
        let _ = probe
            .read_until(&mut read, &mut seen, &step, deadline, 0)
            .await;
        assert!(
            seen.len() <= 4096,
            "read {} bytes past the bound",
            seen.len()
        );
    });
}

/// `/metrics` for the admin fuzz target: a scrape that writes nothing (a 500).
struct NoMetrics;

impl crate::server::MetricsSource for NoMetrics {
    fn scrape(&self) -> crate::probe::BoxFuture<'_, crate::server::Chunks> {
        Box::pin(async {
            let (_, text) = tokio::sync::mpsc::channel(1);
            text
        })
    }
}

/// `/admin/drain` for the admin fuzz target: accepted, acted on by nothing.
struct NoDrains;

impl crate::server::DrainControl for NoDrains {
    fn set(&self, _: Option<crate::health::Drain>) -> crate::probe::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A context for the listeners, over a snapshot of a few checks.
fn context() -> Context {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let config = load_str(
                Path::new("c.toml"),
                "[[checks]]\nname = \"api\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n\
                 [[checks]]\nname = \"jobs\"\ntype = \"push\"\nttl = \"1m\"\n\
                 [[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"127.0.0.1:2\"\n\
                 groups = [\"liveness\", \"readiness\"]\ncritical = false\n",
            )
            .unwrap_or_else(|e| panic!("the fuzz config: {e}"));
            let slots: Vec<Slot> = config
                .checks
                .into_iter()
                .zip(1..)
                .map(|(check, generation)| Slot {
                    check,
                    generation,
                    change: Change::Added,
                })
                .collect();
            let mut health = block_on(async { Health::new(&slots, Instant::now()) });
            Context {
                published: Published::new(health.snapshot()),
                metrics: Arc::new(NoMetrics),
                drains: Arc::new(NoDrains),
                seen: Arc::default(),
                settings: Arc::default(),
                // Closing from the start: a long answer (`/api/events`)
                // ends after what it has, as one exchange must.
                closing: Arc::new(tokio::sync::watch::Sender::new(true)),
                inboxes: crate::scheduler::Inboxes::default(),
                disabled: Arc::default(),
                state: None,
                triggers: crate::scheduler::Triggers::default(),
                shed: Arc::default(),
                events: crate::server::stream::Events::default(),
            }
        })
        .clone()
}

/// `request`, bytes as a client sends them, served in-process by the
/// load-balancer listener's stack (or the admin listener's, when `admin`):
/// hyper's HTTP/1 and HTTP/2 parsing, the routes, the admin API and its
/// JSON bodies. Returns what was written back.
pub fn serve(admin: bool, request: &[u8]) -> Vec<u8> {
    let ctx = context();
    block_on(async move {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let io = TokioIo::new(server);
        let served = tokio::spawn(async move {
            let mut builder = crate::server::http_builder();
            // The client half-closes after its bytes: answer what it asked
            // before closing, as a client that waits would be answered.
            builder.http1().half_close(true);
            if admin {
                let service = hyper::service::service_fn(move |r| {
                    let ctx = ctx.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            crate::server::admin::handle(ctx, r).await,
                        )
                    }
                });
                let _ = builder.serve_connection(io, service).await;
            } else {
                let service = hyper::service::service_fn(move |r: http::Request<_>| {
                    let response = routes::respond_with(
                        &ctx.published.load(),
                        r.method(),
                        r.uri(),
                        routes::Detail::Outcome,
                    );
                    std::future::ready(Ok::<_, std::convert::Infallible>(response))
                });
                let _ = builder.serve_connection(io, service).await;
            }
        });
        let exchange = async {
            let _ = client.write_all(request).await;
            let _ = client.shutdown().await;
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer).await;
            answer
        };
        let answer = match tokio::time::timeout(HANG, exchange).await {
            Ok(answer) => answer,
            Err(_) => panic!(
                "a request of {} bytes was not answered in {HANG:?}",
                request.len()
            ),
        };
        served.abort();
        answer
    })
}

/// `body` posted to the admin API: as a drain and as a push report.
pub fn admin_json(body: &[u8]) {
    for path in ["/admin/drain", "/api/checks/jobs/report"] {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let answer = serve(true, &request);
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
}
