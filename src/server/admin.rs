//! The admin listener: everything the load-balancer listener serves, plus
//!
//! | path                 | method        | does                                             |
//! |----------------------|---------------|--------------------------------------------------|
//! | `/`                  | GET           | the status page (HTML, live from the event stream: [`status`]) |
//! | `/api/badges/{check}.svg` | GET      | a check's status as an SVG badge                  |
//! | `/metrics`           | GET           | Prometheus text exposition (streamed: [`super::metrics`]) |
//! | `/api/checks`        | GET           | every check's state (JSON)                        |
//! | `/api/events`        | GET           | the live event stream (Server-Sent Events: [`stream`]) |
//! | `/api/checks/{name}` | GET           | one check, with its latest runs                   |
//! | `/api/checks/{name}/history` | GET   | its runs by hour and its status changes, from the state store ([`history`]) |
//! | `/api/checks/{name}/run` | POST      | run the check now and answer with its result ([`run`]) |
//! | `/api/checks/run`    | POST          | run a group's checks (`?group=`) or named ones (`?check=`) now |
//! | `/api/checks/{name}/report` | POST   | a push check's report: `{"status": "pass" \| "warn" \| "fail", "message": "..."}` |
//! | `/admin/drain`       | GET           | the drain in force, if any                        |
//! | `/admin/drain`       | POST          | fail readiness on purpose: `{"reason": "...", "mode": "drain" or "maint"}` (body optional) |
//! | `/admin/drain`       | DELETE        | end an operator's drain                           |
//!
//! With `server.admin.token_file` set, every request needs
//! `Authorization: Bearer <token>` (compared in constant time), else 401.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::metrics::{self, AdminBody};
use super::{Context, history, listing, routes, run, status, stream};
use crate::health::{Drain, DrainMode};
use crate::scheduler::{PushReport, Refused, Reported};

/// Largest `/admin/drain` request body read.
const MAX_BODY: usize = 4096;
/// Longest drain reason kept (it goes into every readiness answer).
const MAX_REASON: usize = 200;

/// Answers one admin request.
pub async fn handle(ctx: Context, request: Request<Incoming>) -> Response<AdminBody> {
    if !authorized(&ctx, &request) {
        let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response.map(Either::Left);
    }
    let method = request.method();
    if request.uri().path() == "/metrics" && (method == Method::GET || method == Method::HEAD) {
        return metrics::respond(ctx.metrics.scrape().await).await;
    }
    if request.uri().path() == "/api/events" && method == Method::GET {
        let hangup = request.extensions().get::<super::conns::Hangup>().cloned();
        let closing = ctx.closing.subscribe();
        return stream::respond(&ctx.events, request.headers(), closing, hangup);
    }
    answer(ctx, request).await.map(Either::Left)
}

/// Every admin answer but a scrape's.
async fn answer(ctx: Context, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    match path.as_str() {
        "/metrics" => routes::method_not_allowed("GET, HEAD"),
        "/api/events" => routes::method_not_allowed("GET"),
        "/admin/drain" => drain(&ctx, request).await,
        "/api/checks" => get_only(&method, || {
            match listing::Filter::parse(request.uri().query()) {
                Ok(filter) => {
                    let snapshot = ctx.published.load();
                    let drain = drain_json(snapshot.drain.as_ref());
                    let disabled = ctx.disabled.load();
                    let uptimes = ctx.state.as_ref().map(|s| s.uptimes());
                    json_response(&listing::checks(
                        &snapshot,
                        &disabled,
                        &filter,
                        drain,
                        uptimes.as_deref(),
                    ))
                }
                Err(message) => text(StatusCode::BAD_REQUEST, &format!("{message}\n")),
            }
        }),
        "/" => get_only(&method, || {
            let uptimes = ctx.state.as_ref().map(|s| s.uptimes());
            status::page(
                &ctx.published.load(),
                &ctx.disabled.load(),
                uptimes.as_deref(),
            )
        }),
        "/status.js" | "/status.css" => get_only(&method, || {
            status::file(&path).unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n"))
        }),
        "/api/checks/run" if method == Method::POST => {
            run::several(&ctx, &method, request.uri().query()).await
        }
        _ if path.starts_with("/api/badges/") => get_only(&method, || {
            let file = path.trim_start_matches("/api/badges/");
            let uptimes = ctx.state.as_ref().map(|s| s.uptimes());
            status::badge(
                &ctx.published.load(),
                file,
                request.uri().query(),
                uptimes.as_deref(),
            )
            .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "no such check\n"))
        }),
        _ => match path.strip_prefix("/api/checks/") {
            Some(rest) if rest.ends_with("/report") => {
                let name = rest.trim_end_matches("/report").to_owned();
                report(&ctx, &name, request).await
            }
            Some(rest) if rest.ends_with("/history") => get_only(&method, || {
                history::answer(
                    &ctx,
                    rest.trim_end_matches("/history"),
                    request.uri().query(),
                )
            }),
            Some(rest) if rest.ends_with("/run") => {
                run::one(&ctx, &method, rest.trim_end_matches("/run")).await
            }
            Some(name) => get_only(&method, || {
                let snapshot = ctx.published.load();
                if let Some(check) = snapshot.checks.iter().find(|c| &*c.name == name) {
                    return json_response(&listing::check_json(check, true));
                }
                match ctx.disabled.load().iter().find(|d| &*d.name == name) {
                    Some(d) => json_response(&listing::disabled_json(d)),
                    None => text(StatusCode::NOT_FOUND, "no such check\n"),
                }
            }),
            None => super::verdicts(&ctx, &method, request.uri(), routes::Detail::Full),
        },
    }
}

