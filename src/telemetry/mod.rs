//! What healthgate tells operators about itself: logs, and one metrics model
//! exported as Prometheus text (and OTLP).

pub mod log;
pub mod metrics;
pub mod otlp;
pub mod resource;
