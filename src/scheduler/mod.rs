//! One task per check runs its probe on schedule; one collector task feeds the
//! results to [`Health`] and publishes snapshots.
//!
//! First run after `initial_delay` plus a random jitter within one interval
//! (so sidecars restarted together do not probe in lockstep), then every
//! `interval`, each run bounded by `timeout`. First runs fall on a grid (see
//! `grid.rs`) so that checks due together share a timer wake-up. Runs of one
//! check never overlap: a run that overshoots its interval delays the next to
//! the following tick.
//! The pace adapts: `start_interval` until the check's first verdict,
//! `failing_interval` while the latest run failed or the verdict is not
//! healthy, `interval` otherwise. A run that passed slower than
//! `expect.max_duration` becomes `slow` (a failure, or a warning) here, so
//! every probe type gets it alike.
//!
//! The collector is the only writer of health state. Results and
//! reconfigurations reach it through one bounded queue, in order, so a new
//! check's first result can never arrive before the check itself.

mod grid;
pub mod push;
mod run_now;
pub mod wall;

pub use push::{Inboxes, PushReport, Refused, Reported};
use run_now::Trigger;
pub use run_now::{NotRun, Triggers};
pub use wall::Wall;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::config::cron::CronSchedule;
use crate::config::{Change, Check, Diff, MaxDuration, SlowMode, Source};
use crate::health::events::DrainStart;
use crate::health::{
    Bus, CheckChange, CheckState, CheckView, Drain, EventKind, Group, Health, MaintenanceChange,
    Open, Published, ReloadRecord, Slot, Snapshot, Status, Transition, VerdictChange,
};
use crate::probe::{self, Category, Outcome, Probe, ProbeSpec};

/// Messages waiting for the collector; probe tasks wait when it is full.
const QUEUE: usize = 1024;
/// How far off "never" is, for a schedule with no occurrence left.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Most messages taken in one batch.
const BATCH: usize = 256;
/// Least time between two snapshots, so thousands of checks cost a bounded
/// number of publishes per second (at most this much added verdict latency)...
const MIN_PUBLISH_GAP: Duration = Duration::from_millis(5);
/// ... plus this much per check, as a snapshot costs in proportion to the
/// checks (at 10,000 checks, 25 ms: 40 snapshots a second, ~2 % of a core).
const PUBLISH_GAP_PER_CHECK: Duration = Duration::from_micros(2);

/// Builds the probe for a check's spec (tests substitute scripted probes).
pub type ProbeFactory = Box<dyn Fn(&Check, &ProbeSpec) -> Arc<dyn Probe> + Send + Sync>;

/// Told of every result as the collector records it: where metrics count runs,
/// so each run is counted exactly once. Runs on the collector task: keep it cheap.
pub trait Observer: Send + Sync + 'static {
    /// `check` is the view after the result; `transition` is set if its status changed.
    fn on_result(&self, check: &CheckView, outcome: &Outcome, transition: Option<Transition>);

    /// A run started `lateness` after its scheduled time (push checks have no schedule).
    fn on_start(&self, _lateness: Duration) {}

    /// A reload attempt, applied or rejected.
    fn on_reload(&self, _record: &ReloadRecord) {}
}

/// Observes nothing.
impl Observer for () {
    fn on_result(&self, _: &CheckView, _: &Outcome, _: Option<Transition>) {}
}

enum Message {
    Result(Report),
    /// A new check set and the reload that brought it, applied in one snapshot.
    Reconfigure(Vec<Slot>, ReloadRecord),
    Reloaded(ReloadRecord),
    Maintenance(Vec<Open>),
    Drain(Option<Drain>),
}

/// One probe result on its way to the collector.
struct Report {
    /// How late the run started against its schedule.
    late: Option<Duration>,
    name: Arc<str>,
    generation: u64,
    outcome: Outcome,
    now: Instant,
    at: SystemTime,
}

