//! The actions: on each check or verdict change, the command its config
//! names, run as an exec check's command is (no shell unless asked, its
//! own process group killed at the timeout, output bounded), with the event
//! in its environment. One run at a time per action, at most `max_runs`
//! per `window` ([`Limiter`]); what is skipped is logged and counted.
//! The limits outlive reloads: a reload cannot reset a restart budget.
//! While a maintenance window is open, what it covers waits ([`Hold`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::config::{Acting, Action};
use super::hold::Hold;
use super::stats::{For, Ran, Stats};
use crate::health::{Event, EventKind, Group, Queue, Status};
use crate::probe::Category;
use crate::probe::exec::ExecProbe;

/// At most `max_runs` starts within any `window`.
#[derive(Debug, Default)]
pub struct Limiter {
    starts: VecDeque<Instant>,
}

impl Limiter {
    /// Whether a run may start at `now` (and if so, counts it).
    pub fn allow(&mut self, now: Instant, max_runs: u32, window: Duration) -> bool {
        while self.starts.front().is_some_and(|t| *t + window <= now) {
            self.starts.pop_front();
        }
        if self.starts.len() >= max_runs as usize {
            return false;
        }
        self.starts.push_back(now);
        true
    }
}

type Key = (For, &'static str);

/// Runs the actions `acting` names (the latest config) for each event of `queue`.
pub async fn run(mut queue: Queue, acting: watch::Receiver<Arc<Acting>>, stats: Arc<Stats>) {
    let mut limits: HashMap<Key, Limiter> = HashMap::new();
    let running: Arc<Mutex<std::collections::HashSet<Key>>> = Arc::default();
    let mut failing = [false; 3];
    let mut hold = Hold::default();
    while let Some(event) = queue.recv().await {
        let (now, released) = hold.take(event);
        for event in now.into_iter().chain(released) {
            let acting = acting.borrow().clone();
            let mut fire = |target: For, action: &Action| {
                let key = (target.clone(), action.name);
                let busy = running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .contains(&key);
                if busy {
                    stats.ran(&target, action.name, Ran::Busy);
                    tracing::warn!(target = ?target, action = action.name, "action skipped: its previous run has not ended");
                    return;
                }
                let limiter = limits.entry(key.clone()).or_default();
                if !limiter.allow(Instant::now(), action.max_runs, action.window) {
                    stats.ran(&target, action.name, Ran::RateLimited);
                    tracing::warn!(
                        target = ?target, action = action.name, max_runs = action.max_runs, window = ?action.window,
                        "action skipped: it already ran max_runs times within its window"
                    );
                    return;
                }
                running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.clone());
                let (running, stats) = (running.clone(), stats.clone());
                let action = action.clone();
                let env = environment(&event, action.name);
                tokio::spawn(async move {
                    let result = execute(&action, env).await;
                    stats.ran(&key.0, action.name, result);
                    running
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&key);
                });
            };
            match &event.kind {
                EventKind::Check(c) => {
                    let Some(actions) = acting.checks.get(&c.check) else {
                        continue;
                    };
                    let was_failing = matches!(c.from, Status::Fail | Status::Warn);
                    let target = For::Check(c.check.clone());
                    match c.to {
                        Status::Fail | Status::Warn if !was_failing => {
                            if let Some(a) = &actions.on_failure {
                                fire(target, a);
                            }
                        }
                        Status::Pass if was_failing => {
                            if let Some(a) = &actions.on_recovery {
                                fire(target, a);
                            }
                        }
                        _ => {}
                    }
                }
                EventKind::Verdict(v) => {
                    let index = Group::ALL.iter().position(|g| *g == v.verdict).unwrap_or(0);
                    let actions = &acting.verdicts[index];
                    let target = For::Verdict(v.verdict.as_str());
                    if !v.ok {
                        failing[index] = true;
                        if let Some(a) = &actions.on_failure {
                            fire(target.clone(), a);
                        }
                        if v.verdict == Group::Liveness
                            && let Some(restart) = &acting.restart
                        {
                            fire(target, restart);
                        }
                    } else if std::mem::take(&mut failing[index])
                        && let Some(a) = &actions.on_recovery
                    {
                        fire(target, a);
                    }
                }
                EventKind::Drain(_) | EventKind::Maintenance(_) | EventKind::Reload { .. } => {}
            }
        }
    }
}

