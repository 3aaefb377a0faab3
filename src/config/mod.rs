//! Configuration: loading (file + environment), the problem collector, the
//! schedule every check shares, the check table, the root sections and the
//! rules across their keys, and the diff a reload applies. Each check type's
//! own keys live beside its runner (`probe::http::config`, ...).
//!
//! [`load`] is the one path from a file to a running [`Config`]: `healthgate
//! validate`, `check`, `run` and reload all go through it.

pub mod bounded;
mod check;
pub mod cron;
mod diff;
pub mod duration;
mod listener_tls;
mod load;
mod model;
pub mod pem;
pub mod problems;
mod resolved;
mod schedule;
mod validate;

pub use check::{
    Check, CheckCommon, CheckConfig, CheckName, Definition, LatencySection, MaxDuration, Meta,
    SlowMode, Source, TypeSection,
};
pub use diff::{Change, Diff};
pub use listener_tls::{ListenerTlsError, server_config};
pub use load::{
    Content, ENV_SECTIONS, Format, Loaded, MAX_CONFIG_BYTES, MAX_DEPTH, load, load_str, read,
};
// The root sections need nothing resolved beyond their rules, which
// `validate` applies: the engine reads them validated, through `Config`.
pub use model::{
    AdminSection, AgentSection, DrainSection, ListenerTlsSection, OtlpProtocol, OtlpSection,
    OtlpTlsSection, ReloadSection, ServerSection, TelemetrySection, TemporalityKind, TlsVersion,
    TracesSection,
};
pub use problems::{Problems, Scope};
pub use resolved::*;
pub use schedule::{Schedule, ScheduleSection, Window};
pub use validate::validate;

use std::path::PathBuf;

/// The default config path, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/healthgate.toml";

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The extension names no format we read.
    #[error("{path}: unknown config format; use a .toml, .yaml or .yml file")]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid TOML/YAML, or an environment override is malformed.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column where it has them.
        message: String,
    },
    /// The file parsed, but its content is wrong; every problem is listed.
    #[error("{path}: {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Everything wrong with it.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `authority`'s port, if it names one, is 1 to 65535. `http::Uri`
/// parses `host:99999` and then reports no port at all, which a client
/// takes as the scheme's default (80): a typo or a hostile redirect would
/// probe another service.
pub fn valid_port(authority: &http::uri::Authority) -> bool {
    // The credentials may hold a `:` of their own.
    let text = authority.as_str();
    let text = text.rsplit_once('@').map_or(text, |(_, host)| host);
    let after_host = text.rfind(']').map_or(text, |end| &text[end..]);
    match after_host.rsplit_once(':') {
        Some((_, "")) | None => true,
        Some((_, port)) => port.parse::<u16>().is_ok_and(|p| p != 0),
    }
}

/// `text` with control characters escaped (`\u{1b}`).
pub(crate) fn escape_controls(text: &str) -> String {
    if !text.contains(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// One thing wrong in a config: where (check and key) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The check's name (or `checks[N]` when it has none); `None` outside `[[checks]]`.
    pub check: Option<String>,
    /// Dotted key within the check (or from the root outside checks).
    pub key: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.check {
            Some(check) => write!(f, "check {check:?}: key `{}`: {}", self.key, self.message),
            None => write!(f, "key `{}`: {}", self.key, self.message),
        }
    }
}