/// The running checks. Dropping it stops every task (and kills exec probes' processes).
pub struct Engine {
    tx: mpsc::Sender<Message>,
    published: Published,
    events: Bus,
    running: Vec<Running>,
    next_generation: u64,
    factory: ProbeFactory,
    collector: Task,
    inboxes: Inboxes,
    triggers: Triggers,
    /// Origin of the grid first runs fall on.
    epoch: Instant,
    /// Its step for the current config's probe rate.
    step: Duration,
    /// The clock cron schedules read.
    wall: Wall,
}

struct Running {
    check: Check,
    generation: u64,
    _task: Task,
}

/// A task aborted when dropped: an in-flight probe is cancelled with it.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// Starts a task per check and the collector; the first snapshot (every
    /// check `starting`) is published before this returns.
    pub fn start(checks: Vec<Check>, observer: Arc<dyn Observer>) -> Self {
        Self::start_with(
            checks,
            Box::new(|_: &Check, spec: &ProbeSpec| probe::build(spec)),
            observer,
        )
    }

    /// As [`Engine::start`], building probes with `factory`.
    pub fn start_with(
        checks: Vec<Check>,
        factory: ProbeFactory,
        observer: Arc<dyn Observer>,
    ) -> Self {
        Self::start_on(checks, factory, observer, Wall::System)
    }

    /// As [`Engine::start_with`], cron schedules reading `wall`.
    pub fn start_on(
        checks: Vec<Check>,
        factory: ProbeFactory,
        observer: Arc<dyn Observer>,
        wall: Wall,
    ) -> Self {
        let step = grid::step_for(&checks);
        let slots: Vec<Slot> = checks
            .into_iter()
            .zip(1..)
            .map(|(check, generation)| Slot {
                check,
                generation,
                change: Change::Added,
            })
            .collect();
        let mut health = Health::new(&slots, Instant::now());
        let published = Published::new(health.snapshot());
        let (tx, rx) = mpsc::channel(QUEUE);
        let events = Bus::default();
        let collector = Task(tokio::spawn(collect(
            rx,
            health,
            published.clone(),
            observer,
            events.clone(),
        )));
        let mut engine = Self {
            tx,
            published,
            events,
            running: Vec::new(),
            next_generation: slots.len() as u64 + 1,
            factory,
            collector,
            inboxes: Inboxes::default(),
            triggers: Triggers::default(),
            epoch: Instant::now(),
            step,
            wall,
        };
        engine.running = slots.into_iter().map(|slot| engine.spawn(slot)).collect();
        engine
    }

    /// The snapshot cell endpoints read.
    pub fn published(&self) -> Published {
        self.published.clone()
    }

    /// The bus every status change, verdict change, drain and reload is
    /// published on.
    pub fn events(&self) -> Bus {
        self.events.clone()
    }

    /// Moves to a new set of checks. Unchanged checks keep their task (no
    /// extra run, no reset); changed and removed checks' tasks are aborted
    /// (an in-flight run is cancelled, an exec probe's processes killed);
    /// changed and added checks get a new task. `record` describes the
    /// reload; it is published in the same snapshot as the new checks.
    pub async fn apply(
        &mut self,
        checks: Vec<Check>,
        record: impl FnOnce(&Diff) -> ReloadRecord,
    ) -> Diff {
        let diff = Diff::between(self.running.iter().map(|r| &r.check), &checks);
        self.step = grid::step_for(&checks);
        let pushed: Vec<&str> = checks
            .iter()
            .filter(|c| matches!(c.source, Source::Push(_)))
            .map(|c| &*c.name)
            .collect();
        self.inboxes.retain(&pushed);
        self.triggers
            .retain(&checks.iter().map(|c| &*c.name).collect());
        let mut previous: HashMap<Arc<str>, Running> = self
            .running
            .drain(..)
            .map(|r| (r.check.name.clone(), r))
            .collect();
        let mut kept = Vec::new();
        let mut slots = Vec::new();
        for (check, &change) in checks.into_iter().zip(&diff.changes) {
            let generation = match (change, previous.remove(&check.name)) {
                (Change::Unchanged, Some(running)) => {
                    let generation = running.generation;
                    kept.push(running);
                    generation
                }
                // Dropping the old task here cancels its in-flight run.
                _ => {
                    self.next_generation += 1;
                    self.next_generation
                }
            };
            slots.push(Slot {
                check,
                generation,
                change,
            });
        }
        drop(previous);
        // The collector learns the new set before any new task can report.
        let _ = self
            .tx
            .send(Message::Reconfigure(slots.clone(), record(&diff)))
            .await;
        let mut kept = kept.into_iter();
        for slot in slots {
            let running = match slot.change {
                Change::Unchanged => match kept.next() {
                    Some(running) => running,
                    None => self.spawn(slot),
                },
                _ => self.spawn(slot),
            };
            self.running.push(running);
        }
        diff
    }

    /// Records a reload attempt where the endpoints show it.
    pub async fn record_reload(&self, record: ReloadRecord) {
        let _ = self.tx.send(Message::Reloaded(record)).await;
    }

    /// Where push checks' reports are delivered (for the admin endpoint).
    pub fn inboxes(&self) -> Inboxes {
        self.inboxes.clone()
    }

    /// Where the admin endpoint asks checks to run now.
    pub fn triggers(&self) -> Triggers {
        self.triggers.clone()
    }

    /// A handle that opens and closes maintenance windows.
    pub fn windows(&self) -> Windows {
        Windows(self.tx.clone())
    }

    /// The clock cron schedules read.
    pub fn wall(&self) -> Wall {
        self.wall
    }

    /// A handle that starts and ends drains (for the admin endpoint and the
    /// shutdown sequence).
    pub fn drains(&self) -> Drains {
        Drains(self.tx.clone())
    }

    fn spawn(&self, slot: Slot) -> Running {
        let spec = match &slot.check.source {
            Source::Probe(spec) => spec,
            Source::Push(push) => return self.spawn_push(push.ttl, slot),
        };
        let probe = (self.factory)(&slot.check, spec);
        let pace = Pace::of(&slot.check);
        let first = grid::first_run(&slot.check.schedule, self.step, self.epoch, Instant::now());
        let trigger = self
            .triggers
            .open(&slot.check.name, slot.check.schedule.timeout);
        let reporter = Reporter {
            name: slot.check.name.clone(),
            generation: slot.generation,
            trigger,
            tx: self.tx.clone(),
            cron: slot.check.cron.clone().map(|cron| (cron, self.wall)),
        };
        let task = tokio::spawn(run_check(Arc::new(reporter), first, pace, probe));
        Running {
            check: slot.check,
            generation: slot.generation,
            _task: Task(task),
        }
    }

    /// A push check's task: no probe, a deadline between reports.
    fn spawn_push(&self, ttl: Duration, slot: Slot) -> Running {
        let inbox = self.inboxes.open(&slot.check.name);
        self.triggers.push(&slot.check.name);
        let task = tokio::spawn(push::run_push(
            slot.check.name.clone(),
            slot.generation,
            ttl,
            inbox,
            self.tx.clone(),
        ));
        Running {
            check: slot.check,
            generation: slot.generation,
            _task: Task(task),
        }
    }
}

