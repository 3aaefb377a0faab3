//! `type = "exec"` and `type = "script"`: their keys, their defaults, and
//! the runnable [`ExecSpec`] they resolve to.

use std::collections::BTreeMap;
use std::path::PathBuf;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::bounded::ByteLimit;
use crate::config::{Scope, Secret};

/// Largest `max_output_bytes`.
const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;

/// `type = "exec"`: a command run on every check. `type = "script"` is the
/// same with `expect.exit_codes = "nagios"` as its default: Nagios plugins
/// and Consul script checks work unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program and its arguments (argv), run without a shell:
    /// `["redis-cli", "ping"]`. With `shell = true`, one string run by
    /// `/bin/sh -c`: `"pg_isready && test -f /ready"` (or a list of that one string).
    pub command: CommandLine,
    /// Run `command` through `/bin/sh -c`. Default `false`.
    #[serde(default)]
    pub shell: bool,
    /// Extra environment variables for the command (values never shown).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the command. Default: healthgate's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// Most bytes of stdout and of stderr kept (each; default 4096, at most 1 MiB).
    /// The rest is read and discarded so the command never blocks on a full pipe.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: ByteLimit<MAX_OUTPUT_BYTES>,
    /// Put the first line of the command's output in the run's message
    /// (`exit code 2: DISK CRITICAL - 97% used`), which every endpoint shows,
    /// the load-balancer listener's `/readyz?verbose` and `/health`
    /// included. Output can hold a secret (a connection string, a token a
    /// tool echoes), so it is off unless set: the message is then the exit
    /// code and the verdict alone. `expect.output_*` match the whole output
    /// either way. Default `false`.
    #[serde(default)]
    pub show_output: bool,
    /// `[checks.expect]`: what a passing run looks like.
    #[serde(default)]
    pub expect: ExecExpectSection,
}

fn default_max_output_bytes() -> ByteLimit<MAX_OUTPUT_BYTES> {
    ByteLimit::known(4096)
}

/// An exec check's `command`: a list of arguments, or one string for a shell.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "a list of strings such as [\"redis-cli\", \"ping\"], or one string with shell = true"
)]
pub enum CommandLine {
    /// `"echo hi"`: a script for `/bin/sh -c` (`shell = true` only).
    Script(String),
    /// `["echo", "hi"]`: the program and its arguments.
    Argv(Vec<String>),
}

/// How an exec check reads exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitCodesKind {
    /// `exit_code` passes, anything else fails.
    Exact,
    /// Nagios plugin semantics: 0 pass, 1 warn, 2+ fail.
    Nagios,
}

/// `[checks.expect]` of an exec check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecExpectSection {
    /// Exit code of a passing run (with `exit_codes = "exact"`). Default `0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// How exit codes are read: `exact` (`exit_code` passes, anything else
    /// fails) or `nagios` (0 `OK` passes, 1 `WARNING` passes with a warning,
    /// 2 `CRITICAL` and 3 `UNKNOWN` or more fail; the first line of stdout is
    /// the message). Default `exact` for `type = "exec"`, `nagios` for `type = "script"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_codes: Option<ExitCodesKind>,
    /// Stdout followed by stderr must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_contains: Option<String>,
    /// Stdout followed by stderr must match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_regex: Option<String>,
}

/// A validated exec check.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// argv (with `shell`, `["/bin/sh", "-c", script]`).
    pub argv: Vec<String>,
    /// Extra environment (values are secrets).
    pub env: Vec<(String, Secret)>,
    /// Working directory.
    pub working_dir: Option<PathBuf>,
    /// Bound on each captured stream.
    pub max_output_bytes: usize,
    /// How the exit code is judged.
    pub exit_codes: ExitCodes,
    /// Output substring that must be present.
    pub output_contains: Option<String>,
    /// Pattern the output must match.
    pub output_regex: Option<Regex>,
    /// Whether the first line of output goes into the message.
    pub show_output: bool,
}

/// How an exec check judges the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCodes {
    /// This code passes, any other fails.
    Exact(i32),
    /// 0 pass, 1 warn, 2 and above fail.
    Nagios,
}

impl ExecConfig {
    /// `argv` run without a shell, passing on exit code 0.
    pub fn argv<I: IntoIterator<Item = S>, S: Into<String>>(argv: I) -> Self {
        Self {
            command: CommandLine::Argv(argv.into_iter().map(Into::into).collect()),
            shell: false,
            env: BTreeMap::new(),
            working_dir: None,
            max_output_bytes: default_max_output_bytes(),
            show_output: false,
            expect: ExecExpectSection::default(),
        }
    }

