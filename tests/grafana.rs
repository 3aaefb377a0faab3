//! The shipped alert rules, their runbooks and the Alertmanager example,
//! checked with the real Prometheus tools and against a running healthgate.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use figment::providers::{Format, Yaml};
use support::*;

fn grafana(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("grafana")
        .join(path)
}

fn succeeds(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn yaml(path: &Path) -> serde_json::Value {
    figment::Figment::from(Yaml::file(path)).extract().unwrap()
}

fn rules() -> Vec<serde_json::Value> {
    let doc = yaml(&grafana("alerts/healthgate.rules.yaml"));
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let promtool = "promtool";
    let true = tool(promtool, &["--version"], "`apt-get install -y prometheus`") else {
        return;
    };
    succeeds(
        Command::new(promtool)
            .args(["check", "rules"])
            .arg(grafana("alerts/healthgate.rules.yaml")),
    );
    succeeds(
        Command::new(promtool)
            .args(["test", "rules", "healthgate.rules.test.yaml"])
            .current_dir(grafana("alerts")),
    );
}

#[test]
fn every_alert_has_a_unit_test_that_fires_it_and_one_that_must_not() {
    let tests = std::fs::read_to_string(grafana("alerts/healthgate.rules.test.yaml")).unwrap();
    for rule in rules() {
        let name = rule["alert"].as_str().unwrap();
        let firing = format!("alertname: {name}\n        exp_alerts:\n          - exp_labels");
        let quiet = format!("alertname: {name}, exp_alerts: []}}");
        assert!(tests.contains(&firing), "no test fires {name}");
        assert!(tests.contains(&quiet), "no test checks {name} stays quiet");
    }
}

#[test]
fn amtool_accepts_the_alertmanager_example() {
    let amtool = "amtool";
    let true = tool(
        amtool,
        &["--version"],
        "`apt-get install -y prometheus-alertmanager`",
    ) else {
        return;
    };
    succeeds(
        Command::new(amtool)
            .arg("check-config")
            .arg(grafana("alertmanager/alertmanager.yml")),
    );
}

#[test]
fn the_prometheusrule_carries_exactly_the_plain_rules() {
    let plain = yaml(&grafana("alerts/healthgate.rules.yaml"));
    let operator = yaml(&grafana("alerts/prometheusrule.yaml"));
    assert_eq!(operator["kind"], "PrometheusRule");
    assert_eq!(operator["spec"]["groups"], plain["groups"]);
}

#[test]
fn every_alert_is_labelled_annotated_and_has_a_runbook_section() {
    let runbooks = std::fs::read_to_string(grafana("runbooks.md")).unwrap();
    let sections: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    for rule in rules() {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            matches!(
                rule["labels"]["severity"].as_str(),
                Some("warning" | "critical")
            ),
            "{name}: severity"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(rule["annotations"][key].is_string(), "{name}: no {key}");
        }
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url
            .rsplit_once("runbooks.md#")
            .map(|(_, a)| a)
            .unwrap_or_default();
        assert_eq!(anchor, name.to_lowercase(), "{name}: runbook_url");
        assert!(
            sections.contains(anchor),
            "{name}: no runbook section `## {name}`"
        );
    }
}