/// Runs `action` with `env` added; its result, logged.
async fn execute(action: &Action, env: Vec<(String, String)>) -> Ran {
    let mut spec = action.exec.clone();
    spec.env.extend(
        env.into_iter()
            .map(|(k, v)| (k, crate::config::Secret::new(v))),
    );
    let program = spec.argv.first().cloned().unwrap_or_default();
    let probe = ExecProbe::new(spec);
    let outcome = crate::probe::run(&probe, action.timeout).await;
    let result = match outcome.failure {
        None => Ran::Ok,
        Some(Category::ExecTimeout | Category::Timeout) => Ran::Timeout,
        Some(_) => Ran::Failed,
    };
    match result {
        Ran::Ok => {
            tracing::info!(action = action.name, program, message = %outcome.message, "action ran")
        }
        _ => {
            tracing::warn!(action = action.name, program, message = %outcome.message, "action failed")
        }
    }
    result
}

/// The event as environment variables: never in the command line.
fn environment(event: &Event, action: &'static str) -> Vec<(String, String)> {
    let mut env = vec![
        ("HEALTHGATE_EVENT".to_owned(), event.type_name().to_owned()),
        ("HEALTHGATE_EVENT_ID".to_owned(), event.id.to_string()),
        (
            "HEALTHGATE_TIME".to_owned(),
            humantime::format_rfc3339_millis(event.at).to_string(),
        ),
        ("HEALTHGATE_ACTION".to_owned(), action.to_owned()),
    ];
    let mut set = |k: &str, v: String| env.push((format!("HEALTHGATE_{k}"), v));
    match &event.kind {
        EventKind::Check(c) => {
            set("CHECK", c.check.to_string());
            set("CHECK_TYPE", c.kind.to_owned());
            set("STATUS", c.to.as_str().to_owned());
            set("PREVIOUS_STATUS", c.from.as_str().to_owned());
            set(
                "CATEGORY",
                c.category.map_or("", Category::as_str).to_owned(),
            );
            set("MESSAGE", c.message.to_string());
            set("CRITICAL", c.critical.to_string());
            let groups: Vec<&str> = c.groups.iter().map(Group::as_str).collect();
            set("GROUPS", groups.join(","));
        }
        EventKind::Verdict(v) => {
            set("VERDICT", v.verdict.as_str().to_owned());
            set("OK", v.ok.to_string());
            set("STATUS", if v.ok { "pass" } else { "fail" }.to_owned());
            set("REASON", v.reason.clone());
        }
        EventKind::Maintenance(w) => set("WINDOW", w.window.to_string()),
        EventKind::Drain(_) | EventKind::Reload { .. } => {}
    }
    // A value with a NUL cannot be passed; drop the byte rather than the run.
    env.into_iter()
        .map(|(k, v)| (k, v.replace('\0', "")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5 per 5 minutes: the sixth within the window is refused; each start
    /// leaves the window 5 minutes after it was made.
    #[tokio::test(start_paused = true)]
    async fn the_limit_counts_starts_within_a_sliding_window() {
        let (max, window) = (5, Duration::from_secs(300));
        let mut limiter = Limiter::default();
        let start = Instant::now();
        for i in 0..5 {
            assert!(
                limiter.allow(start + Duration::from_secs(i * 10), max, window),
                "{i}"
            );
        }
        assert!(!limiter.allow(start + Duration::from_secs(60), max, window));
        assert!(!limiter.allow(start + Duration::from_secs(299), max, window));
        // The first start (t=0) leaves at t=300: one more fits, then none.
        assert!(limiter.allow(start + Duration::from_secs(300), max, window));
        assert!(!limiter.allow(start + Duration::from_secs(305), max, window));
        // t=10 leaves at 310.
        assert!(limiter.allow(start + Duration::from_secs(310), max, window));
    }

    #[test]
    fn the_event_goes_into_the_environment() {
        let event = Event {
            id: 9,
            at: std::time::SystemTime::UNIX_EPOCH,
            kind: EventKind::Check(crate::health::CheckChange {
                check: Arc::from("db"),
                kind: "tcp",
                from: Status::Pass,
                to: Status::Fail,
                category: Some(Category::ConnectRefused),
                message: Arc::from("refused; $(rm -rf /)\0"),
                critical: true,
                groups: [Group::Readiness].into_iter().collect(),
            }),
        };
        let env: HashMap<String, String> = environment(&event, "on_failure").into_iter().collect();
        assert_eq!(env["HEALTHGATE_CHECK"], "db");
        assert_eq!(env["HEALTHGATE_STATUS"], "fail");
        assert_eq!(env["HEALTHGATE_PREVIOUS_STATUS"], "pass");
        assert_eq!(env["HEALTHGATE_CATEGORY"], "connect_refused");
        assert_eq!(env["HEALTHGATE_MESSAGE"], "refused; $(rm -rf /)");
        assert_eq!(env["HEALTHGATE_GROUPS"], "readiness");
        assert_eq!(env["HEALTHGATE_EVENT_ID"], "9");
        assert_eq!(env["HEALTHGATE_ACTION"], "on_failure");
    }
}
