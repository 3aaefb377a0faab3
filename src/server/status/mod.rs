//! The status page on the admin listener: `GET /` is server-rendered HTML
//! of the published snapshot (the three verdicts, the score, each check
//! with its status, since when, its last message and a bar of its recent
//! runs), with a little plain JavaScript (`/status.js`) that re-renders it
//! on each event of `/api/events` (polling when the stream is not there).
//! No external asset: it works offline. Everything shown is escaped here:
//! check messages come from the targets. `/api/badges/{check}.svg` is a
//! check's status as an SVG badge.

mod badge;

use std::fmt::Write as _;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

pub use badge::badge;

use super::listing::Disabled;
use crate::health::{CheckView, Group, LastRun, Snapshot, Status, Verdict};
use crate::probe::result_name;
use crate::state::Uptimes;

/// The page's script.
const SCRIPT: &str = include_str!("status.js");
/// The page's style.
const STYLE: &str = include_str!("status.css");
/// Only the page's own script, style and requests; nothing from elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`.
pub fn page(
    snapshot: &Snapshot,
    disabled: &[Disabled],
    uptimes: Option<&Uptimes>,
) -> Response<Full<Bytes>> {
    let mut response = asset(
        render(snapshot, disabled, uptimes),
        "text/html; charset=utf-8",
    );
    response
        .headers_mut()
        .insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    response
}

/// `GET /status.js` and `GET /status.css`.
pub fn file(path: &str) -> Option<Response<Full<Bytes>>> {
    match path {
        "/status.js" => Some(asset(SCRIPT.to_owned(), "text/javascript; charset=utf-8")),
        "/status.css" => Some(asset(STYLE.to_owned(), "text/css; charset=utf-8")),
        _ => None,
    }
}

