//! `[[maintenance]]`: windows during which failures are recorded but
//! notifications and actions are held, optionally draining the instance.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{When, Window};
use crate::config::bounded::Positive;
use crate::config::cron::{CronError, CronSchedule};
use crate::config::problems::{Problems, nearest};

/// Longest window: a week.
const MAX_WINDOW_SECS: u64 = 7 * 24 * 3600;
/// Most windows.
const MAX_WINDOWS: usize = 64;

/// One `[[maintenance]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSection {
    /// Unique name, shown in events, the API and the drain reason: 1 to 63
    /// of `a-z`, `0-9`, `_` and `-`.
    pub name: crate::config::CheckName,
    /// When a recurring window opens: a cron pattern (five fields or
    /// `@daily`...) in `timezone`. With `duration`; not with `start`/`end`.
    #[serde(default)]
    pub cron: Option<String>,
    /// How long a recurring window stays open, at most `"7d"`.
    #[serde(default, with = "humantime_serde::option")]
    pub duration: Option<std::time::Duration>,
    /// The IANA time zone of `cron`. Default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A one-off window's start, RFC 3339 (`2026-12-24T00:00:00Z`). With `end`.
    #[serde(default)]
    pub start: Option<String>,
    /// A one-off window's end, RFC 3339, after `start`.
    #[serde(default)]
    pub end: Option<String>,
    /// The checks it covers (names). Default: every check. Verdict
    /// notifications and actions are held by any open window.
    #[serde(default)]
    pub checks: Option<Vec<String>>,
    /// Drain the instance (`maint` in every dialect: /readyz 503, HAProxy
    /// `maint`, gRPC NOT_SERVING) while the window is open. Default `false`.
    #[serde(default)]
    pub drain: bool,
}

/// The windows of `root`'s `[[maintenance]]`, every problem reported;
/// `checks` are the names configured.
pub fn parse(problems: &mut Problems, root: &Map<String, Value>, checks: &[&str]) -> Vec<Window> {
    let items = match root.get("maintenance") {
        None => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            problems.push(
                None,
                "maintenance",
                "expected a list of [[maintenance]] tables".into(),
            );
            return Vec::new();
        }
    };
    if items.len() > MAX_WINDOWS {
        problems.push(
            None,
            "maintenance",
            format!("at most {MAX_WINDOWS} windows"),
        );
        return Vec::new();
    }
    let mut windows: Vec<Window> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let key = match item.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => format!("maintenance.{name}"),
            _ => format!("maintenance[{index}]"),
        };
        let Some(section) = problems.parse::<MaintenanceSection>(None, &key, item.clone()) else {
            continue;
        };
        let name: Arc<str> = Arc::from(section.name.as_str());
        if windows.iter().any(|w| w.name == name) {
            problems.push(
                None,
                &key,
                "duplicate name; window names must be unique".into(),
            );
            continue;
        }
        let mut bad =
            |k: &str, message: String| problems.push(None, &format!("{key}.{k}"), message);
        let when = match (&section.cron, &section.start) {
            (Some(_), Some(_)) => {
                bad(
                    "cron",
                    "give `cron` with `duration`, or `start` with `end`, not both".into(),
                );
                continue;
            }
            (None, None) => {
                bad(
                    "cron",
                    "missing: give `cron` with `duration`, or `start` with `end`".into(),
                );
                continue;
            }
            (Some(pattern), None) => {
                if section.end.is_some() {
                    bad("end", "goes with `start`, not `cron`".into());
                    continue;
                }
                let Some(duration) = section.duration else {
                    bad(
                        "duration",
                        "missing: how long each window stays open".into(),
                    );
                    continue;
                };
                if let Err(message) = Positive::<MAX_WINDOW_SECS>::new(duration) {
                    bad("duration", message);
                    continue;
                }
                let tz = section.timezone.as_deref().unwrap_or("UTC");
                match CronSchedule::parse(pattern, tz) {
                    Ok(cron) => When::Recurring { cron, duration },
                    Err(error) => {
                        let k = match error {
                            CronError::Zone(_) => "timezone",
                            CronError::Pattern(_) => "cron",
                        };
                        bad(k, error.to_string());
                        continue;
                    }
                }
            }
            (None, Some(start)) => {
                if section.duration.is_some() || section.timezone.is_some() {
                    bad(
                        "start",
                        "`duration` and `timezone` go with `cron`; give `end`".into(),
                    );
                    continue;
                }
                let Some(end) = &section.end else {
                    bad("end", "missing: when the window closes (RFC 3339)".into());
                    continue;
                };
                let (Some(start), Some(end)) =
                    (time(&mut bad, "start", start), time(&mut bad, "end", end))
                else {
                    continue;
                };
                if end <= start {
                    bad("end", "must be after `start`".into());
                    continue;
                }
                When::Once { start, end }
            }
        };
        let covered = match section.checks {
            None => None,
            Some(names) => {
                let mut unknown = false;
                for name in names.iter().filter(|n| !checks.contains(&n.as_str())) {
                    let hint = nearest(name, checks.iter().copied())
                        .map(|n| format!(" (did you mean `{n}`?)"))
                        .unwrap_or_default();
                    bad("checks", format!("no check named `{name}`{hint}"));
                    unknown = true;
                }
                if unknown {
                    continue;
                }
                Some(names.into_iter().map(Arc::from).collect())
            }
        };
        windows.push(Window {
            name,
            when,
            checks: covered,
            drain: section.drain,
        });
    }
    windows
}

