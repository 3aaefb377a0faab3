//! `type = "tls"`: a TCP connect and a TLS handshake, then the presented
//! chain's expiry judged: expired fails (`cert_expired`), closer than
//! `expect.cert_min_validity` warns (`cert_expiring`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::ClientConfig;
use tokio::time::Instant;

use super::{BoxFuture, Category, Outcome, Probe, Target, Timer, net, tls};

mod config;
pub use config::{TlsExpectSection, TlsProbeConfig, TlsProbeSpec};

/// Checks a TLS endpoint's certificate.
pub struct CertProbe {
    spec: TlsProbeSpec,
    config: Result<Arc<ClientConfig>, String>,
    target: Arc<Target>,
}

impl CertProbe {
    /// A probe for `spec`; its TLS config is built here, once.
    pub fn new(spec: TlsProbeSpec) -> Self {
        Self {
            config: tls::client_config_alpn(&spec.tls, &[]),
            target: Target::endpoint(&spec.host, spec.port),
            spec,
        }
    }

    async fn run(&self, deadline: Instant, outcome_phases: &mut Vec<super::Phase>) -> Outcome {
        let (host, port) = (self.spec.host.as_str(), self.spec.port);
        let config = match &self.config {
            Ok(config) => config,
            Err(e) => return Outcome::fail(Category::Tls, e.clone()),
        };
        let tcp = match net::connect(host, port, deadline, outcome_phases).await {
            Ok(tcp) => tcp,
            Err(outcome) => return outcome,
        };
        let name = self.spec.tls.server_name.as_deref().unwrap_or(host);
        let timer = Timer::start();
        let stream = tls::handshake(config, tcp, name, (host, port), deadline).await;
        outcome_phases.push(timer.finish("tls"));
        let stream = match stream {
            Ok(stream) => stream,
            Err(outcome) => return outcome,
        };
        let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
        let Some(not_after) = tls::earliest_expiry(chain) else {
            return Outcome::fail(
                Category::Tls,
                "the server presented no readable certificate",
            );
        };
        let mut outcome = judge(not_after, SystemTime::now(), self.spec.cert_min_validity);
        outcome.cert_not_after = Some(not_after);
        outcome
    }
}

/// The verdict on a chain whose earliest expiry is `not_after`, at `now`.
fn judge(not_after: SystemTime, now: SystemTime, min_validity: Duration) -> Outcome {
    let when = humantime::format_rfc3339_seconds(not_after);
    match not_after.duration_since(now) {
        Err(_) => Outcome::fail(
            Category::CertExpired,
            format!("certificate expired at {when}"),
        ),
        Ok(left) if left < min_validity => Outcome::warn(
            Category::CertExpiring,
            format!(
                "certificate expires in {} (at {when}), less than {}",
                days(left),
                days(min_validity)
            ),
        ),
        Ok(left) => Outcome::pass(format!(
            "certificate valid for {} (until {when})",
            days(left)
        )),
    }
}

/// `3d 4h`, `5h`, `12m`: how people read time to expiry.
fn days(d: Duration) -> String {
    let (days, hours) = (d.as_secs() / 86_400, d.as_secs() % 86_400 / 3600);
    match (days, hours) {
        (0, 0) => format!("{}m", d.as_secs() / 60),
        (0, h) => format!("{h}h"),
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d {h}h"),
    }
}

impl Probe for CertProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut phases = Vec::with_capacity(3);
            let mut outcome = self.run(deadline, &mut phases).await;
            outcome.phases = phases;
            outcome.target = Some(self.target.clone());
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_judged_against_the_minimum_validity() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = Duration::from_secs(86_400);
        let min = 14 * day;
        let o = judge(now + 30 * day, now, min);
        assert!(o.passed() && o.warning.is_none());
        assert!(
            o.message.starts_with("certificate valid for 30d"),
            "{}",
            o.message
        );
        let o = judge(now + 2 * day + Duration::from_secs(3 * 3600), now, min);
        assert_eq!(o.warning, Some(Category::CertExpiring));
        assert!(
            o.message.starts_with("certificate expires in 2d 3h"),
            "{}",
            o.message
        );
        assert!(o.message.ends_with("less than 14d"), "{}", o.message);
        let o = judge(now - day, now, min);
        assert_eq!(o.failure, Some(Category::CertExpired));
    }
}
