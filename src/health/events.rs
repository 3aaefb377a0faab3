//! The event model: every change worth acting on, numbered in the order it
//! happened, and the bus that hands each one to every consumer.
//!
//! The collector is the only producer ([`Bus::publish`]); it never waits.
//! Each consumer (a notifier, the actions, ...) has a bounded queue of its
//! own: an event it has no room for is dropped and counted
//! (`healthgate_events_dropped_total{consumer}`), never held against a probe
//! or an endpoint. The latest [`RING`] events are also kept in a ring,
//! from which live streams read (and resume with `Last-Event-ID`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde::ser::SerializeMap;
use tokio::sync::{mpsc, watch};

use super::{CheckView, Drain, DrainMode, Group, Groups, Open, ReloadRecord, Status, Transition};
use crate::probe::Category;

/// Events kept for live streams to resume from.
pub const RING: usize = 1024;

/// The version of the JSON shape of an event (webhooks, `/api/events`).
pub const VERSION: u32 = 1;

/// One change, as every consumer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Increases by one per event from 1, for as long as the process runs.
    pub id: u64,
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A check's status changed.
    Check(CheckChange),
    /// `/livez`, `/readyz` or `/startupz` changed between 200 and 503.
    Verdict(VerdictChange),
    /// A drain started (`Some`) or ended (`None`).
    Drain(Option<DrainStart>),
    /// A maintenance window opened or closed.
    Maintenance(MaintenanceChange),
    /// A config reload was applied or rejected.
    Reload {
        /// Whether the new config is running.
        successful: bool,
        /// What changed, or why it was refused.
        message: String,
        /// The checks an applied reload removed: whatever was said about
        /// them (a firing alert, a failure not yet recovered) is over.
        removed: Arc<[Arc<str>]>,
    },
}

/// A maintenance window opening or closing.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceChange {
    /// The window.
    pub window: Arc<str>,
    /// Whether it opened (else it closed).
    pub open: bool,
    /// When it closes (on opening).
    pub until: Option<SystemTime>,
    /// The checks it covers; `None`: every check.
    pub checks: Option<Arc<[Arc<str>]>>,
}

impl MaintenanceChange {
    /// The changes from the windows `before` to those of `after`: closings,
    /// then openings. A window a reload changed (its checks, its end)
    /// closes and opens again, so consumers see what it covers now.
    pub fn between(before: &[Open], after: &[Open]) -> Vec<MaintenanceChange> {
        let closed = before
            .iter()
            .filter(|b| !after.contains(b))
            .map(|b| MaintenanceChange {
                window: b.name.clone(),
                open: false,
                until: None,
                checks: b.checks.clone(),
            });
        let opened = after
            .iter()
            .filter(|a| !before.contains(a))
            .map(|a| MaintenanceChange {
                window: a.name.clone(),
                open: true,
                until: Some(a.until),
                checks: a.checks.clone(),
            });
        closed.chain(opened).collect()
    }

    /// Whether it is about `check`.
    pub fn covers(&self, check: &str) -> bool {
        self.checks
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| &**n == check))
    }
}

/// A check's change of status.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckChange {
    /// The check.
    pub check: Arc<str>,
    /// Its type (`http`, `tcp`, ...).
    pub kind: &'static str,
    /// Status before.
    pub from: Status,
    /// Status now.
    pub to: Status,
    /// Why the latest run failed or warned, if it did.
    pub category: Option<Category>,
    /// The latest run's message.
    pub message: Arc<str>,
    /// Whether the check is critical.
    pub critical: bool,
    /// The verdicts it takes part in.
    pub groups: Groups,
}

impl CheckChange {
    /// The change `transition` made to `view`.
    pub fn of(view: &CheckView, transition: Transition) -> Self {
        let last = view.last();
        Self {
            check: view.name.clone(),
            kind: view.kind,
            from: transition.from,
            to: transition.to,
            category: last.and_then(|l| l.failure.or(l.warning)),
            message: last.map_or_else(|| Arc::from(""), |l| l.message.clone()),
            critical: view.critical,
            groups: view.groups,
        }
    }
}

