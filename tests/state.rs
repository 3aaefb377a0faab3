//! The state store against the real binary: a kill -9 in the middle of a
//! burst of writes, a damaged file, a read-only directory and a full
//! filesystem (tmpfs mounts made by the test), and the history API.

mod support;

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::*;

const WITHIN: Duration = Duration::from_secs(20);

/// `n` exec checks at 50 ms, and the store in `dir` written every 200 ms.
fn toml(dir: &Path, n: usize) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [state]\ndir = \"{}\"\nflush_interval = \"200ms\"\n\
         [defaults]\ninterval = \"50ms\"\nfailure_threshold = 1\n",
        dir.display()
    );
    for i in 0..n {
        text.push_str(&format!(
            "[[checks]]\nname = \"c{i}\"\ntype = \"exec\"\ncommand = [\"true\"]\n"
        ));
    }
    text
}

async fn counter(gw: &Gateway, name: &str) -> u64 {
    let text = get(gw.admin, "/metrics").await.2;
    value(&parse(&text), name, &[]).unwrap_or(0.0) as u64
}

/// Every run the store holds, over every check.
fn stored_runs(dir: &Path, checks: usize) -> u64 {
    let db = healthgate::state::store::open_read_only(dir).unwrap();
    (0..checks)
        .map(|i| {
            db.history(&format!("c{i}"), 0, u64::MAX, 10_000)
                .unwrap()
                .iter()
                .map(|(_, r)| r.runs())
                .sum::<u64>()
        })
        .sum()
}

/// `healthgate history --config path args...`: its output (it must exit 0).
fn history_cli(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .arg("history")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_kill_in_a_burst_of_writes_loses_at_most_the_last_batch() {
    let state = tempfile::tempdir().unwrap();
    let n = 20;
    let mut gw = start_gateway(&toml(state.path(), n)).await;
    eventually(WITHIN, "several batches written", || async {
        counter(&gw, "healthgate_state_runs_written_total").await >= 400
    })
    .await;
    let written = counter(&gw, "healthgate_state_runs_written_total").await;
    gw.signal(Signal::SIGKILL);
    let config = gw.config_path();
    let _dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw);
    // Opens (no repair to make, nothing set aside) with every run written
    // before the last scrape, and maybe a batch more.
    let stored = stored_runs(state.path(), n);
    assert!(stored >= written, "stored {stored} of {written} written");
    // `healthgate history` reads the same, with the gateway stopped...
    let printed = history_cli(&config, &["--json"]);
    let doc: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let runs: u64 = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["hours"].as_array().unwrap())
        .map(|h| h["runs"].as_u64().unwrap())
        .sum();
    assert_eq!(runs, stored);
    // The gateway starts on it again and serves its history (the killed
    // one may hold the file's lock a moment more: the store opens then).
    let gw = start_gateway(&toml(state.path(), n)).await;
    let history = || async {
        let (status, _, body) = get(gw.admin, "/api/checks/c0/history").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    eventually(WITHIN, "the stored history served", || async {
        history().await.get("storeError").is_none()
    })
    .await;
    let doc = history().await;
    assert!(
        doc["hours"][0]["runs"].as_u64().is_some_and(|r| r > 0),
        "{doc} {} {:?}",
        history_cli(&config, &["--check", "c0"]),
        gw.logs()
            .iter()
            .filter(|l| l.contains("state"))
            .collect::<Vec<_>>()
    );
    assert!(
        !gw.logs().iter().any(|l| l.contains("set aside")),
        "{:?}",
        gw.logs()
    );
    // ... and beside the running one.
    let printed = history_cli(&config, &["--check", "c0"]);
    assert!(printed.starts_with("c0  "), "{printed}");
    let aside = std::fs::read_dir(state.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
        .count();
    assert_eq!(aside, 0);
}

#[tokio::test]
async fn a_damaged_store_is_set_aside_with_a_clear_message() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("healthgate.redb"), vec![0xa5; 256 * 1024]).unwrap();
    let gw = start_gateway(&toml(state.path(), 1)).await;
    assert!(
        gw.logs()
            .iter()
            .any(|l| l.contains("set aside as") && l.contains("healthgate.redb.damaged-")),
        "{:?}",
        gw.logs()
    );
    eventually(WITHIN, "runs written to the new store", || async {
        counter(&gw, "healthgate_state_runs_written_total").await > 0
    })
    .await;
    assert_eq!(get(gw.addr, "/readyz").await.0, 200);
}

