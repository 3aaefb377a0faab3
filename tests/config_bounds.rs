//! Any config that `validate` accepts can be started, run for a while and
//! hot-reloaded to any other accepted config without a panic: every
//! duration and count key is drawn from values around its bounds and far
//! past them (`u64::MAX` seconds, nanoseconds, years), and what loads is
//! run by the real engine, reloader and drain timers under tokio's paused clock.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use healthgate::config::{Check, Config, load_str};
use healthgate::probe::{BoxFuture, Category, Outcome, Probe};
use healthgate::reload::Reloader;
use healthgate::scheduler::Engine;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use tokio::time::Instant;

/// Panics seen anywhere in this process (tasks included: tokio catches
/// them, the hook still runs).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Durations around every bound a key has, and far past them.
/// Mostly one of `ordinary` (values the key's own rules accept, so that a
/// good share of configs load and run), else one of the edges.
fn duration(ordinary: &'static [&'static str]) -> impl Strategy<Value = String> {
    let ordinary = prop::sample::select(ordinary);
    let edges = prop_oneof![
        Just("0s".to_owned()),
        Just("1ns".to_owned()),
        Just("1d".to_owned()),
        Just("1d 1s".to_owned()),
        Just("365d".to_owned()),
        Just("366d".to_owned()),
        Just("3650d".to_owned()),
        Just("3651d".to_owned()),
        Just("18446744073709551615s".to_owned()),
        Just("18446744073709551615ns".to_owned()),
        Just("584542046090y".to_owned()),
        (
            any::<u64>(),
            prop::sample::select(vec!["ns", "ms", "s", "m", "h", "d", "y"])
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        (
            0u64..100_000,
            prop::sample::select(vec!["ms", "s", "m", "h", "d"])
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
    ];
    prop_oneof![24 => ordinary.prop_map(str::to_owned), 1 => edges]
}

/// Counts around every bound, and past them.
/// Mostly in `ordinary`, else one of the edges.
fn count(ordinary: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = u64> {
    let edges = prop_oneof![
        Just(0u64),
        Just(64),
        Just(65),
        Just(10_000),
        Just(10_001),
        Just(u64::from(u32::MAX)),
        any::<u32>().prop_map(u64::from),
    ];
    prop_oneof![24 => ordinary, 1 => edges]
}

const SHORT: &[&str] = &["0s", "1ms", "100ms", "1s", "5s"];
const LONG: &[&str] = &["10s", "20s", "1m", "1h"];
const ANY: &[&str] = &["1ms", "100ms", "1s", "10s", "1m", "1h", "1d"];

prop_compose! {
    fn config_text()(server in server_text(), checks in checks_text()) -> String {
        format!("{server}{checks}")
    }
}

prop_compose! {
    fn server_text()(
        shutdown_timeout in duration(SHORT),
        drain_min in duration(SHORT),
        drain_max in duration(LONG),
        observed_probes in count(0..=3),
        poll_interval in duration(&["0s", "1s", "30s", "1h"]),
        debounce in duration(SHORT),
    ) -> String {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
shutdown_timeout = "{shutdown_timeout}"
[server.drain]
min = "{drain_min}"
max = "{drain_max}"
observed_probes = {observed_probes}
[reload]
poll_interval = "{poll_interval}"
debounce = "{debounce}"
"#
        )
    }
}

prop_compose! {
    fn checks_text()(
        interval in duration(ANY),
        timeout in duration(ANY),
        initial_delay in duration(SHORT),
        start_period in duration(ANY),
        start_interval in duration(ANY),
        failing_interval in duration(ANY),
        success_threshold in count(1..=5),
        failure_threshold in count(1..=5),
        check_interval in duration(ANY),
        check_start_period in duration(ANY),
        failures in count(1..=3),
        of in count(3..=6),
        check_success_threshold in count(1..=5),
        max_duration in duration(&["1ms"]),
        ttl in duration(ANY),
    ) -> String {
        format!(
            r#"
[defaults]
interval = "{interval}"
timeout = "{timeout}"
initial_delay = "{initial_delay}"
start_period = "{start_period}"
start_interval = "{start_interval}"
failing_interval = "{failing_interval}"
success_threshold = {success_threshold}
failure_threshold = {failure_threshold}
[[checks]]
name = "target"
type = "tcp"
address = "127.0.0.1:9"
interval = "{check_interval}"
start_period = "{check_start_period}"
failure_window = {{ failures = {failures}, of = {of} }}
success_threshold = {check_success_threshold}
[checks.expect]
max_duration = "{max_duration}"
[[checks]]
name = "reporter"
type = "push"
ttl = "{ttl}"
"#
        )
    }
}

/// Passes and fails by turns, so thresholds, windows and the start period all move.
#[derive(Default)]
struct Flapping(AtomicBool);

impl Probe for Flapping {
    fn check(&self, _deadline: Instant) -> BoxFuture<'_, Outcome> {
        let pass = !self.0.fetch_xor(true, Ordering::SeqCst);
        Box::pin(async move {
            if pass {
                Outcome::pass("ok")
            } else {
                Outcome::fail(Category::Connect, "refused")
            }
        })
    }
}

fn engine(checks: Vec<Check>) -> Engine {
    Engine::start_with(
        checks,
        Box::new(|_: &Check, _: &healthgate::probe::ProbeSpec| {
            Arc::new(Flapping::default()) as Arc<dyn Probe>
        }),
        Arc::new(()),
    )
}

/// Lets virtual time pass in steps from a millisecond to ten years.
async fn pass_time() {
    for step in [
        1,
        1_000,
        60_000,
        3_600_000,
        400 * 86_400_000,
        3_650 * 86_400_000u64,
    ] {
        tokio::time::advance(Duration::from_millis(step)).await;
        tokio::task::yield_now().await;
    }
}

/// Starts `a`, runs it, reloads to `b` (when it loads), runs that, and drains.
async fn start_and_reload(dir: &Path, a: (String, Config), b: Option<Config>) {
    let (text, _) = a;
    let path = dir.join("healthgate.toml");
    std::fs::write(&path, &text).unwrap();
    let loaded = healthgate::config::load(&path);
    let mut config = loaded.config.expect("loads from the file as from the text");
    let mut reloader = Reloader::new(&path, loaded.content, &config.reload);
    let mut engine = engine(std::mem::take(&mut config.checks));
    pass_time().await;
    if let Some(mut b) = b {
        engine
            .apply(std::mem::take(&mut b.checks), |_| {
                healthgate::health::ReloadRecord {
                    at: std::time::SystemTime::now(),
                    successful: true,
                    message: String::new(),
                }
            })
            .await;
        reloader.update(&b.reload);
        pass_time().await;
        config = b;
    }
    // The drain's and the shutdown's timers, as `run` sets them.
    let drain = &config.server.drain;
    let _ = tokio::time::timeout(drain.max.get(), tokio::time::sleep(drain.min.get())).await;
    let _ =
        tokio::time::timeout(config.server.shutdown_timeout, std::future::pending::<()>()).await;
    drop(engine);
}

fn load(text: &str) -> Option<Config> {
    load_str(Path::new("healthgate.toml"), text).ok()
}

/// Runs `body` on a thread with room for proptest's deep strategy trees
/// (a debug build overflows the test thread's 2 MB).
fn on_big_stack(body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(body)
        .unwrap()
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

#[test]
fn any_config_validate_accepts_starts_and_reloads_without_a_panic() {
    count_panics();
    on_big_stack(|| {
        let config = ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let mut runner = proptest::test_runner::TestRunner::new(config);
        let result = runner.run(&(config_text(), config_text()), |(a, b)| {
            let Some(first) = load(&a) else {
                return Ok(());
            };
            let second = load(&b);
            let dir = tempfile::tempdir().unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            let before = PANICS.load(Ordering::SeqCst);
            runtime.block_on(start_and_reload(dir.path(), (a.clone(), first), second));
            drop(runtime);
            prop_assert_eq!(
                PANICS.load(Ordering::SeqCst),
                before,
                "a panic with\n{}\nthen\n{}",
                a,
                b
            );
            Ok(())
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
    });
}

/// The property test above is only as good as its share of configs that
/// load (and run) and that are rejected (past a bound): both must be common.
#[test]
fn the_generated_configs_are_both_accepted_and_rejected() {
    on_big_stack(|| {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = config_text();
        let total = 400;
        let loaded = (0..total)
            .filter(|_| load(&strategy.new_tree(&mut runner).unwrap().current()).is_some())
            .count();
        assert!(loaded >= total / 10, "{loaded} of {total} loaded");
        assert!(loaded <= total * 19 / 20, "{loaded} of {total} loaded");
    });
}

/// The values the issue quoted, each through `validate`: rejected with the key named.
#[test]
fn durations_that_overflow_the_clock_are_rejected_with_their_key() {
    let base = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n";
    let check = "[[checks]]\nname = \"a\"\ntype = \"tcp\"\naddress = \"127.0.0.1:9\"\n";
    for (section, key, value, expect) in [
        (
            "defaults",
            "start_period",
            "18446744073709551615s",
            "defaults.start_period",
        ),
        ("defaults", "start_period", "366d", "defaults.start_period"),
        (
            "reload",
            "poll_interval",
            "18446744073709551615s",
            "reload.poll_interval",
        ),
        ("reload", "poll_interval", "2d", "reload.poll_interval"),
        ("server.drain", "max", "2h", "server.drain.max"),
        ("server.drain", "min", "3651d", "server.drain.min"),
        (
            "server",
            "shutdown_timeout",
            "1h",
            "server.shutdown_timeout",
        ),
        (
            "defaults",
            "failure_threshold",
            "4294967295",
            "defaults.failure_threshold",
        ),
    ] {
        let value = if value.chars().all(|c| c.is_ascii_digit()) {
            value.to_owned()
        } else {
            format!("\"{value}\"")
        };
        let text = if section == "server" {
            format!("{base}{key} = {value}\n{check}")
        } else {
            format!("{base}[{section}]\n{key} = {value}\n{check}")
        };
        let err = load_str(Path::new("t.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("`{expect}`")),
            "{section}.{key} = {value}: {err}"
        );
    }
    // The same key in a check names the check.
    let text = format!("{base}{check}start_period = \"18446744073709551615s\"\n");
    let err = load_str(Path::new("t.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("check \"a\": key `start_period`"), "{err}");
}
