//! `type = "disk"`: space and inodes of the filesystem holding a path, from
//! statvfs(3) (no `df`, no shell). Percentages are `df`'s: used over used
//! plus what unprivileged users may still take.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::statvfs::statvfs;
use tokio::time::{Instant, timeout_at};

use super::{BoxFuture, Category, Outcome, Probe};
use crate::units::bytes;

mod config;
pub(crate) use config::default_fail_above;
pub use config::{DiskConfig, DiskSpec};

/// Checks a filesystem's fill level.
pub struct DiskProbe {
    spec: Arc<DiskSpec>,
    /// Set while a statvfs call runs: one stuck on a dead network mount must
    /// not be joined by another every interval.
    busy: Arc<AtomicBool>,
}

/// What statvfs said, in the units the thresholds use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Percent of space used.
    pub used_percent: f64,
    /// Bytes unprivileged users may still write.
    pub free_bytes: u64,
    /// Percent of inodes used (`None` where the filesystem has no fixed count, e.g. btrfs).
    pub inodes_used_percent: Option<f64>,
}

impl DiskProbe {
    /// A probe for `spec`.
    pub fn new(spec: DiskSpec) -> Self {
        Self {
            spec: Arc::new(spec),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    async fn run(&self, deadline: Instant) -> Outcome {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Outcome::fail(
                Category::Timeout,
                format!(
                    "the previous statvfs of {} has not returned",
                    self.spec.path.display()
                ),
            );
        }
        let (spec, busy) = (self.spec.clone(), self.busy.clone());
        let call = tokio::task::spawn_blocking(move || {
            let result = statvfs(&spec.path);
            busy.store(false, Ordering::Release);
            result
        });
        let path = self.spec.path.display();
        match timeout_at(deadline, call).await {
            Err(_) => Outcome::fail(
                Category::Timeout,
                format!("statvfs of {path} did not return within the timeout"),
            ),
            Ok(Err(e)) => Outcome::fail(Category::ResourceRead, format!("statvfs of {path}: {e}")),
            Ok(Ok(Err(e))) => {
                Outcome::fail(Category::ResourceRead, format!("statvfs of {path}: {e}"))
            }
            // The statvfs field types differ between platforms; u64 holds them all.
            #[allow(clippy::unnecessary_cast)]
            Ok(Ok(Ok(stat))) => {
                let frsize = stat.fragment_size() as u64;
                let usage = usage(
                    stat.blocks() as u64,
                    stat.blocks_free() as u64,
                    stat.blocks_available() as u64,
                    frsize,
                    stat.files() as u64,
                    stat.files_free() as u64,
                );
                judge(&self.spec, usage)
            }
        }
    }
}

/// `df`'s arithmetic on statvfs' counts.
pub fn usage(blocks: u64, bfree: u64, bavail: u64, frsize: u64, files: u64, ffree: u64) -> Usage {
    let used = blocks.saturating_sub(bfree);
    let denominator = used + bavail;
    let used_percent = if denominator == 0 {
        0.0
    } else {
        used as f64 * 100.0 / denominator as f64
    };
    Usage {
        used_percent,
        free_bytes: bavail.saturating_mul(frsize),
        inodes_used_percent: (files > 0)
            .then(|| files.saturating_sub(ffree) as f64 * 100.0 / files as f64),
    }
}

/// The verdict on `usage` under `spec`'s thresholds: the worst of space,
/// free bytes and inodes.
pub fn judge(spec: &DiskSpec, u: Usage) -> Outcome {
    let path = spec.path.display();
    let mut summary = format!(
        "{path}: {:.1}% used, {} free",
        u.used_percent,
        bytes(u.free_bytes)
    );
    if let Some(inodes) = u.inodes_used_percent {
        summary.push_str(&format!(", inodes {inodes:.1}% used"));
    }
    let over = |value: f64, limit: Option<f64>| limit.is_some_and(|l| value > l);
    let inodes = u.inodes_used_percent.unwrap_or(0.0);
    if over(u.used_percent, Some(spec.fail_above)) {
        return Outcome::fail(
            Category::DiskThreshold,
            format!("{summary} (space above {}%)", spec.fail_above),
        );
    }
    if let Some(min) = spec.min_free_bytes
        && u.free_bytes < min
    {
        return Outcome::fail(
            Category::DiskThreshold,
            format!("{summary} (less than {} free)", bytes(min)),
        );
    }
    if over(inodes, Some(spec.inodes_fail_above)) {
        return Outcome::fail(
            Category::DiskThreshold,
            format!("{summary} (inodes above {}%)", spec.inodes_fail_above),
        );
    }
    if over(u.used_percent, spec.warn_above) {
        return Outcome::warn(
            Category::DiskThreshold,
            format!(
                "{summary} (space above {}%)",
                spec.warn_above.unwrap_or_default()
            ),
        );
    }
    if over(inodes, spec.inodes_warn_above) {
        return Outcome::warn(
            Category::DiskThreshold,
            format!(
                "{summary} (inodes above {}%)",
                spec.inodes_warn_above.unwrap_or_default()
            ),
        );
    }
    Outcome::pass(summary)
}

impl Probe for DiskProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(self.run(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DiskSpec {
        DiskSpec {
            path: "/data".into(),
            warn_above: Some(80.0),
            fail_above: 90.0,
            min_free_bytes: Some(1 << 30),
            inodes_warn_above: Some(70.0),
            inodes_fail_above: 95.0,
        }
    }

    #[test]
    fn df_arithmetic() {
        // 1000 blocks of 4 KiB, 300 free of which 250 available to users.
        let u = usage(1000, 300, 250, 4096, 100, 40);
        assert!((u.used_percent - 700.0 * 100.0 / 950.0).abs() < 1e-9);
        assert_eq!(u.free_bytes, 250 * 4096);
        assert_eq!(u.inodes_used_percent, Some(60.0));
        assert_eq!(usage(0, 0, 0, 4096, 0, 0).inodes_used_percent, None);
    }

    #[test]
    fn the_worst_threshold_wins() {
        let big = 10 << 30;
        let at = |used: f64, free: u64, inodes: f64| {
            judge(
                &spec(),
                Usage {
                    used_percent: used,
                    free_bytes: free,
                    inodes_used_percent: Some(inodes),
                },
            )
        };
        assert!(at(50.0, big, 10.0).passed() && at(50.0, big, 10.0).warning.is_none());
        assert_eq!(at(85.0, big, 10.0).warning, Some(Category::DiskThreshold));
        assert_eq!(at(75.0, big, 75.0).warning, Some(Category::DiskThreshold));
        assert_eq!(at(91.0, big, 10.0).failure, Some(Category::DiskThreshold));
        assert_eq!(
            at(50.0, 1 << 20, 10.0).failure,
            Some(Category::DiskThreshold)
        );
        assert_eq!(at(50.0, big, 96.0).failure, Some(Category::DiskThreshold));
        let o = at(91.0, big, 96.0);
        assert_eq!(
            o.message,
            "/data: 91.0% used, 10.0 GiB free, inodes 96.0% used (space above 90%)"
        );
    }
}
