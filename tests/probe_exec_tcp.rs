//! exec probes with real child processes; tcp probes against real listeners.

mod support;

use std::path::Path;
use std::time::Duration;

use healthgate::probe::Category;
use support::*;

#[tokio::test]
async fn exit_code_expectations() {
    assert!(run_probe("exec", "command = [\"true\"]").await.passed());
    let o = run_probe(
        "exec",
        "command = [\"sh\", \"-c\", \"echo broken >&2; exit 3\"]\nshow_output = true",
    )
    .await;
    assert_fails(&o, Category::ExecExitCode);
    assert_eq!(o.message, "exit code 3, expected 0: broken");
    let o = run_probe(
        "exec",
        "command = [\"sh\", \"-c\", \"exit 3\"]\nexpect.exit_code = 3",
    )
    .await;
    assert!(o.passed(), "{o:?}");
}

#[tokio::test]
async fn a_script_check_reads_nagios_exit_codes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = |code: i32, said: &str| {
        let path = dir.path().join(format!("check_{code}"));
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho '{said}'\necho 'perfdata on line 2'\nexit {code}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        format!("command = [\"{}\"]\nshow_output = true", path.display())
    };
    let ok = run_probe("script", &script(0, "DISK OK - 40% used")).await;
    assert!(ok.passed() && ok.warning.is_none(), "{ok:?}");
    assert_eq!(ok.message, "exit code 0: DISK OK - 40% used");

    let warn = run_probe("script", &script(1, "DISK WARNING - 85% used")).await;
    assert!(warn.passed(), "a warning is not a failure: {warn:?}");
    assert_eq!(warn.warning, Some(Category::ExecWarning));
    assert_eq!(warn.message, "WARNING (exit 1): DISK WARNING - 85% used");

    let crit = run_probe("script", &script(2, "DISK CRITICAL - 97% used")).await;
    assert_fails(&crit, Category::ExecExitCode);
    assert_eq!(crit.message, "CRITICAL (exit 2): DISK CRITICAL - 97% used");

    let unknown = run_probe("script", &script(3, "cannot stat /data")).await;
    assert_fails(&unknown, Category::ExecExitCode);
    assert_eq!(unknown.message, "UNKNOWN (exit 3): cannot stat /data");

    // The same semantics on an exec check when asked for; exact codes otherwise.
    let o = run_probe(
        "exec",
        &format!("{}\nexpect.exit_codes = \"nagios\"", script(1, "slow")),
    )
    .await;
    assert_eq!(o.warning, Some(Category::ExecWarning), "{o:?}");
    assert_fails(
        &run_probe("exec", &script(1, "slow")).await,
        Category::ExecExitCode,
    );
    // A script asked for exact codes.
    let o = run_probe(
        "script",
        &format!(
            "{}\nexpect.exit_codes = \"exact\"\nexpect.exit_code = 1",
            script(1, "one")
        ),
    )
    .await;
    assert!(o.passed() && o.warning.is_none(), "{o:?}");
}

