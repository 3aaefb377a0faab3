//! The keys of what acts on events: `[[notifiers]]`, `[actions]` (per
//! verdict, and the `restart` shortcut) and a check's `on_failure` /
//! `on_recovery`, their defaults, and the resolved types the consumers run.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::bounded::{AtMost, Count, Positive};
use crate::config::{Problems, Scope, Secret};
use crate::health::{Group, Groups};
use crate::probe::exec::{CommandLine, ExecConfig, ExecSpec, ExitCodesKind};

/// `[[notifiers]]`: where events are sent. Every notifier has its own
/// bounded queue and sends one request at a time, in order; a receiver
/// that is slow or down delays only its own notifications (and past its
/// queue, loses them, counted), never a probe or an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierSection {
    /// Unique name (the `notifier` label of the metrics): 1 to 63 of `a-z`,
    /// `0-9`, `_` and `-`.
    pub name: crate::config::CheckName,
    /// `webhook` (a JSON POST of each event) or `alertmanager` (alerts
    /// posted to Alertmanager's `/api/v2/alerts`).
    #[serde(rename = "type")]
    pub kind: NotifierKind,
    /// `http://` or `https://` URL: the webhook's, or Alertmanager's base
    /// (`http://alertmanager:9093`; `/api/v2/alerts` is appended).
    pub url: String,
    /// Headers on every request (e.g. `Authorization`). Values are secrets:
    /// never logged or shown.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Webhook: a file holding the key of an HMAC-SHA256 signature of each
    /// body, sent as `X-Healthgate-Signature: sha256=<hex>` (README:
    /// "Verifying a webhook"). Read at load; leading and trailing
    /// whitespace dropped.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// PEM CA certificates to trust for an `https://` URL, besides the
    /// built-in roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Bound on one request, answer included; more than 0s and at most
    /// `"5m"`. Default `"5s"`.
    #[serde(default = "default_timeout")]
    pub timeout: Positive<300>,
    /// Tries per notification, 1 to 20: a connection error, a timeout, a
    /// 5xx or a 429 is tried again; any other status is final. Default `3`.
    #[serde(default = "default_attempts")]
    pub attempts: Count<20>,
    /// Wait before the second try, doubled before each next one up to
    /// `max_backoff`, each wait a random 50-100 % of that (jitter). More
    /// than 0s and at most `"1h"`. Default `"1s"`.
    #[serde(default = "default_backoff")]
    pub backoff: Positive<3600>,
    /// Longest wait between tries, more than 0s and at most `"1h"`. Default `"30s"`.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Positive<3600>,
    /// Events waiting to be sent, 1 to 10000; past it the newest are
    /// dropped and counted (`healthgate_events_dropped_total`). Default `256`.
    #[serde(default = "default_queue")]
    pub queue: Count<10_000>,
    /// Send recoveries (a check back to `pass`, a verdict back to 200) and,
    /// for Alertmanager, resolve the alert. Default `true`.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Least time between two notifications about one check (or one
    /// verdict): changes within it are coalesced, and the latest state is
    /// sent when it ends, if it differs from the last one sent. A flapping
    /// check then costs one notification per `min_interval`, not one per
    /// flap. `"0s"` sends every change. At most `"1d"`. Default `"30s"`.
    #[serde(default = "default_min_interval")]
    pub min_interval: AtMost<86_400>,
    /// Only these checks' changes (names). Default: every check.
    #[serde(default)]
    pub checks: Option<Vec<String>>,
    /// Only these verdicts' changes: any of `liveness`, `readiness`,
    /// `startup`. Default: all three.
    #[serde(default)]
    pub verdicts: Option<Vec<Group>>,
    /// Which kinds of event: any of `check`, `verdict`, `drain`, `reload`
    /// (Alertmanager takes `check` and `verdict` only). Default: every kind
    /// the type takes.
    #[serde(default)]
    pub events: Option<Vec<EventType>>,
    /// Webhook: only a check's changes to these statuses, any of `fail`,
    /// `warn`, `pass`. `["fail"]` sends critical checks' failures only: no
    /// non-critical check's warning, no recovery. Default: all three.
    #[serde(default)]
    pub transitions: Option<Vec<TransitionTo>>,
    /// Alertmanager: time between two posts of an alert still firing (so
    /// Alertmanager does not resolve it on its own `resolve_timeout`).
    /// More than 0s and at most `"1h"`. Default `"1m"`.
    #[serde(default)]
    pub resend_interval: Option<Positive<3600>>,
    /// Alertmanager: labels added to every alert (e.g. `cluster`, `team`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Alertmanager: the `runbook_url` annotation; `{check}` is replaced by
    /// the check's name (`{verdict}` for a verdict's alert).
    #[serde(default)]
    pub runbook_url: Option<String>,
}

