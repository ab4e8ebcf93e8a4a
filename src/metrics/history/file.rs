//! The history file, `history.db`: rollups in SQLite.
//!
//! Tables: `series` (id, name, labels as JSON, kind), `minute` and `hour`
//! (a frame per interval, keyed by the interval's start in milliseconds).
//! Keying by time makes every write an append at the right edge of the
//! table, so a minute of any number of series dirties a handful of pages
//! rather than one page per series. A query reads the frames of its range
//! and, through each frame's index, decodes only the series it wants.
//!
//! Schema versions (`PRAGMA user_version`): 1 wrote frames without an
//! index; 2 adds it. Opening a version 1 file rewrites its frames once, in
//! the migration's transaction.
//!
//! Hours are summed from their minutes in the file once an hour has closed,
//! so a restart in the middle of an hour loses none of it. A minute written
//! twice (the watchdog stopped and started within it, or the clock stepped
//! back) is merged with what the file holds, and its hour summed again.
//!
//! Journal: WAL with `synchronous=NORMAL`. Each commit appends its pages to
//! the WAL in one sequential write and syncs nothing; the sync happens at
//! checkpoints (every 1000 pages, 1 MiB). A rollback journal would sync twice per
//! commit and write every changed page twice as well, and small synced
//! writes are what wears flash most. A power loss may lose the last
//! commits, never the file's consistency.
//!
//! Size: retention by age frees pages that later frames reuse, so the file
//! stops growing at the size its retention needs. When the pages in use
//! come within a twentieth of the cap (at least 64 KiB), the oldest minute
//! frames whose hour is already summed are dropped first (hours keep the
//! long view for a sixtieth of the room), then the oldest hour frames,
//! down to nine tenths of the cap; the freed pages are reused, so the file
//! stays under the cap. Only a file already larger than its cap (the cap
//! was lowered) is rewritten smaller, with `VACUUM`. There is no
//! auto-vacuum: its pointer map would add a page to every commit. The WAL
//! beside the file adds up to [`WAL_LIMIT`].

use std::collections::{BTreeSet, HashMap};
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::HistoryError;
use super::bucket::{
    Bucket, decode_frame, decode_frame_v1, decode_selected, encode_frame, frame_ids, merge_records,
};
use super::query::Resolution;
use crate::metrics::{Kind, SeriesKey};

/// The file name of the history inside the state directory.
pub const FILE_NAME: &str = "history.db";

/// The most the WAL keeps on disk between checkpoints.
pub const WAL_LIMIT: u64 = 4 << 20;

/// The page size of a new file. Each commit rewrites a few pages besides
/// its data (the table's last leaf, the header page): small pages keep that
/// small.
const PAGE_SIZE: i64 = 1024;

const MINUTE: u64 = 60_000;
const HOUR: u64 = 3_600_000;

/// A step of the schema: statements, or frames rewritten in code.
enum Migration {
    Sql(&'static str),
    Code(fn(&rusqlite::Transaction<'_>, &Path) -> Result<(), HistoryError>),
}

/// Schema migrations, oldest first; entry `i` takes the file from version
/// `i` to `i + 1` (`PRAGMA user_version`).
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(
        "CREATE TABLE series (
             id     INTEGER PRIMARY KEY,
             name   TEXT NOT NULL,
             labels TEXT NOT NULL,
             kind   INTEGER NOT NULL
         );
         CREATE TABLE minute (start_ms INTEGER PRIMARY KEY, frame BLOB NOT NULL);
         CREATE TABLE hour (start_ms INTEGER PRIMARY KEY, frame BLOB NOT NULL);",
    ),
    Migration::Code(index_frames),
];

/// How long the file keeps rollups, and how large it may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub minute_retention_ms: u64,
    pub hour_retention_ms: u64,
    pub max_bytes: u64,
}

/// A series as the file knows it.
#[derive(Debug, Clone)]
pub(crate) struct StoredSeries {
    pub id: u32,
    pub key: SeriesKey,
    pub kind: Kind,
    /// The start of its newest minute bucket in the file.
    pub minute_last_ms: Option<u64>,
    /// The start of its newest hour bucket in the file.
    pub hour_last_ms: Option<u64>,
}

/// One transaction's worth of closed buckets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Batch {
    /// The caller's clock when the batch was made: retention counts from it.
    pub now_ms: u64,
    /// Every minute before this is closed: its hour may be summed.
    pub closed_until_ms: u64,
    /// Series seen for the first time since the last batch.
    pub new_series: Vec<(u32, std::sync::Arc<SeriesKey>, Kind)>,
    /// Closed minutes: start, and the buckets sorted by series id.
    pub minutes: Vec<(u64, Vec<(u32, Bucket)>)>,
}

