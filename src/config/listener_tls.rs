//! A listener's certificate, key and client CA, read into a rustls server
//! config. Used when validating (so a bad file is a config problem with its
//! key) and by the listeners, which read the files again when they change.

use std::sync::Arc;

use rustls::crypto::ring;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::model::{ListenerTlsSection, TlsVersion};

/// Why a listener's TLS material could not be used; `key` is the config key
/// under the listener's `tls` table.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ListenerTlsError {
    /// `cert_file`, `key_file` or `client_ca_file`.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Reads the files of `tls` and builds a server config offering `alpn`.
pub fn server_config(
    tls: &ListenerTlsSection,
    alpn: &[&[u8]],
) -> Result<ServerConfig, ListenerTlsError> {
    let chain = super::pem::certificates(&tls.cert_file).map_err(|message| ListenerTlsError {
        key: "cert_file",
        message,
    })?;
    let key = super::pem::private_key(&tls.key_file).map_err(|message| ListenerTlsError {
        key: "key_file",
        message,
    })?;
    let provider = Arc::new(ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| ListenerTlsError {
            key: "min_version",
            message: e.to_string(),
        })?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(
                super::pem::certificates(path).map_err(|message| ListenerTlsError {
                    key: "client_ca_file",
                    message,
                })?,
            );
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ListenerTlsError {
                    key: "client_ca_file",
                    message: format!("{}: {e} ({added} usable certificates)", path.display()),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| ListenerTlsError {
            key: "key_file",
            message: format!(
                "{} does not go with {}: {e}",
                tls.key_file.display(),
                tls.cert_file.display()
            ),
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
