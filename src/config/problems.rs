//! The problem collector: every problem in a config is listed at once, each
//! with its check, its key and, for a misspelt key or value, the nearest
//! valid one. Sections are parsed by serde; a value serde refuses is
//! reported, taken out, and the rest parsed again, so one run names every
//! bad value and the rules after parsing still see the good ones.

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Problem;

/// Most problems listed: a file of a million wrong keys gets a bounded answer.
const MAX_LISTED: usize = 100;
/// Bound on re-parses of one table while collecting its problems.
const MAX_PARSE_RETRIES: usize = 32;

/// Everything wrong with a config, in the order found.
#[derive(Debug, Default)]
pub struct Problems {
    listed: Vec<Problem>,
    /// Problems past [`MAX_LISTED`], counted only.
    unlisted: usize,
}

impl Problems {
    /// How many problems were found, listed or not.
    pub fn count(&self) -> usize {
        self.listed.len() + self.unlisted
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Every problem listed, and a last one counting those that were not.
    pub fn into_vec(mut self) -> Vec<Problem> {
        if self.unlisted > 0 {
            self.listed.push(Problem {
                check: None,
                key: "(more)".into(),
                message: format!("{} more problem(s) not listed", self.unlisted),
            });
        }
        self.listed
    }

    /// Records a problem with `key` (of `check`, when in one).
    pub fn push(&mut self, check: Option<&str>, key: &str, message: String) {
        if self.listed.len() >= MAX_LISTED {
            self.unlisted += 1;
            return;
        }
        // Keys and values come from the file: a control character in one
        // (an ANSI escape) must not reach a terminal or a log line raw.
        self.listed.push(Problem {
            check: check.map(super::escape_controls),
            key: super::escape_controls(key),
            message: super::escape_controls(&message),
        });
    }

    /// The problems of one check (or of the root, with `None`).
    pub fn scope<'a>(&'a mut self, check: Option<&'a str>) -> Scope<'a> {
        Scope {
            problems: self,
            check,
            inputs: Vec::new(),
            prefix: String::new(),
        }
    }

    /// Reports every key of `table` not in `allowed`, with the nearest valid key.
    pub fn unknown_keys(
        &mut self,
        check: Option<&str>,
        prefix: &str,
        table: &Map<String, Value>,
        allowed: &[&str],
    ) {
        for key in table.keys().filter(|k| !allowed.contains(&k.as_str())) {
            let message = match nearest(key, allowed.iter().copied()) {
                Some(near) => format!("unknown key `{key}`; did you mean `{near}`?"),
                None => format!("unknown key `{key}`; expected one of {}", quoted(allowed)),
            };
            self.push(check, &join(prefix, key), message);
        }
    }

    /// Deserializes `root[name]` (or an empty table) into a section type.
    pub fn section<T: DeserializeOwned>(
        &mut self,
        root: &Map<String, Value>,
        name: &str,
    ) -> Option<T> {
        let empty = Value::Object(Map::new());
        let value = root.get(name).unwrap_or(&empty);
        self.parse(None, name, value.clone())
    }

    /// Deserializes `value`, turning each error into a problem naming its key
    /// (under `prefix`). serde stops at the first error, so the offending key
    /// is removed and the rest parsed again, until it parses or nothing more
    /// can be removed: one run reports every bad value.
    pub fn parse<T: DeserializeOwned>(
        &mut self,
        check: Option<&str>,
        prefix: &str,
        value: Value,
    ) -> Option<T> {
        self.parse_as(check, prefix, value, false)
    }

    /// [`parse`](Self::parse) for `{variant: table}`, the shape serde gives a
    /// tagged section: keys are reported without the variant.
    pub(super) fn parse_variant<T: DeserializeOwned>(
        &mut self,
        check: Option<&str>,
        value: Value,
    ) -> Option<T> {
        self.parse_as(check, "", value, true)
    }

    fn parse_as<T: DeserializeOwned>(
        &mut self,
        check: Option<&str>,
        prefix: &str,
        mut value: Value,
        in_variant: bool,
    ) -> Option<T> {
        // A key taken out for breaking the rule of its type (a `ttl` of
        // "0s") is not also reported missing: its one problem says it all.
        // A key taken out for a value of the wrong type is: the message
        // about the type does not say the key is required.
        let mut removed = Vec::new();
        for _ in 0..MAX_PARSE_RETRIES {
            match serde_path_to_error::deserialize::<_, T>(&value) {
                // With problems already recorded the config is rejected anyway,
                // but the rest of the table still gets its semantic checks.
                Ok(t) => return Some(t),
                Err(e) => {
                    let path = e.path().clone();
                    let shown = shown_path(&path, in_variant);
                    let (key, message) =
                        explain(&join(prefix, &shown), &e.into_inner().to_string());
                    let broke_a_rule =
                        message.starts_with("must ") || message.starts_with("needs ");
                    if !removed.contains(&key) {
                        self.push(check, &key, message);
                    }
                    if !remove(&mut value, &path) {
                        return None;
                    }
                    if broke_a_rule {
                        removed.push(key);
                    }
                }
            }
        }
        None
    }
}

/// The path as a dotted key, without the variant that leads a tagged section.
fn shown_path(path: &serde_path_to_error::Path, in_variant: bool) -> String {
    use serde_path_to_error::Segment;
    let mut shown = String::new();
    let skip = usize::from(in_variant);
    for segment in path.iter().skip(skip) {
        match segment {
            Segment::Seq { index } => shown.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !shown.is_empty() {
                    shown.push('.');
                }
                shown.push_str(key);
            }
            Segment::Unknown => {
                if !shown.is_empty() {
                    shown.push('.');
                }
                shown.push('?');
            }
        }
    }
    shown
}

