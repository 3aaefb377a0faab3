//! Scheduling, thresholds and verdicts on tokio's paused clock: no wall-clock
//! sleeps. The probes are scripted through the `Probe` trait so the test
//! controls each result and sees each run's time.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthgate::health::{Published, Snapshot, Status};
use healthgate::probe::{BoxFuture, Category, Outcome, Probe};
use healthgate::scheduler::Engine;
use support::*;
use tokio::time::Instant;

/// Passes while `healthy` is set; records when each run started.
#[derive(Default)]
struct Scripted {
    healthy: AtomicBool,
    runs: Mutex<Vec<Instant>>,
    run_for: Duration,
}

impl Scripted {
    fn new(healthy: bool) -> Arc<Self> {
        Arc::new(Self {
            healthy: AtomicBool::new(healthy),
            ..Default::default()
        })
    }
    fn set(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }
    fn runs(&self) -> Vec<Instant> {
        self.runs.lock().unwrap().clone()
    }
}

impl Probe for Scripted {
    fn check(&self, _deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            self.runs.lock().unwrap().push(Instant::now());
            tokio::time::sleep(self.run_for).await;
            if self.healthy.load(Ordering::SeqCst) {
                Outcome::pass("ok")
            } else {
                Outcome::fail(Category::StatusMismatch, "status 503, expected 2xx")
            }
        })
    }
}

fn engine(toml: &str, probes: &[Arc<Scripted>]) -> Engine {
    let config = config(toml);
    assert_eq!(config.checks.len(), probes.len());
    let by_name: HashMap<String, Arc<dyn Probe>> = config
        .checks
        .iter()
        .zip(probes)
        .map(|(c, p)| (c.name.to_string(), p.clone() as Arc<dyn Probe>))
        .collect();
    Engine::start_with(
        config.checks,
        Box::new(move |check: &Check, _: &healthgate::probe::ProbeSpec| {
            by_name[&*check.name].clone()
        }),
        Arc::new(()),
    )
}

/// Lets virtual time pass until `pred` holds on the published snapshot.
async fn until(
    published: &Published,
    within: Duration,
    pred: impl Fn(&Snapshot) -> bool,
) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if pred(&published.load()) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached within {within:?} (virtual)"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn view(s: &Snapshot, name: &str) -> Arc<healthgate::health::CheckView> {
    s.checks.iter().find(|c| &*c.name == name).unwrap().clone()
}

fn status(s: &Snapshot, name: &str) -> Status {
    s.checks.iter().find(|c| &*c.name == name).unwrap().status
}

/// `prefix`, then `n` tcp checks named c0, c1, ...
fn tcp_checks(prefix: &str, n: usize) -> String {
    let mut toml = prefix.to_owned();
    for i in 0..n {
        toml.push_str(&format!(
            "[[checks]]\nname = \"c{i}\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n"
        ));
    }
    toml
}

const ONE: &str = r#"
[defaults]
interval = "1s"
success_threshold = 2
failure_threshold = 3
[[checks]]
name = "api"
type = "tcp"
address = "127.0.0.1:1"
"#;

#[tokio::test(start_paused = true)]
async fn first_run_after_initial_delay_plus_jitter_then_every_interval() {
    let n = 40;
    let toml = tcp_checks(
        "[defaults]\ninterval = \"10s\"\ninitial_delay = \"3s\"\n",
        n,
    );
    let probes: Vec<_> = (0..n).map(|_| Scripted::new(true)).collect();
    let start = Instant::now();
    let _engine = engine(&toml, &probes);
    tokio::time::sleep(Duration::from_secs(35)).await;
    let mut firsts = Vec::new();
    for p in &probes {
        let runs = p.runs();
        let first = runs[0] - start;
        assert!(
            first >= Duration::from_secs(3) && first < Duration::from_secs(13),
            "first run at {first:?}"
        );
        for pair in runs.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                Duration::from_secs(10),
                "runs must be one interval apart"
            );
        }
        firsts.push(first);
    }
    // Jitter spreads the fleet: 40 checks do not start in lockstep. At 4
    // probes a second they share a grid of 1 s steps (a tenth of the interval).
    firsts.sort();
    firsts.dedup();
    assert!(
        firsts.iter().all(|f| f.subsec_nanos() == 0),
        "off the 1 s grid: {firsts:?}"
    );
    assert!(
        firsts.len() >= 7,
        "only {} distinct first-run times",
        firsts.len()
    );
}

