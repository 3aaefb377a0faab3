//! The hot paths, each measured alone: answering verdict endpoints from a
//! snapshot, publishing a snapshot, recording one result into the state
//! machine and the metrics model, rendering `/metrics`, loading a large
//! config, a listener's connection table on accept, publishing one event
//! to its consumers, the health score of a snapshot and the status page.
//! Run: `cargo bench --bench hot_paths`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use healthgate::config::{Change, Config, load_str};
use healthgate::health::{Health, Published, Score, Slot};
use healthgate::probe::{Category, Outcome};
use healthgate::server::routes;
use healthgate::telemetry::metrics::Metrics;
use http::{Method, Uri};
use tokio::time::Instant;

/// A config of `n` checks, alternating http and tcp.
fn config_text(n: usize) -> String {
    let mut text = String::from("[defaults]\ninterval = \"1s\"\n");
    for i in 0..n {
        if i % 2 == 0 {
            text.push_str(&format!(
                "[[checks]]\nname = \"c{i}\"\ntype = \"http\"\nurl = \"http://127.0.0.1:8000/health/{i}\"\n\
                 expect.status = [\"2xx\"]\ngroups = [\"readiness\", \"liveness\"]\n"
            ));
        } else {
            text.push_str(&format!(
                "[[checks]]\nname = \"c{i}\"\ntype = \"tcp\"\naddress = \"127.0.0.1:{}\"\n",
                1000 + i % 60000
            ));
        }
    }
    text
}

fn config(n: usize) -> Config {
    load_str(Path::new("bench.toml"), &config_text(n)).expect("a valid bench config")
}

/// The state of `n` checks, each with one passing result recorded.
fn health(n: usize) -> Health {
    let slots: Vec<Slot> = config(n)
        .checks
        .into_iter()
        .map(|check| Slot {
            check,
            generation: 1,
            change: Change::Added,
        })
        .collect();
    let now = Instant::now();
    let mut health = Health::new(&slots, now);
    for slot in &slots {
        health.record(&slot.check.name, 1, &passed(), now, SystemTime::now());
    }
    health
}

/// The metrics pipeline as the gateway builds it, without OTLP.
fn metrics() -> Metrics {
    Metrics::new(
        opentelemetry_sdk::Resource::builder_empty().build(),
        None,
        Arc::default(),
    )
    .expect("metrics")
}

fn passed() -> Outcome {
    let mut outcome = Outcome::pass("status 200");
    outcome.duration = Duration::from_micros(850);
    outcome.http_status = Some(200);
    outcome
}

fn endpoints(c: &mut Criterion) {
    let mut group = c.benchmark_group("answer");
    let snapshot = health(100).snapshot();
    for path in ["/readyz", "/livez", "/health", "/readyz?verbose"] {
        let uri: Uri = path.parse().expect("a path");
        group.bench_function(BenchmarkId::new("100 checks", path), |b| {
            b.iter(|| black_box(routes::respond(black_box(&snapshot), &Method::GET, &uri)))
        });
    }
    group.finish();
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish snapshot");
    for n in [1, 100, 10_000] {
        let mut health = health(n);
        let published = Published::new(health.snapshot());
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| published.store(health.snapshot()))
        });
    }
    group.finish();
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record one result");
    let n = 1000;
    let mut health = health(n);
    let metrics = metrics();
    let observer = metrics.observer();
    let names: Vec<Arc<str>> = config(n).checks.iter().map(|c| c.name.clone()).collect();
    let outcome = passed();
    let mut i = 0;
    group.bench_function("state machine + metrics, 1000 checks", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            let now = Instant::now();
            let transition = health.record(&names[i], 1, &outcome, now, SystemTime::now());
            if let Some(view) = health.current(&names[i], 1) {
                observer.on_result(view, &outcome, transition);
            }
        })
    });
    group.bench_function("state machine only, 1000 checks", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(health.record(&names[i], 1, &outcome, Instant::now(), SystemTime::now()))
        })
    });
    group.finish();
}

fn render_metrics(c: &mut Criterion) {
    let n = 1000;
    let mut health = health(n);
    let metrics = metrics();
    let observer = metrics.observer();
    let failed = Outcome::fail(Category::ConnectRefused, "refused");
    for check in config(n).checks {
        for outcome in [&passed(), &failed] {
            let transition =
                health.record(&check.name, 1, outcome, Instant::now(), SystemTime::now());
            if let Some(view) = health.current(&check.name, 1) {
                observer.on_result(view, outcome, transition);
            }
        }
    }
    metrics.watch(Published::new(health.snapshot()));
    let size = metrics.render().len();
    let mut group = c.benchmark_group("render /metrics");
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("1000 checks", |b| b.iter(|| black_box(metrics.render())));
    group.finish();
}

fn load_config(c: &mut Criterion) {
    let text = config_text(10_000);
    let mut group = c.benchmark_group("load and validate config");
    group.sample_size(10);
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10000 checks", |b| {
        b.iter(|| black_box(load_str(Path::new("bench.toml"), &text).expect("valid")))
    });
    group.finish();
}

/// What every accepted connection costs the table: entering it and leaving
/// it, with 1,000 others open, and at the cap, where the oldest idle one
/// is shed to make room.
fn connection_table(c: &mut Criterion) {
    use healthgate::server::conns::Table;
    let mut group = c.benchmark_group("connection table");
    let table = Table::new("lb", 1024, Arc::default());
    let open: Vec<_> = (0..1000).map(|_| table.admit()).collect();
    group.bench_function("admit and close, 1000 open", |b| {
        b.iter(|| drop(black_box(table.admit())))
    });
    drop(open);
    let full = Table::new("lb", 1024, Arc::default());
    let mut open: std::collections::VecDeque<_> = (0..1024).map(|_| full.admit()).collect();
    group.bench_function("admit at the cap, shedding the oldest idle", |b| {
        b.iter(|| {
            open.push_back(full.admit());
            drop(open.pop_front());
        })
    });
    group.finish();
}

/// What a status change costs the collector: one event numbered, kept in
/// the ring and offered to every consumer's queue (two notifiers and the
/// actions; the queues are drained so none is full).
fn event(c: &mut Criterion) {
    use healthgate::health::{Bus, EventKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _guard = runtime.enter();
    let bus = Bus::default();
    let mut queues: Vec<_> = ["notifier:hook", "notifier:am", "actions"]
        .iter()
        .map(|name| bus.attach(name, 256))
        .collect();
    let mut group = c.benchmark_group("event");
    group.bench_function("publish to 3 consumers and the ring", |b| {
        b.iter(|| {
            let kind = EventKind::Reload {
                successful: true,
                message: String::from("applied: 1 changed"),
                removed: std::sync::Arc::new([]),
            };
            black_box(bus.publish(kind, SystemTime::now()));
            for queue in &mut queues {
                while queue.try_recv().is_ok() {}
            }
        })
    });
    group.finish();
}

/// The score is computed into every snapshot published; the status page
/// is rendered per request (and per re-render of an open page).
fn score_and_page(c: &mut Criterion) {
    let mut group = c.benchmark_group("score");
    for n in [100, 10_000] {
        let snapshot = health(n).snapshot();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(Score::of(black_box(&snapshot.checks))))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("status page");
    let snapshot = health(1000).snapshot();
    group.bench_function("1,000 checks", |b| {
        b.iter(|| {
            black_box(healthgate::server::status::page(
                black_box(&snapshot),
                &[],
                None,
            ))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    score_and_page,
    event,
    endpoints,
    publish,
    record,
    render_metrics,
    load_config,
    connection_table
);
criterion_main!(benches);
