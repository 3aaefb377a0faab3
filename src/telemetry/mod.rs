//! What healthgate tells operators about itself: logs (metrics and traces follow).

pub mod log;
