//! Load-balancer integration, against the real binary with real clients: the
//! drain on SIGTERM, the admin listener and its token, the JSON API, manual
//! drain, gRPC health (tonic client), HAProxy agent-check, TLS and mTLS with
//! certificate rotation.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use nix::sys::signal::Signal;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const WITHIN: Duration = Duration::from_secs(15);

/// A gateway config: `server` lines go under `[server]`, then `rest`.
fn toml(server: &str, rest: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nallow_no_checks = true\n{server}\n\
         [defaults]\ninterval = \"100ms\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n{rest}"
    )
}

fn http_check(name: &str, url: &str, extra: &str) -> String {
    format!("[[checks]]\nname = \"{name}\"\ntype = \"http\"\nurl = \"{url}\"\n{extra}\n")
}

fn logged(gw: &Gateway, message: &str) -> bool {
    gw.logs().iter().any(|l| l.contains(message))
}

/// One agent-check answer.
async fn agent_line(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut line))
        .await
        .unwrap()
        .unwrap();
    line
}

async fn grpc_client(addr: SocketAddr) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

async fn grpc_check(addr: SocketAddr, service: &str) -> Result<i32, tonic::Code> {
    grpc_client(addr)
        .await
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| s.code())
}

fn serving(status: ServingStatus) -> i32 {
    status as i32
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthListRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthListResponse {
    #[prost(map = "string, message", tag = "1")]
    statuses: HashMap<String, HealthCheckResponse>,
}

/// `List`, called by hand: tonic-health's client predates the method.
async fn grpc_list(addr: SocketAddr) -> HashMap<String, i32> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let response: tonic::Response<HealthListResponse> = grpc
        .unary(
            tonic::Request::new(HealthListRequest {}),
            http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/List"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap();
    response
        .into_inner()
        .statuses
        .into_iter()
        .map(|(k, v)| (k, v.status))
        .collect()
}

/// What a poller saw: a status, or a failed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Status(u16),
    Refused,
}

