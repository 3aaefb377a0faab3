//! Cron schedules in a named time zone: a check's `schedule` and a
//! maintenance window's `cron`. Five fields (minute, hour, day of month,
//! month, day of week, as crontab(5): names, ranges, steps, `L`, `#`) or a
//! macro (`@hourly`, `@daily`, ...), parsed by `croner`, which also walks
//! daylight-saving changes: a time skipped by a spring-forward runs at the
//! first time after the gap, a time repeated by a fall-back runs once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Longest pattern accepted.
const MAX_PATTERN: usize = 256;

/// Why a schedule was refused: its time zone, or its pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The time zone is not an IANA name.
    #[error("unknown time zone `{0}`: give an IANA name such as `UTC` or `Europe/Berlin`")]
    Zone(String),
    /// The pattern does not parse, or never matches.
    #[error("{0}")]
    Pattern(String),
}

/// A cron pattern in a time zone; one pointer, as every check holds one.
#[derive(Clone)]
pub struct CronSchedule(Arc<Inner>);

struct Inner {
    cron: Cron,
    tz: Tz,
    pattern: Box<str>,
}

impl std::fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0.pattern, self.0.tz.name())
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.0.pattern == other.0.pattern && self.0.tz == other.0.tz
    }
}

impl CronSchedule {
    /// `pattern` in the time zone `tz` (an IANA name: `UTC`,
    /// `Europe/Berlin`). A pattern that never matches (`0 0 30 2 *`) is an
    /// error, not a check that never runs.
    pub fn parse(pattern: &str, tz: &str) -> Result<Self, CronError> {
        let tz = Tz::from_str(tz).map_err(|_| CronError::Zone(tz.to_owned()))?;
        if pattern.len() > MAX_PATTERN {
            return Err(CronError::Pattern(format!(
                "at most {MAX_PATTERN} characters"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|e| {
                CronError::Pattern(format!("invalid cron pattern `{pattern}`: {e} (five fields: minute hour day-of-month month day-of-week)"))
            })?;
        let schedule = Self(Arc::new(Inner {
            cron,
            tz,
            pattern: Box::from(pattern),
        }));
        if schedule.next_after(SystemTime::now()).is_none() {
            return Err(CronError::Pattern(format!(
                "`{pattern}` never matches a date"
            )));
        }
        Ok(schedule)
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.0.pattern
    }

    /// The first time the pattern matches strictly after `after` (whole
    /// seconds); `None` if it never does again.
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        let start = DateTime::<Utc>::from(floor_seconds(after)).with_timezone(&self.0.tz);
        let next = self.0.cron.find_next_occurrence(&start, false).ok()?;
        Some(SystemTime::from(next.with_timezone(&Utc)))
    }

    /// The last time the pattern matched at or before `at`; `None` if it
    /// never did.
    pub fn last_at_or_before(&self, at: SystemTime) -> Option<SystemTime> {
        let start = DateTime::<Utc>::from(floor_seconds(at)).with_timezone(&self.0.tz);
        let previous = self.0.cron.find_previous_occurrence(&start, true).ok()?;
        Some(SystemTime::from(previous.with_timezone(&Utc)))
    }
}

fn floor_seconds(at: SystemTime) -> SystemTime {
    let seconds = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    fn shown(t: Option<SystemTime>) -> String {
        humantime::format_rfc3339(t.unwrap()).to_string()
    }

    #[test]
    fn every_six_hours_in_utc_and_in_berlin() {
        let utc = CronSchedule::parse("0 */6 * * *", "UTC").unwrap();
        assert_eq!(
            shown(utc.next_after(at("2026-12-03T10:15:42.5Z"))),
            "2026-12-03T12:00:00Z"
        );
        // Exactly on an occurrence: the next one, not itself.
        assert_eq!(
            shown(utc.next_after(at("2026-12-03T12:00:00Z"))),
            "2026-12-03T18:00:00Z"
        );
        // Berlin is UTC+1 in winter: 12:00 there is 11:00 UTC.
        let berlin = CronSchedule::parse("0 */6 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            shown(berlin.next_after(at("2026-12-03T10:15:00Z"))),
            "2026-12-03T11:00:00Z"
        );
        assert_eq!(
            shown(berlin.last_at_or_before(at("2026-12-03T10:15:00Z"))),
            "2026-12-03T05:00:00Z"
        );
    }

    #[test]
    fn daylight_saving_changes_neither_skip_nor_repeat_a_run() {
        let daily = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // 2027-03-28 02:30 does not exist in Berlin (02:00 -> 03:00): it runs
        // at the first time after the gap, 03:00 CEST = 01:00 UTC.
        assert_eq!(
            shown(daily.next_after(at("2027-03-27T12:00:00Z"))),
            "2027-03-28T01:00:00Z"
        );
        // 2027-10-31 02:30 happens twice: it runs once, at the first (CEST, 00:30 UTC).
        let first = daily.next_after(at("2027-10-30T12:00:00Z"));
        assert_eq!(shown(first), "2027-10-31T00:30:00Z");
        assert_eq!(
            shown(daily.next_after(first.unwrap())),
            "2027-11-01T01:30:00Z"
        );
    }

    #[test]
    fn bad_patterns_and_zones_are_refused_with_the_reason() {
        for (pattern, tz, says) in [
            ("0 */6 * *", "UTC", "five fields"),
            ("* * * * * *", "UTC", "invalid cron pattern"),
            ("61 * * * *", "UTC", "invalid cron pattern"),
            ("0 0 30 2 *", "UTC", "never matches"),
            (
                "0 * * * *",
                "Mars/Olympus",
                "unknown time zone `Mars/Olympus`",
            ),
            ("", "UTC", "invalid cron pattern"),
        ] {
            let error = CronSchedule::parse(pattern, tz).unwrap_err().to_string();
            assert!(error.contains(says), "{pattern} {tz}: {error}");
        }
        let long = "0 ".repeat(200);
        assert!(
            CronSchedule::parse(&long, "UTC")
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
        assert!(CronSchedule::parse("@daily", "UTC").is_ok());
        assert!(CronSchedule::parse("0 9 * * MON-FRI", "America/New_York").is_ok());
    }
}
