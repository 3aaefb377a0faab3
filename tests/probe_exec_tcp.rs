//! exec probes with real child processes; tcp probes against real listeners.

mod support;

use std::time::Duration;

use healthgate::probe::Category;
use support::*;

#[tokio::test]
async fn exit_code_expectations() {
    assert!(run_probe("exec", "command = [\"true\"]").await.passed());
    let o = run_probe(
        "exec",
        "command = [\"sh\", \"-c\", \"echo broken >&2; exit 3\"]",
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
async fn output_expectations() {
    let o = run_probe(
        "exec",
        "command = [\"echo\", \"PONG\"]\nexpect.output_contains = \"PONG\"",
    )
    .await;
    assert!(o.passed(), "{o:?}");
    assert_eq!(o.message, "exit code 0: PONG");
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
