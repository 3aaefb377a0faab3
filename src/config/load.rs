//! Reading a config: the file (TOML or YAML by extension), then `HEALTHGATE_*`
//! environment overrides (`__` nests: `HEALTHGATE_SERVER__LISTEN`), then validation.

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

/// Reads, parses and validates the config at `path`, with environment overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_str(path, &text)
}

/// Parses and validates `text` as the content of `path` (whose extension picks
/// the format), with environment overrides.
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let format = Format::from_path(path).ok_or_else(|| ConfigError::Format {
        path: path.to_owned(),
    })?;
    let file = match format {
        Format::Toml => Figment::from(Toml::string(text)),
        Format::Yaml => Figment::from(Yaml::string(text)),
    };
    // HEALTHGATE_CONFIG names the file itself; it is not a key in it.
    let env = Env::prefixed("HEALTHGATE_").split("__").ignore(&["config"]);
    let raw: serde_json::Value =
        file.merge(env)
            .extract()
            .map_err(|e: figment::Error| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
    validate(raw).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}
