//! Hot reload through the real binary, real files and the real watcher. Each
//! test drives a running `healthgate run` through its HTTP endpoints.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use healthgate::config::{CheckConfig, TypeSection};
use healthgate::probe::exec::ExecConfig;
use http::StatusCode;
use nix::sys::signal::Signal;
use support::*;

const WITHIN: Duration = Duration::from_secs(15);

/// A config with `[reload]` settings and one exec check per name.
fn toml(reload: &str, names: &[&str]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[reload]\n{reload}\n[defaults]\ninterval = \"100ms\"\nfailure_threshold = 1\n"
    );
    let checks: Vec<CheckConfig> = names
        .iter()
        .map(|name| CheckConfig::new(name, TypeSection::Exec(ExecConfig::argv(["true"]))).unwrap())
        .collect();
    text.push_str(&checks_toml(&checks));
    text
}

async fn check_names(gw: &Gateway) -> Vec<String> {
    let doc = gw.health().await;
    let mut names: Vec<String> = doc["checks"].as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

async fn applied(gw: &Gateway) -> u64 {
    gw.health().await["config"]["reloadsApplied"]
        .as_u64()
        .unwrap()
}

/// Waits until the gateway runs exactly `names` (as `name:exec`).
async fn until_checks(gw: &Gateway, names: &[&str]) {
    let mut wanted: Vec<String> = names.iter().map(|n| format!("{n}:exec")).collect();
    wanted.sort();
    eventually(WITHIN, &format!("checks {wanted:?}"), || {
        let wanted = wanted.clone();
        async move { check_names(gw).await == wanted }
    })
    .await;
}

fn write_in_place(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn an_in_place_write_is_applied() {
    let gw = start_gateway(&toml("", &["a"])).await;
    until_checks(&gw, &["a"]).await;
    write_in_place(&gw.config_path(), &toml("", &["a", "b"]));
    until_checks(&gw, &["a", "b"]).await;
    assert_eq!(applied(&gw).await, 1);
    let last = &gw.health().await["config"]["lastReload"];
    assert_eq!(last["successful"], true);
    assert_eq!(
        last["output"],
        "applied: 1 added, 0 removed, 0 changed, 1 unchanged"
    );
}

#[tokio::test]
async fn an_editor_style_rename_save_is_applied() {
    let gw = start_gateway(&toml("", &["a"])).await;
    until_checks(&gw, &["a"]).await;
    for (round, names) in [["a", "b"], ["c", "d"]].iter().enumerate() {
        let tmp = gw.dir.path().join(format!(".healthgate.toml.swp{round}"));
        std::fs::write(&tmp, toml("", names)).unwrap();
        std::fs::rename(&tmp, gw.config_path()).unwrap();
        until_checks(&gw, names).await;
    }
    assert_eq!(applied(&gw).await, 2);
}

/// The layout kubelet makes for a ConfigMap volume, and its atomic `..data` swap.
mod configmap {
    use super::*;
    use std::os::unix::fs::symlink;

    fn publish(dir: &Path, stamp: &str, text: &str) {
        let data = dir.join(stamp);
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("healthgate.toml"), text).unwrap();
        let tmp = dir.join("..data_tmp");
        symlink(stamp, &tmp).unwrap();
        // rename(2) replaces ..data atomically, as kubelet's AtomicWriter does.
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
    }

    #[tokio::test]
    async fn the_data_symlink_swap_is_applied_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = "..2026_11_22_10_00_00.123";
        publish(dir.path(), first, &toml("", &["a"]));
        symlink("..data/healthgate.toml", dir.path().join("healthgate.toml")).unwrap();
        let path = dir.path().join("healthgate.toml");
        let gw = start_gateway_at(dir, &path).await;
        until_checks(&gw, &["a"]).await;
        let mut previous = first.to_owned();
        // More than one swap: watching the file itself breaks after the first.
        for (round, names) in [vec!["a", "b"], vec!["c"], vec!["c", "d", "e"]]
            .into_iter()
            .enumerate()
        {
            let stamp = format!("..2026_11_22_10_00_0{}.456", round + 1);
            publish(gw.dir.path(), &stamp, &toml("", &names));
            std::fs::remove_dir_all(gw.dir.path().join(&previous)).unwrap();
            previous = stamp;
            until_checks(&gw, &names).await;
        }
        assert_eq!(applied(&gw).await, 3);
    }
}

