//! Config reload: notice a change, load it (file + environment, exactly as at
//! start, through the same code as `healthgate validate`), and hand a valid
//! config to the caller to diff and apply. An invalid config changes nothing.

mod triggers;

use std::path::{Path, PathBuf};

pub use triggers::{Trigger, Triggers};

use crate::config::ReloadSection;
use crate::config::{self, Config, ConfigError, Content};

/// Produces the configs to try, one per real change.
pub struct Reloader {
    path: PathBuf,
    seen: Content,
    triggers: Triggers,
}

impl Reloader {
    /// Starts watching; `content` is what the running config was read from.
    pub fn new(path: &Path, content: Content, settings: &ReloadSection) -> Self {
        Self {
            path: path.to_owned(),
            seen: content,
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
            let loaded = match tokio::task::spawn_blocking(move || config::load(&path)).await {
                Ok(loaded) => loaded,
                Err(join) => config::Loaded {
                    content: Content::Unreadable(join.to_string()),
                    config: Err(ConfigError::Read {
                        path: self.path.clone(),
                        source: std::io::Error::other(join.to_string()),
                    }),
                },
            };
            if loaded.content == self.seen && trigger != Trigger::Signal {
                tracing::debug!(?trigger, "config re-read; content unchanged");
                continue;
            }
            tracing::debug!(?trigger, "config changed; reloading");
            self.seen = loaded.content;
            return loaded.config;
        }
    }
}
