//! `type = "tcp"`: passes when a TCP connection is established within the
//! timeout and, if configured, every exchange step matches.

use std::sync::Arc;

use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::{BoxFuture, Category, Outcome, Probe, Target, net};

mod config;
pub use config::{ExchangeStep, Step, TcpConfig, TcpSpec};

/// Connects to `host:port`.
pub struct TcpProbe {
    spec: TcpSpec,
    target: Arc<Target>,
    /// What the steps send (a password in an `AUTH` line), blanked out of
    /// the answers messages quote: a peer may echo it back.
    secrets: Box<[Box<str>]>,
}

impl TcpProbe {
    /// A probe for `spec`.
    pub fn new(spec: TcpSpec) -> Self {
        let target = Target::endpoint(&spec.host, spec.port);
        let sent = spec.exchange.iter().filter_map(|step| step.send.as_ref());
        let secrets = super::secrets(sent.map(|b| String::from_utf8_lossy(b).trim().to_owned()));
        Self {
            spec,
            target,
            secrets,
        }
    }
}

impl Probe for TcpProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut phases = Vec::with_capacity(2);
            let connected =
                net::connect(&self.spec.host, self.spec.port, deadline, &mut phases).await;
            let mut outcome = match connected {
                Ok(stream) => self.exchange(stream, deadline).await,
                Err(outcome) => outcome,
            };
            outcome.phases = phases;
            outcome.target = Some(self.target.clone());
            outcome
        })
    }
}

impl TcpProbe {
    /// Runs the configured steps on a connected stream.
    async fn exchange(&self, mut stream: TcpStream, deadline: Instant) -> Outcome {
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut answer = Vec::new();
        for (i, step) in self.spec.exchange.iter().enumerate() {
            if let Some(bytes) = &step.send {
                match timeout_at(deadline, stream.write_all(bytes)).await {
                    Err(_) => {
                        return Outcome::fail(
                            Category::Timeout,
                            format!("step {i}: sending to {peer} timed out"),
                        );
                    }
                    Ok(Err(e)) => {
                        return Outcome::fail(
                            Category::Protocol,
                            format!("step {i}: sending to {peer}: {e}"),
                        );
                    }
                    Ok(Ok(())) => {}
                }
            }
            if let Some(expect) = &step.expect {
                if let Err(outcome) = self
                    .read_until(&mut stream, &mut answer, expect, deadline, i)
                    .await
                {
                    return outcome;
                }
                answer.clear();
            }
        }
        if self.spec.exchange.is_empty() {
            Outcome::pass(format!("connected to {peer}"))
        } else {
            Outcome::pass(format!(
                "{} exchange steps with {peer} matched",
                self.spec.exchange.len()
            ))
        }
    }

    /// The pattern step `step` of the exchange waits for, if any.
    pub(crate) fn exchange_expect(&self, step: usize) -> Option<Regex> {
        self.spec.exchange.get(step)?.expect.clone()
    }

    /// Reads until what arrived matches `expect`, within the deadline and the size bound.
    pub(crate) async fn read_until(
        &self,
        stream: &mut (impl tokio::io::AsyncRead + Unpin),
        answer: &mut Vec<u8>,
        expect: &Regex,
        deadline: Instant,
        step: usize,
    ) -> Result<(), Outcome> {
        let max = self.spec.max_response_bytes;
        let mut chunk = [0u8; 1024];
        loop {
            if expect.is_match(&String::from_utf8_lossy(answer)) {
                return Ok(());
            }
            if answer.len() >= max {
                return Err(Outcome::fail(
                    Category::ResponseMismatch,
                    format!("step {step}: the first {max} bytes do not match /{expect}/"),
                ));
            }
            let room = (max - answer.len()).min(chunk.len());
            match timeout_at(deadline, stream.read(&mut chunk[..room])).await {
                Err(_) => {
                    return Err(self.scrubbed(Outcome::fail(
                        Category::Timeout,
                        format!(
                            "step {step}: no answer matching /{expect}/ within the timeout (got {:?})",
                            preview(answer)
                        ),
                    )));
                }
                Ok(Ok(0)) => return Err(self.scrubbed(closed(step, expect, answer))),
                // A peer that hangs up with our request unread resets instead of closing.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(self.scrubbed(closed(step, expect, answer)));
                }
                Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => {
                    return Err(Outcome::fail(
                        Category::Protocol,
                        format!("step {step}: reading: {e}"),
                    ));
                }
            }
        }
    }
}

impl TcpProbe {
    /// `outcome` with what the steps send blanked out of its message.
    fn scrubbed(&self, mut outcome: Outcome) -> Outcome {
        outcome.message = super::scrub(outcome.message, &self.secrets);
        outcome
    }
}

fn closed(step: usize, expect: &Regex, answer: &[u8]) -> Outcome {
    Outcome::fail(
        Category::ResponseMismatch,
        format!(
            "step {step}: closed before matching /{expect}/ (got {:?})",
            preview(answer)
        ),
    )
}

/// The start of an answer, for messages.
pub(super) fn preview(answer: &[u8]) -> String {
    String::from_utf8_lossy(&answer[..answer.len().min(40)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that echoes what it was sent (the password of an AUTH line)
    /// and hangs up: the message quotes its answer with the password blanked.
    #[tokio::test]
    async fn an_echoed_send_is_blanked_from_the_message() {
        let config: TcpConfig = serde_json::from_value(serde_json::json!({
            "address": "127.0.0.1:6379",
            "exchange": [{"send": "AUTH s3cret-pass\r\n", "expect": "^\\+OK"}]
        }))
        .unwrap();
        let mut problems = crate::config::Problems::default();
        let spec = config.resolve(&mut problems.scope(Some("t"))).unwrap();
        let probe = TcpProbe::new(spec);
        let expect = probe.exchange_expect(0).unwrap();
        let mut peer: &[u8] = b"-ERR bad AUTH s3cret-pass\r\n";
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let outcome = probe
            .read_until(&mut peer, &mut Vec::new(), &expect, deadline, 0)
            .await
            .unwrap_err();
        assert_eq!(outcome.failure, Some(Category::ResponseMismatch));
        assert!(
            !outcome.message.contains("s3cret-pass"),
            "{}",
            outcome.message
        );
        assert!(outcome.message.contains("REDACTED"), "{}", outcome.message);
    }
}