#[tokio::test]
async fn a_burst_of_writes_applies_once_with_the_last_content() {
    let gw = start_gateway(&toml("", &["a"])).await;
    until_checks(&gw, &["a"]).await;
    let names: Vec<String> = (0..20).map(|i| format!("burst-{i}")).collect();
    for name in &names {
        write_in_place(&gw.config_path(), &toml("", &[name]));
        tokio::time::sleep(Duration::from_millis(5)).await; // 20 writes in ~100 ms
    }
    until_checks(&gw, &["burst-19"]).await;
    // One more, distinct write: had the burst applied more than once, this would not be the second.
    write_in_place(&gw.config_path(), &toml("", &["after"]));
    until_checks(&gw, &["after"]).await;
    assert_eq!(applied(&gw).await, 2, "the burst applied more than once");
}

#[tokio::test]
async fn a_touch_or_a_rewrite_of_the_same_content_does_nothing() {
    let gw = start_gateway(&toml("", &["a"])).await;
    until_checks(&gw, &["a"]).await;
    let unchanged = |gw: &Gateway| {
        gw.logs()
            .iter()
            .filter(|l| l.contains("content unchanged"))
            .count()
    };
    let same = std::fs::read_to_string(gw.config_path()).unwrap();
    write_in_place(&gw.config_path(), &same);
    let file = std::fs::File::options()
        .append(true)
        .open(gw.config_path())
        .unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    std::fs::write(gw.dir.path().join("unrelated.txt"), "x").unwrap();
    // The events were seen, the file re-read, and found unchanged...
    eventually(WITHIN, "the re-read", || {
        std::future::ready(unchanged(&gw) >= 1)
    })
    .await;
    // ...so the next real change is the first reload.
    write_in_place(&gw.config_path(), &toml("", &["b"]));
    until_checks(&gw, &["b"]).await;
    assert_eq!(applied(&gw).await, 1, "an unchanged content was reloaded");
}

#[tokio::test]
async fn sighup_reloads_when_nothing_watches() {
    let off = "watch = false\npoll_interval = \"0s\"";
    let gw = start_gateway(&toml(off, &["a"])).await;
    until_checks(&gw, &["a"]).await;
    std::fs::write(gw.config_path(), toml(off, &["b"])).unwrap();
    gw.signal(Signal::SIGHUP);
    until_checks(&gw, &["b"]).await;
    // SIGHUP reloads even unchanged content (a no-op diff), and says so.
    gw.signal(Signal::SIGHUP);
    eventually(WITHIN, "second reload", || async {
        applied(&gw).await == 2
    })
    .await;
    let last = &gw.health().await["config"]["lastReload"];
    assert_eq!(
        last["output"],
        "applied: 0 added, 0 removed, 0 changed, 1 unchanged"
    );
}

#[tokio::test]
async fn the_poll_picks_up_changes_when_watching_is_off() {
    let poll = "watch = false\npoll_interval = \"200ms\"";
    let gw = start_gateway(&toml(poll, &["a"])).await;
    until_checks(&gw, &["a"]).await;
    std::fs::write(gw.config_path(), toml(poll, &["z"])).unwrap();
    until_checks(&gw, &["z"]).await;
}

