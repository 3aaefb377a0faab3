//! Runs on demand, on the admin listener:
//!
//! - `POST /api/checks/{name}/run`: runs the check now (joining a run in
//!   flight), records the result like a scheduled run, and answers with the
//!   check as recorded after it (its `last` run is this one).
//! - `POST /api/checks/run?group=readiness` or `?check=a&check=b` (or
//!   `check=a,b`), or with neither every check: the same for several at
//!   once, `{"checks": [...]}`. A group (or all) skips push checks; a push
//!   check named is refused (409).
//!
//! 504 if a check has no result within its timeout plus [`SLACK`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use tokio::time::Instant;

use super::Context;
use super::admin::{json_response, text};
use super::listing::{Filter, check_json};
use crate::health::{CheckView, Published};
use crate::scheduler::NotRun;

/// Time beyond a check's timeout its result may take to be recorded and published.
pub const SLACK: Duration = Duration::from_secs(2);
/// Most names one `?check=` list may give.
const MAX_NAMES: usize = 1000;

/// `POST /api/checks/{name}/run`.
pub async fn one(ctx: &Context, method: &Method, name: &str) -> Response<Full<Bytes>> {
    if method != Method::POST {
        return super::routes::method_not_allowed("POST");
    }
    let asked = now_micros();
    let timeout = match ctx.triggers.run(name) {
        Ok(timeout) => timeout,
        Err(NotRun::Unknown) if ctx.disabled.load().iter().any(|d| &*d.name == name) => {
            return text(
                StatusCode::CONFLICT,
                "the check is disabled (enabled = false)\n",
            );
        }
        Err(NotRun::Unknown) => return text(StatusCode::NOT_FOUND, "no such check\n"),
        Err(e @ NotRun::Push) => return text(StatusCode::CONFLICT, &format!("{e}\n")),
    };
    let deadline = Instant::now() + timeout + SLACK;
    let names = [Arc::from(name)];
    match recorded(&ctx.published, &names, asked, deadline)
        .await
        .pop()
        .flatten()
    {
        Some(view) => json_response(&check_json(&view, false)),
        None => text(StatusCode::GATEWAY_TIMEOUT, "no result in time\n"),
    }
}

/// `POST /api/checks/run?group=...` or `?check=...`.
pub async fn several(ctx: &Context, method: &Method, query: Option<&str>) -> Response<Full<Bytes>> {
    if method != Method::POST {
        return super::routes::method_not_allowed("POST");
    }
    let names = match selection(&ctx.published.load().checks, query) {
        Ok(names) => names,
        Err((status, message)) => return text(status, &format!("{message}\n")),
    };
    let asked = now_micros();
    let mut longest = Duration::ZERO;
    for name in &names {
        match ctx.triggers.run(name) {
            Ok(timeout) => longest = longest.max(timeout),
            Err(NotRun::Unknown) => {
                return text(StatusCode::NOT_FOUND, &format!("no such check: {name}\n"));
            }
            Err(e @ NotRun::Push) => {
                return text(StatusCode::CONFLICT, &format!("{name}: {e}\n"));
            }
        }
    }
    // Every run was asked for above and goes on in its check's task: one
    // wait, as long as the longest timeout, covers them all.
    let deadline = Instant::now() + longest + SLACK;
    let found = recorded(&ctx.published, &names, asked, deadline).await;
    let all_in = found.iter().all(Option::is_some);
    let checks: Vec<_> = names
        .iter()
        .zip(found)
        .map(|(name, view)| match view {
            Some(view) => check_json(&view, false),
            None => json!({ "name": &**name, "error": "no result in time" }),
        })
        .collect();
    let mut response = json_response(&json!({ "checks": checks }));
    if !all_in {
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    }
    response
}

/// The checks a query names: `group=` and `tag=` (the probed checks of the
/// group, with every tag), `check=` (repeated, or comma-separated), or with
/// none of them every probed check.
fn selection(
    checks: &[Arc<CheckView>],
    query: Option<&str>,
) -> Result<Vec<Arc<str>>, (StatusCode, String)> {
    let bad = |message: String| (StatusCode::BAD_REQUEST, message);
    let mut filter = Filter::default();
    let mut named: Vec<Arc<str>> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if filter.take(&key, &value).map_err(bad)? {
            continue;
        }
        match &*key {
            "check" if value.split(',').all(str::is_empty) => {
                return Err(bad("check= needs a name".to_owned()));
            }
            "check" => named.extend(value.split(',').filter(|n| !n.is_empty()).map(Arc::from)),
            _ => {
                return Err(bad(format!(
                    "unknown parameter `{key}`: use group=, tag= or check="
                )));
            }
        }
        if named.len() > MAX_NAMES {
            return Err(bad(format!("at most {MAX_NAMES} checks at once")));
        }
    }
    if named.is_empty() {
        return Ok(checks
            .iter()
            .filter(|c| filter.admits(c.groups, &c.meta) && c.kind != "push")
            .map(|c| c.name.clone())
            .collect());
    }
    if !filter.is_empty() {
        return Err(bad("give group= and tag=, or check=, not both".to_owned()));
    }
    named.dedup();
    Ok(named)
}