/// Metric names in a PromQL expression (healthgate's own, and `up`).
fn series_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("healthgate_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// A maintenance window open for the whole test, over the `secure` check:
/// `healthgate_check_maintenance` exists only while one is.
const ALWAYS_MAINTAINED: &str = "[[maintenance]]\nname = \"always\"\nstart = \"2020-01-01T00:00:00Z\"\n\
    end = \"2099-01-01T00:00:00Z\"\nchecks = [\"secure\"]\n";

#[tokio::test]
async fn rules_reference_only_series_healthgate_exports() {
    // A gateway exporting everything a rule can name: an https check (certificate
    // expiry) and a failing one.
    let pki = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let server = TestServer::start_with_tls(Some(pki.server)).await;
    let (refused, _held) = refusing_port();
    let gw = start_gateway(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[defaults]\ninterval = \"100ms\"\nfailure_threshold = 1\n\
         [[checks]]\nname = \"secure\"\ntype = \"http\"\nurl = \"https://localhost:{}/ok\"\ntls.ca_file = \"{}\"\n\
         [[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"{refused}\"\n\
         [[notifiers]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://{refused}/\"\nattempts = 1\n\
         {ALWAYS_MAINTAINED}",
        server.addr.port(),
        ca.display()
    ))
    .await;
    let addr = gw.admin;
    eventually(Duration::from_secs(15), "every series", || async {
        let text = get(addr, "/metrics").await.2;
        text.contains("healthgate_tls_cert_not_after_seconds")
            && text.contains("transitions_total")
            && text.contains("healthgate_notifications_total")
            && text.contains("healthgate_check_maintenance")
    })
    .await;
    let text = get(addr, "/metrics").await.2;
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    for rule in rules() {
        for name in series_names(rule["expr"].as_str().unwrap()) {
            assert!(
                exported.contains(&name),
                "{} uses {name}, which healthgate does not export",
                rule["alert"]
            );
        }
    }
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    ["fleet.json", "check.json", "sidecar.json"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(grafana(&format!("dashboards/{name}"))).unwrap();
            (name.to_string(), serde_json::from_str(&text).unwrap())
        })
        .collect()
}

#[test]
fn the_dashboards_are_what_the_generator_writes() {
    let python = "python3";
    let true = tool(python, &["--version"], "`apt-get install -y python3`") else {
        return;
    };
    let before: Vec<_> = dashboards();
    let scratch = tempfile::tempdir().unwrap();
    let script = scratch.path().join("generate.py");
    std::fs::copy(grafana("dashboards/generate.py"), &script).unwrap();
    succeeds(Command::new(python).arg(&script));
    for (name, board) in before {
        let fresh: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(scratch.path().join(&name)).unwrap())
                .unwrap();
        assert_eq!(
            fresh, board,
            "{name} is stale: run python3 grafana/dashboards/generate.py"
        );
    }
}

#[test]
fn every_panel_is_described_with_a_unit_and_the_datasource_variable() {
    for (name, board) in dashboards() {
        let vars: Vec<&str> = board["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(vars, ["datasource", "job", "instance", "check"], "{name}");
        assert!(
            !board["links"].as_array().unwrap().is_empty(),
            "{name}: links to the other dashboards"
        );
        for panel in board["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap();
            assert!(
                panel["description"].as_str().is_some_and(|d| d.len() > 20),
                "{name}/{title}: description"
            );
            assert!(
                panel["fieldConfig"]["defaults"]["unit"].is_string(),
                "{name}/{title}: unit"
            );
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name}/{title}"
            );
            for target in panel["targets"].as_array().unwrap() {
                assert_eq!(
                    target["datasource"]["uid"], "${datasource}",
                    "{name}/{title}"
                );
            }
        }
    }
}

/// Every panel's queries, with the variables set to "all".
fn panel_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for (name, board) in dashboards() {
        for panel in board["panels"].as_array().unwrap() {
            let title = format!("{name}/{}", panel["title"].as_str().unwrap());
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$__rate_interval", "10s")
                    .replace("$job", ".*")
                    .replace("$instance", ".*")
                    .replace("$check", ".*");
                queries.push((title.clone(), expr));
            }
        }
    }
    queries
}

fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/api/v1/query`: Ok(result count) or Err(Prometheus' error).
async fn query(prometheus: std::net::SocketAddr, expr: &str) -> Result<usize, String> {
    let (_, _, body) = request(
        prometheus,
        "GET",
        &format!("/api/v1/query?query={}", encode(expr)),
    )
    .await?;
    let doc: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if doc["status"] != "success" {
        return Err(body);
    }
    Ok(match &doc["data"]["result"] {
        serde_json::Value::Array(items) => items.len(),
        _ => 1,
    })
}

struct Prometheus {
    _child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self._child.kill();
        let _ = self._child.wait();
    }
}

fn start_prometheus(target: std::net::SocketAddr) -> Option<Prometheus> {
    let binary = "prometheus";
    if !tool(binary, &["--version"], "`apt-get install -y prometheus`") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: healthgate\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Some(Prometheus {
        _child: child,
        addr: port,
        _dir: dir,
    })
}

#[tokio::test]
async fn every_panel_and_rule_works_against_a_real_prometheus() {
    // A scenario with something for every panel: passing, failing and flapping
    // checks, a certificate, failing OTLP export, a rejected reload.
    let pki = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let tls = TestServer::start_with_tls(Some(pki.server)).await;
    let flappy = TestServer::start().await;
    let (refused, _held) = refusing_port();
    let gw = start_gateway(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[telemetry.otlp]\nendpoint = \"http://{refused}\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\n\
         [defaults]\ninterval = \"100ms\"\nfailure_threshold = 1\n\
         [[checks]]\nname = \"secure\"\ntype = \"http\"\nurl = \"https://localhost:{}/ok\"\ntls.ca_file = \"{}\"\n\
         [[checks]]\nname = \"flappy\"\ntype = \"http\"\nurl = \"{}\"\ncritical = false\n\
         on_failure = {{ command = [\"true\"], max_runs = 1000, window = \"1m\" }}\n\
         [[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"{refused}\"\n\
         [[notifiers]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://{refused}/\"\nattempts = 1\nmin_interval = \"0s\"\n\
         {ALWAYS_MAINTAINED}",
        tls.addr.port(),
        ca.display(),
        flappy.url("/flip")
    ))
    .await;
    let original = std::fs::read_to_string(gw.config_path()).unwrap();
    std::fs::write(gw.config_path(), format!("{original}bogus = 1\n")).unwrap();
    let Some(prometheus) = start_prometheus(gw.admin) else {
        return;
    };
    let addr = prometheus.addr;

    // Flap while Prometheus scrapes, until every kind of series is in and rated.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut code = 200;
    loop {
        code = if code == 200 { 503 } else { 200 };
        flappy.set_flip(code);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let ready = [
            "rate(healthgate_check_runs_total[10s])",
            "increase(healthgate_check_transitions_total{check=\"flappy\"}[10s]) > 0",
            "healthgate_config_reloads_total{result=\"failure\"} > 0",
            "healthgate_telemetry_dropped_total{signal=\"metrics\"} > 0",
            "rate(healthgate_process_cpu_time_seconds_total[10s])",
            "healthgate_notifications_total",
            "healthgate_actions_total",
        ];
        let mut all = true;
        for expr in ready {
            all &= query(addr, expr).await.is_ok_and(|n| n > 0);
        }
        if all {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scenario's series never all reached Prometheus"
        );
    }

    let mut problems = Vec::new();
    for (panel, expr) in panel_queries() {
        match query(addr, &expr).await {
            Ok(0) => problems.push(format!("{panel}: no data for {expr}")),
            Ok(_) => {}
            Err(e) => problems.push(format!("{panel}: {expr}: {e}")),
        }
        // `or vector(0)` returns data whatever it names: each series must exist too.
        for series in series_names(&expr) {
            if !query(addr, &format!("count({series})"))
                .await
                .is_ok_and(|n| n > 0)
            {
                problems.push(format!("{panel}: Prometheus has no {series}"));
            }
        }
    }
    for rule in rules() {
        let (name, expr) = (
            rule["alert"].as_str().unwrap(),
            rule["expr"].as_str().unwrap(),
        );
        if let Err(e) = query(addr, expr).await {
            problems.push(format!("rule {name}: {e}"));
        }
        for series in series_names(expr) {
            if !query(addr, &format!("count({series})"))
                .await
                .is_ok_and(|n| n > 0)
            {
                problems.push(format!("rule {name}: Prometheus has no {series}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
