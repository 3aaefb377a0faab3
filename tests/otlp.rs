//! OTLP export from the real binary to a real receiver (generated from the
//! official protos by `opentelemetry-proto`), over gRPC and http/protobuf.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::*;
use tokio::net::TcpListener;

const WITHIN: Duration = Duration::from_secs(20);

/// Every export request the receiver got.
#[derive(Clone, Default)]
struct Received {
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn grpc_receiver() -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(received.clone()))
            .add_service(TraceServiceServer::new(received.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, received)
}

/// An OTLP/HTTP receiver: decodes `POST /v1/metrics` protobuf bodies.
async fn http_receiver() -> (SocketAddr, Received) {
    https_receiver(None).await
}

/// The OTLP/HTTP receiver, over TLS when `tls` is given.
async fn https_receiver(tls: Option<Arc<rustls::ServerConfig>>) -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        match path.as_str() {
                            "/v1/metrics" => store
                                .metrics
                                .lock()
                                .unwrap()
                                .push(ExportMetricsServiceRequest::decode(body).unwrap()),
                            "/v1/traces" => store
                                .traces
                                .lock()
                                .unwrap()
                                .push(ExportTraceServiceRequest::decode(body).unwrap()),
                            other => panic!("unexpected OTLP path {other}"),
                        }
                        let reply = ExportMetricsServiceResponse::default().encode_to_vec();
                        let mut response = http::Response::new(Full::new(Bytes::from(reply)));
                        response
                            .headers_mut()
                            .insert("content-type", "application/x-protobuf".parse().unwrap());
                        Ok::<_, Infallible>(response)
                    }
                });
            let tls = tls.clone();
            tokio::spawn(async move {
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                    Some(config) => {
                        if let Ok(stream) =
                            tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                        {
                            let _ = builder
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                    }
                }
            });
        }
    });
    (addr, received)
}

fn string(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::IntValue(i) => i.to_string(),
                _ => string(&kv.value)?,
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

/// Every span received so far.
fn spans(received: &Received) -> Vec<Span> {
    received
        .traces
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|rs| rs.scope_spans.iter())
        .flat_map(|ss| ss.spans.iter().cloned())
        .collect()
}

fn probe_spans(received: &Received, check: &str) -> Vec<Span> {
    spans(received)
        .into_iter()
        .filter(|s| {
            s.name == "healthgate.probe"
                && attrs(&s.attributes)
                    .get("healthgate.check.name")
                    .map(String::as_str)
                    == Some(check)
        })
        .collect()
}

fn number(point: &Option<number_data_point::Value>) -> f64 {
    match point {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => f64::NAN,
    }
}

/// The metrics of the latest export, by name.
fn latest(received: &Received) -> Option<(HashMap<String, String>, HashMap<String, Metric>)> {
    let requests = received.metrics.lock().unwrap();
    let last = requests.last()?;
    let rm = last.resource_metrics.first()?;
    let resource = attrs(&rm.resource.as_ref()?.attributes);
    let metrics = rm
        .scope_metrics
        .iter()
        .flat_map(|s| s.metrics.iter().cloned())
        .map(|m| (m.name.clone(), m))
        .collect();
    Some((resource, metrics))
}

/// Sum or gauge value of `metric` at the point whose attributes include `want`.
fn point(metric: &Metric, want: &[(&str, &str)]) -> Option<f64> {
    let points = match metric.data.as_ref()? {
        metric::Data::Sum(s) => &s.data_points,
        metric::Data::Gauge(g) => &g.data_points,
        _ => return None,
    };
    points
        .iter()
        .find(|p| {
            let a = attrs(&p.attributes);
            want.iter()
                .all(|(k, v)| a.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|p| number(&p.value))
}

fn config(otlp: &str, ok: &TestServer, bad: &TestServer) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[telemetry]\nservice_name = \"checkout\"\n[telemetry.otlp]\n{otlp}\ninterval = \"200ms\"\n\
         [defaults]\ninterval = \"100ms\"\nfailure_threshold = 1\n\
         [[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\n\
         [[checks]]\nname = \"legacy\"\ntype = \"http\"\nurl = \"{}\"\ncritical = false\n",
        ok.url("/ok"),
        bad.url("/status/503")
    )
}

