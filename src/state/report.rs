//! `healthgate history`: what the store holds, read straight from its
//! file (beside a running gateway or not: the store is opened read-only,
//! and shows what was written up to the last batch).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::rollup::HOUR;
use super::store::{self, StoreError};

/// Most hours shown per check.
const MAX_HOURS: usize = 24 * 400;
/// Most status changes shown per check.
const MAX_CHANGES: usize = 10_000;

/// The history of `checks` over the `last` period, from the store in
/// `dir`, as text lines or as one JSON document.
pub fn history(
    dir: &Path,
    checks: &[String],
    last: Duration,
    json: bool,
) -> Result<String, StoreError> {
    let db = store::open_read_only(dir)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let from = now.saturating_sub(last);
    let from_hour = from.as_secs() - from.as_secs() % HOUR;
    let from_us = u64::try_from(from.as_micros()).unwrap_or(0);
    let db_error = |e: redb::Error| StoreError::Db {
        path: dir.join(store::FILE),
        message: e.to_string(),
    };
    let mut docs = Vec::new();
    let mut text = String::new();
    for check in checks {
        let hours = db
            .history(check, from_hour, u64::MAX, MAX_HOURS)
            .map_err(db_error)?;
        let changes = db
            .changes(check, from_us, u64::MAX, MAX_CHANGES)
            .map_err(db_error)?;
        if json {
            docs.push(json!({
                "check": check,
                "hours": hours.iter().map(|(h, r)| crate::server::history::hour(*h, r)).collect::<Vec<_>>(),
                "changes": changes.iter().map(|c| json!({
                    "time": rfc3339_us(c.at_us),
                    "from": c.from.as_str(),
                    "to": c.to.as_str(),
                })).collect::<Vec<_>>(),
            }));
            continue;
        }
        if hours.is_empty() && changes.is_empty() {
            text.push_str(&format!(
                "{check}: nothing stored in the last {}\n",
                humantime::format_duration(last)
            ));
            continue;
        }
        for (hour, r) in &hours {
            let ms = |d: Option<Duration>| {
                d.map_or("-".to_owned(), |d| {
                    format!("{:.1}ms", crate::units::millis(d))
                })
            };
            text.push_str(&format!(
                "{check}  {}  runs {}  pass {}  warn {}  fail {}  mean {}  p95 {}  max {}\n",
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(*hour)),
                r.runs(),
                r.pass,
                r.warn,
                r.fail,
                ms(r.mean()),
                ms(r.p95()),
                ms(Some(Duration::from_micros(u64::from(r.max_us)))),
            ));
        }
        for c in &changes {
            text.push_str(&format!(
                "{check}  {}  {} -> {}\n",
                rfc3339_us(c.at_us),
                c.from,
                c.to
            ));
        }
    }
    if json {
        let doc: Value = json!({ "checks": docs });
        return Ok(format!("{doc}\n"));
    }
    Ok(text)
}

fn rfc3339_us(at_us: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_micros(at_us)).to_string()
}