#[tokio::test]
async fn sigterm_fails_readiness_first_keeps_serving_then_exits() {
    let target = TestServer::start().await;
    let mut gw = start_gateway(&toml(
        "shutdown_timeout = \"5s\"\n[server.drain]\nmin = \"1s\"\nmax = \"15s\"\nobserved_probes = 3",
        &http_check("api", &target.url("/ok"), ""),
    ))
    .await;
    let (lb, admin_addr) = (gw.addr, gw.admin);
    eventually(WITHIN, "ready", || async {
        get(lb, "/readyz").await.0 == StatusCode::OK
    })
    .await;

    // A load balancer polling /readyz and a kubelet polling /livez, each on new connections.
    let poll = |path: &'static str| {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
            while tokio::time::Instant::now() < deadline {
                let answer = match request(lb, "GET", path).await {
                    Ok((code, _, _)) => Seen::Status(code.as_u16()),
                    Err(_) => Seen::Refused,
                };
                seen.push(answer);
                if answer == Seen::Refused {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        })
    };
    let readyz = poll("/readyz");
    let livez = poll("/livez");

    // An admin request in flight: its head is sent, its body is not finished.
    let mut slow = TcpStream::connect(admin_addr).await.unwrap();
    slow.write_all(b"POST /admin/drain HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{")
        .await
        .unwrap();
    // (Its head reaches the admin listener long before the listeners close:
    // they stay open for drain.min = 1 s after the signal.)

    let runs_at_signal = target.counters.requests.load(Ordering::SeqCst);
    let signalled = tokio::time::Instant::now();
    gw.signal(Signal::SIGTERM);
    eventually(WITHIN, "listeners closed", || async {
        logged(&gw, "listeners closed")
    })
    .await;
    let drained_for = signalled.elapsed();
    let runs_while_draining = target.counters.requests.load(Ordering::SeqCst) - runs_at_signal;
    // The in-flight request finishes after the listeners closed.
    slow.write_all(b"}").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 409"),
        "in-flight request: {answer}"
    );

    let status = tokio::time::timeout(Duration::from_secs(10), gw.child.wait())
        .await
        .expect("exited within shutdown_timeout of closing")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let exited_after = signalled.elapsed();
    assert!(
        drained_for >= Duration::from_secs(1),
        "closed after {drained_for:?}, before drain.min"
    );
    assert!(
        exited_after < Duration::from_secs(15 + 5),
        "exited after {exited_after:?}"
    );
    // Probing went on during the drain (interval 100 ms, at least 1 s).
    assert!(
        runs_while_draining >= 5,
        "{runs_while_draining} probe runs while draining"
    );

    let readyz = readyz.await.unwrap();
    let first_fail = readyz.iter().position(|s| *s != Seen::Status(200)).unwrap();
    let refused = readyz.iter().position(|s| *s == Seen::Refused).unwrap();
    assert_eq!(
        readyz[first_fail],
        Seen::Status(503),
        "the load balancer saw 503 before any refusal: {readyz:?}"
    );
    let failing = readyz[first_fail..refused]
        .iter()
        .filter(|s| **s == Seen::Status(503))
        .count();
    assert_eq!(
        failing,
        refused - first_fail,
        "only 503s between the first 503 and the refusal: {readyz:?}"
    );
    assert!(
        failing >= 3,
        "at least observed_probes 503s before closing: {readyz:?}"
    );
    let livez = livez.await.unwrap();
    assert!(
        livez[..livez.len() - 1]
            .iter()
            .all(|s| *s == Seen::Status(200)),
        "liveness stays up until the listeners close: {livez:?}"
    );
    for phase in ["draining", "drained", "listeners closed", "stopped"] {
        assert!(logged(&gw, phase), "no log of {phase:?}");
    }
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let mut gw = start_gateway(&toml("[server.drain]\nmin = \"30s\"\nmax = \"60s\"", "")).await;
    gw.signal(Signal::SIGTERM);
    eventually(WITHIN, "draining", || async { logged(&gw, "draining") }).await;
    assert_eq!(
        get(gw.addr, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let again = tokio::time::Instant::now();
    gw.signal(Signal::SIGINT);
    let status = tokio::time::timeout(Duration::from_secs(5), gw.child.wait())
        .await
        .expect("exits at once on the second signal")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        again.elapsed() < Duration::from_secs(3),
        "{:?}",
        again.elapsed()
    );
    assert!(logged(&gw, "during shutdown: exiting now"));
}

#[tokio::test]
async fn with_nobody_asking_the_drain_ends_at_max() {
    let mut gw = start_gateway(&toml(
        "[server.drain]\nmin = \"0s\"\nmax = \"1s\"\nobserved_probes = 2",
        "",
    ))
    .await;
    let signalled = tokio::time::Instant::now();
    gw.signal(Signal::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(10), gw.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let took = signalled.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(logged(&gw, "drain.max reached"), "{:?}", gw.logs());
}

/// A load balancer that asks only through the agent-check is seen asking:
/// its `drain` answers count toward `observed_probes`, so the drain ends
/// long before `max`.
#[tokio::test]
async fn agent_check_answers_count_toward_the_drain() {
    let mut gw = start_gateway(&toml(
        "agent_listen = \"127.0.0.1:0\"\n[server.drain]\nmin = \"0s\"\nmax = \"20s\"\nobserved_probes = 3",
        "",
    ))
    .await;
    let agent = gw.agent.unwrap();
    let signalled = tokio::time::Instant::now();
    gw.signal(Signal::SIGTERM);
    eventually(WITHIN, "the agent says drain", || async {
        agent_line(agent).await.starts_with("drain #")
    })
    .await;
    // Three more asks; once the drain has seen enough the listener closes,
    // so a late one may find it gone: that is the point, not a failure.
    for _ in 0..3 {
        let ask = async {
            let mut stream = TcpStream::connect(agent).await.ok()?;
            let mut line = String::new();
            stream.read_to_string(&mut line).await.ok()
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), ask).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(15), gw.child.wait())
        .await
        .expect("the drain waited for max: agent answers were not counted")
        .unwrap();
    assert!(status.success());
    assert!(signalled.elapsed() < Duration::from_secs(15));
    assert!(
        logged(&gw, "drained: the failing readiness was served"),
        "{:?}",
        gw.logs()
    );
}