/// What a batch changed that the caller's view depends on.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Written {
    /// The size cap dropped minute frames before this time.
    pub minutes_cut_before_ms: Option<u64>,
    /// The file's size in bytes (its pages).
    pub file_bytes: u64,
}

/// The open history file. See the [module documentation](self).
pub(crate) struct File {
    conn: Connection,
    path: PathBuf,
    limits: Limits,
    /// Every hour before this has been summed from its minutes.
    hours_done_until_ms: Option<u64>,
}

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> HistoryError {
    move |source| HistoryError::Sql { what, source }
}

fn as_ms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn as_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl File {
    /// Opens `dir/history.db`, creating the directory (0700) and file
    /// (0600) if needed, and reads back the series it holds.
    pub fn open(dir: &Path, limits: Limits) -> Result<(File, Vec<StoredSeries>), HistoryError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| HistoryError::Io {
                what: "create the state directory",
                path: dir.to_owned(),
                source,
            })?;
        let path = dir.join(FILE_NAME);
        create_private_file(&path)?;
        let open_error = |source: rusqlite::Error| {
            if matches!(
                source.sqlite_error_code(),
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
            ) {
                HistoryError::Corrupt {
                    path: path.clone(),
                    detail: source.to_string(),
                }
            } else {
                HistoryError::Open {
                    path: path.clone(),
                    source,
                }
            }
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(open_error)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_error)?;
        // Takes effect only on a new file: before WAL mode and the schema.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(open_error)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                file = %path.display(),
                journal_mode = %mode,
                "the metrics history cannot use WAL mode; it writes more"
            );
        }
        conn.pragma_update(None, "synchronous", 1)
            .map_err(open_error)?;
        conn.pragma_update(None, "journal_size_limit", as_sql(WAL_LIMIT))
            .map_err(open_error)?;
        conn.pragma_update(None, "cache_size", crate::store::CACHE_KIB)
            .map_err(open_error)?;
        migrate(&mut conn, &path)?;
        let mut file = File {
            conn,
            path,
            limits,
            hours_done_until_ms: None,
        };
        file.hours_done_until_ms = file
            .conn
            .query_row("SELECT max(start_ms) FROM hour", [], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .map_err(sql("read the newest hour"))?
            .map(|start| as_ms(start) + HOUR);
        let series = file.load_series()?;
        Ok((file, series))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load_series(&self) -> Result<Vec<StoredSeries>, HistoryError> {
        const WHAT: &str = "read the series";
        let mut statement = self
            .conn
            .prepare("SELECT id, name, labels, kind FROM series ORDER BY id")
            .map_err(sql(WHAT))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, u32>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(sql(WHAT))?;
        let mut series = Vec::new();
        for row in rows {
            let (id, name, labels, kind) = row.map_err(sql(WHAT))?;
            let labels: Vec<(String, String)> = serde_json::from_str(&labels)
                .map_err(|e| self.corrupt(format!("series {id}: {e}")))?;
            series.push(StoredSeries {
                id,
                key: SeriesKey { name, labels },
                kind: if kind == 1 {
                    Kind::Counter
                } else {
                    Kind::Gauge
                },
                minute_last_ms: None,
                hour_last_ms: None,
            });
        }
        // The newest minute and hour of each series: frames newest first,
        // until every series is found.
        let position: HashMap<u32, usize> =
            series.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        for table in ["minute", "hour"] {
            let mut missing = series.len();
            let mut statement = self
                .conn
                .prepare(&format!(
                    "SELECT start_ms, frame FROM {table} ORDER BY start_ms DESC"
                ))
                .map_err(sql(WHAT))?;
            let mut rows = statement.query([]).map_err(sql(WHAT))?;
            while missing > 0 {
                let Some(row) = rows.next().map_err(sql(WHAT))? else {
                    break;
                };
                let start = as_ms(row.get(0).map_err(sql(WHAT))?);
                let frame = row.get_ref(1).map_err(sql(WHAT))?.as_blob().map_err(|e| {
                    HistoryError::Sql {
                        what: WHAT,
                        source: e.into(),
                    }
                })?;
                frame_ids(frame, |id| {
                    let Some(s) = position.get(&id).map(|&i| &mut series[i]) else {
                        return;
                    };
                    let newest = if table == "minute" {
                        &mut s.minute_last_ms
                    } else {
                        &mut s.hour_last_ms
                    };
                    if newest.is_none() {
                        *newest = Some(start);
                        missing -= 1;
                    }
                })
                .map_err(|e| self.corrupt(format!("{table} {start}: {e}")))?;
            }
        }
        Ok(series)
    }

    fn corrupt(&self, detail: String) -> HistoryError {
        corrupt(&self.path, detail)
    }

    /// Writes a batch in one transaction: new series, closed minutes,
    /// hours that closed, retention by age; then keeps the file under its cap.
    pub fn write(&mut self, batch: &Batch) -> Result<Written, HistoryError> {
        const WHAT: &str = "write a batch of rollups";
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(WHAT))?;
        for (id, key, kind) in &batch.new_series {
            let labels = serde_json::to_string(&key.labels).expect("labels serialise");
            tx.execute(
                "INSERT OR REPLACE INTO series (id, name, labels, kind) VALUES (?1, ?2, ?3, ?4)",
                params![id, key.name, labels, i64::from(*kind == Kind::Counter)],
            )
            .map_err(sql(WHAT))?;
        }
        let mut sum_again = BTreeSet::new();
        for (start, records) in &batch.minutes {
            let existing: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT frame FROM minute WHERE start_ms = ?1",
                    [as_sql(*start)],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sql(WHAT))?;
            let frame = match existing {
                Some(bytes) => {
                    let mut earlier = Vec::new();
                    decode_frame(&bytes, |id, b| earlier.push((id, b)))
                        .map_err(|e| corrupt(&self.path, format!("minute {start}: {e}")))?;
                    encode_frame(&merge_records(&earlier, records))
                }
                None => encode_frame(records),
            };
            tx.execute(
                "INSERT OR REPLACE INTO minute (start_ms, frame) VALUES (?1, ?2)",
                params![as_sql(*start), frame],
            )
            .map_err(sql(WHAT))?;
            if self.hours_done_until_ms.is_some_and(|done| *start < done) {
                sum_again.insert(*start - *start % HOUR);
            }
        }
        // Hours that closed since the last batch.
        let closed_hours = batch.closed_until_ms - batch.closed_until_ms % HOUR;
        let from = match self.hours_done_until_ms {
            Some(done) => Some(done),
            None => tx
                .query_row("SELECT min(start_ms) FROM minute", [], |row| {
                    row.get::<_, Option<i64>>(0)
                })
                .map_err(sql(WHAT))?
                .map(|s| as_ms(s) - as_ms(s) % HOUR),
        };
        let mut done = self.hours_done_until_ms;
        if let Some(from) = from
            && from < closed_hours
        {
            sum_hours(&tx, from, closed_hours, &self.path)?;
            done = Some(closed_hours);
        }
        for hour in sum_again {
            sum_hours(&tx, hour, hour + HOUR, &self.path)?;
        }
        let now = batch.now_ms;
        tx.execute(
            "DELETE FROM minute WHERE start_ms < ?1",
            [as_sql(now.saturating_sub(self.limits.minute_retention_ms))],
        )
        .map_err(sql(WHAT))?;
        tx.execute(
            "DELETE FROM hour WHERE start_ms < ?1",
            [as_sql(now.saturating_sub(self.limits.hour_retention_ms))],
        )
        .map_err(sql(WHAT))?;
        tx.commit().map_err(sql(WHAT))?;
        self.hours_done_until_ms = done;
        self.keep_under_cap()
    }

    fn pages(&self) -> Result<(u64, u64, u64), HistoryError> {
        const WHAT: &str = "read the history's size";
        let get = |name: &str| -> Result<u64, HistoryError> {
            let v: i64 = self
                .conn
                .pragma_query_value(None, name, |row| row.get(0))
                .map_err(sql(WHAT))?;
            Ok(as_ms(v))
        };
        Ok((
            get("page_count")?,
            get("freelist_count")?,
            get("page_size")?,
        ))
    }

    /// Bytes in the pages that hold data (the file less its free pages).
    fn used_bytes(&self) -> Result<u64, HistoryError> {
        let (pages, free, size) = self.pages()?;
        Ok((pages - free) * size)
    }

    /// Drops the oldest rollups once the pages in use come near the cap,
    /// down to nine tenths of it; rewrites a file larger than its cap.
    fn keep_under_cap(&mut self) -> Result<Written, HistoryError> {
        const WHAT: &str = "keep the history under its size cap";
        let cap = self.limits.max_bytes;
        let headroom = (cap / 20).max(64 << 10);
        let mut written = Written::default();
        if self.used_bytes()? > cap.saturating_sub(headroom) {
            let target = cap / 10 * 9;
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql(WHAT))?;
            // Minutes whose hour is summed may go; then hours.
            let summed = as_sql(self.hours_done_until_ms.unwrap_or(0));
            for (table, before) in [("minute", summed), ("hour", i64::MAX)] {
                loop {
                    let (pages, free, size): (i64, i64, i64) = (
                        tx.pragma_query_value(None, "page_count", |r| r.get(0))
                            .map_err(sql(WHAT))?,
                        tx.pragma_query_value(None, "freelist_count", |r| r.get(0))
                            .map_err(sql(WHAT))?,
                        tx.pragma_query_value(None, "page_size", |r| r.get(0))
                            .map_err(sql(WHAT))?,
                    );
                    let used = as_ms((pages - free) * size);
                    if used <= target {
                        break;
                    }
                    let mut excess = (used - target) as i64;
                    let mut statement = tx
                        .prepare(&format!(
                            "SELECT start_ms, length(frame) FROM {table}
                             WHERE start_ms < ?1 ORDER BY start_ms LIMIT 256"
                        ))
                        .map_err(sql(WHAT))?;
                    let mut rows = statement.query([before]).map_err(sql(WHAT))?;
                    let mut last = None;
                    while let Some(row) = rows.next().map_err(sql(WHAT))? {
                        let (start, len): (i64, i64) = (
                            row.get(0).map_err(sql(WHAT))?,
                            row.get(1).map_err(sql(WHAT))?,
                        );
                        last = Some(start);
                        // A frame's cell and page share cost a little more.
                        excess -= len + 16;
                        if excess <= 0 {
                            break;
                        }
                    }
                    drop(rows);
                    drop(statement);
                    let Some(last) = last else { break };
                    tx.execute(&format!("DELETE FROM {table} WHERE start_ms <= ?1"), [last])
                        .map_err(sql(WHAT))?;
                    if table == "minute" {
                        written.minutes_cut_before_ms = Some(as_ms(last) + MINUTE);
                    }
                }
            }
            tx.commit().map_err(sql(WHAT))?;
        }
        let (pages, free, size) = self.pages()?;
        if pages * size > cap && free > 0 {
            self.conn.execute_batch("VACUUM").map_err(sql(WHAT))?;
        }
        let (pages, _, size) = self.pages()?;
        written.file_bytes = pages * size;
        Ok(written)
    }

    /// The buckets of `ids` (sorted) with starts in `[from_ms, to_ms)`, per
    /// series id, oldest first. Hours not yet summed come from their minutes.
    pub fn buckets(
        &self,
        resolution: Resolution,
        ids: &[u32],
        from_ms: u64,
        to_ms: u64,
    ) -> Result<HashMap<u32, Vec<(u64, Bucket)>>, HistoryError> {
        // By position in `ids`, which the frames' index gives.
        let mut found: Vec<Vec<(u64, Bucket)>> = vec![Vec::new(); ids.len()];
        let mut read = |table: &str, from: u64, to: u64| -> Result<(), HistoryError> {
            const WHAT: &str = "read rollups";
            if from >= to || ids.is_empty() {
                return Ok(());
            }
            let mut statement = self
                .conn
                .prepare(&format!(
                    "SELECT start_ms, frame FROM {table}
                     WHERE start_ms >= ?1 AND start_ms < ?2 ORDER BY start_ms"
                ))
                .map_err(sql(WHAT))?;
            let mut rows = statement
                .query([as_sql(from), as_sql(to)])
                .map_err(sql(WHAT))?;
            while let Some(row) = rows.next().map_err(sql(WHAT))? {
                let start = as_ms(row.get(0).map_err(sql(WHAT))?);
                let frame = row.get_ref(1).map_err(sql(WHAT))?.as_blob().map_err(|e| {
                    HistoryError::Sql {
                        what: WHAT,
                        source: e.into(),
                    }
                })?;
                decode_selected(frame, ids, |at, _, b| found[at].push((start, b)))
                    .map_err(|e| self.corrupt(format!("{table} {start}: {e}")))?;
            }
            Ok(())
        };
        match resolution {
            Resolution::Raw => {}
            Resolution::Minute => read("minute", from_ms, to_ms)?,
            Resolution::Hour => {
                let done = self.hours_done_until_ms.unwrap_or(0);
                read("hour", from_ms, to_ms.min(done))?;
                read("minute", from_ms.max(done), to_ms)?;
            }
        }
        Ok(ids
            .iter()
            .zip(found)
            .filter(|(_, buckets)| !buckets.is_empty())
            .map(|(&id, buckets)| (id, buckets))
            .collect())
    }

    /// Folds the WAL into the file and empties it (at shutdown).
    pub fn checkpoint(&self) -> Result<(), HistoryError> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .map_err(sql("checkpoint the history"))
    }
}

