//! Maintenance windows (`[[maintenance]]`): recurring (a cron pattern and
//! a duration) or one-off (a start and an end), for every check or named
//! ones. While one is open, failures are recorded as always, but
//! notifications and actions about what it covers wait until it closes
//! (`events::hold`); a window with `drain = true` drains the instance
//! (`maint`) while it is open. One task watches the wall clock and tells
//! the engine which windows are open whenever that changes.

pub mod config;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio::time::sleep_until;

use crate::config::cron::CronSchedule;
use crate::health::Open;
use crate::scheduler::{Wall, Windows};

/// Longest sleep between looks at the clock: a wall clock stepped forward
/// (NTP, a resumed VM) is noticed within it.
const RECHECK: Duration = Duration::from_secs(60);

/// One configured window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Its name.
    pub name: Arc<str>,
    /// When it is open.
    pub when: When,
    /// The checks it covers; `None`: every check.
    pub checks: Option<Arc<[Arc<str>]>>,
    /// Whether it drains the instance while open.
    pub drain: bool,
}

/// When a window is open.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// From each occurrence of `cron`, for `duration`.
    Recurring {
        /// When it opens.
        cron: CronSchedule,
        /// How long it stays open.
        duration: Duration,
    },
    /// From `start` until `end`.
    Once {
        /// When it opens.
        start: SystemTime,
        /// When it closes.
        end: SystemTime,
    },
}

impl Window {
    /// When it closes, if it is open at `now`.
    pub fn open_until(&self, now: SystemTime) -> Option<SystemTime> {
        match &self.when {
            When::Recurring { cron, duration } => {
                let opened = cron.last_at_or_before(now)?;
                let until = opened + *duration;
                (now < until).then_some(until)
            }
            When::Once { start, end } => (*start <= now && now < *end).then_some(*end),
        }
    }

    /// The next time after `now` it opens or closes; `None` if never.
    pub fn next_change(&self, now: SystemTime) -> Option<SystemTime> {
        if let Some(until) = self.open_until(now) {
            return Some(until);
        }
        match &self.when {
            When::Recurring { cron, .. } => cron.next_after(now),
            When::Once { start, .. } => (now < *start).then_some(*start),
        }
    }
}

/// The windows of `windows` open at `now`.
pub fn open_at(windows: &[Window], now: SystemTime) -> Vec<Open> {
    windows
        .iter()
        .filter_map(|w| {
            w.open_until(now).map(|until| Open {
                name: w.name.clone(),
                until,
                checks: w.checks.clone(),
                drain: w.drain,
            })
        })
        .collect()
}

/// The task that opens and closes `windows` on `wall`, telling `engine`;
/// stopped when dropped.
pub struct Watch(JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Watch {
    /// Starts watching (the windows open now are told at once).
    pub fn start(windows: Vec<Window>, engine: Windows, wall: Wall) -> Self {
        Self(tokio::spawn(watch(windows, engine, wall)))
    }
}

async fn watch(windows: Vec<Window>, engine: Windows, wall: Wall) {
    let mut told: Option<Vec<Open>> = None;
    loop {
        let now = wall.now();
        let open = open_at(&windows, now);
        if told.as_ref() != Some(&open) {
            engine.set(open.clone()).await;
            told = Some(open);
        }
        let next = windows.iter().filter_map(|w| w.next_change(now)).min();
        let wake = match next {
            Some(at) => wall
                .instant_at(at)
                .min(tokio::time::Instant::now() + RECHECK),
            None => tokio::time::Instant::now() + RECHECK,
        };
        sleep_until(wake).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    fn nightly() -> Window {
        Window {
            name: "backup".into(),
            when: When::Recurring {
                cron: CronSchedule::parse("0 2 * * *", "UTC").unwrap(),
                duration: Duration::from_secs(1800),
            },
            checks: None,
            drain: false,
        }
    }

    #[test]
    fn a_recurring_window_is_open_from_each_occurrence_for_its_duration() {
        let w = nightly();
        assert_eq!(w.open_until(at("2026-12-03T01:59:59Z")), None);
        assert_eq!(
            w.open_until(at("2026-12-03T02:00:00Z")),
            Some(at("2026-12-03T02:30:00Z"))
        );
        assert_eq!(
            w.open_until(at("2026-12-03T02:29:59Z")),
            Some(at("2026-12-03T02:30:00Z"))
        );
        assert_eq!(w.open_until(at("2026-12-03T02:30:00Z")), None);
        assert_eq!(
            w.next_change(at("2026-12-03T01:00:00Z")),
            Some(at("2026-12-03T02:00:00Z"))
        );
        assert_eq!(
            w.next_change(at("2026-12-03T02:10:00Z")),
            Some(at("2026-12-03T02:30:00Z"))
        );
        assert_eq!(
            w.next_change(at("2026-12-03T02:30:00Z")),
            Some(at("2026-12-04T02:00:00Z"))
        );
    }

    #[test]
    fn a_one_off_window_opens_once() {
        let w = Window {
            when: When::Once {
                start: at("2026-12-24T00:00:00Z"),
                end: at("2026-12-26T00:00:00Z"),
            },
            ..nightly()
        };
        assert_eq!(
            w.next_change(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-24T00:00:00Z"))
        );
        assert!(w.open_until(at("2026-12-25T12:00:00Z")).is_some());
        assert_eq!(w.next_change(at("2026-12-26T00:00:00Z")), None);
    }
}
