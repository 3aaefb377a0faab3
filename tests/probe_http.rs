//! http/https probes against real servers on 127.0.0.1.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use healthgate::config::{CheckConfig, Source, TypeSection};
use healthgate::probe::http::HttpConfig;
use healthgate::probe::{self, Category, Outcome};
use support::*;

async fn run(toml_check: &str) -> Outcome {
    run_probe("http", toml_check).await
}

fn assert_passes(outcome: &Outcome) {
    assert!(outcome.passed(), "expected a pass, got {outcome:?}");
}

#[tokio::test]
async fn each_phase_is_timed_including_the_body() {
    let s = TestServer::start().await;
    let o = run(&format!("url = \"{}\"", s.url("/slow-body"))).await;
    assert_passes(&o);
    let names: Vec<&str> = o.phases.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        ["connect", "first_byte", "body"],
        "an IP target: no dns"
    );
    let body = o.phases[2].duration;
    assert!(body >= Duration::from_millis(300), "{body:?}");
    assert!(o.phases[1].duration < Duration::from_millis(300), "{o:?}");
    // A name adds `dns`.
    let url = format!("http://localhost:{}/ok", s.addr.port());
    let o = run(&format!("url = \"{url}\"")).await;
    let names: Vec<&str> = o.phases.iter().map(|p| p.name).collect();
    assert_eq!(names, ["dns", "connect", "first_byte", "body"]);
}

#[tokio::test]
async fn status_expectations() {
    let s = TestServer::start().await;
    assert_passes(&run(&format!("url = \"{}\"", s.url("/ok"))).await);
    let o = run(&format!("url = \"{}\"", s.url("/status/503"))).await;
    assert_fails(&o, Category::StatusMismatch);
    assert!(o.message.contains("503"), "{o:?}");
    // A redirect is judged itself unless follow_redirects is set.
    assert_fails(
        &run(&format!("url = \"{}\"", s.url("/redirect"))).await,
        Category::StatusMismatch,
    );
    assert_passes(
        &run(&format!(
            "url = \"{}\"\nexpect.status = [\"2xx\", 302]",
            s.url("/redirect")
        ))
        .await,
    );
    assert_passes(
        &run(&format!(
            "url = \"{}\"\nexpect.status = [\"404\"]",
            s.url("/nope")
        ))
        .await,
    );
    let followed = run(&format!(
        "url = \"{}\"\nfollow_redirects = true\nexpect.body_contains = \"all good\"",
        s.url("/redirect")
    ))
    .await;
    assert_passes(&followed);
}

#[tokio::test]
async fn body_expectations() {
    let s = TestServer::start().await;
    let ok = s.url("/ok");
    assert_passes(
        &run(&format!(
            "url = \"{ok}\"\nexpect.body_contains = \"all good\""
        ))
        .await,
    );
    assert_fails(
        &run(&format!("url = \"{ok}\"\nexpect.body_contains = \"bad\"")).await,
        Category::BodyMismatch,
    );
    assert_passes(
        &run(&format!(
            "url = \"{ok}\"\nexpect.body_regex = \"^ok: .*good$\""
        ))
        .await,
    );
    assert_fails(
        &run(&format!("url = \"{ok}\"\nexpect.body_regex = \"^good\"")).await,
        Category::BodyMismatch,
    );
}

#[tokio::test]
async fn json_expectations() {
    let s = TestServer::start().await;
    let json = s.url("/json");
    assert_passes(&run(&format!("url = \"{json}\"\nexpect.json = {{ \"/status\" = \"UP\", \"/details/db\" = \"UP\", \"/n\" = 3 }}")).await);
    let o = run(&format!(
        "url = \"{json}\"\nexpect.json = {{ \"/status\" = \"DOWN\" }}"
    ))
    .await;
    assert_fails(&o, Category::JsonMismatch);
    assert!(o.message.contains("/status is \"UP\""), "{o:?}");
    assert_fails(
        &run(&format!(
            "url = \"{json}\"\nexpect.json = {{ \"/missing\" = 1 }}"
        ))
        .await,
        Category::JsonMismatch,
    );
    let not_json = run(&format!(
        "url = \"{}\"\nexpect.json = {{ \"/status\" = \"UP\" }}",
        s.url("/ok")
    ))
    .await;
    assert_fails(&not_json, Category::JsonMismatch);
}

