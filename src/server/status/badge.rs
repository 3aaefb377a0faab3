//! `GET /api/badges/{check}.svg`: a check's status as a flat SVG badge
//! (name on grey, status on its colour), for READMEs and wikis.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::health::{Snapshot, Status};

/// Roughly how wide a character of 11px Verdana is.
const CHAR_WIDTH: usize = 7;
/// Space either side of each half's text.
const PADDING: usize = 10;

/// The badge of `check` (`name.svg`), or `None` for no such check.
pub fn badge(snapshot: &Snapshot, file: &str) -> Option<Response<Full<Bytes>>> {
    let name = file.strip_suffix(".svg")?;
    let check = snapshot.checks.iter().find(|c| &*c.name == name)?;
    let (status, colour) = match check.status {
        Status::Pass => ("pass", "#2e7d32"),
        Status::Warn => ("warn", "#b26a00"),
        Status::Fail => ("fail", "#c62828"),
        Status::Starting => ("starting", "#546e7a"),
    };
    let svg = svg(&check.name, status, colour);
    let mut response = Response::new(Full::new(Bytes::from(svg)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

/// Check names are `a-z 0-9 _ -` and statuses fixed words: nothing to escape.
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
        let response = badge(&s, "api.svg").unwrap();
        assert_eq!(response.headers()[CONTENT_TYPE], "image/svg+xml");
        let svg = svg("api", "fail", "#c62828");
        assert!(svg.contains("<title>api: fail</title>") && svg.contains("#c62828"));
        assert!(badge(&s, "nope.svg").is_none());
        assert!(badge(&s, "api").is_none());
    }
}
