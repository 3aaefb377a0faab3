//! `GET /api/checks` and `GET /api/checks/{name}`: every check's state as
//! JSON, with the health score, filtered by `?tag=` (repeat it: a check
//! must carry every tag given) and `?group=`. Checks written with
//! `enabled = false` are listed with `"status": "disabled"`.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::config::{Check, Meta};
use crate::health::{CheckView, Group, Groups, LastRun, Score, Snapshot, Verdict};
use crate::state::Uptimes;

/// Most `tag=` a query may give.
const MAX_TAGS: usize = 16;

/// A check written with `enabled = false`, as the API lists it.
#[derive(Debug, Clone)]
pub struct Disabled {
    /// Name.
    pub name: Arc<str>,
    /// Its `type`.
    pub kind: &'static str,
    /// Verdicts it would take part in.
    pub groups: Groups,
    /// Whether it would be critical.
    pub critical: bool,
    /// Description, tags and weight.
    pub meta: Arc<Meta>,
}

impl From<&Check> for Disabled {
    fn from(c: &Check) -> Self {
        Self {
            name: c.name.clone(),
            kind: c.kind,
            groups: c.groups,
            critical: c.critical,
            meta: c.meta.clone(),
        }
    }
}

/// Which checks a query asks for.
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    tags: Vec<String>,
    group: Option<Group>,
}

impl Filter {
    /// The filter of a query string; an unknown parameter is an error.
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut filter = Self::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !filter.take(&key, &value)? {
                return Err(format!("unknown parameter `{key}`: use tag= or group="));
            }
        }
        Ok(filter)
    }

    /// Takes the query parameter `key=value` if it is the filter's (`tag`,
    /// `group`): whether it was.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "tag" if value.is_empty() => Err("tag= needs a tag".into()),
            "tag" if self.tags.len() >= MAX_TAGS => Err(format!("at most {MAX_TAGS} tags")),
            "tag" => {
                self.tags.push(value.to_owned());
                Ok(true)
            }
            "group" => {
                self.group = Some(group(value)?);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Whether it asks for all checks.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether a check in `groups` described by `meta` is asked for.
    pub fn admits(&self, groups: Groups, meta: &Meta) -> bool {
        self.group.is_none_or(|g| groups.contains(g)) && self.tags.iter().all(|t| meta.tagged(t))
    }
}

/// `liveness`, `readiness` or `startup`.
pub fn group(name: &str) -> Result<Group, String> {
    Group::ALL
        .into_iter()
        .find(|g| g.as_str() == name)
        .ok_or_else(|| "group must be liveness, readiness or startup".to_owned())
}