async fn assert_delivers(received: &Received, ok: &TestServer, gw: &Gateway) {
    eventually(WITHIN, "an export with failing runs", || async {
        latest(received).is_some_and(|(_, m)| {
            m.get("healthgate.check.runs")
                .and_then(|r| point(r, &[("check", "legacy"), ("category", "status_mismatch")]))
                .is_some()
        })
    })
    .await;
    let (resource, metrics) = latest(received).unwrap();
    assert_eq!(resource["service.name"], "checkout");
    assert!(
        resource.contains_key("service.instance.id") && resource.contains_key("host.name"),
        "{resource:?}"
    );

    let runs = &metrics["healthgate.check.runs"];
    let Some(metric::Data::Sum(sum)) = &runs.data else {
        panic!("runs is not a sum: {runs:?}")
    };
    assert!(sum.is_monotonic);
    assert_eq!(sum.aggregation_temporality, 2, "cumulative");
    let api_runs = point(
        runs,
        &[("check", "api"), ("type", "http"), ("result", "pass")],
    )
    .unwrap();
    let served = ok.counters.requests.load(Ordering::SeqCst) as f64;
    assert!(
        api_runs >= 1.0 && api_runs <= served,
        "exported {api_runs} runs, target served {served}"
    );

    let duration = &metrics["healthgate.check.duration"];
    assert_eq!(duration.unit, "s");
    assert!(matches!(duration.data, Some(metric::Data::Histogram(_))));
    assert_eq!(
        point(&metrics["healthgate.check.up"], &[("check", "api")]),
        Some(1.0)
    );
    assert_eq!(
        point(
            &metrics["healthgate.check.status"],
            &[("check", "legacy"), ("status", "warn")]
        ),
        Some(1.0)
    );
    assert_eq!(
        point(
            &metrics["healthgate.http.status_code"],
            &[("check", "legacy")]
        ),
        Some(503.0)
    );
    assert_eq!(point(&metrics["healthgate.ready"], &[]), Some(1.0));
    assert_eq!(
        point(
            &metrics["healthgate.build.info"],
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(
        point(
            &metrics["healthgate.telemetry.dropped"],
            &[("signal", "metrics")]
        ),
        Some(0.0)
    );

    // The same model scraped: the counter there is at least what was pushed.
    let (_, _, text) = get(gw.admin, "/metrics").await;
    let scraped: f64 = text
        .lines()
        .find(|l| {
            l.starts_with("healthgate_check_runs_total{")
                && l.contains("check=\"api\"")
                && l.contains("result=\"pass\"")
        })
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    assert!(
        scraped >= api_runs,
        "/metrics says {scraped}, OTLP said {api_runs}"
    );
}

#[tokio::test]
async fn metrics_arrive_over_grpc() {
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let (addr, received) = grpc_receiver().await;
    let gw = start_gateway(&config(
        &format!("endpoint = \"http://{addr}\"\nprotocol = \"grpc\""),
        &ok,
        &bad,
    ))
    .await;
    assert_delivers(&received, &ok, &gw).await;
}

#[tokio::test]
async fn metrics_arrive_over_http_protobuf() {
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let (addr, received) = http_receiver().await;
    let gw = start_gateway(&config(
        &format!("endpoint = \"http://{addr}\"\nprotocol = \"http/protobuf\""),
        &ok,
        &bad,
    ))
    .await;
    assert_delivers(&received, &ok, &gw).await;
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn assert_unaffected(otlp: &str) {
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let gw = start_gateway(&config(otlp, &ok, &bad)).await;
    let addr = gw.addr;
    eventually(WITHIN, "ready", || async {
        get(addr, "/readyz").await.0 == http::StatusCode::OK
    })
    .await;
    let pid = gw.child.id().unwrap();
    let rss_before = rss_kib(pid);
    let runs_before = ok.counters.requests.load(Ordering::SeqCst);
    let window = tokio::time::Instant::now();
    let mut slowest = Duration::ZERO;
    // Two seconds of /readyz while exports fail every 200 ms.
    while window.elapsed() < Duration::from_secs(2) {
        let started = tokio::time::Instant::now();
        assert_eq!(get(addr, "/readyz").await.0, http::StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let runs = ok.counters.requests.load(Ordering::SeqCst) - runs_before;
    // interval 100 ms over 2 s: 20 runs on schedule; allow for start-up jitter.
    assert!(
        runs >= 17,
        "only {runs} runs in 2 s with the collector failing"
    );
    assert!(
        slowest < Duration::from_millis(100),
        "slowest /readyz took {slowest:?}"
    );
    let growth = rss_kib(pid).saturating_sub(rss_before);
    assert!(growth < 16 * 1024, "RSS grew by {growth} KiB");
    eventually(WITHIN, "drops counted", || async {
        let text = get(gw.admin, "/metrics").await.2;
        text.lines().any(|l| {
            l.starts_with("healthgate_telemetry_dropped_total{signal=\"metrics\"}")
                && !l.ends_with(" 0")
        })
    })
    .await;
}

#[tokio::test]
async fn a_collector_that_refuses_is_not_in_the_way() {
    let (port, _held) = refusing_port();
    assert_unaffected(&format!(
        "endpoint = \"http://{port}\"\nprotocol = \"grpc\"\ntimeout = \"500ms\""
    ))
    .await;
}

#[tokio::test]
async fn a_collector_that_never_answers_is_not_in_the_way() {
    let (addr, _held) = silent_listener().await;
    assert_unaffected(&format!(
        "endpoint = \"http://{addr}\"\nprotocol = \"http/protobuf\"\ntimeout = \"500ms\""
    ))
    .await;
}

fn trace_config(otlp: &str, traces: &str, ok: &TestServer, bad: &TestServer) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[telemetry.otlp]\n{otlp}\ninterval = \"200ms\"\n[telemetry.traces]\n{traces}\n\
         [defaults]\ninterval = \"100ms\"\nfailure_threshold = 1\n\
         [[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{}\"\n\
         [[checks]]\nname = \"legacy\"\ntype = \"http\"\nurl = \"http://user:secret@{}/status/503?token=abc\"\ncritical = false\n",
        ok.url("/ok"),
        bad.addr
    )
}

#[tokio::test]
async fn probe_runs_and_reloads_arrive_as_spans_over_grpc() {
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let (addr, received) = grpc_receiver().await;
    let gw = start_gateway(&trace_config(
        &format!("endpoint = \"http://{addr}\""),
        "",
        &ok,
        &bad,
    ))
    .await;
    eventually(WITHIN, "legacy probe spans", || {
        std::future::ready(!probe_spans(&received, "legacy").is_empty())
    })
    .await;
    let span = probe_spans(&received, "legacy").remove(0);
    let a = attrs(&span.attributes);
    assert_eq!(a["server.address"], "127.0.0.1");
    assert_eq!(a["server.port"], bad.addr.port().to_string());
    assert_eq!(
        a["url.full"],
        format!(
            "http://127.0.0.1:{}/status/503?token=REDACTED",
            bad.addr.port()
        )
    );
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["http.response.status_code"], "503");
    assert_eq!(a["error.type"], "status_mismatch");
    assert_eq!(a["healthgate.check.result"], "fail");
    assert_eq!(span.kind, 3, "client span");
    assert_eq!(span.status.as_ref().unwrap().code, 2, "error status");
    assert!(
        !format!("{:?}", spans(&received)).contains("secret"),
        "a credential reached a span"
    );

    // Phases are children of the probe span, within it in time.
    let children = |r: &Received| -> Vec<Span> {
        spans(r)
            .into_iter()
            .filter(|s| s.parent_span_id == span.span_id)
            .collect()
    };
    eventually(WITHIN, "phase spans", || {
        std::future::ready(children(&received).len() == 3)
    })
    .await;
    let kids = children(&received);
    let mut names: Vec<&str> = kids.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["body", "connect", "first_byte"],
        "an IP target has no dns phase"
    );
    for child in &kids {
        assert_eq!(child.trace_id, span.trace_id);
        assert!(child.start_time_unix_nano >= span.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= span.end_time_unix_nano);
    }

    gw.signal(nix::sys::signal::Signal::SIGHUP);
    eventually(WITHIN, "a reload span", || {
        std::future::ready(spans(&received).iter().any(|s| {
            s.name == "healthgate.config.reload"
                && attrs(&s.attributes)
                    .get("healthgate.reload.result")
                    .map(String::as_str)
                    == Some("success")
        }))
    })
    .await;
}

#[tokio::test]
async fn only_failures_and_transitions_are_traced_when_asked() {
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let (addr, received) = grpc_receiver().await;
    let _gw = start_gateway(&trace_config(
        &format!("endpoint = \"http://{addr}\""),
        "only_failures_and_transitions = true",
        &ok,
        &bad,
    ))
    .await;
    eventually(WITHIN, "five failed runs traced", || {
        std::future::ready(probe_spans(&received, "legacy").len() >= 5)
    })
    .await;
    let served = ok.counters.requests.load(Ordering::SeqCst);
    assert!(served >= 3, "api ran {served} times");
    let api = probe_spans(&received, "api");
    assert_eq!(
        api.len(),
        1,
        "only api's starting->pass transition is traced"
    );
    assert_eq!(
        attrs(&api[0].attributes)["healthgate.check.transition"],
        "starting->pass"
    );
}

#[tokio::test]
async fn spans_arrive_over_http_protobuf() {
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let (addr, received) = http_receiver().await;
    let _gw = start_gateway(&trace_config(
        &format!("endpoint = \"http://{addr}\"\nprotocol = \"http/protobuf\""),
        "",
        &ok,
        &bad,
    ))
    .await;
    eventually(WITHIN, "api probe spans", || {
        std::future::ready(!probe_spans(&received, "api").is_empty())
    })
    .await;
    let span = probe_spans(&received, "api").remove(0);
    assert_eq!(attrs(&span.attributes)["http.response.status_code"], "200");
}

#[tokio::test]
async fn the_standard_otel_variables_are_honoured() {
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let (addr, received) = grpc_receiver().await;
    // No endpoint in the file: the environment turns export on and names the service.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("healthgate.toml");
    std::fs::write(
        &path,
        config("interval = \"200ms\"", &ok, &bad).replace(
            "interval = \"200ms\"\ninterval = \"200ms\"",
            "interval = \"200ms\"",
        ),
    )
    .unwrap();
    let endpoint = format!("http://{addr}");
    let _gw = start_gateway_env(
        dir,
        &path,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "from-env"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "k8s.pod.name=web-7d4b9,k8s.namespace.name=shop",
            ),
        ],
    )
    .await;
    eventually(WITHIN, "an export", || {
        std::future::ready(latest(&received).is_some())
    })
    .await;
    let (resource, _) = latest(&received).unwrap();
    assert_eq!(
        resource["service.name"], "from-env",
        "OTEL_SERVICE_NAME wins over the file"
    );
    assert_eq!(resource["k8s.pod.name"], "web-7d4b9");
    assert_eq!(resource["k8s.namespace.name"], "shop");
}

