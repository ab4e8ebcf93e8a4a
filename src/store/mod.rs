//! The watchdog's persisted state: one SQLite file, `state.db`, in the state
//! directory (`/var/lib/rvm-watchdog/` on a machine).
//!
//! Words used here:
//!
//! - An **event** is one line of the watchdog's own history: a decision or
//!   an action (a unit failed, a restart began or ended, the ladder gave up,
//!   a reboot was asked for). Events are appended, read newest first, and
//!   pruned by age and count.
//! - A **state document** is a small named JSON value that must survive a
//!   restart of the watchdog: the recovery engine's ladder state per
//!   target, the safe-mode flag. Each is read and written whole.
//! - A **reboot** is a reboot the watchdog itself asked for, kept so that a
//!   reboot budget ("1/6h") holds across the reboots it counts.
//! - A **boot** is one run of the kernel, named by its boot id
//!   (`/proc/sys/kernel/random/boot_id`). Recording each boot tells how the
//!   previous one ended ([`BootEnd`]) and how many boots happened lately,
//!   which is how a boot loop shows.
//! - The **schema version** is SQLite's `PRAGMA user_version`: the number of
//!   entries of the migration list applied to the file.
//!
//! The API is synchronous: SQLite calls block, so callers run them on a
//! blocking thread (`tokio::task::spawn_blocking`). A [`Store`] is `Send` but
//! not `Sync`; it has one owner at a time.
//!
//! Crash safety: the file is in WAL mode with `synchronous=NORMAL`, so a
//! crash of the watchdog loses nothing committed and a power loss loses at
//! most the last few commits, never the file's consistency. Boots, reboots
//! and shutdown marks are written with a full sync, because the machine may
//! go down right after them and they are what reboot budgets and boot-loop
//! detection count on. Times are stored as integer milliseconds since the
//! Unix epoch, so they come back rounded down to the millisecond.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

/// The file name of the database inside the state directory.
pub const FILE_NAME: &str = "state.db";

/// Shown instead of a boot id when the kernel's cannot be read.
pub const UNKNOWN_BOOT_ID: &str = "unknown-boot";

/// Schema migrations, oldest first. Entry `i` takes a file from schema
/// version `i` to `i + 1`; a later version appends an entry and never edits
/// one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: events, state documents, reboots, boots.
    "CREATE TABLE events (
         id       INTEGER PRIMARY KEY AUTOINCREMENT,
         at_ms    INTEGER NOT NULL,
         kind     TEXT NOT NULL,
         target   TEXT,
         unit     TEXT,
         incident TEXT,
         step     INTEGER,
         attempt  INTEGER,
         result   TEXT,
         message  TEXT NOT NULL,
         fields   TEXT NOT NULL
     );
     CREATE INDEX events_at ON events (at_ms);
     CREATE INDEX events_target ON events (target);
     CREATE INDEX events_kind ON events (kind);
     CREATE TABLE state (
         key   TEXT PRIMARY KEY NOT NULL,
         value TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE reboots (
         id      INTEGER PRIMARY KEY,
         at_ms   INTEGER NOT NULL,
         target  TEXT,
         reason  TEXT NOT NULL,
         boot_id TEXT NOT NULL
     );
     CREATE INDEX reboots_at ON reboots (at_ms);
     CREATE INDEX reboots_boot ON reboots (boot_id);
     CREATE TABLE boots (
         id          INTEGER PRIMARY KEY AUTOINCREMENT,
         boot_id     TEXT NOT NULL UNIQUE,
         started_ms  INTEGER NOT NULL,
         shutdown_ms INTEGER
     );
     CREATE INDEX boots_started ON boots (started_ms);",
    // 2: the alert engine's outbox and incident records.
    "CREATE TABLE outbox (
         id         INTEGER PRIMARY KEY AUTOINCREMENT,
         key        TEXT NOT NULL UNIQUE,
         channel    TEXT NOT NULL,
         created_ms INTEGER NOT NULL,
         severity   TEXT NOT NULL,
         body       TEXT NOT NULL,
         state      TEXT NOT NULL DEFAULT 'queued',
         attempts   INTEGER NOT NULL DEFAULT 0,
         next_ms    INTEGER,
         last_error TEXT
     );
     CREATE INDEX outbox_state ON outbox (state, next_ms);
     CREATE TABLE outbox_alerts (
         fingerprint TEXT NOT NULL,
         key         TEXT NOT NULL,
         PRIMARY KEY (fingerprint, key)
     ) WITHOUT ROWID;
     CREATE TABLE incidents (
         id        TEXT PRIMARY KEY NOT NULL,
         target    TEXT NOT NULL,
         opened_ms INTEGER NOT NULL,
         closed_ms INTEGER,
         doc       TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX incidents_opened ON incidents (opened_ms);",
    // 3: delivery: when a notification was delivered, and every attempt.
    "ALTER TABLE outbox ADD COLUMN sent_ms INTEGER;
     CREATE TABLE deliveries (
         id         INTEGER PRIMARY KEY AUTOINCREMENT,
         key        TEXT NOT NULL,
         at_ms      INTEGER NOT NULL,
         result     TEXT NOT NULL,
         latency_ms INTEGER NOT NULL,
         answer     TEXT NOT NULL
     );
     CREATE INDEX deliveries_key ON deliveries (key);",
];

