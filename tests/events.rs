//! Acting on health, against the real binary: the live event stream
//! (`/api/events`) with its resume and its slow-client cut-off.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::*;
use tokio::net::TcpStream;

const WITHIN: Duration = Duration::from_secs(15);

/// A gateway with an admin listener and `rest` (checks, notifiers...).
fn toml(rest: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nallow_no_checks = true\n\
         [defaults]\ninterval = \"100ms\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n{rest}"
    )
}

const WORKER: &str = "[[checks]]\nname = \"worker\"\ntype = \"push\"\nttl = \"1h\"\n";

/// One open `/api/events` stream, read frame by frame.
struct Stream {
    body: Incoming,
    buffer: String,
}

impl Stream {
    async fn open(admin: SocketAddr, last_event_id: Option<u64>) -> Self {
        let stream = TcpStream::connect(admin).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut request = http::Request::get("/api/events").header("host", "x");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let request = request.body(http_body_util::Empty::<Bytes>::new()).unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next frame that is an event (comments and `retry:` skipped):
    /// its `event:` name and its data as JSON.
    async fn next(&mut self) -> (String, serde_json::Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::to_owned)
                };
                if let (Some(event), Some(data)) = (field("event: "), field("data: ")) {
                    return (event, serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let frame = tokio::time::timeout(WITHIN, self.body.frame())
                .await
                .expect("a frame in time")
                .expect("the stream goes on")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// Frames until one satisfies `pred`; returns it.
    async fn until(
        &mut self,
        pred: impl Fn(&str, &serde_json::Value) -> bool,
    ) -> serde_json::Value {
        loop {
            let (event, data) = self.next().await;
            if pred(&event, &data) {
                return data;
            }
        }
    }
}

async fn report(gw: &Gateway, status: &str) {
    let body = format!("{{\"status\":\"{status}\",\"message\":\"nightly {status}\"}}");
    let (code, text) = admin(gw.admin, "POST", "/api/checks/worker/report", None, &body).await;
    assert_eq!(code, 202, "{text}");
}

fn is_worker(to: &'static str) -> impl Fn(&str, &serde_json::Value) -> bool {
    move |event, data| event == "check" && data["check"] == "worker" && data["to"] == to
}

/// A client that reconnects with the id of the last event it saw gets
/// exactly what it missed, in order, then the live events.
#[tokio::test]
async fn the_stream_resumes_after_the_last_event_id() {
    let gw = start_gateway(&toml(WORKER)).await;
    let mut stream = Stream::open(gw.admin, None).await;
    report(&gw, "fail").await;
    let failed = stream.until(is_worker("fail")).await;
    assert_eq!(failed["version"], 1);
    assert_eq!(failed["from"], "starting");
    assert_eq!(failed["message"], "reported fail: nightly fail");
    assert_eq!(failed["category"], "reported");
    let seen = failed["id"].as_u64().unwrap();
    drop(stream);

    // Missed while disconnected: the recovery and readiness coming back.
    report(&gw, "pass").await;
    eventually(WITHIN, "ready", || async {
        get(gw.addr, "/readyz").await.0 == 200
    })
    .await;
    let mut resumed = Stream::open(gw.admin, Some(seen)).await;
    let (event, first) = resumed.next().await;
    assert_eq!(
        (event.as_str(), first["id"].as_u64()),
        ("check", Some(seen + 1))
    );
    assert_eq!(first["to"], "pass");
    let ready = resumed
        .until(|e, d| e == "verdict" && d["verdict"] == "readiness")
        .await;
    assert_eq!(ready["ok"], true);
    assert_eq!(ready["endpoint"], "/readyz");
    // And then what happens next.
    report(&gw, "fail").await;
    let again = resumed.until(is_worker("fail")).await;
    assert!(again["id"].as_u64().unwrap() > ready["id"].as_u64().unwrap());
}

/// A client that stops reading is cut off and counted, while `/readyz` and
/// the other streams go on answering at their usual pace.
#[tokio::test]
async fn a_stalled_stream_is_cut_off_without_delaying_anyone() {
    let gw = start_gateway(&toml(WORKER)).await;
    // A small receive window, and nothing read after the request.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(gw.admin).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stalled,
        b"GET /api/events HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut live = Stream::open(gw.admin, None).await;
    let reason = "r".repeat(190);
    let mut slowest = Duration::ZERO;
    let started = tokio::time::Instant::now();
    let mut cut = false;
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(60) {
        round += 1;
        let body = format!("{{\"reason\":\"{reason} {round}\"}}");
        let (code, _) = admin(gw.admin, "POST", "/admin/drain", None, &body).await;
        assert_eq!(code, 200);
        let (code, _) = admin(gw.admin, "DELETE", "/admin/drain", None, "").await;
        assert_eq!(code, 200);
        let asked = tokio::time::Instant::now();
        let _ = get(gw.addr, "/readyz").await;
        slowest = slowest.max(asked.elapsed());
        if round % 20 == 0 {
            let (_, metrics) = admin(gw.admin, "GET", "/metrics", None, "").await;
            if metrics.contains("healthgate_events_dropped_total{consumer=\"sse\"} 1") {
                cut = true;
                break;
            }
        }
    }
    assert!(cut, "the stalled client was not cut off in 60 s");
    eprintln!("cut off after {round} rounds, {:?}", started.elapsed());
    // Its connection is closed: reading drains what was buffered, then ends.
    let mut sink = Vec::new();
    let read = tokio::time::timeout(
        WITHIN,
        tokio::io::AsyncReadExt::read_to_end(&mut stalled, &mut sink),
    )
    .await;
    assert!(read.is_ok(), "the stalled connection is still open");
    assert!(slowest < Duration::from_secs(1), "/readyz took {slowest:?}");
    // The live client saw every drain, in order.
    let first = live.until(|e, _| e == "drain").await;
    let first = first["id"].as_u64().unwrap();
    for id in first + 1..first + 20 {
        let (_, next) = live.next().await;
        assert_eq!(next["id"].as_u64().unwrap(), id);
    }
}

/// `POST /api/checks/{name}/run` runs the check at once against the real
/// target, records the run like a scheduled one (the status follows its
/// thresholds) and answers with it; several at once by group.
#[tokio::test]
async fn a_check_runs_on_demand_and_is_recorded() {
    let target = TestServer::start().await;
    let checks = format!(
        "[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"1h\"\n\
         [[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"{}\"\ninterval = \"1h\"\n\
         {WORKER}",
        target.url("/flip"),
        target.addr,
    );
    let gw = start_gateway(&toml(&checks)).await;
    // The first scheduled run falls within the hour: the runs below are
    // asked for (one scheduled meanwhile would only add to the count).
    target.set_flip(503);
    let (code, body) = admin(gw.admin, "POST", "/api/checks/api/run", None, "").await;
    assert_eq!(code, 200, "{body}");
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["last"]["result"], "fail", "{api}");
    assert_eq!(api["last"]["httpStatus"], 503, "{api}");
    assert_eq!(api["status"], "fail", "failure_threshold = 1: {api}");
    assert!(
        target
            .counters
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );
    // Recorded like any run: /readyz and the API show it.
    assert_eq!(get(gw.addr, "/readyz").await.0, 503);
    target.set_flip(200);
    let (code, body) = admin(
        gw.admin,
        "POST",
        "/api/checks/run?group=readiness",
        None,
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ran: Vec<(&str, &str)> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["last"]["result"].as_str().unwrap(),
            )
        })
        .collect();
    // The push check of the group is left out: it has nothing to run.
    assert_eq!(ran, [("api", "pass"), ("db", "pass")]);
    // What cannot be run says why.
    let cases = [
        ("POST", "/api/checks/worker/run", 409),
        ("POST", "/api/checks/nope/run", 404),
        ("GET", "/api/checks/api/run", 405),
        ("POST", "/api/checks/run?check=api&check=worker", 409),
        ("POST", "/api/checks/run", 400),
    ];
    for (method, path, status) in cases {
        let (code, body) = admin(gw.admin, method, path, None, "").await;
        assert_eq!(code, status, "{method} {path}: {body}");
    }
    // Not on the load balancer's listener.
    let (code, _) = admin(gw.addr, "POST", "/api/checks/api/run", None, "").await;
    assert_eq!(code, 404);
}
