//! The load-balancer endpoints, rendered from a snapshot. Nothing here runs a probe.
//!
//! | path        | 200 when                                        |
//! |-------------|-------------------------------------------------|
//! | `/livez`    | not started yet, or no critical liveness check is `fail` |
//! | `/readyz`   | started and every critical readiness check is `pass`     |
//! | `/startupz` | every critical startup check has passed once (latched)   |
//! | `/health`   | overall `pass` or `warn` (`application/health+json`)     |
//!
//! Otherwise 503. `?verbose` lists each check of the group as kube-apiserver
//! does. GET and HEAD only (405 otherwise); unknown paths 404.

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode, Uri};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use crate::health::Group;
use crate::health::{CheckView, LastRun, Reloads, Snapshot, Status, Verdict, aggregate};

const TEXT: &str = "text/plain; charset=utf-8";
const HEALTH_JSON: &str = "application/health+json";

/// What every HTTP endpoint answers with.
pub type Response = http::Response<Full<Bytes>>;

/// How much an answer may say: the load-balancer listener is reachable by
/// anyone who can reach the pod, so its `/health` gives a failed reload's
/// outcome without the problems (they quote keys of the config); the admin
/// listener gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The load-balancer listener.
    Outcome,
    /// The admin listener.
    Full,
}

/// The load-balancer listener's response to `method uri`, from `snapshot`.
pub fn respond(snapshot: &Snapshot, method: &Method, uri: &Uri) -> Response {
    respond_with(snapshot, method, uri, Detail::Outcome)
}

/// The response to `method uri`, from `snapshot`, saying as much as `detail` allows.
pub fn respond_with(snapshot: &Snapshot, method: &Method, uri: &Uri, detail: Detail) -> Response {
    let endpoint = match uri.path() {
        "/livez" => Some((Group::Liveness, &snapshot.liveness)),
        "/readyz" => Some((Group::Readiness, &snapshot.readiness)),
        "/startupz" => Some((Group::Startup, &snapshot.startup)),
        "/health" => None,
        _ => return plain(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
    };
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    match endpoint {
        Some((group, verdict)) if verbose(uri) => plain(
            code(verdict.ok),
            Bytes::from(list(snapshot, group, verdict)),
        ),
        Some((_, verdict)) => plain(code(verdict.ok), verdict.reason.clone()),
        None => health_json(snapshot, detail),
    }
}

/// 405, with the methods `path` allows.
pub fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        Bytes::from_static(b"method not allowed\n"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn code(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `?verbose`, `?verbose=true` or `?verbose=1`.
fn verbose(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&').any(|pair| match pair.split_once('=') {
            None => pair == "verbose",
            Some((k, v)) => k == "verbose" && !matches!(v, "0" | "false"),
        })
    })
}

/// kube-apiserver style: `[+]name ok` / `[-]name failed: reason`, one per check of the group.
fn list(snapshot: &Snapshot, group: Group, verdict: &Verdict) -> String {
    let mut out = String::new();
    for check in snapshot.checks.iter().filter(|c| c.in_group(group)) {
        let mark = if aggregate::blocks(check, group) {
            '-'
        } else {
            '+'
        };
        let message = check.last().map_or("", |l| &*l.message);
        let line = match check.status {
            Status::Pass => "ok".to_owned(),
            Status::Starting => "starting".to_owned(),
            Status::Warn => format!("warn: {message}"),
            Status::Fail => format!("failed: {message}"),
        };
        out.push_str(&format!("[{mark}]{} {line}\n", check.name));
    }
    let name = match group {
        Group::Liveness => "livez",
        Group::Readiness => "readyz",
        Group::Startup => "startupz",
    };
    if verdict.ok {
        out.push_str(&format!("{name} check passed\n"));
    } else {
        out.push_str(&format!(
            "{name} check failed: {}\n",
            String::from_utf8_lossy(&verdict.reason)
        ));
    }
    out
}