/// Writes the hour frames of `[from_ms, to_ms)` (whole hours) summed from
/// their minute frames, replacing what was there.
fn sum_hours(
    tx: &rusqlite::Transaction<'_>,
    from_ms: u64,
    to_ms: u64,
    path: &Path,
) -> Result<(), HistoryError> {
    const WHAT: &str = "sum minutes into hours";
    let mut hours: Vec<(u64, Vec<(u32, Bucket)>)> = Vec::new();
    {
        let mut statement = tx
            .prepare(
                "SELECT start_ms, frame FROM minute
                 WHERE start_ms >= ?1 AND start_ms < ?2 ORDER BY start_ms",
            )
            .map_err(sql(WHAT))?;
        let mut rows = statement
            .query([as_sql(from_ms), as_sql(to_ms)])
            .map_err(sql(WHAT))?;
        while let Some(row) = rows.next().map_err(sql(WHAT))? {
            let start = as_ms(row.get(0).map_err(sql(WHAT))?);
            let frame: Vec<u8> = row.get(1).map_err(sql(WHAT))?;
            let mut records = Vec::new();
            decode_frame(&frame, |id, b| records.push((id, b)))
                .map_err(|e| corrupt(path, format!("minute {start}: {e}")))?;
            let hour = start - start % HOUR;
            match hours.last_mut() {
                Some((h, sum)) if *h == hour => *sum = merge_records(sum, &records),
                _ => hours.push((hour, records)),
            }
        }
    }
    for (hour, records) in hours {
        tx.execute(
            "INSERT OR REPLACE INTO hour (start_ms, frame) VALUES (?1, ?2)",
            params![as_sql(hour), encode_frame(&records)],
        )
        .map_err(sql(WHAT))?;
    }
    Ok(())
}

