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
    report_with(gw, status, None).await;
}

async fn report_with(gw: &Gateway, status: &str, token: Option<&str>) {
    let body = format!("{{\"status\":\"{status}\",\"message\":\"nightly {status}\"}}");
    let (code, text) = admin(gw.admin, "POST", "/api/checks/worker/report", token, &body).await;
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
        ("POST", "/api/checks/run?group=everything", 400),
    ];
    for (method, path, status) in cases {
        let (code, body) = admin(gw.admin, method, path, None, "").await;
        assert_eq!(code, status, "{method} {path}: {body}");
    }
    // Not on the load balancer's listener.
    let (code, _) = admin(gw.addr, "POST", "/api/checks/api/run", None, "").await;
    assert_eq!(code, 404);
}

/// What a receiver does with a request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    Hang,
}

/// A real HTTP receiver on 127.0.0.1:0: answers each request as its
/// script says (then 200), and keeps every request it got.
struct Receiver {
    addr: SocketAddr,
    got: std::sync::Arc<std::sync::Mutex<Vec<(http::HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start(script: &[Answer]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let script = std::sync::Arc::new(std::sync::Mutex::new(
            script
                .iter()
                .copied()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        let (kept, left) = (got.clone(), script.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (kept, left) = (kept.clone(), left.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request: http::Request<Incoming>| {
                            let (kept, left) = (kept.clone(), left.clone());
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body.collect().await.unwrap().to_bytes();
                                kept.lock().unwrap().push((parts.headers, body));
                                let answer = left
                                    .lock()
                                    .unwrap()
                                    .pop_front()
                                    .unwrap_or(Answer::Status(200));
                                let status = match answer {
                                    Answer::Status(s) => s,
                                    Answer::Hang => {
                                        std::future::pending::<()>().await;
                                        500
                                    }
                                };
                                let mut response =
                                    http::Response::new(http_body_util::Full::new(Bytes::new()));
                                *response.status_mut() =
                                    http::StatusCode::from_u16(status).unwrap();
                                Ok::<_, std::convert::Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, got }
    }

    fn requests(&self) -> Vec<(http::HeaderMap, Bytes)> {
        self.got.lock().unwrap().clone()
    }
}

/// What a receiver does to trust a body: the HMAC-SHA256 of the raw bytes
/// under the shared key, compared in constant time with the header's.
fn verified(key: &[u8], headers: &http::HeaderMap, body: &[u8]) -> bool {
    let Some(hex) = headers
        .get("x-healthgate-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::verify(&key, body, &tag).is_ok()
}

async fn metrics(gw: &Gateway) -> String {
    admin(gw.admin, "GET", "/metrics", None, "").await.1
}

/// A webhook that fails twice then takes the event gets it exactly once
/// delivered, after the retries, signed with the shared key each time; its
/// header's secret value never reaches the logs.
#[tokio::test]
async fn a_webhook_is_retried_until_delivered_and_signed() {
    let receiver = Receiver::start(&[Answer::Status(500), Answer::Status(500)]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("webhook.key");
    std::fs::write(&key, "k3y-for-hmac\n").unwrap();
    let config = toml(&format!(
        "{WORKER}\
         [[notifiers]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://{}/hook\"\n\
         secret_file = \"{}\"\nheaders = {{ Authorization = \"Bearer hdr-s3cret\" }}\n\
         attempts = 3\nbackoff = \"50ms\"\nmax_backoff = \"100ms\"\nmin_interval = \"0s\"\n\
         events = [\"check\"]\n",
        receiver.addr,
        key.display()
    ));
    let gw = start_gateway(&config).await;
    report(&gw, "fail").await;
    let delivered = [("notifier", "ops"), ("result", "delivered")];
    eventually(WITHIN, "delivered", || async {
        series(
            &metrics(&gw).await,
            "healthgate_notifications_total",
            &delivered,
        ) == 1
    })
    .await;
    let got = receiver.requests();
    assert_eq!(got.len(), 3, "two failures, then the delivery");
    for (headers, body) in &got {
        assert!(verified(b"k3y-for-hmac", headers, body), "bad signature");
        assert!(!verified(b"another key", headers, body));
        assert_eq!(headers["authorization"], "Bearer hdr-s3cret");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, &got[0].1, "the same event each time");
    }
    let event: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(event["version"], 1);
    assert_eq!(event["type"], "check");
    assert_eq!(event["check"], "worker");
    assert_eq!(event["to"], "fail");
    assert!(event["instance"]["host"].is_string(), "{event}");
    // A recovery is sent too (send_resolved), once.
    report(&gw, "pass").await;
    eventually(WITHIN, "the recovery", || async {
        receiver.requests().len() == 4
    })
    .await;
    let recovery: serde_json::Value = serde_json::from_slice(&receiver.requests()[3].1).unwrap();
    assert_eq!(
        (recovery["from"].as_str(), recovery["to"].as_str()),
        (Some("fail"), Some("pass"))
    );
    let text = metrics(&gw).await;
    let failed = [("notifier", "ops"), ("result", "failed")];
    assert_eq!(
        series(&text, "healthgate_notifications_total", &failed),
        0,
        "{text}"
    );
    assert!(
        gw.logs()
            .iter()
            .all(|l| !l.contains("hdr-s3cret") && !l.contains("k3y-for-hmac"))
    );
}

/// A receiver that never answers: each notification ends in bounded time
/// (timeout x attempts), failed and counted; what its small queue cannot
/// hold is dropped and counted; reports, verdicts and the other notifier go on.
#[tokio::test]
async fn a_hanging_receiver_is_bounded_and_counted() {
    let hanging = Receiver::start(&[Answer::Hang; 64]).await;
    let healthy = Receiver::start(&[]).await;
    let target = TestServer::start().await;
    let config = toml(&format!(
        "{WORKER}[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\ngroups = []\n\
         [[notifiers]]\nname = \"stuck\"\ntype = \"webhook\"\nurl = \"http://{}/\"\n\
         timeout = \"300ms\"\nattempts = 2\nbackoff = \"50ms\"\nqueue = 2\nmin_interval = \"0s\"\n\
         [[notifiers]]\nname = \"fine\"\ntype = \"webhook\"\nurl = \"http://{}/\"\nmin_interval = \"0s\"\n",
        target.url("/ok"),
        hanging.addr,
        healthy.addr
    ));
    let gw = start_gateway(&config).await;
    let started = tokio::time::Instant::now();
    let runs_before = target
        .counters
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    for round in 0..10 {
        report(&gw, if round % 2 == 0 { "fail" } else { "pass" }).await;
        let asked = tokio::time::Instant::now();
        let _ = get(gw.addr, "/readyz").await;
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "/readyz took {:?}",
            asked.elapsed()
        );
        let expected = if round % 2 == 0 { 503 } else { 200 };
        eventually(WITHIN, "the verdict follows the report", || async {
            get(gw.addr, "/readyz").await.0 == expected
        })
        .await;
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "reports were held up");
    // The probes kept their 100 ms schedule meanwhile (half of it, for a busy machine).
    let runs = target
        .counters
        .requests
        .load(std::sync::atomic::Ordering::SeqCst)
        - runs_before;
    let due = elapsed.as_millis() / 100;
    assert!(runs as u128 >= due / 2, "{runs} runs in {elapsed:?}");
    eventually(WITHIN, "the healthy receiver got every change", || async {
        healthy
            .requests()
            .iter()
            .filter(|(_, b)| {
                let event: serde_json::Value = serde_json::from_slice(b).unwrap();
                event["check"] == "worker"
            })
            .count()
            == 10
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "failures and drops counted",
        || async {
            let text = metrics(&gw).await;
            let failed = [("notifier", "stuck"), ("result", "failed")];
            series(&text, "healthgate_notifications_total", &failed) >= 2
                && series(
                    &text,
                    "healthgate_events_dropped_total",
                    &[("consumer", "notifier:stuck")],
                ) >= 1
                && text.contains("healthgate_events_dropped_total{consumer=\"notifier:fine\"} 0")
        },
    )
    .await;
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// The count of `name` with `labels` in the exposition `text` (0 if absent).
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    value(&parse(text), name, labels).unwrap_or(0.0) as u64
}

/// A check's on_failure and on_recovery and the liveness restart run as
/// argv with the event in their environment (a message full of shell is
/// only ever a value), each within its rate limit; past it they are skipped
/// and counted.
#[tokio::test]
async fn actions_run_with_the_event_in_their_environment_within_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let append = |file: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"env | grep ^HEALTHGATE_ | sort > \\\"$0.env\\\"; echo ran >> \\\"$0\\\"\", \"{}\"]",
            at(file).display()
        )
    };
    let config = toml(&format!(
        "[[checks]]\nname = \"worker\"\ntype = \"push\"\nttl = \"1h\"\ngroups = [\"liveness\", \"readiness\"]\n\
         on_failure = {{ command = {}, max_runs = 2, window = \"1h\" }}\n\
         on_recovery = {{ command = {} }}\n\
         [actions.restart]\ncommand = {}\nmax_restarts = 1\nrestart_window = \"1h\"\n",
        append("failure"),
        append("recovery"),
        append("restart"),
    ));
    let gw = start_gateway(&config).await;
    let pwned = at("pwned");
    let hostile = format!(
        "{{\"status\":\"fail\",\"message\":\"$(touch {}) `touch {}`\"}}",
        pwned.display(),
        pwned.display()
    );
    let fail = || async {
        let (code, body) = admin(
            gw.admin,
            "POST",
            "/api/checks/worker/report",
            None,
            &hostile,
        )
        .await;
        assert_eq!(code, 202, "{body}");
    };
    fail().await;
    eventually(WITHIN, "on_failure and the restart ran", || async {
        lines(&at("failure")) == 1 && lines(&at("restart")) == 1
    })
    .await;
    let env = std::fs::read_to_string(at("failure.env")).unwrap();
    assert!(env.contains("HEALTHGATE_CHECK=worker\n"), "{env}");
    assert!(env.contains("HEALTHGATE_STATUS=fail\n"), "{env}");
    assert!(
        env.contains("HEALTHGATE_PREVIOUS_STATUS=starting\n"),
        "{env}"
    );
    assert!(env.contains("HEALTHGATE_CATEGORY=reported\n"), "{env}");
    assert!(
        env.contains("HEALTHGATE_MESSAGE=reported fail: $(touch"),
        "{env}"
    );
    let restart = std::fs::read_to_string(at("restart.env")).unwrap();
    assert!(
        restart.contains("HEALTHGATE_VERDICT=liveness\n"),
        "{restart}"
    );
    assert!(restart.contains("HEALTHGATE_ACTION=restart\n"), "{restart}");
    for round in 1..=2 {
        report(&gw, "pass").await;
        eventually(WITHIN, "on_recovery ran", || async {
            lines(&at("recovery")) == round
        })
        .await;
        fail().await;
        eventually(WITHIN, "the failure was acted on", || async {
            let text = metrics(&gw).await;
            let on_failure = |result| {
                let labels = [
                    ("check", "worker"),
                    ("action", "on_failure"),
                    ("result", result),
                ];
                series(&text, "healthgate_actions_total", &labels)
            };
            let acted = on_failure("ok") + on_failure("rate_limited");
            acted == round as u64 + 1
        })
        .await;
    }
    let text = metrics(&gw).await;
    assert_eq!(lines(&at("failure")), 2, "max_runs = 2");
    assert_eq!(lines(&at("restart")), 1, "max_restarts = 1");
    let count = |labels: &[(&str, &str)]| series(&text, "healthgate_actions_total", labels);
    let limited = ("result", "rate_limited");
    assert_eq!(
        count(&[("check", "worker"), ("action", "on_failure"), limited]),
        1,
        "{text}"
    );
    assert_eq!(
        count(&[("verdict", "liveness"), ("action", "restart"), limited]),
        2,
        "{text}"
    );
    assert!(!pwned.exists(), "the message was run as shell");
}

/// Debian's Alertmanager on 127.0.0.1, with a receiver that sends nowhere.
struct Alertmanager {
    addr: SocketAddr,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    async fn start() -> Option<Self> {
        if !tool(
            "prometheus-alertmanager",
            &["--version"],
            "apt-get install -y prometheus-alertmanager",
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n",
        )
        .unwrap();
        // A free port: taken, noted, let go (Alertmanager cannot report one it picked).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = tokio::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(30), "alertmanager ready", || async {
            request(addr, "GET", "/-/ready")
                .await
                .is_ok_and(|(code, _, _)| code == 200)
        })
        .await;
        Some(Self {
            addr,
            _child: child,
            _dir: dir,
        })
    }

    /// The alerts it holds active, as its v2 API lists them.
    async fn alerts(&self) -> Vec<serde_json::Value> {
        let (_, _, body) = get(self.addr, "/api/v2/alerts").await;
        serde_json::from_str(&body).unwrap()
    }
}

/// A failing check fires an alert in a real Alertmanager, with the labels
/// and annotations a route and a runbook need; it stays active past its
/// first `endsAt` because healthgate posts it again every resend_interval,
/// and it resolves when the check recovers.
#[tokio::test]
async fn a_failing_check_alerts_through_alertmanager_and_resolves() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let config = toml(&format!(
        "{WORKER}\
         [[notifiers]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://{}\"\n\
         resend_interval = \"1s\"\nmin_interval = \"0s\"\nlabels = {{ team = \"sre\" }}\n\
         runbook_url = \"https://runbooks.example.com/healthgate/{{check}}\"\n",
        am.addr
    ));
    let gw = start_gateway(&config).await;
    report(&gw, "fail").await;
    let worker = |alerts: &[serde_json::Value]| {
        alerts
            .iter()
            .find(|a| a["labels"]["check"] == "worker")
            .cloned()
    };
    eventually(WITHIN, "the alert fires", || async {
        worker(&am.alerts().await).is_some()
    })
    .await;
    let fired = worker(&am.alerts().await).unwrap();
    let labels = &fired["labels"];
    assert_eq!(labels["alertname"], "HealthgateCheckFailing", "{fired}");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["check_type"], "push");
    assert_eq!(labels["team"], "sre");
    assert!(labels["instance"].as_str().is_some_and(|i| !i.is_empty()));
    assert_eq!(fired["status"]["state"], "active");
    let annotations = &fired["annotations"];
    assert_eq!(
        annotations["runbook_url"],
        "https://runbooks.example.com/healthgate/worker"
    );
    assert_eq!(annotations["description"], "reported fail: nightly fail");
    // Re-posted: its end moves on, so it outlives the first one.
    let first_end = fired["endsAt"].as_str().unwrap().to_owned();
    eventually(WITHIN, "the alert is posted again", || async {
        worker(&am.alerts().await)
            .is_some_and(|a| a["endsAt"].as_str().unwrap() > first_end.as_str())
    })
    .await;
    assert_eq!(
        worker(&am.alerts().await).unwrap()["startsAt"],
        fired["startsAt"]
    );
    report(&gw, "pass").await;
    eventually(WITHIN, "the alert resolves", || async {
        worker(&am.alerts().await).is_none()
    })
    .await;

    // A check removed while failing: its alert resolves with the reload,
    // and the resends that follow (here, another check's) leave it out.
    report(&gw, "fail").await;
    eventually(WITHIN, "the alert fires again", || async {
        worker(&am.alerts().await).is_some()
    })
    .await;
    let without_worker = config.replace(
        WORKER,
        "[[checks]]\nname = \"broken\"\ntype = \"exec\"\ncommand = [\"false\"]\n",
    );
    std::fs::write(gw.config_path(), without_worker).unwrap();
    let broken = |alerts: &[serde_json::Value]| {
        alerts
            .iter()
            .find(|a| a["labels"]["check"] == "broken")
            .map(|a| a["endsAt"].as_str().unwrap_or_default().to_owned())
    };
    eventually(WITHIN, "the removed check's alert resolves", || async {
        let alerts = am.alerts().await;
        worker(&alerts).is_none() && broken(&alerts).is_some()
    })
    .await;
    let first_end = broken(&am.alerts().await).unwrap();
    eventually(WITHIN, "a resend without it", || async {
        let alerts = am.alerts().await;
        assert!(worker(&alerts).is_none(), "re-posted: {alerts:?}");
        broken(&alerts).is_some_and(|end| end > first_end)
    })
    .await;
    let text = metrics(&gw).await;
    assert_eq!(
        series(
            &text,
            "healthgate_notifications_total",
            &[("notifier", "am"), ("result", "failed")]
        ),
        0,
        "{text}"
    );
}

