//! `type = "memory"`: use against the limit that applies. In a cgroup v2
//! with a limit: the working set (`memory.current` minus `inactive_file`, as
//! the kubelet counts it) over `memory.max`, and PSI from `memory.pressure`.
//! Otherwise the host's `/proc/meminfo` (`MemTotal - MemAvailable` over
//! `MemTotal`) and `/proc/pressure/memory`.

use std::path::{Path, PathBuf};

use tokio::time::Instant;

use super::{BoxFuture, Category, Outcome, Probe};
use crate::units::bytes;

mod config;
pub use config::{MemoryConfig, MemorySpec};

/// Most bytes read of one cgroup or proc file (they are a few hundred bytes).
const MAX_FILE: u64 = 64 * 1024;

/// Checks memory use.
pub struct MemoryProbe {
    spec: MemorySpec,
    /// The cgroup directory read: the configured one, else this process's
    /// own, looked up once (a process does not change cgroup).
    cgroup: Option<PathBuf>,
}

/// Where the figures came from and what they say.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// `cgroup` or `host`.
    pub source: &'static str,
    /// Bytes in use.
    pub used: u64,
    /// The limit they count against.
    pub limit: u64,
    /// PSI `some avg10`, percent, where the kernel reports it.
    pub pressure: Option<f64>,
}

impl MemoryProbe {
    /// A probe for `spec`.
    pub fn new(spec: MemorySpec) -> Self {
        let cgroup = spec.cgroup_dir.clone().or_else(own_cgroup);
        Self { spec, cgroup }
    }
}

impl Probe for MemoryProbe {
    fn check(&self, _deadline: Instant) -> BoxFuture<'_, Outcome> {
        // A few small reads from procfs/cgroupfs: they do not block.
        Box::pin(async move {
            match read(self.cgroup.as_deref()) {
                Ok(reading) => judge(&self.spec, &reading),
                Err(message) => Outcome::fail(Category::ResourceRead, message),
            }
        })
    }
}

/// This process's cgroup v2 directory, if it has one.
fn own_cgroup() -> Option<PathBuf> {
    let text = read_small(Path::new("/proc/self/cgroup")).ok()?;
    let relative = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new("/sys/fs/cgroup").join(relative.trim_start_matches('/')))
}

/// Reads the cgroup's figures when it has a memory limit, else the host's.
pub fn read(cgroup: Option<&Path>) -> Result<Reading, String> {
    if let Some(dir) = cgroup
        && let Ok(max) = read_small(&dir.join("memory.max"))
        && let Ok(limit) = max.trim().parse::<u64>()
    {
        let current = read_small(&dir.join("memory.current"))?;
        let current: u64 = current
            .trim()
            .parse()
            .map_err(|_| format!("{}: not a number", dir.join("memory.current").display()))?;
        let inactive = read_small(&dir.join("memory.stat"))
            .ok()
            .and_then(|stat| field(&stat, "inactive_file"))
            .unwrap_or(0);
        return Ok(Reading {
            source: "cgroup",
            used: current.saturating_sub(inactive),
            limit,
            pressure: read_small(&dir.join("memory.pressure"))
                .ok()
                .and_then(|p| some_avg10(&p)),
        });
    }
    let meminfo = read_small(Path::new("/proc/meminfo"))?;
    let kib = |key| field(&meminfo, key).map(|v| v * 1024);
    let (Some(total), Some(available)) = (kib("MemTotal:"), kib("MemAvailable:")) else {
        return Err("/proc/meminfo lacks MemTotal or MemAvailable".into());
    };
    Ok(Reading {
        source: "host",
        used: total.saturating_sub(available),
        limit: total,
        pressure: read_small(Path::new("/proc/pressure/memory"))
            .ok()
            .and_then(|p| some_avg10(&p)),
    })
}

fn read_small(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

/// The number after `key` on its line (`inactive_file 123`, `MemTotal: 8 kB`).
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key)).then(|| words.next()?.parse().ok())?
    })
}

/// `some avg10=1.23 avg60=... total=...` -> 1.23
fn some_avg10(psi: &str) -> Option<f64> {
    let line = psi.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("avg10="))?
        .parse()
        .ok()
}

/// The verdict on `r`: the worst of usage and pressure.
pub fn judge(spec: &MemorySpec, r: &Reading) -> Outcome {
    let percent = if r.limit == 0 {
        0.0
    } else {
        r.used as f64 * 100.0 / r.limit as f64
    };
    let mut summary = format!(
        "{percent:.1}% of {} used ({} {})",
        bytes(r.limit),
        bytes(r.used),
        r.source
    );
    if let Some(p) = r.pressure {
        summary.push_str(&format!(", pressure {p:.2}%"));
    }
    let pressure = r.pressure.unwrap_or(0.0);
    let over = |value: f64, limit: Option<f64>| limit.is_some_and(|l| value > l);
    if percent > spec.fail_above {
        return Outcome::fail(
            Category::MemoryThreshold,
            format!("{summary} (above {}%)", spec.fail_above),
        );
    }
    if over(pressure, spec.pressure_fail_above) {
        return Outcome::fail(
            Category::MemoryThreshold,
            format!(
                "{summary} (pressure above {}%)",
                spec.pressure_fail_above.unwrap_or_default()
            ),
        );
    }
    if over(percent, spec.warn_above) {
        return Outcome::warn(
            Category::MemoryThreshold,
            format!("{summary} (above {}%)", spec.warn_above.unwrap_or_default()),
        );
    }
    if over(pressure, spec.pressure_warn_above) {
        return Outcome::warn(
            Category::MemoryThreshold,
            format!(
                "{summary} (pressure above {}%)",
                spec.pressure_warn_above.unwrap_or_default()
            ),
        );
    }
    Outcome::pass(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_and_fields_parse() {
        let psi = "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=1\n";
        assert_eq!(some_avg10(psi), Some(12.5));
        assert_eq!(
            field("anon 5\ninactive_file 42\n", "inactive_file"),
            Some(42)
        );
        assert_eq!(field("MemTotal:   16 kB\n", "MemTotal:"), Some(16));
        assert_eq!(field("x 1\n", "y"), None);
    }
}