/// No token configured, or the request carries it.
fn authorized(ctx: &Context, request: &Request<Incoming>) -> bool {
    let settings = ctx.settings.load();
    let Some(token) = &settings.admin_token else {
        return true;
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()))
        .unwrap_or_default();
    bool::from(presented.ct_eq(token.expose().as_bytes()))
}

/// The token of a `Bearer` credential. The scheme is case-insensitive (RFC
/// 7235 section 2.1) and may be followed by more than one space.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer t0k",
            "bearer t0k",
            "BEARER t0k",
            "bEaReR   t0k",
            "Bearer t0k ",
        ] {
            assert_eq!(bearer(value.as_bytes()), Some(&b"t0k"[..]), "{value}");
        }
        for value in [
            "Basic t0k",
            "Bearert0k",
            "Bearer",
            "Bearer ",
            "Bear t0k",
            "",
        ] {
            assert_eq!(bearer(value.as_bytes()), None, "{value}");
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DrainRequest {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportRequest {
    status: Reported,
    #[serde(default)]
    message: String,
}

/// `POST /api/checks/{name}/report`: 202 once the push check has the report.
async fn report(ctx: &Context, name: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return routes::method_not_allowed("POST");
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body over 4 KiB\n"),
    };
    let asked: ReportRequest = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected {{\"status\": \"pass\" | \"warn\" | \"fail\", \"message\": \"...\"}}: {e}\n"
                ),
            );
        }
    };
    let report = PushReport {
        status: asked.status,
        message: asked.message,
    };
    match ctx.inboxes.deliver(name, report) {
        Ok(()) => text(StatusCode::ACCEPTED, "recorded\n"),
        Err(Refused::Unknown) => text(StatusCode::NOT_FOUND, "no push check of that name\n"),
        Err(Refused::Busy) => {
            let mut response = text(StatusCode::TOO_MANY_REQUESTS, "too many reports at once\n");
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

async fn drain(ctx: &Context, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let current = ctx.published.load().drain.clone();
    if method == Method::GET || method == Method::HEAD {
        return json_response(&drain_json(current.as_ref()));
    }
    if method != Method::POST && method != Method::DELETE {
        return routes::method_not_allowed("GET, HEAD, POST, DELETE");
    }
    if method == Method::DELETE {
        if current.as_ref().is_some_and(|d| d.shutdown) {
            return shutting_down();
        }
        ctx.drains.set(None).await;
        tracing::info!("drain ended by the admin API");
        return json_response(&drain_json(None));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body over 4 KiB\n"),
    };
    let asked: DrainRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DrainRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(asked) => asked,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "expected {{\"reason\": \"...\", \"mode\": \"drain\" | \"maint\"}}: {e}\n"
                    ),
                );
            }
        }
    };
    let mode = match asked.mode.as_deref() {
        None | Some("drain") => DrainMode::Drain,
        Some("maint") => DrainMode::Maintenance,
        Some(other) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("mode {other:?}: expected \"drain\" or \"maint\"\n"),
            );
        }
    };
    // Looked at after the body arrived: a shutdown may have begun meanwhile.
    if ctx
        .published
        .load()
        .drain
        .as_ref()
        .is_some_and(|d| d.shutdown)
    {
        return shutting_down();
    }
    let reason = clean_reason(
        asked
            .reason
            .as_deref()
            .unwrap_or("drained by the admin API"),
    );
    tracing::info!(%reason, mode = ?mode, "drain started by the admin API");
    let drain = Drain {
        reason,
        mode,
        since: SystemTime::now(),
        shutdown: false,
    };
    let shown = drain_json(Some(&drain));
    ctx.drains.set(Some(drain)).await;
    json_response(&shown)
}

fn shutting_down() -> Response<Full<Bytes>> {
    text(
        StatusCode::CONFLICT,
        "shutting down: the drain cannot be changed\n",
    )
}

/// One line of printable text, bounded: it is repeated in every readiness answer.
fn clean_reason(reason: &str) -> String {
    let line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    line.trim().to_owned()
}

fn drain_json(drain: Option<&Drain>) -> Value {
    match drain {
        None => json!({ "draining": false }),
        Some(d) => json!({
            "draining": true,
            "reason": d.reason,
            "mode": d.mode.as_str(),
            "since": listing::rfc3339(d.since),
            "shutdown": d.shutdown,
        }),
    }
}

fn get_only(
    method: &Method,
    respond: impl FnOnce() -> Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    if method == Method::GET || method == Method::HEAD {
        respond()
    } else {
        routes::method_not_allowed("GET, HEAD")
    }
}

/// Admin answers are never cached either.
pub(super) fn json_response(value: &Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut response = routes::plain(StatusCode::OK, Bytes::from(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    routes::plain(status, Bytes::from(body.to_owned()))
}
