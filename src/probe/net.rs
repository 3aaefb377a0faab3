//! Resolving and connecting, shared by the tcp, udp and http probes, each failure
//! named by its stage.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::{Category, Outcome, Phase, Timer};

/// Resolves `host:port` and connects to the first address that accepts,
/// timing the `dns` (for names) and `connect` phases into `phases`.
pub async fn connect(
    host: &str,
    port: u16,
    deadline: Instant,
    phases: &mut Vec<Phase>,
) -> Result<TcpStream, Outcome> {
    let addrs = resolve(host, port, deadline, phases).await?;
    let timer = Timer::start();
    let connected = connect_any(host, addrs, deadline).await;
    phases.push(timer.finish("connect"));
    connected
}

/// The addresses of `host:port` (a name is resolved, timing the `dns` phase into `phases`).
pub async fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
    phases: &mut Vec<Phase>,
) -> Result<Vec<SocketAddr>, Outcome> {
    let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let timer = Timer::start();
            let resolved = timeout_at(deadline, tokio::net::lookup_host((host, port))).await;
            phases.push(timer.finish("dns"));
            match resolved {
                Err(_) => {
                    return Err(Outcome::fail(
                        Category::Dns,
                        format!("resolving {host} timed out"),
                    ));
                }
                Ok(Err(e)) => {
                    return Err(Outcome::fail(
                        Category::Dns,
                        format!("cannot resolve {host}: {e}"),
                    ));
                }
                Ok(Ok(addrs)) => addrs.collect(),
            }
        }
    };
    if addrs.is_empty() {
        return Err(Outcome::fail(
            Category::Dns,
            format!("{host} resolved to no address"),
        ));
    }
    Ok(addrs)
}

async fn connect_any(
    host: &str,
    addrs: Vec<SocketAddr>,
    deadline: Instant,
) -> Result<TcpStream, Outcome> {
    let mut last = Outcome::fail(Category::Dns, format!("{host} resolved to no address"));
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = connect_error(addr, &e),
            Err(_) => {
                return Err(Outcome::fail(
                    Category::ConnectTimeout,
                    format!("connecting to {addr} timed out"),
                ));
            }
        }
    }
    Err(last)
}

fn connect_error(addr: SocketAddr, e: &io::Error) -> Outcome {
    let category = match e.kind() {
        io::ErrorKind::ConnectionRefused => Category::ConnectRefused,
        io::ErrorKind::TimedOut => Category::ConnectTimeout,
        _ => Category::Connect,
    };
    Outcome::fail(category, format!("connecting to {addr}: {e}"))
}
