//! At most one notification per subject (a check, a verdict) per
//! `min_interval`: a change within the interval waits, replaced by any
//! later change, and is sent when the interval ends only if its state
//! differs from the last one sent. A check flapping every second costs
//! one notification per interval, and a flap that ends where it began
//! costs none.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::health::{Event, EventKind, Group, Status};

/// What a notification is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A check.
    Check(Arc<str>),
    /// A verdict.
    Verdict(Group),
}

/// The state a receiver knows of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A check's status.
    Status(Status),
    /// A verdict's answer.
    Ok(bool),
}

impl Subject {
    /// The subject of `event`, with the state it reports; `None` for
    /// events that are not coalesced (drains, reloads).
    pub fn of(event: &Event) -> Option<(Subject, State)> {
        match &event.kind {
            EventKind::Check(c) => Some((Subject::Check(c.check.clone()), State::Status(c.to))),
            EventKind::Verdict(v) => Some((Subject::Verdict(v.verdict), State::Ok(v.ok))),
            _ => None,
        }
    }
}

/// Per-subject pacing of one notifier.
#[derive(Debug)]
pub struct Coalescer {
    min_interval: Duration,
    sent: HashMap<Subject, (Instant, State)>,
    waiting: HashMap<Subject, Arc<Event>>,
}

/// What to do with an event offered.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// Send it now.
    Send(Arc<Event>),
    /// It waits for its subject's interval to end.
    Held,
}

impl Coalescer {
    /// Paces subjects to one notification per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            sent: HashMap::new(),
            waiting: HashMap::new(),
        }
    }

    /// Takes `event` as of `now`.
    pub fn offer(&mut self, event: Arc<Event>, now: Instant) -> Offer {
        let Some((subject, state)) = Subject::of(&event) else {
            return Offer::Send(event);
        };
        match self.sent.get(&subject) {
            Some((at, _)) if now < *at + self.min_interval => {
                self.waiting.insert(subject, event);
                Offer::Held
            }
            _ => {
                self.waiting.remove(&subject);
                self.sent.insert(subject, (now, state));
                Offer::Send(event)
            }
        }
    }

    /// Forgets `subject` (a check removed): nothing held for it is sent,
    /// and a check of that name added later starts unpaced.
    pub fn forget(&mut self, subject: &Subject) {
        self.sent.remove(subject);
        self.waiting.remove(subject);
    }

    /// Whether `event` says what was last sent of its subject.
    pub fn unchanged(&self, event: &Event) -> bool {
        Subject::of(event).is_some_and(|(subject, state)| {
            self.sent
                .get(&subject)
                .is_some_and(|(_, sent)| *sent == state)
        })
    }

    /// When the earliest held event is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.waiting
            .keys()
            .filter_map(|s| self.sent.get(s).map(|(at, _)| *at + self.min_interval))
            .min()
    }

    /// The held events due by `now` whose state differs from the last one
    /// sent (to send), and how many were due but said nothing new (dropped).
    pub fn due(&mut self, now: Instant) -> (Vec<Arc<Event>>, usize) {
        let due: Vec<Subject> = self
            .waiting
            .keys()
            .filter(|s| {
                self.sent
                    .get(*s)
                    .is_none_or(|(at, _)| now >= *at + self.min_interval)
            })
            .cloned()
            .collect();
        let mut send = Vec::new();
        let mut unchanged = 0;
        for subject in due {
            let Some(event) = self.waiting.remove(&subject) else {
                continue;
            };
            let Some((_, state)) = Subject::of(&event) else {
                continue;
            };
            if self.sent.get(&subject).is_some_and(|(_, s)| *s == state) {
                unchanged += 1;
                continue;
            }
            self.sent.insert(subject, (now, state));
            send.push(event);
        }
        send.sort_by_key(|e| e.id);
        (send, unchanged)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::health::CheckChange;

    fn change(id: u64, from: Status, to: Status) -> Arc<Event> {
        Arc::new(Event {
            id,
            at: SystemTime::now(),
            kind: EventKind::Check(CheckChange {
                check: Arc::from("db"),
                kind: "tcp",
                from,
                to,
                category: None,
                message: Arc::from(""),
                critical: true,
                groups: Default::default(),
            }),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_flapping_check_sends_once_per_interval_with_its_latest_state() {
        let mut c = Coalescer::new(Duration::from_secs(30));
        let start = Instant::now();
        assert!(matches!(
            c.offer(change(1, Status::Pass, Status::Fail), start),
            Offer::Send(_)
        ));
        // Flaps within the interval are held, the latest replacing the rest.
        for s in 1..20u64 {
            let id = s + 1;
            let (from, to) = if s % 2 == 1 {
                (Status::Fail, Status::Pass)
            } else {
                (Status::Pass, Status::Fail)
            };
            assert_eq!(
                c.offer(change(id, from, to), start + Duration::from_secs(s)),
                Offer::Held
            );
        }
        assert_eq!(c.next_due(), Some(start + Duration::from_secs(30)));
        assert_eq!(c.due(start + Duration::from_secs(29)), (vec![], 0));
        // The latest (to pass, id 20) differs from what was sent (fail).
        let (sent, unchanged) = c.due(start + Duration::from_secs(30));
        assert_eq!(sent.iter().map(|e| e.id).collect::<Vec<_>>(), [20]);
        assert_eq!(unchanged, 0);
        assert_eq!(c.next_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flap_that_ends_where_it_began_sends_nothing_more() {
        let mut c = Coalescer::new(Duration::from_secs(30));
        let start = Instant::now();
        c.offer(change(1, Status::Pass, Status::Fail), start);
        c.offer(
            change(2, Status::Fail, Status::Pass),
            start + Duration::from_secs(1),
        );
        c.offer(
            change(3, Status::Pass, Status::Fail),
            start + Duration::from_secs(2),
        );
        assert_eq!(c.due(start + Duration::from_secs(30)), (vec![], 1));
        // Past the interval a change goes at once.
        let later = start + Duration::from_secs(31);
        assert!(matches!(
            c.offer(change(4, Status::Fail, Status::Pass), later),
            Offer::Send(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_sends_everything() {
        let mut c = Coalescer::new(Duration::ZERO);
        let now = Instant::now();
        for id in 1..5 {
            assert!(matches!(
                c.offer(change(id, Status::Pass, Status::Fail), now),
                Offer::Send(_)
            ));
        }
    }
}