    /// The runnable spec, or `None` with every problem reported to `p`.
    /// `default_codes` is how exit codes read when `expect.exit_codes` is
    /// not set: `exact` for `exec`, `nagios` for `script`.
    pub fn resolve(self, p: &mut Scope<'_>, default_codes: ExitCodesKind) -> Option<ExecSpec> {
        let before = p.count();
        let exit_codes = match (
            self.expect.exit_codes.unwrap_or(default_codes),
            self.expect.exit_code,
        ) {
            (ExitCodesKind::Exact, code) => ExitCodes::Exact(code.unwrap_or(0)),
            (ExitCodesKind::Nagios, None) => ExitCodes::Nagios,
            (ExitCodesKind::Nagios, Some(_)) => {
                p.push(
                    "expect.exit_code",
                    "has no effect with `exit_codes = \"nagios\"` (0 pass, 1 warn, 2+ fail)",
                );
                ExitCodes::Nagios
            }
        };
        let argv = match (self.command, self.shell) {
            (CommandLine::Script(script), true) => {
                Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), script])
            }
            (CommandLine::Argv(argv), true) if argv.len() == 1 => Some(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                argv.into_iter().next().unwrap_or_default(),
            ]),
            (CommandLine::Argv(_), true) => {
                p.push(
                    "command",
                    "with `shell = true`, give one string: the script",
                );
                None
            }
            (CommandLine::Script(_), false) => {
                p.push(
                    "command",
                    "a string runs through a shell only with `shell = true`; without one, \
                     give the program and its arguments as a list, e.g. [\"redis-cli\", \"ping\"]",
                );
                None
            }
            (CommandLine::Argv(argv), false) => Some(argv),
        };
        // The program, or with a shell the script.
        let named = |a: &Vec<String>| if self.shell { a.get(2) } else { a.first() }.cloned();
        if argv
            .as_ref()
            .is_some_and(|a| named(a).is_none_or(|p| p.trim().is_empty()))
        {
            p.push(
                "command",
                "must name a program, e.g. [\"redis-cli\", \"ping\"]",
            );
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                p.push(&format!("env.{name}"), "not a valid variable name");
            }
        }
        let output_regex = p.regex("expect.output_regex", self.expect.output_regex.as_deref());
        if p.count() > before {
            return None;
        }
        Some(ExecSpec {
            argv: argv?,
            env: self
                .env
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect(),
            working_dir: self.working_dir,
            max_output_bytes: self.max_output_bytes.bytes(),
            exit_codes,
            output_contains: self.expect.output_contains,
            output_regex: output_regex?,
            show_output: self.show_output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    fn resolve(section: serde_json::Value, codes: ExitCodesKind) -> Result<ExecSpec, Vec<String>> {
        let config: ExecConfig = serde_json::from_value(section).unwrap();
        let mut problems = Problems::default();
        let spec = config.resolve(&mut problems.scope(Some("e")), codes);
        spec.ok_or_else(|| problems.into_vec().into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn argv_runs_without_a_shell_and_a_script_reads_nagios_codes() {
        let spec = resolve(
            serde_json::json!({"command": ["redis-cli", "ping"]}),
            ExitCodesKind::Exact,
        )
        .unwrap();
        assert_eq!(spec.argv, ["redis-cli", "ping"]);
        assert_eq!(spec.exit_codes, ExitCodes::Exact(0));
        assert_eq!(spec.max_output_bytes, 4096);
        let spec = resolve(
            serde_json::json!({"command": "pg_isready && test -f /ready", "shell": true}),
            ExitCodesKind::Nagios,
        )
        .unwrap();
        assert_eq!(spec.argv, ["/bin/sh", "-c", "pg_isready && test -f /ready"]);
        assert_eq!(spec.exit_codes, ExitCodes::Nagios);
        assert_eq!(
            ExecConfig::argv(["redis-cli", "ping"]),
            serde_json::from_value(serde_json::json!({"command": ["redis-cli", "ping"]})).unwrap()
        );
    }

    #[test]
    fn a_string_needs_a_shell_and_a_shell_needs_one_string() {
        let keys = resolve(
            serde_json::json!({"command": "echo hi"}),
            ExitCodesKind::Exact,
        );
        assert_eq!(keys.unwrap_err(), ["command"]);
        let keys = resolve(
            serde_json::json!({"command": ["a", "b"], "shell": true}),
            ExitCodesKind::Exact,
        );
        assert_eq!(keys.unwrap_err(), ["command"]);
    }

    #[test]
    fn every_bad_key_is_named() {
        let keys = resolve(
            serde_json::json!({
                "command": [" "], "env": {"A=B": "x"},
                "expect": {"exit_code": 1, "exit_codes": "nagios", "output_regex": "("}
            }),
            ExitCodesKind::Exact,
        )
        .unwrap_err();
        assert_eq!(
            keys,
            [
                "expect.exit_code",
                "command",
                "env.A=B",
                "expect.output_regex"
            ]
        );
    }
}
