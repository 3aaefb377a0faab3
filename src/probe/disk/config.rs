//! `type = "disk"`: its keys, their defaults, and the runnable [`DiskSpec`] they resolve to.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Scope;

/// `type = "disk"`: space and inodes of the filesystem holding `path`
/// (statvfs; nothing is run). Percentages count the space root may use, as `df` does.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// A path on the filesystem to watch, e.g. `/var/lib/postgresql`.
    pub path: PathBuf,
    /// Warn above this percentage of space used (0-100). Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_above: Option<f64>,
    /// Fail above this percentage of space used (0-100). Default `95`.
    #[serde(default = "default_fail_above")]
    pub fail_above: f64,
    /// Fail when fewer bytes than this are free for unprivileged users. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_free_bytes: Option<u64>,
    /// Warn above this percentage of inodes used. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_warn_above: Option<f64>,
    /// Fail above this percentage of inodes used. Default `95`.
    #[serde(default = "default_fail_above")]
    pub inodes_fail_above: f64,
}

/// The failure threshold of disk and memory checks, in percent.
pub(crate) fn default_fail_above() -> f64 {
    95.0
}

/// A validated disk check (percentages 0-100).
#[derive(Debug, Clone, PartialEq)]
pub struct DiskSpec {
    /// A path on the filesystem.
    pub path: PathBuf,
    /// Space warn threshold.
    pub warn_above: Option<f64>,
    /// Space fail threshold.
    pub fail_above: f64,
    /// Least free bytes.
    pub min_free_bytes: Option<u64>,
    /// Inode warn threshold.
    pub inodes_warn_above: Option<f64>,
    /// Inode fail threshold.
    pub inodes_fail_above: f64,
}

impl DiskConfig {
    /// The runnable spec, or `None` with every problem reported to `p`.
    pub fn resolve(self, p: &mut Scope<'_>) -> Option<DiskSpec> {
        let fine = p.percentages(&[
            ("warn_above", self.warn_above),
            ("fail_above", Some(self.fail_above)),
            ("inodes_warn_above", self.inodes_warn_above),
            ("inodes_fail_above", Some(self.inodes_fail_above)),
        ]);
        p.warn_below_fail(
            ("warn_above", self.warn_above),
            ("fail_above", Some(self.fail_above)),
        );
        p.warn_below_fail(
            ("inodes_warn_above", self.inodes_warn_above),
            ("inodes_fail_above", Some(self.inodes_fail_above)),
        );
        if !self.path.is_absolute() {
            p.push("path", "must be an absolute path");
            return None;
        }
        fine.then_some(DiskSpec {
            path: self.path,
            warn_above: self.warn_above,
            fail_above: self.fail_above,
            min_free_bytes: self.min_free_bytes,
            inodes_warn_above: self.inodes_warn_above,
            inodes_fail_above: self.inodes_fail_above,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    fn resolve(section: serde_json::Value) -> Result<DiskSpec, Vec<String>> {
        let config: DiskConfig = serde_json::from_value(section).unwrap();
        let mut problems = Problems::default();
        let spec = config.resolve(&mut problems.scope(Some("disk")));
        spec.ok_or_else(|| problems.into_vec().into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn fails_at_95_percent_by_default() {
        let spec = resolve(serde_json::json!({"path": "/var/lib"})).unwrap();
        assert_eq!((spec.fail_above, spec.inodes_fail_above), (95.0, 95.0));
        assert_eq!(spec.warn_above, None);
    }

    #[test]
    fn percentages_order_and_the_path_are_checked() {
        let keys = resolve(serde_json::json!({
            "path": "relative", "warn_above": 120, "inodes_warn_above": 96
        }))
        .unwrap_err();
        assert_eq!(
            keys,
            ["warn_above", "warn_above", "inodes_warn_above", "path"]
        );
    }
}
