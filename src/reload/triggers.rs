//! What makes healthgate look at its config again: a file event in the
//! config's directory (debounced), SIGHUP, or the periodic poll.
//!
//! The *directory* is watched, non-recursively, never the file: editors save
//! through a temp file and a rename, and Kubernetes updates a ConfigMap by
//! swapping a `..data` symlink, so the file's own name may see no event at
//! all (notify-rs/notify#531, kubernetes/kubernetes#112677). Any event in the
//! directory is a reason to re-read; the content hash decides the rest.

use std::path::Path;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};

use crate::config::model::ReloadSection;

/// Longest a burst of events can delay a reload, however long it goes on.
const MAX_SETTLE: Duration = Duration::from_secs(2);

/// Why a reload is being tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Something changed in the config's directory (after the burst settled).
    FileEvent,
    /// SIGHUP: reload even if the content looks unchanged.
    Signal,
    /// The periodic poll.
    Poll,
}

/// The merged sources of [`Trigger`]s.
pub struct Triggers {
    dir: std::path::PathBuf,
    events: Option<mpsc::Receiver<()>>,
    watcher: Option<RecommendedWatcher>,
    hangup: Option<Signal>,
    poll: Option<Interval>,
    settings: ReloadSection,
}

impl Triggers {
    /// Watches the directory holding `path` (if `settings.watch`), listens
    /// for SIGHUP, and polls every `settings.poll_interval` (unless zero).
    pub fn new(path: &Path, settings: &ReloadSection) -> Self {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        let hangup = signal(SignalKind::hangup())
            .map_err(|error| tracing::warn!(%error, "cannot listen for SIGHUP; reload by file change only"))
            .ok();
        let mut triggers = Self {
            dir,
            events: None,
            watcher: None,
            hangup,
            poll: None,
            settings: settings.clone(),
        };
        triggers.configure(settings, true);
        triggers
    }

    /// Follows changed `[reload]` settings.
    pub fn update(&mut self, settings: &ReloadSection) {
        if *settings != self.settings {
            self.configure(settings, false);
        }
    }

    fn configure(&mut self, settings: &ReloadSection, first: bool) {
        if settings.watch && (first || !self.settings.watch || self.watcher.is_none()) {
            match watch(&self.dir) {
                Ok((watcher, events)) => {
                    tracing::info!(dir = %self.dir.display(), "watching the config's directory for changes");
                    self.watcher = Some(watcher);
                    self.events = Some(events);
                }
                Err(error) => tracing::warn!(
                    dir = %self.dir.display(), %error,
                    "cannot watch the config's directory; relying on reload.poll_interval and SIGHUP"
                ),
            }
        } else if !settings.watch {
            self.watcher = None;
            self.events = None;
        }
        if first || settings.poll_interval != self.settings.poll_interval {
            self.poll = (!settings.poll_interval.is_zero()).then(|| {
                let mut poll = interval_at(
                    Instant::now() + settings.poll_interval,
                    settings.poll_interval,
                );
                poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
                poll
            });
        }
        self.settings = settings.clone();
    }

    /// The next reason to re-read the config. Cancel-safe.
    pub async fn next(&mut self) -> Trigger {
        tokio::select! {
            Some(()) = recv(&mut self.events) => {
                self.settle().await;
                Trigger::FileEvent
            }
            Some(()) = hangup(&mut self.hangup) => Trigger::Signal,
            () = tick(&mut self.poll) => Trigger::Poll,
        }
    }

    /// Waits until no event came for `debounce` (at most [`MAX_SETTLE`]).
    async fn settle(&mut self) {
        let give_up = Instant::now() + MAX_SETTLE;
        let Some(events) = self.events.as_mut() else {
            return;
        };
        loop {
            let quiet_until = (Instant::now() + self.settings.debounce).min(give_up);
            match tokio::time::timeout_at(quiet_until, events.recv()).await {
                Ok(Some(())) if Instant::now() < give_up => continue,
                _ => return,
            }
        }
    }
}

/// A non-recursive watch on `dir` whose events arrive, coalesced, on a queue of one.
fn watch(dir: &Path) -> notify::Result<(RecommendedWatcher, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Our own reads of the file are not changes.
            Ok(event) if matches!(event.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) =>
                {}
            Ok(_) => {
                let _ = tx.try_send(());
            }
            Err(error) => tracing::debug!(%error, "config watcher error"),
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok((watcher, rx))
}

async fn recv(events: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

async fn hangup(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

async fn tick(poll: &mut Option<Interval>) {
    match poll {
        Some(poll) => {
            poll.tick().await;
        }
        None => std::future::pending().await,
    }
}
