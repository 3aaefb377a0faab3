//! From the parsed tree to a [`Config`]: the sections read, each check
//! parsed by its type's own section, the rules across keys applied, and
//! every problem collected (not just the first).

use std::collections::HashMap;
use std::str::FromStr;

use serde_json::Value;

use super::Problem;
use super::check;
use super::model::{ReloadSection, ServerSection, TelemetrySection};
use super::problems::Problems;
use super::resolved::*;
use super::schedule::ScheduleSection;

const TOP_KEYS: &[&str] = &[
    "server",
    "reload",
    "telemetry",
    "defaults",
    "checks",
    "notifiers",
    "actions",
    "maintenance",
    "state",
];
/// Longest time between two polls of the config file.
const MAX_POLL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Validates a parsed config tree, returning every problem found.
pub fn validate(raw: Value) -> Result<Config, Vec<Problem>> {
    let mut v = Problems::default();
    let Value::Object(root) = raw else {
        v.push(None, "(root)", "expected a table of settings".into());
        return Err(v.into_vec());
    };
    v.unknown_keys(None, "", &root, TOP_KEYS);
    let before_server = v.count();
    let server: Option<ServerSection> = v.section(&root, "server");
    // A key refused here falls back to its default: a rule across keys
    // would then judge a value the user did not write.
    let server_as_written = v.count() == before_server;
    let reload: Option<ReloadSection> = v.section(&root, "reload");
    let telemetry: Option<TelemetrySection> = v.section(&root, "telemetry");
    let defaults: Option<ScheduleSection> = v.section(&root, "defaults");
    let state: Option<crate::state::StateSection> = v.section(&root, "state");
    let mut checks = Vec::new();
    match root.get("checks") {
        None => {}
        Some(Value::Array(items)) => {
            // Sized once: growing by doubling would hold the old and the new
            // buffer at once (~20 MB at the 8,192 -> 16,384 step of a 10,000-check config).
            checks.reserve_exact(items.len());
            let defaults = defaults.unwrap_or_default();
            for (index, item) in items.iter().enumerate() {
                if let Some(check) = check::parse(&mut v, index, item, &defaults) {
                    checks.push(check);
                }
            }
        }
        Some(_) => v.push(
            None,
            "checks",
            "expected a list of [[checks]] tables".into(),
        ),
    }
    if let Some(Value::Array(items)) = root.get("checks") {
        duplicates(&mut v, items);
    }
    let no_checks = match root.get("checks") {
        None => true,
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    };
    if no_checks && !server.as_ref().is_some_and(|s| s.allow_no_checks) {
        v.push(
            None,
            "checks",
            "no checks: every verdict would be 200. A file cut short or emptied by a \
             failed write looks like this; set server.allow_no_checks = true if it is meant"
                .into(),
        );
    }
    if let Some(r) = &reload {
        if r.poll_interval > MAX_POLL {
            v.push(
                None,
                "reload.poll_interval",
                "must be at most 1d (0s turns polling off)".into(),
            );
        }
    }
    if let Some(t) = &telemetry {
        otlp(&mut v, &t.otlp);
    }
    let admin_token = server
        .as_ref()
        .and_then(|s| listeners(&mut v, s, server_as_written));
    let names: Vec<&str> = checks.iter().map(|c| &*c.name).collect();
    let acting = crate::events::config::parse(&mut v, &root, &names);
    let maintenance = crate::maintenance::config::parse(&mut v, &root, &names);
    let disabled: Vec<check::Check> = if checks.iter().all(|c| c.enabled) {
        Vec::new()
    } else {
        let (on, off) = checks.into_iter().partition(|c| c.enabled);
        checks = on;
        off
    };
    match (server, reload, telemetry, defaults, state) {
        (Some(server), Some(reload), Some(telemetry), Some(_), Some(state)) if v.is_empty() => {
            Ok(Config {
                server: Server {
                    listen: server.listen,
                    admin_listen: server.admin_listen,
                    grpc_listen: server.grpc_listen,
                    agent_listen: server.agent_listen,
                    shutdown_timeout: server.shutdown_timeout.get(),
                    drain: server.drain,
                    tls: server.tls,
                    admin_tls: server.admin.tls,
                    admin_token,
                    agent_weight_on_warn: server.agent.weight_on_warn,
                },
                reload,
                telemetry,
                checks,
                disabled,
                acting,
                maintenance,
                state,
            })
        }
        _ => Err(v.into_vec()),
    }
}

