//! Runs on demand (`POST /api/checks/{name}/run`): a check's task is woken
//! to run at once, outside its schedule. A request that arrives while a run
//! is in flight joins it: the task takes every request made before a run
//! ends as answered by that run, so on-demand runs never overlap each
//! other or a scheduled run, and a burst of requests costs one run.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// One check's doorbell. Waited on by a future of one pointer ([`Asked`]):
/// each of 10,000 sleeping tasks holds one (tokio's `Notified` is 7 times
/// that).
#[derive(Debug, Default)]
pub(super) struct Trigger {
    asked: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// Resolves once a run is asked for.
pub(super) struct Asked<'a>(&'a Trigger);

impl Future for Asked<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let trigger = self.0;
        if trigger.asked.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *trigger.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // Asked between the first look and the registration: not missed.
        if trigger.asked.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Trigger {
    /// Resolves once a run is asked for.
    pub(super) fn asked(&self) -> Asked<'_> {
        Asked(self)
    }

    /// A run ended: every request made so far is answered by it.
    pub(super) fn answered(&self) {
        self.asked.store(false, Ordering::Release);
    }

    fn ask(&self) {
        self.asked.store(true, Ordering::Release);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Why a check cannot be run on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotRun {
    /// No such check.
    #[error("no such check")]
    Unknown,
    /// A push check: it runs when its reporter reports.
    #[error("a push check runs when it reports; nothing to probe")]
    Push,
}

/// Every probed check's trigger, by name, with its timeout; shared with the
/// admin listener.
#[derive(Clone, Default)]
pub struct Triggers(Arc<Mutex<HashMap<Arc<str>, Entry>>>);

#[derive(Clone)]
enum Entry {
    Probed(Arc<Trigger>, Duration),
    Push,
}

impl Triggers {
    /// Asks `name` to run now (or joins its run in flight). Returns the
    /// check's timeout: the run ends within it.
    pub fn run(&self, name: &str) -> Result<Duration, NotRun> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(name) {
            Some(Entry::Probed(trigger, timeout)) => {
                trigger.ask();
                Ok(*timeout)
            }
            Some(Entry::Push) => Err(NotRun::Push),
            None => Err(NotRun::Unknown),
        }
    }

    /// A new trigger for `name`, replacing any earlier one.
    pub(super) fn open(&self, name: &Arc<str>, timeout: Duration) -> Arc<Trigger> {
        let trigger = Arc::new(Trigger::default());
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(name.clone(), Entry::Probed(trigger.clone(), timeout));
        trigger
    }

    /// Marks `name` as a push check.
    pub(super) fn push(&self, name: &Arc<str>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(name.clone(), Entry::Push);
    }

    /// Keeps only the triggers of `names`.
    pub(super) fn retain(&self, names: &std::collections::HashSet<&str>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|name, _| names.contains(&**name));
    }
}
