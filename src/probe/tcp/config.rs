//! `type = "tcp"`: its keys, their defaults, and the runnable [`TcpSpec`] they resolve to.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::Scope;
use crate::config::bounded::ByteLimit;

/// Largest `max_response_bytes`.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// `type = "tcp"`: a TCP connect, optionally followed by an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// `host:port` to connect to; a host name is resolved on every run.
    pub address: String,
    /// `[[checks.exchange]]`: steps after connecting, in order, all within the
    /// timeout. Each sends its `send` (if any), then waits until what the peer
    /// has sent so far matches its `expect` (if any). E.g. Redis without
    /// redis-cli: `send = "PING\r\n"`, `expect = "^\\+PONG"`; an SMTP banner:
    /// `expect = "^220 "`. Default: connect only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchange: Vec<ExchangeStep>,
    /// Most bytes of the peer's answers kept for matching (default 4096, at most 64 KiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: ByteLimit<MAX_RESPONSE_BYTES>,
}

fn default_max_response_bytes() -> ByteLimit<MAX_RESPONSE_BYTES> {
    ByteLimit::known(4096)
}

/// One step of a tcp exchange.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeStep {
    /// Bytes to send (TOML escapes such as `\r\n` apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Regular expression the peer's answer (everything it sent since the
    /// previous step matched) must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

/// A validated tcp check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// Host to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Steps after connecting.
    pub exchange: Vec<Step>,
    /// Bound on the answer kept for matching.
    pub max_response_bytes: usize,
}

/// A validated exchange step.
#[derive(Debug, Clone)]
pub struct Step {
    /// What to send.
    pub send: Option<bytes::Bytes>,
    /// What the answer must match.
    pub expect: Option<Regex>,
}

impl PartialEq for Step {
    fn eq(&self, other: &Self) -> bool {
        self.send == other.send
            && self.expect.as_ref().map(Regex::as_str) == other.expect.as_ref().map(Regex::as_str)
    }
}

impl Eq for Step {}

impl TcpConfig {
    /// A connect to `address` and nothing more.
    pub fn connect(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            exchange: Vec::new(),
            max_response_bytes: default_max_response_bytes(),
        }
    }

    /// The runnable spec, or `None` with every problem reported to `p`.
    pub fn resolve(self, p: &mut Scope<'_>) -> Option<TcpSpec> {
        let before = p.count();
        let address = p.host_port("address", &self.address);
        let mut exchange = Vec::new();
        for (i, step) in self.exchange.into_iter().enumerate() {
            if step.send.is_none() && step.expect.is_none() {
                p.push(&format!("exchange[{i}]"), "give `send`, `expect` or both");
                continue;
            }
            let expect = p.regex(&format!("exchange[{i}].expect"), step.expect.as_deref());
            if let Some(expect) = expect {
                exchange.push(Step {
                    send: step.send.map(bytes::Bytes::from),
                    expect,
                });
            }
        }
        let (host, port) = address?;
        (p.count() == before).then(|| TcpSpec {
            host,
            port,
            exchange,
            max_response_bytes: self.max_response_bytes.bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    fn resolve(section: serde_json::Value) -> Result<TcpSpec, Vec<String>> {
        let config: TcpConfig = serde_json::from_value(section).unwrap();
        let mut problems = Problems::default();
        let spec = config.resolve(&mut problems.scope(Some("t")));
        spec.ok_or_else(|| problems.into_vec().into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn an_address_alone_connects_only() {
        let spec = resolve(serde_json::json!({"address": "[::1]:6379"})).unwrap();
        assert_eq!((spec.host.as_str(), spec.port), ("::1", 6379));
        assert!(spec.exchange.is_empty());
        assert_eq!(spec.max_response_bytes, 4096);
        assert_eq!(
            TcpConfig::connect("[::1]:6379"),
            serde_json::from_value(serde_json::json!({"address": "[::1]:6379"})).unwrap()
        );
    }

    #[test]
    fn every_bad_step_and_the_address_are_named() {
        let keys = resolve(serde_json::json!({
            "address": "nohost",
            "exchange": [{}, {"send": "PING\r\n", "expect": "("}, {"expect": "^\\+PONG"}]
        }))
        .unwrap_err();
        assert_eq!(keys, ["address", "exchange[0]", "exchange[1].expect"]);
    }

    #[test]
    fn the_answer_bound_is_one_byte_to_64_kib() {
        for bad in [0, 65537] {
            let err = serde_json::from_value::<TcpConfig>(
                serde_json::json!({"address": "h:1", "max_response_bytes": bad}),
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("must be between 1 and 65536"),
                "{err}"
            );
        }
    }
}