/// `healthgate check --remote` has the running gateway run its checks
/// (with the config's admin token) and exits as `check` does;
/// `healthgate watch` follows the events, as text or as JSON.
#[tokio::test]
async fn the_cli_runs_checks_remotely_and_watches_events() {
    let target = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken-for-the-cli\n").unwrap();
    let config = toml(&format!(
        "[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"1h\"\n{WORKER}",
        target.url("/flip")
    ))
    .replace(
        "allow_no_checks = true\n",
        &format!(
            "allow_no_checks = true\n[server.admin]\ntoken_file = \"{}\"\n",
            token.display()
        ),
    );
    let gw = start_gateway(&config).await;
    // The config names port 0: the CLI is pointed at the port the gateway took.
    let admin_url = format!("http://{}", gw.admin);
    let cli = |args: &[&str]| {
        let mut command = tokio::process::Command::new(bin());
        command
            .args(args)
            .arg("--config")
            .arg(gw.config_path())
            .env("HEALTHGATE_ADMIN_URL", &admin_url)
            .kill_on_drop(true);
        command
    };
    target.set_flip(503);
    let out = cli(&["check", "--remote", "--json", "--check", "api"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["name"], "api");
    assert_eq!(rows[0]["status"], "fail");
    assert_eq!(
        get(gw.addr, "/readyz").await.0,
        503,
        "recorded like a scheduled run"
    );
    target.set_flip(200);
    let out = cli(&["check", "--remote", "--group", "readiness"])
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("api ") && l.contains(" pass ")),
        "{table}"
    );

    let mut watch = cli(&["watch", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = cli(&["watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut json_lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(watch.stdout.take().unwrap()));
    let mut text_lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(text.stdout.take().unwrap()));
    // A watcher follows once an event reaches it: report until one does.
    let event = first_line(&gw, &mut json_lines).await;
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["version"], 1);
    assert_eq!(event["check"], "worker");
    let line = first_line(&gw, &mut text_lines).await;
    assert!(line.contains(" check worker: "), "{line}");
    assert!(line.contains(" -> "), "{line}");
}

/// The first line a watcher prints, changing the worker's status until it does.
async fn first_line(
    gw: &Gateway,
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    let token = Some("t0ken-for-the-cli");
    tokio::time::timeout(WITHIN, async {
        for status in ["fail", "pass"].iter().cycle() {
            report_with(gw, status, token).await;
            let next = tokio::time::timeout(Duration::from_millis(500), lines.next_line()).await;
            if let Ok(Ok(Some(line))) = next {
                return line;
            }
        }
        unreachable!()
    })
    .await
    .expect("the watcher printed no event")
}

/// Notifiers reload like everything else: one added starts delivering,
/// one removed stops, without a restart.
#[tokio::test]
async fn notifiers_come_and_go_with_a_reload() {
    let receiver = Receiver::start(&[]).await;
    let without = toml(WORKER);
    let gw = start_gateway(&without).await;
    let with = format!(
        "{without}[[notifiers]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://{}/\"\n\
         min_interval = \"0s\"\nevents = [\"check\"]\n",
        receiver.addr
    );
    let reloads = |n: u64| {
        let gw = &gw;
        async move {
            let text = metrics(gw).await;
            series(
                &text,
                "healthgate_config_reloads_total",
                &[("result", "success")],
            ) >= n
        }
    };
    std::fs::write(gw.config_path(), &with).unwrap();
    eventually(WITHIN, "the notifier added", || reloads(1)).await;
    report(&gw, "fail").await;
    eventually(WITHIN, "delivered", || async {
        receiver.requests().len() == 1
    })
    .await;
    std::fs::write(gw.config_path(), &without).unwrap();
    eventually(WITHIN, "the notifier removed", || reloads(2)).await;
    report(&gw, "pass").await;
    report(&gw, "fail").await;
    eventually(WITHIN, "the changes recorded", || async {
        gw.health().await["checks"]["worker:push"][0]["status"] == "fail"
            && get(gw.addr, "/readyz").await.0 == 503
    })
    .await;
    // The events were published (a live stream resumed from the start shows
    // them); the removed notifier got none of them.
    let mut stream = Stream::open(gw.admin, Some(0)).await;
    let last = stream
        .until(|e, d| e == "check" && d["to"] == "fail" && d["id"].as_u64() > Some(3))
        .await;
    assert!(last["id"].as_u64().is_some());
    assert_eq!(receiver.requests().len(), 1);
    let text = metrics(&gw).await;
    assert!(
        !text.contains("notifier=\"ops\""),
        "a removed notifier's series go: {text}"
    );
}

/// A maintenance window holds what it covers: a failure recorded while it
/// is open is told when it closes (it outlasted the window), after the
/// window's own opening and closing events.
#[tokio::test]
async fn a_maintenance_window_holds_notifications_until_it_closes() {
    let receiver = Receiver::start(&[]).await;
    let now = std::time::SystemTime::now();
    let rfc3339 = |t| humantime::format_rfc3339_millis(t).to_string();
    let config = toml(&format!(
        "{WORKER}\
         [[notifiers]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://{}/\"\n\
         min_interval = \"0s\"\nevents = [\"check\", \"maintenance\"]\n\
         [[maintenance]]\nname = \"upgrade\"\nstart = \"{}\"\nend = \"{}\"\nchecks = [\"worker\"]\n",
        receiver.addr,
        rfc3339(now - Duration::from_secs(1)),
        rfc3339(now + Duration::from_secs(8)),
    ));
    let gw = start_gateway(&config).await;
    let (_, _, body) = get(gw.admin, "/api/checks").await;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["maintenance"][0]["window"], "upgrade", "{doc}");
    report(&gw, "fail").await;
    eventually(WITHIN, "the failure recorded", || async {
        gw.health().await["checks"]["worker:push"][0]["status"] == "fail"
    })
    .await;
    let types = || {
        receiver
            .requests()
            .iter()
            .map(|(_, body)| {
                let e: serde_json::Value = serde_json::from_slice(body).unwrap();
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap(),
                    e["open"]
                        .as_bool()
                        .map_or_else(|| e["to"].to_string(), |o| o.to_string())
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(types(), ["maintenance true"], "held while open");
    eventually(
        Duration::from_secs(30),
        "released when it closed",
        || async { types().len() == 3 },
    )
    .await;
    assert_eq!(
        types(),
        ["maintenance true", "maintenance false", "check \"fail\""]
    );
}
