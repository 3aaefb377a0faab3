//! What reaches the listeners cannot lock the load balancer out: idle
//! sockets are closed at the header timeout counted from their accept
//! (plain, after a TLS handshake, after an HTTP/2 preface), and at the
//! connection cap the oldest idle one makes room, so `/readyz` is answered
//! however many sockets a client holds. Against the real binary.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The listeners' header timeout (`server::HEADER_READ_TIMEOUT`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// More connections than a listener holds (`server::conns::MAX_CONNECTIONS`).
const FLOOD: usize = 1_100;

fn gateway_toml(server: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         grpc_listen = \"127.0.0.1:0\"\n{server}\n\
         [[checks]]\nname = \"self\"\ntype = \"tcp\"\naddress = \"127.0.0.1:{{admin}}\"\n"
    )
}

/// A gateway whose one check (the admin port, which is up) passes.
async fn passing_gateway(server: &str) -> Gateway {
    // The check needs a port that answers: a listener of this test's.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = target.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let _ = target.accept().await;
        }
    });
    let toml =
        gateway_toml(server).replace("{admin}", &port.to_string()) + "interval = \"200ms\"\n";
    let gw = start_gateway(&toml).await;
    // Asked of the admin listener, which serves the verdicts in plain HTTP
    // whatever `server.tls` says.
    eventually(WITHIN, "/readyz 200", || async {
        matches!(request(gw.admin, "GET", "/readyz").await, Ok((s, _, _)) if s == 200)
    })
    .await;
    gw
}

const WITHIN: Duration = Duration::from_secs(15);

/// How long until the peer closes `stream` (EOF or reset), reading and
/// dropping whatever it sends; `None` if it is still open after `limit`.
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> Option<Duration> {
    let began = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| began.elapsed())
}

fn assert_closed_at_header_timeout(what: &str, after: Option<Duration>) {
    let after =
        after.unwrap_or_else(|| panic!("{what}: still open after twice the header timeout"));
    assert!(
        after <= HEADER_TIMEOUT + Duration::from_secs(2),
        "{what}: closed after {after:?}"
    );
}

#[tokio::test]
async fn a_flood_of_idle_connections_does_not_lock_the_load_balancer_out() {
    healthgate::server::conns::raise_fd_limit();
    let gw = passing_gateway("").await;
    // Held open, sending nothing, as many as a single client can.
    let mut idle = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        idle.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    // The kernel hands connections over in order: these come after the flood.
    for path in ["/readyz", "/livez", "/startupz"] {
        let (status, _, _) =
            tokio::time::timeout(Duration::from_secs(3), request(gw.addr, "GET", path))
                .await
                .unwrap_or_else(|_| {
                    panic!("{path} not answered in 3 s behind {FLOOD} idle connections")
                })
                .unwrap_or_else(|e| panic!("{path} behind {FLOOD} idle connections: {e}"));
        assert_eq!(status, 200, "{path}");
    }
    // The same on the gRPC listener: a health client gets its answer.
    for _ in 0..FLOOD {
        idle.push(TcpStream::connect(gw.grpc.unwrap()).await.unwrap());
    }
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gw.grpc.unwrap()))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .unwrap();
    let answer = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, 1, "SERVING");
    // Counted, by listener and reason, and logged.
    let metrics = scrape(gw.admin).await;
    let shed = |listener: &str| {
        sample(
            &metrics,
            &format!("healthgate_connections_shed_total{{listener=\"{listener}\",reason=\"cap\"}}"),
        )
    };
    assert!(shed("lb") >= (FLOOD + 1 - 1024) as f64, "{}", shed("lb"));
    assert!(
        shed("grpc") >= (FLOOD + 1 - 1024) as f64,
        "{}",
        shed("grpc")
    );
    assert!(
        gw.logs()
            .iter()
            .any(|l| l.contains("connections closed to keep the listener answering")),
        "the shedding is logged"
    );
    // And at most once a minute: one line for two listeners' floods.
    let lines = gw
        .logs()
        .iter()
        .filter(|l| l.contains("connections closed to keep the listener answering"))
        .count();
    assert_eq!(lines, 1);
    drop(idle);
}

#[tokio::test]
async fn a_connection_that_sends_no_request_is_closed_at_the_header_timeout() {
    let pki = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = write("tls.crt", &pki.server_chain_pem);
    let key = write("tls.key", &pki.server_key_pem);
    let plain = passing_gateway("").await;
    let tls = passing_gateway(&format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"",
        cert.display(),
        key.display()
    ))
    .await;
    let connector = tls_client(&pki.ca_pem, None);

    let silent = async |addr: SocketAddr| {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        closed_within(&mut stream, 2 * HEADER_TIMEOUT).await
    };
    // Not a byte: load-balancer, admin and gRPC listeners alike.
    let (lb, admin, grpc) = tokio::join!(
        silent(plain.addr),
        silent(plain.admin),
        silent(plain.grpc.unwrap())
    );
    assert_closed_at_header_timeout("lb, silent", lb);
    assert_closed_at_header_timeout("admin, silent", admin);
    assert_closed_at_header_timeout("grpc, silent", grpc);

    // An HTTP/2 preface and nothing after it (no HEADERS frame).
    let preface = async {
        let mut stream = TcpStream::connect(plain.grpc.unwrap()).await.unwrap();
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        stream
            .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
            .await
            .unwrap(); // empty SETTINGS
        closed_within(&mut stream, 2 * HEADER_TIMEOUT).await
    };
    // A request head that trickles in, a byte a second: counted from the accept.
    let trickle = async {
        let (mut read, mut write) = TcpStream::connect(plain.addr).await.unwrap().into_split();
        tokio::spawn(async move {
            for byte in b"GET /readyz HTTP/1.1\r\nHost: x\r\n" {
                if write.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        closed_within(&mut read, 2 * HEADER_TIMEOUT).await
    };
    // A TLS handshake, then nothing.
    let handshaken = async {
        let tcp = TcpStream::connect(tls.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut stream = connector.connect(name, tcp).await.unwrap();
        closed_within(&mut stream, 2 * HEADER_TIMEOUT).await
    };
    let (preface, trickle, handshaken) = tokio::join!(preface, trickle, handshaken);
    assert_closed_at_header_timeout("grpc, HTTP/2 preface only", preface);
    assert_closed_at_header_timeout("lb, a head trickling in", trickle);
    assert_closed_at_header_timeout("lb over TLS, handshake only", handshaken);

    // A connection that asks is served past the header timeout of its
    // accept: keep-alive requests, each within the timeout of the last.
    let stream = TcpStream::connect(plain.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let began = Instant::now();
    while began.elapsed() < HEADER_TIMEOUT + Duration::from_secs(2) {
        let get = http::Request::get("/readyz")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let status = sender.send_request(get).await.unwrap().status();
        assert_eq!(status, 200, "after {:?} on one connection", began.elapsed());
        tokio::time::sleep(HEADER_TIMEOUT / 2).await;
    }

    let metrics = scrape(plain.admin).await;
    let timeouts = |listener: &str| {
        sample(
            &metrics,
            &format!(
                "healthgate_connections_shed_total{{listener=\"{listener}\",reason=\"header_timeout\"}}"
            ),
        )
    };
    assert!(timeouts("lb") >= 1.0, "{}", timeouts("lb"));
    assert!(timeouts("grpc") >= 2.0, "{}", timeouts("grpc"));
}

/// `/metrics` from the admin listener.
async fn scrape(admin: SocketAddr) -> String {
    let (status, _, body) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    body
}

/// The value of the series `series` (name and labels as written), or 0.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