/// How long a call waits for another connection's lock before failing:
/// longer than the store thread holds a batch open (10 s), so a second
/// connection (a tool reading the file, a second daemon being refused)
/// waits for that commit instead of failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's queue is full: the disk is too slow or the thread is stuck.
    #[error("the state store's queue is full ({0} jobs waiting)")]
    Busy(usize),
    /// The store's thread has stopped (the daemon is shutting down).
    #[error("the state store has stopped")]
    Stopped,
    /// The state directory or the file could not be created or opened.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being attempted, e.g. "create the state directory".
        what: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite could not open or set up the file (locked by another process,
    /// unreadable, out of space…). Not corrupt: it is left where it is.
    #[error("cannot open the state database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The file is not a SQLite database or fails its integrity check.
    /// [`Store::open_or_recover`] moves such a file aside.
    #[error("the state database {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said about it.
        detail: String,
    },
    /// The file was written by a newer watchdog (a downgrade).
    /// [`Store::open_or_recover`] moves such a file aside.
    #[error(
        "the state database {} has schema version {found}, newer than this watchdog's {supported} (was it downgraded?)",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A statement failed on an open store.
    #[error("cannot {what}: {source}")]
    Sql {
        /// What was being attempted, e.g. "append an event".
        what: &'static str,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A stored JSON value could not be read back.
    #[error("cannot {what}: stored JSON is invalid: {source}")]
    Json {
        /// What was being attempted, e.g. "read state document".
        what: &'static str,
        /// The cause.
        source: serde_json::Error,
    },
}

impl StoreError {
    /// Whether the file itself is damaged: reopening with
    /// [`Store::open_or_recover`] is the way out, retrying is not.
    pub fn is_corrupt(&self) -> bool {
        match self {
            StoreError::Corrupt { .. } => true,
            StoreError::Open { source, .. } | StoreError::Sql { source, .. } => {
                is_corruption(source)
            }
            _ => false,
        }
    }

    /// Whether the same call may succeed later without anyone repairing
    /// anything: SQLite found the database busy or locked, the disk full, or
    /// met an I/O error.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Open { source, .. } | StoreError::Sql { source, .. } => {
                is_transient(source)
            }
            _ => false,
        }
    }
}

fn is_corruption(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { what, source }
}

/// The persisted state store. See the [module documentation](self).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// `None` for an in-memory store.
    path: Option<PathBuf>,
}

