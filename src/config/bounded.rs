//! Values whose rules are their type: a key that holds one of these cannot
//! hold a value out of its bounds, so no hand-written check is needed after
//! parsing. Each refuses a bad value with the message the user sees (serde
//! passes it through with the key); every such message begins with `must`
//! or `needs`, which is how the problem collector tells a broken rule from
//! a value of the wrong type.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest interval, timeout or delay of a check, in seconds: beyond a
/// year a schedule is a typo (and the scheduler's clock arithmetic stays
/// far from overflowing).
const SCHEDULE_SECS: u64 = 365 * 24 * 3600;
/// [`SCHEDULE_SECS`] as a duration.
pub const MAX_SCHEDULE: Duration = Duration::from_secs(SCHEDULE_SECS);

/// A duration more than 0s and at most a year: how often, how long, how
/// late (`interval`, `timeout`, `ttl`, `expect.max_duration`).
pub type Period = Positive<SCHEDULE_SECS>;
/// A duration of at most a year, 0s included (`initial_delay`, `start_period`).
pub type Delay = AtMost<SCHEDULE_SECS>;

/// A duration of at most `SECS` seconds, 0s included.
pub type AtMost<const SECS: u64> = Span<SECS, true>;
/// A duration more than 0s and at most `SECS` seconds.
pub type Positive<const SECS: u64> = Span<SECS, false>;

/// A duration of at most `SECS` seconds, and more than 0s unless `ZERO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span<const SECS: u64, const ZERO: bool>(Duration);

impl<const SECS: u64, const ZERO: bool> Span<SECS, ZERO> {
    /// `d`, when it is within bounds.
    pub fn new(d: Duration) -> Result<Self, String> {
        if d.is_zero() && !ZERO {
            Err("must be more than 0s".into())
        } else if d > Duration::from_secs(SECS) {
            Err(format!(
                "must be at most {}",
                crate::units::whole_unit(SECS)
            ))
        } else {
            Ok(Self(d))
        }
    }

    /// `d`, which the caller knows to be within bounds (a built-in default).
    pub(crate) const fn known(d: Duration) -> Self {
        Self(d)
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<const SECS: u64> Default for Span<SECS, true> {
    fn default() -> Self {
        Self(Duration::ZERO)
    }
}

impl<'de, const SECS: u64, const ZERO: bool> Deserialize<'de> for Span<SECS, ZERO> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let d: Duration = super::duration::deserialize(d)?;
        Span::new(d).map_err(D::Error::custom)
    }
}

impl<const SECS: u64, const ZERO: bool> Serialize for Span<SECS, ZERO> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::duration::serialize(&self.0, s)
    }
}

/// A count from 1 to `MAX` (`attempts`, `max_runs`, a queue's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Count<const MAX: u32>(u32);

impl<const MAX: u32> Count<MAX> {
    /// `n`, when it is within bounds.
    pub fn new(n: u32) -> Result<Self, String> {
        match n {
            0 => Err("must be at least 1".into()),
            n if n > MAX => Err(format!("must be at most {MAX}")),
            n => Ok(Self(n)),
        }
    }