/// A notifier's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    /// A JSON POST of each event.
    Webhook,
    /// Alerts posted to Alertmanager.
    Alertmanager,
}

/// A status a check's change can go to (`transitions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransitionTo {
    /// To `fail`.
    Fail,
    /// To `warn`.
    Warn,
    /// To `pass`.
    Pass,
}

impl TransitionTo {
    /// Whether a change to `status` is this one.
    pub fn is(self, status: crate::health::Status) -> bool {
        use crate::health::Status;
        matches!(
            (self, status),
            (TransitionTo::Fail, Status::Fail)
                | (TransitionTo::Warn, Status::Warn)
                | (TransitionTo::Pass, Status::Pass)
        )
    }
}

/// The kinds of event a notifier can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A check's status changed.
    Check,
    /// A verdict changed.
    Verdict,
    /// A drain started or ended.
    Drain,
    /// A reload was applied or rejected.
    Reload,
    /// A maintenance window opened or closed.
    Maintenance,
}

impl EventType {
    /// The type of `event`.
    pub fn of(event: &crate::health::Event) -> Self {
        use crate::health::EventKind;
        match event.kind {
            EventKind::Check(_) => EventType::Check,
            EventKind::Verdict(_) => EventType::Verdict,
            EventKind::Drain(_) => EventType::Drain,
            EventKind::Maintenance(_) => EventType::Maintenance,
            EventKind::Reload { .. } => EventType::Reload,
        }
    }
}

fn default_timeout() -> Positive<300> {
    Positive::known(Duration::from_secs(5))
}
fn default_attempts() -> Count<20> {
    Count::known(3)
}
fn default_backoff() -> Positive<3600> {
    Positive::known(Duration::from_secs(1))
}
fn default_max_backoff() -> Positive<3600> {
    Positive::known(Duration::from_secs(30))
}
fn default_queue() -> Count<10_000> {
    Count::known(256)
}
fn default_min_interval() -> AtMost<86_400> {
    AtMost::known(Duration::from_secs(30))
}
fn yes() -> bool {
    true
}

/// A command run when something fails or recovers: `on_failure` /
/// `on_recovery` of a check or a verdict. It runs as an exec check's
/// command does: without a shell unless `shell = true`, in its own process
/// group (killed whole at `timeout`), its output bounded. What happened is
/// in its environment, never in its command line: `HEALTHGATE_EVENT`
/// (`check` or `verdict`), `HEALTHGATE_EVENT_ID`, `HEALTHGATE_TIME`,
/// `HEALTHGATE_ACTION`, `HEALTHGATE_CHECK`, `HEALTHGATE_CHECK_TYPE`,
/// `HEALTHGATE_STATUS`, `HEALTHGATE_PREVIOUS_STATUS`, `HEALTHGATE_CATEGORY`,
/// `HEALTHGATE_MESSAGE`, `HEALTHGATE_CRITICAL`, `HEALTHGATE_GROUPS`
/// (checks), `HEALTHGATE_VERDICT`, `HEALTHGATE_OK`, `HEALTHGATE_REASON`
/// (verdicts). One run at a time per action, and at most `max_runs` per
/// `window`: past that it is skipped, logged and counted (`rate_limited`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSection {
    /// The program and its arguments (argv): `["systemctl", "restart",
    /// "myapp"]`. With `shell = true`, one string for `/bin/sh -c`.
    pub command: CommandLine,
    /// Run `command` through `/bin/sh -c`. Default `false`.
    #[serde(default)]
    pub shell: bool,
    /// Extra environment variables (values never shown).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory. Default: healthgate's own.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Bound on one run; the process group is killed past it. More than 0s
    /// and at most `"1h"`. Default `"1m"`.
    #[serde(default = "default_action_timeout")]
    pub timeout: Positive<3600>,
    /// Most runs per `window`, 1 to 1000. Default `5`.
    #[serde(default = "default_max_runs")]
    pub max_runs: Count<1000>,
    /// The window `max_runs` counts in, more than 0s and at most `"1d"`. Default `"5m"`.
    #[serde(default = "default_window")]
    pub window: Positive<86_400>,
}

