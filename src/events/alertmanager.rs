//! `type = "alertmanager"`: alerts POSTed to Alertmanager's
//! `/api/v2/alerts`, so a team can page through Alertmanager without a
//! Prometheus.
//!
//! A check that fails (or warns) fires `HealthgateCheckFailing` with the
//! labels `alertname`, `check`, `check_type`, `severity` (`critical` for a
//! critical check, else `warning`), `instance` (the host), `service` and the
//! notifier's `labels`; annotations `summary`, `description` (the run's
//! message) and `runbook_url`. A verdict that fails fires
//! `HealthgateVerdictFailing` with `verdict` and `endpoint`. A firing alert
//! is posted again every `resend_interval`, with `endsAt` four intervals
//! ahead (as Prometheus does: if healthgate stops, the alert resolves on
//! its own); a recovery posts it with `endsAt` now, which resolves it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::json;

use super::Identity;
use super::coalesce::Subject;
use super::config::Notifier;
use crate::health::{Event, EventKind, Status};

/// The alerts firing now, by subject.
#[derive(Debug, Default)]
pub struct Alerts {
    firing: HashMap<Subject, Alert>,
}

#[derive(Debug, Clone)]
struct Alert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: SystemTime,
}

impl Alerts {
    /// Takes `event`; returns the body to post, if it changes an alert.
    pub fn apply(&mut self, event: &Event, n: &Notifier, who: &Identity) -> Option<Bytes> {
        let (subject, firing, alert) = alert(event, n, who)?;
        if firing {
            let alert = match self.firing.get(&subject) {
                // Still the same incident: it began when it first fired.
                Some(old) => Alert {
                    starts_at: old.starts_at,
                    ..alert
                },
                None => alert,
            };
            self.firing.insert(subject, alert.clone());
            Some(body([(&alert, ends(n, event.at))]))
        } else {
            // Resolved: sent only if it was firing here, and resolutions are wanted.
            let was = self.firing.remove(&subject)?;
            n.send_resolved.then(|| body([(&was, event.at)]))
        }
    }

    /// Resolves the alerts of `subjects` (checks removed) as of `at`:
    /// returns the body to post, if any was firing and resolutions are
    /// wanted. Without it, such an alert would be posted again forever.
    pub fn forget<'a>(
        &mut self,
        subjects: impl IntoIterator<Item = &'a Subject>,
        n: &Notifier,
        at: SystemTime,
    ) -> Option<Bytes> {
        let gone: Vec<Alert> = subjects
            .into_iter()
            .filter_map(|s| self.firing.remove(s))
            .collect();
        (!gone.is_empty() && n.send_resolved).then(|| body(gone.iter().map(|a| (a, at))))
    }

    /// Every firing alert, to post again (`None` when none is).
    pub fn resend(&self, n: &Notifier, now: SystemTime) -> Option<Bytes> {
        if self.firing.is_empty() {
            return None;
        }
        let until = ends(n, now);
        Some(body(self.firing.values().map(|a| (a, until))))
    }
}

/// A firing alert's `endsAt`: four resend intervals from `at`.
fn ends(n: &Notifier, at: SystemTime) -> SystemTime {
    at + n
        .resend_interval
        .saturating_mul(4)
        .min(Duration::from_secs(24 * 3600))
}

/// The alert `event` is about, and whether it fires.
fn alert(event: &Event, n: &Notifier, who: &Identity) -> Option<(Subject, bool, Alert)> {
    let mut labels = n.labels.clone();
    labels.insert("instance".into(), who.host.clone());
    labels.insert("service".into(), who.service.clone());
    let mut annotations = BTreeMap::new();
    let (subject, firing, name) = match &event.kind {
        EventKind::Check(c) => {
            let firing = match c.to {
                Status::Fail | Status::Warn => true,
                Status::Pass => false,
                Status::Starting => return None,
            };
            labels.insert("alertname".into(), "HealthgateCheckFailing".into());
            labels.insert("check".into(), c.check.to_string());
            labels.insert("check_type".into(), c.kind.into());
            let severity = if c.critical { "critical" } else { "warning" };
            labels.insert("severity".into(), severity.into());
            annotations.insert(
                "summary".into(),
                format!("check {} is {} on {}", c.check, c.to, who.host),
            );
            annotations.insert("description".into(), c.message.to_string());
            (
                Subject::Check(c.check.clone()),
                firing,
                ("{check}", c.check.to_string()),
            )
        }
        EventKind::Verdict(v) => {
            labels.insert("alertname".into(), "HealthgateVerdictFailing".into());
            labels.insert("verdict".into(), v.verdict.as_str().into());
            labels.insert("endpoint".into(), v.verdict.endpoint().into());
            labels.insert("severity".into(), "critical".into());
            annotations.insert(
                "summary".into(),
                format!("{} fails on {}", v.verdict.endpoint(), who.host),
            );
            annotations.insert("description".into(), v.reason.clone());
            let name = ("{verdict}", v.verdict.as_str().to_owned());
            (Subject::Verdict(v.verdict), !v.ok, name)
        }
        EventKind::Drain(_) | EventKind::Maintenance(_) | EventKind::Reload { .. } => return None,
    };
    if let Some(url) = &n.runbook_url {
        annotations.insert("runbook_url".into(), url.replace(name.0, &name.1));
    }
    let alert = Alert {
        labels,
        annotations,
        starts_at: event.at,
    };
    Some((subject, firing, alert))
}

/// Alertmanager's v2 body: a list of alerts.
fn body<'a>(alerts: impl IntoIterator<Item = (&'a Alert, SystemTime)>) -> Bytes {
    let list: Vec<serde_json::Value> = alerts
        .into_iter()
        .map(|(a, ends_at)| {
            json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": humantime::format_rfc3339_millis(a.starts_at).to_string(),
                "endsAt": humantime::format_rfc3339_millis(ends_at.max(a.starts_at)).to_string(),
            })
        })
        .collect();
    Bytes::from(serde_json::to_vec(&list).unwrap_or_default())
}
