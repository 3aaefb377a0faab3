//! The store itself: one redb file, `healthgate.redb` in `state.dir`.
//! redb is transactional and copy-on-write: a batch is one write
//! transaction, committed with an fsync, so a kill -9 at any moment loses
//! at most the batch being written and never leaves a torn file. A file
//! that does not open (damaged, or written by another schema) is renamed
//! aside, reported, and a new one started; the gateway never stops for it.
//!
//! Tables: `rollups` ((check, hour start in Unix seconds) -> [`Rollup`]),
//! `transitions` ((check, Unix microseconds) -> from, to), `meta`
//! (`schema`). Verdicts are stored as checks named `/livez`, `/readyz` and
//! `/startupz` (no check name can start with `/`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Builder, ConcurrencyMode, Database, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use super::rollup::{HOUR, Rollup};
use crate::health::Status;

/// The file's name in `state.dir`.
pub const FILE: &str = "healthgate.redb";
/// The schema this version writes; a file of another is set aside.
const SCHEMA: u64 = 1;
/// Set-aside files kept (the oldest beyond are deleted).
const KEEP_ASIDE: usize = 3;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ROLLUPS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("rollups");
const TRANSITIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("transitions");

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb refused or failed.
    #[error("state store {path}: {message}")]
    Db {
        /// The file.
        path: PathBuf,
        /// redb's error.
        message: String,
    },
    /// The file could not be created or moved.
    #[error("state store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Why a store did not open.
enum Unopened {
    /// The file is not one this healthgate can read: set it aside.
    Unreadable(StoreError),
    /// The file may be fine: locked, or on a disk that refuses.
    Unavailable(StoreError),
}

impl Unopened {
    fn into_error(self) -> StoreError {
        match self {
            Unopened::Unreadable(e) | Unopened::Unavailable(e) => e,
        }
    }
}

/// One batch of what happened since the last.
#[derive(Debug, Default)]
pub struct Batch {
    /// Runs, by check and hour.
    pub rollups: Vec<((Arc<str>, u64), Rollup)>,
    /// Status changes: check, when (Unix microseconds), from, to.
    pub transitions: Vec<(Arc<str>, u64, Status, Status)>,
}

impl Batch {
    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.rollups.is_empty() && self.transitions.is_empty()
    }
}

/// A stored status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// When, in Unix microseconds.
    pub at_us: u64,
    /// From.
    pub from: Status,
    /// To.
    pub to: Status,
}