/// An event to append to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// When it happened; stored to the millisecond.
    pub at: SystemTime,
    /// What happened, in kebab-case: "unit-failed", "action-started",
    /// "action-done", "decision", "gave-up", "reboot"…
    pub kind: String,
    /// The target it concerns, if any.
    pub target: Option<String>,
    /// The systemd unit it concerns, if any.
    pub unit: Option<String>,
    /// The incident it belongs to, if any.
    pub incident: Option<String>,
    /// The ladder step (0-based index into the policy's ladder), if any.
    pub step: Option<u32>,
    /// The attempt within that step, if any.
    pub attempt: Option<u32>,
    /// How an action ended ("done", "failed", "timeout"…), if it did.
    pub result: Option<String>,
    /// One line for people.
    pub message: String,
    /// Extra structured detail; `{}` when there is none.
    pub fields: serde_json::Value,
}

impl NewEvent {
    /// An event with only a time, a kind and a message; set the other
    /// fields as needed.
    pub fn new(at: SystemTime, kind: impl Into<String>, message: impl Into<String>) -> Self {
        NewEvent {
            at,
            kind: kind.into(),
            target: None,
            unit: None,
            incident: None,
            step: None,
            attempt: None,
            result: None,
            message: message.into(),
            fields: serde_json::Value::Object(serde_json::Map::new()),
        }
    }
}

/// An event read back from the log: a [`NewEvent`] with its id. Its
/// fields read through: `event.kind`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its id, increasing in the order events were appended; never reused.
    pub id: i64,
    /// What was appended; `at` to the millisecond.
    pub event: NewEvent,
}

impl std::ops::Deref for Event {
    type Target = NewEvent;

    fn deref(&self) -> &NewEvent {
        &self.event
    }
}

/// Which events [`Store::events`] returns. Filters that are `None` match
/// every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events of this target.
    pub target: Option<String>,
    /// Only events of this kind.
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub since: Option<SystemTime>,
    /// Only events before this time.
    pub until: Option<SystemTime>,
    /// Only events appended before the one with this id (the next page of
    /// a list, newest first).
    pub before: Option<i64>,
    /// At most this many (the newest); 0 returns none.
    pub limit: usize,
}

impl EventQuery {
    /// The limit of [`EventQuery::default`].
    pub const DEFAULT_LIMIT: usize = 100;
}

impl Default for EventQuery {
    /// No filter, the newest [`EventQuery::DEFAULT_LIMIT`] events.
    fn default() -> Self {
        EventQuery {
            target: None,
            kind: None,
            since: None,
            until: None,
            before: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// A reboot the watchdog asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reboot {
    /// When it was asked for.
    pub at: SystemTime,
    /// The target whose ladder asked for it; `None` for the host itself.
    pub target: Option<String>,
    /// Why, for people.
    pub reason: String,
    /// The boot during which it was asked for (the boot it ended).
    pub boot_id: String,
}

/// The page size of a new state database.
const PAGE_SIZE: i64 = 1024;

/// SQLite's page cache of a connection, in KiB as a negative number (its
/// unit for a size).
pub(crate) const CACHE_KIB: i64 = -512;

/// What [`Store::record_boot`] knows of this boot and the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRecord {
    /// This boot's id.
    pub boot_id: String,
    /// When the watchdog first recorded this boot.
    pub started_at: SystemTime,
    /// The boot recorded before this one; `None` on the first boot the
    /// store has seen.
    pub previous: Option<PreviousBoot>,
}

/// The boot before the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousBoot {
    /// Its boot id.
    pub boot_id: String,
    /// When the watchdog first recorded it.
    pub started_at: SystemTime,
    /// How it ended.
    pub ended: BootEnd,
}