/// Tells the engine which maintenance windows are open; see
/// [`Health::set_maintenance`].
#[derive(Clone)]
pub struct Windows(mpsc::Sender<Message>);

impl Windows {
    /// The windows open now; published with the next snapshot.
    pub async fn set(&self, open: Vec<Open>) {
        let _ = self.0.send(Message::Maintenance(open)).await;
    }
}

/// Starts and ends drains; see [`Health::set_drain`].
#[derive(Clone)]
pub struct Drains(mpsc::Sender<Message>);

impl Drains {
    /// Sets the drain; published with the next snapshot.
    pub async fn set(&self, drain: Option<Drain>) {
        let _ = self.0.send(Message::Drain(drain)).await;
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.running.clear();
        self.collector.0.abort();
    }
}

/// What a check's task needs to pace its runs and judge their latency: of
/// the schedule, only the intervals and the timeout (the thresholds are in
/// `shadow`), as 10,000 sleeping tasks hold 10,000 of these.
struct Pace {
    interval: Duration,
    start_interval: Option<Duration>,
    failing_interval: Option<Duration>,
    timeout: Duration,
    max_duration: Option<MaxDuration>,
    /// A copy of the check's thresholds fed the same results, so the task
    /// knows the verdict without asking the collector.
    shadow: CheckState,
}