fn time(bad: &mut impl FnMut(&str, String), key: &str, text: &str) -> Option<SystemTime> {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(at) => Some(SystemTime::from(at)),
        Err(_) => {
            bad(
                key,
                format!(
                    "`{text}` is not an RFC 3339 time (2026-12-24T00:00:00Z, or with an offset)"
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ConfigError;

    const BASE: &str = "[server]\nallow_no_checks = true\n\
        [[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"127.0.0.1:5432\"\n";

    fn load(extra: &str) -> Result<crate::config::Config, Vec<String>> {
        let text = format!("{BASE}{extra}");
        crate::config::load_str(std::path::Path::new("t.toml"), &text).map_err(|e| match e {
            ConfigError::Invalid { problems, .. } => problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
            e => vec![e.to_string()],
        })
    }

    #[test]
    fn recurring_and_one_off_windows_load() {
        let config = load(
            "[[maintenance]]\nname = \"backup\"\ncron = \"0 2 * * *\"\nduration = \"30m\"\n\
             timezone = \"Europe/Berlin\"\nchecks = [\"db\"]\ndrain = true\n\
             [[maintenance]]\nname = \"xmas\"\nstart = \"2026-12-24T00:00:00+01:00\"\nend = \"2026-12-26T00:00:00Z\"\n",
        )
        .unwrap();
        let [backup, xmas] = &config.maintenance[..] else {
            panic!("{:?}", config.maintenance);
        };
        assert!(backup.drain && backup.checks.as_deref().is_some_and(|c| c.len() == 1));
        assert!(!xmas.drain && xmas.checks.is_none());
        assert!(matches!(xmas.when, super::When::Once { .. }));
    }

    #[test]
    fn each_bad_window_names_its_key() {
        for (table, key) in [
            ("cron = \"0 2 * * *\"", "maintenance.w.duration"),
            (
                "cron = \"0 2 * *\"\nduration = \"1h\"",
                "maintenance.w.cron",
            ),
            (
                "cron = \"0 2 * * *\"\nduration = \"8d\"",
                "maintenance.w.duration",
            ),
            (
                "cron = \"0 2 * * *\"\nduration = \"1h\"\ntimezone = \"Nowhere\"",
                "maintenance.w.timezone",
            ),
            ("start = \"2026-12-24T00:00:00Z\"", "maintenance.w.end"),
            (
                "start = \"2026-12-24\"\nend = \"2026-12-25T00:00:00Z\"",
                "maintenance.w.start",
            ),
            (
                "start = \"2026-12-25T00:00:00Z\"\nend = \"2026-12-24T00:00:00Z\"",
                "maintenance.w.end",
            ),
            (
                "start = \"2026-12-24T00:00:00Z\"\nend = \"2026-12-25T00:00:00Z\"\ncron = \"@daily\"",
                "maintenance.w.cron",
            ),
            ("", "maintenance.w.cron"),
            (
                "cron = \"@daily\"\nduration = \"1h\"\nchecks = [\"dbb\"]",
                "maintenance.w.checks",
            ),
            (
                "cron = \"@daily\"\nduration = \"1h\"\ncolour = \"red\"",
                "maintenance.w",
            ),
        ] {
            let problems = load(&format!("[[maintenance]]\nname = \"w\"\n{table}\n")).unwrap_err();
            assert!(
                problems.iter().any(|p| p.starts_with(&format!("{key}: "))
                    || p.starts_with(&format!("{key}.colour"))),
                "{table}: {problems:?}"
            );
        }
        let twice = "[[maintenance]]\nname = \"w\"\ncron = \"@daily\"\nduration = \"1h\"\n";
        let problems = load(&format!("{twice}{twice}")).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("duplicate name")),
            "{problems:?}"
        );
    }
}
