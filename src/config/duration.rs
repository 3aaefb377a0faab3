//! Every duration in a config is read through here (`with = "duration"`):
//! humantime syntax (`"250ms"`, `"5s"`, `"1h 30m"`), never longer than
//! [`MAX`]. The ceiling keeps every clock sum the engine makes (`now +
//! start_period`, the next tick of a poll) far from overflowing, whatever a
//! key means; tighter bounds of single keys are checked by `validate`.

use std::time::Duration;

use serde::{Deserializer, Serializer, de::Error as _};

/// The longest duration any key accepts: ten years.
pub const MAX: Duration = Duration::from_secs(3650 * 24 * 3600);

/// A duration, or an optional one, that can be checked against [`MAX`].
pub trait Bounded {
    /// The longest duration held, if any.
    fn longest(&self) -> Option<Duration>;
}

impl Bounded for Duration {
    fn longest(&self) -> Option<Duration> {
        Some(*self)
    }
}

impl Bounded for Option<Duration> {
    fn longest(&self) -> Option<Duration> {
        *self
    }
}

/// Reads a humantime duration of at most [`MAX`].
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Bounded,
    humantime_serde::Serde<T>: serde::Deserialize<'de>,
{
    let value: T = humantime_serde::deserialize(deserializer)?;
    match value.longest() {
        Some(d) if d > MAX => Err(D::Error::custom(format!(
            "{} is longer than any duration healthgate accepts (at most 3650d)",
            humantime::format_duration(d)
        ))),
        _ => Ok(value),
    }
}

/// Writes a humantime duration.
pub fn serialize<T, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    for<'a> humantime_serde::Serde<&'a T>: serde::Serialize,
{
    humantime_serde::serialize(value, serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(default, with = "super")]
        d: Option<Duration>,
        #[serde(default, with = "super")]
        e: Duration,
    }

    fn parse(text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_up_to_ten_years_and_no_more() {
        assert_eq!(parse(r#"{"d": "3650d"}"#).unwrap().d, Some(MAX));
        assert_eq!(
            parse(r#"{"e": "250ms"}"#).unwrap().e,
            Duration::from_millis(250)
        );
        assert_eq!(parse("{}").unwrap().d, None);
        for long in [
            "3650d 1ns",
            "3651d",
            "18446744073709551615s",
            "18446744073709551615ms",
            "584542046090y",
            "100000000000000000000ns",
        ] {
            for key in ["d", "e"] {
                let err = parse(&format!(r#"{{"{key}": "{long}"}}"#)).unwrap_err();
                assert!(
                    err.contains("(at most 3650d)") || err.contains("expected a duration"),
                    "{key} = {long}: {err}"
                );
            }
        }
        let err = parse(r#"{"d": "3651d"}"#).unwrap_err();
        assert!(err.contains("is longer than any duration"), "{err}");
    }
}
