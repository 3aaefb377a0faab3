//! grpc, dns, tls, udp, disk and memory probes against real peers and real files
//! on this machine: a tonic server with tonic-health, a DNS responder built
//! on hickory-proto's message types, TLS servers with certificates made by
//! rcgen, statvfs checked against `df`, and cgroup files the test writes.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use healthgate::probe::Category;
use support::*;

mod grpc {
    use super::*;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic_health::ServingStatus;
    use tonic_health::server::HealthReporter;

    /// A gRPC server whose health the test sets; metadata `x-token: s3cret` required.
    async fn server(tls: Option<(String, String)>) -> (SocketAddr, HealthReporter) {
        let (reporter, service) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut builder = tonic::transport::Server::builder();
        if let Some((chain, key)) = tls {
            builder = builder
                .tls_config(
                    tonic::transport::ServerTlsConfig::new()
                        .identity(tonic::transport::Identity::from_pem(chain, key)),
                )
                .unwrap();
        }
        let auth = |request: tonic::Request<()>| match request.metadata().get("x-token") {
            Some(token) if token == "s3cret" => Ok(request),
            _ => Err(tonic::Status::unauthenticated("no token")),
        };
        let router = builder
            .layer(tonic::service::InterceptorLayer::new(auth))
            .add_service(service);
        tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
        (addr, reporter)
    }

    fn check(addr: SocketAddr, extra: &str) -> String {
        format!("address = \"{addr}\"\nmetadata = {{ x-token = \"s3cret\" }}\n{extra}")
    }

    #[tokio::test]
    async fn serving_passes_and_each_other_status_has_its_category() {
        let (addr, reporter) = server(None).await;
        reporter
            .set_service_status("api", ServingStatus::Serving)
            .await;
        let o = run_probe("grpc", &check(addr, "service = \"api\"")).await;
        assert!(o.passed(), "{o:?}");
        assert_eq!(o.message, "service \"api\" is SERVING");
        let names: Vec<_> = o.phases.iter().map(|p| p.name).collect();
        assert_eq!(names, ["connect", "first_byte"]);
        // The server as a whole ("") is SERVING by tonic-health's default.
        assert!(run_probe("grpc", &check(addr, "")).await.passed());

        reporter
            .set_service_status("api", ServingStatus::NotServing)
            .await;
        let o = run_probe("grpc", &check(addr, "service = \"api\"")).await;
        assert_fails(&o, Category::GrpcNotServing);
        assert_eq!(o.message, "service \"api\" is NOT_SERVING");

        reporter
            .set_service_status("api", ServingStatus::Unknown)
            .await;
        assert_fails(
            &run_probe("grpc", &check(addr, "service = \"api\"")).await,
            Category::GrpcUnknown,
        );
        let o = run_probe("grpc", &check(addr, "service = \"billing\"")).await;
        assert_fails(&o, Category::GrpcServiceUnknown);
        assert!(o.message.contains("NOT_FOUND"), "{}", o.message);
    }

    #[tokio::test]
    async fn metadata_is_sent_and_never_shown() {
        let (addr, _reporter) = server(None).await;
        let o = run_probe("grpc", &format!("address = \"{addr}\"")).await;
        assert_fails(&o, Category::GrpcError);
        assert!(o.message.contains("Unauthenticated"), "{}", o.message);
        let o = run_probe(
            "grpc",
            &format!("address = \"{addr}\"\nmetadata = {{ x-token = \"wrong-s3cret\" }}"),
        )
        .await;
        assert_fails(&o, Category::GrpcError);
        assert!(!format!("{o:?}").contains("s3cret"), "{o:?}");
    }