/// `GET /api/checks`; with the state store on, each check's uptime and
/// the verdicts' (`uptimes`).
pub fn checks(
    snapshot: &Snapshot,
    disabled: &[Disabled],
    filter: &Filter,
    drain: Value,
    uptimes: Option<&Uptimes>,
) -> Value {
    let mut checks: Vec<Value> = snapshot
        .checks
        .iter()
        .filter(|c| filter.admits(c.groups, &c.meta))
        .map(|c| {
            let mut out = check_json(c, false);
            if let Some(uptimes) = uptimes {
                out["uptime"] = uptime_json(uptimes.get(&c.name));
            }
            out
        })
        .collect();
    checks.extend(
        disabled
            .iter()
            .filter(|d| filter.admits(d.groups, &d.meta))
            .map(disabled_json),
    );
    let mut doc = json!({
        "started": snapshot.started,
        "score": score_json(&snapshot.score),
        "liveness": verdict(&snapshot.liveness),
        "readiness": verdict(&snapshot.readiness),
        "startup": verdict(&snapshot.startup),
        "drain": drain,
        "maintenance": snapshot.maintenance.iter().map(|w| json!({
            "window": &*w.name,
            "until": rfc3339(w.until),
            "checks": w.checks.as_ref().map(|c| c.iter().map(|n| &**n).collect::<Vec<_>>()),
            "drain": w.drain,
        })).collect::<Vec<_>>(),
        "checks": checks,
    });
    if let Some(uptimes) = uptimes {
        doc["uptime"] = Group::ALL
            .iter()
            .map(|g| {
                (
                    g.as_str().to_owned(),
                    uptime_json(uptimes.get(g.endpoint())),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    doc
}

/// Uptime over each window, `null` where nothing was recorded.
pub fn uptime_json(uptime: Option<&[Option<f64>; 4]>) -> Value {
    crate::state::uptime::WINDOWS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| ((*name).to_owned(), json!(uptime.and_then(|u| u[i]))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The score as the APIs show it.
pub fn score_json(score: &Score) -> Value {
    json!({ "value": score.value, "band": score.band.as_str() })
}

fn verdict(v: &Verdict) -> Value {
    json!({ "ok": v.ok, "reason": String::from_utf8_lossy(&v.reason) })
}

/// A check's state; with `runs`, its latest runs too (newest first).
pub fn check_json(c: &CheckView, runs: bool) -> Value {
    let mut out = json!({
        "name": &*c.name,
        "kind": c.kind,
        "enabled": true,
        "status": c.status.as_str(),
        "since": rfc3339(c.since),
        "critical": c.critical,
        "dependency": c.dependency,
        "groups": c.groups.iter().map(Group::as_str).collect::<Vec<_>>(),
        "consecutiveSuccesses": c.consecutive_successes,
        "consecutiveFailures": c.consecutive_failures,
        "everPassed": c.ever_passed,
        "provisional": c.provisional,
        "last": c.last().map(run_json),
    });
    meta_json(&mut out, &c.meta);
    if let Some(not_after) = c.cert_not_after {
        out["certNotAfter"] = json!(rfc3339(not_after));
    }
    if runs {
        out["recent"] = c.recent.iter().rev().map(run_json).collect();
    }
    out
}

/// A disabled check: what it is, never a status it does not have.
pub fn disabled_json(d: &Disabled) -> Value {
    let mut out = json!({
        "name": &*d.name,
        "kind": d.kind,
        "enabled": false,
        "status": "disabled",
        "critical": d.critical,
        "groups": d.groups.iter().map(Group::as_str).collect::<Vec<_>>(),
    });
    meta_json(&mut out, &d.meta);
    out
}

fn meta_json(out: &mut Value, meta: &Meta) {
    out["tags"] = meta.tags.iter().map(|t| json!(&**t)).collect();
    out["weight"] = json!(meta.weight);
    if let Some(description) = &meta.description {
        out["description"] = json!(&**description);
    }
}

fn run_json(r: &LastRun) -> Value {
    let mut out = json!({
        "time": rfc3339(r.at()),
        "durationMs": crate::units::millis(r.duration()),
        "result": crate::probe::result_name(r.failure, r.warning),
        "message": &*r.message,
    });
    if let Some(category) = r.failure.or(r.warning) {
        out["category"] = json!(category.as_str());
    }
    if let Some(status) = r.http_status() {
        out["httpStatus"] = json!(status);
    }
    if !r.phases.is_empty() {
        out["phasesMs"] = r
            .phases
            .iter()
            .map(|(name, d)| (name.to_owned(), json!(crate::units::millis(d))))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    out
}

/// Milliseconds with microsecond precision.
pub(super) fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::fixture::{Fixture, passed, refused, snapshot};

    fn listed(doc: &Value) -> Vec<&str> {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    fn tagged(tags: &[&str]) -> Arc<Meta> {
        Arc::new(Meta {
            tags: tags.iter().map(|t| Arc::from(*t)).collect(),
            description: Some("the orders database".into()),
            ..Meta::default()
        })
    }

    #[test]
    fn the_checks_document_gives_each_check_each_verdict_and_the_score() {
        let mut s = snapshot(&[
            Fixture {
                name: "api",
                groups: &[Group::Readiness, Group::Liveness],
                critical: true,
                ran: refused(),
            },
            Fixture {
                name: "warmup",
                groups: &[Group::Startup],
                critical: true,
                ran: passed(),
            },
            Fixture {
                name: "idle",
                groups: &[],
                critical: false,
                ran: None,
            },
        ]);
        Arc::make_mut(&mut s.checks[0]).meta = tagged(&["team=orders", "db"]);
        let off = Disabled {
            name: "nightly".into(),
            kind: "exec",
            groups: Groups::default(),
            critical: false,
            meta: tagged(&["db"]),
        };
        let mut uptimes = Uptimes::new();
        uptimes.insert(Arc::from("api"), [Some(0.5), Some(0.9), None, None]);
        let doc = checks(
            &s,
            &[off],
            &Filter::default(),
            json!({"draining": false}),
            Some(&uptimes),
        );
        assert_eq!(
            doc["checks"][0]["uptime"],
            json!({"1h": 0.5, "24h": 0.9, "7d": null, "30d": null})
        );
        assert_eq!(doc["uptime"]["readiness"]["1h"], Value::Null);
        assert_eq!(doc["readiness"]["ok"], false, "{doc}");
        assert_eq!(doc["liveness"]["ok"], false, "{doc}");
        assert_eq!(doc["startup"]["ok"], true, "{doc}");
        assert_eq!(doc["readiness"]["reason"], "not ready: api fail", "{doc}");
        // api fails (critical, weight 2, 0), warmup passes (2, 1), idle starts (1, 0.5):
        // 2.5 / 5 = 0.5, under the 0.69 cap.
        assert_eq!(doc["score"], json!({"value": 0.5, "band": "unhealthy"}));
        assert_eq!(listed(&doc), ["api", "warmup", "idle", "nightly"]);
        let list = doc["checks"].as_array().unwrap();
        let api = &list[0];
        assert_eq!(api["kind"], "tcp");
        assert_eq!(api["status"], "fail");
        assert_eq!(api["enabled"], true);
        assert_eq!(api["groups"], json!(["liveness", "readiness"]));
        assert_eq!(api["consecutiveFailures"], 1);
        assert_eq!(api["last"]["result"], "fail");
        assert_eq!(api["last"]["message"], "connection refused");
        assert_eq!(api["tags"], json!(["team=orders", "db"]));
        assert_eq!(api["description"], "the orders database");
        assert_eq!(api["weight"], 1.0);
        assert_eq!(list[2]["status"], "starting");
        assert_eq!(list[2]["last"], Value::Null);
        assert_eq!(list[3]["status"], "disabled");
        assert_eq!(list[3]["enabled"], false);
    }

    #[test]
    fn tags_and_groups_filter_the_list() {
        let mut s = snapshot(&[
            Fixture {
                name: "db",
                groups: &[Group::Readiness],
                critical: true,
                ran: passed(),
            },
            Fixture {
                name: "web",
                groups: &[Group::Liveness],
                critical: true,
                ran: passed(),
            },
        ]);
        Arc::make_mut(&mut s.checks[0]).meta = tagged(&["team=orders", "db"]);
        Arc::make_mut(&mut s.checks[1]).meta = tagged(&["team=orders"]);
        let list = |query: &str| {
            let filter = Filter::parse(Some(query)).unwrap();
            listed(&checks(&s, &[], &filter, Value::Null, None))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(list("tag=team%3Dorders"), ["db", "web"]);
        assert_eq!(list("tag=team=orders&tag=db"), ["db"]);
        assert_eq!(list("tag=nope"), Vec::<String>::new());
        assert_eq!(list("group=liveness"), ["web"]);
        assert_eq!(list(""), ["db", "web"]);
        assert!(Filter::parse(Some("tag=")).is_err());
        assert!(Filter::parse(Some("group=all")).is_err());
        assert!(Filter::parse(Some("color=red")).is_err());
        let many = (0..=MAX_TAGS)
            .map(|i| format!("tag=t{i}"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(Filter::parse(Some(&many)).is_err());
    }
}
