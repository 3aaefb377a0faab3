//! Config reload: notice a change, load it (file + environment, exactly as at
//! start, through the same code as `healthgate validate`), and hand a valid
//! config to the caller to diff and apply. An invalid config changes nothing.

mod triggers;

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

pub use triggers::{Trigger, Triggers};

use crate::config::model::ReloadSection;
use crate::config::{self, Config, ConfigError};

/// What was last read, so a touch or an event without a change does nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Content(u64),
    Unreadable(String),
}

/// Produces the configs to try, one per real change.
pub struct Reloader {
    path: PathBuf,
    seen: Seen,
    triggers: Triggers,
}

impl Reloader {
    /// Starts watching; `text` is the content the running config came from.
    pub fn new(path: &Path, text: &str, settings: &ReloadSection) -> Self {
        Self {
            path: path.to_owned(),
            seen: Seen::Content(hash(text)),
            triggers: Triggers::new(path, settings),
        }
    }

    /// Follows changed `[reload]` settings.
    pub fn update(&mut self, settings: &ReloadSection) {
        self.triggers.update(settings);
    }

    /// Waits for the next content worth trying, and loads it. SIGHUP always
    /// loads; file events and polls only when the content changed. Cancel-safe.
    pub async fn next(&mut self) -> Result<Config, ConfigError> {
        loop {
            let trigger = self.triggers.next().await;
            let path = self.path.clone();
            let read = tokio::task::spawn_blocking(move || config::read(&path)).await;
            let (seen, result) = match read {
                Ok(Ok(text)) => (
                    Seen::Content(hash(&text)),
                    config::load_str(&self.path, &text),
                ),
                Ok(Err(error)) => (Seen::Unreadable(error.to_string()), Err(error)),
                Err(join) => (
                    Seen::Unreadable(join.to_string()),
                    Err(ConfigError::Read {
                        path: self.path.clone(),
                        source: std::io::Error::other(join.to_string()),
                    }),
                ),
            };
            if seen == self.seen && trigger != Trigger::Signal {
                tracing::debug!(?trigger, "config re-read; content unchanged");
                continue;
            }
            tracing::debug!(?trigger, "config changed; reloading");
            self.seen = seen;
            return result;
        }
    }
}

fn hash(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}
