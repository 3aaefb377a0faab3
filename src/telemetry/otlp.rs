//! OTLP export of the metrics model: gRPC (tonic) or http/protobuf (hyper
//! over rustls), never in the way of probing.
//!
//! Exports run on the SDK's periodic reader, outside the request and probe
//! paths. A failed export is counted as dropped data points
//! (`healthgate.telemetry.dropped`) and logged at most once per interval;
//! each export is bounded by its timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant as WallInstant;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};

use crate::config::bounded::AtMost;
use crate::config::{OtlpProtocol, OtlpSection, TemporalityKind};

/// Most of a collector's response body read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why OTLP export could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("telemetry.otlp: {0}")]
pub struct OtlpError(String);

/// Telemetry that could not be delivered, by signal.
#[derive(Debug, Default)]
pub struct Dropped {
    /// Metric data points in failed exports.
    pub metrics: AtomicU64,
    /// Spans in failed exports, or refused because the export queue was full.
    pub spans: AtomicU64,
}

/// Whether OTLP export of `signal` (`METRICS`, `TRACES`) is configured, in
/// the file or the environment.
pub fn enabled(settings: &OtlpSection, signal: &str) -> bool {
    settings.endpoint.is_some()
        || [
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"),
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// The periodic reader exporting metrics over OTLP, if enabled. Call inside
/// the tokio runtime: the gRPC channel and the HTTP client live on it.
pub fn metric_reader(
    settings: &OtlpSection,
    dropped: Arc<Dropped>,
) -> Result<Option<PeriodicReader<Counted>>, OtlpError> {
    if !enabled(settings, "METRICS") {
        return Ok(None);
    }
    let exporter = Counted {
        inner: metric_exporter(settings)?,
        dropped,
        interval: settings.interval.get(),
        last_logged: Mutex::new(None),
    };
    tracing::info!(
        endpoint = settings.endpoint.as_deref().unwrap_or("(from OTEL_EXPORTER_OTLP_*)"),
        protocol = ?protocol(settings),
        interval = ?settings.interval.get(),
        "exporting metrics over OTLP"
    );
    Ok(Some(
        PeriodicReader::builder(exporter)
            .with_interval(settings.interval.get())
            .build(),
    ))
}

/// The configured transport: the file, else the environment, else gRPC.
pub fn protocol(settings: &OtlpSection) -> OtlpProtocol {
    settings.protocol.unwrap_or_else(|| {
        let env = std::env::var("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_default();
        if env.starts_with("http") {
            OtlpProtocol::HttpProtobuf
        } else {
            OtlpProtocol::Grpc
        }
    })
}

fn temporality(settings: &OtlpSection) -> Temporality {
    let kind = settings.temporality.or_else(|| {
        match std::env::var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "delta" => Some(TemporalityKind::Delta),
            _ => None,
        }
    });
    match kind {
        Some(TemporalityKind::Delta) => Temporality::Delta,
        _ => Temporality::Cumulative,
    }
}

fn metric_exporter(settings: &OtlpSection) -> Result<MetricExporter, OtlpError> {
    let built = match protocol(settings) {
        OtlpProtocol::Grpc => {
            let builder = MetricExporter::builder()
                .with_tonic()
                .with_temporality(temporality(settings));
            tonic_setup(builder, settings)?.build()
        }
        OtlpProtocol::HttpProtobuf => {
            let builder = MetricExporter::builder()
                .with_http()
                .with_temporality(temporality(settings));
            http_setup(builder, settings, "/v1/metrics")?.build()
        }
    };
    built.map_err(|e| OtlpError(e.to_string()))
}

/// The OTLP span exporter (for `traces`).
pub fn span_exporter(
    settings: &OtlpSection,
) -> Result<opentelemetry_otlp::SpanExporter, OtlpError> {
    let built = match protocol(settings) {
        OtlpProtocol::Grpc => tonic_setup(
            opentelemetry_otlp::SpanExporter::builder().with_tonic(),
            settings,
        )?
        .build(),
        OtlpProtocol::HttpProtobuf => http_setup(
            opentelemetry_otlp::SpanExporter::builder().with_http(),
            settings,
            "/v1/traces",
        )?
        .build(),
    };
    built.map_err(|e| OtlpError(e.to_string()))
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, OtlpError> {
    std::fs::read(path).map_err(|e| OtlpError(format!("{}: {e}", path.display())))
}

/// Endpoint, timeout, metadata and TLS of a gRPC exporter.
fn tonic_setup<B: WithExportConfig + WithTonicConfig>(
    mut builder: B,
    settings: &OtlpSection,
) -> Result<B, OtlpError> {
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    if let Some(timeout) = settings.timeout.map(AtMost::get) {
        builder = builder.with_timeout(timeout);
    }
    if !settings.headers.is_empty() {
        let headers: http::HeaderMap = settings
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.parse::<http::HeaderName>().ok()?, v.parse().ok()?)))
            .collect();
        builder = builder.with_metadata(tonic::metadata::MetadataMap::from_headers(headers));
    }
    let tls = &settings.tls;
    let https = settings
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("https://"));
    if https || tls.ca_file.is_some() || tls.cert_file.is_some() {
        let mut config = tonic::transport::ClientTlsConfig::new();
        config = match &tls.ca_file {
            Some(ca) => config.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
            None => config.with_webpki_roots(),
        };
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            config = config.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        builder = builder.with_tls_config(config);
    }
    Ok(builder)
}

