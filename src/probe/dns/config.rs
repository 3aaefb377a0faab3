//! `type = "dns"`: its keys, their defaults, and the runnable [`DnsSpec`] they resolve to.

use std::net::SocketAddr;
use std::str::FromStr;

use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::Scope;
use crate::config::problems::quoted;

/// Record types a dns check asks for.
const TYPES: &[&str] = &[
    "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "NS", "PTR", "SOA", "CAA",
];
/// Response codes a dns check may expect.
const RCODES: &[&str] = &["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"];
/// Most answers a check may require: a DNS message over UDP holds far fewer.
const MAX_MIN_ANSWERS: u32 = 10_000;

/// `type = "dns"`: one DNS query, no cache, no retries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The name to look up. Without a trailing dot the system's search
    /// domains may apply (with `server` unset); write `db.internal.` to mean exactly that name.
    pub query: String,
    /// Record type: `A`, `AAAA`, `CNAME`, `MX`, `TXT`, `SRV`, `NS`, `PTR`,
    /// `SOA` or `CAA`. Default `A`.
    #[serde(default = "default_record_type")]
    pub record_type: String,
    /// `IP:PORT` (or `IP`, port 53) of the resolver to ask. Default: the
    /// first nameserver of `/etc/resolv.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `udp` (the default) or `tcp`.
    #[serde(default)]
    pub protocol: DnsProtocol,
    /// `[checks.expect]`: what a passing answer looks like.
    #[serde(default)]
    pub expect: DnsExpectSection,
}

fn default_record_type() -> String {
    "A".to_owned()
}

/// How a dns check talks to the resolver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsProtocol {
    /// UDP.
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

/// `[checks.expect]` of a dns check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsExpectSection {
    /// Expected response code: `NOERROR` (the default), `NXDOMAIN` (the name
    /// must not exist), `SERVFAIL`, `REFUSED`.
    #[serde(default = "default_rcode")]
    pub rcode: String,
    /// Each of these must be among the answers, as written in a zone file
    /// (`10.0.0.5`, `10 mail.example.com.`, a TXT string).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers_contain: Vec<String>,
    /// At least one answer must match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_regex: Option<String>,
    /// Least number of answers, at most 10000. Default `1` when `rcode` is
    /// `NOERROR`, else `0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_answers: Option<u32>,
}

impl Default for DnsExpectSection {
    fn default() -> Self {
        Self {
            rcode: default_rcode(),
            answers_contain: Vec::new(),
            answer_regex: None,
            min_answers: None,
        }
    }
}

fn default_rcode() -> String {
    "NOERROR".to_owned()
}

/// A validated dns check.
#[derive(Debug, Clone)]
pub struct DnsSpec {
    /// Name looked up.
    pub name: String,
    /// Record type asked for.
    pub record_type: RecordType,
    /// Resolver to ask (`None`: the system's).
    pub server: Option<SocketAddr>,
    /// Over TCP instead of UDP.
    pub tcp: bool,
    /// Expected response code.
    pub rcode: ResponseCode,
    /// Answers that must be present.
    pub answers_contain: Vec<String>,
    /// Pattern one answer must match.
    pub answer_regex: Option<Regex>,
    /// Least number of answers.
    pub min_answers: u32,
}

impl DnsConfig {
    /// The runnable spec, or `None` with every problem reported to `p`.
    pub fn resolve(self, p: &mut Scope<'_>) -> Option<DnsSpec> {
        let before = p.count();
        if hickory_resolver::Name::from_utf8(&self.query).is_err() || self.query.is_empty() {
            p.push("query", "not a valid domain name");
        }
        let upper = self.record_type.to_ascii_uppercase();
        let record_type = match RecordType::from_str(&upper) {
            Ok(t) if TYPES.contains(&upper.as_str()) => t,
            _ => {
                p.push(
                    "record_type",
                    format!(
                        "unknown record type `{}`; one of {}",
                        self.record_type,
                        quoted(TYPES)
                    ),
                );
                RecordType::A
            }
        };
        let server = match &self.server {
            None => None,
            Some(text) => match text.parse::<SocketAddr>().ok().or_else(|| {
                text.parse::<std::net::IpAddr>()
                    .ok()
                    .map(|ip| (ip, 53).into())
            }) {
                Some(addr) => Some(addr),
                None => {
                    p.push("server", "expected `IP:PORT` or `IP`, e.g. \"10.0.0.2:53\"");
                    None
                }
            },
        };
        let rcode = match self.expect.rcode.to_ascii_uppercase().as_str() {
            "NOERROR" => ResponseCode::NoError,
            "NXDOMAIN" => ResponseCode::NXDomain,
            "SERVFAIL" => ResponseCode::ServFail,
            "REFUSED" => ResponseCode::Refused,
            other => {
                p.push(
                    "expect.rcode",
                    format!("unknown response code `{other}`; one of {}", quoted(RCODES)),
                );
                ResponseCode::NoError
            }
        };
        let answer_regex = p.regex("expect.answer_regex", self.expect.answer_regex.as_deref());
        let wants_answers =
            !self.expect.answers_contain.is_empty() || self.expect.answer_regex.is_some();
        if rcode != ResponseCode::NoError
            && (wants_answers || self.expect.min_answers.unwrap_or(0) > 0)
        {
            p.push(
                "expect",
                format!(
                    "expects answers, but an `rcode` of {} comes with none",
                    self.expect.rcode
                ),
            );
        }
        if self.expect.min_answers.unwrap_or(0) > MAX_MIN_ANSWERS {
            p.push("expect.min_answers", "must be at most 10000");
        }
        let min_answers = self
            .expect
            .min_answers
            .unwrap_or(u32::from(rcode == ResponseCode::NoError));
        if p.count() > before {
            return None;
        }
        Some(DnsSpec {
            name: self.query,
            record_type,
            server,
            tcp: self.protocol == DnsProtocol::Tcp,
            rcode,
            answers_contain: self.expect.answers_contain,
            answer_regex: answer_regex?,
            min_answers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    fn resolve(section: serde_json::Value) -> Result<DnsSpec, Vec<String>> {
        let config: DnsConfig = serde_json::from_value(section).unwrap();
        let mut problems = Problems::default();
        let spec = config.resolve(&mut problems.scope(Some("d")));
        spec.ok_or_else(|| problems.into_vec().into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn an_a_query_over_udp_wanting_one_answer_by_default() {
        let spec = resolve(serde_json::json!({"query": "db.internal."})).unwrap();
        assert_eq!(spec.record_type, RecordType::A);
        assert_eq!(spec.rcode, ResponseCode::NoError);
        assert_eq!((spec.min_answers, spec.tcp, spec.server), (1, false, None));
        let spec = resolve(serde_json::json!({
            "query": "gone.internal.", "server": "10.0.0.2", "expect": {"rcode": "nxdomain"}
        }))
        .unwrap();
        assert_eq!(spec.min_answers, 0);
        assert_eq!(spec.server, Some("10.0.0.2:53".parse().unwrap()));
    }

    #[test]
    fn every_bad_key_is_named() {
        let keys = resolve(serde_json::json!({
            "query": "", "record_type": "AX", "server": "nowhere",
            "expect": {"rcode": "NXDOMAIN", "min_answers": 2, "answer_regex": "("}
        }))
        .unwrap_err();
        assert_eq!(
            keys,
            [
                "query",
                "record_type",
                "server",
                "expect.answer_regex",
                "expect"
            ]
        );
        let keys = resolve(serde_json::json!({"query": "a.", "expect": {"min_answers": 10001}}));
        assert_eq!(keys.unwrap_err(), ["expect.min_answers"]);
    }
}