/// How a boot ended, as far as the watchdog knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// The watchdog recorded a reboot during that boot (the latest one is
    /// given). This wins over a clean shutdown: a reboot the watchdog asks
    /// for also stops the watchdog cleanly.
    WatchdogReboot {
        /// The target whose ladder asked for it; `None` for the host.
        target: Option<String>,
        /// Why.
        reason: String,
        /// When it was asked for.
        at: SystemTime,
    },
    /// The watchdog stopped during a system shutdown ([`Store::mark_shutdown`])
    /// without having asked for a reboot: someone shut down or rebooted it.
    CleanShutdown {
        /// When the watchdog stopped.
        at: SystemTime,
    },
    /// Neither: power loss, a kernel panic or hang, a hardware watchdog, a
    /// reset that did not stop the watchdog.
    Unexpected,
}

impl Store {
    /// Opens `dir/state.db`, creating the directory (mode 0700) and the file
    /// (mode 0600) if needed, and brings its schema up to date.
    ///
    /// Fails with [`StoreError::Corrupt`] or [`StoreError::TooNew`] for a
    /// file this watchdog cannot use; [`Store::open_or_recover`] moves such
    /// a file aside instead.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::Io {
                what: "create the state directory",
                path: dir.to_owned(),
                source,
            })?;
        let path = dir.join(FILE_NAME);
        create_private_file(&path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open_error = |source: rusqlite::Error| {
            if is_corruption(&source) {
                StoreError::Corrupt {
                    path: path.clone(),
                    detail: source.to_string(),
                }
            } else {
                StoreError::Open {
                    path: path.clone(),
                    source,
                }
            }
        };
        let conn = Connection::open_with_flags(&path, flags).map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        // Takes effect only on a new file (before WAL mode and the schema).
        // Each commit appends every page it touched to the WAL, a few per
        // table and index whatever the rows: small pages write less flash.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(open_error)?;
        // The first statement to read the file: a file that is not a
        // database fails here.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                file = %path.display(),
                journal_mode = %mode,
                "the state database cannot use WAL mode; a crash may cost more"
            );
        }
        let problems = quick_check(&conn).map_err(open_error)?;
        if !problems.is_empty() {
            return Err(StoreError::Corrupt {
                path: path.clone(),
                detail: problems.join("; "),
            });
        }
        Store::set_up(conn, Some(path.clone())).map_err(|e| match e {
            StoreError::Sql { source, .. } => open_error(source),
            other => other,
        })
    }

    /// Like [`Store::open`], but a corrupt file, or one from a newer
    /// watchdog, does not stop the daemon: it is moved aside as
    /// `state.db.corrupt-<unix time>` (or `state.db.newer-<unix time>`),
    /// with its `-wal` and `-shm` companions, a warning is logged and a
    /// fresh database is started. Other failures (a locked or unreadable
    /// file, a read-only directory) are returned as they are: moving the file
    /// would not help and might lose good data.
    pub fn open_or_recover(dir: &Path) -> Result<Store, StoreError> {
        let (why, suffix) = match Store::open(dir) {
            Ok(store) => return Ok(store),
            Err(e @ StoreError::Corrupt { .. }) => (e, "corrupt"),
            Err(e @ StoreError::TooNew { .. }) => (e, "newer"),
            Err(e) => return Err(e),
        };
        let path = dir.join(FILE_NAME);
        let aside = move_aside(&path, suffix)?;
        tracing::warn!(
            file = %path.display(),
            moved_to = %aside.display(),
            error = %why,
            "moved the unusable state database aside and started a fresh one; \
             event history, reboot budgets and boot records start over"
        );
        Store::open(dir)
    }

    /// A store in memory, gone when dropped: for tests of other modules, and
    /// as a last resort when no file can be used.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(sql("open an in-memory store"))?;
        Store::set_up(conn, None)
    }

    /// The database file; `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn set_up(mut conn: Connection, path: Option<PathBuf>) -> Result<Store, StoreError> {
        // NORMAL is durable across a crash of the process in WAL mode; a
        // power loss may roll back the last commits but never corrupts.
        conn.pragma_update(None, "synchronous", 1)
            .map_err(sql("set synchronous=NORMAL"))?;
        // Pages read stay in the kernel's cache anyway; SQLite's own copy
        // (2 MiB by default) would count in the daemon's memory.
        conn.pragma_update(None, "cache_size", CACHE_KIB)
            .map_err(sql("set cache_size"))?;
        migrate(&mut conn).map_err(|e| match e {
            MigrateError::Sql(source) => StoreError::Sql {
                what: "migrate the schema",
                source,
            },
            MigrateError::TooNew(found) => StoreError::TooNew {
                path: path.clone().unwrap_or_default(),
                found,
                supported: MIGRATIONS.len() as i64,
            },
        })?;
        Ok(Store { conn, path })
    }

    /// Appends an event to the log and returns its id.
    pub fn append_event(&self, event: &NewEvent) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO events
                     (at_ms, kind, target, unit, incident, step, attempt, result, message, fields)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    to_millis(event.at),
                    event.kind,
                    event.target,
                    event.unit,
                    event.incident,
                    event.step,
                    event.attempt,
                    event.result,
                    event.message,
                    event.fields.to_string(),
                ],
            )
            .map_err(sql("append an event"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The events that match `query`, newest first: in the reverse of the
    /// order they were appended, which is time order unless the clock was
    /// stepped back in between.
    pub fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let mut sql_text = String::from(
            "SELECT id, at_ms, kind, target, unit, incident, step, attempt, result, message, fields
             FROM events WHERE 1 = 1",
        );
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(target) = &query.target {
            values.push(target.clone().into());
            sql_text.push_str(&format!(" AND target = ?{}", values.len()));
        }
        if let Some(kind) = &query.kind {
            values.push(kind.clone().into());
            sql_text.push_str(&format!(" AND kind = ?{}", values.len()));
        }
        if let Some(since) = query.since {
            values.push(to_millis(since).into());
            sql_text.push_str(&format!(" AND at_ms >= ?{}", values.len()));
        }
        if let Some(until) = query.until {
            values.push(to_millis(until).into());
            sql_text.push_str(&format!(" AND at_ms < ?{}", values.len()));
        }
        if let Some(before) = query.before {
            values.push(before.into());
            sql_text.push_str(&format!(" AND id < ?{}", values.len()));
        }
        values.push(saturating_i64(query.limit).into());
        sql_text.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));

        const WHAT: &str = "read events";
        let mut statement = self.conn.prepare(&sql_text).map_err(sql(WHAT))?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(values), |row| {
                Ok((
                    Event {
                        id: row.get(0)?,
                        event: NewEvent {
                            at: from_millis(row.get(1)?),
                            kind: row.get(2)?,
                            target: row.get(3)?,
                            unit: row.get(4)?,
                            incident: row.get(5)?,
                            step: row.get(6)?,
                            attempt: row.get(7)?,
                            result: row.get(8)?,
                            message: row.get(9)?,
                            fields: serde_json::Value::Null,
                        },
                    },
                    row.get::<_, String>(10)?,
                ))
            })
            .map_err(sql(WHAT))?;
        let mut events = Vec::new();
        for row in rows {
            let (mut event, fields) = row.map_err(sql(WHAT))?;
            event.event.fields = serde_json::from_str(&fields)
                .map_err(|source| StoreError::Json { what: WHAT, source })?;
            events.push(event);
        }
        Ok(events)
    }

    /// Deletes the events older than `older_than`, and then all but the
    /// newest `keep_at_most`. Returns how many were deleted.
    pub fn prune_events(
        &self,
        older_than: SystemTime,
        keep_at_most: usize,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM events
                 WHERE at_ms < ?1
                    OR id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                params![to_millis(older_than), saturating_i64(keep_at_most)],
            )
            .map_err(sql("prune events"))
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put_state(&self, key: &str, value: &serde_json::Value) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value.to_string()],
            )
            .map_err(sql("write a state document"))?;
        Ok(())
    }

    /// The value stored under `key`, if any.
    pub fn get_state(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        const WHAT: &str = "read a state document";
        let text: Option<String> = self
            .conn
            .query_row("SELECT value FROM state WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sql(WHAT))?;
        text.map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|source| StoreError::Json { what: WHAT, source })
    }

    /// Removes what is stored under `key`; nothing there is not an error.
    pub fn delete_state(&self, key: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM state WHERE key = ?1", [key])
            .map_err(sql("delete a state document"))?;
        Ok(())
    }

    /// Records that the watchdog is asking for a reboot, during boot
    /// `boot_id`. Written with a full sync: the machine may go down before
    /// the page cache is written back, and a lost record would let a reboot
    /// budget be overspent.
    pub fn record_reboot(
        &self,
        at: SystemTime,
        target: Option<&str>,
        reason: &str,
        boot_id: &str,
    ) -> Result<(), StoreError> {
        self.fully_synced("record a reboot", |conn| {
            conn.execute(
                "INSERT INTO reboots (at_ms, target, reason, boot_id) VALUES (?1, ?2, ?3, ?4)",
                params![to_millis(at), target, reason, boot_id],
            )
            .map(drop)
        })
    }

    /// The reboots recorded at or after `since`, oldest first.
    pub fn reboots_since(&self, since: SystemTime) -> Result<Vec<Reboot>, StoreError> {
        const WHAT: &str = "read reboots";
        let mut statement = self
            .conn
            .prepare(
                "SELECT at_ms, target, reason, boot_id FROM reboots
                 WHERE at_ms >= ?1 ORDER BY at_ms, id",
            )
            .map_err(sql(WHAT))?;
        let rows = statement
            .query_map([to_millis(since)], |row| {
                Ok(Reboot {
                    at: from_millis(row.get(0)?),
                    target: row.get(1)?,
                    reason: row.get(2)?,
                    boot_id: row.get(3)?,
                })
            })
            .map_err(sql(WHAT))?;
        rows.collect::<Result<_, _>>().map_err(sql(WHAT))
    }

    /// Records the current boot, first seen at `at`, and tells how the boot
    /// recorded before it ended.
    ///
    /// Idempotent for one `boot_id`: a watchdog restarted within the same
    /// boot gets the same answer, and the boot keeps its first `at`. It also
    /// clears a shutdown mark of this boot: the watchdog runs again, so that
    /// shutdown did not happen.
    pub fn record_boot(&self, boot_id: &str, at: SystemTime) -> Result<BootRecord, StoreError> {
        self.fully_synced("record a boot", |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let existing: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT id, started_ms FROM boots WHERE boot_id = ?1",
                    [boot_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let (id, started_ms) = match existing {
                Some((id, started_ms)) => {
                    tx.execute("UPDATE boots SET shutdown_ms = NULL WHERE id = ?1", [id])?;
                    (id, started_ms)
                }
                None => {
                    tx.execute(
                        "INSERT INTO boots (boot_id, started_ms) VALUES (?1, ?2)",
                        params![boot_id, to_millis(at)],
                    )?;
                    (tx.last_insert_rowid(), to_millis(at))
                }
            };
            let previous = previous_boot(&tx, id)?;
            tx.commit()?;
            Ok(BootRecord {
                boot_id: boot_id.to_owned(),
                started_at: from_millis(started_ms),
                previous,
            })
        })
    }

    /// Marks boot `boot_id` as ending in a clean shutdown: the daemon is
    /// stopping because the system is going down. Written with a full sync.
    pub fn mark_shutdown(&self, boot_id: &str, at: SystemTime) -> Result<(), StoreError> {
        self.fully_synced("mark a shutdown", |conn| {
            conn.execute(
                "INSERT INTO boots (boot_id, started_ms, shutdown_ms) VALUES (?1, ?2, ?2)
                 ON CONFLICT (boot_id) DO UPDATE SET shutdown_ms = excluded.shutdown_ms",
                params![boot_id, to_millis(at)],
            )
            .map(drop)
        })
    }

    /// How many boots were first recorded at or after `since`, this one
    /// included: many within a short while is a boot loop.
    pub fn boots_since(&self, since: SystemTime) -> Result<usize, StoreError> {
        let count: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM boots WHERE started_ms >= ?1",
                [to_millis(since)],
                |row| row.get(0),
            )
            .map_err(sql("count boots"))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Opens a transaction that the writes after it join (see the store
    /// thread's batches).
    pub(crate) fn begin_batch(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql("start a batch of writes"))
    }

    /// Commits the transaction [`Store::begin_batch`] opened.
    pub(crate) fn end_batch(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(sql("commit a batch of writes"))
    }

    /// Runs `write` with `synchronous=FULL`, which in WAL mode syncs the log
    /// at each commit, then goes back to NORMAL.
    fn fully_synced<T>(
        &self,
        what: &'static str,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        debug_assert!(
            self.conn.is_autocommit(),
            "{what}: synchronous cannot change inside a batch (use query_committed)"
        );
        self.conn
            .pragma_update(None, "synchronous", 2)
            .map_err(sql(what))?;
        let result = write(&self.conn);
        let restored = self.conn.pragma_update(None, "synchronous", 1);
        let value = result.map_err(sql(what))?;
        restored.map_err(sql(what))?;
        Ok(value)
    }
}

