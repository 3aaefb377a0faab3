//! TLS for the probes: rustls client configs (one per check, built once),
//! the handshake with its failures named, and certificate expiry; and the
//! `[checks.tls]` section every TLS-speaking check type shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use rustls::CertificateError;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{Category, Outcome};

mod config;
pub use config::{RootsKind, TlsSection, TlsSpec};

/// The client config for `spec` offering HTTP/1.1 by ALPN, or why it cannot be built.
pub fn client_config(spec: &TlsSpec) -> Result<Arc<ClientConfig>, String> {
    client_config_alpn(spec, &[b"http/1.1"])
}

/// The client config for `spec` offering `alpn` (none: no ALPN). Configs
/// that differ only in the server name are one shared config: with the
/// built-in roots a config holds ~150 trust anchors, which thousands of
/// checks need not each copy.
pub fn client_config_alpn(spec: &TlsSpec, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
    type Key = (RootsKind, Vec<CertificateDer<'static>>, bool, Vec<Vec<u8>>);
    static SHARED: OnceLock<Mutex<HashMap<Key, Arc<ClientConfig>>>> = OnceLock::new();
    let key: Key = (
        spec.roots,
        spec.extra_roots.clone(),
        spec.insecure_skip_verify,
        alpn.iter().map(|p| p.to_vec()).collect(),
    );
    let shared = SHARED.get_or_init(Mutex::default);
    if let Some(config) = shared.lock().ok().and_then(|map| map.get(&key).cloned()) {
        return Ok(config);
    }
    let config = build(spec, alpn)?;
    if let Ok(mut map) = shared.lock() {
        // Bounded: reloads with ever-new CA files must not grow it forever.
        // Probes keep the configs they hold; only sharing starts over.
        if map.len() >= MAX_SHARED {
            map.clear();
        }
        map.insert(key, config.clone());
    }
    Ok(config)
}

/// Distinct TLS client configs kept for sharing.
const MAX_SHARED: usize = 64;

fn build(spec: &TlsSpec, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = if spec.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = match spec.roots {
            RootsKind::Webpki => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            RootsKind::Native => native_roots().clone(),
        };
        roots.add_parsable_certificates(spec.extra_roots.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A TLS handshake over `tcp` with `server_name` (SNI and verification),
/// bounded by `deadline`. An expired (or not yet valid) certificate fails as
/// `cert_expired`, any other verification or protocol error as `tls`.
pub async fn handshake(
    config: &Arc<ClientConfig>,
    tcp: TcpStream,
    server_name: &str,
    (host, port): (&str, u16),
    deadline: Instant,
) -> Result<TlsStream<TcpStream>, Outcome> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
        Outcome::fail(
            Category::Tls,
            format!("`{server_name}` is not a valid TLS server name"),
        )
    })?;
    match timeout_at(
        deadline,
        TlsConnector::from(config.clone()).connect(name, tcp),
    )
    .await
    {
        Err(_) => Err(Outcome::fail(
            Category::Timeout,
            format!("TLS handshake with {host}:{port} timed out"),
        )),
        Ok(Err(e)) => {
            let rustls_error = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
            let category = match rustls_error {
                Some(rustls::Error::InvalidCertificate(
                    CertificateError::Expired
                    | CertificateError::ExpiredContext { .. }
                    | CertificateError::NotValidYet
                    | CertificateError::NotValidYetContext { .. },
                )) => Category::CertExpired,
                _ => Category::Tls,
            };
            Err(Outcome::fail(
                category,
                format!("TLS handshake with {host}:{port}: {e}"),
            ))
        }
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// The earliest `notAfter` of a presented certificate chain.
pub fn earliest_expiry(chain: &[CertificateDer<'_>]) -> Option<SystemTime> {
    chain
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()
        .map(|seconds| match u64::try_from(seconds) {
            Ok(after) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(after),
            Err(_) => SystemTime::UNIX_EPOCH,
        })
}

/// The system's trust store, read once per process.
fn native_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "skipping part of the system trust store");
        }
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(loaded.certs);
        roots
    })
}

/// `tls.insecure_skip_verify`: signatures are still checked, the chain and name are not.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