fn asset(body: String, kind: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The page's HTML.
fn render(s: &Snapshot, disabled: &[Disabled], uptimes: Option<&Uptimes>) -> String {
    let mut out = String::with_capacity(4096 + 512 * s.checks.len());
    out.push_str(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>healthgate status</title><link rel=\"stylesheet\" href=\"/status.css\">\
         <script src=\"/status.js\" defer></script></head><body>\
         <header><h1>healthgate</h1><span id=\"live\" class=\"live\">static</span></header>\n<main>",
    );
    out.push_str("<section class=\"verdicts\">");
    for (group, v) in [
        (Group::Liveness, &s.liveness),
        (Group::Readiness, &s.readiness),
        (Group::Startup, &s.startup),
    ] {
        verdict(&mut out, group, v);
    }
    let _ = write!(
        out,
        "<div class=\"score {band}\" id=\"score\"><span class=\"label\">score</span>\
         <span class=\"value\">{value:.3}</span><span class=\"band\">{band}</span></div></section>",
        band = s.score.band.as_str(),
        value = s.score.value,
    );
    if let Some(drain) = &s.drain {
        let _ = write!(
            out,
            "<p class=\"banner drain\">Draining ({}): {}</p>",
            drain.mode.as_str(),
            escape(&drain.reason)
        );
    }
    for w in s.maintenance.iter() {
        let covers = w.checks.as_ref().map_or_else(
            || "every check".to_owned(),
            |c| c.iter().map(|n| &**n).collect::<Vec<_>>().join(", "),
        );
        let _ = write!(
            out,
            "<p class=\"banner maintenance\">Maintenance window {} until {} ({}): \
             notifications and actions held</p>",
            escape(&w.name),
            time(w.until),
            escape(&covers)
        );
    }
    out.push_str(
        "<table class=\"checks\"><thead><tr><th></th><th>Check</th><th>Status</th>\
         <th>Since</th><th>Recent runs</th><th>Uptime 24h</th><th>Last result</th></tr></thead><tbody>",
    );
    for c in &s.checks {
        let up = uptimes.and_then(|u| u.get(&c.name)).and_then(|u| u[1]);
        check(&mut out, c, up);
    }
    for d in disabled {
        let _ = write!(
            out,
            "<tr class=\"check disabled\" data-check=\"{name}\"><td class=\"dot\"></td>\
             <td class=\"name\">{name}{meta}</td><td class=\"status\">disabled</td>\
             <td></td><td></td><td></td><td></td></tr>",
            name = escape(&d.name),
            meta = meta(&d.meta),
        );
    }
    let _ = writeln!(
        out,
        "</tbody></table><footer>Rendered <time datetime=\"{now}\">{now}</time>; \
         <a href=\"/api/checks\">/api/checks</a> · <a href=\"/health\">/health</a> · \
         <a href=\"/metrics\">/metrics</a></footer></main></body></html>",
        now = time(SystemTime::now())
    );
    out
}

fn verdict(out: &mut String, group: Group, v: &Verdict) {
    let (class, code) = if v.ok { ("ok", 200) } else { ("fail", 503) };
    let _ = write!(
        out,
        "<div class=\"verdict {class}\" id=\"{group}\"><span class=\"endpoint\">{endpoint}</span>\
         <span class=\"code\">{code}</span><span class=\"reason\">{reason}</span></div>",
        group = group.as_str(),
        endpoint = group.endpoint(),
        reason = escape(&String::from_utf8_lossy(&v.reason)),
    );
}

fn check(out: &mut String, c: &CheckView, uptime: Option<f64>) {
    let status = c.status.as_str();
    let _ = write!(
        out,
        "<tr class=\"check {status}\" data-check=\"{name}\"><td class=\"dot\"></td>\
         <td class=\"name\">{name}{meta}</td><td class=\"status\">{status}{critical}</td>\
         <td class=\"since\"><time datetime=\"{since}\">{since}</time></td><td class=\"runs\">",
        name = escape(&c.name),
        meta = meta(&c.meta),
        critical = if c.critical || c.status == Status::Pass {
            ""
        } else {
            " <small>(not critical)</small>"
        },
        since = time(c.since),
    );
    for run in c.recent.iter() {
        let result = result_name(run.failure, run.warning);
        let _ = write!(
            out,
            "<span class=\"run {result}\" title=\"{} {result} in {}: {}\"></span>",
            time(run.at()),
            crate::units::human(run.duration()),
            escape(&run.message)
        );
    }
    let last = c.last().map_or("no result yet", |r: &LastRun| &*r.message);
    let up = uptime.map_or_else(|| "–".to_owned(), |u| format!("{:.2} %", u * 100.0));
    let _ = write!(
        out,
        "</td><td class=\"uptime\">{up}</td><td class=\"message\">{}</td></tr>",
        escape(last)
    );
}

fn meta(meta: &crate::config::Meta) -> String {
    let mut out = String::new();
    if let Some(d) = &meta.description {
        let _ = write!(out, "<div class=\"description\">{}</div>", escape(d));
    }
    if !meta.tags.is_empty() {
        out.push_str("<div class=\"tags\">");
        for t in meta.tags.iter() {
            let _ = write!(out, "<span class=\"tag\">{}</span>", escape(t));
        }
        out.push_str("</div>");
    }
    out
}

fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `text` safe in HTML text and in a quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::fixture::{Fixture, passed, refused, snapshot};

    #[test]
    fn the_page_shows_each_check_and_escapes_what_targets_say() {
        let mut s = snapshot(&[
            Fixture {
                name: "api",
                groups: &[Group::Readiness],
                critical: true,
                ran: refused(),
            },
            Fixture {
                name: "cache",
                groups: &[Group::Readiness],
                critical: false,
                ran: passed(),
            },
        ]);
        let mut hostile = (*s.checks[0]).clone();
        let mut run = hostile.recent[0].clone();
        run.message = "<script>alert(1)</script> \"quoted\"".into();
        hostile.recent = std::sync::Arc::new([run]);
        s.checks[0] = std::sync::Arc::new(hostile);
        let response = page(&s, &[], None);
        let policy = response.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(policy.contains("script-src 'self'") && policy.starts_with("default-src 'none'"));
        let mut uptimes = Uptimes::new();
        uptimes.insert("cache".into(), [None, Some(0.99951), None, None]);
        let html = render(&s, &[], Some(&uptimes));
        assert!(html.contains("<td class=\"uptime\">99.95 %</td>"), "{html}");
        assert!(
            html.contains("<tr class=\"check fail\" data-check=\"api\">"),
            "{html}"
        );
        assert!(html.contains("<tr class=\"check pass\" data-check=\"cache\">"));
        assert!(html.contains("id=\"readiness\""));
        assert!(
            !html.contains("<script>alert"),
            "a target's message is escaped"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot;"));
        assert!(html.contains("class=\"score"));
        assert_eq!(html.matches("class=\"run ").count(), 2, "one block per run");
    }

    #[test]
    fn the_script_and_style_are_served_from_the_binary() {
        for (path, kind) in [
            ("/status.js", "text/javascript"),
            ("/status.css", "text/css"),
        ] {
            let response = file(path).unwrap();
            assert!(
                response.headers()[CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with(kind)
            );
        }
        assert!(file("/etc/passwd").is_none());
        assert!(SCRIPT.contains("EventSource") && !SCRIPT.contains("http://"));
    }
}