    /// `n`, which the caller knows to be within bounds (a built-in default).
    pub(crate) const fn known(n: u32) -> Self {
        Self(n)
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de, const MAX: u32> Deserialize<'de> for Count<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Count::new(u32::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// A count from 0 to `MAX` (`server.drain.observed_probes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct UpTo<const MAX: u32>(u32);

impl<const MAX: u32> UpTo<MAX> {
    /// `n`, when it is within bounds.
    pub fn new(n: u32) -> Result<Self, String> {
        if n > MAX {
            Err(format!("must be at most {MAX}"))
        } else {
            Ok(Self(n))
        }
    }

    /// `n`, which the caller knows to be within bounds (a built-in default).
    pub(crate) const fn known(n: u32) -> Self {
        Self(n)
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de, const MAX: u32> Deserialize<'de> for UpTo<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        UpTo::new(u32::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// A fraction from 0.0 to 1.0 (`telemetry.traces.sample_ratio`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Ratio(f64);

impl Ratio {
    /// `r`, when it is within bounds.
    pub fn new(r: f64) -> Result<Self, &'static str> {
        if (0.0..=1.0).contains(&r) {
            Ok(Self(r))
        } else {
            Err("must be between 0.0 and 1.0")
        }
    }

    /// `r`, which the caller knows to be within bounds (a built-in default).
    pub(crate) const fn known(r: f64) -> Self {
        Self(r)
    }

    /// The fraction.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ratio::new(f64::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// Most consecutive runs a threshold may ask for.
pub const MAX_THRESHOLD: u32 = 10_000;

/// Consecutive runs, 1 to [`MAX_THRESHOLD`] (`success_threshold`, `failure_threshold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Threshold(u32);

impl Threshold {
    /// `n`, when it is within bounds.
    pub fn new(n: u32) -> Result<Self, &'static str> {
        match n {
            0 => Err("must be at least 1"),
            n if n > MAX_THRESHOLD => Err("must be at most 10000"),
            n => Ok(Self(n)),
        }
    }

    /// `n`, which the caller knows to be within bounds (a built-in default).
    pub(crate) const fn known(n: u32) -> Self {
        Self(n)
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Threshold::new(u32::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// A number of bytes from 1 to `MAX` (`max_body_bytes`, `max_output_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ByteLimit<const MAX: u64>(u64);

impl<const MAX: u64> ByteLimit<MAX> {
    /// `n`, when it is within bounds.
    pub fn new(n: u64) -> Result<Self, String> {
        if (1..=MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("must be between 1 and {MAX}"))
        }
    }

    /// `n`, which the caller knows to be within bounds (a built-in default).
    pub(crate) const fn known(n: u64) -> Self {
        Self(n)
    }

    /// The bound, as a buffer size.
    pub fn bytes(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<'de, const MAX: u64> Deserialize<'de> for ByteLimit<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ByteLimit::new(u64::deserialize(d)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn periods_are_positive_and_at_most_a_year() {
        assert_eq!(
            parse::<Period>(r#""250ms""#).unwrap().get(),
            Duration::from_millis(250)
        );
        assert!(
            parse::<Period>(r#""0s""#)
                .unwrap_err()
                .contains("must be more than 0s")
        );
        assert!(
            parse::<Period>(r#""366d""#)
                .unwrap_err()
                .contains("must be at most 365d")
        );
        assert!(
            parse::<Period>(r#""3651d""#)
                .unwrap_err()
                .contains("at most 3650d")
        );
        assert_eq!(parse::<Period>(r#""365d""#).unwrap().get(), MAX_SCHEDULE);
        assert_eq!(parse::<Delay>(r#""0s""#).unwrap().get(), Duration::ZERO);
        assert!(
            parse::<Delay>(r#""366d""#)
                .unwrap_err()
                .contains("must be at most 365d")
        );
    }

    #[test]
    fn thresholds_and_byte_limits_keep_their_bounds() {
        assert!(
            parse::<Threshold>("0")
                .unwrap_err()
                .contains("must be at least 1")
        );
        assert!(
            parse::<Threshold>("10001")
                .unwrap_err()
                .contains("must be at most 10000")
        );
        assert_eq!(parse::<Threshold>("10000").unwrap().get(), 10_000);
        assert!(parse::<Threshold>("-1").is_err());
        assert!(
            parse::<ByteLimit<4096>>("0")
                .unwrap_err()
                .contains("must be between 1 and 4096")
        );
        assert!(parse::<ByteLimit<4096>>("4097").is_err());
        assert_eq!(parse::<ByteLimit<4096>>("4096").unwrap().bytes(), 4096);
    }

    #[test]
    fn root_section_bounds_name_their_unit() {
        let err = |text: &str, f: fn(&str) -> Result<(), String>| f(text).unwrap_err();
        assert!(
            err(r#""61m""#, |t| parse::<AtMost<3600>>(t).map(drop)).contains("must be at most 1h")
        );
        assert!(
            err(r#""601s""#, |t| parse::<AtMost<600>>(t).map(drop)).contains("must be at most 10m")
        );
        assert!(
            err(r#""11s""#, |t| parse::<AtMost<10>>(t).map(drop)).contains("must be at most 10s")
        );
        assert!(
            err(r#""0s""#, |t| parse::<Positive<3600>>(t).map(drop))
                .contains("must be more than 0s")
        );
        assert_eq!(
            parse::<AtMost<10>>(r#""0s""#).unwrap().get(),
            Duration::ZERO
        );
    }

    #[test]
    fn counts_and_ratios_keep_their_bounds() {
        assert!(
            parse::<UpTo<10000>>("10001")
                .unwrap_err()
                .contains("must be at most 10000")
        );
        assert_eq!(parse::<UpTo<10000>>("0").unwrap().get(), 0);
        assert!(
            parse::<Ratio>("1.5")
                .unwrap_err()
                .contains("must be between 0.0 and 1.0")
        );
        assert!(parse::<Ratio>("-0.1").is_err());
        assert_eq!(parse::<Ratio>("0.25").unwrap().get(), 0.25);
    }
}