    /// A bare HTTP/2 server answering every call SERVING, recording the
    /// `:authority` and `x-token` of each request.
    async fn recording_server() -> (SocketAddr, Arc<std::sync::Mutex<Vec<(String, String)>>>) {
        use http_body_util::{BodyExt, StreamBody};
        use hyper::body::Frame;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let authority = req
                            .uri()
                            .authority()
                            .map(|a| a.to_string())
                            .unwrap_or_default();
                        let token = req
                            .headers()
                            .get("x-token")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        record.lock().unwrap().push((authority, token));
                        async move {
                            let _ = req.into_body().collect().await;
                            // One length-prefixed HealthCheckResponse { status: SERVING }, then trailers.
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", "0".parse().unwrap());
                            let frames: Vec<Result<Frame<bytes::Bytes>, std::convert::Infallible>> = vec![
                                Ok(Frame::data(bytes::Bytes::from_static(&[
                                    0, 0, 0, 0, 2, 0x08, 0x01,
                                ]))),
                                Ok(Frame::trailers(trailers)),
                            ];
                            let body = StreamBody::new(tokio_stream::iter(frames));
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/grpc")
                                    .body(body)
                                    .unwrap(),
                            )
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn authority_and_metadata_go_on_the_wire() {
        let (addr, seen) = recording_server().await;
        let o = run_probe("grpc", &check(addr, "")).await;
        assert!(o.passed(), "{o:?}");
        let o = run_probe("grpc", &check(addr, "authority = \"orders.internal:443\"")).await;
        assert!(o.passed(), "{o:?}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                (addr.to_string(), "s3cret".to_owned()),
                ("orders.internal:443".to_owned(), "s3cret".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn over_tls_with_the_chain_verified() {
        let pki = test_pki();
        let (addr, _reporter) = server(Some((
            pki.server_chain_pem.clone(),
            pki.server_key_pem.clone(),
        )))
        .await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        let tls = format!(
            "tls = {{ ca_file = \"{}\", server_name = \"localhost\" }}",
            ca.display()
        );
        let o = run_probe("grpc", &check(addr, &tls)).await;
        assert!(o.passed(), "{o:?}");
        let names: Vec<_> = o.phases.iter().map(|p| p.name).collect();
        assert_eq!(names, ["connect", "tls", "first_byte"]);
        // Not trusting the CA: a TLS failure, not a gRPC one.
        assert_fails(
            &run_probe("grpc", &check(addr, "tls = {}")).await,
            Category::Tls,
        );
        // Plaintext to a TLS port: the HTTP/2 handshake fails.
        assert_fails(
            &run_probe("grpc", &check(addr, "")).await,
            Category::Protocol,
        );
    }

    #[tokio::test]
    async fn no_health_service_refused_and_silent_peers() {
        // A gRPC server without the health service: UNIMPLEMENTED.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router =
            tonic::transport::Server::builder().add_routes(tonic::service::Routes::default());
        tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
        let o = run_probe("grpc", &format!("address = \"{addr}\"")).await;
        assert_fails(&o, Category::GrpcError);
        assert!(o.message.contains("Unimplemented"), "{}", o.message);

        let (refused, _socket) = refusing_port();
        assert_fails(
            &run_probe("grpc", &format!("address = \"{refused}\"")).await,
            Category::ConnectRefused,
        );
        let (silent, _task) = silent_listener().await;
        let started = tokio::time::Instant::now();
        let o = run_probe(
            "grpc",
            &format!("address = \"{silent}\"\ntimeout = \"500ms\""),
        )
        .await;
        assert_fails(&o, Category::Timeout);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}

mod dns {
    use super::*;
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::{A, MX, TXT};
    use hickory_proto::rr::{RData, Record};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers `ok.test.` (two A, one MX, one TXT), `missing.test.` NXDOMAIN,
    /// `broken.test.` SERVFAIL, and nothing at all for `silent.test.`.
    fn answer(query: &[u8]) -> Option<Vec<u8>> {
        let request = Message::from_vec(query).ok()?;
        let question = request.queries().first()?.clone();
        let name = question.name().to_ascii();
        let mut response = Message::new();
        response
            .set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(request.op_code())
            .set_recursion_desired(request.recursion_desired())
            .set_recursion_available(true)
            .add_query(question.clone());
        let owner = question.name().clone();
        match name.as_str() {
            "ok.test." => {
                use hickory_proto::rr::RecordType as T;
                let data: Vec<RData> = match question.query_type() {
                    T::A => vec![RData::A(A::new(10, 0, 0, 5)), RData::A(A::new(10, 0, 0, 6))],
                    T::MX => vec![RData::MX(MX::new(10, "mail.test.".parse().unwrap()))],
                    T::TXT => vec![RData::TXT(TXT::new(vec!["v=ok".into()]))],
                    _ => vec![],
                };
                for d in data {
                    response.add_answer(Record::from_rdata(owner.clone(), 60, d));
                }
            }
            "missing.test." => {
                response.set_response_code(ResponseCode::NXDomain);
            }
            "broken.test." => {
                response.set_response_code(ResponseCode::ServFail);
            }
            _ => return None,
        }
        response.to_vec().ok()
    }

    /// The responder on UDP and TCP, same port.
    async fn server() -> SocketAddr {
        // A free UDP port is not always free for TCP: try until both bind.
        let mut attempts = 0;
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            match tokio::net::TcpListener::bind(udp.local_addr().unwrap()).await {
                Ok(tcp) => break (udp, tcp),
                Err(_) if attempts < 100 => attempts += 1,
                Err(e) => panic!("no port free for both UDP and TCP: {e}"),
            }
        };
        let addr = udp.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                if let Some(reply) = answer(&buf[..n]) {
                    let _ = udp.send_to(&reply, from).await;
                }
            }
        });
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    loop {
                        let Ok(len) = stream.read_u16().await else {
                            return;
                        };
                        let mut query = vec![0u8; usize::from(len)];
                        if stream.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        // No answer: the connection stays open, silent.
                        if let Some(reply) = answer(&query) {
                            let _ = stream.write_u16(reply.len() as u16).await;
                            let _ = stream.write_all(&reply).await;
                        }
                    }
                });
            }
        });
        addr
    }

    fn check(server: SocketAddr, name: &str, extra: &str) -> String {
        format!("server = \"{server}\"\nquery = \"{name}\"\n{extra}")
    }

    #[tokio::test]
    async fn records_and_expectations() {
        let s = server().await;
        let o = run_probe("dns", &check(s, "ok.test.", "")).await;
        assert!(o.passed(), "{o:?}");
        assert_eq!(o.message, "ok.test. A: 10.0.0.5, 10.0.0.6");
        let o = run_probe(
            "dns",
            &check(
                s,
                "ok.test.",
                "expect = { answers_contain = [\"10.0.0.6\"], min_answers = 2 }",
            ),
        )
        .await;
        assert!(o.passed(), "{o:?}");
        let o = run_probe(
            "dns",
            &check(s, "ok.test.", "expect.answers_contain = [\"10.0.0.7\"]"),
        )
        .await;
        assert_fails(&o, Category::DnsAnswerMismatch);
        assert_eq!(
            o.message,
            "ok.test. A: \"10.0.0.7\" not among the answers [10.0.0.5, 10.0.0.6]"
        );
        assert_fails(
            &run_probe("dns", &check(s, "ok.test.", "expect.min_answers = 3")).await,
            Category::DnsAnswerMismatch,
        );
        let o = run_probe(
            "dns",
            &check(
                s,
                "ok.test.",
                "record_type = \"MX\"\nexpect.answer_regex = \"^10 mail\\\\.test\\\\.$\"",
            ),
        )
        .await;
        assert!(o.passed(), "{o:?}");
        assert_fails(
            &run_probe(
                "dns",
                &check(
                    s,
                    "ok.test.",
                    "record_type = \"TXT\"\nexpect.answer_regex = \"v=nope\"",
                ),
            )
            .await,
            Category::DnsAnswerMismatch,
        );
    }

    #[tokio::test]
    async fn response_codes() {
        let s = server().await;
        let o = run_probe("dns", &check(s, "missing.test.", "")).await;
        assert_fails(&o, Category::DnsRcode);
        assert!(o.message.contains("expected No Error"), "{}", o.message);
        // A name that must not exist.
        let o = run_probe(
            "dns",
            &check(s, "missing.test.", "expect.rcode = \"NXDOMAIN\""),
        )
        .await;
        assert!(o.passed(), "{o:?}");
        assert_fails(
            &run_probe("dns", &check(s, "broken.test.", "")).await,
            Category::DnsRcode,
        );
        // An existing name where NXDOMAIN was expected.
        assert_fails(
            &run_probe("dns", &check(s, "ok.test.", "expect.rcode = \"NXDOMAIN\"")).await,
            Category::DnsRcode,
        );
    }

    #[tokio::test]
    async fn over_tcp_and_a_silent_server() {
        let s = server().await;
        let o = run_probe("dns", &check(s, "ok.test.", "protocol = \"tcp\"")).await;
        assert!(o.passed(), "{o:?}");
        for protocol in ["udp", "tcp"] {
            let started = tokio::time::Instant::now();
            let o = run_probe(
                "dns",
                &check(
                    s,
                    "silent.test.",
                    &format!("protocol = \"{protocol}\"\ntimeout = \"500ms\""),
                ),
            )
            .await;
            assert_fails(&o, Category::Timeout);
            let took = started.elapsed();
            assert!(took < Duration::from_millis(1500), "{protocol}: {took:?}");
        }
    }
}

