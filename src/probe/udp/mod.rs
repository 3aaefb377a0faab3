//! `type = "udp"`: one datagram out, one answer back, within the timeout.

use std::io;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};

use super::{BoxFuture, Category, Outcome, Probe, Target, Timer, net};

mod config;
pub use config::{UdpConfig, UdpSpec};

/// Sends a datagram to `host:port` and judges the answer.
pub struct UdpProbe {
    spec: UdpSpec,
    target: Arc<Target>,
    /// The datagram, blanked from messages: a peer may echo it, and it may
    /// hold a token.
    secrets: Box<[Box<str>]>,
}

impl UdpProbe {
    /// A probe for `spec`.
    pub fn new(spec: UdpSpec) -> Self {
        let target = Target::endpoint(&spec.host, spec.port);
        let secrets = super::secrets([String::from_utf8_lossy(&spec.send).into_owned()]);
        Self {
            spec,
            target,
            secrets,
        }
    }
}

impl Probe for UdpProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut phases = Vec::with_capacity(2);
            let mut outcome =
                match net::resolve(&self.spec.host, self.spec.port, deadline, &mut phases).await {
                    Ok(addrs) => match addrs.first() {
                        Some(&addr) => {
                            let timer = Timer::start();
                            let outcome = self.exchange(addr, deadline).await;
                            phases.push(timer.finish("first_byte"));
                            outcome
                        }
                        None => Outcome::fail(Category::Dns, "resolved to no address"),
                    },
                    Err(outcome) => outcome,
                };
            outcome.phases = phases;
            outcome.target = Some(self.target.clone());
            outcome
        })
    }
}

impl UdpProbe {
    /// Sends the datagram from a socket connected to `addr` (so the
    /// kernel hands back only its answers, and an ICMP port unreachable
    /// as an error) and reads one answer.
    async fn exchange(&self, addr: std::net::SocketAddr, deadline: Instant) -> Outcome {
        let local: std::net::SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(local).await {
            Ok(socket) => socket,
            Err(e) => {
                return Outcome::fail(Category::Connect, format!("cannot open a socket: {e}"));
            }
        };
        if let Err(e) = socket.connect(addr).await {
            return failed(addr, &e);
        }
        match timeout_at(deadline, socket.send(&self.spec.send)).await {
            Err(_) => {
                return Outcome::fail(Category::Timeout, format!("sending to {addr} timed out"));
            }
            Ok(Err(e)) => return failed(addr, &e),
            Ok(Ok(_)) => {}
        }
        // One byte more than kept tells a cut answer from a whole one.
        let mut answer = vec![0; self.spec.max_response_bytes + 1];
        let len = match timeout_at(deadline, socket.recv(&mut answer)).await {
            Err(_) => {
                return Outcome::fail(Category::Timeout, format!("no answer from {addr}"));
            }
            Ok(Err(e)) => return failed(addr, &e),
            Ok(Ok(len)) => len.min(self.spec.max_response_bytes),
        };
        let answer = &answer[..len];
        match &self.spec.expect {
            Some(expect) if !expect.is_match(&String::from_utf8_lossy(answer)) => {
                let message = format!(
                    "the answer from {addr} does not match /{expect}/ (got {:?})",
                    super::tcp::preview(answer)
                );
                Outcome::fail(
                    Category::ResponseMismatch,
                    super::scrub(message, &self.secrets),
                )
            }
            _ => Outcome::pass(format!("{len} bytes from {addr}")),
        }
    }
}

fn failed(addr: std::net::SocketAddr, e: &io::Error) -> Outcome {
    let category = match e.kind() {
        io::ErrorKind::ConnectionRefused => Category::ConnectRefused,
        _ => Category::Connect,
    };
    Outcome::fail(category, format!("{addr}: {e}"))
}
