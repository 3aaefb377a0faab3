//! Values whose rules are their type: a key that holds one of these cannot
//! hold a value out of its bounds, so no hand-written check is needed after
//! parsing. Each refuses a bad value with the message the user sees (serde
//! passes it through with the key).

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest interval, timeout or delay of a check: beyond a year a schedule
/// is a typo (and the scheduler's clock arithmetic stays far from overflowing).
pub const MAX_SCHEDULE: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration more than 0s and at most [`MAX_SCHEDULE`]: how often, how
/// long, how late (`interval`, `timeout`, `ttl`, `expect.max_duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period(Duration);

/// A duration of at most [`MAX_SCHEDULE`], 0s included (`initial_delay`, `start_period`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delay(Duration);

impl Period {
    /// `d`, when it is within bounds.
    pub fn new(d: Duration) -> Result<Self, &'static str> {
        if d.is_zero() {
            Err("must be more than 0s")
        } else if d > MAX_SCHEDULE {
            Err("must be at most 365d")
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

impl Delay {
    /// `d`, when it is within bounds.
    pub fn new(d: Duration) -> Result<Self, &'static str> {
        if d > MAX_SCHEDULE {
            Err("must be at most 365d")
        } else {
            Ok(Self(d))
        }
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let d: Duration = super::duration::deserialize(d)?;
        Period::new(d).map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Delay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let d: Duration = super::duration::deserialize(d)?;
        Delay::new(d).map_err(D::Error::custom)
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::duration::serialize(&self.0, s)
    }
}

impl Serialize for Delay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::duration::serialize(&self.0, s)
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
}