/// The boot recorded just before the boot with row `id`, and how it ended.
fn previous_boot(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<Option<PreviousBoot>> {
    let previous: Option<(String, i64, Option<i64>)> = tx
        .query_row(
            "SELECT boot_id, started_ms, shutdown_ms FROM boots
             WHERE id < ?1 ORDER BY id DESC LIMIT 1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let Some((boot_id, started_ms, shutdown_ms)) = previous else {
        return Ok(None);
    };
    let reboot: Option<(i64, Option<String>, String)> = tx
        .query_row(
            "SELECT at_ms, target, reason FROM reboots
             WHERE boot_id = ?1 ORDER BY at_ms DESC, id DESC LIMIT 1",
            [&boot_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let ended = match (reboot, shutdown_ms) {
        (Some((at_ms, target, reason)), _) => BootEnd::WatchdogReboot {
            target,
            reason,
            at: from_millis(at_ms),
        },
        (None, Some(at_ms)) => BootEnd::CleanShutdown {
            at: from_millis(at_ms),
        },
        (None, None) => BootEnd::Unexpected,
    };
    Ok(Some(PreviousBoot {
        boot_id,
        started_at: from_millis(started_ms),
        ended,
    }))
}

enum MigrateError {
    Sql(rusqlite::Error),
    TooNew(i64),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sql(e)
    }
}

/// Applies the migrations the file lacks, all in one transaction with the
/// new `user_version`: a crash leaves the old schema or the new, never half.
fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let latest = MIGRATIONS.len() as i64;
    if version > latest {
        return Err(MigrateError::TooNew(version));
    }
    if version == latest {
        return Ok(());
    }
    for migration in &MIGRATIONS[usize::try_from(version).unwrap_or(0)..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", latest)?;
    tx.commit()?;
    Ok(())
}

/// `PRAGMA quick_check`: the problems found, empty when the file is sound.
fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut problems = Vec::new();
    conn.pragma_query(None, "quick_check", |row| {
        let line: String = row.get(0)?;
        if line != "ok" {
            problems.push(line);
        }
        Ok(())
    })?;
    Ok(problems)
}

/// Whether SQLite's error may go away by itself: the database busy or
/// locked, the disk full, an I/O error.
pub(crate) fn is_transient(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
        )
    )
}