mod tls {
    use super::*;

    const DAY: i64 = 86_400;

    /// Completes TLS handshakes with `config`, then closes.
    async fn server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(stream).await;
                });
            }
        });
        addr
    }

    async fn probe(addr: SocketAddr, ca: &str, extra: &str) -> healthgate::probe::Outcome {
        run_probe(
            "tls",
            &format!(
                "address = \"localhost:{}\"\ntls.ca_file = \"{ca}\"\n{extra}",
                addr.port()
            ),
        )
        .await
    }

    #[tokio::test]
    async fn valid_expiring_expired_and_unknown_ca() {
        let pki = test_pki();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        let ca = ca.to_str().unwrap().to_owned();

        let valid = server(pki.server_valid_between(-DAY, 90 * DAY)).await;
        let o = probe(valid, &ca, "").await;
        assert!(o.passed() && o.warning.is_none(), "{o:?}");
        assert!(
            o.message.starts_with("certificate valid for 89d"),
            "{}",
            o.message
        );
        let names: Vec<_> = o.phases.iter().map(|p| p.name).collect();
        assert_eq!(names, ["dns", "connect", "tls"]);
        // 90 days left is within a 100-day minimum.
        let o = probe(valid, &ca, "expect.cert_min_validity = \"100d\"").await;
        assert_eq!(o.warning, Some(Category::CertExpiring), "{o:?}");

        let expiring = server(pki.server_valid_between(-DAY, 2 * DAY)).await;
        let o = probe(expiring, &ca, "").await;
        assert!(o.passed(), "expiring soon still passes: {o:?}");
        assert_eq!(o.warning, Some(Category::CertExpiring));
        assert!(
            o.message.starts_with("certificate expires in 1d 23h"),
            "{}",
            o.message
        );
        let not_after = o.cert_not_after.unwrap();
        let left = not_after
            .duration_since(std::time::SystemTime::now())
            .unwrap();
        assert!(
            left > Duration::from_secs(47 * 3600) && left <= Duration::from_secs(48 * 3600),
            "{left:?}"
        );

        let expired = server(pki.server_valid_between(-10 * DAY, -DAY)).await;
        let o = probe(expired, &ca, "").await;
        assert_fails(&o, Category::CertExpired);
        // Not verifying the chain still judges the dates.
        let o = probe(expired, &ca, "tls.insecure_skip_verify = true").await;
        assert_fails(&o, Category::CertExpired);
        assert!(
            o.message.starts_with("certificate expired at"),
            "{}",
            o.message
        );

        let other = test_pki();
        let unknown = server(other.server_valid_between(-DAY, 90 * DAY)).await;
        let o = probe(unknown, &ca, "").await;
        assert_fails(&o, Category::Tls);
        // Its CA has the same name as ours: the signature gives it away.
        assert!(
            o.message.contains("invalid peer certificate"),
            "{}",
            o.message
        );
    }

    #[tokio::test]
    async fn an_https_check_fails_an_expired_certificate_as_cert_expired() {
        let pki = test_pki();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        let s = TestServer::start_with_tls(Some(pki.server_valid_between(-10 * DAY, -DAY))).await;
        let o = run_probe(
            "http",
            &format!(
                "url = \"https://localhost:{}/ok\"\ntls.ca_file = \"{}\"",
                s.addr.port(),
                ca.display()
            ),
        )
        .await;
        assert_fails(&o, Category::CertExpired);
    }
}

