//! The Prometheus text exposition (format 0.0.4) of what the OpenTelemetry
//! SDK collected, written straight from the SDK's data, with no copy of
//! the series in between (a copy of every series, one `String` per label,
//! is megabytes at thousands of checks, which the allocator keeps).
//!
//! The naming is the OpenTelemetry-to-Prometheus convention: names
//! sanitized (`.` to `_`), the unit as a suffix (`s` → `_seconds`, `By` →
//! `_bytes`), `_total` on monotonic sums, non-monotonic sums as gauges, and
//! the resource as `target_info`.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Histogram, Metric, MetricData, ResourceMetrics,
};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// A reader the provider owns and the exposition shares.
#[derive(Debug, Clone)]
pub struct SharedReader(pub Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, _kind: InstrumentKind) -> Temporality {
        Temporality::Cumulative
    }
}

/// The text is handed on in pieces of about this many bytes (a piece ends
/// after the sample that fills it).
pub const CHUNK: usize = 64 * 1024;

/// Writes every metric in `rm`, handing the text to `emit` a [`CHUNK`] at a
/// time and the rest (possibly empty) at the end, so a scrape never holds the
/// whole text (4 MB at 10,000 checks). Stops, returning false, as soon as
/// `emit` does.
pub fn write(rm: &ResourceMetrics, emit: &mut dyn FnMut(String) -> bool) -> bool {
    let mut out = Out {
        text: String::with_capacity(CHUNK + CHUNK / 4),
        emit,
    };
    write_target_info(rm.resource(), &mut out.text);
    for scope in rm.scope_metrics() {
        for metric in scope.metrics() {
            let written = match metric.data() {
                AggregatedMetrics::F64(data) => write_metric(metric, data, &mut out),
                AggregatedMetrics::I64(data) => write_metric(metric, data, &mut out),
                AggregatedMetrics::U64(data) => write_metric(metric, data, &mut out),
            };
            if !written {
                return false;
            }
        }
    }
    let rest = std::mem::take(&mut out.text);
    (out.emit)(rest)
}

/// The whole text of `rm` in one string.
pub fn to_string(rm: &ResourceMetrics) -> String {
    let mut whole = String::new();
    write(rm, &mut |text| {
        whole.push_str(&text);
        true
    });
    whole
}

/// The text being written, and where a full piece goes.
struct Out<'a> {
    text: String,
    emit: &'a mut dyn FnMut(String) -> bool,
}

impl Out<'_> {
    /// Called after each data point: hands the text on once it is a
    /// [`CHUNK`]; false when the reader wants no more.
    fn point_done(&mut self) -> bool {
        if self.text.len() < CHUNK {
            return true;
        }
        let full = std::mem::replace(&mut self.text, String::with_capacity(CHUNK + CHUNK / 4));
        (self.emit)(full)
    }
}

/// A sample value as Prometheus reads it.
trait Number: Copy {
    fn write(self, out: &mut String);
}

impl Number for u64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Number for i64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Number for f64 {
    fn write(self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

fn write_metric<T: Number>(metric: &Metric, data: &MetricData<T>, out: &mut Out<'_>) -> bool {
    let mut name = sanitize(metric.name());
    if let Some(suffix) = unit_suffix(metric.unit()) {
        name.push('_');
        name.push_str(suffix);
    }
    let help = metric.description();
    match data {
        MetricData::Gauge(gauge) => {
            header(&name, help, "gauge", &mut out.text);
            let points = gauge.data_points().map(|p| (p.attributes(), p.value()));
            write_values(&name, points, out)
        }
        MetricData::Sum(sum) => {
            let kind = if sum.is_monotonic() {
                name.push_str("_total");
                "counter"
            } else {
                "gauge"
            };
            header(&name, help, kind, &mut out.text);
            let points = sum.data_points().map(|p| (p.attributes(), p.value()));
            write_values(&name, points, out)
        }
        MetricData::Histogram(histogram) => write_histogram(&name, help, histogram, out),
        // No instrument of healthgate's makes one.
        MetricData::ExponentialHistogram(_) => true,
    }
}

/// One sample a point: gauges and sums.
fn write_values<'a, T: Number, L: Iterator<Item = &'a KeyValue>>(
    name: &str,
    points: impl Iterator<Item = (L, T)>,
    out: &mut Out<'_>,
) -> bool {
    for (labels, value) in points {
        sample(name, "", labels, None, value, &mut out.text);
        if !out.point_done() {
            return false;
        }
    }
    true
}

fn write_histogram<T: Number>(
    name: &str,
    help: &str,
    histogram: &Histogram<T>,
    out: &mut Out<'_>,
) -> bool {
    header(name, help, "histogram", &mut out.text);
    let mut le = String::new();
    for point in histogram.data_points() {
        let text = &mut out.text;
        let mut cumulative = 0;
        for (bound, count) in point.bounds().zip(point.bucket_counts()) {
            cumulative += count;
            le.clear();
            bound.write(&mut le);
            sample(
                name,
                "_bucket",
                point.attributes(),
                Some(&le),
                cumulative,
                text,
            );
        }
        let count = point.count();
        sample(
            name,
            "_bucket",
            point.attributes(),
            Some("+Inf"),
            count,
            text,
        );
        sample(name, "_sum", point.attributes(), None, point.sum(), text);
        sample(name, "_count", point.attributes(), None, count, text);
        if !out.point_done() {
            return false;
        }
    }
    true
}

/// `target_info`: the resource's attributes as labels, value 1.
fn write_target_info(resource: &Resource, out: &mut String) {
    if resource.is_empty() {
        return;
    }
    header("target_info", "Target metadata", "gauge", out);
    let labels: Vec<KeyValue> = resource
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    sample("target_info", "", labels.iter(), None, 1u64, out);
}

fn header(name: &str, help: &str, kind: &str, out: &mut String) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_into(help, false, out);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

fn sample<'a, T: Number>(
    name: &str,
    suffix: &str,
    labels: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
    value: T,
    out: &mut String,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut first = true;
    let mut separator = |out: &mut String| {
        out.push(if first { '{' } else { ',' });
        first = false;
    };
    for kv in labels {
        separator(out);
        sanitize_into(kv.key.as_str(), out);
        out.push_str("=\"");
        match &kv.value {
            Value::String(s) => escape_into(s.as_str(), true, out),
            other => escape_into(&other.as_str(), true, out),
        }
        out.push('"');
    }
    if let Some(le) = le {
        separator(out);
        out.push_str("le=\"");
        out.push_str(le);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    value.write(out);
    out.push('\n');
}

/// Backslash and line feed escaped, and double quotes too in a label value
/// (`quotes`), not in a HELP text.
fn escape_into(value: &str, quotes: bool, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' if quotes => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A metric or label name: what is not `[a-zA-Z0-9_:]` becomes `_`, and a
/// leading digit gets a `_` before it.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 16);
    sanitize_into(name, &mut out);
    out
}

fn sanitize_into(name: &str, out: &mut String) {
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            c
        } else {
            '_'
        }
    }));
}

