//! Uptime from the hourly rollups, as Gatus and Uptime Kuma count it: the
//! share of a check's runs that passed (or passed with a warning); for a
//! verdict, the share of time it answered 200 (sampled at each batch).
//! A window of N hours is the current clock hour and the N before it, so
//! `1h` covers one to two hours of runs.

use super::rollup::{HOUR, Rollup};

/// The windows, and their length in hours.
pub const WINDOWS: [(&str, u64); 4] = [("1h", 1), ("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24)];

/// Uptime over each of [`WINDOWS`] (0 to 1, four decimals) from `hours`
/// (hour start, rollup); `None` for a window without a run.
pub fn of(hours: &[(u64, Rollup)], now_hour: u64) -> [Option<f64>; 4] {
    WINDOWS.map(|(_, n)| {
        let from = now_hour.saturating_sub(n * HOUR);
        let (up, all) = hours
            .iter()
            .filter(|(hour, _)| *hour >= from)
            .fold((0u64, 0u64), |(up, all), (_, r)| {
                (up + u64::from(r.pass) + u64::from(r.warn), all + r.runs())
            });
        (all > 0).then(|| (up as f64 / all as f64 * 10_000.0).round() / 10_000.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(pass: u32, fail: u32) -> Rollup {
        Rollup {
            pass,
            fail,
            ..Rollup::default()
        }
    }

    #[test]
    fn each_window_counts_its_hours() {
        let now = 1000 * HOUR;
        let hours = [
            (now, hour(99, 1)),
            (now - HOUR, hour(100, 0)),
            (now - 10 * HOUR, hour(0, 100)),
            (now - 100 * HOUR, hour(50, 50)),
            (now - 800 * HOUR, hour(0, 1000)),
        ];
        let [h1, h24, d7, d30] = of(&hours, now);
        assert_eq!(h1, Some(0.995));
        assert_eq!(h24, Some(0.6633));
        assert_eq!(d7, Some(0.6225));
        assert_eq!(d30, Some(0.6225), "the 800-hour-old one is past 30 days");
        assert_eq!(of(&[], now), [None; 4]);
    }
}