mod disk {
    use super::*;

    /// `df`'s view of `path`: (use%, available bytes).
    fn df(path: &str) -> (f64, u64) {
        let out = std::process::Command::new("df")
            .args(["--output=pcent,avail", "-B1", path])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.lines().nth(1).unwrap();
        let mut words = line.split_whitespace();
        let pcent = words.next().unwrap().trim_end_matches('%').parse().unwrap();
        let avail = words.next().unwrap().parse().unwrap();
        (pcent, avail)
    }

    #[tokio::test]
    async fn thresholds_around_the_real_figures_go_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let (used, avail) = df(path);
        let check = |extra: String| {
            format!("path = \"{path}\"\nfail_above = 100\ninodes_fail_above = 100\n{extra}")
        };
        let o = run_probe("disk", &check(String::new())).await;
        assert!(o.passed() && o.warning.is_none(), "{o:?}");
        // df rounds up; ours is within one point of it.
        let ours: f64 = o
            .message
            .split(": ")
            .nth(1)
            .unwrap()
            .split('%')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((used - ours).abs() <= 1.0, "df {used}%, healthgate {ours}%");
        if used >= 3.0 {
            let below = used - 2.0;
            let o = run_probe(
                "disk",
                &format!("path = \"{path}\"\nfail_above = {below}\n"),
            )
            .await;
            assert_fails(&o, Category::DiskThreshold);
            let o = run_probe("disk", &check(format!("warn_above = {below}"))).await;
            assert_eq!(o.warning, Some(Category::DiskThreshold), "{o:?}");
        }
        let o = run_probe(
            "disk",
            &check(format!("warn_above = {}", (used + 1.0).min(99.0))),
        )
        .await;
        assert!(o.warning.is_none() || used >= 99.0, "{o:?}");
        // Free bytes: twice what is available fails, half passes.
        let o = run_probe(
            "disk",
            &check(format!("min_free_bytes = {}", avail * 2 + (1 << 20))),
        )
        .await;
        assert_fails(&o, Category::DiskThreshold);
        assert!(o.message.ends_with("free)"), "{}", o.message);
        assert!(
            run_probe("disk", &check(format!("min_free_bytes = {}", avail / 2)))
                .await
                .passed()
        );
    }

    #[tokio::test]
    async fn a_missing_path_is_a_read_failure() {
        let o = run_probe("disk", "path = \"/nonexistent/healthgate-test\"").await;
        assert_fails(&o, Category::ResourceRead);
        assert!(o.message.contains("ENOENT"), "{}", o.message);
    }
}