#[tokio::test]
async fn an_invalid_config_changes_nothing_until_fixed() {
    let target = TestServer::start().await;
    let good = |extra: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[defaults]\ninterval = \"100ms\"\n\
             [[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\n{extra}",
            target.url("/ok")
        )
    };
    let gw = start_gateway(&good("")).await;
    let addr = gw.addr;
    eventually(WITHIN, "ready", || async {
        get(addr, "/readyz").await.0 == StatusCode::OK
    })
    .await;

    // Watch readiness the whole time the broken config is in place.
    let stop = Arc::new(AtomicBool::new(false));
    let not_ok = Arc::new(AtomicUsize::new(0));
    let watcher = tokio::spawn({
        let (stop, not_ok) = (stop.clone(), not_ok.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                if !matches!(
                    request(addr, "GET", "/readyz").await,
                    Ok((StatusCode::OK, _, _))
                ) {
                    not_ok.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let broken = good("timeout = \"5x\"\nintervall = \"1s\"\n");
    std::fs::write(gw.config_path(), &broken).unwrap();
    eventually(WITHIN, "the reload is rejected", || async {
        gw.health().await["config"]["reloadsFailed"].as_u64() == Some(1)
    })
    .await;
    // The load-balancer listener gives the outcome; the problems, which
    // quote the config's keys, only the admin listener.
    let doc = gw.health().await;
    assert_eq!(doc["config"]["lastReload"]["successful"], false);
    assert_eq!(
        doc["config"]["lastReload"]["output"],
        "rejected; the problems are on the admin listener's /health"
    );
    let (_, _, body) = get(gw.admin, "/health").await;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let output = doc["config"]["lastReload"]["output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(doc["config"]["lastReload"]["successful"], false);
    assert!(output.contains("check \"api\": key `timeout`"), "{output}");
    assert!(
        output.contains("key `intervall`: unknown key `intervall`; did you mean `interval`?"),
        "{output}"
    );
    assert!(
        doc["checks"]["api:http"].is_array(),
        "the old config still runs"
    );
    // Logged at error level with the check and key as fields.
    eventually(WITHIN, "error logs", || async {
        gw.logs().iter().any(|l| {
            l.contains("\"level\":\"ERROR\"")
                && l.contains("\"check\":\"api\"")
                && l.contains("\"key\":\"timeout\"")
        })
    })
    .await;
    // `validate` says the same about the same file: one code path.
    let validate = std::process::Command::new(bin())
        .args(["validate", "--config", gw.config_path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(validate.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&validate.stderr);
    for line in stderr.lines().filter(|l| l.trim_start().starts_with("- ")) {
        assert!(
            output.contains(line.trim_start().trim_start_matches("- ")),
            "{line} not in {output}"
        );
    }

    std::fs::write(gw.config_path(), good("timeout = \"2s\"\n")).unwrap();
    eventually(WITHIN, "the fix applies", || async {
        applied(&gw).await == 1
    })
    .await;
    let doc = gw.health().await;
    assert_eq!(doc["config"]["lastReload"]["successful"], true);
    assert_eq!(
        doc["config"]["lastReload"]["output"],
        "applied: 0 added, 0 removed, 1 changed, 0 unchanged"
    );
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    assert_eq!(
        not_ok.load(Ordering::SeqCst),
        0,
        "readiness dropped during the bad config or its fix"
    );
}

#[tokio::test]
async fn unchanged_checks_keep_their_counters_across_a_reload() {
    let target = TestServer::start().await;
    let config = |extra: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[reload]\nwatch = false\npoll_interval = \"0s\"\n\
             [[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"2s\"\nfailure_threshold = 3\n{extra}",
            target.url("/flip")
        )
    };
    let gw = start_gateway(&config("")).await;
    let addr = gw.addr;
    eventually(WITHIN, "ready", || async {
        get(addr, "/readyz").await.0 == StatusCode::OK
    })
    .await;
    target.set_flip(503);
    let api = |doc: serde_json::Value| doc["checks"]["api:http"][0].clone();
    eventually(WITHIN, "two failures", || async {
        api(gw.health().await)["consecutiveFailures"] == 2
    })
    .await;
    // Reload (add a check) between the second and third failure.
    std::fs::write(
        gw.config_path(),
        config("[[checks]]\nname = \"other\"\ntype = \"exec\"\ncommand = [\"true\"]\n"),
    )
    .unwrap();
    gw.signal(Signal::SIGHUP);
    eventually(WITHIN, "reload applied", || async {
        applied(&gw).await == 1
    })
    .await;
    let doc = gw.health().await;
    assert_eq!(
        api(doc.clone())["consecutiveFailures"],
        2,
        "one failure short stays one short: {doc:#}"
    );
    assert_eq!(api(doc)["status"], "pass");
    eventually(WITHIN, "not ready", || async {
        get(addr, "/readyz").await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_eq!(
        target.counters.flip_failures.load(Ordering::SeqCst),
        3,
        "failed at the third failure, not a sixth"
    );
}

#[tokio::test]
async fn a_removed_exec_check_is_stopped_and_its_process_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let slow = format!(
        "[[checks]]\nname = \"slow\"\ntype = \"exec\"\nshell = true\ncommand = [\"echo $$ > {}; exec sleep 300\"]\ntimeout = \"60s\"\ninterval = \"100ms\"\n",
        pid_file.display()
    );
    let gw = start_gateway(&format!("{}{slow}", toml("", &["a"]))).await;
    eventually(WITHIN, "the slow check is running", || async {
        pid_file.exists() && std::fs::read_to_string(&pid_file).unwrap().ends_with('\n')
    })
    .await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    std::fs::write(gw.config_path(), toml("", &["a"])).unwrap();
    until_checks(&gw, &["a"]).await;
    eventually(WITHIN, "the in-flight probe's process is gone", || async {
        !alive(pid)
    })
    .await;
}

#[tokio::test]
async fn a_changed_listen_address_is_served_without_downtime() {
    let gw = start_gateway(&toml("", &["a"])).await;
    let old = gw.addr;
    let text = toml("", &["a"]).replace("127.0.0.1:0", "127.0.0.2:0");
    std::fs::write(gw.config_path(), text).unwrap();
    let new = {
        let mut found = None;
        eventually(WITHIN, "the new listener", || {
            found = gw
                .logs()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["listen"].as_str().map(str::to_owned))
                .find(|a| a.starts_with("127.0.0.2:"));
            std::future::ready(found.is_some())
        })
        .await;
        found.unwrap().parse().unwrap()
    };
    assert_eq!(get(new, "/readyz").await.0, StatusCode::OK);
    eventually(WITHIN, "the old listener closes", || async {
        request(old, "GET", "/readyz").await.is_err()
    })
    .await;
}

#[tokio::test]
async fn fifty_reloads_under_load_cause_no_error_and_no_verdict_change() {
    let target = TestServer::start().await;
    let config = |round: usize| {
        // Alternate: api's definition changes, one check comes, another goes.
        let (timeout, extra) = if round % 2 == 0 {
            ("1s", "even")
        } else {
            ("2s", "odd")
        };
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[reload]\ndebounce = \"20ms\"\n[defaults]\ninterval = \"50ms\"\n\
             [[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\ntimeout = \"{timeout}\"\n\
             [[checks]]\nname = \"{extra}\"\ntype = \"exec\"\ncommand = [\"true\"]\n",
            target.url("/ok")
        )
    };
    let gw = start_gateway(&config(0)).await;
    let addr = gw.addr;
    eventually(WITHIN, "ready", || async {
        get(addr, "/readyz").await.0 == StatusCode::OK
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad, errors) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let hammer = tokio::spawn({
        let (stop, ok, bad, errors) = (stop.clone(), ok.clone(), bad.clone(), errors.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                match request(addr, "GET", "/readyz").await {
                    Ok((StatusCode::OK, _, _)) => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(_) => bad.fetch_add(1, Ordering::SeqCst),
                    Err(_) => errors.fetch_add(1, Ordering::SeqCst),
                };
            }
        }
    });
    for round in 1..=50 {
        write_in_place(&gw.config_path(), &config(round));
        eventually(WITHIN, &format!("reload {round}"), || async {
            applied(&gw).await == round as u64
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    hammer.await.unwrap();
    let (ok, bad, errors) = (
        ok.load(Ordering::SeqCst),
        bad.load(Ordering::SeqCst),
        errors.load(Ordering::SeqCst),
    );
    assert_eq!(
        (bad, errors),
        (0, 0),
        "{ok} ok, {bad} not ready, {errors} connection errors"
    );
    assert!(ok > 100, "the client made only {ok} requests");
    assert_eq!(gw.health().await["config"]["reloadsFailed"], 0);
}

#[tokio::test]
async fn telemetry_changes_are_reported_as_needing_a_restart() {
    let with = |service: &str, names: &[&str]| {
        format!(
            "[telemetry]\nservice_name = \"{service}\"\n{}",
            toml("", names)
        )
    };
    let gw = start_gateway(&with("before", &["a"])).await;
    until_checks(&gw, &["a"]).await;
    std::fs::write(gw.config_path(), with("after", &["a"])).unwrap();
    eventually(WITHIN, "the reload", || async { applied(&gw).await == 1 }).await;
    let output = |doc: serde_json::Value| {
        doc["config"]["lastReload"]["output"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        output(gw.health().await),
        "applied: 0 added, 0 removed, 0 changed, 1 unchanged; telemetry.* changed: needs a restart"
    );
    // Still different from what runs: the next reload says so again.
    std::fs::write(gw.config_path(), with("after", &["a", "b"])).unwrap();
    until_checks(&gw, &["a", "b"]).await;
    assert!(output(gw.health().await).ends_with("; telemetry.* changed: needs a restart"));
    let metrics = get(gw.admin, "/metrics").await.2;
    assert!(
        metrics.contains("service_name=\"before\""),
        "the running resource changed"
    );
}

/// A config file emptied or cut short by a failed write must never remove
/// the failing check that holds readiness down: a file without checks is
/// rejected, and `/readyz` stays 503 throughout.
#[tokio::test]
async fn a_file_emptied_or_cut_short_never_turns_readiness_green() {
    let target = TestServer::start().await;
    target.set_flip(503);
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[defaults]\ninterval = \"100ms\"\nfailure_threshold = 1\n\
         [[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\n",
        target.url("/flip")
    );
    let gw = start_gateway(&text).await;
    let addr = gw.addr;
    eventually(WITHIN, "not ready", || async {
        get(addr, "/readyz").await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let green = Arc::new(AtomicUsize::new(0));
    let watcher = tokio::spawn({
        let (stop, green) = (stop.clone(), green.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                if matches!(
                    request(addr, "GET", "/readyz").await,
                    Ok((StatusCode::OK, _, _))
                ) {
                    green.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let cut = &text[..text.find("[[checks]]").unwrap()];
    for (failed, broken) in [(1, ""), (2, cut), (3, "\n\n")] {
        write_in_place(&gw.config_path(), broken);
        eventually(WITHIN, "the reload is rejected", || async {
            gw.health().await["config"]["reloadsFailed"].as_u64() == Some(failed)
        })
        .await;
        assert!(
            gw.health().await["checks"]["api:http"].is_array(),
            "the check still runs"
        );
    }
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    assert_eq!(green.load(Ordering::SeqCst), 0, "/readyz answered 200");
    assert_eq!(
        get(addr, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// The watch dies with its directory: deleted and made again (a volume
/// remounted, a deploy tool that replaces the folder), the directory is
/// watched again, with polling off.
#[tokio::test]
async fn a_deleted_and_recreated_directory_is_watched_again() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("conf");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("healthgate.toml");
    std::fs::write(&path, toml("poll_interval = \"0s\"", &["a"])).unwrap();
    let gw = start_gateway_at(root, &path).await;
    until_checks(&gw, &["a"]).await;
    for (round, names) in [(1, ["b"]), (2, ["c"])] {
        std::fs::remove_dir_all(&dir).unwrap();
        eventually(WITHIN, "the lost watch is logged", || async {
            gw.logs()
                .iter()
                .filter(|l| l.contains("the config's directory is gone"))
                .count()
                >= round
        })
        .await;
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&path, toml("poll_interval = \"0s\"", &names)).unwrap();
        until_checks(&gw, &names).await;
        assert!(
            gw.logs()
                .iter()
                .any(|l| l.contains("watching the config's directory again"))
        );
    }
    // And an edit after that is seen as before.
    write_in_place(&path, &toml("poll_interval = \"0s\"", &["d"]));
    until_checks(&gw, &["d"]).await;
}

/// A reload is all or nothing: when its new listener address cannot be
/// bound, its checks are not applied either.
#[tokio::test]
async fn a_reload_whose_listener_cannot_bind_applies_none_of_its_checks() {
    let gw = start_gateway(&toml("", &["a"])).await;
    until_checks(&gw, &["a"]).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let text = toml("", &["a", "b"]).replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
        1,
    );
    std::fs::write(gw.config_path(), text).unwrap();
    eventually(WITHIN, "the reload is rejected", || async {
        gw.health().await["config"]["reloadsFailed"].as_u64() == Some(1)
    })
    .await;
    assert_eq!(check_names(&gw).await, vec!["a:exec".to_owned()]);
    assert_eq!(applied(&gw).await, 0);
    // Freed, the same file applies whole.
    drop(taken);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.child.id().unwrap() as i32),
        Signal::SIGHUP,
    )
    .unwrap();
    // Asked of the admin listener: the load-balancer one has moved to `port`.
    eventually(WITHIN, "both checks", || async {
        let (_, _, body) = get(gw.admin, "/health").await;
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        doc["checks"]["b:exec"].is_array()
    })
    .await;
    assert_eq!(
        get(format!("127.0.0.1:{port}").parse().unwrap(), "/livez")
            .await
            .0,
        StatusCode::OK
    );
}

#[test]
fn the_typed_checks_write_the_file_a_person_would() {
    let text = toml("", &["a", "b"]);
    let config = config(&text);
    let names: Vec<&str> = config.checks.iter().map(|c| &*c.name).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(config.checks.iter().all(|c| c.kind == "exec"), "{text}");
    assert_eq!(text.matches("[[checks]]").count(), 2, "{text}");
    assert!(text.contains("name = \"b\"\n"), "{text}");
}

/// A check's description, tags and weight change without restarting it
/// (its state and its runs are kept); `enabled = false` stops it and lists
/// it as disabled, and `enabled = true` starts it again.
#[tokio::test]
async fn describing_a_check_keeps_it_and_disabling_it_stops_it() {
    let base = toml("", &["a", "b"]);
    let gw = start_gateway(&base).await;
    until_checks(&gw, &["a", "b"]).await;
    let described = base.replacen(
        "name = \"a\"\n",
        "name = \"a\"\ndescription = \"the orders API\"\ntags = [\"team=orders\", \"api\"]\nweight = 3\n",
        1,
    );
    assert_ne!(described, base);
    write_in_place(&gw.config_path(), &described);
    eventually(WITHIN, "the description applied", || async {
        applied(&gw).await == 1
    })
    .await;
    assert_eq!(
        gw.health().await["config"]["lastReload"]["output"],
        "applied: 0 added, 0 removed, 0 changed, 2 unchanged"
    );
    let (status, _, body) = get(gw.admin, "/api/checks?tag=team%3Dorders").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let listed = doc["checks"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{doc}");
    assert_eq!(listed[0]["name"], "a");
    assert_eq!(listed[0]["description"], "the orders API");
    assert_eq!(listed[0]["weight"], 3.0);
    assert_eq!(doc["score"]["band"], "healthy", "{doc}");

    let disabled = described.replacen("name = \"b\"\n", "name = \"b\"\nenabled = false\n", 1);
    assert_ne!(disabled, described);
    write_in_place(&gw.config_path(), &disabled);
    until_checks(&gw, &["a"]).await;
    let (_, _, body) = get(gw.admin, "/api/checks/b").await;
    let b: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (b["status"].as_str(), b["enabled"].as_bool()),
        (Some("disabled"), Some(false))
    );
    let (status, _) = admin(gw.admin, "POST", "/api/checks/b/run", None, "").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a disabled check does not run"
    );

    write_in_place(&gw.config_path(), &described);
    until_checks(&gw, &["a", "b"]).await;
}
