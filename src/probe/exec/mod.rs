//! `type = "exec"`: runs a command without a shell (argv), in its own process
//! group. On timeout, or when the run is abandoned, the whole group is killed,
//! grandchildren included; the direct child is always reaped. Output is kept up
//! to a bound and the rest read and discarded, so the command never blocks.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::{Instant, timeout, timeout_at};

use super::{BoxFuture, Category, Outcome, Probe};

mod config;
pub use config::{CommandLine, ExecConfig, ExecExpectSection, ExecSpec, ExitCodes, ExitCodesKind};

/// How long to wait for a killed group's pipes to close and its leader to be reaped.
const REAP_GRACE: Duration = Duration::from_secs(1);

/// Runs a command and judges its exit code and output.
pub struct ExecProbe {
    spec: ExecSpec,
    /// Environment values, blanked out of every message (a command may echo one).
    secrets: Box<[Box<str>]>,
}

impl ExecProbe {
    /// A probe for `spec`.
    pub fn new(spec: ExecSpec) -> Self {
        let secrets = super::secrets(spec.env.iter().map(|(_, v)| v.expose().to_owned()));
        Self { spec, secrets }
    }

    fn program(&self) -> &str {
        self.spec.argv.first().map_or("", String::as_str)
    }

    async fn run(&self, deadline: Instant) -> Outcome {
        let (program, args) = match self.spec.argv.split_first() {
            Some(split) => split,
            None => return Outcome::fail(Category::ExecSpawn, "empty command"),
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v.expose())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.spec.working_dir {
            command.current_dir(dir);
        }
        let mut child = match super::orphans::spawn(&mut command) {
            Ok(child) => child,
            Err(e) => {
                // A chdir failure and a missing program give the same ENOENT:
                // name the directory when it is the one missing.
                let dir = self.spec.working_dir.as_ref().filter(|d| !d.is_dir());
                let message = match dir {
                    Some(dir) => format!(
                        "cannot start `{program}`: working_dir {} is not a directory",
                        dir.display()
                    ),
                    None => format!("cannot start `{program}`: {e}"),
                };
                return Outcome::fail(Category::ExecSpawn, message);
            }
        };
        let mut group = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));
        let max = self.spec.max_output_bytes;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let output = tokio::spawn(async move {
            tokio::join!(read_bounded(stdout, max), read_bounded(stderr, max))
        });
        let status = timeout_at(deadline, child.wait()).await;
        // Whatever happened, nothing the command started outlives the run.
        group.kill();
        let pid = child.id();
        let status = match status {
            Err(_) => {
                let reaped = matches!(timeout(REAP_GRACE, child.wait()).await, Ok(Ok(_)));
                sweep(pid.filter(|_| reaped));
                output.abort();
                return Outcome::fail(
                    Category::ExecTimeout,
                    format!(
                        "`{}` did not finish within the timeout; process group killed",
                        self.program()
                    ),
                );
            }
            Ok(Err(e)) => {
                sweep(None);
                return Outcome::fail(Category::ExecSpawn, format!("waiting for `{program}`: {e}"));
            }
            Ok(Ok(status)) => {
                sweep(pid);
                status
            }
        };
        let (stdout, stderr) = match timeout(REAP_GRACE, output).await {
            Ok(Ok(pair)) => pair,
            _ => (Vec::new(), Vec::new()),
        };
        self.judge(status, &stdout, &stderr)
    }

    fn judge(&self, status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> Outcome {
        let out = String::from_utf8_lossy(stdout);
        let err = String::from_utf8_lossy(stderr);
        let first_line = |s: &str| {
            s.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_owned()
        };
        let said_first = if first_line(&err).is_empty() {
            first_line(&out)
        } else {
            first_line(&err)
        };
        let Some(code) = status.code() else {
            use std::os::unix::process::ExitStatusExt;
            let signal = status.signal().unwrap_or_default();
            return Outcome::fail(Category::ExecExitCode, format!("killed by signal {signal}"));
        };
        let said = |said: String| {
            if said.is_empty() || !self.spec.show_output {
                String::new()
            } else {
                format!(": {said}")
            }
        };
        let mut warning = None;
        match self.spec.exit_codes {
            ExitCodes::Exact(wanted) if code != wanted => {
                return Outcome::fail(
                    Category::ExecExitCode,
                    format!("exit code {code}, expected {wanted}{}", said(said_first)),
                );
            }
            ExitCodes::Exact(_) => {}
            // Plugins report on stdout; stderr only when stdout is silent.
            ExitCodes::Nagios => {
                let plugin = match first_line(&out) {
                    line if line.is_empty() => first_line(&err),
                    line => line,
                };
                match code {
                    0 => {}
                    1 => warning = Some(format!("WARNING (exit 1){}", said(plugin))),
                    2 => {
                        return Outcome::fail(
                            Category::ExecExitCode,
                            format!("CRITICAL (exit 2){}", said(plugin)),
                        );
                    }
                    _ => {
                        return Outcome::fail(
                            Category::ExecExitCode,
                            format!("UNKNOWN (exit {code}){}", said(plugin)),
                        );
                    }
                }
            }
        }
        let combined = format!("{out}{err}");
        if let Some(needle) = &self.spec.output_contains {
            if !combined.contains(needle.as_str()) {
                return Outcome::fail(
                    Category::ExecOutputMismatch,
                    format!("output does not contain {needle:?}"),
                );
            }
        }
        if let Some(re) = &self.spec.output_regex {
            if !re.is_match(&combined) {
                return Outcome::fail(
                    Category::ExecOutputMismatch,
                    format!("output does not match /{re}/"),
                );
            }
        }
        if let Some(message) = warning {
            return Outcome::warn(Category::ExecWarning, message);
        }
        let out = if self.spec.show_output {
            first_line(&out)
        } else {
            String::new()
        };
        Outcome::pass(if out.is_empty() {
            format!("exit code {code}")
        } else {
            format!("exit code {code}: {out}")
        })
    }
}

impl Probe for ExecProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut outcome = self.run(deadline).await;
            outcome.message = super::scrub(outcome.message, &self.secrets);
            outcome
        })
    }
}

/// The run's child (`pid`, when it was reaped) is done: kills and reaps
/// what it left behind outside its group, and looks again shortly for what
/// was still dying.
fn sweep(pid: Option<u32>) {
    if super::orphans::finished(pid) > 0 {
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            super::orphans::finished(None);
        });
    }
}

/// Kills the command's whole process group, at the latest when dropped (a run
/// abandoned mid-way, e.g. its check removed).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (the group is already gone) is the normal case.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a stream to its end, keeping the first `max` bytes.
async fn read_bounded(stream: Option<impl AsyncRead + Unpin>, max: usize) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}
