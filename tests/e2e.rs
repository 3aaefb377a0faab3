//! End to end: the real binary, real targets, its real HTTP endpoints.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use support::*;

const WITHIN: Duration = Duration::from_secs(15);

fn gateway_toml(checks: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[defaults]\ninterval = \"100ms\"\ntimeout = \"500ms\"\nsuccess_threshold = 2\nfailure_threshold = 3\n{checks}"
    )
}

async fn status_of(addr: std::net::SocketAddr, path: &str) -> StatusCode {
    get(addr, path).await.0
}

#[tokio::test]
async fn readyz_follows_the_target_through_the_thresholds() {
    let target = TestServer::start().await;
    let gw = start_gateway(&gateway_toml(&format!(
        "[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\n",
        target.url("/flip")
    )))
    .await;
    let addr = gw.addr;
    eventually(WITHIN, "ready", || async {
        status_of(addr, "/readyz").await == StatusCode::OK
    })
    .await;
    assert!(target.counters.flip_successes.load(Ordering::SeqCst) >= 2);

    target.set_flip(503);
    eventually(WITHIN, "not ready", || async {
        status_of(addr, "/readyz").await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let failures = target.counters.flip_failures.load(Ordering::SeqCst);
    assert!(
        (3..=5).contains(&failures),
        "503 after {failures} failed runs; failure_threshold is 3"
    );
    let (_, _, body) = get(addr, "/readyz").await;
    assert_eq!(body, "not ready: api fail");
    // Liveness is not readiness.
    assert_eq!(status_of(addr, "/livez").await, StatusCode::OK);

    let before = target.counters.flip_successes.load(Ordering::SeqCst);
    target.set_flip(200);
    eventually(WITHIN, "ready again", || async {
        status_of(addr, "/readyz").await == StatusCode::OK
    })
    .await;
    let successes = target.counters.flip_successes.load(Ordering::SeqCst) - before;
    assert!(
        (2..=4).contains(&successes),
        "200 after {successes} good runs; success_threshold is 2"
    );

    let transitions: Vec<String> = gw
        .logs()
        .into_iter()
        .filter(|l| l.contains("\"check\":\"api\""))
        .collect();
    assert_eq!(
        transitions.len(),
        3,
        "each transition logged once: {transitions:#?}"
    );
    assert!(
        transitions[1].contains("status_mismatch"),
        "{}",
        transitions[1]
    );
}

#[tokio::test]
async fn a_target_that_stops_listening_takes_readiness_away_and_back() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let gw = start_gateway(&gateway_toml(&format!(
        "[[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"{target}\"\n"
    )))
    .await;
    let addr = gw.addr;
    eventually(WITHIN, "ready", || async {
        status_of(addr, "/readyz").await == StatusCode::OK
    })
    .await;
    drop(listener);
    eventually(WITHIN, "not ready", || async {
        status_of(addr, "/readyz").await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let (_, _, verbose) = get(addr, "/readyz?verbose").await;
    assert!(
        verbose.starts_with("[-]db failed: connecting to"),
        "{verbose}"
    );
    let _again = std::net::TcpListener::bind(target).unwrap();
    eventually(WITHIN, "ready again", || async {
        status_of(addr, "/readyz").await == StatusCode::OK
    })
    .await;
}

const MIXED: &str = r#"
[[checks]]
name = "web"
type = "http"
url = "URL_OK"
groups = ["readiness", "liveness"]
[[checks]]
name = "broken"
type = "http"
url = "URL_BAD"
groups = ["readiness"]
critical = false
[[checks]]
name = "cache"
type = "exec"
command = ["true"]
groups = ["readiness", "startup"]
"#;

async fn mixed() -> (TestServer, Gateway) {
    let target = TestServer::start().await;
    let toml = MIXED
        .replace("URL_OK", &target.url("/json"))
        .replace("URL_BAD", &target.url("/status/500"));
    let gw = start_gateway(&gateway_toml(&toml)).await;
    let addr = gw.addr;
    eventually(WITHIN, "every check has its final verdict", || async {
        let body = get(addr, "/readyz?verbose").await.2;
        body.contains("[+]web ok")
            && body.contains("[+]cache ok")
            && body.contains("[+]broken warn")
    })
    .await;
    (target, gw)
}

#[tokio::test]
async fn verbose_lists_every_check_of_the_group() {
    let (_target, gw) = mixed().await;
    let (code, headers, body) = get(gw.addr, "/readyz?verbose").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 4, "{body}");
    assert_eq!(lines[0], "[+]web ok");
    assert_eq!(lines[1], "[+]broken warn: status 500, expected 2xx");
    assert_eq!(lines[2], "[+]cache ok");
    assert_eq!(lines[3], "readyz check passed");
    let (_, _, live) = get(gw.addr, "/livez?verbose=true").await;
    assert_eq!(live, "[+]web ok\nlivez check passed\n");
    let (_, _, start) = get(gw.addr, "/startupz?verbose").await;
    assert_eq!(start, "[+]cache ok\nstartupz check passed\n");
    let (_, _, plain) = get(gw.addr, "/readyz?verbose=false").await;
    assert_eq!(plain, "ok");
}

#[tokio::test]
async fn health_follows_the_draft_format() {
    let (_target, gw) = mixed().await;
    let (code, headers, body) = get(gw.addr, "/health").await;
    assert_eq!(code, StatusCode::OK, "warn answers 200: {body}");
    assert_eq!(headers["content-type"], "application/health+json");
    assert_eq!(headers["cache-control"], "no-store");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["status"], "warn", "a non-critical check fails: {doc:#}");
    assert_eq!(doc["output"], "broken warn");
    let checks = doc["checks"].as_object().unwrap();
    let keys: Vec<&String> = checks.keys().collect();
    assert_eq!(keys.len(), 3);
    for key in ["web:http", "broken:http", "cache:exec"] {
        let entry = &checks[key];
        assert!(
            entry.is_array() && entry.as_array().unwrap().len() == 1,
            "{key}: {entry}"
        );
        let c = &entry[0];
        assert!(c["observedValue"].as_f64().unwrap() >= 0.0, "{key}: {c}");
        assert_eq!(c["observedUnit"], "ms");
        let time = c["time"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{key}: time {time}");
    }
    assert_eq!(checks["web:http"][0]["status"], "pass");
    assert!(
        checks["web:http"][0].get("output").is_none(),
        "no output on pass"
    );
    assert_eq!(
        checks["broken:http"][0]["status"], "warn",
        "non-critical: warn, not fail"
    );
    assert_eq!(checks["broken:http"][0]["critical"], false);
    assert_eq!(
        checks["broken:http"][0]["output"],
        "status 500, expected 2xx"
    );
    assert_eq!(checks["cache:exec"][0]["componentType"], "exec");
}

#[tokio::test]
async fn health_fails_with_503_when_not_ready() {
    let (closed, _held) = refusing_port();
    let gw = start_gateway(&gateway_toml(&format!(
        "[[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"{closed}\"\nfailure_threshold = 1\n"
    )))
    .await;
    let addr = gw.addr;
    eventually(WITHIN, "db fails", || async {
        get(addr, "/readyz").await.2 == "not ready: db fail"
    })
    .await;
    let (code, _, body) = get(addr, "/health").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["status"], "fail");
    assert_eq!(doc["checks"]["db:tcp"][0]["status"], "fail");
    assert_eq!(doc["checks"]["db:tcp"][0]["category"], "connect_refused");
}

#[tokio::test]
async fn methods_paths_and_head() {
    let (_target, gw) = mixed().await;
    let addr = gw.addr;
    let (code, headers, body) = request(addr, "HEAD", "/readyz").await.unwrap();
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, "");
    assert_eq!(headers["content-length"], "2");
    for method in ["POST", "PUT", "DELETE"] {
        let (code, headers, _) = request(addr, method, "/readyz").await.unwrap();
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers["allow"], "GET, HEAD");
    }
    assert_eq!(status_of(addr, "/nope").await, StatusCode::NOT_FOUND);
    assert_eq!(
        status_of(addr, "/readyz/extra").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(status_of(addr, "/startupz").await, StatusCode::OK);
}