/// The open store.
pub struct Store {
    /// Read-locked for every transaction; write-locked only to compact.
    db: RwLock<Database>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `dir`. A file that does not open is
    /// renamed aside: the returned note says so, for the log.
    pub fn open(dir: &Path) -> Result<(Self, Option<String>), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE);
        match Self::try_open(&path) {
            Ok(store) => Ok((store, None)),
            // Only a file that cannot be read as ours is set aside: one that
            // is locked (another healthgate on the same directory, a killed
            // one not yet gone) or on a full or read-only disk is kept, and
            // tried again at the next batch.
            Err(Unopened::Unreadable(first)) if path.exists() => {
                let aside = set_aside(&path)?;
                let note = format!(
                    "{first}; the file was set aside as {} and a new store started",
                    aside.display()
                );
                let store = Self::try_open(&path).map_err(Unopened::into_error)?;
                Ok((store, Some(note)))
            }
            Err(other) => Err(other.into_error()),
        }
    }

    fn try_open(path: &Path) -> Result<Self, Unopened> {
        let db_error = |message: String| StoreError::Db {
            path: path.to_owned(),
            message,
        };
        // redb's debug builds panic on some damage instead of returning it.
        let opened = std::panic::catch_unwind(|| {
            Builder::new()
                .set_check_integrity_on_open(true)
                .set_concurrency_mode(ConcurrencyMode::SingleWriter)
                .set_cache_size(16 << 20)
                .create(path)
        })
        .map_err(|_| Unopened::Unreadable(db_error("damaged (redb could not read it)".into())))?
        .map_err(|e| {
            // Damage, an old format, or not a redb file at all.
            let unreadable = match &e {
                redb::DatabaseError::Storage(redb::StorageError::Corrupted(_))
                | redb::DatabaseError::UpgradeRequired(_) => true,
                redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
                    io.kind() == std::io::ErrorKind::InvalidData
                }
                _ => false,
            };
            let error = db_error(e.to_string());
            if unreadable {
                Unopened::Unreadable(error)
            } else {
                Unopened::Unavailable(error)
            }
        })?;
        let store = Self {
            db: RwLock::new(opened),
            path: path.to_owned(),
        };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&self) -> Result<(), Unopened> {
        let unavailable = |e: StoreError| Unopened::Unavailable(e);
        // A table of another type is a file that is not ours.
        let table = |e: redb::TableError| match e {
            redb::TableError::TableTypeMismatch { .. }
            | redb::TableError::TypeDefinitionChanged { .. } => Unopened::Unreadable(self.error(e)),
            e => Unopened::Unavailable(self.error(e)),
        };
        let tx = self
            .db()
            .begin_write()
            .map_err(|e| unavailable(self.error(e)))?;
        {
            let mut meta = tx.open_table(META).map_err(table)?;
            let schema = meta
                .get("schema")
                .map_err(|e| unavailable(self.error(e)))?
                .map(|v| v.value());
            match schema {
                Some(SCHEMA) => {}
                Some(other) => {
                    return Err(Unopened::Unreadable(self.error(format!(
                        "written with schema {other}; this healthgate reads {SCHEMA}"
                    ))));
                }
                None => {
                    meta.insert("schema", SCHEMA)
                        .map_err(|e| unavailable(self.error(e)))?;
                }
            }
            tx.open_table(ROLLUPS).map_err(table)?;
            tx.open_table(TRANSITIONS).map_err(table)?;
        }
        tx.commit().map_err(|e| unavailable(self.error(e)))
    }

    fn db(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives the free pages (left by pruned and rewritten rows) back to the
    /// filesystem; transactions wait meanwhile.
    pub fn compact(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        while db
            .compact(redb::CompactionMode::Balanced)
            .map_err(|e| self.error(e))?
        {}
        Ok(())
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Writes `batch` in one transaction: rollups are added to what the
    /// store has for their hour.
    pub fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        let tx = self.db().begin_write().map_err(|e| self.error(e))?;
        {
            let mut rollups = tx.open_table(ROLLUPS).map_err(|e| self.error(e))?;
            for ((check, hour), rollup) in &batch.rollups {
                let key = (&**check, *hour);
                let mut total = rollups
                    .get(key)
                    .map_err(|e| self.error(e))?
                    .and_then(|v| Rollup::decode(v.value()))
                    .unwrap_or_default();
                total.merge(rollup);
                rollups
                    .insert(key, &total.encode()[..])
                    .map_err(|e| self.error(e))?;
            }
            let mut transitions = tx.open_table(TRANSITIONS).map_err(|e| self.error(e))?;
            for (check, at_us, from, to) in &batch.transitions {
                transitions
                    .insert((&**check, *at_us), &[code(*from), code(*to)][..])
                    .map_err(|e| self.error(e))?;
            }
        }
        tx.commit().map_err(|e| self.error(e))
    }

    /// Deletes rollups of hours before `rollups_from` and transitions
    /// before `transitions_from_us`, and past `max_transitions` the oldest
    /// hours of transitions. Returns the rows left in each.
    pub fn prune(
        &self,
        rollups_from: u64,
        transitions_from_us: u64,
        max_transitions: u64,
    ) -> Result<(u64, u64), StoreError> {
        let tx = self.db().begin_write().map_err(|e| self.error(e))?;
        let left = {
            let mut rollups = tx.open_table(ROLLUPS).map_err(|e| self.error(e))?;
            rollups
                .retain(|(_, hour), _| hour >= rollups_from)
                .map_err(|e| self.error(e))?;
            let mut transitions = tx.open_table(TRANSITIONS).map_err(|e| self.error(e))?;
            // Past the most kept (a flapping check), the oldest hours go too.
            let mut by_hour: std::collections::BTreeMap<u64, u64> = Default::default();
            for entry in transitions.iter().map_err(|e| self.error(e))? {
                let (key, _) = entry.map_err(|e| self.error(e))?;
                *by_hour.entry(key.value().1 / 3_600_000_000).or_default() += 1;
            }
            let mut kept = 0u64;
            let mut from_us = transitions_from_us;
            for (hour, n) in by_hour.iter().rev() {
                kept += n;
                if kept > max_transitions {
                    from_us = from_us.max((hour + 1) * 3_600_000_000);
                    break;
                }
            }
            transitions
                .retain(|(_, at), _| at >= from_us)
                .map_err(|e| self.error(e))?;
            (
                rollups.len().map_err(|e| self.error(e))?,
                transitions.len().map_err(|e| self.error(e))?,
            )
        };
        tx.commit().map_err(|e| self.error(e))?;
        Ok(left)
    }

    /// See [`history`].
    pub fn history(
        &self,
        check: &str,
        from: u64,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Rollup)>, StoreError> {
        history(&*self.db(), check, from, before, limit).map_err(|e| self.error(e))
    }

    /// See [`changes`].
    pub fn changes(
        &self,
        check: &str,
        from_us: u64,
        before_us: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        changes(&*self.db(), check, from_us, before_us, limit).map_err(|e| self.error(e))
    }
}