mod memory {
    use super::*;

    /// A cgroup v2 directory with the figures the test chooses.
    fn cgroup(
        max: &str,
        current: u64,
        inactive_file: u64,
        psi_avg10: Option<f64>,
    ) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.max"), format!("{max}\n")).unwrap();
        std::fs::write(dir.path().join("memory.current"), format!("{current}\n")).unwrap();
        std::fs::write(
            dir.path().join("memory.stat"),
            format!("anon 1000\nfile 5000\ninactive_file {inactive_file}\nactive_file 10\n"),
        )
        .unwrap();
        if let Some(avg10) = psi_avg10 {
            std::fs::write(
                dir.path().join("memory.pressure"),
                format!("some avg10={avg10:.2} avg60=0.00 avg300=0.00 total=12\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1\n"),
            )
            .unwrap();
        }
        dir
    }

    fn check(dir: &tempfile::TempDir, extra: &str) -> String {
        format!("cgroup_dir = \"{}\"\n{extra}", dir.path().display())
    }

    #[tokio::test]
    async fn the_cgroup_working_set_against_its_limit() {
        // 1 GiB limit, 900 MiB current of which 100 MiB inactive file cache: 800 MiB, 78.1%.
        let mib = 1 << 20;
        let dir = cgroup(&(1024 * mib).to_string(), 900 * mib, 100 * mib, Some(1.5));
        let o = run_probe("memory", &check(&dir, "")).await;
        assert!(o.passed() && o.warning.is_none(), "{o:?}");
        assert_eq!(
            o.message,
            "78.1% of 1.0 GiB used (800.0 MiB cgroup), pressure 1.50%"
        );
        let o = run_probe("memory", &check(&dir, "warn_above = 75")).await;
        assert_eq!(o.warning, Some(Category::MemoryThreshold));
        assert_fails(
            &run_probe("memory", &check(&dir, "fail_above = 78")).await,
            Category::MemoryThreshold,
        );
        let o = run_probe("memory", &check(&dir, "pressure_warn_above = 1")).await;
        assert_eq!(o.warning, Some(Category::MemoryThreshold));
        assert!(o.message.ends_with("(pressure above 1%)"), "{}", o.message);
        assert_fails(
            &run_probe("memory", &check(&dir, "pressure_fail_above = 1.2")).await,
            Category::MemoryThreshold,
        );
        // The figures are read on every run.
        std::fs::write(dir.path().join("memory.current"), (1000 * mib).to_string()).unwrap();
        let o = run_probe("memory", &check(&dir, "fail_above = 85")).await;
        assert_fails(&o, Category::MemoryThreshold);
    }

    /// (MemTotal, MemAvailable) in bytes, as the kernel says.
    fn meminfo() -> (f64, f64) {
        let text = std::fs::read_to_string("/proc/meminfo").unwrap();
        let get = |key: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(key)).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<f64>()
                .unwrap()
                * 1024.0
        };
        (get("MemTotal:"), get("MemAvailable:"))
    }

    #[tokio::test]
    async fn without_a_cgroup_limit_the_host_figures_apply() {
        let dir = cgroup("max", 123, 0, None);
        let o = run_probe("memory", &check(&dir, "")).await;
        assert!(o.passed(), "{o:?}");
        assert!(o.message.contains(" host)"), "{}", o.message);
        let (total, available) = meminfo();
        let percent = (total - available) * 100.0 / total;
        let ours: f64 = o.message.split('%').next().unwrap().parse().unwrap();
        assert!(
            (ours - percent).abs() < 2.0,
            "kernel {percent:.1}%, healthgate {ours}%"
        );
        if percent > 5.0 {
            let o = run_probe(
                "memory",
                &check(&dir, &format!("fail_above = {:.1}", percent - 4.0)),
            )
            .await;
            assert_fails(&o, Category::MemoryThreshold);
        }
        let o = run_probe(
            "memory",
            &check(
                &dir,
                &format!("warn_above = {:.1}", (percent + 4.0).min(99.0)),
            ),
        )
        .await;
        assert!(o.warning.is_none(), "{o:?}");
        // This process's own cgroup (v2 where the machine has it, else the host).
        assert!(run_probe("memory", "fail_above = 100").await.passed());
    }
}

