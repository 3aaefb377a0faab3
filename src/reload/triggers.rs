//! What makes healthgate look at its config again: a file event in the
//! config's directory (debounced), SIGHUP, or the periodic poll.
//!
//! The *directory* is watched, non-recursively, never the file: editors save
//! through a temp file and a rename, and Kubernetes updates a ConfigMap by
//! swapping a `..data` symlink, so the file's own name may see no event at
//! all (notify-rs/notify#531, kubernetes/kubernetes#112677). Any event in the
//! directory is a reason to re-read; the content hash decides the rest.
//!
//! A watch dies with its directory. When the directory is deleted (or
//! replaced by a new one), the watch is re-established as soon as the
//! directory is back, retried with a backoff of 1 s doubling to 30 s, and
//! both are logged; the first look after it is a file event.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};

use crate::config::ReloadSection;

/// Longest a burst of events can delay a reload, however long it goes on.
const MAX_SETTLE: Duration = Duration::from_secs(2);
/// First wait before watching a vanished directory again; it doubles.
const REWATCH_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two tries to watch a vanished directory again.
const REWATCH_MAX: Duration = Duration::from_secs(30);

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
    dir: PathBuf,
    events: Option<mpsc::Receiver<()>>,
    watcher: Option<RecommendedWatcher>,
    /// Set by the watcher when the directory is no longer there.
    gone: Arc<AtomicBool>,
    /// While the watch is lost: when to try again, and the wait after that.
    rewatch: Option<(Instant, Duration)>,
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
            _ => PathBuf::from("."),
        };
        let hangup = signal(SignalKind::hangup())
            .map_err(|error| tracing::warn!(%error, "cannot listen for SIGHUP; reload by file change only"))
            .ok();
        let mut triggers = Self {
            dir,
            events: None,
            watcher: None,
            gone: Arc::default(),
            rewatch: None,
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
        let lost = self.rewatch.is_some();
        if settings.watch && !lost && (first || !self.settings.watch || self.watcher.is_none()) {
            match self.start_watching() {
                Ok(()) => {
                    tracing::info!(dir = %self.dir.display(), "watching the config's directory for changes");
                }
                Err(error) => tracing::warn!(
                    dir = %self.dir.display(), %error,
                    "cannot watch the config's directory; relying on reload.poll_interval and SIGHUP"
                ),
            }
        } else if !settings.watch {
            self.watcher = None;
            self.events = None;
            self.rewatch = None;
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

    fn start_watching(&mut self) -> notify::Result<()> {
        self.gone.store(false, Ordering::Relaxed);
        let (watcher, events) = watch(&self.dir, self.gone.clone())?;
        self.watcher = Some(watcher);
        self.events = Some(events);
        Ok(())
    }

    /// The next reason to re-read the config. Cancel-safe.
    pub async fn next(&mut self) -> Trigger {
        loop {
            tokio::select! {
                Some(()) = recv(&mut self.events) => {
                    if self.lost() {
                        continue;
                    }
                    self.settle().await;
                    self.lost();
                    return Trigger::FileEvent;
                }
                Some(()) = hangup(&mut self.hangup) => return Trigger::Signal,
                () = tick(&mut self.poll) => return Trigger::Poll,
                () = retry(self.rewatch) => {
                    if self.watch_again() {
                        return Trigger::FileEvent;
                    }
                }
            }
        }
    }

    /// Whether the watched directory has gone; if so the dead watch is
    /// dropped and tries to watch it again begin.
    fn lost(&mut self) -> bool {
        if !self.gone.load(Ordering::Relaxed) || self.rewatch.is_some() {
            return false;
        }
        self.watcher = None;
        self.events = None;
        self.rewatch = Some((Instant::now() + REWATCH_FIRST, REWATCH_FIRST));
        tracing::warn!(
            dir = %self.dir.display(),
            "the config's directory is gone: watching it again once it is back; until then \
             reload.poll_interval and SIGHUP still reload"
        );
        true
    }

    /// Tries to watch the directory again; on failure waits longer next time.
    fn watch_again(&mut self) -> bool {
        let Some((_, wait)) = self.rewatch else {
            return false;
        };
        if self.dir.is_dir() && self.start_watching().is_ok() {
            self.rewatch = None;
            tracing::info!(dir = %self.dir.display(), "watching the config's directory again");
            return true;
        }
        let wait = (wait * 2).min(REWATCH_MAX);
        self.rewatch = Some((Instant::now() + wait, wait));
        false
    }

    /// Waits until no event came for `debounce` (at most [`MAX_SETTLE`]).
    async fn settle(&mut self) {
        let give_up = Instant::now() + MAX_SETTLE;
        let Some(events) = self.events.as_mut() else {
            return;
        };
        loop {
            let quiet_until = (Instant::now() + self.settings.debounce.get()).min(give_up);
            match tokio::time::timeout_at(quiet_until, events.recv()).await {
                Ok(Some(())) if Instant::now() < give_up => continue,
                _ => return,
            }
        }
    }
}

/// A non-recursive watch on `dir` whose events arrive, coalesced, on a
/// queue of one; `gone` is set when an event finds `dir` no longer there.
fn watch(
    dir: &Path,
    gone: Arc<AtomicBool>,
) -> notify::Result<(RecommendedWatcher, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let watched = dir.to_owned();
    // The directory watched is this inode: if the path stops naming it
    // (deleted, moved away, replaced), the watch sees nothing more.
    let identity = |dir: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir)
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| (m.dev(), m.ino()))
    };
    let original = identity(dir);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Our own reads of the file are not changes.
            Ok(event) if matches!(event.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) =>
                {}
            Ok(_) => {
                if identity(&watched) != original {
                    gone.store(true, Ordering::Relaxed);
                }
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

async fn retry(rewatch: Option<(Instant, Duration)>) {
    match rewatch {
        Some((at, _)) => tokio::time::sleep_until(at).await,
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
