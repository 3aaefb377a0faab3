//! `type = "http"`: its keys, their defaults, and the runnable [`HttpSpec`] they resolve to.

use std::collections::BTreeMap;
use std::str::FromStr;

use base64::Engine as _;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::bounded::ByteLimit;
use crate::config::{Scope, Secret};
use crate::probe::tls::{TlsSection, TlsSpec};

/// Largest `max_body_bytes`.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// `type = "http"`: an HTTP or HTTPS request.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `http://` or `https://` URL. Userinfo (`https://user:pass@host/`) is sent
    /// as basic auth and never printed.
    pub url: String,
    /// Request method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers. Values are treated as secrets: never logged or shown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body, e.g. for a POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Follow 3xx redirects (at most 10) instead of judging the 3xx itself. Default `false`.
    #[serde(default)]
    pub follow_redirects: bool,
    /// Keep one connection open between runs instead of a fresh connection per
    /// run. A fresh connection (the default, as kubelet does) also catches a
    /// full accept backlog.
    #[serde(default)]
    pub reuse_connection: bool,
    /// Most of the response body read, in bytes (default 65536, at most 16 MiB).
    /// A larger body fails as `body_too_large` when a body expectation needs it,
    /// and is otherwise cut off there.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: ByteLimit<MAX_BODY_BYTES>,
    /// `[checks.tls]`: certificate verification for `https://`.
    #[serde(default)]
    pub tls: TlsSection,
    /// `[checks.expect]`: what a passing response looks like.
    #[serde(default)]
    pub expect: HttpExpectSection,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_max_body_bytes() -> ByteLimit<MAX_BODY_BYTES> {
    ByteLimit::known(64 * 1024)
}

/// `[checks.expect]` of an http check. Every expectation given must hold.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpectSection {
    /// Accepted status codes: numbers (`301`) and classes (`"2xx"`). Default `["2xx"]`.
    #[serde(default = "default_status")]
    pub status: Vec<StatusPattern>,
    /// The body must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// The body must match this regular expression (Rust `regex` syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_regex: Option<String>,
    /// The body must be JSON, and each RFC 6901 pointer must hold the given
    /// value, e.g. `{ "/status" = "UP" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub json: BTreeMap<String, serde_json::Value>,
}

impl Default for HttpExpectSection {
    fn default() -> Self {
        Self {
            status: default_status(),
            body_contains: None,
            body_regex: None,
            json: BTreeMap::new(),
        }
    }
}

fn default_status() -> Vec<StatusPattern> {
    vec![StatusPattern::Text("2xx".to_owned())]
}

/// A status code (`200`) or class (`"2xx"`) as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StatusPattern {
    /// `200`
    Code(u16),
    /// `"2xx"` or `"200"`
    Text(String),
}

/// A validated http check.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    /// Target URL, userinfo removed.
    pub url: http::Uri,
    /// `Authorization` value built from the URL's userinfo, if any.
    pub basic_auth: Option<Secret>,
    /// Request method.
    pub method: http::Method,
    /// Extra request headers (values are secrets).
    pub headers: Vec<(http::HeaderName, Secret)>,
    /// Request body.
    pub body: Option<bytes::Bytes>,
    /// Follow 3xx responses.
    pub follow_redirects: bool,
    /// Keep one connection between runs.
    pub reuse_connection: bool,
    /// Bound on the body read.
    pub max_body_bytes: usize,
    /// TLS verification.
    pub tls: TlsSpec,
    /// What passes.
    pub expect: HttpExpect,
}

/// Expectations of an http check.
#[derive(Debug, Clone)]
pub struct HttpExpect {
    /// Accepted statuses.
    pub status: Vec<StatusMatch>,
    /// Substring of the body.
    pub body_contains: Option<String>,
    /// Pattern the body must match.
    pub body_regex: Option<Regex>,
    /// JSON pointer -> expected value.
    pub json: BTreeMap<String, serde_json::Value>,
}

impl HttpExpect {
    /// Whether any expectation needs the body.
    pub fn needs_body(&self) -> bool {
        self.body_contains.is_some() || self.body_regex.is_some() || !self.json.is_empty()
    }
}