fn default_action_timeout() -> Positive<3600> {
    Positive::known(Duration::from_secs(60))
}
fn default_max_runs() -> Count<1000> {
    Count::known(5)
}
fn default_window() -> Positive<86_400> {
    Positive::known(Duration::from_secs(300))
}

/// `[actions]`: commands run when a verdict changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsSection {
    /// `[actions.liveness]`: when `/livez` fails or recovers.
    #[serde(default)]
    pub liveness: VerdictActionsSection,
    /// `[actions.readiness]`: when `/readyz` fails or recovers.
    #[serde(default)]
    pub readiness: VerdictActionsSection,
    /// `[actions.startup]`: when `/startupz` fails or recovers.
    #[serde(default)]
    pub startup: VerdictActionsSection,
    /// `[actions.restart]`: restarts the service when `/livez` fails, for a
    /// service beside a VM or a systemd unit: `command = ["systemctl",
    /// "restart", "myapp"]`. At most `max_restarts` per `restart_window`.
    /// In Kubernetes leave it off: the kubelet restarts the container on
    /// the `livenessProbe`. Off unless set.
    #[serde(default)]
    pub restart: Option<RestartSection>,
}

/// `on_failure` / `on_recovery` of one verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictActionsSection {
    /// Run when the verdict turns 503.
    #[serde(default)]
    pub on_failure: Option<ActionSection>,
    /// Run when it turns 200 again after a failure.
    #[serde(default)]
    pub on_recovery: Option<ActionSection>,
}

/// `[actions.restart]`: an `on_failure` of liveness with its own limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestartSection {
    /// The restart command (argv): `["systemctl", "restart", "myapp"]`.
    pub command: CommandLine,
    /// Run `command` through `/bin/sh -c`. Default `false`.
    #[serde(default)]
    pub shell: bool,
    /// Bound on one run, more than 0s and at most `"1h"`. Default `"1m"`.
    #[serde(default = "default_action_timeout")]
    pub timeout: Positive<3600>,
    /// Most restarts per `restart_window`, 1 to 1000. Default `5`.
    #[serde(default = "default_max_runs")]
    pub max_restarts: Count<1000>,
    /// The window restarts are counted in. Default `"5m"`.
    #[serde(default = "default_window")]
    pub restart_window: Positive<86_400>,
}

/// A runnable action.
#[derive(Debug, Clone)]
pub struct Action {
    /// `on_failure`, `on_recovery` or `restart` (the `action` label).
    pub name: &'static str,
    /// The command.
    pub exec: ExecSpec,
    /// Bound on one run.
    pub timeout: Duration,
    /// Most runs per window.
    pub max_runs: u32,
    /// The window.
    pub window: Duration,
}

/// `on_failure` and `on_recovery` of one check or verdict.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    /// Run on a failure.
    pub on_failure: Option<Action>,
    /// Run on a recovery.
    pub on_recovery: Option<Action>,
}

impl Actions {
    /// Whether there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.on_failure.is_none() && self.on_recovery.is_none()
    }
}

/// Everything that acts on events, validated.
#[derive(Debug, Clone, Default)]
pub struct Acting {
    /// The notifiers, in file order.
    pub notifiers: Vec<Notifier>,
    /// Each check's actions (checks with none are not listed).
    pub checks: BTreeMap<Arc<str>, Actions>,
    /// Each verdict's actions, in [`Group::ALL`] order.
    pub verdicts: [Actions; 3],
    /// `[actions.restart]`.
    pub restart: Option<Action>,
}