/// Waits until the published view of each of `names` has a run that ended
/// at or after `asked` (µs since the epoch): the run asked for, or the one
/// in flight it joined. Each check's view, in order; `None` for one without
/// such a run by `deadline`, or gone. Each published snapshot is read once
/// for all of them.
async fn recorded(
    published: &Published,
    names: &[Arc<str>],
    asked: SystemTime,
    deadline: Instant,
) -> Vec<Option<Arc<CheckView>>> {
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (&**n, i)).collect();
    let mut found: Vec<Option<Arc<CheckView>>> = vec![None; names.len()];
    let mut changes = published.subscribe();
    let wait = async {
        loop {
            let snapshot = published.load();
            // Checks still configured and still without their run.
            let mut pending = 0;
            for check in &snapshot.checks {
                let Some(&i) = index.get(&*check.name) else {
                    continue;
                };
                if found[i].is_none() && check.last().is_some_and(|run| run.at() >= asked) {
                    found[i] = Some(check.clone());
                }
                pending += usize::from(found[i].is_none());
            }
            if pending == 0 || changes.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline, wait).await;
    found
}

/// Now, truncated to the microsecond as runs are recorded.
fn now_micros() -> SystemTime {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let micros = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
    SystemTime::UNIX_EPOCH + Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Group;
    use crate::health::fixture::{Fixture, passed, snapshot};

    fn names(query: &str) -> Result<Vec<String>, (StatusCode, String)> {
        let s = snapshot(&[
            Fixture {
                name: "api",
                groups: &[Group::Readiness],
                critical: true,
                ran: passed(),
            },
            Fixture {
                name: "db",
                groups: &[Group::Readiness, Group::Liveness],
                critical: true,
                ran: None,
            },
            Fixture {
                name: "warmup",
                groups: &[Group::Startup],
                critical: true,
                ran: None,
            },
        ]);
        let mut checks = s.checks.clone();
        Arc::make_mut(&mut checks[1]).meta = Arc::new(crate::config::Meta {
            tags: [Arc::from("team=orders")].into(),
            ..Default::default()
        });
        selection(&checks, Some(query)).map(|n| n.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn a_group_or_a_list_of_names_selects_the_checks() {
        assert_eq!(names("group=readiness").unwrap(), ["api", "db"]);
        assert_eq!(names("group=liveness").unwrap(), ["db"]);
        assert_eq!(names("check=warmup&check=api").unwrap(), ["warmup", "api"]);
        assert_eq!(names("check=db,api").unwrap(), ["db", "api"]);
        assert_eq!(names("check=a%20b").unwrap(), ["a b"]);
        assert_eq!(names("tag=team%3Dorders").unwrap(), ["db"]);
        assert_eq!(
            names("tag=team=orders&group=startup").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn no_query_is_every_check_and_an_unclear_one_is_refused() {
        assert_eq!(names("").unwrap(), ["api", "db", "warmup"]);
        for query in [
            "group=everything",
            "group=readiness&check=api",
            "tag=x&check=api",
            "tag=",
            "verbose",
            "check=",
        ] {
            let (status, message) = names(query).unwrap_err();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {message}");
        }
        let many = vec!["check=x"; MAX_NAMES + 1].join("&");
        assert!(names(&many).unwrap_err().1.contains("at most"));
    }

    /// One wait for all: the checks with a run since `asked` come back at
    /// once, the one without one at the single deadline (not a deadline
    /// per check), and a name no longer configured is not waited for.
    #[tokio::test(start_paused = true)]
    async fn several_checks_share_one_deadline() {
        let s = snapshot(&[
            Fixture {
                name: "api",
                groups: &[Group::Readiness],
                critical: true,
                ran: passed(),
            },
            Fixture {
                name: "idle",
                groups: &[Group::Readiness],
                critical: true,
                ran: None,
            },
        ]);
        let published = Published::new(s);
        let names: Vec<Arc<str>> = ["api", "idle", "gone"].map(Arc::from).to_vec();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(3);
        let found = recorded(&published, &names, SystemTime::UNIX_EPOCH, deadline).await;
        assert_eq!(
            Instant::now(),
            deadline,
            "waited for `idle` until the deadline"
        );
        let ran: Vec<bool> = found.iter().map(Option::is_some).collect();
        assert_eq!(ran, [true, false, false]);
        // With only `api` and a removed check pending, no wait at all.
        let names: Vec<Arc<str>> = ["api", "gone"].map(Arc::from).to_vec();
        let found = recorded(
            &published,
            &names,
            SystemTime::UNIX_EPOCH,
            deadline + Duration::from_secs(60),
        )
        .await;
        assert_eq!(Instant::now(), deadline);
        assert!(found[0].is_some() && found[1].is_none());
    }
}
