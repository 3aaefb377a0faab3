//! `/metrics` from the real binary: names, labels, values that match what the
//! probes did, and `promtool check metrics`.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use support::*;

const WITHIN: Duration = Duration::from_secs(15);

async fn scrape(gw: &Gateway) -> (String, Vec<Sample>) {
    let (code, headers, body) = get(gw.admin, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let samples = parse(&body);
    (body, samples)
}

async fn scenario() -> (TestServer, TestServer, Gateway) {
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let gw = start_gateway(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[defaults]\ninterval = \"100ms\"\nfailure_threshold = 2\n\
         [[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\ngroups = [\"readiness\", \"liveness\"]\n\
         [[checks]]\nname = \"legacy\"\ntype = \"http\"\nurl = \"http://user:secret@{}/status/503\"\ncritical = false\n",
        ok.url("/ok"),
        bad.addr
    ))
    .await;
    let addr = gw.addr;
    eventually(WITHIN, "legacy warns", || async {
        get(addr, "/readyz?verbose")
            .await
            .2
            .contains("[+]legacy warn")
    })
    .await;
    (ok, bad, gw)
}

#[tokio::test]
async fn runs_and_results_match_what_the_probes_did() {
    let (ok, bad, gw) = scenario().await;
    let before = ok.counters.requests.load(Ordering::SeqCst) as f64;
    let (_, samples) = scrape(&gw).await;
    let after = ok.counters.requests.load(Ordering::SeqCst) as f64;
    let runs = value(
        &samples,
        "healthgate_check_runs_total",
        &[("check", "api"), ("result", "pass")],
    )
    .unwrap();
    assert!(
        before <= runs && runs <= after,
        "api runs counted {runs}, target served {before}..{after}"
    );
    let failed = value(
        &samples,
        "healthgate_check_runs_total",
        &[
            ("check", "legacy"),
            ("result", "fail"),
            ("category", "status_mismatch"),
        ],
    )
    .unwrap();
    assert!(failed >= 2.0 && failed <= bad.counters.requests.load(Ordering::SeqCst) as f64);
    let count = value(
        &samples,
        "healthgate_check_duration_seconds_count",
        &[("check", "api"), ("result", "pass")],
    )
    .unwrap();
    assert_eq!(count, runs, "one duration per run");
    // Every run's start lateness is in one unlabelled histogram; on an idle
    // machine nearly all start within 25 ms of their schedule.
    let started = value(&samples, "healthgate_scheduler_lateness_seconds_count", &[]).unwrap();
    assert!(
        started >= runs + failed,
        "{started} starts, {runs} + {failed} runs"
    );
    let prompt = value(
        &samples,
        "healthgate_scheduler_lateness_seconds_bucket",
        &[("le", "0.025")],
    )
    .unwrap();
    assert!(
        prompt >= started * 0.9,
        "{prompt} of {started} within 25 ms"
    );

    assert_eq!(
        value(
            &samples,
            "healthgate_check_up",
            &[("check", "api"), ("type", "http")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "healthgate_check_up", &[("check", "legacy")]),
        Some(1.0),
        "warn counts as up"
    );
    for (check, status) in [("api", "pass"), ("legacy", "warn")] {
        for s in ["starting", "pass", "warn", "fail"] {
            let v = value(
                &samples,
                "healthgate_check_status",
                &[("check", check), ("status", s)],
            );
            assert_eq!(v, Some(if s == status { 1.0 } else { 0.0 }), "{check} {s}");
        }
    }
    assert!(
        value(
            &samples,
            "healthgate_check_consecutive_failures",
            &[("check", "legacy")]
        )
        .unwrap()
            >= 2.0
    );
    assert_eq!(
        value(
            &samples,
            "healthgate_http_status_code",
            &[("check", "legacy")]
        ),
        Some(503.0)
    );
    assert_eq!(
        value(&samples, "healthgate_http_status_code", &[("check", "api")]),
        Some(200.0)
    );
    assert_eq!(
        value(
            &samples,
            "healthgate_check_transitions_total",
            &[("check", "legacy"), ("from", "starting"), ("to", "warn")]
        ),
        Some(1.0)
    );
    // api passes (critical, weight 2), legacy warns (1, value 0.5): 2.5 / 3.
    assert_eq!(value(&samples, "healthgate_health_score", &[]), Some(0.833));
    for verdict in ["healthgate_ready", "healthgate_live", "healthgate_started"] {
        assert_eq!(value(&samples, verdict, &[]), Some(1.0), "{verdict}");
    }
    assert_eq!(
        value(
            &samples,
            "healthgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "healthgate_config_last_reload_successful", &[]),
        Some(1.0)
    );
    let resource = samples.iter().find(|(n, _, _)| n == "target_info").unwrap();
    assert_eq!(resource.1["service_name"], "healthgate");
    assert!(resource.1.contains_key("service_instance_id") && resource.1.contains_key("host_name"));
}

#[tokio::test]
async fn labels_are_bounded_and_never_carry_secrets_or_addresses() {
    let (_ok, _bad, gw) = scenario().await;
    let (body, samples) = scrape(&gw).await;
    assert!(
        !body.contains("secret") && !body.contains("127.0.0.1"),
        "{body}"
    );
    let allowed = [
        "check", "type", "result", "category", "status", "from", "to", "group", "version",
        "signal", "le", "listener", "reason", "consumer", "notifier", "verdict", "action",
    ];
    let categories: Vec<&str> = healthgate::probe::Category::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    for (name, labels, _) in samples.iter().filter(|(n, _, _)| n != "target_info") {
        assert!(name.starts_with("healthgate_"), "{name}");
        for (key, value) in labels {
            assert!(allowed.contains(&key.as_str()), "{name} has label {key}");
            if key == "listener" {
                assert!(
                    ["lb", "admin", "grpc"].contains(&value.as_str()),
                    "{name}: {value}"
                );
            }
            if key == "consumer" {
                // The event stream's; notifiers' and actions' only when configured.
                assert!(
                    value == "sse" || value == "actions" || value.starts_with("notifier:"),
                    "{name}: {value}"
                );
            }
            if key == "reason" {
                assert!(
                    ["cap", "header_timeout"].contains(&value.as_str()),
                    "{name}: {value}"
                );
            }
            if key == "category" {
                assert!(
                    categories.contains(&value.as_str()),
                    "{name}: category {value}"
                );
            }
        }
    }
}

#[tokio::test]
async fn reloads_and_removed_checks_show_in_metrics() {
    let (_ok, _bad, gw) = scenario().await;
    let original = std::fs::read_to_string(gw.config_path()).unwrap();
    std::fs::write(gw.config_path(), format!("{original}bogus = 1\n")).unwrap();
    eventually(WITHIN, "a failed reload", || async {
        value(
            &scrape(&gw).await.1,
            "healthgate_config_last_reload_successful",
            &[],
        ) == Some(0.0)
    })
    .await;
    let (_, samples) = scrape(&gw).await;
    assert_eq!(
        value(
            &samples,
            "healthgate_config_reloads_total",
            &[("result", "failure")]
        ),
        Some(1.0)
    );
    // Drop the legacy check: it leaves the gauges at once.
    let without_legacy = original
        .split("[[checks]]\nname = \"legacy\"")
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(gw.config_path(), without_legacy).unwrap();
    eventually(WITHIN, "the reload", || async {
        value(
            &scrape(&gw).await.1,
            "healthgate_config_reloads_total",
            &[("result", "success")],
        ) == Some(1.0)
    })
    .await;
    let (_, samples) = scrape(&gw).await;
    assert_eq!(
        value(&samples, "healthgate_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "healthgate_check_up", &[("check", "legacy")]),
        None
    );
    assert_eq!(
        value(&samples, "healthgate_check_status", &[("check", "legacy")]),
        None
    );
    assert_eq!(
        value(&samples, "healthgate_check_up", &[("check", "api")]),
        Some(1.0)
    );
}

/// promtool from Debian's `prometheus` package; required under CI.
fn promtool() -> Option<&'static str> {
    tool(
        "promtool",
        &["--version"],
        "`apt-get install -y prometheus`",
    )
    .then_some("promtool")
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let Some(promtool) = promtool() else { return };
    let (_ok, _bad, gw) = scenario().await;
    let (body, _) = scrape(&gw).await;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn https_checks_export_their_certificate_expiry() {
    let pki = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let server = TestServer::start_with_tls(Some(pki.server)).await;
    let gw = start_gateway(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[defaults]\ninterval = \"100ms\"\n\
         [[checks]]\nname = \"secure\"\ntype = \"http\"\nurl = \"https://localhost:{port}/ok\"\ntls.ca_file = \"{ca}\"\n\
         [[checks]]\nname = \"cert\"\ntype = \"tls\"\naddress = \"localhost:{port}\"\ntls.ca_file = \"{ca}\"\nexpect.cert_min_validity = \"3650d\"\n",
        port = server.addr.port(),
        ca = ca.display()
    ))
    .await;
    eventually(WITHIN, "the expiry gauge of both checks", || async {
        let samples = scrape(&gw).await.1;
        ["secure", "cert"].iter().all(|check| {
            value(
                &samples,
                "healthgate_tls_cert_not_after_seconds",
                &[("check", check)],
            ) == Some(LEAF_NOT_AFTER as f64)
        })
    })
    .await;
    // Within a (deliberately huge) minimum validity: runs count as warnings,
    // the check is `warn`, and readiness holds.
    eventually(WITHIN, "warned runs", || async {
        value(
            &scrape(&gw).await.1,
            "healthgate_check_runs_total",
            &[
                ("check", "cert"),
                ("result", "warn"),
                ("category", "cert_expiring"),
            ],
        )
        .is_some_and(|n| n >= 1.0)
    })
    .await;
    let samples = scrape(&gw).await.1;
    assert_eq!(
        value(
            &samples,
            "healthgate_check_status",
            &[("check", "cert"), ("status", "warn")]
        ),
        Some(1.0)
    );
    assert_eq!(get(gw.addr, "/readyz").await.0, StatusCode::OK);
}
