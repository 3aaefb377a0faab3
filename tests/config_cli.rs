//! `validate` and `check` through the real binary: exit codes and messages.

mod support;

use std::path::Path;
use std::process::Output;

use support::*;

fn healthgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(bin());
    command.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// Runs `validate` on `text` saved as `file_name`; returns (exit code, stderr).
fn validate(file_name: &str, text: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, text).unwrap();
    let out = healthgate(&["validate", "--config", path.to_str().unwrap()], env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap(), stderr)
}

fn assert_rejected(text: &str, needles: &[&str]) {
    let (code, stderr) = validate("healthgate.toml", text, &[]);
    assert_eq!(code, 2, "expected exit 2, stderr: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

const HTTP: &str = "[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"http://127.0.0.1:1/\"\n";

#[test]
fn the_shipped_and_example_configs_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["config/healthgate.toml", "config/healthgate.example.toml"] {
        let out = healthgate(
            &["validate", "--config", root.join(file).to_str().unwrap()],
            &[],
        );
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn unknown_keys_name_the_check_and_suggest_the_nearest_key() {
    assert_rejected(
        &format!("{HTTP}intervall = \"5s\"\n"),
        &[
            "check \"api\"",
            "key `intervall`",
            "did you mean `interval`",
        ],
    );
    assert_rejected(
        &format!("{HTTP}[checks.expect]\nbody_contain = \"ok\"\n"),
        &[
            "check \"api\"",
            "key `expect.body_contain`",
            "did you mean `body_contains`",
        ],
    );
    assert_rejected(
        "[server]\nlisn = \"127.0.0.1:1\"\n",
        &["key `server.lisn`", "did you mean `listen`"],
    );
    assert_rejected("[sever]\n", &["key `sever`", "did you mean `server`"]);
}

#[test]
fn bad_durations() {
    assert_rejected(
        &format!("{HTTP}timeout = \"5x\"\n"),
        &["check \"api\"", "key `timeout`", "duration"],
    );
    assert_rejected(
        &format!("{HTTP}timeout = 5\n"),
        &["check \"api\"", "key `timeout`"],
    );
    assert_rejected(
        "[defaults]\ninterval = \"soon\"\n",
        &["key `defaults.interval`", "duration"],
    );
}

#[test]
fn duplicate_names() {
    assert_rejected(
        &format!("{HTTP}{HTTP}"),
        &["check \"api\"", "key `name`", "duplicate"],
    );
}

#[test]
fn bad_urls_and_addresses() {
    assert_rejected(
        "[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"not a url\"\n",
        &["check \"api\"", "key `url`"],
    );
    assert_rejected(
        "[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"ftp://u:p4ss@host/\"\n",
        &["check \"api\"", "key `url`", "http or https"],
    );
    assert_rejected(
        "[[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"localhost\"\n",
        &["check \"db\"", "key `address`", "host:port"],
    );
}

#[test]
fn a_bad_url_never_echoes_its_password() {
    let (code, stderr) = validate(
        "healthgate.toml",
        "[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"gopher://alice:hunter2@host/\"\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn empty_commands() {
    assert_rejected(
        "[[checks]]\nname = \"cache\"\ntype = \"exec\"\ncommand = []\n",
        &["check \"cache\"", "key `command`"],
    );
    assert_rejected(
        "[[checks]]\nname = \"cache\"\ntype = \"exec\"\ncommand = [\"\"]\n",
        &["check \"cache\"", "key `command`"],
    );
}

#[test]
fn zero_thresholds() {
    assert_rejected(
        &format!("{HTTP}failure_threshold = 0\n"),
        &["check \"api\"", "key `failure_threshold`", "at least 1"],
    );
    assert_rejected(
        "[defaults]\nsuccess_threshold = 0\n",
        &["key `defaults.success_threshold`"],
    );
}

#[test]
fn schedules_longer_than_a_year_are_typos() {
    assert_rejected(
        &format!("{HTTP}interval = \"400d\"\n"),
        &["check \"api\"", "key `interval`", "must be at most 365d"],
    );
    assert_rejected(
        "[defaults]\ninitial_delay = \"600000000d\"\n",
        &[
            "key `defaults.initial_delay`",
            "longer than any duration healthgate accepts (at most 3650d)",
        ],
    );
    assert_rejected(
        &format!("{HTTP}failing_interval = \"1000y\"\n"),
        &["key `failing_interval`", "(at most 3650d)"],
    );
    assert_rejected(
        "[[checks]]\nname = \"batch\"\ntype = \"push\"\nttl = \"2y\"\n",
        &["check \"batch\"", "key `ttl`", "must be at most 365d"],
    );
}

#[test]
fn windows_paces_and_latency_expectations_are_checked() {
    assert_rejected(
        &format!("{HTTP}failure_window = {{ failures = 6, of = 5 }}\n"),
        &[
            "check \"api\"",
            "key `failure_window`",
            "1 <= failures <= of <= 64; got failures = 6, of = 5",
        ],
    );
    assert_rejected(
        "[defaults]\nsuccess_window = { successes = 1, of = 65 }\n",
        &["key `defaults.success_window`", "of <= 64"],
    );
    assert_rejected(
        &format!("{HTTP}failure_window = {{ failures = 2 }}\n"),
        &["key `failure_window.of`", "missing; this key is required"],
    );
    assert_rejected(
        &format!("{HTTP}start_interval = \"0s\"\nfailing_interval = \"0s\"\n"),
        &["key `start_interval`", "key `failing_interval`"],
    );
    assert_rejected(
        &format!("{HTTP}timeout = \"1s\"\nexpect.max_duration = \"2s\"\n"),
        &["key `expect.max_duration`", "more than the timeout (1s)"],
    );
    assert_rejected(
        &format!("{HTTP}expect.slow = \"warn\"\n"),
        &["key `expect.slow`", "without `expect.max_duration`"],
    );
    assert_rejected(
        &format!("{HTTP}expect.max_duration = \"200ms\"\nexpect.slow = \"maybe\"\n"),
        &["key `expect.slow`", "`fail`", "`warn`"],
    );
    assert_rejected(
        "[[checks]]\nname = \"nrpe\"\ntype = \"script\"\ncommand = [\"/bin/true\"]\nexpect.exit_code = 2\n",
        &[
            "check \"nrpe\"",
            "key `expect.exit_code`",
            "has no effect with `exit_codes = \"nagios\"`",
        ],
    );
    // Every type takes them, including tcp, which has no other expectations.
    let (code, stderr) = validate(
        "healthgate.toml",
        "[[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"127.0.0.1:5432\"\nexpect.max_duration = \"100ms\"\nfailure_window = { failures = 3, of = 5 }\nstart_interval = \"1s\"\ndependency = true\n",
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn the_new_probe_types_name_the_bad_key() {
    let check =
        |kind: &str, body: &str| format!("[[checks]]\nname = \"x\"\ntype = \"{kind}\"\n{body}\n");
    assert_rejected(
        &check("dns", "query = \"db.internal.\"\nrecord_type = \"AXFR\""),
        &[
            "check \"x\"",
            "key `record_type`",
            "unknown record type `AXFR`",
        ],
    );
    assert_rejected(
        &check("dns", "query = \"db.internal.\"\nexpect.rcode = \"NOPE\""),
        &["key `expect.rcode`", "`NXDOMAIN`"],
    );
    assert_rejected(
        &check(
            "dns",
            "query = \"gone.internal.\"\nexpect = { rcode = \"NXDOMAIN\", answers_contain = [\"1.2.3.4\"] }",
        ),
        &["key `expect`", "comes with none"],
    );
    assert_rejected(
        &check("dns", "query = \"db.internal.\"\nserver = \"dns.internal\""),
        &["key `server`", "`IP:PORT`"],
    );
    assert_rejected(
        &check("grpc", "address = \"localhost\""),
        &["key `address`", "host:port"],
    );
    assert_rejected(
        &check(
            "grpc",
            "address = \"localhost:9000\"\nmetadata = { \"bad key\" = \"v\" }",
        ),
        &["key `metadata.bad key`", "not a valid metadata key"],
    );
    assert_rejected(
        &check(
            "tls",
            "address = \"localhost:443\"\nexpect.cert_min_validity = \"soon\"",
        ),
        &["key `expect.cert_min_validity`"],
    );
    assert_rejected(
        &check("disk", "path = \"data\""),
        &["key `path`", "absolute"],
    );
    assert_rejected(
        &check(
            "disk",
            "path = \"/data\"\nwarn_above = 95\nfail_above = 90\ninodes_fail_above = 101",
        ),
        &[
            "key `warn_above`",
            "below `fail_above` (90)",
            "key `inodes_fail_above`",
            "0 to 100",
        ],
    );
    assert_rejected(
        &check(
            "memory",
            "pressure_warn_above = 50\npressure_fail_above = 10",
        ),
        &["key `pressure_warn_above`", "below `pressure_fail_above`"],
    );
    assert_rejected(&check("push", ""), &["key `ttl`", "missing"]);
    assert_rejected(
        &check("push", "ttl = \"0s\""),
        &["key `ttl`", "more than 0s"],
    );
    assert_rejected(
        &check("dsn", "query = \"x.\""),
        &["key `type`", "did you mean `dns`?"],
    );
}

#[test]
fn malformed_toml_and_yaml() {
    let (code, stderr) = validate("healthgate.toml", "[server\nlisten = 1\n", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
    let (code, stderr) = validate(
        "healthgate.yaml",
        "checks:\n  - name: api\n   type: [\n",
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("line"), "{stderr}");
}

#[test]
fn every_problem_is_listed_at_once() {
    let text = "[defaults]\ntimeout = \"5x\"\nfailure_threshold = 0\n\
                [[checks]]\nname = \"a\"\ntype = \"tcp\"\naddress = \"x\"\ninterval = \"0s\"\n\
                [[checks]]\nname = \"b\"\ntype = \"exec\"\ncommand = []\nbogus = 1\n";
    assert_rejected(
        text,
        &[
            "6 problem(s)",
            "key `defaults.timeout`",
            "key `defaults.failure_threshold`",
            "check \"a\": key `address`",
            "check \"a\": key `interval`",
            "check \"b\": key `command`",
            "check \"b\": key `bogus`",
        ],
    );
}

#[test]
fn yaml_is_the_same_tree() {
    let yaml = "server:\n  listen: 127.0.0.1:0\ndefaults:\n  interval: 5s\nchecks:\n  - name: api\n    type: http\n    url: http://127.0.0.1:1/\n    expect:\n      status: [\"2xx\", 301]\n      json: { \"/status\": \"UP\" }\n";
    let (code, stderr) = validate("healthgate.yaml", yaml, &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = validate("healthgate.yml", &format!("{yaml}    intervall: 5s\n"), &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("did you mean `interval`"), "{stderr}");
}

#[test]
fn environment_overrides_apply_with_double_underscore_nesting() {
    let (code, stderr) = validate(
        HTTP_FILE,
        HTTP,
        &[("HEALTHGATE_DEFAULTS__FAILURE_THRESHOLD", "0")],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("key `defaults.failure_threshold`"),
        "{stderr}"
    );
    let (code, stderr) = validate(
        HTTP_FILE,
        HTTP,
        &[("HEALTHGATE_SERVER__LISTEN", "0.0.0.0:9000")],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = validate(
        HTTP_FILE,
        HTTP,
        &[("HEALTHGATE_SERVER__LISTEN", "not-an-address")],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("key `server.listen`"), "{stderr}");
}

const HTTP_FILE: &str = "healthgate.toml";

#[test]
fn the_config_path_comes_from_healthgate_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elsewhere.toml");
    std::fs::write(&path, HTTP).unwrap();
    let out = healthgate(
        &["validate"],
        &[("HEALTHGATE_CONFIG", path.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = healthgate(
        &["validate"],
        &[("HEALTHGATE_CONFIG", "/nonexistent/healthgate.toml")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/healthgate.toml"));
}

mod check_command {
    use super::*;

    fn check(toml: &str, extra: &[&str]) -> (i32, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("healthgate.toml");
        std::fs::write(&path, toml).unwrap();
        let mut args = vec!["check", "--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = healthgate(&args, &[]);
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    const MIXED: &str = r#"
[[checks]]
name = "good"
type = "exec"
command = ["true"]
[[checks]]
name = "optional"
type = "exec"
command = ["false"]
critical = false
[[checks]]
name = "bad"
type = "exec"
command = ["false"]
"#;

    #[test]
    fn exit_codes_follow_critical_checks() {
        let (code, out) = check(MIXED, &[]);
        assert_eq!(code, 1, "{out}");
        assert!(out.starts_with("NAME"), "{out}");
        assert!(
            out.contains("bad") && out.contains("exec_exit_code"),
            "{out}"
        );
        let (code, out) = check(MIXED, &["--check", "good", "--check", "optional"]);
        assert_eq!(
            code, 0,
            "a failing non-critical check does not fail the run: {out}"
        );
        assert!(!out.contains("bad"), "{out}");
        let (code, _) = check(MIXED, &["--check", "missing"]);
        assert_eq!(code, 2);
        let (code, _) = check("[[checks]]\nname = 1\n", &[]);
        assert_eq!(code, 2);
    }

    #[test]
    fn json_output_lists_each_result() {
        let (code, out) = check(MIXED, &["--json"]);
        assert_eq!(code, 1);
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["name"], "good");
        assert_eq!(rows[0]["status"], "pass");
        assert_eq!(rows[1]["status"], "warn");
        assert_eq!(rows[2]["status"], "fail");
        assert_eq!(rows[2]["category"], "exec_exit_code");
        assert!(rows[2]["duration_ms"].as_f64().unwrap() > 0.0);
    }

    #[tokio::test]
    #[allow(clippy::disallowed_types)] // wall-clock time of a real child process
    async fn runs_checks_concurrently() {
        let (addr, _held) = silent_listener().await;
        // Three 1 s timeouts run side by side, not one after another.
        let toml: String = (0..3)
            .map(|i| format!("[[checks]]\nname = \"c{i}\"\ntype = \"http\"\nurl = \"http://{addr}/\"\ntimeout = \"1s\"\n"))
            .collect();
        let started = std::time::Instant::now();
        let (code, out) = tokio::task::spawn_blocking(move || check(&toml, &[]))
            .await
            .unwrap();
        assert_eq!(code, 1, "{out}");
        assert_eq!(
            out.lines()
                .filter(|l| l.contains("fail") && l.contains("timeout: "))
                .count(),
            3,
            "{out}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn listener_settings_are_checked() {
    // An admin listener reachable from other hosts needs a token or mTLS.
    assert_rejected(
        "[server]\nadmin_listen = \"0.0.0.0:8091\"\n",
        &[
            "key `server.admin_listen`",
            "reachable from other hosts",
            "token_file",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let (code, stderr) = validate(
        "healthgate.toml",
        &format!(
            "[server]\nadmin_listen = \"0.0.0.0:8091\"\n[server.admin]\ntoken_file = \"{}\"\n{HTTP}",
            token.display()
        ),
        &[],
    );
    assert_eq!(code, 0, "with a token: {stderr}");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    assert_rejected(
        &format!("[server.admin]\ntoken_file = \"{}\"\n", empty.display()),
        &["key `server.admin.token_file`", "is empty"],
    );

    // TLS files: missing, not PEM, and a key that is not the certificate's.
    let pki = support::test_pki();
    let cert = dir.path().join("tls.crt");
    std::fs::write(&cert, &pki.server_chain_pem).unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not pem").unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, pki.leaf(2030).1).unwrap();
    assert_rejected(
        &format!(
            "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            dir.path().join("missing.crt").display(),
            other_key.display()
        ),
        &["key `server.tls.cert_file`", "missing.crt"],
    );
    assert_rejected(
        &format!(
            "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            garbage.display()
        ),
        &["key `server.tls.key_file`", "private key"],
    );
    assert_rejected(
        &format!(
            "[server.admin.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nmin_version = \"1.1\"\n",
            cert.display(),
            other_key.display()
        ),
        &["key `server.admin.tls.min_version`"],
    );
    assert_rejected(
        &format!(
            "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            other_key.display()
        ),
        &["key `server.tls.key_file`", "does not go with"],
    );

    // Addresses and drain bounds.
    assert_rejected(
        "[server]\nlisten = \"127.0.0.1:9000\"\nagent_listen = \"127.0.0.1:9000\"\n",
        &[
            "key `server.agent_listen`",
            "already used by `server.listen`",
        ],
    );
    assert_rejected(
        "[server.drain]\nmin = \"30s\"\nmax = \"10s\"\n",
        &["key `server.drain.min`", "longer than server.drain.max"],
    );
    assert_rejected(
        "[server.agent]\nweight_on_warn = 0\n",
        &["key `server.agent.weight_on_warn`"],
    );
    assert_rejected(
        "[server.drain]\nmax_time = \"10s\"\n",
        &[
            "key `server.drain.max_time`",
            "expected one of `min`, `max`",
        ],
    );
}

/// A file cut short or emptied must not become a config of no checks (whose
/// verdicts are all 200): it is an error unless the config says it is meant.
#[test]
fn a_config_without_checks_is_an_error_unless_allowed() {
    for text in [
        "",
        "\n# nothing but a comment\n",
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        "checks = []\n",
    ] {
        let (code, stderr) = validate(HTTP_FILE, text, &[]);
        assert_eq!(code, 2, "{text:?}: {stderr}");
        assert!(stderr.contains("key `checks`: no checks"), "{stderr}");
        assert!(stderr.contains("server.allow_no_checks"), "{stderr}");
    }
    let (code, stderr) = validate("healthgate.yaml", "server:\n  listen: 127.0.0.1:0\n", &[]);
    assert_eq!(code, 2, "{stderr}");
    let (code, stderr) = validate(HTTP_FILE, "[server]\nallow_no_checks = true\n", &[]);
    assert_eq!(code, 0, "{stderr}");
}

/// A Kubernetes Service named `healthgate` injects service-link variables
/// into every pod of its namespace: none of them is a config key.
#[test]
fn service_link_variables_are_not_config_keys() {
    let links = [
        ("HEALTHGATE_SERVICE_HOST", "10.0.0.7"),
        ("HEALTHGATE_SERVICE_PORT", "8090"),
        ("HEALTHGATE_SERVICE_PORT_HTTP", "8090"),
        ("HEALTHGATE_PORT", "tcp://10.0.0.7:8090"),
        ("HEALTHGATE_PORT_8090_TCP", "tcp://10.0.0.7:8090"),
        ("HEALTHGATE_PORT_8090_TCP_PROTO", "tcp"),
        ("HEALTHGATE_PORT_8090_TCP_PORT", "8090"),
        ("HEALTHGATE_PORT_8090_TCP_ADDR", "10.0.0.7"),
    ];
    let (code, stderr) = validate(HTTP_FILE, HTTP, &links);
    assert_eq!(code, 0, "{stderr}");
    // Overrides of a section still apply beside them, and a typo in one is still named.
    let mut env = links.to_vec();
    env.push(("HEALTHGATE_SERVER__LISTN", "0.0.0.0:1"));
    let (code, stderr) = validate(HTTP_FILE, HTTP, &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("did you mean `listen`?"), "{stderr}");
}

/// The file is read up to a bound, whatever it is: a device that never
/// ends, a file too large, a directory, a FIFO nobody writes.
#[test]
fn config_files_are_read_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let run = |path: &Path| {
        let began = tokio::time::Instant::now();
        let out = healthgate(&["validate", "--config", path.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        assert!(
            began.elapsed() < std::time::Duration::from_secs(10),
            "{}",
            path.display()
        );
        stderr
    };
    let zero = dir.path().join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    assert!(run(&zero).contains("not a regular file"));
    let fifo = dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert!(run(&fifo).contains("not a regular file"));
    let dir_config = dir.path().join("dir.toml");
    std::fs::create_dir(&dir_config).unwrap();
    assert!(run(&dir_config).contains("cannot read"));
    // 50 MB of small keys: refused at the bound, not parsed.
    let big = dir.path().join("big.toml");
    let mut text = String::with_capacity(50 << 20);
    let mut i = 0u64;
    while text.len() < 50 << 20 {
        text.push_str(&format!("k{i} = {i}\n"));
        i += 1;
    }
    std::fs::write(&big, &text).unwrap();
    assert!(run(&big).contains("larger than 4 MiB"));
}

/// Nesting is refused before a parser recurses into it.
#[test]
fn deeply_nested_configs_are_refused() {
    let flow = format!("checks: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let (code, stderr) = validate("healthgate.yaml", &flow, &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("nested more than 32 levels deep"),
        "{stderr}"
    );
    let block: String = (0..200)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect();
    let (code, stderr) = validate("healthgate.yaml", &block, &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("nested more than 32 levels deep"),
        "{stderr}"
    );
    let toml = format!("a = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let (code, stderr) = validate(HTTP_FILE, &toml, &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("nested more than 32 levels deep"),
        "{stderr}"
    );
}

#[test]
fn ports_out_of_range_are_refused_wherever_a_url_is_given() {
    for port in ["99999", "65536", "0", "4294967376"] {
        assert_rejected(
            &format!(
                "[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\n"
            ),
            &["check \"api\"", "key `url`", "port must be 1 to 65535"],
        );
        assert_rejected(
            &format!("{HTTP}[telemetry.otlp]\nendpoint = \"http://127.0.0.1:{port}\"\n"),
            &["key `telemetry.otlp.endpoint`", "port must be 1 to 65535"],
        );
        assert_rejected(
            &format!("[[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n"),
            &["check \"db\"", "key `address`"],
        );
    }
}

#[test]
fn a_shell_command_is_one_string() {
    let exec = "[[checks]]\nname = \"script\"\ntype = \"exec\"\n";
    for command in ["\"echo hi\"", "[\"echo hi\"]"] {
        let (code, stderr) = validate(
            HTTP_FILE,
            &format!("{exec}shell = true\ncommand = {command}\n"),
            &[],
        );
        assert_eq!(code, 0, "{command}: {stderr}");
    }
    // A string without `shell = true`: one message, saying what to write.
    let (code, stderr) = validate(HTTP_FILE, &format!("{exec}command = \"echo hi\"\n"), &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("1 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("a string runs through a shell only with `shell = true`"),
        "{stderr}"
    );
    assert_rejected(
        &format!("{exec}shell = true\ncommand = [\"echo\", \"hi\"]\n"),
        &["key `command`", "with `shell = true`, give one string"],
    );
    assert_rejected(
        &format!("{exec}shell = true\ncommand = \" \"\n"),
        &["key `command`", "must name a program"],
    );
    assert_rejected(
        &format!("{exec}command = 42\n"),
        &["key `command`", "or one string with shell = true"],
    );
}

/// No error message shows the value of a secret-bearing key, whatever the
/// error: a syntax error on its line, a wrong type for it or inside it,
/// in TOML and in YAML.
#[test]
fn config_errors_never_show_a_secret() {
    const SECRET: &str = "s3cr3t-Vx9";
    let http = "[[checks]]\nname = \"a\"\ntype = \"http\"\nurl = \"http://127.0.0.1:1/\"\n";
    let grpc = "[[checks]]\nname = \"g\"\ntype = \"grpc\"\naddress = \"127.0.0.1:1\"\n";
    let exec = "[[checks]]\nname = \"e\"\ntype = \"exec\"\ncommand = [\"true\"]\n";
    let tcp = "[[checks]]\nname = \"t\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n";
    let toml = [
        format!("{http}headers = {{ Authorization = \"Bearer {SECRET}\" \n"),
        format!("{http}headers = \"Bearer {SECRET}\"\n"),
        format!("{http}headers = {{ Authorization = [\"Bearer {SECRET}\"] }}\n"),
        format!("{http}headers = [\"{SECRET}\"]\n"),
        format!("{grpc}metadata = \"{SECRET}\"\n"),
        format!("{grpc}metadata = {{ x = {{ y = \"{SECRET}\" }} }}\n"),
        format!("{exec}env = \"TOKEN={SECRET}\"\n"),
        format!("{exec}env = {{ TOKEN = \"{SECRET}\n"),
        format!("{http}[telemetry.otlp]\nheaders = \"x-api-key={SECRET}\"\n"),
        format!("{tcp}[[checks.exchange]]\nsend = [\"AUTH {SECRET}\"]\n"),
        format!("[[checks]]\nname = \"a\"\ntype = \"http\"\nurl = [\"http://u:{SECRET}@h/\"]\n"),
        format!("[[checks]]\nname = \"a\"\ntype = \"http\"\nurl = \"gopher://u:{SECRET}@h/\"\n"),
        format!("checks = \"{SECRET}\"\n"),
        format!("checks = [\"{SECRET}\"]\n"),
        format!("{http}headers = {{ Authorization = \"Bearer {SECRET}\" }} }}\n"),
    ];
    for text in &toml {
        let (code, stderr) = validate(HTTP_FILE, text, &[]);
        assert_eq!(code, 2, "{text}\n{stderr}");
        assert!(!stderr.contains(SECRET), "{text}\n{stderr}");
    }
    let yaml = [
        format!(
            "checks:\n- name: a\n  type: http\n  url: http://h/\n  headers: {{Authorization: \"Bearer {SECRET}\"\n"
        ),
        format!("checks:\n- name: a\n  type: http\n  url: http://h/\n  headers: Bearer {SECRET}\n"),
        format!("checks:\n- name: e\n  type: exec\n  command: [x]\n  env: {{TOKEN: [{SECRET}]}}\n"),
        format!(
            "checks:\n- name: e\n  type: exec\n  command: [x]\n  env:\n    TOKEN: {SECRET}\n   bad: indent\n"
        ),
    ];
    for text in &yaml {
        let (code, stderr) = validate("healthgate.yaml", text, &[]);
        assert_eq!(code, 2, "{text}\n{stderr}");
        assert!(!stderr.contains(SECRET), "{text}\n{stderr}");
    }
    // From the environment too.
    let (code, stderr) = validate(
        HTTP_FILE,
        HTTP,
        &[("HEALTHGATE_TELEMETRY__OTLP__HEADERS", SECRET)],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}

/// A key or value with a control character (an ANSI escape, a NUL) is
/// named escaped: nothing from the file reaches the terminal raw.
#[test]
fn problems_escape_control_characters() {
    let (code, stderr) = validate(
        HTTP_FILE,
        &format!("{HTTP}\"bad\\u001b[31mkey\" = 1\ntimeout = \"5\\u0000x\"\n"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\0'),
        "{stderr:?}"
    );
    assert!(stderr.contains("bad\\u{1b}[31mkey"), "{stderr}");
}

#[test]
fn a_refused_value_is_not_then_judged_as_its_default() {
    // drain.min is refused; its default (5s) is longer than max, but the
    // file never said so.
    let (code, stderr) = validate(
        HTTP_FILE,
        &format!("[server]\ndrain = {{ min = \"2h\", max = \"1s\" }}\n{HTTP}"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`server.drain.min`: must be at most 1h"),
        "{stderr}"
    );
    assert!(!stderr.contains("longer than server.drain.max"), "{stderr}");
    // The same for a check: a refused timeout is not compared with max_duration.
    let (code, stderr) = validate(
        HTTP_FILE,
        &format!("{HTTP}timeout = \"0s\"\nexpect.max_duration = \"2s\"\n"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`timeout`: must be more than 0s"),
        "{stderr}"
    );
    assert!(!stderr.contains("is more than the timeout"), "{stderr}");
    assert!(stderr.contains("1 problem(s)"), "{stderr}");
}