/// A verdict's change.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictChange {
    /// Which verdict.
    pub verdict: Group,
    /// Whether it now answers 200.
    pub ok: bool,
    /// Its one-line reason.
    pub reason: String,
}

/// A drain that started.
#[derive(Debug, Clone, PartialEq)]
pub struct DrainStart {
    /// Why.
    pub reason: String,
    /// `drain` or `maint`.
    pub mode: DrainMode,
    /// Started by a shutdown signal.
    pub shutdown: bool,
}

impl From<&Drain> for DrainStart {
    fn from(d: &Drain) -> Self {
        Self {
            reason: d.reason.clone(),
            mode: d.mode,
            shutdown: d.shutdown,
        }
    }
}

impl EventKind {
    /// The event of reload `r`, which removed the checks `removed`.
    pub fn reload(r: &ReloadRecord, removed: Vec<Arc<str>>) -> Self {
        EventKind::Reload {
            successful: r.successful,
            message: r.message.clone(),
            removed: removed.into(),
        }
    }
}

impl Event {
    /// The `type` field of its JSON: `check`, `verdict`, `drain` or `reload`.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            EventKind::Check(_) => "check",
            EventKind::Verdict(_) => "verdict",
            EventKind::Drain(_) => "drain",
            EventKind::Maintenance(_) => "maintenance",
            EventKind::Reload { .. } => "reload",
        }
    }

    /// Whether this event is a failure (`true`) or a recovery (`false`);
    /// `None` for events that are neither (a reload applied, a check starting).
    pub fn failing(&self) -> Option<bool> {
        match &self.kind {
            EventKind::Check(c) => match c.to {
                Status::Fail | Status::Warn => Some(true),
                Status::Pass => Some(false),
                Status::Starting => None,
            },
            EventKind::Verdict(v) => Some(!v.ok),
            EventKind::Drain(_) | EventKind::Maintenance(_) => None,
            EventKind::Reload { successful, .. } => (!successful).then_some(true),
        }
    }
}

/// The JSON shape, version [`VERSION`]: `version`, `id`, `time` (RFC 3339),
/// `type`, then the fields of the type. Documented in the README.
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("version", &VERSION)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry(
            "time",
            &humantime::format_rfc3339_millis(self.at).to_string(),
        )?;
        m.serialize_entry("type", self.type_name())?;
        match &self.kind {
            EventKind::Check(c) => {
                m.serialize_entry("check", &*c.check)?;
                m.serialize_entry("check_type", c.kind)?;
                m.serialize_entry("from", c.from.as_str())?;
                m.serialize_entry("to", c.to.as_str())?;
                m.serialize_entry("category", &c.category.map(Category::as_str))?;
                m.serialize_entry("message", &*c.message)?;
                m.serialize_entry("critical", &c.critical)?;
                let groups: Vec<&str> = c.groups.iter().map(Group::as_str).collect();
                m.serialize_entry("groups", &groups)?;
            }
            EventKind::Verdict(v) => {
                m.serialize_entry("verdict", v.verdict.as_str())?;
                m.serialize_entry("endpoint", v.verdict.endpoint())?;
                m.serialize_entry("ok", &v.ok)?;
                m.serialize_entry("reason", &v.reason)?;
            }
            EventKind::Drain(drain) => {
                m.serialize_entry("draining", &drain.is_some())?;
                if let Some(d) = drain {
                    m.serialize_entry("reason", &d.reason)?;
                    m.serialize_entry("mode", d.mode.as_str())?;
                    m.serialize_entry("shutdown", &d.shutdown)?;
                }
            }
            EventKind::Maintenance(w) => {
                m.serialize_entry("window", &*w.window)?;
                m.serialize_entry("open", &w.open)?;
                if let Some(until) = w.until {
                    m.serialize_entry(
                        "until",
                        &humantime::format_rfc3339_seconds(until).to_string(),
                    )?;
                }
                let checks: Option<Vec<&str>> =
                    w.checks.as_ref().map(|c| c.iter().map(|n| &**n).collect());
                m.serialize_entry("checks", &checks)?;
            }
            EventKind::Reload {
                successful,
                message,
                removed,
            } => {
                m.serialize_entry("successful", successful)?;
                m.serialize_entry("message", message)?;
                let removed: Vec<&str> = removed.iter().map(|c| &**c).collect();
                m.serialize_entry("removed", &removed)?;
            }
        }
        m.end()
    }
}

