//! PEM files: the certificates and keys of the listeners, the CA bundles of
//! the checks and the OTLP client's files are all read here, with the
//! same messages.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate of the PEM file at `path`; at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The private key (PKCS#8, PKCS#1 or SEC1) of the PEM file at `path`.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("{}: no private key: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(
            certificates(&missing)
                .unwrap_err()
                .starts_with("cannot read ")
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let err = certificates(&empty).unwrap_err();
        assert!(err.ends_with("holds no certificate"), "{err}");
        let err = private_key(&empty).unwrap_err();
        assert!(err.contains("empty.pem: no private key"), "{err}");
    }

    #[test]
    fn a_chain_and_its_key_are_read() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let chain = dir.path().join("chain.pem");
        std::fs::write(&chain, format!("{}{}", cert.pem(), cert.pem())).unwrap();
        let key_file = dir.path().join("key.pem");
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        assert_eq!(certificates(&chain).unwrap().len(), 2);
        assert!(private_key(&key_file).is_ok());
    }
}