/// The Prometheus suffix of the units healthgate's instruments use.
fn unit_suffix(unit: &str) -> Option<&'static str> {
    match unit {
        "s" => Some("seconds"),
        "By" => Some("bytes"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_label_values_are_made_safe() {
        assert_eq!(sanitize("healthgate.check.up"), "healthgate_check_up");
        assert_eq!(sanitize("9lives-x"), "_9lives_x");
        let mut out = String::new();
        escape_into("a\\b\"c\nd", true, &mut out);
        assert_eq!(out, "a\\\\b\\\"c\\nd");
        out.clear();
        escape_into("a\\b\"c\nd", false, &mut out);
        assert_eq!(out, "a\\\\b\"c\\nd");
    }

    /// Through the SDK: cumulative buckets, `_sum`/`_count`, unit and
    /// counter suffixes, non-monotonic sums as gauges.
    #[test]
    fn instruments_come_out_as_prometheus_reads_them() {
        use opentelemetry::metrics::MeterProvider as _;
        let reader = Arc::new(ManualReader::builder().build());
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(SharedReader(reader.clone()))
            .build();
        let meter = provider.meter("test");
        let histogram = meter
            .f64_histogram("t.duration")
            .with_unit("s")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        for v in [0.05, 0.5, 0.7, 3.0] {
            histogram.record(v, &[KeyValue::new("check", "a\"b")]);
        }
        meter.u64_counter("t.runs").build().add(2, &[]);
        meter.i64_up_down_counter("t.level").build().add(-3, &[]);
        let mut collected = ResourceMetrics::default();
        reader.collect(&mut collected).expect("collect");
        let out = to_string(&collected);
        for line in [
            "# TYPE t_duration_seconds histogram\n",
            "t_duration_seconds_bucket{check=\"a\\\"b\",le=\"0.1\"} 1\n",
            "t_duration_seconds_bucket{check=\"a\\\"b\",le=\"1\"} 3\n",
            "t_duration_seconds_bucket{check=\"a\\\"b\",le=\"+Inf\"} 4\n",
            "t_duration_seconds_sum{check=\"a\\\"b\"} 4.25\n",
            "t_duration_seconds_count{check=\"a\\\"b\"} 4\n",
            "# TYPE t_runs_total counter\nt_runs_total 2\n",
            "# TYPE t_level gauge\nt_level -3\n",
        ] {
            assert!(out.contains(line), "{line:?} not in:\n{out}");
        }
    }

    #[test]
    fn samples_carry_labels_and_le_in_order() {
        let mut out = String::new();
        let labels = [KeyValue::new("check", "api"), KeyValue::new("otel.x", 3)];
        sample("m", "_bucket", labels.iter(), Some("0.5"), 2u64, &mut out);
        sample(
            "m",
            "_sum",
            std::iter::empty(),
            None,
            f64::INFINITY,
            &mut out,
        );
        assert_eq!(
            out,
            "m_bucket{check=\"api\",otel_x=\"3\",le=\"0.5\"} 2\nm_sum +Inf\n"
        );
    }
}
