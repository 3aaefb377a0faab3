//! Figures as people read them: durations in messages as the config writes
//! them (`250ms`, `5s`, `1h`) and in JSON as milliseconds to the
//! microsecond; sizes in binary units.

use std::time::Duration;

/// `d` as the config writes durations: `250ms`, `5s`, `90s`; under a
/// millisecond in microseconds. Whole seconds, days and hours stay in
/// seconds so that two figures in one message compare at a glance.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 && ms > 0 {
        format!("{}s", ms / 1000)
    } else if ms > 0 {
        format!("{ms}ms")
    } else {
        format!("{}µs", d.as_micros())
    }
}

/// `secs` in its largest whole unit, as the reference writes bounds (`1h`, `365d`).
pub fn whole_unit(secs: u64) -> String {
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `d` in milliseconds, rounded to the microsecond (`12.345`), as JSON shows it.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_reads_as_written() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_micros(40)), "40µs");
        assert_eq!(whole_unit(3600), "1h");
        assert_eq!(whole_unit(365 * 86_400), "365d");
        assert_eq!(whole_unit(600), "10m");
        assert_eq!(whole_unit(10), "10s");
        assert_eq!(whole_unit(0), "0s");
        assert_eq!(millis(Duration::from_nanos(12_345_678)), 12.346);
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536 << 20), "1.5 GiB");
    }
}
