//! What acts on events: notifiers (webhook, Alertmanager) and actions
//! (commands on failure and recovery). Each reads the bus through its own
//! bounded queue ([`crate::health::events`]): the notifier `ops` as the
//! consumer `notifier:ops`, the actions as `actions`.
//!
//! A reload keeps a notifier whose settings did not change (its pacing
//! and its firing alerts with it), restarts one that changed, and stops
//! one removed. The actions keep their rate limits across reloads.

pub mod actions;
pub mod alertmanager;
pub mod coalesce;
pub mod config;
pub mod deliver;
pub mod hold;
pub mod notifier;
pub mod stats;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::TelemetrySection;
use crate::health::Bus;
use config::{Acting, Notifier};
pub use stats::Stats;

/// The events the actions may hold before dropping (counted).
const ACTIONS_QUEUE: usize = 256;

/// Which gateway is speaking: in webhook bodies and alert labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The host name (in Kubernetes, the pod's name).
    pub host: String,
    /// `OTEL_SERVICE_NAME`, else `telemetry.service_name`, else `healthgate`.
    pub service: String,
}

impl Identity {
    /// This process's.
    pub fn of(telemetry: &TelemetrySection) -> Self {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let service = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| telemetry.service_name.clone())
            .unwrap_or_else(|| "healthgate".to_owned());
        Self { host, service }
    }
}

/// A task aborted when dropped.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The running consumers of the bus.
pub struct Consumers {
    bus: Bus,
    stats: Arc<Stats>,
    who: Arc<Identity>,
    notifiers: HashMap<Arc<str>, (Notifier, Task)>,
    acting: watch::Sender<Arc<Acting>>,
    actions: Option<Task>,
}

impl Consumers {
    /// Starts what `acting` configures.
    pub fn start(bus: Bus, acting: Acting, who: Identity) -> Self {
        let mut consumers = Self {
            bus,
            stats: Arc::default(),
            who: Arc::new(who),
            notifiers: HashMap::new(),
            acting: watch::Sender::new(Arc::default()),
            actions: None,
        };
        consumers.apply(acting);
        consumers
    }

    /// What they did, for the metrics.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Moves to a new configuration (see the module's doc).
    pub fn apply(&mut self, acting: Acting) {
        let mut old = std::mem::take(&mut self.notifiers);
        for notifier in &acting.notifiers {
            let name = notifier.name.clone();
            let kept = old.remove(&name).filter(|(n, _)| n == notifier);
            let entry = kept.unwrap_or_else(|| {
                let queue = self.bus.attach(&consumer(&name), notifier.queue);
                let task = tokio::spawn(notifier::run(
                    notifier.clone(),
                    queue,
                    self.who.clone(),
                    self.stats.clone(),
                ));
                (notifier.clone(), Task(task))
            });
            self.notifiers.insert(name, entry);
        }
        for name in old.keys() {
            self.bus.detach(&consumer(name));
        }
        self.stats
            .retain_notifiers(|n| self.notifiers.contains_key(n));
        let wants_actions = acting.has_actions();
        self.acting.send_replace(Arc::new(Acting {
            notifiers: Vec::new(),
            ..acting
        }));
        if wants_actions && self.actions.is_none() {
            let queue = self.bus.attach("actions", ACTIONS_QUEUE);
            let task = tokio::spawn(actions::run(
                queue,
                self.acting.subscribe(),
                self.stats.clone(),
            ));
            self.actions = Some(Task(task));
        }
    }
}

/// The bus consumer name of a notifier.
fn consumer(notifier: &str) -> String {
    format!("notifier:{notifier}")
}