#[tokio::test]
async fn a_target_that_never_answers_is_cut_at_the_timeout() {
    let (addr, _held) = silent_listener().await;
    let o = run(&format!("url = \"http://{addr}/\"\ntimeout = \"300ms\"")).await;
    assert_fails(&o, Category::Timeout);
    assert!(o.duration >= Duration::from_millis(300), "{o:?}");
    assert!(
        o.duration < Duration::from_millis(1300),
        "not cut at the timeout: {o:?}"
    );
}

#[tokio::test]
async fn refused_and_unresolvable_targets() {
    let (closed, _held) = refusing_port();
    assert_fails(
        &run(&format!("url = \"http://{closed}/\"")).await,
        Category::ConnectRefused,
    );
    let o = run("url = \"http://no-such-host.invalid/\"\ntimeout = \"2s\"").await;
    assert_fails(&o, Category::Dns);
}

#[tokio::test]
async fn a_full_accept_backlog_is_a_connect_timeout() {
    // A listener that never accepts, with the smallest backlog: once the queue is
    // full the kernel drops new SYNs, as it does for an overloaded service.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let o = run(&format!("url = \"http://{addr}/\"\ntimeout = \"400ms\"")).await;
    assert_fails(&o, Category::ConnectTimeout);
}

#[tokio::test]
async fn an_endless_body_is_not_read_past_max_body_bytes() {
    let s = TestServer::start().await;
    let o = run(&format!(
        "url = \"{}\"\nmax_body_bytes = 65536\ntimeout = \"5s\"\nexpect.body_contains = \"never\"",
        s.url("/endless")
    ))
    .await;
    assert_fails(&o, Category::BodyTooLarge);
    assert!(o.duration < Duration::from_secs(2), "{o:?}");
    // What the server managed to push is bounded by the limit plus socket
    // buffers, not by the endless body.
    let pushed = s.counters.streamed.load(Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "the server stops streaming",
        || async {
            let before = s.counters.streamed.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.counters.streamed.load(Ordering::SeqCst) == before
        },
    )
    .await;
    let total = s.counters.streamed.load(Ordering::SeqCst);
    assert!(
        total < 16 << 20,
        "server pushed {total} bytes (at the outcome: {pushed})"
    );
}

#[tokio::test]
async fn a_100_mib_body_without_body_expectations_passes_without_being_read() {
    let s = TestServer::start().await;
    let o = run(&format!("url = \"{}\"\ntimeout = \"5s\"", s.url("/big"))).await;
    assert_passes(&o);
    assert!(o.message.contains("cut at max_body_bytes"), "{o:?}");
    assert!(o.duration < Duration::from_secs(2), "{o:?}");
    let total = s.counters.streamed.load(Ordering::SeqCst);
    assert!(total < 16 << 20, "server pushed {total} bytes of 100 MiB");
}

#[tokio::test]
async fn credentials_are_sent_but_never_shown() {
    let s = TestServer::start().await;
    let url = format!("http://alice:hunter2@{}/headers", s.addr);
    let o = run(&format!(
        "url = \"{url}\"\nheaders = {{ \"X-Token\" = \"tok-secret\" }}\nexpect.body_regex = \"(?s)authorization: Basic YWxpY2U6aHVudGVyMg==.*x-token: tok-secret\""
    ))
    .await;
    assert_passes(&o);
    // A failing run's message names the target but not the secrets.
    let o = run(&format!(
        "url = \"http://alice:hunter2@{}/status/500\"\nheaders = {{ \"X-Token\" = \"tok-secret\" }}",
        s.addr
    ))
    .await;
    assert_fails(&o, Category::StatusMismatch);
    let mut http = HttpConfig::get(&url);
    http.headers.insert("X-Token".into(), "tok-secret".into());
    let check = CheckConfig::new("t", TypeSection::Http(http))
        .unwrap()
        .resolve()
        .unwrap();
    let debug = format!("{check:?} {o:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("tok-secret"),
        "{debug}"
    );
}