/// What a check's section reports its problems through: the check's name
/// is filled in, and the files it read (a CA bundle) are noted, so a
/// reload can tell that the check changed when only a file did.
pub struct Scope<'a> {
    problems: &'a mut Problems,
    check: Option<&'a str>,
    inputs: Vec<Vec<u8>>,
    /// Put before every key pushed (`on_failure` for `on_failure.command`).
    prefix: String,
}

impl Scope<'_> {
    /// Records a problem with `key`.
    pub fn push(&mut self, key: &str, message: impl Into<String>) {
        let key = join(&self.prefix, key);
        self.problems.push(self.check, &key, message.into());
    }

    /// The same scope with its keys under `prefix` (a sub-table).
    pub fn nested(&mut self, prefix: &str) -> Scope<'_> {
        Scope {
            problems: self.problems,
            check: self.check,
            inputs: Vec::new(),
            prefix: join(&self.prefix, prefix),
        }
    }

    /// How many problems were found so far (in the whole config): compare
    /// before and after to tell whether a section added any.
    pub fn count(&self) -> usize {
        self.problems.count()
    }

    /// Notes the content of a file the section read: part of what the check is.
    pub fn read_input(&mut self, content: Vec<u8>) {
        self.inputs.push(content);
    }

    /// The contents noted by [`read_input`](Self::read_input).
    pub(super) fn take_inputs(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.inputs)
    }

    /// Compiles `pattern` (when given); `None` when it is invalid.
    pub fn regex(&mut self, key: &str, pattern: Option<&str>) -> Option<Option<Regex>> {
        match pattern.map(Regex::new).transpose() {
            Ok(re) => Some(re),
            Err(e) => {
                self.push(key, format!("invalid regular expression: {e}"));
                None
            }
        }
    }

    /// `address` as `host:port` (the host without brackets).
    pub fn host_port(&mut self, key: &str, address: &str) -> Option<(String, u16)> {
        let parsed = split_host_port(address);
        if parsed.is_none() {
            self.push(key, "expected `host:port`, e.g. \"127.0.0.1:5432\"");
        }
        parsed
    }

    /// Each `(key, value)` must be a percentage; returns whether all were.
    pub fn percentages(&mut self, values: &[(&str, Option<f64>)]) -> bool {
        let mut fine = true;
        for (key, value) in values {
            if let Some(v) = value
                && !(0.0..=100.0).contains(v)
            {
                self.push(key, format!("must be a percentage, 0 to 100; got {v}"));
                fine = false;
            }
        }
        fine
    }

    /// A warning threshold must be below its failure threshold to ever be seen.
    pub fn warn_below_fail(&mut self, warn: (&str, Option<f64>), fail: (&str, Option<f64>)) {
        if let (Some(w), Some(f)) = (warn.1, fail.1)
            && w >= f
        {
            self.push(
                warn.0,
                format!("must be below `{}` ({f}), or it never shows", fail.0),
            );
        }
    }
}

/// `host:port`, `[v6]:port`; the host is returned without brackets.
pub fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| (host.to_owned(), port))
}

/// Removes the value at `path` from `root`, so the rest can be parsed again.
fn remove(root: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = root;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Map { key } | Segment::Enum { variant: key }, Value::Object(map)) => {
                match map.get_mut(key) {
                    Some(next) => next,
                    None => return false,
                }
            }
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key).is_some(),
        (Segment::Seq { index }, Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

/// Turns a serde message into (key, message), naming the key and suggesting
/// the nearest valid spelling for unknown fields and variants.
fn explain(path: &str, message: &str) -> (String, String) {
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return (join(path, field), "missing; this key is required".into());
    }
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((got, expected)) = rest.split_once('`')
        {
            let options: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            // serde_path_to_error's path already ends at the unknown key.
            let key = path.to_owned();
            let message = match nearest(got, options.iter().copied()) {
                Some(near) => format!("unknown {what} `{got}`; did you mean `{near}`?"),
                None => format!(
                    "unknown {what} `{got}`; expected one of {}",
                    quoted(&options)
                ),
            };
            return (key, message);
        }
    }
    let key = if path.is_empty() {
        "(root)".to_owned()
    } else {
        path.to_owned()
    };
    let message = &hide_values(&key, message);
    if message.contains("expected a duration") {
        return (
            key,
            format!("{message} such as \"250ms\", \"5s\" or \"1m\""),
        );
    }
    (key, message.to_owned())
}