/// One accepted status: a code or a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// Exactly this code.
    Code(u16),
    /// Any code `c` with `c / 100 == class`.
    Class(u16),
}

impl StatusMatch {
    /// Whether `code` is accepted.
    pub fn matches(self, code: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == code,
            StatusMatch::Class(class) => code / 100 == class,
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl HttpConfig {
    /// A `GET` of `url` with every other key at its default: what a check
    /// written as `type = "http"` and `url = ...` alone would be.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: default_method(),
            headers: BTreeMap::new(),
            body: None,
            follow_redirects: false,
            reuse_connection: false,
            max_body_bytes: default_max_body_bytes(),
            tls: TlsSection::default(),
            expect: HttpExpectSection::default(),
        }
    }

    /// The runnable spec, or `None` with every problem reported to `p`.
    pub fn resolve(self, p: &mut Scope<'_>) -> Option<HttpSpec> {
        let before = p.count();
        let (url, basic_auth) = match split_url(&self.url) {
            Ok(parts) => parts,
            Err(message) => {
                p.push("url", message);
                (http::Uri::default(), None)
            }
        };
        let method = http::Method::from_str(&self.method)
            .map_err(|_| p.push("method", format!("`{}` is not an HTTP method", self.method)))
            .unwrap_or_default();
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let key = format!("headers.{name}");
            match http::HeaderName::from_str(name) {
                Ok(header) if http::HeaderValue::from_str(value).is_ok() => {
                    headers.push((header, Secret::new(value)))
                }
                Ok(_) => p.push(&key, "value is not a valid header value (value not shown)"),
                Err(_) => p.push(&key, "not a valid header name"),
            }
        }
        let tls = self.tls.resolve(p);
        let mut status = Vec::new();
        for (i, pattern) in self.expect.status.iter().enumerate() {
            match parse_status(pattern) {
                Some(m) => status.push(m),
                None => p.push(
                    &format!("expect.status[{i}]"),
                    "expected a code 100..=599 or a class \"1xx\"..\"5xx\"",
                ),
            }
        }
        if self.expect.status.is_empty() {
            p.push("expect.status", "must list at least one code or class");
        }
        let body_regex = p.regex("expect.body_regex", self.expect.body_regex.as_deref());
        for pointer in self.expect.json.keys() {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                p.push(
                    &format!("expect.json.{pointer}"),
                    "a JSON pointer starts with `/` (RFC 6901), e.g. \"/status\"",
                );
            }
        }
        if p.count() > before {
            return None;
        }
        Some(HttpSpec {
            url,
            basic_auth,
            method,
            headers,
            body: self.body.map(bytes::Bytes::from),
            follow_redirects: self.follow_redirects,
            reuse_connection: self.reuse_connection,
            max_body_bytes: self.max_body_bytes.bytes(),
            tls: tls?,
            expect: HttpExpect {
                status,
                body_contains: self.expect.body_contains,
                body_regex: body_regex?,
                json: self.expect.json,
            },
        })
    }
}

/// Parses an http(s) URL, moving its userinfo into a basic-auth secret.
/// Messages never repeat the URL: it may hold a password.
fn split_url(raw: &str) -> Result<(http::Uri, Option<Secret>), String> {
    let uri = http::Uri::from_str(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err("scheme must be http or https".into()),
        None => return Err("must be absolute, e.g. \"http://127.0.0.1:8000/healthz\"".into()),
    }
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| "has no host".to_owned())?;
    if !crate::config::valid_port(authority) {
        return Err("the port must be 1 to 65535".into());
    }
    let Some((userinfo, host)) = authority.as_str().rsplit_once('@') else {
        return Ok((uri, None));
    };
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(userinfo)
    );
    let mut parts = uri.clone().into_parts();
    parts.authority =
        Some(http::uri::Authority::from_str(host).map_err(|e| format!("not a valid URL: {e}"))?);
    let uri = http::Uri::from_parts(parts).map_err(|e| format!("not a valid URL: {e}"))?;
    Ok((uri, Some(Secret::new(auth))))
}