impl Pace {
    fn of(check: &Check) -> Self {
        let schedule = &check.schedule;
        Self {
            interval: schedule.interval,
            start_interval: schedule.start_interval,
            failing_interval: schedule.failing_interval,
            timeout: schedule.timeout,
            max_duration: check.max_duration,
            shadow: CheckState::new(&check.schedule, true, Instant::now()),
        }
    }

    /// Applies `expect.max_duration`, notes the result, and returns the interval to the next run.
    fn after(&mut self, outcome: &mut Outcome, now: Instant) -> Duration {
        if let Some(m) = self.max_duration
            && outcome.passed()
            && outcome.duration > m.limit
        {
            let message = format!(
                "slow: took {}, more than {} ({})",
                crate::units::human(outcome.duration),
                crate::units::human(m.limit),
                outcome.message
            );
            let slow = match m.slow {
                SlowMode::Fail => Outcome::fail(Category::Slow, message),
                SlowMode::Warn => Outcome::warn(Category::Slow, message),
            };
            outcome.failure = slow.failure;
            outcome.warning = slow.warning;
            outcome.message = slow.message;
        }
        self.shadow.record(outcome, now);
        match (self.start_interval, self.failing_interval) {
            (Some(start), _) if !self.shadow.has_verdict() => start,
            (_, Some(failing)) if self.shadow.failing_or_recovering() => failing,
            _ => self.interval,
        }
    }
}

/// Who a check's task reports as, and where: one pointer in the task,
/// as 10,000 sleeping tasks hold 10,000 of these.
struct Reporter {
    name: Arc<str>,
    generation: u64,
    trigger: Arc<Trigger>,
    tx: mpsc::Sender<Message>,
    /// A `schedule`, and the clock it reads.
    cron: Option<(CronSchedule, Wall)>,
}

impl Reporter {
    /// When a cron-scheduled check runs next: its next occurrence after
    /// now (one that never comes again leaves it to run-now).
    fn next_occurrence(cron: &CronSchedule, wall: Wall) -> Instant {
        match cron.next_after(wall.now()) {
            Some(at) => wall.instant_at(at),
            None => Instant::now() + NEVER,
        }
    }
}

#[allow(clippy::manual_async_fn)] // see the body's first comment
fn run_check(
    reporter: Arc<Reporter>,
    mut next: Instant,
    mut pace: Pace,
    probe: Arc<dyn Probe>,
) -> impl Future<Output = ()> {
    // An `async move` block rather than an `async fn`: the arguments are kept
    // once, not once more as locals (rust-lang/rust#62958).
    async move {
        loop {
            // A run asked for on demand leaves the schedule as it was.
            let scheduled = tokio::select! {
                () = sleep_until(next) => true,
                () = reporter.trigger.asked() => false,
            };
            let late = scheduled.then(|| Instant::now().saturating_duration_since(next));
            // Boxed: a run's futures (the probe's, the queue's) exist only while
            // it runs, so a sleeping check's task stays small (10,000 tasks: 1.3 KB
            // each unboxed, ~0.4 KB boxed).
            let run = run_once(&reporter, late, &mut pace, probe.as_ref());
            let outcome = Box::pin(run).await;
            reporter.trigger.answered();
            let Some((interval, now)) = outcome else {
                return;
            };
            if let Some((cron, wall)) = &reporter.cron {
                if scheduled {
                    next = Reporter::next_occurrence(cron, *wall);
                }
                continue;
            }
            if scheduled {
                next += interval;
            }
            if next < now {
                // Overran: skip the ticks already missed, keep the cadence.
                let behind = now.duration_since(next).as_nanos() / interval.as_nanos().max(1);
                next += interval * (u32::try_from(behind).unwrap_or(u32::MAX - 1) + 1);
            }
        }
    }
}