impl Acting {
    /// Whether any action is configured.
    pub fn has_actions(&self) -> bool {
        !self.checks.is_empty()
            || self.restart.is_some()
            || self.verdicts.iter().any(|a| !a.is_empty())
    }
}

/// A validated notifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Notifier {
    /// Its name.
    pub name: Arc<str>,
    /// What it sends.
    pub kind: NotifierKind,
    /// Where: the webhook's URL, or Alertmanager's `/api/v2/alerts`.
    pub url: http::Uri,
    /// Headers on every request (values secret).
    pub headers: Vec<(http::HeaderName, Secret)>,
    /// The webhook's HMAC key.
    pub secret: Option<Secret>,
    /// CA certificates to trust besides the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Bound on one request.
    pub timeout: Duration,
    /// Tries per notification.
    pub attempts: u32,
    /// First wait between tries.
    pub backoff: Duration,
    /// Longest wait between tries.
    pub max_backoff: Duration,
    /// Queue size.
    pub queue: usize,
    /// Whether recoveries are sent.
    pub send_resolved: bool,
    /// Least time between notifications about one subject.
    pub min_interval: Duration,
    /// Checks whose changes are sent (`None`: all).
    pub checks: Option<HashSet<Arc<str>>>,
    /// Verdicts whose changes are sent.
    pub verdicts: Groups,
    /// Kinds of event sent.
    pub events: Vec<EventType>,
    /// The statuses a check's change must go to to be sent (`None`: any).
    pub transitions: Option<Vec<TransitionTo>>,
    /// Alertmanager: time between posts of a firing alert.
    pub resend_interval: Duration,
    /// Alertmanager: extra labels.
    pub labels: BTreeMap<String, String>,
    /// Alertmanager: `runbook_url`, with `{check}` / `{verdict}` to fill in.
    pub runbook_url: Option<String>,
}

/// Reads `[[notifiers]]` and `[actions]` from the root, and each check's
/// `on_failure` / `on_recovery`; `checks` are the names configured.
pub fn parse(problems: &mut Problems, root: &Map<String, Value>, checks: &[&str]) -> Acting {
    let mut acting = Acting::default();
    match root.get("notifiers") {
        None => {}
        Some(Value::Array(items)) => {
            let mut seen = HashSet::new();
            for (index, item) in items.iter().enumerate() {
                // Named by its name where it has one, as problems in checks are.
                let key = match item.get("name").and_then(Value::as_str) {
                    Some(name) if !name.is_empty() => format!("notifiers.{name}"),
                    _ => format!("notifiers[{index}]"),
                };
                let Some(section) = problems.parse::<NotifierSection>(None, &key, item.clone())
                else {
                    continue;
                };
                if !seen.insert(section.name.as_str().to_owned()) {
                    problems.push(
                        None,
                        &key,
                        "duplicate name; notifier names must be unique".into(),
                    );
                }
                let mut scope = problems.scope(None);
                let mut scope = scope.nested(&key);
                if let Some(notifier) = notifier(&mut scope, section, checks) {
                    acting.notifiers.push(notifier);
                }
            }
        }
        Some(_) => problems.push(
            None,
            "notifiers",
            "expected a list of [[notifiers]] tables".into(),
        ),
    }
    if let Some(section) = problems.section::<ActionsSection>(root, "actions") {
        let mut scope = problems.scope(None);
        let mut scope = scope.nested("actions");
        let verdicts = [&section.liveness, &section.readiness, &section.startup];
        for ((group, written), slot) in Group::ALL
            .into_iter()
            .zip(verdicts)
            .zip(&mut acting.verdicts)
        {
            *slot = actions(
                &mut scope.nested(group.as_str()),
                written.on_failure.clone(),
                written.on_recovery.clone(),
            );
        }
        if let Some(restart) = section.restart {
            let as_action = ActionSection {
                command: restart.command,
                shell: restart.shell,
                env: BTreeMap::new(),
                working_dir: None,
                timeout: restart.timeout,
                max_runs: restart.max_restarts,
                window: restart.restart_window,
            };
            acting.restart = action(&mut scope.nested("restart"), "restart", as_action);
        }
    }
    if let Some(Value::Array(items)) = root.get("checks") {
        for (index, item) in items.iter().enumerate() {
            let Some(table) = item.as_object() else {
                continue;
            };
            if !table.contains_key("on_failure") && !table.contains_key("on_recovery") {
                continue;
            }
            let label = table
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("checks[{index}]"), str::to_owned);
            let section = |problems: &mut Problems, key: &str| {
                table
                    .get(key)
                    .and_then(|v| problems.parse::<ActionSection>(Some(&label), key, v.clone()))
            };
            let on_failure = section(problems, "on_failure");
            let on_recovery = section(problems, "on_recovery");
            let mut scope = problems.scope(Some(&label));
            let resolved = actions(&mut scope, on_failure, on_recovery);
            if !resolved.is_empty() {
                acting.checks.insert(Arc::from(label.as_str()), resolved);
            }
        }
    }
    acting
}