#[tokio::test]
async fn admin_needs_the_token_and_the_lb_listener_has_no_admin_paths() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let gw = start_gateway(&toml(
        &format!("[server.admin]\ntoken_file = \"{}\"", token_file.display()),
        "",
    ))
    .await;
    for path in ["/metrics", "/api/checks", "/admin/drain", "/readyz"] {
        let (code, _) = admin(gw.admin, "GET", path, None, "").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{path} without a token");
        let (code, _) = admin(gw.admin, "GET", path, Some("s3cret-tokeN"), "").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{path} with a wrong token");
        let (code, _) = admin(gw.admin, "GET", path, Some("s3cret-token"), "").await;
        assert_eq!(code, StatusCode::OK, "{path} with the token");
    }
    let (code, _) = admin(gw.admin, "POST", "/admin/drain", Some("nope"), "").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(gw.addr, "/readyz").await.0,
        StatusCode::OK,
        "a refused drain does nothing"
    );
    for path in ["/metrics", "/api/checks", "/api/checks/x", "/admin/drain"] {
        assert_eq!(
            get(gw.addr, path).await.0,
            StatusCode::NOT_FOUND,
            "{path} on the LB listener"
        );
        let (code, _) = admin(gw.addr, "POST", path, None, "").await;
        assert_eq!(
            code,
            StatusCode::NOT_FOUND,
            "POST {path} on the LB listener"
        );
    }
    assert!(
        !gw.logs().iter().any(|l| l.contains("s3cret")),
        "the token appears in the log"
    );
}

