//! The CLI's view of a running gateway, through its admin listener:
//! `healthgate check --remote` (runs checks now, `POST /api/checks/run`)
//! and `healthgate watch` (follows `/api/events`). The address, TLS and
//! token come from the same config file the gateway runs, unless
//! `--admin-url` names another.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{Request, StatusCode};
use http_body_util::BodyExt;

use crate::check::Row;
use crate::client::Client;
use crate::config::{Secret, Server};
use crate::health::Status;

/// Bound on one `check --remote` exchange: the checks' own timeouts come
/// first (the gateway answers 504 past them).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Wait before reconnecting a watch whose stream ended.
const RECONNECT: Duration = Duration::from_secs(1);

/// A running gateway's admin listener.
pub struct Admin {
    base: String,
    client: Client,
    token: Option<Secret>,
}

impl Admin {
    /// The admin listener of `server` (an unspecified address becomes
    /// loopback), or `url` when given (verified against the built-in roots
    /// and `ca_file`); the token of `server.admin.token_file`.
    pub fn new(
        server: &Server,
        url: Option<&str>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let (base, client) = match url {
            Some(url) => (url.trim_end_matches('/').to_owned(), Client::new(ca_file)),
            None => {
                let addr = crate::check::dialable(server.admin_listen);
                let scheme = if server.admin_tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                (format!("{scheme}://{addr}"), Client::own_listener())
            }
        };
        Ok(Self {
            base,
            client: client.map_err(|e| e.to_string())?,
            token: server.admin_token.clone(),
        })
    }

    fn request(&self, method: http::Method, path: &str) -> Result<Request<Bytes>, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        request
            .body(Bytes::new())
            .map_err(|e| format!("bad admin URL: {e}"))
    }

    /// Runs `checks` (or `group`'s, or every probed check) now, as the
    /// gateway records them; one row per check.
    pub async fn run(&self, checks: &[String], group: Option<&str>) -> Result<Vec<Row>, String> {
        let mut query: form_urlencoded::Serializer<String> =
            form_urlencoded::Serializer::new(String::new());
        for name in checks {
            query.append_pair("check", name);
        }
        if let Some(group) = group {
            query.append_pair("group", group);
        }
        let query = query.finish();
        let path = if query.is_empty() {
            "/api/checks/run".to_owned()
        } else {
            format!("/api/checks/run?{query}")
        };
        let request = self.request(http::Method::POST, &path)?;
        let answer = self
            .client
            .send(request, RUN_TIMEOUT)
            .await
            .map_err(|e| format!("{}: {e}", self.base))?;
        let status = answer.status();
        let body = answer.into_body();
        if status != StatusCode::OK && status != StatusCode::GATEWAY_TIMEOUT {
            let text = String::from_utf8_lossy(&body);
            return Err(format!("{}: {status}: {}", self.base, text.trim()));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))?;
        let checks = doc["checks"].as_array().cloned().unwrap_or_default();
        Ok(checks.iter().map(row).collect())
    }

    /// Follows the event stream, one line per event on `out` (its JSON with
    /// `json`), reconnecting with `Last-Event-ID` when the stream ends. Runs
    /// until an error that reconnecting will not cure (a refused token).
    pub async fn watch(
        &self,
        json: bool,
        since: Option<u64>,
        out: &mut impl Write,
    ) -> Result<(), String> {
        let mut last = since;
        loop {
            let mut request = self.request(http::Method::GET, "/api/events")?;
            request
                .headers_mut()
                .insert(ACCEPT, http::HeaderValue::from_static("text/event-stream"));
            if let Some(id) = last
                && let Ok(value) = http::HeaderValue::from_str(&id.to_string())
            {
                request.headers_mut().insert("last-event-id", value);
            }
            match self.client.open(request).await {
                Ok(response) if response.status() == StatusCode::OK => {
                    let mut body = response.into_body();
                    let mut buffer = String::new();
                    while let Some(Ok(frame)) = body.frame().await {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        buffer.push_str(&String::from_utf8_lossy(&data));
                        while let Some(end) = buffer.find("\n\n") {
                            let frame: String = buffer.drain(..end + 2).collect();
                            if let Some((id, line)) = render(&frame, json) {
                                last = id.or(last);
                                writeln!(out, "{line}").map_err(|e| e.to_string())?;
                                out.flush().map_err(|e| e.to_string())?;
                            }
                        }
                    }
                    eprintln!("healthgate: the event stream ended; reconnecting");
                }
                Ok(response)
                    if matches!(
                        response.status(),
                        StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND
                    ) =>
                {
                    return Err(format!("{}: {}", self.base, response.status()));
                }
                Ok(response) => {
                    eprintln!("healthgate: {}: {}; retrying", self.base, response.status())
                }
                Err(e) => eprintln!("healthgate: {}: {e}; retrying", self.base),
            }
            tokio::time::sleep(RECONNECT).await;
        }
    }
}