fn actions(
    scope: &mut Scope<'_>,
    on_failure: Option<ActionSection>,
    on_recovery: Option<ActionSection>,
) -> Actions {
    Actions {
        on_failure: on_failure
            .and_then(|a| action(&mut scope.nested("on_failure"), "on_failure", a)),
        on_recovery: on_recovery
            .and_then(|a| action(&mut scope.nested("on_recovery"), "on_recovery", a)),
    }
}

fn action(scope: &mut Scope<'_>, name: &'static str, section: ActionSection) -> Option<Action> {
    let mut exec = ExecConfig::argv(Vec::<String>::new());
    exec.command = section.command;
    exec.shell = section.shell;
    exec.env = section.env;
    exec.working_dir = section.working_dir;
    // Shown in the log line of each run: the first line of output says why
    // an action failed; actions are the operator's own commands.
    exec.show_output = true;
    let exec = exec.resolve(scope, ExitCodesKind::Exact)?;
    Some(Action {
        name,
        exec,
        timeout: section.timeout.get(),
        max_runs: section.max_runs.get(),
        window: section.window.get(),
    })
}

fn notifier(scope: &mut Scope<'_>, s: NotifierSection, checks: &[&str]) -> Option<Notifier> {
    let before = scope.count();
    let webhook = s.kind == NotifierKind::Webhook;
    let url = match http::Uri::from_str(&s.url) {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some_and(crate::config::valid_port) =>
        {
            Some(uri)
        }
        _ => {
            scope.push("url", "expected an http:// or https:// URL with a host, e.g. \"https://hooks.example.com/healthgate\"");
            None
        }
    };
    // Credentials in a URL end up in logs and proxies' records: they go in
    // `headers`, whose values are kept secret. (The message does not repeat the URL.)
    let url = url.filter(|u| {
        let userinfo = u.authority().is_some_and(|a| a.as_str().contains('@'));
        if userinfo {
            scope.push("url", "must not hold credentials (user:password@); send them in `headers`, e.g. Authorization");
        }
        !userinfo
    });
    let url = url.and_then(|u| if webhook { Some(u) } else { alerts_url(&u) });
    let mut headers = Vec::new();
    for (name, value) in s.headers {
        match (
            http::HeaderName::from_str(&name),
            http::HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(_)) => headers.push((n, Secret::new(value))),
            (Err(_), _) => scope.push(&format!("headers.{name}"), "not a valid header name"),
            (_, Err(_)) => scope.push(&format!("headers.{name}"), "not a valid header value"),
        }
    }
    let secret = match (&s.secret_file, webhook) {
        (Some(_), false) => {
            scope.push("secret_file", "applies to webhooks only");
            None
        }
        (Some(path), true) => match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => Some(Secret::new(text.trim())),
            Ok(_) => {
                scope.push("secret_file", format!("{} is empty", path.display()));
                None
            }
            Err(e) => {
                scope.push(
                    "secret_file",
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        },
        (None, _) => None,
    };
    if let Some(ca) = &s.ca_file
        && let Err(e) = crate::config::pem::certificates(ca)
    {
        scope.push("ca_file", e.to_string());
    }
    if s.max_backoff.get() < s.backoff.get() {
        scope.push("max_backoff", "must be at least `backoff`");
    }
    if let Some(names) = &s.checks {
        for name in names.iter().filter(|n| !checks.contains(&n.as_str())) {
            let hint = crate::config::problems::nearest(name, checks.iter().copied())
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            scope.push("checks", format!("no check named `{name}`{hint}"));
        }
    }
    let takes: &[EventType] = if webhook {
        &[
            EventType::Check,
            EventType::Verdict,
            EventType::Drain,
            EventType::Reload,
            EventType::Maintenance,
        ]
    } else {
        &[EventType::Check, EventType::Verdict]
    };
    let events = s.events.clone().unwrap_or_else(|| takes.to_vec());
    for e in events.iter().filter(|e| !takes.contains(e)) {
        scope.push(
            "events",
            format!("{e:?} events cannot become alerts; alertmanager takes check and verdict")
                .to_lowercase(),
        );
    }
    if webhook {
        for (key, set) in [
            ("resend_interval", s.resend_interval.is_some()),
            ("labels", !s.labels.is_empty()),
            ("runbook_url", s.runbook_url.is_some()),
        ] {
            if set {
                scope.push(key, "applies to alertmanager only");
            }
        }
    } else if s.transitions.is_some() {
        scope.push(
            "transitions",
            "applies to webhooks only (an alert resolves on the recovery; use send_resolved)",
        );
    }
    for name in s.labels.keys() {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            scope.push(
                &format!("labels.{name}"),
                "not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)",
            );
        }
    }
    if scope.count() > before {
        return None;
    }
    Some(Notifier {
        name: Arc::from(s.name.as_str()),
        kind: s.kind,
        url: url?,
        headers,
        secret,
        ca_file: s.ca_file,
        timeout: s.timeout.get(),
        attempts: s.attempts.get(),
        backoff: s.backoff.get(),
        max_backoff: s.max_backoff.get(),
        queue: usize::try_from(s.queue.get()).unwrap_or(256),
        send_resolved: s.send_resolved,
        min_interval: s.min_interval.get(),
        checks: s
            .checks
            .map(|names| names.iter().map(|n| Arc::from(n.as_str())).collect()),
        verdicts: s.verdicts.map_or_else(
            || Group::ALL.into_iter().collect(),
            |v| v.into_iter().collect(),
        ),
        events,
        transitions: s.transitions,
        resend_interval: s
            .resend_interval
            .map_or(Duration::from_secs(60), Positive::get),
        labels: s.labels,
        runbook_url: s.runbook_url,
    })
}

