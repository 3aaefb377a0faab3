//! `type = "tls"`: its keys, their defaults, and the runnable [`TlsProbeSpec`] they resolve to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Scope;
use crate::probe::tls::{TlsSection, TlsSpec};

/// `type = "tls"`: connect and complete a TLS handshake, nothing more. Fails
/// on an invalid chain (`tls`) or an expired certificate (`cert_expired`);
/// warns (`cert_expiring`) when the earliest expiry in the chain is closer
/// than `expect.cert_min_validity`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsProbeConfig {
    /// `host:port` to connect to. The host is also the SNI name unless `tls.server_name` is set.
    pub address: String,
    /// `[checks.tls]`: how the chain is verified.
    #[serde(default)]
    pub tls: TlsSection,
    /// `[checks.expect]`
    #[serde(default)]
    pub expect: TlsExpectSection,
}

/// `[checks.expect]` of a tls check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsExpectSection {
    /// Warn when a certificate of the chain expires within this. Default `"14d"`.
    #[serde(
        default = "default_cert_min_validity",
        with = "crate::config::duration"
    )]
    pub cert_min_validity: Duration,
}

impl Default for TlsExpectSection {
    fn default() -> Self {
        Self {
            cert_min_validity: default_cert_min_validity(),
        }
    }
}

fn default_cert_min_validity() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}

/// A validated tls check.
#[derive(Debug, Clone)]
pub struct TlsProbeSpec {
    /// Host to connect to (and SNI name unless overridden).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Verification.
    pub tls: TlsSpec,
    /// Warn when the chain expires sooner than this.
    pub cert_min_validity: Duration,
}

impl TlsProbeConfig {
    /// The runnable spec, or `None` with every problem reported to `p`.
    pub fn resolve(self, p: &mut Scope<'_>) -> Option<TlsProbeSpec> {
        let address = p.host_port("address", &self.address);
        let tls = self.tls.resolve(p)?;
        let (host, port) = address?;
        Some(TlsProbeSpec {
            host,
            port,
            tls,
            cert_min_validity: self.expect.cert_min_validity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    #[test]
    fn warns_two_weeks_ahead_by_default_and_names_a_bad_address() {
        let config: TlsProbeConfig =
            serde_json::from_value(serde_json::json!({"address": "example.test:443"})).unwrap();
        let mut problems = Problems::default();
        let spec = config.resolve(&mut problems.scope(None)).unwrap();
        assert_eq!(spec.cert_min_validity, Duration::from_secs(14 * 86400));
        assert_eq!((spec.host.as_str(), spec.port), ("example.test", 443));
        let config: TlsProbeConfig =
            serde_json::from_value(serde_json::json!({"address": "example.test"})).unwrap();
        assert!(config.resolve(&mut problems.scope(None)).is_none());
        assert_eq!(problems.into_vec()[0].key, "address");
    }
}