fn corrupt(path: &Path, detail: String) -> HistoryError {
    HistoryError::Corrupt {
        path: path.to_owned(),
        detail,
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), HistoryError> {
    const WHAT: &str = "migrate the history's schema";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(WHAT))?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql(WHAT))?;
    let latest = MIGRATIONS.len() as i64;
    if version > latest {
        return Err(HistoryError::TooNew {
            path: path.to_owned(),
            found: version,
            supported: latest,
        });
    }
    for migration in &MIGRATIONS[usize::try_from(version).unwrap_or(0)..] {
        match migration {
            Migration::Sql(statements) => tx.execute_batch(statements).map_err(sql(WHAT))?,
            Migration::Code(step) => step(&tx, path)?,
        }
    }
    tx.pragma_update(None, "user_version", latest)
        .map_err(sql(WHAT))?;
    tx.commit().map_err(sql(WHAT))
}

/// Version 1 to 2: rewrites every frame with an index.
fn index_frames(tx: &rusqlite::Transaction<'_>, path: &Path) -> Result<(), HistoryError> {
    const WHAT: &str = "add an index to the history's frames";
    for table in ["minute", "hour"] {
        // Starts first, so that no scan of the table is open while its rows
        // are rewritten.
        let starts: Vec<i64> = tx
            .prepare(&format!("SELECT start_ms FROM {table} ORDER BY start_ms"))
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()
            })
            .map_err(sql(WHAT))?;
        let mut read = tx
            .prepare(&format!("SELECT frame FROM {table} WHERE start_ms = ?1"))
            .map_err(sql(WHAT))?;
        let mut write = tx
            .prepare(&format!(
                "UPDATE {table} SET frame = ?2 WHERE start_ms = ?1"
            ))
            .map_err(sql(WHAT))?;
        for start in starts {
            let mut records = Vec::new();
            read.query_row([start], |row| {
                let frame = row.get_ref(0)?.as_blob()?;
                Ok(decode_frame_v1(frame, |id, b| records.push((id, b))))
            })
            .map_err(sql(WHAT))?
            .map_err(|e| corrupt(path, format!("{table} {start}: {e}")))?;
            write
                .execute(params![start, encode_frame(&records)])
                .map_err(sql(WHAT))?;
        }
    }
    Ok(())
}

fn create_private_file(path: &Path) -> Result<(), HistoryError> {
    crate::trust::private_file(path, "create or open the metrics history").map_err(
        |(what, source)| HistoryError::Io {
            what,
            path: path.to_owned(),
            source,
        },
    )
}