fn parse_status(pattern: &StatusPattern) -> Option<StatusMatch> {
    let code_ok = |c: u16| (100..=599).contains(&c);
    match pattern {
        StatusPattern::Code(c) if code_ok(*c) => Some(StatusMatch::Code(*c)),
        StatusPattern::Code(_) => None,
        StatusPattern::Text(text) => {
            let text = text.to_ascii_lowercase();
            if let Some(class) = text.strip_suffix("xx") {
                let class: u16 = class.parse().ok()?;
                (1..=5)
                    .contains(&class)
                    .then_some(StatusMatch::Class(class))
            } else {
                text.parse()
                    .ok()
                    .filter(|c| code_ok(*c))
                    .map(StatusMatch::Code)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    fn resolve(section: serde_json::Value) -> Result<HttpSpec, Vec<String>> {
        let config: HttpConfig = serde_json::from_value(section).unwrap();
        let mut problems = Problems::default();
        let spec = config.resolve(&mut problems.scope(Some("h")));
        spec.ok_or_else(|| {
            problems
                .into_vec()
                .into_iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect()
        })
    }

    #[test]
    fn a_url_alone_is_a_get_expecting_2xx() {
        let spec = resolve(serde_json::json!({"url": "http://127.0.0.1:8080/healthz"})).unwrap();
        assert_eq!(spec.method, http::Method::GET);
        assert_eq!(spec.max_body_bytes, 65536);
        assert_eq!(spec.expect.status, [StatusMatch::Class(2)]);
        assert!(!spec.expect.needs_body() && !spec.reuse_connection);
        let built = HttpConfig::get("http://127.0.0.1:8080/healthz");
        assert_eq!(
            built,
            serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1:8080/healthz"}))
                .unwrap()
        );
    }

    #[test]
    fn every_bad_key_is_named() {
        let problems = resolve(serde_json::json!({
            "url": "ftp://x/", "method": "GE T",
            "headers": {"bad header": "v", "X-Ok": "line\nbreak"},
            "expect": {"status": ["6xx", 99], "body_regex": "(", "json": {"status": 1}}
        }))
        .unwrap_err();
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "url",
                "method",
                "headers.X-Ok",
                "headers.bad header",
                "expect.status[0]",
                "expect.status[1]",
                "expect.body_regex",
                "expect.json.status"
            ]
        );
        assert!(
            problems.iter().all(|p| !p.contains("line\nbreak")),
            "{problems:?}"
        );
    }

    #[test]
    fn userinfo_moves_into_basic_auth() {
        let (uri, auth) = split_url("https://alice:s3cret@example.test:8443/h?x=1").unwrap();
        assert_eq!(uri.to_string(), "https://example.test:8443/h?x=1");
        assert_eq!(auth.unwrap().expose(), "Basic YWxpY2U6czNjcmV0");
        let err = split_url("ftp://alice:s3cret@example.test/").unwrap_err();
        assert!(!err.contains("s3cret"));
    }

    #[test]
    fn status_patterns() {
        let p = |s: &str| parse_status(&StatusPattern::Text(s.into()));
        assert_eq!(p("2xx"), Some(StatusMatch::Class(2)));
        assert_eq!(p("301"), Some(StatusMatch::Code(301)));
        assert_eq!(p("6xx"), None);
        assert_eq!(p("abc"), None);
        assert_eq!(parse_status(&StatusPattern::Code(99)), None);
    }

    #[test]
    fn url_ports_out_of_range_are_refused() {
        for url in [
            "http://127.0.0.1:99999/",
            "http://h:0/",
            "https://[::1]:65536/x",
            "http://h:1:2/",
        ] {
            assert!(split_url(url).is_err(), "{url}");
        }
        for url in [
            "http://127.0.0.1:65535/",
            "http://h/",
            "https://[::1]/",
            "https://[::1]:443/",
            "http://u:p@h:8080/",
            "http://u:p@h/",
            "http://u:p:q@[::1]/",
        ] {
            assert!(split_url(url).is_ok(), "{url}");
        }
    }
}