/// Creates `path` with mode 0600 if it does not exist, and takes group and
/// world access away if it does: SQLite would create it 0644, and its `-wal`
/// and `-shm` files copy the database file's mode.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    crate::trust::private_file(path, "create or open the state database").map_err(
        |(what, source)| StoreError::Io {
            what,
            path: path.to_owned(),
            source,
        },
    )
}

/// Renames `path` and its `-wal`, `-shm` and `-journal` companions to
/// `<path>.<suffix>-<unix time>[-wal…]`, so they stay openable together.
fn move_aside(path: &Path, suffix: &str) -> Result<PathBuf, StoreError> {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut aside = path.with_file_name(format!("{FILE_NAME}.{suffix}-{seconds}"));
    let mut n = 1;
    while aside.symlink_metadata().is_ok() {
        aside = path.with_file_name(format!("{FILE_NAME}.{suffix}-{seconds}.{n}"));
        n += 1;
    }
    for companion in ["-wal", "-shm", "-journal"] {
        let from = with_suffix(path, companion);
        if from.symlink_metadata().is_ok() {
            std::fs::rename(&from, with_suffix(&aside, companion)).map_err(|source| {
                StoreError::Io {
                    what: "move aside",
                    path: from.clone(),
                    source,
                }
            })?;
        }
    }
    std::fs::rename(path, &aside).map_err(|source| StoreError::Io {
        what: "move aside",
        path: path.to_owned(),
        source,
    })?;
    Ok(aside)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The kernel's id of the running boot, from
/// `<host_root>/proc/sys/kernel/random/boot_id`; [`UNKNOWN_BOOT_ID`] (and a
/// warning) when it cannot be read, which makes every start look like a
/// restart within one boot: boot loops go unseen, none is imagined.
pub fn current_boot_id(host_root: &Path) -> String {
    let file = host_root.join("proc/sys/kernel/random/boot_id");
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
        Ok(_) => {
            tracing::warn!(file = %file.display(), "the boot id file is empty");
            UNKNOWN_BOOT_ID.to_owned()
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read the boot id");
            UNKNOWN_BOOT_ID.to_owned()
        }
    }
}