#[tokio::test]
async fn the_api_shows_each_check_with_its_latest_runs() {
    let target = TestServer::start().await;
    let gw = start_gateway(&toml(
        "",
        &format!(
            "{}{}",
            http_check("api", &target.url("/flip"), "interval = \"50ms\""),
            http_check(
                "cache",
                &target.url("/status/500"),
                "critical = false\ngroups = [\"readiness\", \"liveness\", \"readiness\"]"
            )
        ),
    ))
    .await;
    eventually(WITHIN, "12 runs of api", || async {
        target.counters.flip_successes.load(Ordering::SeqCst) >= 12
    })
    .await;
    target.set_flip(503);
    eventually(WITHIN, "api failing", || async {
        let (_, body) = admin(gw.admin, "GET", "/api/checks/api", None, "").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["status"] == "fail"
    })
    .await;
    let (code, body) = admin(gw.admin, "GET", "/api/checks/api", None, "").await;
    assert_eq!(code, StatusCode::OK);
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    let recent = api["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 10, "the latest 10 runs: {body}");
    assert_eq!(recent[0]["result"], "fail", "newest first: {body}");
    assert_eq!(recent[0]["httpStatus"], 503);
    assert_eq!(recent[0]["category"], "status_mismatch");
    let phases: Vec<&String> = recent[0]["phasesMs"].as_object().unwrap().keys().collect();
    assert_eq!(phases, ["body", "connect", "first_byte"], "{body}");
    assert_eq!(recent[9]["result"], "pass", "{body}");
    assert!(recent[0]["time"].as_str().unwrap() > recent[9]["time"].as_str().unwrap());
    assert_eq!(api["last"], recent[0]);
    assert_eq!(api["groups"], serde_json::json!(["readiness"]));

    let (code, body) = admin(gw.admin, "GET", "/api/checks", None, "").await;
    assert_eq!(code, StatusCode::OK);
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<_> = all["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "cache"]);
    assert_eq!(
        all["checks"][1]["groups"],
        serde_json::json!(["liveness", "readiness"]),
        "each group once, in a fixed order"
    );
    assert_eq!(all["readiness"]["ok"], false);
    assert_eq!(
        all["checks"][1]["status"], "warn",
        "non-critical failing reads warn"
    );
    assert!(
        all["checks"][0].get("recent").is_none(),
        "the list leaves runs out"
    );

    let (code, _) = admin(gw.admin, "GET", "/api/checks/nope", None, "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = admin(gw.admin, "DELETE", "/api/checks/api", None, "").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, _) = admin(gw.admin, "POST", "/metrics", None, "").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn manual_drain_and_maintenance_in_every_dialect() {
    let target = TestServer::start().await;
    let gw = start_gateway(&toml(
        "grpc_listen = \"127.0.0.1:0\"\nagent_listen = \"127.0.0.1:0\"",
        &http_check("api", &target.url("/ok"), ""),
    ))
    .await;
    let (grpc, agent) = (gw.grpc.unwrap(), gw.agent.unwrap());
    eventually(WITHIN, "ready", || async {
        get(gw.addr, "/readyz").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(agent_line(agent).await, "up ready\n");
    let draining = |admin_addr| async move {
        let text = get(admin_addr, "/metrics").await.2;
        text.lines()
            .find(|l| l.starts_with("healthgate_draining"))
            .map(str::to_owned)
    };
    assert_eq!(
        draining(gw.admin).await.as_deref(),
        Some("healthgate_draining 0")
    );

    let (code, body) = admin(
        gw.admin,
        "POST",
        "/admin/drain",
        None,
        r#"{"reason": "deploy 42"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    eventually(WITHIN, "drained", || async {
        get(gw.addr, "/readyz").await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_eq!(get(gw.addr, "/readyz").await.2, "draining: deploy 42");
    assert_eq!(get(gw.addr, "/livez").await.0, StatusCode::OK);
    assert_eq!(agent_line(agent).await, "drain #deploy 42\n");
    assert_eq!(
        grpc_check(grpc, "").await,
        Ok(serving(ServingStatus::NotServing))
    );
    assert_eq!(
        grpc_check(grpc, "liveness").await,
        Ok(serving(ServingStatus::Serving))
    );
    assert_eq!(
        draining(gw.admin).await.as_deref(),
        Some("healthgate_draining 1")
    );
    let (_, state) = admin(gw.admin, "GET", "/admin/drain", None, "").await;
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(
        (state["draining"].clone(), state["mode"].clone()),
        (true.into(), "drain".into())
    );

    let (code, _) = admin(
        gw.admin,
        "POST",
        "/admin/drain",
        None,
        r#"{"mode": "maint", "reason": "disk swap"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    eventually(WITHIN, "maint", || async {
        agent_line(agent).await == "maint #disk swap\n"
    })
    .await;

    let (code, body) = admin(gw.admin, "POST", "/admin/drain", None, r#"{"mode": "off"}"#).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, _) = admin(gw.admin, "POST", "/admin/drain", None, &"x".repeat(5000)).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);

    let (code, _) = admin(gw.admin, "DELETE", "/admin/drain", None, "").await;
    assert_eq!(code, StatusCode::OK);
    eventually(WITHIN, "back", || async {
        get(gw.addr, "/readyz").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(agent_line(agent).await, "up ready\n");
    assert_eq!(
        grpc_check(grpc, "").await,
        Ok(serving(ServingStatus::Serving))
    );
}

#[tokio::test]
async fn grpc_health_checks_every_service_and_watch_follows_a_failure_and_recovery() {
    let target = TestServer::start().await;
    let gw = start_gateway(&toml(
        "grpc_listen = \"127.0.0.1:0\"",
        &format!(
            "{}{}",
            http_check("api", &target.url("/flip"), ""),
            http_check(
                "slow",
                &target.url("/ok"),
                "initial_delay = \"1h\"\ncritical = false"
            )
        ),
    ))
    .await;
    let grpc = gw.grpc.unwrap();
    eventually(WITHIN, "ready", || async {
        grpc_check(grpc, "").await == Ok(serving(ServingStatus::Serving))
    })
    .await;
    for (service, status) in [
        ("readiness", ServingStatus::Serving),
        ("liveness", ServingStatus::Serving),
        ("startup", ServingStatus::Serving),
        ("api", ServingStatus::Serving),
        ("slow", ServingStatus::Unknown),
    ] {
        assert_eq!(
            grpc_check(grpc, service).await,
            Ok(serving(status)),
            "{service}"
        );
    }
    assert_eq!(grpc_check(grpc, "nope").await, Err(tonic::Code::NotFound));
    let listed = grpc_list(grpc).await;
    assert_eq!(listed.len(), 6, "{listed:?}");
    assert_eq!(listed["api"], serving(ServingStatus::Serving));
    assert_eq!(listed["slow"], serving(ServingStatus::Unknown));
    assert_eq!(listed[""], serving(ServingStatus::Serving));

    let mut client = grpc_client(grpc).await;
    let mut watch = client
        .watch(HealthCheckRequest {
            service: "readiness".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut unknown = client
        .watch(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(WITHIN, watch.message())
            .await
            .expect("a Watch message in time")
            .unwrap()
            .unwrap()
            .status
    };
    assert_eq!(
        next().await,
        serving(ServingStatus::Serving),
        "the current status at once"
    );
    target.set_flip(503);
    assert_eq!(next().await, serving(ServingStatus::NotServing));
    target.set_flip(200);
    assert_eq!(next().await, serving(ServingStatus::Serving));
    let first = tokio::time::timeout(WITHIN, unknown.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.status,
        serving(ServingStatus::ServiceUnknown),
        "unknown service, stream kept open"
    );
}

#[tokio::test]
async fn agent_check_says_up_down_and_weighs_warnings() {
    let target = TestServer::start().await;
    let side = TestServer::start().await;
    let gw = start_gateway(&toml(
        "agent_listen = \"127.0.0.1:0\"\n[server.agent]\nweight_on_warn = 50",
        &format!(
            "{}{}",
            http_check("api", &target.url("/flip"), ""),
            http_check("cache", &side.url("/flip"), "critical = false")
        ),
    ))
    .await;
    let agent = gw.agent.unwrap();
    eventually(WITHIN, "up", || async {
        agent_line(agent).await == "up ready 100%\n"
    })
    .await;
    side.set_flip(500);
    eventually(WITHIN, "weighed down", || async {
        agent_line(agent).await == "up ready 50%\n"
    })
    .await;
    target.set_flip(503);
    eventually(WITHIN, "down", || async {
        agent_line(agent)
            .await
            .starts_with("down ready #not ready: api fail")
    })
    .await;
    let line = agent_line(agent).await;
    assert!(
        line.ends_with('\n') && line.lines().count() == 1,
        "{line:?}"
    );
}

/// A TLS connection to `addr` sending GET `path`: the status and the leaf the server presented.
async fn tls_get(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    path: &str,
) -> Result<(StatusCode, Vec<u8>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(path)
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok((response.status(), leaf))
}

#[tokio::test]
async fn tls_and_mtls_listeners_with_certificate_rotation() {
    let pki = test_pki();
    let other = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = write("tls.crt", &pki.server_chain_pem);
    let key = write("tls.key", &pki.server_key_pem);
    let ca = write("ca.crt", &pki.ca_pem);
    let gw = start_gateway(&toml(
        &format!(
            "grpc_listen = \"127.0.0.1:0\"\n[server.tls]\ncert_file = \"{c}\"\nkey_file = \"{k}\"\n\
             [server.admin.tls]\ncert_file = \"{c}\"\nkey_file = \"{k}\"\nclient_ca_file = \"{a}\"\nmin_version = \"1.3\"",
            c = cert.display(),
            k = key.display(),
            a = ca.display()
        ),
        "",
    ))
    .await;
    let trusting = tls_client(&pki.ca_pem, None);
    let (code, first_leaf) = tls_get(&trusting, gw.addr, "/readyz").await.unwrap();
    assert_eq!(code, StatusCode::OK);
    assert!(
        request(gw.addr, "GET", "/readyz").await.is_err(),
        "plain HTTP on a TLS listener"
    );
    let wrong_ca = tls_client(&other.ca_pem, None);
    let refused = tls_get(&wrong_ca, gw.addr, "/readyz").await.unwrap_err();
    assert!(
        refused.contains("UnknownIssuer") || refused.contains("invalid peer certificate"),
        "{refused}"
    );

    // gRPC health over the same TLS, as Envoy or a gRPC-aware load balancer dials it.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://{}", gw.grpc.unwrap()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, serving(ServingStatus::Serving));

    // mTLS on the admin listener: no client certificate, no request.
    assert!(
        tls_get(&trusting, gw.admin, "/metrics").await.is_err(),
        "admin without a client cert"
    );
    let stranger = tls_client(
        &pki.ca_pem,
        Some((&other.client_cert_pem, &other.client_key_pem)),
    );
    assert!(
        tls_get(&stranger, gw.admin, "/metrics").await.is_err(),
        "client cert from another CA"
    );
    let client = tls_client(
        &pki.ca_pem,
        Some((&pki.client_cert_pem, &pki.client_key_pem)),
    );
    assert_eq!(
        tls_get(&client, gw.admin, "/metrics").await.unwrap().0,
        StatusCode::OK
    );

    // A connection opened before the rotation keeps working after it.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = trusting
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut kept, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);

    // cert-manager style: write the new pair in place of the old.
    let (chain, new_key) = pki.leaf(2032);
    std::fs::write(&key, new_key).unwrap();
    std::fs::write(&cert, chain).unwrap();
    eventually(WITHIN, "the new certificate on new connections", || async {
        tls_get(&trusting, gw.addr, "/readyz").await.unwrap().1 != first_leaf
    })
    .await;
    let req = http::Request::builder()
        .uri("/readyz")
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(
        kept.send_request(req).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(logged(&gw, "TLS certificate reloaded"));

    // A broken write keeps the last good pair.
    std::fs::write(&cert, "not a certificate").unwrap();
    eventually(WITHIN, "the broken file noticed", || async {
        logged(&gw, "cannot be used; keeping the previous certificate")
    })
    .await;
    assert_eq!(
        tls_get(&trusting, gw.addr, "/readyz").await.unwrap().0,
        StatusCode::OK
    );
}

/// The address a listener logged last under `key` (reloads log new ones).
fn last_logged_addr(gw: &Gateway, key: &str) -> Option<SocketAddr> {
    gw.logs().iter().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        v.get(key)?.as_str()?.parse().ok()
    })
}

#[tokio::test]
async fn a_reload_applies_tokens_and_opens_and_closes_listeners() {
    let gw = start_gateway(&toml("", "")).await;
    assert_eq!(
        admin(gw.admin, "GET", "/metrics", None, "").await.0,
        StatusCode::OK
    );
    let token = gw.dir.path().join("token");
    std::fs::write(&token, "fresh-token").unwrap();
    std::fs::write(
        gw.config_path(),
        toml(
            &format!(
                "agent_listen = \"127.0.0.1:0\"\n[server.admin]\ntoken_file = \"{}\"",
                token.display()
            ),
            "",
        ),
    )
    .unwrap();
    eventually(WITHIN, "the token required", || async {
        admin(gw.admin, "GET", "/metrics", None, "").await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(
        admin(gw.admin, "GET", "/metrics", Some("fresh-token"), "")
            .await
            .0,
        StatusCode::OK
    );
    let agent = last_logged_addr(&gw, "agent_listen").expect("the agent listener opened");
    assert_eq!(agent_line(agent).await, "up ready\n");

    std::fs::write(gw.config_path(), toml("", "")).unwrap();
    eventually(WITHIN, "the agent listener closed", || async {
        TcpStream::connect(agent).await.is_err()
    })
    .await;
    assert_eq!(
        admin(gw.admin, "GET", "/metrics", None, "").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_open_watch_sees_the_drain_and_does_not_hold_up_the_exit() {
    let mut gw = start_gateway(&toml(
        "grpc_listen = \"127.0.0.1:0\"\nshutdown_timeout = \"30s\"\n\
         [server.drain]\nmin = \"0s\"\nmax = \"10s\"\nobserved_probes = 1",
        "",
    ))
    .await;
    let mut watch = grpc_client(gw.grpc.unwrap())
        .await
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(WITHIN, watch.message())
            .await
            .expect("a Watch message in time")
            .unwrap()
    };
    assert_eq!(
        next().await.unwrap().status,
        serving(ServingStatus::Serving)
    );
    let signalled = tokio::time::Instant::now();
    gw.signal(Signal::SIGTERM);
    // The Watch's NOT_SERVING is the observed probe that ends the drain.
    assert_eq!(
        next().await.unwrap().status,
        serving(ServingStatus::NotServing)
    );
    assert_eq!(
        next().await,
        None,
        "the stream ends when the listeners close"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), gw.child.wait())
        .await
        .expect("exits well before shutdown_timeout")
        .unwrap();
    assert!(status.success());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "{:?}",
        signalled.elapsed()
    );
    assert!(logged(
        &gw,
        "drained: the failing readiness was served 1 time(s)"
    ));
}

#[tokio::test]
async fn a_push_check_reports_through_the_admin_api_with_its_auth() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let target = TestServer::start().await;
    let gw = start_gateway(&toml(
        &format!("[server.admin]\ntoken_file = \"{}\"", token_file.display()),
        &format!(
            "[[checks]]\nname = \"worker\"\ntype = \"push\"\nttl = \"2s\"\n{}",
            http_check("api", &target.url("/ok"), "")
        ),
    ))
    .await;
    let token = Some("s3cret-token");
    let path = "/api/checks/worker/report";
    let pass = r#"{"status": "pass", "message": "queue drained"}"#;
    let (code, _) = admin(gw.admin, "POST", path, None, pass).await;
    assert_eq!(
        code,
        StatusCode::UNAUTHORIZED,
        "reports need the admin token"
    );
    let (code, _) = admin(gw.addr, "POST", path, token, pass).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "not on the LB listener");
    let (code, body) = admin(gw.admin, "POST", path, token, pass).await;
    assert_eq!((code, body.as_str()), (StatusCode::ACCEPTED, "recorded\n"));
    eventually(WITHIN, "worker pass", || async {
        gw.health().await["checks"]["worker:push"][0]["status"] == "pass"
    })
    .await;
    eventually(WITHIN, "ready with the worker's report", || async {
        get(gw.addr, "/readyz").await.0 == StatusCode::OK
    })
    .await;
    let (_, body) = admin(gw.admin, "GET", "/api/checks/worker", token, "").await;
    let worker: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(worker["kind"], "push");
    assert_eq!(worker["last"]["message"], "reported pass: queue drained");

    for (body, code) in [
        (r#"{"status": "fine"}"#, StatusCode::BAD_REQUEST),
        ("not json", StatusCode::BAD_REQUEST),
        (
            &format!(r#"{{"status": "pass", "message": "{}"}}"#, "x".repeat(5000)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        assert_eq!(
            admin(gw.admin, "POST", path, token, body).await.0,
            code,
            "{body:.40}"
        );
    }
    let (code, _) = admin(gw.admin, "POST", "/api/checks/api/report", token, pass).await;
    assert_eq!(
        code,
        StatusCode::NOT_FOUND,
        "an http check takes no reports"
    );
    let (code, _) = admin(gw.admin, "POST", "/api/checks/nope/report", token, pass).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = admin(gw.admin, "GET", path, token, "").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);

    // No more reports: failed after the ttl, and readiness with it.
    eventually(WITHIN, "readiness failing on the silent worker", || async {
        get(gw.addr, "/readyz").await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let (_, _, reason) = get(gw.addr, "/readyz").await;
    assert_eq!(reason, "not ready: worker fail");
    let health = gw.health().await;
    assert_eq!(
        health["checks"]["worker:push"][0]["category"],
        "ttl_expired"
    );
    let (code, _) = admin(gw.admin, "POST", path, token, r#"{"status": "warn"}"#).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    eventually(WITHIN, "a warning serves", || async {
        get(gw.addr, "/readyz").await.0 == StatusCode::OK
    })
    .await;
}