/// Alertmanager's alerts endpoint under `base`.
fn alerts_url(base: &http::Uri) -> Option<http::Uri> {
    let path = base.path().trim_end_matches('/');
    let text = format!(
        "{}://{}{path}/api/v2/alerts",
        base.scheme_str().unwrap_or("http"),
        base.authority()?.as_str()
    );
    http::Uri::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, Problem};

    const BASE: &str = "[server]\nallow_no_checks = true\n\
        [[checks]]\nname = \"db\"\ntype = \"tcp\"\naddress = \"127.0.0.1:5432\"\n";

    fn problems(extra: &str) -> Vec<Problem> {
        let text = format!("{BASE}{extra}");
        match crate::config::load_str(std::path::Path::new("t.toml"), &text) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => panic!("{e}"),
            Ok(_) => Vec::new(),
        }
    }

    fn keys(extra: &str) -> Vec<String> {
        let found = problems(extra);
        found
            .iter()
            .map(|p| match &p.check {
                Some(c) => format!("{c}:{}", p.key),
                None => p.key.clone(),
            })
            .collect()
    }

    #[test]
    fn a_valid_notifier_and_actions_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "s3cret\n").unwrap();
        let text = format!(
            "{BASE}on_failure = {{ command = [\"true\"], max_runs = 2, window = \"1h\" }}\n\
             [[notifiers]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/x\"\n\
             secret_file = \"{}\"\nheaders = {{ Authorization = \"Bearer t\" }}\nchecks = [\"db\"]\n\
             [[notifiers]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://am:9093/\"\n\
             labels = {{ team = \"sre\" }}\n\
             [actions.restart]\ncommand = [\"systemctl\", \"restart\", \"app\"]\n",
            key.display()
        );
        let config = crate::config::load_str(std::path::Path::new("t.toml"), &text).unwrap();
        let acting = &config.acting;
        assert_eq!(acting.notifiers.len(), 2);
        let ops = &acting.notifiers[0];
        assert_eq!(ops.secret.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(format!("{:?}", ops.headers), "[(\"authorization\", ***)]");
        assert_eq!(acting.notifiers[1].url, "http://am:9093/api/v2/alerts");
        let db = &acting.checks["db"];
        assert_eq!(db.on_failure.as_ref().unwrap().max_runs, 2);
        let restart = acting.restart.as_ref().unwrap();
        assert_eq!(
            (restart.name, restart.max_runs, restart.window.as_secs()),
            ("restart", 5, 300)
        );
        // An action is not part of what the check is: changing it keeps the check's state.
        let changed = text.replace("max_runs = 2", "max_runs = 3");
        let again = crate::config::load_str(std::path::Path::new("t.toml"), &changed).unwrap();
        assert!(config.checks[0].same_as(&again.checks[0]));
    }

    /// Each mistake is named by its key, all of them in one pass.
    #[test]
    fn bad_notifiers_and_actions_name_their_keys() {
        let found = keys(
            "on_recovery = { command = [\"true\"], max_runs = 0 }\n\
             [[notifiers]]\nname = \"a\"\ntype = \"pager\"\nurl = \"https://x\"\n\
             [[notifiers]]\nname = \"b\"\ntype = \"webhook\"\nurl = \"ftp://x/\"\n\
             [[notifiers]]\nname = \"c\"\ntype = \"webhook\"\nurl = \"https://x/\"\nsecret_file = \"/nonexistent/key\"\n\
             [[notifiers]]\nname = \"d\"\ntype = \"webhook\"\nurl = \"https://x/\"\nattempts = 0\nchecks = [\"dbb\"]\n\
             [[notifiers]]\nname = \"e\"\ntype = \"alertmanager\"\nurl = \"http://am:9093\"\nevents = [\"reload\"]\nsecret_file = \"/k\"\n\
             [actions.liveness.on_failure]\ncommand = \"systemctl restart app\"\n\
             [actions.restart]\ncommand = [\"x\"]\nmax_restarts = 0\n",
        );
        for key in [
            "db:on_recovery.max_runs",
            "notifiers.a.type",
            "notifiers.b.url",
            "notifiers.c.secret_file",
            "notifiers.d.attempts",
            "notifiers.e.events",
            "notifiers.e.secret_file",
            "actions.liveness.on_failure.command",
            "actions.restart.max_restarts",
        ] {
            assert!(found.iter().any(|k| k == key), "{key} not in {found:?}");
        }
        let all = problems(
            "[[notifiers]]\nname = \"d\"\ntype = \"webhook\"\nurl = \"https://x/\"\nchecks = [\"dbb\"]\n",
        );
        assert!(all[0].message.contains("did you mean `db`?"), "{all:?}");
    }

    /// A URL's credentials, a header's value and the secret file's key
    /// appear in no problem, however wrong the rest is.
    #[test]
    fn secrets_stay_out_of_problems() {
        let text = "[[notifiers]]\nname = \"x\"\ntype = \"webhook\"\n\
                    url = \"https://user:hunter2@hooks.example.com:99999/\"\n\
                    headers = { \"Bad Name\" = \"Bearer hunter2\", X-Ok = \"hunter2\\u0001\" }\n";
        let found = problems(text);
        assert!(found.len() >= 2, "{found:?}");
        for p in found {
            assert!(!p.to_string().contains("hunter2"), "{p}");
        }
        // Credentials in a valid URL are refused too: they belong in headers.
        let text = "[[notifiers]]\nname = \"x\"\ntype = \"webhook\"\n\
                    url = \"https://user:hunter2@hooks.example.com/\"\n";
        let found = problems(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "notifiers.x.url");
        assert!(
            found[0].message.contains("credentials"),
            "{}",
            found[0].message
        );
        assert!(!found[0].to_string().contains("hunter2"));
    }
}