/// One run, reported to the collector: the interval to the next and when
/// this one ended, or `None` once the collector is gone.
async fn run_once(
    reporter: &Reporter,
    late: Option<Duration>,
    pace: &mut Pace,
    probe: &dyn Probe,
) -> Option<(Duration, Instant)> {
    let mut outcome = probe::run(probe, pace.timeout).await;
    let now = Instant::now();
    let interval = pace.after(&mut outcome, now);
    let report = Report {
        late,
        name: reporter.name.clone(),
        generation: reporter.generation,
        outcome,
        now,
        at: SystemTime::now(),
    };
    reporter.tx.send(Message::Result(report)).await.ok()?;
    Some((interval, now))
}

/// The least time between snapshots of `checks` checks, at most 250 ms.
fn publish_gap(checks: usize) -> Duration {
    let per_check = PUBLISH_GAP_PER_CHECK * u32::try_from(checks).unwrap_or(u32::MAX);
    (MIN_PUBLISH_GAP + per_check).min(Duration::from_millis(250))
}

async fn collect(
    mut rx: mpsc::Receiver<Message>,
    mut health: Health,
    published: Published,
    observer: Arc<dyn Observer>,
    events: Bus,
) {
    let mut verdicts = Verdicts::of(&published.load());
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_published: Option<Instant> = None;
    let mut gap = MIN_PUBLISH_GAP;
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // A burst waits out the gap since the last snapshot, taking what
        // arrives meanwhile; a lone result is published at once, with no
        // timer to wake for (at 100 checks, a timer per result was one more
        // wake-up per probe).
        if let Some(due) = last_published.map(|at| at + gap)
            && Instant::now() < due
        {
            sleep_until(due).await;
            while batch.len() < 2 * BATCH
                && let Ok(message) = rx.try_recv()
            {
                batch.push(message);
            }
        }
        for message in batch.drain(..) {
            match message {
                Message::Result(r) => {
                    if let Some(late) = r.late {
                        observer.on_start(late);
                    }
                    let transition = health.record(&r.name, r.generation, &r.outcome, r.now, r.at);
                    if let Some(view) = health.current(&r.name, r.generation) {
                        observer.on_result(view, &r.outcome, transition);
                        if let Some(transition) = transition {
                            log_transition(view, transition);
                            let change = CheckChange::of(view, transition);
                            events.publish(EventKind::Check(change), r.at);
                        }
                    }
                }
                Message::Reconfigure(slots, record) => {
                    let removed = health.reconfigure(&slots, Instant::now());
                    observer.on_reload(&record);
                    events.publish(EventKind::reload(&record, removed), record.at);
                    health.record_reload(record);
                }
                Message::Reloaded(record) => {
                    observer.on_reload(&record);
                    events.publish(EventKind::reload(&record, Vec::new()), record.at);
                    health.record_reload(record);
                }
                Message::Drain(drain) => {
                    let before = health.drain().cloned();
                    health.set_drain(drain);
                    publish_drain(&health, before, &events);
                }
                Message::Maintenance(open) => {
                    let now = SystemTime::now();
                    for change in MaintenanceChange::between(health.maintenance(), &open) {
                        events.publish(EventKind::Maintenance(change), now);
                    }
                    let before = health.drain().cloned();
                    health.set_maintenance(open, now);
                    publish_drain(&health, before, &events);
                }
            }
        }
        let snapshot = health.snapshot();
        verdicts.publish_changes(&snapshot, &events);
        gap = publish_gap(snapshot.checks.len());
        published.store(snapshot);
        last_published = Some(Instant::now());
    }
}