/// The store opened to read.
pub enum Reader {
    /// Beside the gateway writing it.
    Shared(redb::ReadOnlyDatabase),
    /// Alone: a file left by a killed gateway is repaired first, which
    /// takes the writer's place.
    Repaired(Database),
}

/// Opens the store in `dir` to read, beside a gateway writing it or not.
pub fn open_read_only(dir: &Path) -> Result<Reader, StoreError> {
    let path = dir.join(FILE);
    let error = |e: redb::DatabaseError| StoreError::Db {
        path: path.clone(),
        message: e.to_string(),
    };
    match Builder::new()
        .set_concurrency_mode(ConcurrencyMode::SingleWriter)
        .open_read_only(&path)
    {
        Ok(db) => Ok(Reader::Shared(db)),
        // No writer has it open and it was not closed cleanly: repair it.
        Err(redb::DatabaseError::RepairAborted) => Builder::new()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .open(&path)
            .map(Reader::Repaired)
            .map_err(error),
        Err(e) => Err(error(e)),
    }
}

impl Reader {
    /// See [`history`].
    pub fn history(
        &self,
        check: &str,
        from: u64,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Rollup)>, redb::Error> {
        match self {
            Reader::Shared(db) => history(db, check, from, before, limit),
            Reader::Repaired(db) => history(db, check, from, before, limit),
        }
    }

    /// See [`changes`].
    pub fn changes(
        &self,
        check: &str,
        from_us: u64,
        before_us: u64,
        limit: usize,
    ) -> Result<Vec<Change>, redb::Error> {
        match self {
            Reader::Shared(db) => changes(db, check, from_us, before_us, limit),
            Reader::Repaired(db) => changes(db, check, from_us, before_us, limit),
        }
    }
}

/// `check`'s rollups of hours in `[from, before)`, newest first, at most `limit`.
pub fn history(
    db: &impl ReadableDatabase,
    check: &str,
    from: u64,
    before: u64,
    limit: usize,
) -> Result<Vec<(u64, Rollup)>, redb::Error> {
    newest(db, ROLLUPS, (check, from, before), limit, |hour, value| {
        Rollup::decode(value).map(|r| (hour, r))
    })
}

/// `check`'s status changes in `[from_us, before_us)`, newest first, at most `limit`.
pub fn changes(
    db: &impl ReadableDatabase,
    check: &str,
    from_us: u64,
    before_us: u64,
    limit: usize,
) -> Result<Vec<Change>, redb::Error> {
    newest(
        db,
        TRANSITIONS,
        (check, from_us, before_us),
        limit,
        |at_us, value| match *value {
            [from, to] => Some(Change {
                at_us,
                from: status(from)?,
                to: status(to)?,
            }),
            _ => None,
        },
    )
}

/// The rows of `table` for `(check, [from, before))`, newest first, at
/// most `limit`, each decoded (a row that does not decode is skipped).
fn newest<T>(
    db: &impl ReadableDatabase,
    table: TableDefinition<(&str, u64), &[u8]>,
    (check, from, before): (&str, u64, u64),
    limit: usize,
    decode: impl Fn(u64, &[u8]) -> Option<T>,
) -> Result<Vec<T>, redb::Error> {
    let tx = db.begin_read()?;
    let table = match tx.open_table(table) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.range((check, from)..(check, before))?.rev() {
        if out.len() >= limit {
            break;
        }
        let (key, value) = entry?;
        if let Some(row) = decode(key.value().1, value.value()) {
            out.push(row);
        }
    }
    Ok(out)
}

/// The hour `at` falls in, as Unix seconds.
pub fn hour_of(at: SystemTime) -> u64 {
    let seconds = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    seconds - seconds % HOUR
}

fn code(status: Status) -> u8 {
    match status {
        Status::Starting => 0,
        Status::Pass => 1,
        Status::Warn => 2,
        Status::Fail => 3,
    }
}

fn status(code: u8) -> Option<Status> {
    Some(match code {
        0 => Status::Starting,
        1 => Status::Pass,
        2 => Status::Warn,
        3 => Status::Fail,
        _ => return None,
    })
}

