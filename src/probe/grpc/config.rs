//! `type = "grpc"`: its keys, their defaults, and the runnable [`GrpcSpec`] they resolve to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Scope, Secret};
use crate::probe::tls::{TlsSection, TlsSpec};

/// `type = "grpc"`: `grpc.health.v1.Health/Check` on a fresh connection per
/// run (as kubelet's grpc probe). `SERVING` passes; `NOT_SERVING`,
/// `UNKNOWN` and an unknown service fail with their own categories.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// `host:port` of the gRPC server.
    pub address: String,
    /// The service name to ask about; `""` (the default) asks about the server as a whole.
    #[serde(default)]
    pub service: String,
    /// `:authority` to send, e.g. for a server behind a proxy that routes by
    /// it. Default: `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Request metadata (gRPC headers), e.g. a token. Values are secrets:
    /// never logged or shown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// `[checks.tls]`: connect over TLS, verifying the server with these
    /// settings (`tls = {}` for the defaults). Plaintext (h2c) unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
}

/// A validated grpc check.
#[derive(Debug, Clone)]
pub struct GrpcSpec {
    /// Host to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Service name asked about.
    pub service: String,
    /// `:authority` override.
    pub authority: Option<String>,
    /// Request metadata (values are secrets).
    pub metadata: Vec<(String, Secret)>,
    /// TLS, when on.
    pub tls: Option<TlsSpec>,
}

impl GrpcConfig {
    /// The runnable spec, or `None` with every problem reported to `p`.
    pub fn resolve(self, p: &mut Scope<'_>) -> Option<GrpcSpec> {
        use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
        let before = p.count();
        let address = p.host_port("address", &self.address);
        let mut metadata = Vec::new();
        for (name, value) in &self.metadata {
            let key = format!("metadata.{name}");
            let lower = name.to_ascii_lowercase();
            match MetadataKey::<Ascii>::from_bytes(lower.as_bytes()) {
                Ok(_) if lower.ends_with("-bin") => {
                    p.push(&key, "binary (`-bin`) metadata is not supported")
                }
                Ok(_) if MetadataValue::try_from(value.as_str()).is_ok() => {
                    metadata.push((lower, Secret::new(value)))
                }
                Ok(_) => p.push(&key, "value is not valid ASCII metadata (value not shown)"),
                Err(_) => p.push(&key, "not a valid metadata key"),
            }
        }
        if let Some(authority) = &self.authority
            && authority.parse::<http::uri::Authority>().is_err()
        {
            p.push("authority", "not a valid `host[:port]`");
        }
        let tls = match self.tls {
            Some(t) => Some(t.resolve(p)?),
            None => None,
        };
        let (host, port) = address?;
        (p.count() == before).then_some(GrpcSpec {
            host,
            port,
            service: self.service,
            authority: self.authority,
            metadata,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    fn resolve(section: serde_json::Value) -> Result<GrpcSpec, Vec<String>> {
        let config: GrpcConfig = serde_json::from_value(section).unwrap();
        let mut problems = Problems::default();
        let spec = config.resolve(&mut problems.scope(Some("g")));
        spec.ok_or_else(|| problems.into_vec().into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn plaintext_about_the_whole_server_by_default() {
        let spec = resolve(serde_json::json!({"address": "127.0.0.1:50051"})).unwrap();
        assert_eq!((spec.host.as_str(), spec.port), ("127.0.0.1", 50051));
        assert!(spec.service.is_empty() && spec.tls.is_none() && spec.authority.is_none());
        let spec = resolve(serde_json::json!({"address": "h:1", "tls": {}})).unwrap();
        assert!(spec.tls.is_some());
    }

    #[test]
    fn metadata_keys_are_lowercased_and_bad_ones_named() {
        let spec =
            resolve(serde_json::json!({"address": "h:1", "metadata": {"X-Token": "t"}})).unwrap();
        assert_eq!(spec.metadata[0].0, "x-token");
        let keys = resolve(serde_json::json!({
            "address": "h", "authority": "a b",
            "metadata": {"k-bin": "x", "bad key": "x", "ok": "line\nbreak"}
        }))
        .unwrap_err();
        assert_eq!(
            keys,
            [
                "address",
                "metadata.bad key",
                "metadata.k-bin",
                "metadata.ok",
                "authority"
            ]
        );
    }
}
