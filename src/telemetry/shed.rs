//! Connections the listeners closed to protect themselves, counted for
//! `healthgate_connections_shed_total{listener, reason}` and logged at most
//! once a minute, so a flood of sockets is seen without flooding the log.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The listeners whose connections are counted (the `listener` label).
pub const LISTENERS: [&str; 3] = ["lb", "admin", "grpc"];
/// Shortest time between two log lines about shed connections.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why a connection was closed by its listener (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Shed to make room for a new connection at the listener's cap.
    Cap,
    /// No complete request head within the header timeout of its accept.
    Timeout,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Cap => "cap",
            Reason::Timeout => "header_timeout",
        }
    }

    const ALL: [Reason; 2] = [Reason::Cap, Reason::Timeout];
}

/// Shed connections by listener and reason.
#[derive(Debug, Default)]
pub struct Shed {
    counts: [[AtomicU64; 2]; LISTENERS.len()],
    /// When the last line was logged, and the total it reported.
    logged: Mutex<Option<(Instant, u64)>>,
}

impl Shed {
    /// Counts one connection of `listener` closed for `reason`, and logs the
    /// count if a minute has passed since the last line.
    pub fn count(&self, listener: &'static str, reason: Reason) {
        let Some(slot) = self.slot(listener, reason) else {
            return;
        };
        slot.fetch_add(1, Ordering::Relaxed);
        self.maybe_log(listener, reason);
    }

    /// The count for `listener` and `reason`.
    pub fn get(&self, listener: &str, reason: Reason) -> u64 {
        self.slot(listener, reason)
            .map_or(0, |slot| slot.load(Ordering::Relaxed))
    }

    /// Every count, with its labels.
    pub fn each(&self) -> impl Iterator<Item = (&'static str, Reason, u64)> + '_ {
        LISTENERS.iter().flat_map(move |listener| {
            Reason::ALL
                .iter()
                .map(move |reason| (*listener, *reason, self.get(listener, *reason)))
        })
    }

    fn total(&self) -> u64 {
        self.each().map(|(_, _, n)| n).sum()
    }

    fn slot(&self, listener: &str, reason: Reason) -> Option<&AtomicU64> {
        let index = LISTENERS.iter().position(|l| *l == listener)?;
        Some(&self.counts[index][reason as usize])
    }

    fn maybe_log(&self, listener: &'static str, reason: Reason) {
        // Another thread logging now covers this count too.
        let Ok(mut logged) = self.logged.try_lock() else {
            return;
        };
        let now = Instant::now();
        if logged.is_some_and(|(at, _)| now.saturating_duration_since(at) < LOG_EVERY) {
            return;
        }
        let total = self.total();
        let since = total - logged.map_or(0, |(_, n)| n.min(total));
        *logged = Some((now, total));
        tracing::warn!(
            listener,
            reason = reason.as_str(),
            shed = since,
            "connections closed to keep the listener answering: {since} since the last \
             report (too many open at once, or none sent a request in time); see \
             healthgate_connections_shed_total"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_by_listener_and_reason() {
        let shed = Shed::default();
        shed.count("lb", Reason::Cap);
        shed.count("lb", Reason::Cap);
        shed.count("grpc", Reason::Timeout);
        shed.count("nonsense", Reason::Timeout);
        assert_eq!(shed.get("lb", Reason::Cap), 2);
        assert_eq!(shed.get("lb", Reason::Timeout), 0);
        assert_eq!(shed.get("grpc", Reason::Timeout), 1);
        assert_eq!(shed.each().count(), 6);
        assert_eq!(shed.total(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn logs_at_most_once_a_minute() {
        let shed = Shed::default();
        shed.count("lb", Reason::Cap);
        let first = shed.logged.lock().unwrap().unwrap();
        assert_eq!(first.1, 1);
        tokio::time::advance(Duration::from_secs(59)).await;
        for _ in 0..100 {
            shed.count("lb", Reason::Cap);
        }
        assert_eq!(shed.logged.lock().unwrap().unwrap(), first);
        tokio::time::advance(Duration::from_secs(2)).await;
        shed.count("admin", Reason::Timeout);
        let second = shed.logged.lock().unwrap().unwrap();
        assert_eq!(second.1, 102);
        assert!(second.0 > first.0);
    }
}
