//! The wall clock that cron schedules and maintenance windows read. The
//! engine reads the system clock; a test reads tokio's clock from an
//! anchor, so a paused clock moves wall time too and hours of schedule
//! take no time at all.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// A wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub enum Wall {
    /// The system clock.
    #[default]
    System,
    /// tokio's clock, reading `anchor` at `origin`.
    Tokio {
        /// The wall time at `origin`.
        anchor: SystemTime,
        /// The tokio instant it was taken at.
        origin: Instant,
    },
}

impl Wall {
    /// tokio's clock, reading `anchor` now.
    pub fn tokio_from(anchor: SystemTime) -> Self {
        Wall::Tokio {
            anchor,
            origin: Instant::now(),
        }
    }

    /// The time now.
    pub fn now(&self) -> SystemTime {
        match self {
            Wall::System => SystemTime::now(),
            Wall::Tokio { anchor, origin } => *anchor + origin.elapsed(),
        }
    }

    /// The tokio instant at which this clock reads `at` (now, if `at` is past).
    pub fn instant_at(&self, at: SystemTime) -> Instant {
        let wait = at.duration_since(self.now()).unwrap_or(Duration::ZERO);
        Instant::now() + wait
    }
}