#[tokio::test]
async fn startup_holds_readiness_until_its_checks_pass_once() {
    let refusing = refusing_port();
    let target = TestServer::start().await;
    target.set_flip(503);
    let gw = start_gateway(&gateway_toml(&format!(
        "[[checks]]\nname = \"warmup\"\ntype = \"http\"\nurl = \"{}\"\ngroups = [\"startup\"]\n\
         [[checks]]\nname = \"live\"\ntype = \"tcp\"\naddress = \"{}\"\ngroups = [\"liveness\"]\nfailure_threshold = 1\n",
        target.url("/flip"),
        refusing.0,
    )))
    .await;
    let addr = gw.addr;
    // The liveness check fails, but liveness is held back until started.
    eventually(WITHIN, "the liveness check has failed", || async {
        get(addr, "/health").await.2.contains("connect_refused")
    })
    .await;
    assert_eq!(status_of(addr, "/livez").await, StatusCode::OK);
    assert_eq!(
        status_of(addr, "/startupz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status_of(addr, "/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    target.set_flip(200);
    eventually(WITHIN, "started", || async {
        status_of(addr, "/startupz").await == StatusCode::OK
    })
    .await;
    assert_eq!(
        status_of(addr, "/livez").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    target.set_flip(503);
    eventually(WITHIN, "warmup fails again", || async {
        get(addr, "/startupz?verbose")
            .await
            .2
            .contains("warmup failed")
    })
    .await;
    assert_eq!(
        status_of(addr, "/startupz").await,
        StatusCode::OK,
        "startup is latched"
    );
}

#[tokio::test]
async fn get_asks_the_running_gateway_for_a_verdict() {
    let target = TestServer::start().await;
    let checks = format!(
        "[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\n",
        target.url("/flip")
    );
    let gw = start_gateway(&gateway_toml(&checks)).await;
    // The config on disk says port 0: point `get` at the bound port instead.
    let own =
        gateway_toml(&checks).replace("127.0.0.1:0\"\nadmin", &format!("{}\"\nadmin", gw.addr));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("own.toml");
    std::fs::write(&path, own).unwrap();
    let get = |endpoint: &'static str| {
        let path = path.clone();
        async move {
            tokio::process::Command::new(bin())
                .args(["get", "--config", path.to_str().unwrap(), endpoint])
                .output()
                .await
                .unwrap()
                .status
                .code()
        }
    };
    eventually(WITHIN, "ready", || async {
        get("/readyz").await == Some(0)
    })
    .await;
    target.set_flip(503);
    eventually(WITHIN, "not ready", || async {
        get("/readyz").await == Some(1)
    })
    .await;
    assert_eq!(get("/livez").await, Some(0), "liveness has no checks here");
    // The check `get` makes is built in code: a `HEALTHGATE_*` override
    // that the config on disk satisfies (an exposed admin listener, with a
    // token) does not reach it.
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret").unwrap();
    let exposed = dir.path().join("exposed.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &exposed,
        format!("{text}\n[server.admin]\ntoken_file = {:?}\n", token),
    )
    .unwrap();
    let out = tokio::process::Command::new(bin())
        .args(["get", "--config", exposed.to_str().unwrap(), "/livez"])
        .env("HEALTHGATE_SERVER__ADMIN_LISTEN", "0.0.0.0:1")
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(gw);
    eventually(WITHIN, "nothing listening: exit 1", || async {
        get("/livez").await == Some(1)
    })
    .await;
}
