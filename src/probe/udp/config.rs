//! `type = "udp"`: its keys, their defaults, and the runnable [`UdpSpec`] they resolve to.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::Scope;
use crate::config::bounded::ByteLimit;

/// Largest `max_response_bytes`: the largest UDP payload over IPv4.
const MAX_DATAGRAM: u64 = 65_507;

/// `type = "udp"`: sends one datagram and waits for the answer. Passes on
/// an answer that matches `expect` (any answer when `expect` is not set);
/// fails as `connect_refused` when the host answers that nothing listens
/// on the port (ICMP port unreachable), as `timeout` when nothing comes
/// back, and as `response_mismatch` on another answer. For services that
/// answer a probe packet: a game or VoIP server's status query, a
/// syslog or statsd relay with an echo, NTP, a custom heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UdpConfig {
    /// `host:port` to send to; a host name is resolved on every run, and
    /// the first address it resolves to is asked.
    pub address: String,
    /// The datagram to send (TOML escapes such as `\n` and `\u0000` apply).
    pub send: String,
    /// Regular expression the answer must match. Default: any answer passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Most bytes of the answer kept for matching (default 4096, at most 65507).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: ByteLimit<MAX_DATAGRAM>,
}

fn default_max_response_bytes() -> ByteLimit<MAX_DATAGRAM> {
    ByteLimit::known(4096)
}

/// A validated udp check.
#[derive(Debug, Clone)]
pub struct UdpSpec {
    /// Host to send to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The datagram.
    pub send: bytes::Bytes,
    /// What the answer must match (`None`: any answer).
    pub expect: Option<Regex>,
    /// Bound on the answer kept.
    pub max_response_bytes: usize,
}

impl UdpConfig {
    /// The runnable spec, or `None` with every problem reported to `p`.
    pub fn resolve(self, p: &mut Scope<'_>) -> Option<UdpSpec> {
        let before = p.count();
        let address = p.host_port("address", &self.address);
        if self.send.len() as u64 > MAX_DATAGRAM {
            p.push("send", format!("must be at most {MAX_DATAGRAM} bytes"));
        }
        let expect = p.regex("expect", self.expect.as_deref());
        if p.count() > before {
            return None;
        }
        let (host, port) = address?;
        Some(UdpSpec {
            host,
            port,
            send: bytes::Bytes::from(self.send),
            expect: expect?,
            max_response_bytes: self.max_response_bytes.bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    fn resolve(section: serde_json::Value) -> Result<UdpSpec, Vec<String>> {
        let config: UdpConfig = serde_json::from_value(section).unwrap();
        let mut problems = Problems::default();
        let spec = config.resolve(&mut problems.scope(Some("u")));
        spec.ok_or_else(|| problems.into_vec().into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn any_answer_passes_unless_expect_is_set() {
        let spec =
            resolve(serde_json::json!({"address": "127.0.0.1:8125", "send": "ping"})).unwrap();
        assert_eq!((spec.host.as_str(), spec.port), ("127.0.0.1", 8125));
        assert!(spec.expect.is_none());
        assert_eq!(spec.max_response_bytes, 4096);
        assert_eq!(&spec.send[..], b"ping");
    }

    #[test]
    fn every_bad_key_is_named() {
        let keys = resolve(serde_json::json!({
            "address": "nohost", "send": "x".repeat(65_508), "expect": "("
        }))
        .unwrap_err();
        assert_eq!(keys, ["address", "send", "expect"]);
        let err = serde_json::from_value::<UdpConfig>(
            serde_json::json!({"address": "h:1", "send": "", "max_response_bytes": 65_508}),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("must be between 1 and 65507"),
            "{err}"
        );
    }
}
