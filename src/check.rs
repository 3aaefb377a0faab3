//! `healthgate check`: every (or each named) check once, concurrently,
//! thresholds ignored; a table or JSON, and an exit code for scripts.

use std::sync::Arc;

use serde::Serialize;

use crate::config::{Check, Source};
use crate::health::Status;
use crate::probe::{self, Outcome};

/// One check's single result.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Check name.
    pub name: String,
    /// Probe type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `pass`, `fail`, `warn` (a warning, or a failing non-critical check),
    /// or `starting` for a push check, which cannot be run once.
    pub status: Status,
    /// Whether the check is critical.
    pub critical: bool,
    /// Run time in milliseconds.
    pub duration_ms: f64,
    /// Failure category, if it failed.
    pub category: Option<String>,
    /// The probe's message.
    pub message: String,
}

/// Runs `checks` once each, concurrently, in the given order.
pub async fn run_once(checks: &[Check]) -> Vec<Row> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, check) in checks.iter().enumerate() {
        let Source::Probe(spec) = &check.source else {
            continue;
        };
        let probe = probe::build(spec);
        let timeout = check.schedule.timeout;
        tasks.spawn(async move { (index, probe::run(probe.as_ref(), timeout).await) });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; checks.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, outcome)) = joined
            && let Some(slot) = outcomes.get_mut(index)
        {
            *slot = Some(outcome);
        }
    }
    checks
        .iter()
        .zip(outcomes)
        .map(|(check, outcome)| {
            if let Source::Push(_) = check.source {
                return Row {
                    name: check.name.to_string(),
                    kind: check.kind.to_owned(),
                    status: Status::Starting,
                    critical: check.critical,
                    duration_ms: 0.0,
                    category: None,
                    message: "not run: a push check is judged on the reports a running healthgate receives".into(),
                };
            }
            let outcome = outcome.unwrap_or_else(|| {
                Outcome::fail(
                    probe::Category::Timeout,
                    "the probe task ended without a result",
                )
            });
            row(check, outcome)
        })
        .collect()
}

fn row(check: &Check, outcome: Outcome) -> Row {
    let status = match (outcome.passed(), check.critical) {
        (true, _) if outcome.warning.is_some() => Status::Warn,
        (true, _) => Status::Pass,
        (false, true) => Status::Fail,
        (false, false) => Status::Warn,
    };
    Row {
        name: check.name.to_string(),
        kind: check.kind.to_owned(),
        status,
        critical: check.critical,
        duration_ms: crate::units::millis(outcome.duration),
        category: outcome.category().map(|c| c.as_str().to_owned()),
        message: outcome.message,
    }
}

/// Whether any critical check failed.
pub fn any_critical_failed(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.status == Status::Fail)
}

/// The rows as an aligned table.
pub fn table(rows: &[Row]) -> String {
    let header = ["NAME", "TYPE", "STATUS", "DURATION", "MESSAGE"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let message = match &r.category {
                Some(category) => format!("{category}: {}", r.message),
                None => r.message.clone(),
            };
            [
                r.name.clone(),
                r.kind.clone(),
                r.status.to_string(),
                format!("{:.1}ms", r.duration_ms),
                message,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let lines = std::iter::once(header.map(str::to_owned)).chain(cells);
    for row in lines {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Keeps the checks named in `names` (all when empty); an unknown name is an error.
pub fn select(checks: Vec<Check>, names: &[String]) -> Result<Vec<Check>, String> {
    if names.is_empty() {
        return Ok(checks);
    }
    let known: Vec<Arc<str>> = checks.iter().map(|c| c.name.clone()).collect();
    if let Some(missing) = names
        .iter()
        .find(|n| !known.iter().any(|k| &**k == n.as_str()))
    {
        return Err(format!(
            "no check named {missing:?}; checks are: {}",
            known
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(checks
        .into_iter()
        .filter(|c| names.iter().any(|n| *n == *c.name))
        .collect())
}

/// A check of the gateway's own `path` on `server.listen` (an unspecified
/// address becomes loopback). The certificate is not verified over TLS: the
/// peer is this host's own listener. Built in code, so no `HEALTHGATE_*`
/// variable reaches it.
pub fn own_endpoint(server: &crate::config::Server, path: &str) -> Result<Check, String> {
    use crate::config::{CheckConfig, TypeSection, bounded::Period};
    use crate::probe::http::HttpConfig;
    let addr = dialable(server.listen);
    let scheme = if server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut http = HttpConfig::get(format!("{scheme}://{addr}{path}"));
    http.tls.insecure_skip_verify = true;
    let name = format!("healthgate{}", path.replace('/', "-"));
    let mut check = CheckConfig::new(&name, TypeSection::Http(http))?;
    check.schedule.timeout = Some(Period::new(OWN_ENDPOINT_TIMEOUT)?);
    check.resolve().map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The address to dial for a listener bound to `addr`: an unspecified one
/// (`0.0.0.0`, `[::]`) becomes the loopback address of its family.
pub fn dialable(mut addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// How long `healthgate get` waits for the gateway's answer.
const OWN_ENDPOINT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
