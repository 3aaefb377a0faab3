//! One check's runs within one hour, as the store keeps them: counts by
//! result, the sum and the maximum of their durations, and a histogram of
//! durations coarse enough to fit in a fixed 72 bytes and fine enough for
//! a p95 (the upper bound of the bucket the 95th percentile falls in).

use std::time::Duration;

/// Upper bounds of the duration histogram's buckets, in milliseconds; the
/// last bucket takes everything above the last bound.
pub const BOUNDS_MS: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];
/// Bytes of an encoded rollup.
pub const ENCODED: usize = 4 * 3 + 8 + 4 + 4 * (BOUNDS_MS.len() + 1);
/// Seconds in a bucket of time.
pub const HOUR: u64 = 3600;

/// Runs of one check in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rollup {
    /// Runs that passed.
    pub pass: u32,
    /// Runs that passed with a warning.
    pub warn: u32,
    /// Runs that failed.
    pub fail: u32,
    /// Sum of their durations, in microseconds.
    pub sum_us: u64,
    /// The longest, in microseconds.
    pub max_us: u32,
    /// How many fell in each bucket of [`BOUNDS_MS`] (and above).
    pub histogram: [u32; BOUNDS_MS.len() + 1],
}

/// How a run ended, for the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    /// Passed.
    Pass,
    /// Passed with a warning.
    Warn,
    /// Failed.
    Fail,
}

impl Rollup {
    /// Counts one run.
    pub fn add(&mut self, result: Result, took: Duration) {
        match result {
            Result::Pass => self.pass = self.pass.saturating_add(1),
            Result::Warn => self.warn = self.warn.saturating_add(1),
            Result::Fail => self.fail = self.fail.saturating_add(1),
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(u32::try_from(us).unwrap_or(u32::MAX));
        let ms = us / 1000;
        let bucket = BOUNDS_MS
            .iter()
            .position(|b| ms < *b)
            .unwrap_or(BOUNDS_MS.len());
        self.histogram[bucket] = self.histogram[bucket].saturating_add(1);
    }

    /// Adds `other`'s runs to these.
    pub fn merge(&mut self, other: &Rollup) {
        self.pass = self.pass.saturating_add(other.pass);
        self.warn = self.warn.saturating_add(other.warn);
        self.fail = self.fail.saturating_add(other.fail);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
        for (mine, theirs) in self.histogram.iter_mut().zip(other.histogram) {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// Runs counted.
    pub fn runs(&self) -> u64 {
        u64::from(self.pass) + u64::from(self.warn) + u64::from(self.fail)
    }

    /// The mean duration, if any run.
    pub fn mean(&self) -> Option<Duration> {
        let runs = self.runs();
        (runs > 0).then(|| Duration::from_micros(self.sum_us / runs))
    }

    /// The 95th percentile's bucket bound (the maximum when it falls above
    /// the last bound), if any run.
    pub fn p95(&self) -> Option<Duration> {
        let runs = self.runs();
        if runs == 0 {
            return None;
        }
        let rank = runs.saturating_mul(95).div_ceil(100);
        let mut seen = 0u64;
        for (i, n) in self.histogram.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                let max = Duration::from_micros(u64::from(self.max_us));
                return Some(match BOUNDS_MS.get(i) {
                    Some(bound) => Duration::from_millis(*bound).min(max),
                    None => max,
                });
            }
        }
        Some(Duration::from_micros(u64::from(self.max_us)))
    }

    /// Its fixed-size encoding (little-endian).
    pub fn encode(&self) -> [u8; ENCODED] {
        let mut out = [0u8; ENCODED];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&self.pass.to_le_bytes());
        put(&self.warn.to_le_bytes());
        put(&self.fail.to_le_bytes());
        put(&self.sum_us.to_le_bytes());
        put(&self.max_us.to_le_bytes());
        for n in self.histogram {
            put(&n.to_le_bytes());
        }
        out
    }

    /// Decodes what [`Rollup::encode`] wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENCODED {
            return None;
        }
        let u32_at = |i: usize| {
            bytes
                .get(i..i + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let mut histogram = [0u32; BOUNDS_MS.len() + 1];
        for (i, slot) in histogram.iter_mut().enumerate() {
            *slot = u32_at(24 + 4 * i)?;
        }
        Some(Self {
            pass: u32_at(0)?,
            warn: u32_at(4)?,
            fail: u32_at(8)?,
            sum_us: bytes
                .get(12..20)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)?,
            max_us: u32_at(20)?,
            histogram,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_durations_and_a_p95_from_the_histogram() {
        let mut r = Rollup::default();
        for i in 0..95 {
            r.add(
                if i % 10 == 0 {
                    Result::Fail
                } else {
                    Result::Pass
                },
                Duration::from_millis(3),
            );
        }
        for _ in 0..5 {
            r.add(Result::Warn, Duration::from_millis(700));
        }
        assert_eq!((r.pass, r.warn, r.fail, r.runs()), (85, 5, 10, 100));
        assert_eq!(r.max_us, 700_000);
        // 95 of 100 under 5 ms: the 95th is in the (2, 5] ms bucket.
        assert_eq!(r.p95(), Some(Duration::from_millis(5)));
        r.add(Result::Pass, Duration::from_millis(700));
        assert_eq!(
            r.p95(),
            Some(Duration::from_millis(700)),
            "capped at the maximum"
        );
        assert_eq!(Rollup::default().p95(), None);
    }

    #[test]
    fn encoding_round_trips_and_refuses_other_bytes() {
        let mut r = Rollup::default();
        r.add(Result::Pass, Duration::from_micros(1500));
        r.add(Result::Fail, Duration::from_secs(40));
        let mut merged = r;
        merged.merge(&r);
        assert_eq!(merged.runs(), 4);
        assert_eq!(Rollup::decode(&merged.encode()), Some(merged));
        assert_eq!(Rollup::decode(&[0; 5]), None);
    }
}
