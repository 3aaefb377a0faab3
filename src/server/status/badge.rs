//! `GET /api/badges/{check}.svg`: a check's status as a flat SVG badge
//! (name on grey, status on its colour), for READMEs and wikis;
//! `?uptime=24h` (or `1h`, `7d`, `30d`) its uptime instead, with the state
//! store on.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::health::{Snapshot, Status};
use crate::state::Uptimes;
use crate::state::uptime::WINDOWS;

/// Roughly how wide a character of 11px Verdana is.
const CHAR_WIDTH: usize = 7;
/// Space either side of each half's text.
const PADDING: usize = 10;

/// The badge of `check` (`name.svg`), its uptime when `query` asks for
/// one; `None` for no such check or window.
pub fn badge(
    snapshot: &Snapshot,
    file: &str,
    query: Option<&str>,
    uptimes: Option<&Uptimes>,
) -> Option<Response<Full<Bytes>>> {
    let name = file.strip_suffix(".svg")?;
    let check = snapshot.checks.iter().find(|c| &*c.name == name)?;
    let window = match query {
        None | Some("") => None,
        Some(q) => {
            let window = q.strip_prefix("uptime=")?;
            Some(WINDOWS.iter().position(|(w, _)| *w == window)?)
        }
    };
    let svg = match window {
        None => {
            let (status, colour) = match check.status {
                Status::Pass => ("pass", "#2e7d32"),
                Status::Warn => ("warn", "#b26a00"),
                Status::Fail => ("fail", "#c62828"),
                Status::Starting => ("starting", "#546e7a"),
            };
            svg(&check.name, status, colour)
        }
        Some(i) => {
            let label = format!("{} {}", check.name, WINDOWS[i].0);
            match uptimes.and_then(|u| u.get(&check.name)).and_then(|u| u[i]) {
                Some(up) => {
                    let colour = if up >= 0.999 {
                        "#2e7d32"
                    } else if up >= 0.99 {
                        "#7cb342"
                    } else if up >= 0.95 {
                        "#b26a00"
                    } else {
                        "#c62828"
                    };
                    svg(&label, &format!("{:.2}%", up * 100.0), colour)
                }
                None => svg(&label, "no data", "#546e7a"),
            }
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(svg)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

/// Check names are `a-z 0-9 _ -`, windows and values fixed words and
/// numbers: nothing to escape.
fn svg(label: &str, value: &str, colour: &str) -> String {
    let left = label.len() * CHAR_WIDTH + 2 * PADDING;
    let right = value.len() * CHAR_WIDTH + 2 * PADDING;
    let width = left + right;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"20\" role=\"img\" \
         aria-label=\"{label}: {value}\"><title>{label}: {value}</title>\
         <rect width=\"{left}\" height=\"20\" fill=\"#555\"/>\
         <rect x=\"{left}\" width=\"{right}\" height=\"20\" fill=\"{colour}\"/>\
         <g fill=\"#fff\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\" text-anchor=\"middle\">\
         <text x=\"{lx}\" y=\"14\">{label}</text><text x=\"{rx}\" y=\"14\">{value}</text></g></svg>",
        lx = left / 2,
        rx = left + right / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Group;
    use crate::health::fixture::{Fixture, refused, snapshot};

    #[test]
    fn a_badge_says_the_status_in_its_colour() {
        let s = snapshot(&[Fixture {
            name: "api",
            groups: &[Group::Readiness],
            critical: true,
            ran: refused(),
        }]);
        let response = badge(&s, "api.svg", None, None).unwrap();
        assert_eq!(response.headers()[CONTENT_TYPE], "image/svg+xml");
        let svg = svg("api", "fail", "#c62828");
        assert!(svg.contains("<title>api: fail</title>") && svg.contains("#c62828"));
        assert!(badge(&s, "nope.svg", None, None).is_none());
        assert!(badge(&s, "api", None, None).is_none());
        assert!(badge(&s, "api.svg", Some("uptime=2h"), None).is_none());
        let mut uptimes = Uptimes::new();
        uptimes.insert("api".into(), [None, Some(0.9876), None, None]);
        let body = |r: Response<Full<Bytes>>| {
            use http_body_util::BodyExt;
            let Ok(collected) = futures_lite(r.into_body().collect());
            let bytes = collected.to_bytes();
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        let up = body(badge(&s, "api.svg", Some("uptime=24h"), Some(&uptimes)).unwrap());
        assert!(
            up.contains("<title>api 24h: 98.76%</title>") && up.contains("#b26a00"),
            "{up}"
        );
        let none = body(badge(&s, "api.svg", Some("uptime=7d"), Some(&uptimes)).unwrap());
        assert!(none.contains("no data"), "{none}");
    }

    /// Polls a future that is ready at once (a collected `Full` body).
    fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("not ready"),
        }
    }
}