/// Where events go: the producer's side and every consumer's queue.
#[derive(Clone, Default)]
pub struct Bus(Arc<Shared>);

#[derive(Default)]
struct Shared {
    consumers: ArcSwap<Vec<Consumer>>,
    ring: Mutex<VecDeque<Arc<Event>>>,
    /// The id of the latest event (0: none yet); streams wait on it.
    latest: watch::Sender<u64>,
    /// Events dropped per consumer.
    dropped: Mutex<BTreeMap<Arc<str>, u64>>,
}

#[derive(Clone)]
struct Consumer {
    name: Arc<str>,
    queue: mpsc::Sender<Arc<Event>>,
}

/// A consumer's end of the bus: its queue.
pub type Queue = mpsc::Receiver<Arc<Event>>;

impl Bus {
    /// Numbers `kind` with the next id and offers it to every consumer and
    /// the ring. Never waits. One producer only (the collector): the id is
    /// read and advanced without a lock.
    pub fn publish(&self, kind: EventKind, at: SystemTime) -> Arc<Event> {
        let id = *self.0.latest.borrow() + 1;
        let event = Arc::new(Event { id, at, kind });
        {
            let mut ring = self.0.ring.lock().unwrap_or_else(PoisonError::into_inner);
            if ring.len() == RING {
                ring.pop_front();
            }
            ring.push_back(event.clone());
        }
        self.0.latest.send_replace(id);
        for consumer in self.0.consumers.load().iter() {
            if consumer.queue.try_send(event.clone()).is_err() {
                self.dropped(&consumer.name);
            }
        }
        event
    }

    /// Counts drops for `consumer` from now on, starting at 0 (a series
    /// that exists before its first drop).
    pub fn count_drops(&self, consumer: &str) {
        let mut dropped = self
            .0
            .dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        dropped.entry(Arc::from(consumer)).or_insert(0);
    }

    /// Adds the consumer `name` with a queue of `capacity` events (one of
    /// that name already there is replaced: its queue closes). Its drops
    /// are counted from 0.
    pub fn attach(&self, name: &str, capacity: usize) -> Queue {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let name: Arc<str> = Arc::from(name);
        self.count_drops(&name);
        self.0.consumers.rcu(|current| {
            let mut next: Vec<Consumer> = current
                .iter()
                .filter(|c| c.name != name)
                .map(Consumer::clone)
                .collect();
            next.push(Consumer {
                name: name.clone(),
                queue: queue.clone(),
            });
            next
        });
        rx
    }

    /// Removes the consumer `name` (its queue closes) and its drop count.
    pub fn detach(&self, name: &str) {
        self.0.consumers.rcu(|current| {
            current
                .iter()
                .filter(|c| &*c.name != name)
                .map(Consumer::clone)
                .collect::<Vec<_>>()
        });
        let mut dropped = self
            .0
            .dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        dropped.remove(name);
    }

    /// Counts an event `consumer` could not take.
    pub fn dropped(&self, consumer: &str) {
        let mut dropped = self
            .0
            .dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match dropped.get_mut(consumer) {
            Some(n) => *n += 1,
            None => {
                dropped.insert(Arc::from(consumer), 1);
            }
        }
    }

    /// Events dropped so far, per consumer.
    pub fn drops(&self) -> Vec<(Arc<str>, u64)> {
        let dropped = self
            .0
            .dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        dropped.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Events waiting in each consumer's queue.
    pub fn depths(&self) -> Vec<(Arc<str>, usize)> {
        let consumers = self.0.consumers.load();
        consumers
            .iter()
            .map(|c| (c.name.clone(), c.queue.max_capacity() - c.queue.capacity()))
            .collect()
    }

    /// The id of the latest event, and a receiver woken at each new one.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.latest.subscribe()
    }