/// Checks the listeners; returns the admin token read from its file.
/// `as_written`: no key of `s` was refused (and replaced by its default),
/// so the rules across keys judge what the file says.
fn listeners(v: &mut Problems, s: &ServerSection, as_written: bool) -> Option<Secret> {
    let mut addresses = vec![
        ("server.listen", s.listen),
        ("server.admin_listen", s.admin_listen),
    ];
    addresses.extend(s.grpc_listen.map(|a| ("server.grpc_listen", a)));
    addresses.extend(s.agent_listen.map(|a| ("server.agent_listen", a)));
    for (i, (key, addr)) in addresses.iter().enumerate() {
        if addr.port() == 0 {
            continue;
        }
        if let Some((other, _)) = addresses[..i].iter().find(|(_, a)| a == addr) {
            v.push(None, key, format!("{addr} is already used by `{other}`"));
        }
    }
    if as_written && s.drain.min.get() > s.drain.max.get() {
        v.push(
            None,
            "server.drain.min",
            format!(
                "{} is longer than server.drain.max ({})",
                humantime::format_duration(s.drain.min.get()),
                humantime::format_duration(s.drain.max.get())
            ),
        );
    }
    if let Some(weight) = s.agent.weight_on_warn
        && !(1..=100).contains(&weight)
    {
        v.push(
            None,
            "server.agent.weight_on_warn",
            "must be a percentage from 1 to 100".into(),
        );
    }
    for (prefix, tls) in [("server.tls", &s.tls), ("server.admin.tls", &s.admin.tls)] {
        if let Some(tls) = tls
            && let Err(e) = super::listener_tls::server_config(tls, &[])
        {
            v.push(None, &format!("{prefix}.{}", e.key), e.message);
        }
    }
    let token = s
        .admin
        .token_file
        .as_ref()
        .and_then(|path| match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => Some(Secret::new(text.trim())),
            Ok(_) => {
                v.push(
                    None,
                    "server.admin.token_file",
                    format!("{} is empty", path.display()),
                );
                None
            }
            Err(e) => {
                v.push(
                    None,
                    "server.admin.token_file",
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        });
    let mtls = s
        .admin
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca_file.is_some());
    if !s.admin_listen.ip().is_loopback() && s.admin.token_file.is_none() && !mtls {
        v.push(
            None,
            "server.admin_listen",
            format!(
                "{} is reachable from other hosts: set server.admin.token_file or \
                 server.admin.tls.client_ca_file, or listen on 127.0.0.1",
                s.admin_listen
            ),
        );
    }
    token
}

fn otlp(v: &mut Problems, o: &super::model::OtlpSection) {
    if let Some(endpoint) = &o.endpoint {
        let uri = http::Uri::from_str(endpoint).ok();
        if uri
            .as_ref()
            .and_then(|u| u.authority())
            .is_some_and(|a| !super::valid_port(a))
        {
            v.push(
                None,
                "telemetry.otlp.endpoint",
                "the port must be 1 to 65535".into(),
            );
        }
        let scheme = uri.and_then(|u| u.scheme_str().map(str::to_owned));
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            v.push(
                None,
                "telemetry.otlp.endpoint",
                "expected an http:// or https:// URL".into(),
            );
        }
    }
    if o.tls.cert_file.is_some() != o.tls.key_file.is_some() {
        v.push(
            None,
            "telemetry.otlp.tls",
            "cert_file and key_file go together".into(),
        );
    }
    let files = [
        ("ca_file", &o.tls.ca_file),
        ("cert_file", &o.tls.cert_file),
        ("key_file", &o.tls.key_file),
    ];
    for (key, file) in files {
        if let Some(path) = file
            && let Err(e) = std::fs::metadata(path)
        {
            v.push(
                None,
                &format!("telemetry.otlp.tls.{key}"),
                format!("cannot read {}: {e}", path.display()),
            );
        }
    }
    for name in o.headers.keys() {
        if http::HeaderName::from_str(name).is_err() {
            v.push(
                None,
                &format!("telemetry.otlp.headers.{name}"),
                "not a valid header name".into(),
            );
        }
    }
}

fn duplicates(v: &mut Problems, items: &[Value]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for name in items.iter().filter_map(|item| item.get("name")?.as_str()) {
        let count = seen.entry(name).or_default();
        *count += 1;
        if *count == 2 {
            v.push(
                Some(name),
                "name",
                "duplicate name; check names must be unique".into(),
            );
        }
    }
}