#[tokio::test]
async fn metrics_reach_a_tls_collector_with_a_client_certificate() {
    let pki = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("ca.pem", &pki.ca_pem),
        ("client.pem", &pki.client_cert_pem),
        ("client-key.pem", &pki.client_key_pem),
    ];
    for (name, pem) in files {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let (addr, received) = https_receiver(Some(pki.server_mtls.clone())).await;
    let tls = format!(
        "endpoint = \"https://localhost:{}\"\nprotocol = \"http/protobuf\"\n[telemetry.otlp.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
        addr.port(),
        p("ca.pem"),
        p("client.pem"),
        p("client-key.pem")
    );
    // The [telemetry.otlp.tls] table must come after the otlp keys: put interval first.
    let text = config(&tls, &ok, &bad).replace(
        &format!("{tls}\ninterval = \"200ms\""),
        &format!("interval = \"200ms\"\n{tls}"),
    );
    let gw = start_gateway(&text).await;
    assert_delivers(&received, &ok, &gw).await;

    // Without the client certificate the collector refuses: drops are counted.
    let (addr, _received) = https_receiver(Some(pki.server_mtls)).await;
    let tls = format!(
        "endpoint = \"https://localhost:{}\"\nprotocol = \"http/protobuf\"\n[telemetry.otlp.tls]\nca_file = \"{}\"",
        addr.port(),
        p("ca.pem")
    );
    let text = config(&tls, &ok, &bad).replace(
        &format!("{tls}\ninterval = \"200ms\""),
        &format!("interval = \"200ms\"\n{tls}"),
    );
    let gw = start_gateway(&text).await;
    let addr = gw.admin;
    eventually(WITHIN, "drops counted", || async {
        get(addr, "/metrics").await.2.lines().any(|l| {
            l.starts_with("healthgate_telemetry_dropped_total{signal=\"metrics\"}")
                && !l.ends_with(" 0")
        })
    })
    .await;
}

#[tokio::test]
async fn shutdown_with_a_hung_collector_is_bounded() {
    let (ok, bad) = (TestServer::start().await, TestServer::start().await);
    let (addr, _held) = silent_listener().await;
    // No drain wait: this is about the flush.
    let text = config(
        &format!("endpoint = \"http://{addr}\"\nprotocol = \"grpc\"\ntimeout = \"30s\""),
        &ok,
        &bad,
    )
    .replace(
        "[server]\n",
        "[server]\ndrain = { min = \"0s\", observed_probes = 0 }\n",
    );
    let mut gw = start_gateway(&text).await;
    let ready = gw.addr;
    eventually(WITHIN, "ready", || async {
        get(ready, "/readyz").await.0 == http::StatusCode::OK
    })
    .await;
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    // The flush budget is 5 s for metrics and 5 s for traces, whatever the export timeout.
    let status = tokio::time::timeout(Duration::from_secs(15), gw.child.wait())
        .await
        .expect("shutdown was not bounded")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
