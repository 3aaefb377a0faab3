//! `[state]`: where the store lives and how it is written.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::bounded::Positive;

/// `[state]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// Directory of the state store (`healthgate.redb`): each check's runs
    /// rolled up by hour and its status changes, for history and uptime.
    /// Created if missing. In Kubernetes an `emptyDir` (it survives
    /// container restarts). Off unless set: healthgate then remembers
    /// nothing across restarts. Changing it needs a restart.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Time between batches written to the store, more than 0s and at most
    /// `"5m"`: a kill -9 loses at most this much history. Default `"10s"`.
    #[serde(default = "flush_interval")]
    pub flush_interval: Positive<300>,
    /// How long history is kept, at most `"400d"`. Default `"30d"`. With
    /// more than 1,388 checks, fewer hours are kept so that the store stays
    /// under 1,000,000 hourly rows (about 90 MB).
    #[serde(default = "retention")]
    pub retention: Positive<{ 400 * 86_400 }>,
}

impl Default for StateSection {
    fn default() -> Self {
        Self {
            dir: None,
            flush_interval: flush_interval(),
            retention: retention(),
        }
    }
}

fn flush_interval() -> Positive<300> {
    Positive::known(Duration::from_secs(10))
}

fn retention() -> Positive<{ 400 * 86_400 }> {
    Positive::known(Duration::from_secs(30 * 86_400))
}