/// A tmpfs of `size` at a new directory, read-only if asked; `None` (and a
/// printed skip) where mounts are not allowed.
struct Mount(tempfile::TempDir);

impl Mount {
    fn new(size: &str, read_only: bool) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut options = format!("size={size}");
        if read_only {
            options.push_str(",ro");
        }
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
            return None;
        }
        Some(Self(dir))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazily: the killed gateway may not have let go of it yet.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
async fn a_read_only_or_full_store_is_counted_and_the_gateway_serves() {
    for (size, read_only) in [("1m", true), ("64k", false)] {
        let Some(mount) = Mount::new(size, read_only) else {
            return;
        };
        let gw = start_gateway(&toml(mount.0.path(), 50)).await;
        eventually(WITHIN, "write errors counted", || async {
            counter(&gw, "healthgate_state_write_errors_total").await >= 2
        })
        .await;
        assert_eq!(
            get(gw.addr, "/readyz").await.0,
            200,
            "{size} ro={read_only}"
        );
        let (status, _, _) = get(gw.admin, "/api/checks/c0/history").await;
        assert_eq!(status, 200, "history from memory still answers");
        drop(gw);
    }
}

/// A check that runs once (at start): its history holds that one run,
/// whether it is still waiting for a batch or written.
#[tokio::test]
async fn history_counts_each_run_once() {
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [state]\ndir = \"{}\"\nflush_interval = \"300ms\"\n\
         [[checks]]\nname = \"yearly\"\ntype = \"exec\"\ncommand = [\"true\"]\nschedule = \"0 0 1 1 *\"\n",
        state.path().display()
    );
    let gw = start_gateway(&config).await;
    let runs = || async {
        let (_, _, body) = get(gw.admin, "/api/checks/yearly/history?limit=1").await;
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        doc["hours"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["runs"].as_u64().unwrap())
            .sum::<u64>()
    };
    eventually(WITHIN, "the run in the history", || async {
        runs().await == 1
    })
    .await;
    eventually(WITHIN, "written", || async {
        counter(&gw, "healthgate_state_runs_written_total").await == 1
    })
    .await;
    assert_eq!(runs().await, 1, "once, not once waiting and once written");
    // Uptime: the share of runs that passed, and of time each verdict was 200.
    eventually(WITHIN, "uptime counted", || async {
        let (_, _, body) = get(gw.admin, "/api/checks").await;
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        doc["checks"][0]["uptime"]["1h"] == 1.0
            && doc["uptime"]["readiness"]["24h"]
                .as_f64()
                .is_some_and(|u| (0.0..=1.0).contains(&u))
    })
    .await;
    // The admin listener's /health carries it too; the load balancer's does not.
    let (_, _, body) = get(gw.admin, "/health").await;
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        health["checks"]["yearly:exec"][0]["uptime"]["1h"], 1.0,
        "{health}"
    );
    assert!(health["uptime"]["liveness"]["24h"].is_number(), "{health}");
    assert!(gw.health().await.get("uptime").is_none());
    let (_, headers, badge) = get(gw.admin, "/api/badges/yearly.svg?uptime=24h").await;
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert!(badge.contains("yearly 24h: 100.00%"), "{badge}");
    let (status, _, body) = get(gw.admin, "/api/checks/yearly/history?since=500d").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(get(gw.admin, "/api/checks/nope/history").await.0, 404);
}