mod udp {
    use super::*;

    fn assert_passes(outcome: &healthgate::probe::Outcome) {
        assert!(outcome.passed(), "expected a pass, got {outcome:?}");
    }

    /// A UDP peer answering `pong <what was sent>` to every datagram.
    async fn echo() -> SocketAddr {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0; 2048];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let mut answer = b"pong ".to_vec();
                answer.extend_from_slice(&buf[..len]);
                let _ = socket.send_to(&answer, from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_answer_passes_and_a_wrong_one_does_not() {
        let addr = echo().await;
        let o = run_probe("udp", &format!("address = \"{addr}\"\nsend = \"ping\"")).await;
        assert_passes(&o);
        assert!(o.message.contains("9 bytes"), "{}", o.message);
        let o = run_probe(
            "udp",
            &format!("address = \"{addr}\"\nsend = \"ping\"\nexpect = \"^pong ping$\""),
        )
        .await;
        assert_passes(&o);
        let o = run_probe(
            "udp",
            &format!("address = \"{addr}\"\nsend = \"ping\"\nexpect = \"^PONG\""),
        )
        .await;
        assert_fails(&o, Category::ResponseMismatch);
        // The peer echoes the datagram; what was sent may be a token and
        // never reaches the message.
        let o = run_probe(
            "udp",
            &format!("address = \"{addr}\"\nsend = \"key=s3cr3t-t0ken\"\nexpect = \"^PONG\""),
        )
        .await;
        assert_fails(&o, Category::ResponseMismatch);
        assert!(!o.message.contains("s3cr3t"), "{}", o.message);
        assert!(o.message.contains("pong REDACTED"), "{}", o.message);
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_and_a_silent_peer_times_out() {
        // A port nothing listens on: the kernel answers ICMP port unreachable.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let o = run_probe("udp", &format!("address = \"{addr}\"\nsend = \"ping\"")).await;
        assert_fails(&o, Category::ConnectRefused);
        // A peer that reads and never answers.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let started = tokio::time::Instant::now();
        let o = run_probe(
            "udp",
            &format!("address = \"{addr}\"\nsend = \"ping\"\ntimeout = \"300ms\""),
        )
        .await;
        assert_fails(&o, Category::Timeout);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "bounded by the timeout"
        );
        drop(silent);
    }

    #[tokio::test]
    async fn an_answer_longer_than_the_bound_is_cut_there() {
        let addr = echo().await;
        let o = run_probe(
            "udp",
            &format!(
                "address = \"{addr}\"\nsend = \"{}\"\nmax_response_bytes = 16\nexpect = \"^pong x{{11}}$\"",
                "x".repeat(1000)
            ),
        )
        .await;
        assert_passes(&o);
        assert!(o.message.starts_with("16 bytes"), "{}", o.message);
    }
}