#[tokio::test]
async fn output_expectations() {
    let o = run_probe(
        "exec",
        "command = [\"echo\", \"PONG\"]\nexpect.output_contains = \"PONG\"",
    )
    .await;
    assert!(o.passed(), "{o:?}");
    // Output is shown only when asked for: it may hold a secret.
    assert_eq!(o.message, "exit code 0");
    let o = run_probe("exec", "command = [\"echo\", \"PONG\"]\nshow_output = true").await;
    assert_eq!(o.message, "exit code 0: PONG");
    let o = run_probe(
        "exec",
        "command = [\"sh\", \"-c\", \"echo password=hunter2; exit 3\"]",
    )
    .await;
    assert_eq!(o.message, "exit code 3, expected 0");
    let o = run_probe(
        "script",
        "command = [\"sh\", \"-c\", \"echo CRITICAL token=hunter2; exit 2\"]",
    )
    .await;
    assert_eq!(o.message, "CRITICAL (exit 2)");
    // Shown, an environment value the command echoes is still blanked.
    let o = run_probe(
        "exec",
        "command = [\"sh\", \"-c\", \"echo token is $TOKEN\"]\nenv = { TOKEN = \"tok-s3cret\" }\nshow_output = true",
    )
    .await;
    assert_eq!(o.message, "exit code 0: token is REDACTED");
    // Shown, an escape sequence or a NUL arrives escaped.
    let o = run_probe(
        "exec",
        "command = [\"printf\", \"\\\\033[31mred\\\\000\"]\nshow_output = true",
    )
    .await;
    assert_eq!(o.message, "exit code 0: \\u{1b}[31mred\\u{0}");
    let o = run_probe(
        "exec",
        "command = [\"echo\", \"PANG\"]\nexpect.output_contains = \"PONG\"",
    )
    .await;
    assert_fails(&o, Category::ExecOutputMismatch);
    assert!(
        run_probe(
            "exec",
            "command = [\"echo\", \"v1.2.3\"]\nexpect.output_regex = '^v\\d+\\.'"
        )
        .await
        .passed()
    );
    let o = run_probe(
        "exec",
        "command = [\"echo\", \"vX\"]\nexpect.output_regex = '^v\\d+\\.'",
    )
    .await;
    assert_fails(&o, Category::ExecOutputMismatch);
    // stderr counts as output too.
    let o = run_probe(
        "exec",
        "command = [\"sh\", \"-c\", \"echo ready >&2\"]\nexpect.output_contains = \"ready\"",
    )
    .await;
    assert!(o.passed(), "{o:?}");
}

#[tokio::test]
async fn no_shell_unless_asked() {
    // Without a shell, `$HOME` and `;` are plain arguments.
    let o = run_probe(
        "exec",
        "command = [\"echo\", \"$HOME;x\"]\nexpect.output_contains = \"$HOME;x\"",
    )
    .await;
    assert!(o.passed(), "{o:?}");
    let o = run_probe(
        "exec",
        "shell = true\ncommand = [\"echo a; echo b\"]\nexpect.output_regex = '^a\\nb'",
    )
    .await;
    assert!(o.passed(), "{o:?}");
}

#[tokio::test]
async fn a_missing_program_is_exec_spawn() {
    let o = run_probe("exec", "command = [\"/nonexistent/healthgate-probe\"]").await;
    assert_fails(&o, Category::ExecSpawn);
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The child starts a grandchild that ignores SIGTERM, records both pids, and hangs.
    let script = format!(
        "trap '' TERM; (trap '' TERM; sleep 300) & echo $$ $! > {}; sleep 300",
        pids.display()
    );
    let o = run_probe(
        "exec",
        &format!("shell = true\ncommand = [\"{script}\"]\ntimeout = \"500ms\""),
    )
    .await;
    assert_fails(&o, Category::ExecTimeout);
    assert!(o.duration < Duration::from_secs(3), "not bounded: {o:?}");
    let text = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{text}");
    eventually(
        Duration::from_secs(5),
        "child and grandchild gone",
        || async { pids.iter().all(|pid| !alive(*pid)) },
    )
    .await;
    // The direct child was reaped, not left a zombie.
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pids[0])).exists(),
        "child {} not reaped",
        pids[0]
    );
}

#[tokio::test]
async fn leftover_background_processes_do_not_hold_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // The command exits at once but leaves a process holding stdout open.
    let script = format!("sleep 300 & echo $! > {}; echo done", pid_file.display());
    let o = run_probe(
        "exec",
        &format!("shell = true\ncommand = [\"{script}\"]\ntimeout = \"5s\""),
    )
    .await;
    assert!(o.passed(), "{o:?}");
    assert!(o.duration < Duration::from_secs(2), "{o:?}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "leftover process killed",
        || async { !alive(pid) },
    )
    .await;
}

