//! HAProxy agent-check (`agent-check agent-port N` on a server line): one
//! ASCII line per connection, then close.
//!
//! | state                                   | line                    |
//! |-----------------------------------------|-------------------------|
//! | ready                                   | `up ready`              |
//! | ready, a check `warn` (a warning, or a failing non-critical check), `weight_on_warn = 50` | `up ready 50%` |
//! | not ready (or not started)              | `down ready #<reason>`  |
//! | draining (shutdown or `/admin/drain`)   | `drain #<reason>`       |
//! | maintenance (`/admin/drain` `maint`)    | `maint #<reason>`       |
//!
//! `ready` lifts a `drain` or `maint` HAProxy still holds from an earlier
//! answer; with `weight_on_warn` set, `up` always carries a weight (`100%`
//! when all is well), since HAProxy keeps the last weight it was told.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{Context, Stopped};
use crate::health::{Snapshot, Status};

/// Longest a client may take to read the line.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections answered at once.
const MAX_CONNECTIONS: usize = 256;
/// Longest reason put on a line.
const MAX_REASON: usize = 200;

/// Answers each connection with the current state until stopped.
pub async fn serve(listener: TcpListener, ctx: Context, stopped: Stopped) {
    let slots = std::sync::Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stopped);
    loop {
        let mut stream = tokio::select! {
            _ = &mut stopped => return,
            stream = super::next_connection(&listener) => stream,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let snapshot = ctx.published.load();
        let weight = ctx.settings.load().agent_weight_on_warn;
        let line = line(&snapshot, weight);
        if !snapshot.readiness.ok {
            ctx.seen.answered(&snapshot);
        }
        tokio::spawn(async move {
            let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
                stream.write_all(line.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
            drop(slot);
        });
    }
}

/// The agent's answer for `snapshot`.
pub fn line(snapshot: &Snapshot, weight_on_warn: Option<u8>) -> String {
    if let Some(drain) = &snapshot.drain {
        return format!("{} #{}\n", drain.mode.as_str(), reason(&drain.reason));
    }
    if !snapshot.readiness.ok {
        let why = String::from_utf8_lossy(&snapshot.readiness.reason);
        return format!("down ready #{}\n", reason(&why));
    }
    match weight_on_warn {
        None => "up ready\n".to_owned(),
        Some(weight) => {
            let degraded = snapshot.checks.iter().any(|c| c.status != Status::Pass);
            let weight = if degraded { weight } else { 100 };
            format!("up ready {weight}%\n")
        }
    }
}

/// Printable ASCII on one line, bounded.
fn reason(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(MAX_REASON)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::DrainMode;

    #[test]
    fn a_reason_is_one_bounded_line_of_printable_ascii() {
        let hostile = format!("deploy\n42\r\u{1b}[31m\0é{}", "x".repeat(1000));
        let shown = reason(&hostile);
        assert_eq!(shown.chars().count(), MAX_REASON);
        assert!(
            shown.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "{shown:?}"
        );
        assert!(shown.starts_with("deploy?42??[31m??xxx"), "{shown:?}");
        assert_eq!(reason("short"), "short");
    }

    #[test]
    fn the_line_follows_readiness_and_carries_a_weight_when_asked() {
        use crate::health::fixture::{Fixture, passed, refused, snapshot};
        use crate::health::{Drain, Group};
        let checks = |api, cache| {
            snapshot(&[
                Fixture {
                    name: "api",
                    groups: &[Group::Readiness],
                    critical: true,
                    ran: api,
                },
                Fixture {
                    name: "cache",
                    groups: &[Group::Readiness],
                    critical: false,
                    ran: cache,
                },
            ])
        };
        let healthy = checks(passed(), passed());
        assert_eq!(line(&healthy, None), "up ready\n");
        assert_eq!(line(&healthy, Some(50)), "up ready 100%\n");
        let degraded = checks(passed(), refused());
        assert_eq!(line(&degraded, None), "up ready\n");
        assert_eq!(line(&degraded, Some(50)), "up ready 50%\n");
        let down = checks(refused(), passed());
        let said = line(&down, Some(50));
        assert!(said.starts_with("down ready #"), "{said:?}");
        assert!(
            said.ends_with('\n') && said.matches('\n').count() == 1,
            "{said:?}"
        );
        let mut draining = checks(passed(), passed());
        draining.drain = Some(Drain {
            mode: DrainMode::Drain,
            reason: "deploy\n42".into(),
            since: std::time::SystemTime::now(),
            shutdown: false,
        });
        assert_eq!(line(&draining, None), "drain #deploy?42\n");
        draining.drain = Some(Drain {
            mode: DrainMode::Maintenance,
            reason: "disk swap".into(),
            since: std::time::SystemTime::now(),
            shutdown: false,
        });
        assert_eq!(line(&draining, Some(50)), "maint #disk swap\n");
    }
}
