//! `GET /api/checks/{name}/history?since=24h&limit=100&cursor=...`: a
//! check's runs rolled up by hour, newest first, from the state store (and
//! what waits for its next batch), with the status changes of the hours
//! shown. `next` is the cursor of the following (older) page; each hour
//! is on exactly one page.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use serde_json::{Value, json};

use super::Context;
use super::admin::{json_response, text};
use crate::state::rollup::{HOUR, Rollup};

/// Most hours one page holds.
const MAX_LIMIT: usize = 1000;
/// Longest `since`.
const MAX_SINCE: Duration = Duration::from_secs(400 * 86_400);
/// Most status changes one page lists.
const MAX_CHANGES: usize = 1000;

/// What a history query asks for.
#[derive(Debug, PartialEq)]
struct Query {
    since: Duration,
    limit: usize,
    before: Option<u64>,
}

fn query(text: Option<&str>) -> Result<Query, String> {
    let mut q = Query {
        since: Duration::from_secs(24 * 3600),
        limit: 100,
        before: None,
    };
    for (key, value) in form_urlencoded::parse(text.unwrap_or("").as_bytes()) {
        match &*key {
            "since" => {
                q.since = humantime::parse_duration(&value)
                    .ok()
                    .filter(|d| *d <= MAX_SINCE)
                    .ok_or("since must be a duration (24h, 7d) of at most 400d")?;
            }
            "limit" => {
                q.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or(format!("limit must be 1 to {MAX_LIMIT}"))?;
            }
            "cursor" => {
                q.before = Some(
                    value
                        .parse()
                        .map_err(|_| "cursor must be a `next` this API gave")?,
                );
            }
            _ => {
                return Err(format!(
                    "unknown parameter `{key}`: use since=, limit= or cursor="
                ));
            }
        }
    }
    Ok(q)
}

/// Answers the history of `name`.
pub fn answer(ctx: &Context, name: &str, raw: Option<&str>) -> http::Response<Full<Bytes>> {
    let known = ctx.published.load().checks.iter().any(|c| &*c.name == name)
        || ctx.disabled.load().iter().any(|d| &*d.name == name);
    if !known {
        return text(StatusCode::NOT_FOUND, "no such check\n");
    }
    let Some(state) = &ctx.state else {
        return text(StatusCode::NOT_FOUND, "no history: state.dir is not set\n");
    };
    let q = match query(raw) {
        Ok(q) => q,
        Err(message) => return text(StatusCode::BAD_REQUEST, &format!("{message}\n")),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let from = now.saturating_sub(q.since.as_secs());
    let from = from - from % HOUR;
    let before = q.before.unwrap_or(u64::MAX);
    let (hours, more, unread) = state.history(name, from, before, q.limit);
    let span_from = hours
        .last()
        .map_or(from, |(h, _)| if more { *h } else { from });
    let span_before = hours.first().map_or(before, |(h, _)| h + HOUR).min(before);
    let changes = state.changes(
        name,
        span_from.saturating_mul(1_000_000),
        span_before.saturating_mul(1_000_000),
        MAX_CHANGES,
    );
    let mut doc = json!({
        "check": name,
        "hours": hours.iter().map(|(h, r)| hour(*h, r)).collect::<Vec<_>>(),
        "changes": changes.iter().map(|c| json!({
            "time": humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_micros(c.at_us)).to_string(),
            "from": c.from.as_str(),
            "to": c.to.as_str(),
        })).collect::<Vec<_>>(),
        "next": if more { hours.last().map(|(h, _)| json!(h)) } else { None },
    });
    if let Some(error) = unread {
        // What memory holds is shown; the stored hours are missing.
        doc["storeError"] = json!(error);
    }
    json_response(&doc)
}

/// One hour's rollup as JSON.
pub fn hour(start: u64, r: &Rollup) -> Value {
    let ms = |d: Option<Duration>| d.map(crate::units::millis);
    json!({
        "start": humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(start)).to_string(),
        "runs": r.runs(),
        "pass": r.pass,
        "warn": r.warn,
        "fail": r.fail,
        "meanMs": ms(r.mean()),
        "p95Ms": ms(r.p95()),
        "maxMs": crate::units::millis(Duration::from_micros(u64::from(r.max_us))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_bounded_and_an_unknown_key_refused() {
        assert_eq!(
            query(Some("since=7d&limit=5&cursor=3600")),
            Ok(Query {
                since: Duration::from_secs(7 * 86_400),
                limit: 5,
                before: Some(3600)
            })
        );
        assert_eq!(query(None).unwrap().limit, 100);
        for bad in [
            "since=500d",
            "since=soon",
            "limit=0",
            "limit=1001",
            "cursor=x",
            "page=2",
        ] {
            assert!(query(Some(bad)).is_err(), "{bad}");
        }
    }
}