#[tokio::test(start_paused = true)]
async fn thresholds_and_hysteresis_through_the_engine() {
    let api = Scripted::new(true);
    let engine = engine(ONE, std::slice::from_ref(&api));
    let published = engine.published();
    assert_eq!(status(&published.load(), "api"), Status::Starting);
    assert!(
        !published.load().readiness.ok,
        "a starting critical check is not ready"
    );
    until(&published, Duration::from_secs(5), |s| s.readiness.ok).await;
    assert_eq!(api.runs().len(), 2, "pass needs success_threshold = 2 runs");

    api.set(false);
    let runs_before = api.runs().len();
    until(&published, Duration::from_secs(10), |s| !s.readiness.ok).await;
    assert_eq!(
        api.runs().len() - runs_before,
        3,
        "fail needs failure_threshold = 3 runs"
    );
    let snap = published.load();
    assert_eq!(status(&snap, "api"), Status::Fail);
    assert_eq!(&snap.readiness.reason[..], b"not ready: api fail");

    // One success between failures does not bring it back; two do.
    api.set(true);
    let runs_before = api.runs().len();
    until(&published, Duration::from_secs(10), |s| s.readiness.ok).await;
    assert_eq!(api.runs().len() - runs_before, 2);
}

#[tokio::test(start_paused = true)]
async fn a_flapping_target_inside_the_thresholds_does_not_flip_the_verdict() {
    let api = Scripted::new(true);
    let engine = engine(ONE, std::slice::from_ref(&api));
    let published = engine.published();
    until(&published, Duration::from_secs(5), |s| s.readiness.ok).await;
    // Fail twice, pass once, repeatedly: never three failures in a row.
    for _ in 0..5 {
        for healthy in [false, false, true] {
            api.set(healthy);
            let n = api.runs().len();
            while api.runs().len() == n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(
                published.load().readiness.ok,
                "flipped inside the thresholds"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn start_period_forgives_early_failures() {
    let toml = r#"
[[checks]]
name = "slow"
type = "tcp"
address = "127.0.0.1:1"
interval = "1s"
start_period = "10s"
failure_threshold = 1
"#;
    let slow = Scripted::new(false);
    let engine = engine(toml, std::slice::from_ref(&slow));
    let published = engine.published();
    let start = Instant::now();
    let failed_at = until(&published, Duration::from_secs(20), |s| {
        status(s, "slow") == Status::Fail
    })
    .await;
    assert!(
        failed_at - start >= Duration::from_secs(10),
        "failed inside the start period"
    );
    assert!(
        slow.runs()
            .iter()
            .filter(|t| **t - start < Duration::from_secs(10))
            .count()
            >= 8
    );
}

#[tokio::test(start_paused = true)]
async fn startup_latch_holds_back_liveness_and_readiness() {
    let toml = r#"
[defaults]
interval = "1s"
failure_threshold = 1
[[checks]]
name = "warmup"
type = "tcp"
address = "127.0.0.1:1"
groups = ["startup"]
[[checks]]
name = "live"
type = "tcp"
address = "127.0.0.1:1"
groups = ["liveness"]
[[checks]]
name = "ready"
type = "tcp"
address = "127.0.0.1:1"
groups = ["readiness"]
"#;
    let (warmup, live, ready) = (
        Scripted::new(false),
        Scripted::new(false),
        Scripted::new(true),
    );
    let engine = engine(toml, &[warmup.clone(), live.clone(), ready.clone()]);
    let published = engine.published();
    // Before startup: liveness answers 200 although its check fails; not ready; not started.
    until(&published, Duration::from_secs(5), |s| {
        status(s, "live") == Status::Fail && status(s, "ready") == Status::Pass
    })
    .await;
    let snap = published.load();
    assert!(!snap.startup.ok && snap.liveness.ok && !snap.readiness.ok);
    assert!(String::from_utf8_lossy(&snap.readiness.reason).contains("not started"));

    warmup.set(true);
    until(&published, Duration::from_secs(5), |s| s.startup.ok).await;
    let snap = published.load();
    assert!(snap.readiness.ok, "ready once started");
    assert!(!snap.liveness.ok, "liveness is judged once started");

    // Latched: the startup check failing later changes nothing.
    warmup.set(false);
    until(&published, Duration::from_secs(5), |s| {
        status(s, "warmup") == Status::Fail
    })
    .await;
    assert!(published.load().startup.ok);
    assert!(published.load().readiness.ok);
}

#[tokio::test(start_paused = true)]
async fn no_startup_checks_means_started_from_the_beginning() {
    let engine = engine(ONE, &[Scripted::new(true)]);
    let snap = engine.published().load_full();
    assert!(snap.started && snap.startup.ok && snap.liveness.ok);
}

#[tokio::test(start_paused = true)]
async fn a_failing_non_critical_check_warns_without_failing_readiness() {
    let toml = r#"
[defaults]
interval = "1s"
failure_threshold = 1
[[checks]]
name = "core"
type = "tcp"
address = "127.0.0.1:1"
[[checks]]
name = "extra"
type = "tcp"
address = "127.0.0.1:1"
critical = false
"#;
    let (core, extra) = (Scripted::new(true), Scripted::new(false));
    let engine = engine(toml, &[core.clone(), extra.clone()]);
    let published = engine.published();
    until(&published, Duration::from_secs(5), |s| {
        status(s, "extra") == Status::Warn && status(s, "core") == Status::Pass
    })
    .await;
    let snap = published.load();
    assert!(snap.readiness.ok);
    assert_eq!(snap.overall, Status::Warn);
    core.set(false);
    until(&published, Duration::from_secs(5), |s| !s.readiness.ok).await;
    assert_eq!(published.load().overall, Status::Fail);
}

#[tokio::test(start_paused = true)]
async fn runs_of_one_check_never_overlap() {
    let slow = Arc::new(Scripted {
        healthy: AtomicBool::new(true),
        runs: Mutex::new(Vec::new()),
        run_for: Duration::from_millis(2500),
    });
    let _engine = engine(ONE, std::slice::from_ref(&slow));
    tokio::time::sleep(Duration::from_secs(20)).await;
    let runs = slow.runs();
    assert!(runs.len() >= 5, "{}", runs.len());
    for pair in runs.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(2500),
            "overlapping runs {gap:?} apart"
        );
        assert_eq!(
            gap.as_millis() % 1000,
            0,
            "the cadence stays on interval ticks: {gap:?}"
        );
    }
}

mod apply {
    use super::*;

    fn no_record(_: &healthgate::config::Diff) -> healthgate::health::ReloadRecord {
        healthgate::health::ReloadRecord {
            at: std::time::SystemTime::now(),
            successful: true,
            message: String::new(),
        }
    }

    /// An engine whose probes come from `probes` by check name, for any config applied later.
    fn engine_over(toml: &str, probes: &[(&str, Arc<Scripted>)]) -> Engine {
        let by_name: HashMap<String, Arc<dyn Probe>> = probes
            .iter()
            .map(|(n, p)| (n.to_string(), p.clone() as Arc<dyn Probe>))
            .collect();
        Engine::start_with(
            config(toml).checks,
            Box::new(move |check: &Check, _: &healthgate::probe::ProbeSpec| {
                by_name[&*check.name].clone()
            }),
            Arc::new(()),
        )
    }

    const API: &str = "[[checks]]\nname = \"api\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"1s\"\nfailure_threshold = 3\n";
    const EXTRA: &str = "[[checks]]\nname = \"extra\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"1s\"\nfailure_threshold = 2\n";

    #[tokio::test(start_paused = true)]
    async fn unchanged_checks_keep_counters_and_schedule() {
        let (api, extra) = (Scripted::new(true), Scripted::new(true));
        let mut engine = engine_over(API, &[("api", api.clone()), ("extra", extra.clone())]);
        let published = engine.published();
        until(&published, Duration::from_secs(5), |s| s.readiness.ok).await;
        api.set(false);
        until(&published, Duration::from_secs(5), |s| {
            view(s, "api").consecutive_failures == 2
        })
        .await;
        let runs_before = api.runs();

        let diff = engine
            .apply(config(&format!("{API}{EXTRA}")).checks, no_record)
            .await;
        assert_eq!(
            (diff.added.clone(), diff.unchanged.clone()),
            (vec!["extra".to_owned()], vec!["api".to_owned()])
        );
        until(&published, Duration::from_secs(1), |s| s.checks.len() == 2).await;
        let snap = published.load();
        assert_eq!(
            view(&snap, "api").consecutive_failures,
            2,
            "one failure short stays one short"
        );
        assert_eq!(view(&snap, "api").status, Status::Pass);
        assert_eq!(
            api.runs().len(),
            runs_before.len(),
            "no extra run on reload"
        );

        // The next (third) failure fails it: the counter was not reset.
        until(&published, Duration::from_secs(5), |s| {
            view(s, "api").status == Status::Fail
        })
        .await;
        let runs = api.runs();
        assert_eq!(runs.len(), runs_before.len() + 1);
        assert_eq!(
            runs[runs.len() - 1] - runs[runs.len() - 2],
            Duration::from_secs(1),
            "cadence kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_check_serves_its_previous_verdict_until_it_has_a_new_one() {
        let api = Scripted::new(true);
        let mut engine = engine_over(API, &[("api", api.clone())]);
        let published = engine.published();
        until(&published, Duration::from_secs(5), |s| s.readiness.ok).await;
        api.set(false);
        let changed = API.replace("failure_threshold = 3", "failure_threshold = 2");
        let diff = engine.apply(config(&changed).checks, no_record).await;
        assert_eq!(diff.changed, vec!["api".to_owned()]);
        until(&published, Duration::from_secs(1), |s| {
            view(s, "api").consecutive_failures == 0
        })
        .await;
        let runs_at_change = api.runs().len();
        // Starting over with the old verdict shown: ready until the new definition fails twice.
        until(&published, Duration::from_secs(10), |s| !s.readiness.ok).await;
        assert_eq!(
            api.runs().len() - runs_at_change,
            2,
            "the new failure_threshold applies"
        );
        let snap = published.load();
        assert_eq!(view(&snap, "api").status, Status::Fail);
    }

    #[tokio::test(start_paused = true)]
    async fn runs_fall_on_the_engines_100ms_grid_added_checks_too() {
        // 50 checks at 1 s: the step for 10 probes each would be 200 ms, a
        // tenth of the interval caps it at 100 ms.
        let n = 50;
        let toml = tcp_checks("[defaults]\ninterval = \"1s\"\n", n);
        let probes: Vec<_> = (0..n).map(|_| Scripted::new(true)).collect();
        let mut named: Vec<_> = (0..n)
            .map(|i| (format!("c{i}"), probes[i].clone()))
            .collect();
        let extra = Scripted::new(true);
        named.push(("extra".into(), extra.clone()));
        let named: Vec<_> = named.iter().map(|(n, p)| (n.as_str(), p.clone())).collect();
        let start = Instant::now();
        let mut engine = engine_over(&toml, &named);
        // A check added off the grid, 1,234 ms in.
        tokio::time::sleep(Duration::from_millis(1_234)).await;
        engine
            .apply(config(&format!("{toml}{EXTRA}")).checks, no_record)
            .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let on_grid = |at: Instant| (at - start).as_nanos() % 100_000_000 == 0;
        let mut slots = std::collections::BTreeSet::new();
        for p in &probes {
            let runs = p.runs();
            assert!(runs.len() >= 4, "{} runs", runs.len());
            assert!(runs.iter().all(|&at| on_grid(at)), "off the grid: {runs:?}");
            slots.insert((runs[0] - start).as_millis());
        }
        // 50 checks share the 10 steps of one interval: 10 wake-ups a second, not 50.
        assert!((8..=10).contains(&slots.len()), "{slots:?}");
        let runs = extra.runs();
        assert!(runs[0] - start >= Duration::from_millis(1_234), "{runs:?}");
        assert!(
            runs.iter().all(|&at| on_grid(at)),
            "added check off the grid: {runs:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_added_check_does_not_take_readiness_away_before_its_first_verdict() {
        let (api, extra) = (Scripted::new(true), Scripted::new(false));
        let mut engine = engine_over(API, &[("api", api.clone()), ("extra", extra.clone())]);
        let published = engine.published();
        until(&published, Duration::from_secs(5), |s| s.readiness.ok).await;
        engine
            .apply(config(&format!("{API}{EXTRA}")).checks, no_record)
            .await;
        until(&published, Duration::from_secs(1), |s| s.checks.len() == 2).await;
        let snap = published.load();
        assert_eq!(view(&snap, "extra").status, Status::Starting);
        assert!(view(&snap, "extra").provisional);
        assert!(
            snap.readiness.ok,
            "a starting added check holds nothing back"
        );
        // Its own verdict then counts like any other.
        until(&published, Duration::from_secs(5), |s| !s.readiness.ok).await;
        assert_eq!(extra.runs().len(), 2, "failure_threshold = 2 runs");
        assert_eq!(
            &published.load().readiness.reason[..],
            b"not ready: extra fail"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_check_stops_and_vanishes() {
        let (api, extra) = (Scripted::new(true), Scripted::new(false));
        let mut engine = engine_over(
            &format!("{API}{EXTRA}"),
            &[("api", api.clone()), ("extra", extra.clone())],
        );
        let published = engine.published();
        until(&published, Duration::from_secs(5), |s| {
            view(s, "extra").status == Status::Fail
        })
        .await;
        assert!(!published.load().readiness.ok);
        let mut events = engine.events().attach("test", 64);
        let diff = engine.apply(config(API).checks, no_record).await;
        assert_eq!(diff.removed, vec!["extra".to_owned()]);
        until(&published, Duration::from_secs(1), |s| s.checks.len() == 1).await;
        // The reload's event names it: a notifier resolves what it said of it.
        let reload = loop {
            let event = events.recv().await.unwrap();
            if let healthgate::health::EventKind::Reload { removed, .. } = &event.kind {
                break removed.clone();
            }
        };
        assert_eq!(reload.iter().map(|c| &**c).collect::<Vec<_>>(), ["extra"]);
        assert!(
            published.load().readiness.ok,
            "the removed check no longer counts"
        );
        let runs = extra.runs().len();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(extra.runs().len(), runs, "its task stopped");
    }
}

/// The gaps between consecutive runs, in whole milliseconds.
fn gaps(runs: &[Instant]) -> Vec<u128> {
    runs.windows(2)
        .map(|w| w[1].duration_since(w[0]).as_millis())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_pace_adapts_start_interval_then_interval_then_failing_interval_until_recovered() {
    let toml = r#"
[defaults]
interval = "10s"
start_interval = "1s"
failing_interval = "2s"
success_threshold = 2
failure_threshold = 2
[[checks]]
name = "api"
type = "tcp"
address = "127.0.0.1:1"
"#;
    let api = Scripted::new(true);
    let engine = engine(toml, std::slice::from_ref(&api));
    let published = engine.published();
    // First run within one start_interval (the jitter follows the faster pace).
    until(&published, Duration::from_secs(1), |s| {
        view(s, "api").last().is_some()
    })
    .await;
    until(&published, Duration::from_secs(3), |s| {
        status(s, "api") == Status::Pass
    })
    .await;
    tokio::time::sleep(Duration::from_secs(25)).await;
    // Two runs 1 s apart reach the verdict, then 10 s apart.
    assert_eq!(gaps(&api.runs())[..3], [1000, 10_000, 10_000]);

    api.set(false);
    let before = api.runs().len();
    until(&published, Duration::from_secs(20), |s| {
        status(s, "api") == Status::Fail
    })
    .await;
    api.set(true);
    until(&published, Duration::from_secs(20), |s| {
        status(s, "api") == Status::Pass
    })
    .await;
    tokio::time::sleep(Duration::from_secs(21)).await;
    let runs = api.runs();
    // From the first failure: F (2s) F (2s) S (2s) S, then back to 10 s.
    assert_eq!(
        gaps(&runs[before..])[..5],
        [2000, 2000, 2000, 10_000, 10_000],
        "failing_interval while failing and recovering, interval once healthy"
    );
}

/// Passes after `run_for`, like `Scripted`, for latency expectations.
fn slow_probe(run_for: Duration) -> Arc<Scripted> {
    Arc::new(Scripted {
        healthy: AtomicBool::new(true),
        runs: Mutex::new(Vec::new()),
        run_for,
    })
}

#[tokio::test(start_paused = true)]
async fn slower_than_max_duration_fails_or_warns_as_slow() {
    let toml = r#"
[defaults]
interval = "1s"
failure_threshold = 1
[[checks]]
name = "strict"
type = "tcp"
address = "127.0.0.1:1"
expect.max_duration = "200ms"
[[checks]]
name = "lenient"
type = "tcp"
address = "127.0.0.1:1"
expect = { max_duration = "200ms", slow = "warn" }
[[checks]]
name = "quick"
type = "tcp"
address = "127.0.0.1:1"
expect.max_duration = "200ms"
"#;
    let probes = [
        slow_probe(Duration::from_millis(300)),
        slow_probe(Duration::from_millis(300)),
        slow_probe(Duration::from_millis(150)),
    ];
    let engine = engine(toml, &probes);
    let published = engine.published();
    until(&published, Duration::from_secs(5), |s| {
        s.checks.iter().all(|c| c.last().is_some())
    })
    .await;
    let snap = published.load();
    let strict = view(&snap, "strict");
    assert_eq!(strict.status, Status::Fail);
    let last = strict.last().unwrap();
    assert_eq!(last.failure, Some(Category::Slow));
    assert!(
        last.message
            .starts_with("slow: took 300ms, more than 200ms"),
        "{}",
        last.message
    );
    let lenient = view(&snap, "lenient");
    assert_eq!(lenient.status, Status::Warn);
    let last = lenient.last().unwrap();
    assert_eq!((last.failure, last.warning), (None, Some(Category::Slow)));
    assert_eq!(view(&snap, "quick").status, Status::Pass);
    assert!(!snap.readiness.ok, "strict fails readiness");
    assert_eq!(&snap.readiness.reason[..], b"not ready: strict fail");
}

#[tokio::test(start_paused = true)]
async fn a_failing_dependency_is_reported_but_fails_neither_readiness_nor_liveness() {
    let toml = r#"
[defaults]
interval = "1s"
failure_threshold = 1
[[checks]]
name = "api"
type = "tcp"
address = "127.0.0.1:1"
groups = ["liveness", "readiness"]
[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:1"
groups = ["liveness", "readiness"]
dependency = true
"#;
    let (api, db) = (Scripted::new(true), Scripted::new(true));
    let engine = engine(toml, &[api.clone(), db.clone()]);
    let published = engine.published();
    until(&published, Duration::from_secs(5), |s| {
        s.checks.iter().all(|c| c.status == Status::Pass)
    })
    .await;
    assert_eq!(&published.load().readiness.reason[..], b"ok");
    db.set(false);
    until(&published, Duration::from_secs(5), |s| {
        status(s, "db") == Status::Fail
    })
    .await;
    let snap = published.load();
    assert!(snap.readiness.ok && snap.liveness.ok);
    assert_eq!(
        &snap.readiness.reason[..],
        b"ok (dependency failing, not counted: db fail)"
    );
    assert_eq!(snap.overall, Status::Warn, "/health still shows it");
    // The service's own check still counts.
    api.set(false);
    until(&published, Duration::from_secs(5), |s| !s.readiness.ok).await;
    assert_eq!(
        &published.load().readiness.reason[..],
        b"not ready: api fail"
    );
    assert!(!published.load().liveness.ok);
}

#[tokio::test(start_paused = true)]
async fn a_push_check_takes_reports_at_once_and_fails_when_they_stop() {
    use healthgate::scheduler::{PushReport, Refused, Reported};
    let toml = r#"
[[checks]]
name = "nightly"
type = "push"
ttl = "10s"
failure_threshold = 1
"#;
    let mut engine = Engine::start(config(toml).checks, Arc::new(()));
    let published = engine.published();
    let inboxes = engine.inboxes();
    let report = |status, message: &str| PushReport {
        status,
        message: message.to_owned(),
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(status(&published.load(), "nightly"), Status::Starting);

    let sent = Instant::now();
    inboxes
        .deliver("nightly", report(Reported::Pass, "backup done"))
        .unwrap();
    let seen = until(&published, Duration::from_secs(1), |s| {
        status(s, "nightly") == Status::Pass
    })
    .await;
    assert!(
        seen - sent < Duration::from_millis(50),
        "a report counts at once"
    );
    let last = view(&published.load(), "nightly").last().cloned().unwrap();
    assert_eq!(&*last.message, "reported pass: backup done");

    // Silence for the ttl: failed, measured from the last report.
    let failed = until(&published, Duration::from_secs(15), |s| {
        status(s, "nightly") == Status::Fail
    })
    .await;
    let waited = failed - sent;
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_millis(10_050),
        "{waited:?}"
    );
    let last = view(&published.load(), "nightly").last().cloned().unwrap();
    assert_eq!(last.failure, Some(Category::TtlExpired));
    assert_eq!(&*last.message, "no report for 10s");

    inboxes
        .deliver("nightly", report(Reported::Warn, "slow"))
        .unwrap();
    until(&published, Duration::from_secs(1), |s| {
        status(s, "nightly") == Status::Warn
    })
    .await;
    inboxes
        .deliver("nightly", report(Reported::Fail, "disk full"))
        .unwrap();
    until(&published, Duration::from_secs(1), |s| {
        status(s, "nightly") == Status::Fail
    })
    .await;
    let last = view(&published.load(), "nightly").last().cloned().unwrap();
    assert_eq!(
        (last.failure, &*last.message),
        (Some(Category::Reported), "reported fail: disk full")
    );

    // Only push checks take reports; a removed one no longer does.
    assert_eq!(
        inboxes.deliver("other", report(Reported::Pass, "")),
        Err(Refused::Unknown)
    );
    engine.apply(Vec::new(), |_| no_record_top()).await;
    assert_eq!(
        inboxes.deliver("nightly", report(Reported::Pass, "")),
        Err(Refused::Unknown)
    );
}

fn no_record_top() -> healthgate::health::ReloadRecord {
    healthgate::health::ReloadRecord {
        at: std::time::SystemTime::now(),
        successful: true,
        message: String::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn sparse_results_publish_at_once_and_bursts_at_most_once_per_gap() {
    // One check: every result is its own snapshot, with no delay.
    let lone = Scripted::new(true);
    let engine_one = engine(ONE, std::slice::from_ref(&lone));
    let publishes = engine_one.published().subscribe();
    let first = until(&engine_one.published(), Duration::from_secs(2), |s| {
        view(s, "api").last().is_some()
    })
    .await;
    // (`until` looks once per virtual millisecond.)
    assert!(
        first - lone.runs()[0] <= Duration::from_millis(1),
        "the first result waited {:?} to be published",
        first - lone.runs()[0]
    );
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    assert_eq!(
        *publishes.borrow() as usize,
        lone.runs().len(),
        "one snapshot per result"
    );
    drop(engine_one);

    // 2,000 checks at 1 s: 20,000 results in 10 s, arriving every 5 ms (the
    // grid's step), published at most once per 9 ms (5 ms + 2 µs per check).
    let n = 2_000;
    let toml = tcp_checks("[defaults]\ninterval = \"1s\"\n", n);
    let probes: Vec<_> = (0..n).map(|_| Scripted::new(true)).collect();
    let engine = engine(&toml, &probes);
    let publishes = engine.published().subscribe();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let count = *publishes.borrow();
    let bound = (Instant::now() - start).as_millis() as u64 / 9 + 1;
    assert!(count <= bound, "{count} snapshots in 10 s, bound {bound}");
    assert!(count >= bound / 2, "only {count} snapshots in 10 s");
    let results: usize = probes.iter().map(|p| p.runs().len()).sum();
    assert!(results >= 9 * n, "{results} results");
    let snapshot = engine.published().load_full();
    assert!(snapshot.checks.iter().all(|c| c.status == Status::Pass));
}

#[tokio::test(start_paused = true)]
async fn a_reason_names_five_checks_and_counts_the_rest() {
    let n = 7;
    let toml = tcp_checks("", n);
    let probes: Vec<_> = (0..n).map(|_| Scripted::new(true)).collect();
    let engine = engine(&toml, &probes);
    assert_eq!(
        &engine.published().load().readiness.reason[..],
        b"not ready: c0 starting, c1 starting, c2 starting, c3 starting, c4 starting and 2 more"
    );
}

/// Every change becomes one event, numbered in order: the check's status
/// flips, the verdicts' flips, a drain's start and end, a reload; a result
/// that changes nothing publishes nothing.
#[tokio::test(start_paused = true)]
async fn each_change_is_one_event_in_order() {
    use healthgate::health::{Drain, DrainMode, EventKind};
    let probe = Scripted::new(true);
    let engine = engine(ONE, std::slice::from_ref(&probe));
    let published = engine.published();
    let events = engine.events();
    let mut queue = events.attach("test", 64);
    until(&published, Duration::from_secs(5), |s| s.readiness.ok).await;
    probe.set(false);
    until(&published, Duration::from_secs(10), |s| !s.readiness.ok).await;
    // Runs that change nothing publish nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let drain = Drain {
        reason: "maintenance".into(),
        mode: DrainMode::Maintenance,
        since: std::time::SystemTime::now(),
        shutdown: false,
    };
    engine.drains().set(Some(drain)).await;
    engine.drains().set(None).await;
    engine
        .record_reload(healthgate::health::ReloadRecord {
            at: std::time::SystemTime::now(),
            successful: false,
            message: "rejected: checks[0].interval: must be more than 0s".into(),
        })
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut got = Vec::new();
    while let Ok(event) = queue.try_recv() {
        got.push(event);
    }
    let described: Vec<String> = got
        .iter()
        .map(|e| match &e.kind {
            EventKind::Check(c) => format!("check {} {}->{}", c.check, c.from, c.to),
            EventKind::Verdict(v) => format!("{} ok={}", v.verdict.as_str(), v.ok),
            EventKind::Drain(d) => format!("drain {}", d.is_some()),
            EventKind::Reload { successful, .. } => format!("reload {successful}"),
            EventKind::Maintenance(m) => format!("maintenance {} {}", m.window, m.open),
        })
        .collect();
    assert_eq!(
        described,
        [
            // Liveness and startup answer 200 from the start here: the
            // check is in the readiness group only.
            "check api starting->pass",
            "readiness ok=true",
            "check api pass->fail",
            "readiness ok=false",
            "drain true",
            "drain false",
            "reload false",
        ],
    );
    let ids: Vec<u64> = got.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=7).collect::<Vec<u64>>());
    let EventKind::Check(failed) = &got[2].kind else {
        panic!("{:?}", got[2]);
    };
    assert_eq!(failed.category, Some(Category::StatusMismatch));
    assert_eq!(&*failed.message, "status 503, expected 2xx");
    assert!(
        events.drops().iter().all(|(_, n)| *n == 0),
        "{:?}",
        events.drops()
    );
}

/// A run asked for on demand happens at once and is recorded like any
/// other; requests made while a run is in flight join it (one run for the
/// lot); the schedule goes on as before; a push check cannot be run.
#[tokio::test(start_paused = true)]
async fn a_run_on_demand_joins_the_run_in_flight() {
    use healthgate::scheduler::NotRun;
    let toml = "[defaults]\ninterval = \"1h\"\ninitial_delay = \"0s\"\n\
                [[checks]]\nname = \"api\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n\
                [[checks]]\nname = \"jobs\"\ntype = \"push\"\nttl = \"1h\"\n";
    let slow = Arc::new(Scripted {
        healthy: AtomicBool::new(true),
        run_for: Duration::from_secs(2),
        ..Default::default()
    });
    let config = config(toml);
    let probe = slow.clone();
    let engine = Engine::start_with(
        config.checks,
        Box::new(move |_: &Check, _: &healthgate::probe::ProbeSpec| {
            probe.clone() as Arc<dyn Probe>
        }),
        Arc::new(()),
    );
    let start = Instant::now();
    let published = engine.published();
    // The first scheduled run (jittered within the hour).
    until(&published, Duration::from_secs(3700), |s| {
        !view(s, "api").recent.is_empty()
    })
    .await;
    let first = slow.runs()[0];
    let triggers = engine.triggers();
    assert_eq!(triggers.run("api"), Ok(Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // In flight: three more requests join it.
    for _ in 0..3 {
        triggers.run("api").unwrap();
    }
    until(&published, Duration::from_secs(5), |s| {
        view(s, "api").recent.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let runs = slow.runs();
    assert_eq!(
        runs.len(),
        2,
        "one run on demand for four requests: {runs:?}"
    );
    assert!(runs[1] - first < Duration::from_secs(3));
    // The next scheduled run is an interval after the first, as before.
    until(&published, Duration::from_secs(3700), |s| {
        view(s, "api").recent.len() == 3
    })
    .await;
    assert_eq!(slow.runs()[2] - first, Duration::from_secs(3600));
    assert!(slow.runs()[2] - start <= Duration::from_secs(7200));
    assert_eq!(triggers.run("jobs"), Err(NotRun::Push));
    assert_eq!(triggers.run("nope"), Err(NotRun::Unknown));
}

/// A cron schedule runs the check once at start, then at each occurrence
/// in its time zone, on a wall clock that follows tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn a_cron_schedule_runs_at_start_then_at_each_occurrence() {
    use healthgate::scheduler::Wall;
    let toml = "[[checks]]\nname = \"nightly\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n\
                schedule = \"0 */6 * * *\"\ntimezone = \"Europe/Berlin\"\n";
    let config = config(toml);
    let probe = Scripted::new(true);
    let anchor = humantime::parse_rfc3339("2026-12-03T10:15:00Z").unwrap();
    let origin = Instant::now();
    let wall = Wall::tokio_from(anchor);
    let for_all = probe.clone();
    let _engine = Engine::start_on(
        config.checks,
        Box::new(move |_: &Check, _: &healthgate::probe::ProbeSpec| {
            for_all.clone() as Arc<dyn Probe>
        }),
        Arc::new(()),
        wall,
    );
    tokio::time::sleep(Duration::from_secs(25 * 3600)).await;
    let at: Vec<String> = probe
        .runs()
        .iter()
        .map(|i| humantime::format_rfc3339_seconds(anchor + (*i - origin)).to_string())
        .collect();
    assert!(
        at[0].as_str() < "2026-12-03T10:15:11Z",
        "the first run comes at start: {at:?}"
    );
    // Berlin is UTC+1 in December: 12:00, 18:00, 00:00, 06:00 there.
    assert_eq!(
        at[1..],
        [
            "2026-12-03T11:00:00Z",
            "2026-12-03T17:00:00Z",
            "2026-12-03T23:00:00Z",
            "2026-12-04T05:00:00Z",
            "2026-12-04T11:00:00Z",
        ]
    );
}

/// A maintenance window that drains opens at its cron time and closes
/// after its duration, on a wall clock that follows tokio's paused clock:
/// readiness fails as `maint` while it is open, and each change is an
/// event, in order.
#[tokio::test(start_paused = true)]
async fn a_maintenance_window_opens_drains_and_closes_on_time() {
    use healthgate::health::{DrainMode, EventKind};
    use healthgate::maintenance::{Watch, When, Window};
    use healthgate::scheduler::Wall;
    let probe = Scripted::new(true);
    let config = config(ONE);
    let for_all = probe.clone();
    let anchor = humantime::parse_rfc3339("2026-12-03T01:59:00Z").unwrap();
    let engine = Engine::start_on(
        config.checks,
        Box::new(move |_: &Check, _: &healthgate::probe::ProbeSpec| {
            for_all.clone() as Arc<dyn Probe>
        }),
        Arc::new(()),
        Wall::tokio_from(anchor),
    );
    let published = engine.published();
    let mut queue = engine.events().attach("test", 64);
    until(&published, Duration::from_secs(30), |s| s.readiness.ok).await;
    let window = Window {
        name: "backup".into(),
        when: When::Recurring {
            cron: healthgate::config::cron::CronSchedule::parse("0 2 * * *", "UTC").unwrap(),
            duration: Duration::from_secs(1800),
        },
        checks: None,
        drain: true,
    };
    let _watch = Watch::start(vec![window], engine.windows(), engine.wall());
    let wall = engine.wall();
    let opened = until(&published, Duration::from_secs(120), |s| {
        !s.maintenance.is_empty()
    })
    .await;
    let shown = |i: Instant| {
        let at = wall.now() - (Instant::now() - i);
        humantime::format_rfc3339_seconds(at).to_string()
    };
    assert_eq!(shown(opened), "2026-12-03T02:00:00Z");
    let drained = published.load();
    assert!(!drained.readiness.ok);
    let drain = drained.drain.as_ref().unwrap();
    assert_eq!(drain.mode, DrainMode::Maintenance);
    assert_eq!(drain.reason, "maintenance window backup");
    // Virtual time to just before the end, then looked at closely.
    tokio::time::sleep(Duration::from_secs(29 * 60 + 50)).await;
    assert!(!published.load().maintenance.is_empty());
    let closed = until(&published, Duration::from_secs(20), |s| {
        s.maintenance.is_empty()
    })
    .await;
    assert_eq!(shown(closed), "2026-12-03T02:30:00Z");
    until(&published, Duration::from_secs(1), |s| {
        s.readiness.ok && s.drain.is_none()
    })
    .await;
    let mut got = Vec::new();
    while let Ok(event) = queue.try_recv() {
        got.push(match &event.kind {
            EventKind::Maintenance(m) => format!("maintenance {} {}", m.window, m.open),
            EventKind::Drain(d) => format!("drain {}", d.is_some()),
            EventKind::Verdict(v) => format!("{} ok={}", v.verdict.as_str(), v.ok),
            EventKind::Check(c) => format!("check {}", c.to),
            EventKind::Reload { .. } => "reload".to_owned(),
        });
    }
    assert_eq!(
        got,
        [
            "check pass",
            "readiness ok=true",
            "maintenance backup true",
            "drain true",
            "readiness ok=false",
            "maintenance backup false",
            "drain false",
            "readiness ok=true",
        ]
    );
}
