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

/// A tool from Debian's packages; required under CI.
fn tool(name: &str, package: &str) -> Option<String> {
    if Command::new(name).arg("--version").output().is_ok() {
        return Some(name.to_owned());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing under CI: .ci/run must `apt-get install -y {package}`"
    );
    eprintln!("SKIPPED: {name} not found; install it with `apt-get install -y {package}`");
    None
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
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    succeeds(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(grafana("alerts/healthgate.rules.yaml")),
    );
    succeeds(
        Command::new(&promtool)
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
    let Some(amtool) = tool("amtool", "prometheus-alertmanager") else {
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
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        names.insert(base.to_owned());
        rest = &tail[end..];
    }
    names
}

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
        "[server]\nlisten = \"127.0.0.1:0\"\n[defaults]\ninterval = \"100ms\"\nfailure_threshold = 1\n\
         [[checks]]\nname = \"secure\"\ntype = \"http\"\nurl = \"https://localhost:{}/ok\"\ntls.ca_file = \"{}\"\n\
         [[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"{refused}\"\n",
        server.addr.port(),
        ca.display()
    ))
    .await;
    let addr = gw.addr;
    eventually(Duration::from_secs(15), "every series", || async {
        let text = get(addr, "/metrics").await.2;
        text.contains("healthgate_tls_cert_not_after_seconds") && text.contains("transitions_total")
    })
    .await;
    let text = get(addr, "/metrics").await.2;
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .fold(n.clone(), |n, s| {
                    n.strip_suffix(s).map_or(n.clone(), str::to_owned)
                })
        })
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