/// Milliseconds since the Unix epoch, negative before it, saturating.
fn to_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => saturating_i64(after.as_millis()),
        Err(before) => saturating_i64(before.duration().as_millis()).saturating_neg(),
    }
}

fn from_millis(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn saturating_i64<N: TryInto<i64>>(n: N) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_to_the_millisecond() {
        for ms in [0, 1, 1_700_000_000_123, -86_400_000] {
            assert_eq!(to_millis(from_millis(ms)), ms);
        }
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(
            from_millis(to_millis(t)),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
    }

    #[test]
    fn a_fresh_store_has_the_latest_schema_and_normal_sync() {
        let store = Store::open_in_memory().unwrap();
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        store.record_reboot(UNIX_EPOCH, None, "test", "b1").unwrap();
        let synchronous: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 1, "back to NORMAL after a fully synced write");
    }

    #[test]
    fn queries_use_the_indexes() {
        let store = Store::open_in_memory().unwrap();
        for (query, index) in [
            (
                "SELECT id FROM events WHERE target = 'x' ORDER BY id DESC",
                "events_target",
            ),
            (
                "SELECT id FROM events WHERE kind = 'x' ORDER BY id DESC",
                "events_kind",
            ),
            ("SELECT id FROM events WHERE at_ms < 5", "events_at"),
            ("SELECT at_ms FROM reboots WHERE at_ms >= 5", "reboots_at"),
            (
                "SELECT count(*) FROM boots WHERE started_ms >= 5",
                "boots_started",
            ),
        ] {
            let mut plan = String::new();
            store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .unwrap()
                .query_map([], |row| row.get::<_, String>(3))
                .unwrap()
                .for_each(|line| plan.push_str(&line.unwrap()));
            assert!(plan.contains(index), "{query}: {plan}");
        }
    }
}

mod alerts;
mod writer;
pub use alerts::{Attempt, IncidentRow, OutboxRow};
pub use writer::{QUEUE, StoreThread, WriterReport};