/// Key segments whose values may be secrets: a header, metadata or
/// environment value, a token, a URL (credentials, query tokens), a command
/// line, what a TCP exchange sends.
const SECRET_KEYS: &[&str] = &[
    "headers", "metadata", "env", "token", "password", "secret", "auth", "url", "endpoint",
    "command", "send", "exchange",
];

/// Whether `key` (dotted, with `[N]` indices) may hold a secret.
fn secret_bearing(key: &str) -> bool {
    key.split(['.', '[', ']']).any(|segment| {
        SECRET_KEYS
            .iter()
            .any(|s| segment.to_ascii_lowercase().contains(s))
    })
}

/// serde's `invalid type: string "…", expected …` quotes the value it got.
/// A wrong type never shows it (the key is then often not what the user
/// thinks, and a secret may sit there); a wrong value shows it only for
/// keys that cannot hold a secret (`"5x"` for a duration helps).
fn hide_values(key: &str, message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        if prefix == "invalid value: " && !secret_bearing(key) {
            return message.to_owned();
        }
        let Some((got, expected)) = rest.split_once(", expected ") else {
            return format!("{}(value not shown)", prefix);
        };
        let kind = got.split(['"', '`']).next().unwrap_or("").trim();
        return format!("{prefix}{kind} (value not shown), expected {expected}");
    }
    message.to_owned()
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `prefix.key`, or either alone when the other is empty.
pub fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if prefix.ends_with('.') => format!("{prefix}{key}"),
        _ => format!("{prefix}.{key}"),
    }
}

/// `` `a`, `b`, `c` ``
pub fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_suggests_typos_only() {
        let keys = ["interval", "timeout", "failure_threshold"];
        assert_eq!(nearest("intervall", keys.iter().copied()), Some("interval"));
        assert_eq!(
            nearest("failure_treshold", keys.iter().copied()),
            Some("failure_threshold")
        );
        assert_eq!(nearest("colour", keys.iter().copied()), None);
    }

    #[test]
    fn serde_never_shows_a_value_of_the_wrong_type_or_of_a_secret_key() {
        let hidden = hide_values(
            "headers",
            r#"invalid type: string "Bearer s3cr3t", expected a map"#,
        );
        assert_eq!(
            hidden,
            "invalid type: string (value not shown), expected a map"
        );
        let hidden = hide_values("interval", "invalid type: integer `5`, expected a duration");
        assert_eq!(
            hidden,
            "invalid type: integer (value not shown), expected a duration"
        );
        let hidden = hide_values("env.TOKEN", r#"invalid value: string "s3cr3t", expected x"#);
        assert!(!hidden.contains("s3cr3t"), "{hidden}");
        let shown = hide_values(
            "interval",
            r#"invalid value: string "5x", expected a duration"#,
        );
        assert!(shown.contains("\"5x\""), "{shown}");
        for key in [
            "headers.Authorization",
            "checks[3].env.PGPASSWORD",
            "telemetry.otlp.headers.x-api-key",
            "exchange[0].send",
            "url",
        ] {
            assert!(secret_bearing(key), "{key}");
        }
        for key in ["interval", "expect.status", "name", "timeout"] {
            assert!(!secret_bearing(key), "{key}");
        }
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(
            split_host_port("db.local:5432"),
            Some(("db.local".into(), 5432))
        );
        assert_eq!(split_host_port("db.local"), None);
        assert_eq!(split_host_port(":80"), None);
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Two {
        a: u32,
        b: u32,
        #[serde(default)]
        c: Vec<u32>,
    }

    #[test]
    fn every_bad_value_of_a_table_is_reported_in_one_parse() {
        let mut problems = Problems::default();
        let value = serde_json::json!({"a": "x", "b": -1, "c": [1, "y"], "d": 0});
        let parsed: Option<Two> = problems.parse(Some("c1"), "pre", value);
        assert!(parsed.is_none(), "a required key was taken out");
        let keys: Vec<String> = problems.into_vec().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["pre.a", "pre.b", "pre.c[1]", "pre.d", "pre.a"]);
    }

    #[test]
    fn problems_past_the_listed_bound_are_counted() {
        let mut problems = Problems::default();
        for i in 0..MAX_LISTED + 5 {
            problems.push(None, &format!("k{i}"), "bad".into());
        }
        assert_eq!(problems.count(), MAX_LISTED + 5);
        let listed = problems.into_vec();
        assert_eq!(listed.len(), MAX_LISTED + 1);
        assert_eq!(listed[MAX_LISTED].message, "5 more problem(s) not listed");
    }
}