/// Publishes the drain in force if it is not `before`.
fn publish_drain(health: &Health, before: Option<Drain>, events: &Bus) {
    let after = health.drain();
    if before.as_ref() != after {
        let start = after.map(DrainStart::from);
        events.publish(EventKind::Drain(start), SystemTime::now());
    }
}

/// Whether each verdict answered 200 in the last snapshot, to publish its flips.
struct Verdicts([bool; 3]);

impl Verdicts {
    fn of(snapshot: &Snapshot) -> Self {
        Self(Group::ALL.map(|g| verdict(snapshot, g).ok))
    }

    fn publish_changes(&mut self, snapshot: &Snapshot, events: &Bus) {
        for (was, group) in self.0.iter_mut().zip(Group::ALL) {
            let now = verdict(snapshot, group);
            if *was != now.ok {
                *was = now.ok;
                let change = VerdictChange {
                    verdict: group,
                    ok: now.ok,
                    reason: String::from_utf8_lossy(&now.reason).trim_end().to_owned(),
                };
                events.publish(EventKind::Verdict(change), SystemTime::now());
            }
        }
    }
}

fn verdict(snapshot: &Snapshot, group: Group) -> &crate::health::Verdict {
    match group {
        Group::Liveness => &snapshot.liveness,
        Group::Readiness => &snapshot.readiness,
        Group::Startup => &snapshot.startup,
    }
}

fn log_transition(view: &CheckView, t: Transition) {
    let last = view.last();
    let reason = last.map_or("", |l| &*l.message);
    let category = last
        .and_then(|l| l.failure.or(l.warning))
        .map_or("", |c| c.as_str());
    let (from, to) = (t.from.as_str(), t.to.as_str());
    match t.to {
        Status::Fail | Status::Warn => {
            tracing::warn!(check = %view.name, from, to, category, reason, "check is now {to}")
        }
        _ => tracing::info!(check = %view.name, from, to, reason, "check is now {to}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10,000 sleeping checks are 10,000 of these: keep them small (the
    /// run's futures boxed, each argument once, the pace rather than the
    /// whole schedule). Tokio adds its task header and rounds up to 128
    /// bytes: 352 bytes of future make a 512-byte task.
    #[tokio::test]
    async fn a_sleeping_checks_task_stays_under_352_bytes() {
        use crate::config::{CheckConfig, TypeSection};
        let http = crate::probe::http::HttpConfig::get("http://127.0.0.1:1/");
        let check = CheckConfig::new("a", TypeSection::Http(http))
            .and_then(|c| c.resolve().map_err(|p| format!("{p:?}")))
            .expect("valid");
        let Source::Probe(spec) = &check.source else {
            panic!("an http check is probed");
        };
        let (tx, _rx) = mpsc::channel(1);
        let reporter = Reporter {
            name: "a".into(),
            generation: 1,
            trigger: Arc::default(),
            tx,
            cron: None,
        };
        let task = run_check(
            Arc::new(reporter),
            Instant::now(),
            Pace::of(&check),
            probe::build(spec),
        );
        let size = std::mem::size_of_val(&task);
        assert!(size <= 352, "{size} bytes");
    }

    /// The engine keeps every running check (for the reload diff) inline in
    /// one `Vec`: at 10,000 checks each byte of it is 10 kB. A description
    /// and a cron schedule are one pointer each.
    #[test]
    fn a_running_check_stays_under_328_bytes() {
        let size = std::mem::size_of::<Running>();
        assert!(size <= 328, "{size} bytes");
    }
}