/// A row of the table from a check's JSON as the gateway recorded it.
fn row(check: &serde_json::Value) -> Row {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let last = &check["last"];
    let critical = check["critical"].as_bool().unwrap_or(true);
    let status = match last["result"].as_str() {
        Some("pass") => Status::Pass,
        Some("warn") => Status::Warn,
        Some(_) if critical => Status::Fail,
        Some(_) => Status::Warn,
        None => Status::Starting,
    };
    let message = match check["error"].as_str() {
        Some(error) => error.to_owned(),
        None => text(&last["message"]),
    };
    Row {
        name: text(&check["name"]),
        kind: text(&check["kind"]),
        status: if check["error"].is_string() && critical {
            Status::Fail
        } else {
            status
        },
        critical,
        duration_ms: last["durationMs"].as_f64().unwrap_or(0.0),
        category: last["category"].as_str().map(str::to_owned),
        message,
    }
}

/// One SSE frame as a line: the event's id and its text, or `None` for
/// what is not an event (comments, `retry:`).
fn render(frame: &str, json: bool) -> Option<(Option<u64>, String)> {
    let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name));
    let data = field("data: ")?;
    let id = field("id: ").and_then(|i| i.trim().parse().ok());
    if json {
        return Some((id, data.to_owned()));
    }
    let e: serde_json::Value = serde_json::from_str(data).ok()?;
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
    let line = match s("type").as_str() {
        "check" => {
            let category = e["category"]
                .as_str()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            format!(
                "check {}: {} -> {}{category} {}",
                s("check"),
                s("from"),
                s("to"),
                s("message")
            )
        }
        "verdict" => {
            let code = if e["ok"].as_bool() == Some(true) {
                200
            } else {
                503
            };
            format!("verdict {}: {code} {}", s("endpoint"), s("reason"))
        }
        "drain" if e["draining"].as_bool() == Some(true) => {
            format!("drain started ({}): {}", s("mode"), s("reason"))
        }
        "drain" => "drain ended".to_owned(),
        "maintenance" => {
            let covers = e["checks"].as_array().map_or_else(
                || "every check".to_owned(),
                |c| {
                    c.iter()
                        .filter_map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            );
            if e["open"].as_bool() == Some(true) {
                format!(
                    "maintenance {} open until {} ({covers})",
                    s("window"),
                    s("until")
                )
            } else {
                format!("maintenance {} closed ({covers})", s("window"))
            }
        }
        "reload" if e["successful"].as_bool() == Some(true) => format!("reload: {}", s("message")),
        "reload" => format!("reload REJECTED: {}", s("message")),
        "gap" => format!(
            "(events after #{} were lost; resuming at #{})",
            e["after"], e["next"]
        ),
        other => format!("{other}: {data}"),
    };
    let time = s("time");
    let prefix = match id {
        Some(id) => format!("{time} #{id} "),
        None => String::new(),
    };
    Some((
        id,
        format!("{prefix}{}", crate::config::escape_controls(&line)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_one_readable_line() {
        let frame = "id: 7\nevent: check\ndata: {\"version\":1,\"id\":7,\"time\":\"2026-12-03T10:00:00.000Z\",\"type\":\"check\",\"check\":\"db\",\"check_type\":\"tcp\",\"from\":\"pass\",\"to\":\"fail\",\"category\":\"connect_refused\",\"message\":\"refused\\u001b[31m\",\"critical\":true,\"groups\":[]}\n\n";
        let (id, line) = render(frame, false).unwrap();
        assert_eq!(id, Some(7));
        assert_eq!(
            line,
            "2026-12-03T10:00:00.000Z #7 check db: pass -> fail (connect_refused) refused\\u{1b}[31m"
        );
        let (_, raw) = render(frame, true).unwrap();
        assert!(raw.starts_with("{\"version\":1,\"id\":7,"));
        assert_eq!(render(": keep-alive\n\n", false), None);
        assert_eq!(render("retry: 2000\n\n", false), None);
        let window = "id: 8\nevent: maintenance\ndata: {\"version\":1,\"id\":8,\"time\":\"t\",\"type\":\"maintenance\",\"window\":\"backup\",\"open\":true,\"until\":\"2026-12-04T02:30:00Z\",\"checks\":[\"db\",\"api\"]}\n\n";
        assert_eq!(
            render(window, false).unwrap().1,
            "t #8 maintenance backup open until 2026-12-04T02:30:00Z (db, api)"
        );
        let gap = "event: gap\ndata: {\"version\":1,\"type\":\"gap\",\"after\":3,\"next\":9}\n\n";
        assert_eq!(
            render(gap, false).unwrap().1,
            "(events after #3 were lost; resuming at #9)"
        );
    }
}