/// Basic-auth credentials and header values never appear in a failing
/// run's message, whatever failed: the status, the body (here an echo of
/// the request's own headers), a JSON expectation, a timeout, a protocol
/// error.
#[tokio::test]
async fn credentials_are_in_no_failure_message() {
    let s = TestServer::start().await;
    let (silent, _hold) = silent_listener().await;
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage_addr = garbage.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = garbage.accept().await {
            let _ = stream
                .write_all(b"SSH-2.0-OpenSSH_9.2 Authorization: Basic YWxpY2U6aHVudGVyMg==\r\n")
                .await;
        }
    });
    let secrets = ["hunter2", "YWxpY2U6aHVudGVyMg==", "tok-secret"];
    let headers = "headers = { \"X-Token\" = \"tok-secret\" }";
    let cases = [
        (
            format!("http://alice:hunter2@{}/status/500", s.addr),
            String::new(),
            Category::StatusMismatch,
        ),
        (
            format!("http://alice:hunter2@{}/headers", s.addr),
            "expect.body_contains = \"nothing like this\"".to_owned(),
            Category::BodyMismatch,
        ),
        (
            format!("http://alice:hunter2@{}/headers", s.addr),
            "expect.body_regex = \"^nothing$\"".to_owned(),
            Category::BodyMismatch,
        ),
        (
            format!("http://alice:hunter2@{}/json", s.addr),
            "expect.json = { \"/status\" = \"DOWN\" }".to_owned(),
            Category::JsonMismatch,
        ),
        (
            format!("http://alice:hunter2@{}/headers.json", s.addr),
            "expect.json = { \"/authorization\" = \"x\" }".to_owned(),
            Category::JsonMismatch,
        ),
        (
            format!("http://alice:hunter2@{}/headers.json", s.addr),
            "expect.json = { \"/x-token\" = 1 }".to_owned(),
            Category::JsonMismatch,
        ),
        (
            format!("http://alice:hunter2@{silent}/"),
            "timeout = \"300ms\"".to_owned(),
            Category::Timeout,
        ),
        (
            format!("http://alice:hunter2@{garbage_addr}/"),
            String::new(),
            Category::Protocol,
        ),
        (
            format!("https://alice:hunter2@{}/ok", s.addr),
            "timeout = \"2s\"".to_owned(),
            Category::Tls,
        ),
    ];
    for (url, extra, category) in cases {
        let o = run(&format!("url = \"{url}\"\n{headers}\n{extra}")).await;
        assert!(!o.passed(), "{url}: {o:?}");
        assert_eq!(o.failure, Some(category), "{url} {extra}: {o:?}");
        for secret in secrets {
            assert!(!o.message.contains(secret), "{url} {extra}: {}", o.message);
        }
    }
}

#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let other = TestServer::start().await;
    let s = TestServer::start().await;
    let url = format!(
        "http://alice:hunter2@{}/redirect-away?{}",
        s.addr,
        other.url("/headers")
    );
    let o = run(&format!(
        "url = \"{url}\"\nfollow_redirects = true\nexpect.body_contains = \"user-agent\""
    ))
    .await;
    assert_passes(&o);
    let leaked = run(&format!(
        "url = \"{url}\"\nfollow_redirects = true\nexpect.body_contains = \"authorization\""
    ))
    .await;
    assert_fails(&leaked, Category::BodyMismatch);
}