#[tokio::test]
async fn captured_output_is_bounded() {
    // 8 MiB of output: read and discarded past max_output_bytes, never blocking the child.
    let o = run_probe(
        "exec",
        "shell = true\ncommand = [\"head -c 8388608 /dev/zero | tr '\\\\0' a; echo; echo tail-marker\"]\nmax_output_bytes = 1024\nexpect.output_contains = \"tail-marker\"\ntimeout = \"10s\"",
    )
    .await;
    // The marker lies past the bound, so it is not seen: the bound held.
    assert_fails(&o, Category::ExecOutputMismatch);
    assert!(o.message.len() < 300, "{o:?}");
}

#[tokio::test]
async fn environment_and_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "command = [\"sh\", \"-c\", \"echo $TOKEN; pwd\"]\nenv = {{ TOKEN = \"abc123\" }}\nworking_dir = \"{}\"\nexpect.output_regex = '(?s)abc123.*{}'",
        dir.path().display(),
        dir.path().file_name().unwrap().to_str().unwrap()
    );
    let o = run_probe("exec", &body).await;
    assert!(o.passed(), "{o:?}");
    // A working_dir that is gone is named as the cause, not the program.
    let gone = dir.path().join("gone");
    let o = run_probe(
        "exec",
        &format!("command = [\"true\"]\nworking_dir = \"{}\"", gone.display()),
    )
    .await;
    assert_fails(&o, Category::ExecSpawn);
    assert!(
        o.message.contains(&format!(
            "working_dir {} is not a directory",
            gone.display()
        )),
        "{o:?}"
    );
}

#[tokio::test]
async fn tcp_connect() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let o = run_probe("tcp", &format!("address = \"{addr}\"")).await;
    assert!(o.passed(), "{o:?}");
    let o = run_probe("tcp", &format!("address = \"localhost:{}\"", addr.port())).await;
    assert!(o.passed(), "every resolved address is tried: {o:?}");
    drop(listener);
    let o = run_probe("tcp", &format!("address = \"{addr}\"")).await;
    assert_fails(&o, Category::ConnectRefused);
    let o = run_probe(
        "tcp",
        "address = \"no-such-host.invalid:5432\"\ntimeout = \"2s\"",
    )
    .await;
    assert_fails(&o, Category::Dns);
}