/// Endpoint (`path` appended to the configured base), timeout, headers and
/// the runtime-spawning client of an http/protobuf exporter.
fn http_setup<B: WithExportConfig + WithHttpConfig>(
    mut builder: B,
    settings: &OtlpSection,
    path: &str,
) -> Result<B, OtlpError> {
    let timeout = settings.timeout.map_or(DEFAULT_TIMEOUT, AtMost::get);
    builder = builder
        .with_http_client(SpawningClient::new(settings, timeout)?)
        .with_timeout(timeout);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(format!("{}{path}", endpoint.trim_end_matches('/')));
    }
    if !settings.headers.is_empty() {
        let headers: HashMap<String, String> = settings.headers.clone().into_iter().collect();
        builder = builder.with_headers(headers);
    }
    Ok(builder)
}

/// The OTLP exporter, counting what failed exports lose and logging failures
/// at most once per export interval.
pub struct Counted {
    inner: MetricExporter,
    dropped: Arc<Dropped>,
    interval: Duration,
    last_logged: Mutex<Option<WallInstant>>,
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counted(MetricExporter)")
    }
}

impl Counted {
    fn failed(&self, points: u64, error: &OTelSdkError) {
        self.dropped.metrics.fetch_add(points, Ordering::Relaxed);
        let Ok(mut last) = self.last_logged.lock() else {
            return;
        };
        // An hour of a down collector is a handful of lines, not thousands.
        let now = WallInstant::now();
        if last
            .is_none_or(|at| now.duration_since(at) >= self.interval.max(Duration::from_secs(60)))
        {
            *last = Some(now);
            tracing::warn!(%error, dropped = points, "OTLP metrics export failed; probing is unaffected");
        }
    }
}

impl PushMetricExporter for Counted {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if let Err(error) = &result {
            self.failed(data_points(metrics), error);
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

fn data_points(metrics: &ResourceMetrics) -> u64 {
    fn count<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    let total: usize = metrics
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .map(|metric| match metric.data() {
            AggregatedMetrics::F64(d) => count(d),
            AggregatedMetrics::U64(d) => count(d),
            AggregatedMetrics::I64(d) => count(d),
        })
        .sum();
    total as u64
}

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// An OTLP/HTTP client on hyper and rustls whose requests run on the app's
/// runtime: the SDK exports from its own thread, where a plain hyper client
/// would find no reactor (opentelemetry-rust#2673).
#[derive(Debug, Clone)]
struct SpawningClient {
    client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl SpawningClient {
    fn new(settings: &OtlpSection, timeout: Duration) -> Result<Self, OtlpError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| OtlpError("the HTTP exporter must be built inside the runtime".into()))?;
        let tls = client_tls(settings)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .build(connector);
        Ok(Self {
            client,
            runtime,
            timeout,
        })
    }
}

fn client_tls(settings: &OtlpSection) -> Result<rustls::ClientConfig, OtlpError> {
    use crate::config::pem;
    let error = |e: &dyn std::fmt::Display| OtlpError(format!("tls: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    match &settings.tls.ca_file {
        Some(ca) => {
            roots.add_parsable_certificates(pem::certificates(ca).map_err(|e| error(&e))?);
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| error(&e))?
    .with_root_certificates(roots);
    match (&settings.tls.cert_file, &settings.tls.key_file) {
        (Some(cert), Some(key)) => {
            let certs = pem::certificates(cert).map_err(|e| error(&e))?;
            let key = pem::private_key(key).map_err(|e| error(&e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| error(&e))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

#[async_trait::async_trait]
impl HttpClient for SpawningClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move {
            let exchange = async {
                let (parts, body) = request.into_parts();
                let response = client
                    .request(Request::from_parts(parts, Full::new(body)))
                    .await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE_BYTES)
                    .collect()
                    .await?
                    .to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}").into()),
            }
        });
        task.await?
    }
}