#[tokio::test]
async fn a_fresh_connection_per_run_unless_reuse_is_set() {
    let s = TestServer::start().await;
    for reuse in [false, true] {
        let before = s.counters.connections.load(Ordering::SeqCst);
        let mut http = HttpConfig::get(s.url("/ok"));
        http.reuse_connection = reuse;
        let check = CheckConfig::new("t", TypeSection::Http(http))
            .unwrap()
            .resolve()
            .unwrap();
        let Source::Probe(spec) = &check.source else {
            panic!("an http check is probed");
        };
        let probe = probe::build(spec);
        for _ in 0..3 {
            assert_passes(&probe::run(probe.as_ref(), Duration::from_secs(2)).await);
        }
        let opened = s.counters.connections.load(Ordering::SeqCst) - before;
        assert_eq!(
            opened,
            if reuse { 1 } else { 3 },
            "reuse_connection = {reuse}"
        );
    }
}

mod https {
    use super::*;

    async fn tls_server() -> (TestServer, tempfile::TempDir, String) {
        let pki = test_pki();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        let s = TestServer::start_with_tls(Some(pki.server)).await;
        let ca = ca.display().to_string();
        (s, dir, ca)
    }

    #[tokio::test]
    async fn trusted_by_the_test_ca() {
        let (s, _dir, ca) = tls_server().await;
        let url = format!("https://localhost:{}/ok", s.addr.port());
        assert_passes(
            &run(&format!(
                "url = \"{url}\"\ntls.ca_file = \"{ca}\"\nexpect.body_contains = \"good\""
            ))
            .await,
        );
        let by_ip = format!("https://127.0.0.1:{}/ok", s.addr.port());
        assert_passes(&run(&format!("url = \"{by_ip}\"\ntls.ca_file = \"{ca}\"")).await);
    }

    #[tokio::test]
    async fn the_earliest_expiry_in_the_chain_is_reported() {
        let (s, _dir, ca) = tls_server().await;
        let url = format!("https://localhost:{}/ok", s.addr.port());
        let o = run(&format!("url = \"{url}\"\ntls.ca_file = \"{ca}\"")).await;
        assert_passes(&o);
        let expiry = o.cert_not_after.expect("an expiry");
        assert_eq!(
            expiry
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            LEAF_NOT_AFTER
        );
        // Plain http has none.
        let plain = TestServer::start().await;
        assert_eq!(
            run(&format!("url = \"{}\"", plain.url("/ok")))
                .await
                .cert_not_after,
            None
        );
    }

    #[tokio::test]
    async fn an_unknown_issuer_fails_as_tls() {
        let (s, _dir, _ca) = tls_server().await;
        let o = run(&format!("url = \"https://localhost:{}/ok\"", s.addr.port())).await;
        assert_fails(&o, Category::Tls);
        assert!(o.message.contains("certificate"), "{o:?}");
    }

    #[tokio::test]
    async fn a_name_mismatch_fails_as_tls() {
        let (s, _dir, ca) = tls_server().await;
        let url = format!("https://localhost:{}/ok", s.addr.port());
        let o = run(&format!(
            "url = \"{url}\"\ntls.ca_file = \"{ca}\"\ntls.server_name = \"other.example\""
        ))
        .await;
        assert_fails(&o, Category::Tls);
    }

    #[tokio::test]
    async fn insecure_skip_verify_accepts_any_certificate() {
        let (s, _dir, _ca) = tls_server().await;
        let url = format!("https://localhost:{}/ok", s.addr.port());
        assert_passes(&run(&format!("url = \"{url}\"\ntls.insecure_skip_verify = true")).await);
    }

    #[tokio::test]
    async fn plain_http_to_a_tls_port_is_a_protocol_failure() {
        let (s, _dir, _ca) = tls_server().await;
        let o = run(&format!(
            "url = \"http://127.0.0.1:{}/ok\"\ntimeout = \"1s\"",
            s.addr.port()
        ))
        .await;
        assert_fails(&o, Category::Protocol);
    }
}
