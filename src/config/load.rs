//! Reading a config: the file (TOML or YAML by extension, a regular file of
//! at most [`MAX_CONFIG_BYTES`], nested at most [`MAX_DEPTH`] deep), then
//! `HEALTHGATE_<SECTION>__<KEY>` environment overrides for the sections
//! [`ENV_SECTIONS`] (`__` nests: `HEALTHGATE_SERVER__LISTEN`), then validation.
//! Other `HEALTHGATE_*` variables are not config keys and are ignored: a
//! Kubernetes Service named `healthgate` injects `HEALTHGATE_SERVICE_HOST`,
//! `HEALTHGATE_PORT`, ... into every pod of its namespace.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format as _, Toml, Yaml};

use super::{Config, ConfigError, validate};

/// A config file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.yaml` / `.yml`
    Yaml,
}

impl Format {
    /// The format a path's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// Largest config file read. A 10,000-check config is about 1.5 MB; a
/// bound keeps a config pointed at `/dev/zero` or a runaway generator from
/// taking the gateway's memory.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// Deepest nesting of tables and lists (`[`, `{`, or YAML indentation levels).
pub const MAX_DEPTH: usize = 32;
/// The sections environment variables may override.
pub const ENV_SECTIONS: [&str; 4] = ["server", "reload", "telemetry", "defaults"];

/// One read of the config file: what it held, to tell a later change from
/// a touch, and the config it gives, or why it gives none.
#[derive(Debug)]
pub struct Loaded {
    /// What the file held.
    pub content: Content,
    /// The validated config, or every reason there is none.
    pub config: Result<Config, ConfigError>,
}

/// What a read of the config file found: a digest of its text, or why it
/// could not be read. Equal contents mean nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The text's digest.
    Text(u64),
    /// The file could not be read, for this reason.
    Unreadable(String),
}

/// Reads, parses and validates the config at `path`, with environment
/// overrides: the one path from a file to a config, for every command and
/// for reload.
pub fn load(path: &Path) -> Loaded {
    match read(path) {
        Ok(text) => Loaded {
            content: Content::Text(digest(&text)),
            config: load_str(path, &text),
        },
        Err(error) => Loaded {
            content: Content::Unreadable(error.to_string()),
            config: Err(error),
        },
    }
}

fn digest(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// The text of the config at `path`: a regular file (symlinks followed) of
/// at most [`MAX_CONFIG_BYTES`], in UTF-8.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    let failed = |source: std::io::Error| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    // Non-blocking, so that opening a FIFO nobody writes does not hang; it
    // changes nothing for a regular file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(failed)?;
    let meta = file.metadata().map_err(failed)?;
    if !meta.is_file() {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {} MiB", MAX_CONFIG_BYTES >> 20),
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8",
        ))
    })
}

/// Parses and validates `text` as the content of `path` (whose extension picks
/// the format), with environment overrides.
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let format = Format::from_path(path).ok_or_else(|| ConfigError::Format {
        path: path.to_owned(),
    })?;
    let parse_error = |message: String| ConfigError::Parse {
        path: path.to_owned(),
        message,
    };
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(parse_error(format!(
            "larger than {} MiB",
            MAX_CONFIG_BYTES >> 20
        )));
    }
    if depth(text, format) > MAX_DEPTH {
        return Err(parse_error(format!(
            "nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let file = match format {
        Format::Toml => Figment::from(Toml::string(text)),
        Format::Yaml => Figment::from(Yaml::string(text)),
    };
    // Only HEALTHGATE_<SECTION>__<KEY>: HEALTHGATE_CONFIG names the file
    // itself, and service links (HEALTHGATE_SERVICE_HOST) are not keys.
    let env = Env::prefixed("HEALTHGATE_")
        .filter(|key| is_override(key.as_str()))
        .split("__");
    let raw: serde_json::Value =
        file.merge(env)
            .extract()
            .map_err(|e: figment::Error| ConfigError::Parse {
                path: path.to_owned(),
                message: without_source(&e.to_string()),
            })?;
    validate(raw).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// A parser's message without the source lines it quotes (TOML's
/// `5 | headers = { Authorization = "Bearer …"`): the line with an error
/// may hold a secret. The line and column stay.
fn without_source(message: &str) -> String {
    message
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            let after_number = line
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            !after_number.starts_with('|')
        })
        .map(super::escape_controls)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `key` (after `HEALTHGATE_`) names a key of an overridable section.
fn is_override(key: &str) -> bool {
    key.split_once("__").is_some_and(|(section, rest)| {
        !rest.is_empty() && ENV_SECTIONS.iter().any(|s| section.eq_ignore_ascii_case(s))
    })
}

/// The deepest nesting in `text`: brackets and braces outside quoted strings
/// and comments, and for YAML also the levels of block indentation. Cheap
/// and linear, so a hostile file is refused before a parser spends
/// quadratic time or deep recursion on it.
fn depth(text: &str, format: Format) -> usize {
    let mut deepest = 0;
    let mut open = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for line in text.lines() {
        if format == Format::Yaml {
            let trimmed = line.trim_start_matches([' ', '-']);
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                let indent = line.len() - trimmed.len();
                while indents.last().is_some_and(|&i| i >= indent) {
                    indents.pop();
                }
                indents.push(indent);
            }
        }
        let mut quote = None;
        let mut escaped = false;
        for c in line.chars() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q == '"' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '#' => break,
                    '[' | '{' => {
                        open += 1;
                        deepest = deepest.max(open + indents.len());
                    }
                    ']' | '}' => open = open.saturating_sub(1),
                    _ => {}
                },
            }
        }
        deepest = deepest.max(open + indents.len());
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_never_quote_the_source() {
        let message = "TOML parse error at line 5, column 45\n  |\n5 | headers = { Authorization = \"Bearer s3cr3t\" \n  |                                             ^\ninvalid inline table\nexpected `}`\n";
        let shown = without_source(message);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(
            shown,
            "TOML parse error at line 5, column 45 invalid inline table expected `}`"
        );
    }

    #[test]
    fn only_section_keys_are_overrides() {
        for key in [
            "SERVER__LISTEN",
            "server__listen",
            "DEFAULTS__INTERVAL",
            "TELEMETRY__OTLP__ENDPOINT",
        ] {
            assert!(is_override(key), "{key}");
        }
        for key in [
            "CONFIG",
            "SERVICE_HOST",
            "SERVICE_PORT",
            "SERVICE_PORT_HTTP",
            "PORT",
            "PORT_8090_TCP",
            "PORT_8090_TCP_ADDR",
            "CHECKS__0__NAME",
            "SERVER__",
            "SERVERS__LISTEN",
        ] {
            assert!(!is_override(key), "{key}");
        }
    }

    #[test]
    fn depth_counts_brackets_outside_strings_and_yaml_indentation() {
        assert_eq!(depth("a = 1\n[server]\nlisten = \"x\"\n", Format::Toml), 1);
        assert_eq!(depth("a = [[[[[1]]]]]\n", Format::Toml), 5);
        assert_eq!(depth("a = [[1], {b = 2}]", Format::Toml), 2);
        assert_eq!(depth("a = \"[[[[\" # [[[[", Format::Toml), 0);
        assert_eq!(depth(&"[".repeat(1000), Format::Toml), 1000);
        assert_eq!(depth("a:\n  b:\n    c: 1\n", Format::Yaml), 3);
        assert_eq!(depth("a:\n  - b: 1\n  - c: 2\nd: 3\n", Format::Yaml), 2);
        let deep: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert!(depth(&deep, Format::Yaml) > MAX_DEPTH);
    }
}
