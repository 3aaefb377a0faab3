//! One POST to a receiver, tried up to `attempts` times: a connection
//! error, a timeout, a 5xx or a 429 is tried again after an exponential
//! backoff with jitter; any other answer is final.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Request, StatusCode};

use super::config::Notifier;
use crate::client::{Client, ClientError};

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum Undelivered {
    /// The receiver answered with a status that trying again will not change.
    #[error("refused with {0}")]
    Refused(StatusCode),
    /// Every attempt failed; the last one's reason.
    #[error("{attempts} attempt(s) failed; the last: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure (no URL, no header value).
        last: String,
    },
}

/// Posts to one notifier's receiver.
pub struct Deliverer {
    client: Client,
    url: http::Uri,
    headers: Vec<(http::HeaderName, HeaderValue)>,
    timeout: Duration,
    attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
}

impl Deliverer {
    /// For `notifier`.
    pub fn new(notifier: &Notifier) -> Result<Self, ClientError> {
        let headers = notifier
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let mut value = HeaderValue::from_str(value.expose()).ok()?;
                value.set_sensitive(true);
                Some((name.clone(), value))
            })
            .collect();
        Ok(Self {
            client: Client::new(notifier.ca_file.as_deref())?,
            url: notifier.url.clone(),
            headers,
            timeout: notifier.timeout,
            attempts: notifier.attempts.max(1),
            backoff: notifier.backoff,
            max_backoff: notifier.max_backoff,
        })
    }

    /// POSTs `body` (JSON) with `extra` headers; returns the attempts it took.
    pub async fn post(
        &self,
        body: Bytes,
        extra: &[(&'static str, String)],
    ) -> Result<u32, Undelivered> {
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let mut request = Request::post(self.url.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(
                    USER_AGENT,
                    concat!("healthgate/", env!("CARGO_PKG_VERSION")),
                );
            for (name, value) in &self.headers {
                request = request.header(name, value);
            }
            for (name, value) in extra {
                request = request.header(*name, value);
            }
            let Ok(request) = request.body(body.clone()) else {
                return Err(Undelivered::Exhausted {
                    attempts: attempt,
                    last: "cannot build the request".into(),
                });
            };
            match self.client.send(request, self.timeout).await {
                Ok(answer) if answer.status().is_success() => return Ok(attempt),
                Ok(answer) if !retryable(answer.status()) => {
                    return Err(Undelivered::Refused(answer.status()));
                }
                Ok(answer) => last = format!("answered {}", answer.status()),
                Err(e) => last = e.to_string(),
            }
            if attempt < self.attempts {
                tokio::time::sleep(jitter(wait)).await;
                wait = (wait * 2).min(self.max_backoff);
            }
        }
        Err(Undelivered::Exhausted {
            attempts: self.attempts,
            last,
        })
    }
}

/// Whether trying again may help.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// A random 50-100 % of `wait`: receivers that failed together are not
/// retried in lockstep.
fn jitter(wait: Duration) -> Duration {
    wait.mul_f64(rand::random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_may_pass_later_is_tried_again() {
        for code in [500, 502, 503, 504, 429] {
            assert!(retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422] {
            assert!(!retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        let wait = Duration::from_secs(10);
        for _ in 0..1000 {
            let j = jitter(wait);
            assert!(j >= Duration::from_secs(5) && j <= wait, "{j:?}");
        }
    }
}
