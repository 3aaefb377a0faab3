//! `type = "memory"`: its keys, their defaults, and the runnable [`MemorySpec`] they resolve to.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Scope;
use crate::probe::disk::default_fail_above;

/// `type = "memory"`: memory use against the limit that actually applies.
/// Inside a container the host's figures lie, so the cgroup v2 limit and
/// working set are read (`memory.max`; `memory.current` minus
/// `inactive_file` from `memory.stat`, as the kubelet counts it), and PSI
/// pressure from `memory.pressure` where present. Without a cgroup limit, the
/// host's `/proc/meminfo` (`MemTotal` minus `MemAvailable`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Warn above this percentage of the limit used. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_above: Option<f64>,
    /// Fail above this percentage of the limit used. Default `95`.
    #[serde(default = "default_fail_above")]
    pub fail_above: f64,
    /// Warn when PSI `some avg10` (percent of the last 10 s some task
    /// stalled on memory) is above this. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_warn_above: Option<f64>,
    /// Fail when PSI `some avg10` is above this. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_fail_above: Option<f64>,
    /// The cgroup v2 directory to read. Default: this process's own (from
    /// `/proc/self/cgroup`, under `/sys/fs/cgroup`); set it to watch
    /// another container's cgroup from a privileged sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_dir: Option<PathBuf>,
}

/// A validated memory check (percentages 0-100).
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySpec {
    /// Usage warn threshold.
    pub warn_above: Option<f64>,
    /// Usage fail threshold.
    pub fail_above: f64,
    /// PSI `some avg10` warn threshold.
    pub pressure_warn_above: Option<f64>,
    /// PSI `some avg10` fail threshold.
    pub pressure_fail_above: Option<f64>,
    /// cgroup v2 directory (`None`: this process's).
    pub cgroup_dir: Option<PathBuf>,
}

impl MemoryConfig {
    /// The runnable spec, or `None` with every problem reported to `p`.
    pub fn resolve(self, p: &mut Scope<'_>) -> Option<MemorySpec> {
        let fine = p.percentages(&[
            ("warn_above", self.warn_above),
            ("fail_above", Some(self.fail_above)),
            ("pressure_warn_above", self.pressure_warn_above),
            ("pressure_fail_above", self.pressure_fail_above),
        ]);
        p.warn_below_fail(
            ("warn_above", self.warn_above),
            ("fail_above", Some(self.fail_above)),
        );
        p.warn_below_fail(
            ("pressure_warn_above", self.pressure_warn_above),
            ("pressure_fail_above", self.pressure_fail_above),
        );
        fine.then_some(MemorySpec {
            warn_above: self.warn_above,
            fail_above: self.fail_above,
            pressure_warn_above: self.pressure_warn_above,
            pressure_fail_above: self.pressure_fail_above,
            cgroup_dir: self.cgroup_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;

    fn resolve(section: serde_json::Value) -> Result<MemorySpec, Vec<String>> {
        let config: MemoryConfig = serde_json::from_value(section).unwrap();
        let mut problems = Problems::default();
        let spec = config.resolve(&mut problems.scope(Some("mem")));
        spec.ok_or_else(|| problems.into_vec().into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn an_empty_section_fails_at_95_percent_of_its_own_cgroup() {
        let spec = resolve(serde_json::json!({})).unwrap();
        assert_eq!(spec.fail_above, 95.0);
        assert!(spec.cgroup_dir.is_none() && spec.pressure_fail_above.is_none());
    }

    #[test]
    fn warnings_must_sit_below_failures() {
        let keys = resolve(serde_json::json!({
            "warn_above": 90, "fail_above": 80,
            "pressure_warn_above": -1, "pressure_fail_above": 10
        }))
        .unwrap_err();
        assert_eq!(keys, ["pressure_warn_above", "warn_above"]);
    }
}
