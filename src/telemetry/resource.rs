//! Who is reporting: the OpenTelemetry resource shared by metrics and traces.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::config::TelemetrySection;

/// `service.name` (`OTEL_SERVICE_NAME`, else the config's, else `healthgate`),
/// `service.instance.id` (random per process), `host.name`, `service.version`,
/// plus whatever `OTEL_RESOURCE_ATTRIBUTES` adds (the way Kubernetes pod and
/// namespace arrive, from the downward API).
pub fn resource(settings: &TelemetrySection) -> Resource {
    let mut builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name(
            settings
                .service_name
                .clone()
                .unwrap_or_else(|| "healthgate".to_owned()),
        );
    }
    let instance: u128 = rand::random();
    let mut attributes = vec![
        KeyValue::new("service.instance.id", format!("{instance:032x}")),
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    ];
    if let Ok(host) = nix::unistd::gethostname() {
        attributes.push(KeyValue::new(
            "host.name",
            host.to_string_lossy().into_owned(),
        ));
    }
    builder.with_attributes(attributes).build()
}