/// Renames `path` to `path.damaged-<unix seconds>`, keeping the newest
/// [`KEEP_ASIDE`] such files.
fn set_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let aside = path.with_file_name(format!("{FILE}.damaged-{stamp}"));
    std::fs::rename(path, &aside).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })?;
    if let Some(dir) = path.parent()
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let prefix = format!("{FILE}.damaged-");
        let mut old: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect();
        old.sort();
        let excess = old.len().saturating_sub(KEEP_ASIDE);
        for p in old.into_iter().take(excess) {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::rollup::Result as Ran;

    fn rollup(runs: u32) -> Rollup {
        let mut r = Rollup::default();
        for _ in 0..runs {
            r.add(Ran::Pass, std::time::Duration::from_millis(2));
        }
        r
    }

    #[test]
    fn batches_add_up_and_history_pages_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (store, note) = Store::open(dir.path()).unwrap();
        assert!(note.is_none());
        let db: Arc<str> = Arc::from("db");
        for batch in 0..2 {
            let mut b = Batch::default();
            for hour in 0..5u64 {
                b.rollups
                    .push(((db.clone(), hour * HOUR), rollup(10 + batch)));
            }
            b.transitions.push((
                db.clone(),
                1_000 + u64::from(batch),
                Status::Pass,
                Status::Fail,
            ));
            store.write(&b).unwrap();
        }
        let page = store.history("db", 0, u64::MAX, 3).unwrap();
        assert_eq!(
            page.iter().map(|(h, _)| *h / HOUR).collect::<Vec<_>>(),
            [4, 3, 2]
        );
        assert_eq!(page[0].1.runs(), 21, "two batches of the same hour add up");
        let rest = store.history("db", 0, page[2].0, 3).unwrap();
        assert_eq!(
            rest.iter().map(|(h, _)| *h / HOUR).collect::<Vec<_>>(),
            [1, 0]
        );
        assert!(store.history("other", 0, u64::MAX, 3).unwrap().is_empty());
        assert_eq!(store.changes("db", 0, u64::MAX, 10).unwrap().len(), 2);
        assert_eq!(store.prune(3 * HOUR, 1_001, 100).unwrap(), (2, 1));
        // Changes past the most kept go by the oldest hour.
        let mut b = Batch::default();
        for hour in 0..4u64 {
            for i in 0..3 {
                b.transitions.push((
                    db.clone(),
                    hour * 3_600_000_000 + i,
                    Status::Pass,
                    Status::Fail,
                ));
            }
        }
        store.write(&b).unwrap();
        assert_eq!(
            store.prune(0, 0, 7).unwrap().1,
            6,
            "the two newest hours of three"
        );
        store.compact().unwrap();
    }

    /// A file another writer holds is not damaged: it is left alone.
    #[test]
    fn a_store_in_use_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = Store::open(dir.path()).unwrap();
        let Err(error) = Store::open(dir.path()) else {
            panic!("opened twice");
        };
        assert!(error.to_string().contains("already open"), "{error}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "nothing set aside");
        drop(first);
        assert!(Store::open(dir.path()).unwrap().1.is_none());
    }

    #[test]
    fn a_damaged_file_is_set_aside_and_a_new_store_started() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), vec![0x5a; 64 * 1024]).unwrap();
        let (store, note) = Store::open(dir.path()).unwrap();
        let note = note.expect("a note");
        assert!(note.contains("set aside as"), "{note}");
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert!(store.history("db", 0, u64::MAX, 1).unwrap().is_empty());
    }

    /// A day of 1,000 checks is 24,000 hourly rows (here with a status
    /// change each): the file they make, compacted (stated in
    /// BENCHMARKS.md), and its bound.
    #[test]
    fn a_day_of_a_thousand_checks_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let names: Vec<Arc<str>> = (0..1000)
            .map(|i| Arc::from(format!("check-{i:04}")))
            .collect();
        for hour in 0..24u64 {
            let mut b = Batch::default();
            for name in &names {
                b.rollups.push(((name.clone(), hour * HOUR), rollup(3600)));
                b.transitions.push((
                    name.clone(),
                    hour * HOUR * 1_000_000,
                    Status::Pass,
                    Status::Fail,
                ));
            }
            store.write(&b).unwrap();
        }
        let written = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        store.compact().unwrap();
        drop(store);
        let size = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        println!("24 h of 1,000 checks: {written} bytes written, {size} compacted");
        assert!(size < 8 << 20, "{size} bytes");
    }
}
