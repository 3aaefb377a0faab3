//! What a consumer holds while maintenance windows are open: the latest
//! event of each check a window covers, and of each verdict while any
//! window is open (a check in maintenance is a likely cause of a verdict's
//! failure, and a liveness restart in the middle of maintenance is what a
//! window is there to prevent). When a window closes, what no open window
//! still covers is released, oldest first, for the consumer to act on as
//! if it had just happened: a failure that outlasted the window is told
//! (and its on_failure runs), one that recovered within it is not news.

use std::collections::HashMap;
use std::sync::Arc;

use super::coalesce::Subject;
use crate::health::{Event, EventKind, MaintenanceChange};

/// Most subjects held at once: one per check and verdict, so bounded by
/// the config; past it, the oldest held is released early.
const MAX_HELD: usize = 100_000;

/// The open windows and what they hold.
#[derive(Debug, Default)]
pub struct Hold {
    open: Vec<MaintenanceChange>,
    held: HashMap<Subject, Arc<Event>>,
}

impl Hold {
    /// Takes `event`: whether to act on it now (else it is held), and what
    /// its window's closing released.
    pub fn take(&mut self, event: Arc<Event>) -> (Option<Arc<Event>>, Vec<Arc<Event>>) {
        let subject = match &event.kind {
            EventKind::Maintenance(change) => {
                self.open.retain(|w| w.window != change.window);
                if change.open {
                    self.open.push(change.clone());
                    return (Some(event), Vec::new());
                }
                let released = self.release();
                return (Some(event), released);
            }
            EventKind::Check(c) if self.open.iter().any(|w| w.covers(&c.check)) => {
                Subject::Check(c.check.clone())
            }
            EventKind::Verdict(v) if !self.open.is_empty() => Subject::Verdict(v.verdict),
            _ => return (Some(event), Vec::new()),
        };
        let mut released = Vec::new();
        if self.held.len() >= MAX_HELD
            && !self.held.contains_key(&subject)
            && let Some(oldest) = self
                .held
                .iter()
                .min_by_key(|(_, e)| e.id)
                .map(|(s, _)| s.clone())
            && let Some(event) = self.held.remove(&oldest)
        {
            released.push(event);
        }
        self.held.insert(subject, event);
        (None, released)
    }

    /// Drops what it holds of the checks a reload removed.
    pub fn forget(&mut self, removed: &[Arc<str>]) {
        self.held
            .retain(|s, _| !matches!(s, Subject::Check(c) if removed.contains(c)));
    }

    /// Whether any window is open.
    pub fn is_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// What no open window covers any more, oldest first.
    fn release(&mut self) -> Vec<Arc<Event>> {
        let open = &self.open;
        let free: Vec<Subject> = self
            .held
            .keys()
            .filter(|s| match s {
                Subject::Check(name) => !open.iter().any(|w| w.covers(name)),
                Subject::Verdict(_) => open.is_empty(),
            })
            .cloned()
            .collect();
        let mut released: Vec<Arc<Event>> =
            free.iter().filter_map(|s| self.held.remove(s)).collect();
        released.sort_by_key(|e| e.id);
        released
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::health::{CheckChange, Group, Status, VerdictChange};

    fn event(id: u64, kind: EventKind) -> Arc<Event> {
        Arc::new(Event {
            id,
            at: SystemTime::now(),
            kind,
        })
    }

    fn check(id: u64, name: &str, to: Status) -> Arc<Event> {
        event(
            id,
            EventKind::Check(CheckChange {
                check: Arc::from(name),
                kind: "tcp",
                from: Status::Pass,
                to,
                category: None,
                message: Arc::from(""),
                critical: true,
                groups: Default::default(),
            }),
        )
    }

    fn window(id: u64, name: &str, open: bool, checks: Option<&[&str]>) -> Arc<Event> {
        event(
            id,
            EventKind::Maintenance(MaintenanceChange {
                window: Arc::from(name),
                open,
                until: None,
                checks: checks.map(|c| c.iter().map(|n| Arc::from(*n)).collect()),
            }),
        )
    }

    fn ids(events: &[Arc<Event>]) -> Vec<u64> {
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn a_window_holds_what_it_covers_and_releases_the_latest_when_it_closes() {
        let mut hold = Hold::default();
        assert!(
            hold.take(window(1, "db-upgrade", true, Some(&["db"])))
                .0
                .is_some()
        );
        // db is covered: held, the latest replacing the earlier; api is not.
        assert!(hold.take(check(2, "db", Status::Fail)).0.is_none());
        assert!(hold.take(check(3, "api", Status::Fail)).0.is_some());
        assert!(hold.take(check(4, "db", Status::Pass)).0.is_none());
        assert!(hold.take(check(5, "db", Status::Fail)).0.is_none());
        // Any open window holds the verdicts.
        let readiness = event(
            6,
            EventKind::Verdict(VerdictChange {
                verdict: Group::Readiness,
                ok: false,
                reason: String::new(),
            }),
        );
        assert!(hold.take(readiness).0.is_none());
        let (closing, released) = hold.take(window(7, "db-upgrade", false, Some(&["db"])));
        assert!(closing.is_some());
        assert_eq!(ids(&released), [5, 6]);
        assert!(!hold.is_open());
        assert!(hold.take(check(8, "db", Status::Pass)).0.is_some());
    }

    #[test]
    fn overlapping_windows_release_only_what_none_still_covers() {
        let mut hold = Hold::default();
        hold.take(window(1, "all", true, None));
        hold.take(window(2, "db-only", true, Some(&["db"])));
        hold.take(check(3, "db", Status::Fail));
        hold.take(check(4, "api", Status::Fail));
        let (_, released) = hold.take(window(5, "all", false, None));
        assert_eq!(ids(&released), [4], "db is still under db-only");
        let (_, released) = hold.take(window(6, "db-only", false, Some(&["db"])));
        assert_eq!(ids(&released), [3]);
    }
}
