//! What exec runs leave behind. A run's command gets its own process group,
//! killed whole when the run ends; a descendant that leaves the group on
//! purpose (`setsid`, a daemon's double fork) escapes that kill. With
//! [`adopt`], healthgate is the child subreaper of its descendants (Linux),
//! so such a process, once its parent exits, becomes healthgate's child
//! instead of init's. After every run, every child of healthgate that no
//! run spawned is killed (with its process group) and reaped.
//!
//! Only processes that became healthgate's children by adoption are
//! touched: the commands runs spawn are reaped by their runs (tokio).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use rustix::process::{Pid, Signal, WaitOptions};

/// Pids of commands runs spawned, most recent last. A run that finishes
/// removes its own; one cancelled midway leaves it to tokio's reaper, and
/// its pid stays here (at most this many are kept) so the sweep never
/// takes a child tokio still has to wait for.
const MAX_SPAWNED: usize = 4096;

#[derive(Default)]
struct Children {
    adopting: bool,
    spawned: HashSet<i32>,
    order: VecDeque<i32>,
}

static CHILDREN: Mutex<Option<Children>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Children) -> T) -> T {
    let mut guard = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Children::default))
}

/// Makes healthgate the child subreaper of its descendants, so that what an
/// exec run leaves behind can be found and killed.
pub fn adopt() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
        with(|c| c.adopting = true);
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    Err(std::io::Error::other("no child subreaper on this platform"))
}

/// Spawns `command`, recording its pid as a run's own child.
pub(crate) fn spawn(
    command: &mut tokio::process::Command,
) -> std::io::Result<tokio::process::Child> {
    // Held across the spawn: a sweep never sees the child before it is recorded.
    let mut guard = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let children = guard.get_or_insert_with(Children::default);
    let child = command.spawn()?;
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        children.spawned.insert(pid);
        children.order.push_back(pid);
        while children.order.len() > MAX_SPAWNED {
            if let Some(old) = children.order.pop_front() {
                children.spawned.remove(&old);
            }
        }
    }
    Ok(child)
}

/// The run that spawned `pid` has reaped it: kills and reaps whatever was
/// adopted meanwhile. Returns how many processes were killed.
pub(crate) fn finished(pid: Option<u32>) -> usize {
    let pid = pid.and_then(|p| i32::try_from(p).ok());
    let adopting = with(|c| {
        if let Some(pid) = pid
            && c.spawned.remove(&pid)
        {
            c.order.retain(|p| *p != pid);
        }
        c.adopting
    });
    if !adopting {
        return 0;
    }
    // Read before the lock is taken again: a child that a run spawns
    // meanwhile is either not listed yet or already recorded.
    let listed = children();
    let orphans: Vec<i32> = with(|c| {
        listed
            .into_iter()
            .filter(|p| !c.spawned.contains(p))
            .collect()
    });
    let mut killed = 0;
    for orphan in orphans {
        let Some(pid) = Pid::from_raw(orphan) else {
            continue;
        };
        // Looked at before the kill: the group's SIGKILL can turn it into a
        // zombie at once, and a process that was alive counts as killed.
        let alive = !zombie(orphan);
        // Its group too: a daemon's own children share its new group.
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        if rustix::process::kill_process(pid, Signal::KILL).is_ok() && alive {
            killed += 1;
        }
        // A zombie is reaped now; one still dying, at the next sweep.
        let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
    }
    if killed > 0 {
        tracing::warn!(
            killed,
            "killed processes an exec check's command left behind outside its process group \
             (setsid or a daemon)"
        );
    }
    killed
}

/// Whether `pid` has exited and waits to be reaped.
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            == Some('Z')
    })
}

/// healthgate's children, from `/proc/self/task/*/children`.
fn children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids
}