    /// The events after `id` still in the ring, oldest first, and whether
    /// every event after `id` is among them (`false`: some have left the ring).
    pub fn since(&self, id: u64) -> (Vec<Arc<Event>>, bool) {
        let ring = self.0.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let complete = ring.front().is_none_or(|first| first.id <= id + 1);
        let after = ring.iter().filter(|e| e.id > id).cloned().collect();
        (after, complete)
    }

    /// The id of the latest event.
    pub fn latest(&self) -> u64 {
        *self.0.latest.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reload(n: u64) -> EventKind {
        EventKind::Reload {
            successful: n % 2 == 0,
            message: format!("reload {n}"),
            removed: Arc::new([]),
        }
    }

    #[test]
    fn ids_increase_by_one_and_the_ring_keeps_the_latest() {
        let bus = Bus::default();
        for n in 0..(RING as u64 + 10) {
            assert_eq!(bus.publish(reload(n), SystemTime::now()).id, n + 1);
        }
        let (all, complete) = bus.since(0);
        assert!(!complete, "the first ten left the ring");
        assert_eq!(all.len(), RING);
        assert_eq!(all[0].id, 11);
        let (tail, complete) = bus.since(RING as u64 + 5);
        assert!(complete);
        let ids: Vec<u64> = tail.iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            (RING as u64 + 6..=RING as u64 + 10).collect::<Vec<_>>()
        );
        assert!(bus.since(bus.latest()).0.is_empty());
    }

    /// A consumer that does not read loses what its queue cannot hold, and
    /// the loss is counted under its name; the others get everything.
    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_holding_the_others() {
        let bus = Bus::default();
        let _slow = bus.attach("slow", 2);
        let mut fast = bus.attach("fast", 2);
        let mut got = Vec::new();
        for n in 0..5 {
            bus.publish(reload(n), SystemTime::now());
            got.push(fast.recv().await.unwrap().id);
        }
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert_eq!(
            bus.drops(),
            [(Arc::from("fast"), 0), (Arc::from("slow"), 3)]
        );
        let depths = bus.depths();
        assert_eq!(depths, [(Arc::from("slow"), 2), (Arc::from("fast"), 0)]);
        // Replaced: the old queue closes; detached: gone, with its count.
        let mut again = bus.attach("fast", 4);
        bus.detach("slow");
        bus.publish(reload(6), SystemTime::now());
        assert_eq!(again.recv().await.unwrap().id, 6);
        assert!(fast.recv().await.is_none());
        assert_eq!(bus.drops(), [(Arc::from("fast"), 0)]);
    }

    /// The documented shape of version 1 (README: "Events").
    #[test]
    fn the_json_of_a_check_change() {
        let event = Event {
            id: 7,
            at: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            kind: EventKind::Check(CheckChange {
                check: Arc::from("db"),
                kind: "tcp",
                from: Status::Pass,
                to: Status::Fail,
                category: Some(Category::Connect),
                message: Arc::from("connection refused"),
                critical: true,
                groups: [Group::Readiness].into_iter().collect(),
            }),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1, "id": 7, "time": "2023-11-14T22:13:20.123Z", "type": "check",
                "check": "db", "check_type": "tcp", "from": "pass", "to": "fail",
                "category": "connect", "message": "connection refused", "critical": true,
                "groups": ["readiness"],
            })
        );
        assert_eq!(event.failing(), Some(true));
    }

    #[test]
    fn a_window_changed_by_a_reload_closes_and_opens_again() {
        let open = |name: &str, checks: Option<&[&str]>| Open {
            name: name.into(),
            until: SystemTime::UNIX_EPOCH,
            checks: checks.map(|c| c.iter().map(|n| Arc::from(*n)).collect()),
            drain: false,
        };
        let before = [open("a", None), open("b", Some(&["db"]))];
        let after = [open("b", Some(&["db", "api"])), open("c", None)];
        let changes: Vec<(String, bool)> = MaintenanceChange::between(&before, &after)
            .into_iter()
            .map(|c| (c.window.to_string(), c.open))
            .collect();
        let expected =
            [("a", false), ("b", false), ("b", true), ("c", true)].map(|(n, o)| (n.to_owned(), o));
        assert_eq!(changes, expected);
        assert!(MaintenanceChange::between(&after, &after).is_empty());
    }
}