mod exchange {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A TCP peer: optionally greets, then answers each line with `reply(line)`
    /// (`None`: stay silent). Returns its address.
    async fn peer(
        greeting: &'static str,
        reply: fn(&str) -> Option<String>,
    ) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let _ = write.write_all(greeting.as_bytes()).await;
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        match reply(&line) {
                            Some(answer) => {
                                if write.write_all(answer.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            None => std::future::pending::<()>().await,
                        }
                    }
                });
            }
        });
        addr
    }

    const PING: &str = "[[checks.exchange]]\nsend = \"PING\\r\\n\"\nexpect = '^\\+PONG'\n";

    #[tokio::test]
    async fn a_redis_style_ping_without_a_client() {
        let addr = peer("", |l| (l == "PING").then(|| "+PONG\r\n".to_owned())).await;
        let o = run_probe("tcp", &format!("address = \"{addr}\"\n{PING}")).await;
        assert!(o.passed(), "{o:?}");
        assert_eq!(o.message, format!("1 exchange steps with {addr} matched"));
    }

    #[tokio::test]
    async fn a_wrong_answer_then_close_is_a_response_mismatch() {
        let addr = peer("", |_| Some("-ERR unknown command\r\n".to_owned())).await;
        // The peer keeps the connection: the probe waits for a match until the timeout.
        let o = run_probe(
            "tcp",
            &format!("address = \"{addr}\"\ntimeout = \"300ms\"\n{PING}"),
        )
        .await;
        assert_fails(&o, Category::Timeout);
        assert!(o.message.contains("-ERR unknown command"), "{o:?}");
        // A peer that answers wrong and hangs up.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closing = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(b"-ERR\r\n").await.unwrap();
        });
        let o = run_probe("tcp", &format!("address = \"{closing}\"\n{PING}")).await;
        assert_fails(&o, Category::ResponseMismatch);
    }

    #[tokio::test]
    async fn a_peer_that_never_answers_is_cut_at_the_timeout() {
        let addr = peer("", |_| None).await;
        let o = run_probe(
            "tcp",
            &format!("address = \"{addr}\"\ntimeout = \"300ms\"\n{PING}"),
        )
        .await;
        assert_fails(&o, Category::Timeout);
        assert!(o.duration < Duration::from_secs(2), "{o:?}");
    }

    #[tokio::test]
    async fn an_endless_answer_is_not_read_past_the_bound() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let chunk = [b'x'; 4096];
            while stream.write_all(&chunk).await.is_ok() {}
        });
        let o = run_probe(
            "tcp",
            &format!("address = \"{addr}\"\ntimeout = \"5s\"\nmax_response_bytes = 1024\n[[checks.exchange]]\nexpect = \"never\"\n"),
        )
        .await;
        assert_fails(&o, Category::ResponseMismatch);
        assert!(o.message.contains("first 1024 bytes"), "{o:?}");
        assert!(o.duration < Duration::from_secs(1), "{o:?}");
    }

    #[tokio::test]
    async fn an_smtp_banner_then_a_second_step() {
        let addr = peer("220 mail.test ESMTP\r\n", |l| {
            Some(
                if l.starts_with("EHLO") {
                    "250 hello\r\n"
                } else {
                    "500 ?\r\n"
                }
                .to_owned(),
            )
        })
        .await;
        let steps = "[[checks.exchange]]\nexpect = \"^220 \"\n[[checks.exchange]]\nsend = \"EHLO healthgate\\r\\n\"\nexpect = \"^250 \"\n";
        let o = run_probe("tcp", &format!("address = \"{addr}\"\n{steps}")).await;
        assert!(o.passed(), "{o:?}");
        let wrong = steps.replace("EHLO", "HELO");
        let o = run_probe(
            "tcp",
            &format!("address = \"{addr}\"\ntimeout = \"300ms\"\n{wrong}"),
        )
        .await;
        assert_fails(&o, Category::Timeout);
        assert!(o.message.starts_with("step 1:"), "{o:?}");
    }

    #[test]
    fn bad_exchanges_are_config_errors() {
        let err = healthgate::config::load_str(
            std::path::Path::new("x.toml"),
            "[[checks]]\nname = \"r\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n[[checks.exchange]]\n[[checks.exchange]]\nexpect = \"(\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("check \"r\": key `exchange[0]`: give `send`, `expect` or both"),
            "{err}"
        );
        assert!(
            err.contains("check \"r\": key `exchange[1].expect`: invalid regular expression"),
            "{err}"
        );
    }
}

/// A command whose descendant leaves the process group (`setsid`) and
/// outlives it: the running gateway, as the subreaper of its descendants,
/// kills and reaps it after the run.
#[tokio::test]
async fn a_descendant_that_calls_setsid_does_not_outlive_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("escaped.pid");
    let gw = start_gateway(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [[checks]]\nname = \"escape\"\ntype = \"exec\"\ninterval = \"1s\"\n\
         command = [\"sh\", \"-c\", \"setsid sh -c 'echo $$ > {p}.tmp; mv {p}.tmp {p}; exec sleep 1000' </dev/null >/dev/null 2>&1 & \
         while [ ! -s {p} ]; do sleep 0.01; done\"]\n",
        p = pidfile.display()
    ))
    .await;
    let mut pid = None;
    eventually(Duration::from_secs(15), "the escaped process's pid", || {
        pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        std::future::ready(pid.is_some())
    })
    .await;
    let pid = pid.unwrap();
    // Killed and reaped: not even a zombie is left.
    eventually(
        Duration::from_secs(15),
        "the escaped process is gone",
        || std::future::ready(!Path::new(&format!("/proc/{pid}")).exists()),
    )
    .await;
    // The warning is written after the reap, and read from stderr after that.
    eventually(Duration::from_secs(15), "the warning about it", || {
        std::future::ready(
            gw.logs()
                .iter()
                .any(|l| l.contains("left behind outside its process group")),
        )
    })
    .await;
}