/// IETF draft "Health Check Response Format for HTTP APIs".
fn health_json(snapshot: &Snapshot, detail: Detail) -> Response {
    // The load balancer's document is rendered once per snapshot; the
    // admin's, asked for rarely, every time.
    let body = match detail {
        Detail::Outcome => snapshot
            .health_body
            .get_or_init(|| Bytes::from(render_health(snapshot, detail)))
            .clone(),
        Detail::Full => Bytes::from(render_health(snapshot, detail)),
    };
    let mut response = plain(code(snapshot.overall != Status::Fail), body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    response
}

/// The admin listener's `/health` with the state store on: every detail,
/// and each check's and verdict's uptime (rendered per request, as the
/// admin's document always is).
pub fn health_with_uptime(snapshot: &Snapshot, uptimes: &crate::state::Uptimes) -> Response {
    let mut doc = health_doc(snapshot, Detail::Full);
    for check in &snapshot.checks {
        let key = format!("{}:{}", check.name, check.kind);
        if let Some(component) = doc["checks"].get_mut(&key).and_then(|c| c.get_mut(0)) {
            component["uptime"] = super::listing::uptime_json(uptimes.get(&check.name));
        }
    }
    doc["uptime"] = Group::ALL
        .iter()
        .map(|g| {
            (
                g.as_str().to_owned(),
                super::listing::uptime_json(uptimes.get(g.endpoint())),
            )
        })
        .collect::<Map<_, _>>()
        .into();
    let body = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let mut response = plain(code(snapshot.overall != Status::Fail), body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    response
}

/// The `application/health+json` document of `snapshot`.
fn render_health(snapshot: &Snapshot, detail: Detail) -> Vec<u8> {
    serde_json::to_vec(&health_doc(snapshot, detail)).unwrap_or_default()
}

/// The `application/health+json` document of `snapshot`, as JSON.
fn health_doc(snapshot: &Snapshot, detail: Detail) -> Value {
    let mut checks = Map::new();
    for check in &snapshot.checks {
        checks.insert(
            format!("{}:{}", check.name, check.kind),
            json!([component(check)]),
        );
    }
    let status = match snapshot.overall {
        Status::Pass => "pass",
        Status::Warn | Status::Starting => "warn",
        Status::Fail => "fail",
    };
    let mut doc = json!({
        "status": status,
        "version": "1",
        "releaseId": env!("CARGO_PKG_VERSION"),
        "description": "healthgate: aggregated health of this instance",
        "checks": checks,
        "score": super::listing::score_json(&snapshot.score),
        "config": config(&snapshot.reloads, detail),
    });
    if status != "pass" {
        // The first failing verdict's reason, else the checks that warn or start.
        let reason = [&snapshot.liveness, &snapshot.readiness, &snapshot.startup]
            .into_iter()
            .find(|v| !v.ok)
            .map_or_else(
                || aggregate::not_passing(&snapshot.checks),
                |v| String::from_utf8_lossy(&v.reason).into_owned(),
            );
        doc["output"] = Value::String(reason);
    }
    doc
}

/// Reloads since start and the latest attempt (not part of the draft; clients ignore it).
fn config(reloads: &Reloads, detail: Detail) -> Value {
    let mut c = json!({ "reloadsApplied": reloads.applied, "reloadsFailed": reloads.failed });
    if let Some(last) = &reloads.last {
        let output = match (detail, last.successful) {
            (Detail::Full, _) | (Detail::Outcome, true) => &*last.message,
            (Detail::Outcome, false) => {
                "rejected; the problems are on the admin listener's /health"
            }
        };
        c["lastReload"] = json!({
            "successful": last.successful,
            "time": humantime::format_rfc3339_millis(last.at).to_string(),
            "output": output,
        });
    }
    c
}

fn component(check: &CheckView) -> Value {
    let status = match check.status {
        Status::Pass => "pass",
        Status::Starting | Status::Warn => "warn",
        Status::Fail => "fail",
    };
    let mut c = json!({
        "componentId": &*check.name,
        "componentType": check.kind,
        "status": status,
        "critical": check.critical,
        "groups": check.groups.iter().map(Group::as_str).collect::<Vec<_>>(),
        "consecutiveSuccesses": check.consecutive_successes,
        "consecutiveFailures": check.consecutive_failures,
        "time": humantime::format_rfc3339_millis(check.last().map_or(check.since, LastRun::at)).to_string(),
    });
    if let Some(description) = &check.meta.description {
        c["description"] = json!(&**description);
    }
    if !check.meta.tags.is_empty() {
        c["tags"] = check.meta.tags.iter().map(|t| json!(&**t)).collect();
    }
    if let Some(last) = check.last() {
        c["observedValue"] = json!(crate::units::millis(last.duration()));
        c["observedUnit"] = json!("ms");
        if let Some(category) = last.failure.or(last.warning) {
            c["category"] = json!(category.as_str());
        }
    }
    match (check.status, check.last()) {
        (Status::Pass, _) => {}
        (Status::Starting, None) => c["output"] = json!("starting: no result yet"),
        (Status::Starting, Some(last)) => {
            c["output"] = json!(format!("starting: {}", last.message))
        }
        (_, Some(last)) => c["output"] = json!(&*last.message),
        (_, None) => {}
    }
    c
}

/// A `text/plain`, `no-store` response.
pub fn plain(status: StatusCode, body: Bytes) -> Response {
    let mut response = http::Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    //! Each answer is a function of the snapshot: asked in-process, as a
    //! router is in axum's `examples/testing`.
    use super::*;
    use crate::health::fixture::{Fixture, passed, refused, snapshot};

    async fn ask(snapshot: &Snapshot, method: Method, uri: &str) -> (StatusCode, String) {
        let response = respond(snapshot, &method, &uri.parse().unwrap());
        let status = response.status();
        let body = body_of(response.into_body()).await;
        (status, String::from_utf8(body).unwrap())
    }

    async fn body_of(body: Full<Bytes>) -> Vec<u8> {
        use http_body_util::BodyExt;
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    const READY: &[Group] = &[Group::Readiness];
    const LIVE: &[Group] = &[Group::Liveness];

    #[tokio::test]
    async fn readiness_waits_for_a_verdict_then_follows_the_critical_checks() {
        let api = |ran| Fixture {
            name: "api",
            groups: READY,
            critical: true,
            ran,
        };
        let cache = |ran| Fixture {
            name: "cache",
            groups: READY,
            critical: false,
            ran,
        };
        let (status, _) = ask(&snapshot(&[api(None)]), Method::GET, "/readyz").await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready before a verdict"
        );
        let (status, _) = ask(&snapshot(&[api(passed())]), Method::GET, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        let both = snapshot(&[api(passed()), cache(refused())]);
        let (status, body) = ask(&both, Method::GET, "/readyz?verbose").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a non-critical failure warns: {body}"
        );
        assert!(body.contains("[+]api ok\n"), "{body}");
        assert!(
            body.contains("[+]cache warn: connection refused\n"),
            "{body}"
        );
        assert!(body.ends_with("readyz check passed\n"), "{body}");
        let failing = snapshot(&[api(refused()), cache(passed())]);
        let (status, body) = ask(&failing, Method::GET, "/readyz?verbose=1").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("[-]api failed: connection refused\n"),
            "{body}"
        );
        let (status, _) = ask(&failing, Method::HEAD, "/readyz?verbose=false").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn liveness_ignores_readiness_checks() {
        let failing_ready = snapshot(&[Fixture {
            name: "api",
            groups: READY,
            critical: true,
            ran: refused(),
        }]);
        assert_eq!(
            ask(&failing_ready, Method::GET, "/livez").await.0,
            StatusCode::OK
        );
        let failing_live = snapshot(&[Fixture {
            name: "deadlock",
            groups: LIVE,
            critical: true,
            ran: refused(),
        }]);
        assert_eq!(
            ask(&failing_live, Method::GET, "/livez").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn other_paths_are_404_and_other_methods_405() {
        let s = snapshot(&[Fixture {
            name: "api",
            groups: READY,
            critical: true,
            ran: passed(),
        }]);
        assert_eq!(
            ask(&s, Method::GET, "/ready").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ask(&s, Method::POST, "/nope").await.0,
            StatusCode::NOT_FOUND
        );
        let response = respond(&s, &Method::POST, &"/readyz".parse().unwrap());
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, HEAD");
    }

    #[tokio::test]
    async fn health_is_health_json_naming_each_check() {
        let s = snapshot(&[
            Fixture {
                name: "api",
                groups: READY,
                critical: true,
                ran: passed(),
            },
            Fixture {
                name: "cache",
                groups: READY,
                critical: false,
                ran: refused(),
            },
        ]);
        let response = respond(&s, &Method::GET, &"/health".parse().unwrap());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], HEALTH_JSON);
        let body: Value = serde_json::from_slice(&body_of(response.into_body()).await).unwrap();
        assert_eq!(body["status"], "warn", "{body}");
        // api passes (critical: weight 2); cache, not critical, fails and so
        // warns (weight 1, value 0.5): 2.5 / 3.
        assert_eq!(
            body["score"],
            serde_json::json!({"value": 0.833, "band": "degraded"})
        );
        let text = body.to_string();
        assert!(
            text.contains("\"api\"") && text.contains("\"cache\""),
            "{text}"
        );
    }
}
