//! A listener's TLS: the server config built from its files, rebuilt when
//! they change on disk (cert-manager rotations, Kubernetes secret updates).
//! Each new connection takes the current config; open connections keep theirs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::ListenerTlsError;
use crate::config::ListenerTlsSection;

/// How often the files are looked at. A stat of up to three files: cheap.
const POLL: Duration = Duration::from_secs(2);

/// Protocols offered: HTTP/2 (gRPC needs it) and HTTP/1.1.
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The TLS material of one listener, kept current.
pub struct TlsFiles {
    section: ListenerTlsSection,
    current: Arc<ArcSwap<ServerConfig>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl TlsFiles {
    /// Reads the files and starts watching them; `name` says which listener in logs.
    pub fn load(
        name: &'static str,
        section: &ListenerTlsSection,
    ) -> Result<Self, ListenerTlsError> {
        let config = crate::config::server_config(section, ALPN)?;
        let current = Arc::new(ArcSwap::from_pointee(config));
        let watcher = tokio::spawn(watch(name, section.clone(), current.clone()));
        Ok(Self {
            section: section.clone(),
            current,
            watcher,
        })
    }

    /// An acceptor for one new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// What it was loaded from.
    pub fn section(&self) -> &ListenerTlsSection {
        &self.section
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Size and modification time of each file: a rotation changes at least one.
async fn fingerprint(section: &ListenerTlsSection) -> Vec<Option<(u64, SystemTime)>> {
    let mut paths = vec![&section.cert_file, &section.key_file];
    paths.extend(section.client_ca_file.as_ref());
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let meta = tokio::fs::metadata(path).await.ok();
        out.push(meta.and_then(|m| Some((m.len(), m.modified().ok()?))));
    }
    out
}

async fn watch(
    name: &'static str,
    section: ListenerTlsSection,
    current: Arc<ArcSwap<ServerConfig>>,
) {
    let mut seen = fingerprint(&section).await;
    loop {
        tokio::time::sleep(POLL).await;
        let now = fingerprint(&section).await;
        if now == seen {
            continue;
        }
        seen = now;
        match crate::config::server_config(&section, ALPN) {
            Ok(config) => {
                current.store(Arc::new(config));
                tracing::info!(listener = name, cert_file = %section.cert_file.display(), "TLS certificate reloaded");
            }
            // Mid-rotation (the key written before the certificate, say): keep
            // serving the previous pair; the next write is tried again.
            Err(error) => {
                tracing::warn!(listener = name, key = error.key, %error, "TLS files changed but cannot be used; keeping the previous certificate");
            }
        }
    }
}
