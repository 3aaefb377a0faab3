//! `[checks.tls]`: how a check that speaks TLS (`http` with an `https://`
//! URL, `grpc` with `tls`, `tls`) verifies the server.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::config::Scope;

/// `[checks.tls]`: how an `https://` server is verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Root certificates to trust: `webpki` (Mozilla's bundle, built in; the
    /// default) or `native` (the system's store).
    #[serde(default)]
    pub roots: RootsKind,
    /// PEM file of extra CA certificates to trust (added to `roots`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Name to send as SNI and verify the certificate against, instead of the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Accept any certificate. Only for testing: the connection is encrypted
    /// but not authenticated.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Which root certificate store an https check trusts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootsKind {
    /// Mozilla's root bundle compiled into the binary.
    #[default]
    Webpki,
    /// The operating system's trust store.
    Native,
}

/// TLS verification, resolved: the CA file read.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    /// Base root store.
    pub roots: RootsKind,
    /// Extra trusted CAs read from `tls.ca_file`.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// SNI and verification name override.
    pub server_name: Option<String>,
    /// Skip verification entirely.
    pub insecure_skip_verify: bool,
}

impl TlsSection {
    /// Reads `ca_file` and checks `server_name`; problems go to `p` under `tls.`.
    /// The certificates read are part of what the check is: a reload that
    /// finds other certificates in the same file restarts the check.
    pub fn resolve(self, p: &mut Scope<'_>) -> Option<TlsSpec> {
        let mut extra_roots = Vec::new();
        if let Some(path) = &self.ca_file {
            match read_certs(path) {
                Ok(certs) => {
                    p.read_input(certs.iter().flat_map(|c| c.to_vec()).collect());
                    extra_roots = certs;
                }
                Err(message) => {
                    p.push("tls.ca_file", message);
                    return None;
                }
            }
        }
        if let Some(name) = &self.server_name
            && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            p.push("tls.server_name", "not a valid DNS name or IP address");
            return None;
        }
        Some(TlsSpec {
            roots: self.roots,
            extra_roots,
            server_name: self.server_name,
            insecure_skip_verify: self.insecure_skip_verify,
        })
    }
}

/// The CA certificates of a PEM file, when it holds at least one usable.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = crate::config::pem::certificates(path)?;
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(format!(
            "{}: holds no usable CA certificate",
            path.display()
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    fn resolve(section: TlsSection) -> Result<TlsSpec, Vec<String>> {
        let mut problems = Problems::default();
        let spec = section.resolve(&mut problems.scope(None));
        spec.ok_or_else(|| problems.into_vec().into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn the_defaults_trust_the_built_in_roots() {
        let spec = resolve(TlsSection::default()).unwrap();
        assert_eq!(spec.roots, RootsKind::Webpki);
        assert!(spec.extra_roots.is_empty() && !spec.insecure_skip_verify);
    }

    #[test]
    fn a_missing_or_empty_ca_file_and_a_bad_name_are_named() {
        let missing = TlsSection {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSection::default()
        };
        assert_eq!(resolve(missing).unwrap_err(), ["tls.ca_file"]);
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let empty = TlsSection {
            ca_file: Some(empty),
            ..TlsSection::default()
        };
        assert_eq!(resolve(empty).unwrap_err(), ["tls.ca_file"]);
        let bad_name = TlsSection {
            server_name: Some("bad name!".into()),
            ..TlsSection::default()
        };
        assert_eq!(resolve(bad_name).unwrap_err(), ["tls.server_name"]);
    }
}
