//! The status page in a real browser: Debian's Chromium, headless, driven
//! through ChromeDriver (WebDriver over HTTP on 127.0.0.1). It loads `/`
//! from a running gateway, follows the event stream, and turns a check red
//! when its target starts failing; screenshots go to `target/screenshots/`
//! (and to `docs/` with `HEALTHGATE_UPDATE_SCREENSHOTS=1`).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::*;
use tokio::time::Instant;

/// ChromeDriver on a free port, and one headless Chromium session in it.
struct Browser {
    driver: SocketAddr,
    session: String,
    _child: tokio::process::Child,
}

impl Browser {
    async fn start() -> Option<Self> {
        let install = "apt-get install -y chromium chromium-driver";
        if !tool("chromedriver", &["--version"], install)
            || !tool("chromium", &["--version"], install)
        {
            return None;
        }
        let driver = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={}", driver.port()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(20), "chromedriver ready", || async {
            request(driver, "GET", "/status")
                .await
                .is_ok_and(|(code, _, _)| code == 200)
        })
        .await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,720"]
            }
        }}});
        let created = call(driver, "POST", "/session", &capabilities).await;
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Some(Self {
            driver,
            session,
            _child: child,
        })
    }

    async fn open(&self, url: &str) {
        call(
            self.driver,
            "POST",
            &self.path("/url"),
            &json!({ "url": url }),
        )
        .await;
    }

    /// Runs `script` (a function body) in the page; its return value.
    async fn eval(&self, script: &str) -> Value {
        let answer = call(
            self.driver,
            "POST",
            &self.path("/execute/sync"),
            &json!({ "script": script, "args": [] }),
        )
        .await;
        answer["value"].clone()
    }

    async fn screenshot(&self, name: &str) {
        let answer = call(self.driver, "GET", &self.path("/screenshot"), &Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(answer["value"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), &png).unwrap();
        if std::env::var_os("HEALTHGATE_UPDATE_SCREENSHOTS").is_some() {
            std::fs::write(root.join("docs").join(name), &png).unwrap();
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }
}

/// One WebDriver command: JSON in, JSON out.
async fn call(driver: SocketAddr, method: &str, path: &str, body: &Value) -> Value {
    let stream = tokio::net::TcpStream::connect(driver).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", driver.to_string())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The class of the `api` row, and the page's live indicator.
const ROW: &str = "const r = document.querySelector('tr[data-check=\"api\"]'); \
    return [r ? r.className : null, document.getElementById('live').textContent];";

#[tokio::test]
async fn a_failing_target_turns_its_check_red_live() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let target = TestServer::start().await;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"http://{}/flip\"\ninterval = \"1s\"\n\
         failure_threshold = 1\ndescription = \"the orders API\"\ntags = [\"team=orders\"]\n\
         [[checks]]\nname = \"disk\"\ntype = \"disk\"\npath = \"/\"\ninterval = \"1s\"\ncritical = false\n\
         [[checks]]\nname = \"nightly-report\"\ntype = \"exec\"\ncommand = [\"true\"]\nenabled = false\n",
        target.addr
    );
    let gw = start_gateway(&config).await;
    eventually(Duration::from_secs(15), "api passes", || async {
        gw.health().await["checks"]["api:http"][0]["status"] == "pass"
    })
    .await;
    browser.open(&format!("http://{}/", gw.admin)).await;
    eventually(
        Duration::from_secs(15),
        "the page shows api passing, live",
        || async { browser.eval(ROW).await == json!(["check pass", "live"]) },
    )
    .await;
    // A few runs in the bar before the picture.
    eventually(Duration::from_secs(15), "runs in the bar", || async {
        browser
            .eval("return document.querySelectorAll('tr[data-check=\"api\"] .run').length;")
            .await
            .as_u64()
            >= Some(3)
    })
    .await;
    browser.screenshot("status-page.png").await;

    target.counters.flip_status.store(503, Ordering::SeqCst);
    let flipped = Instant::now();
    eventually(
        Duration::from_secs(15),
        "the page shows api failing",
        || async { browser.eval(ROW).await[0] == "check fail" },
    )
    .await;
    let took = flipped.elapsed();
    // The next run (within the 1 s interval) fails it; the page follows
    // within a second of that.
    assert!(
        took <= Duration::from_secs(2) + Duration::from_millis(300),
        "red after {took:?}"
    );
    let verdict = browser
        .eval("return document.getElementById('readiness').className;")
        .await;
    assert_eq!(verdict, "verdict fail");
    browser.screenshot("status-page-failing.png").await;
}
