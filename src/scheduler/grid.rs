//! When a check runs first: after `initial_delay`, at a random point of its
//! first interval (so sidecars restarted together do not probe in lockstep),
//! on a grid counted from the engine's start.
//!
//! The grid is there for cost. A probe started alone pays for its own timer
//! wake-up and runs on cold caches; probes due on the same step start on one
//! wake-up and share it. The step is chosen so that about [`PER_STEP`] probes
//! fall on each at the config's probe rate: 100 checks a second get 100 ms
//! steps (ten wake-ups a second, which halved the CPU per probe in the
//! end-to-end benchmark), 10,000 get 1 ms (tokio's timer resolution: what
//! they would get anyway), so no step gathers a burst a target would notice.
//! Each check keeps at least ten points to choose from in its interval, and
//! steps come from the 1-2-5 series so checks added by a reload, whose rate
//! may differ, still share most points with the others.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Check, Schedule, Source};

/// Probes meant to share one step of the grid.
const PER_STEP: f64 = 10.0;
/// The finest step: tokio's timers resolve milliseconds.
const FINEST: Duration = Duration::from_millis(1);

/// The step that gives about [`PER_STEP`] probes per step for `checks`
/// (push checks have no schedule and do not count).
pub fn step_for(checks: &[Check]) -> Duration {
    let rate: f64 = checks
        .iter()
        .filter(|c| matches!(c.source, Source::Probe(_)))
        .map(|c| 1.0 / c.schedule.interval.as_secs_f64().max(1e-9))
        .sum();
    if rate <= 0.0 {
        return Duration::MAX;
    }
    Duration::try_from_secs_f64(PER_STEP / rate).unwrap_or(Duration::MAX)
}

/// When a check created at `now` runs first, on a grid of `step` (at most a
/// tenth of its first interval, snapped down to the 1-2-5 series) from `epoch`.
pub fn first_run(schedule: &Schedule, step: Duration, epoch: Instant, now: Instant) -> Instant {
    let interval = schedule.start_interval.unwrap_or(schedule.interval);
    let earliest = now + schedule.initial_delay;
    let span = nanos(interval).max(1);
    let Some(grid) = snap(step.min(interval / 10)) else {
        // Intervals under 10 ms: no grid, any nanosecond.
        return earliest + Duration::from_nanos(rand::random_range(0..span));
    };
    let grid = nanos(grid);
    let offset = nanos(earliest.duration_since(epoch));
    // Grid points k * grid in [offset, offset + span): at least ten of them.
    let low = offset.div_ceil(grid);
    let high = ((offset + span - 1) / grid).max(low);
    epoch + Duration::from_nanos(rand::random_range(low..=high) * grid)
}

/// The largest step of the 1-2-5 series (1 ms, 2 ms, 5 ms, 10 ms, ...) not
/// above `d`; none under 1 ms.
fn snap(d: Duration) -> Option<Duration> {
    let mut best = None;
    let mut decade = FINEST;
    while decade <= d {
        for m in [1, 2, 5] {
            match decade.checked_mul(m) {
                Some(step) if step <= d => best = Some(step),
                _ => {}
            }
        }
        match decade.checked_mul(10) {
            Some(next) => decade = next,
            None => break,
        }
    }
    best
}

/// Whole nanoseconds, saturating (validation caps schedules at a year).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn checks(n: usize, interval: &str) -> Vec<Check> {
        let mut toml = format!("[defaults]\ninterval = \"{interval}\"\n");
        for i in 0..n {
            toml.push_str(&format!(
                "[[checks]]\nname = \"c{i}\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n"
            ));
        }
        load_str(std::path::Path::new("grid.toml"), &toml)
            .expect("valid")
            .checks
    }

    fn grid(n: usize, interval: &str) -> Option<Duration> {
        let checks = checks(n, interval);
        snap(step_for(&checks).min(checks[0].schedule.interval / 10))
    }

    #[test]
    fn about_ten_probes_per_step_at_the_configs_rate() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(grid(100, "1s"), ms(100));
        assert_eq!(grid(1_000, "1s"), ms(10));
        assert_eq!(grid(10_000, "1s"), ms(1));
        assert_eq!(grid(30, "1s"), ms(100), "never fewer than ten points");
        assert_eq!(grid(300, "10s"), ms(200), "333 ms snapped down");
        assert_eq!(
            grid(2_000, "100ms"),
            None,
            "finer than tokio's timers: no grid"
        );
        assert_eq!(
            grid(10, "5ms"),
            None,
            "no ten points of 1 ms in the interval"
        );
        assert_eq!(step_for(&[]), Duration::MAX);
    }

    #[test]
    fn snaps_down_to_the_1_2_5_series() {
        let ms = Duration::from_millis;
        assert_eq!(snap(ms(1)), Some(ms(1)));
        assert_eq!(snap(ms(3)), Some(ms(2)));
        assert_eq!(snap(ms(9)), Some(ms(5)));
        assert_eq!(snap(ms(333)), Some(ms(200)));
        assert_eq!(snap(Duration::from_micros(999)), None);
        assert!(snap(Duration::MAX).is_some());
    }

    #[test]
    fn first_runs_are_inside_the_first_interval_and_on_the_grid() {
        let mut schedule = checks(1, "1s")[0].schedule;
        schedule.initial_delay = Duration::from_millis(250);
        let epoch = Instant::now();
        let now = epoch + Duration::from_millis(1_234);
        let step = Duration::from_millis(100);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1_000 {
            let at = first_run(&schedule, step, epoch, now) - epoch;
            assert!(at >= Duration::from_millis(1_484), "{at:?}");
            assert!(at < Duration::from_millis(2_484), "{at:?}");
            assert_eq!(at.as_nanos() % 100_000_000, 0, "{at:?}");
            seen.insert(at);
        }
        // 1,500 ms to 2,400 ms: every one of the ten points is used.
        assert_eq!(seen.len(), 10, "{seen:?}");
    }
}
