//! The on-device metrics history: recent samples at full resolution in RAM,
//! rollups of them in a file that survives restarts.
//!
//! Words used here:
//!
//! - The **RAM ring** of a series holds its samples as recorded for the
//!   last [`HistoryConfig::ram_window`] (an hour), compressed (see
//!   `ring.rs`: two bits to at most ten bytes a sample). It is lost when the
//!   watchdog stops.
//! - A **rollup** summarises a series over a minute or an hour: count, min,
//!   max, sum (hence mean), last, and for a counter its **increase**, the
//!   growth over the interval with resets counted as growth from zero, so a
//!   rate can be taken across a reset. A minute is **open** while samples
//!   may still join it and **closed** once it ended
//!   [`HistoryConfig::close_delay`] ago; a sample for a closed minute still
//!   joins the ring but no rollup (it is counted as late).
//! - The **history file** is `history.db` in the state directory, beside
//!   `state.db`: 1-minute rollups kept [`HistoryConfig::minute_retention`]
//!   (7 days), 1-hour rollups kept [`HistoryConfig::hour_retention`] (90
//!   days), and never more than [`HistoryConfig::max_disk_mib`]. Its layout
//!   and journal are described in `file.rs`.
//! - The **writer** is the thread that owns the file (see `writer.rs`).
//!   [`History::close_minutes`] sends it one batch of the minutes that
//!   closed, written in one transaction; a batch that finds the queue full
//!   is dropped and counted, so recording never waits on the disk.
//!
//! Time is always given by the caller (`now_ms`, a sample's `at_ms`), never
//! read here: tests drive the history with a clock of their own.
//!
//! Restarts: on [`History::open`] the rollups come back from the file; the
//! RAM ring starts empty. [`History::shutdown`] writes the open minute as
//! it stands, merged with the rest of that minute should the watchdog start
//! again within it. Without a shutdown (a crash, SIGKILL) the open minute is
//! lost, and so are batches still queued (the writer normally keeps up, so
//! none are); every committed batch survives. A counter's first sample after
//! a restart counts no increase: its growth while the watchdog was down is
//! not known.
//!
//! Not-finite values are refused, as are samples not later than their
//! series' last one, samples whose kind differs from their series' first,
//! and new series beyond [`HistoryConfig::max_series`]; each is counted in
//! [`HistoryStats`].

mod bucket;
mod file;
mod query;
mod ring;
mod trend;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use file::{FILE_NAME, WAL_LIMIT};
pub use query::{Horizons, Point, Resolution, choose_resolution};
pub use trend::{Eta, Fit, Threshold};

use bucket::{Bucket, counter_increase};
use file::{Batch, File, Limits};
use ring::Ring;
use writer::{Buckets, Writer};

use super::{Kind, Sample, SeriesKey};

const MINUTE: u64 = 60_000;
const HOUR: u64 = 3_600_000;

/// How much the history keeps, and where it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// How far back the RAM ring keeps each series' samples.
    pub ram_window: Duration,
    /// The most samples one series' ring keeps, however fast it is sampled
    /// (the ring may hold up to 120 more).
    pub max_points_per_series: usize,
    /// The most series the history tracks; samples of further series are
    /// refused and counted.
    pub max_series: usize,
    /// How long 1-minute rollups are kept.
    pub minute_retention: Duration,
    /// How long 1-hour rollups are kept.
    pub hour_retention: Duration,
    /// The most the history file may hold, in MiB (the WAL beside it adds
    /// up to [`WAL_LIMIT`]). Past it the oldest minutes go first, then the
    /// oldest hours.
    pub max_disk_mib: u64,
    /// How long after its end a minute stays open for late samples.
    pub close_delay: Duration,
    /// Batches that may wait for the writer before further ones are dropped.
    pub queue: usize,
}

impl Default for HistoryConfig {
    /// An hour in RAM, 7 days of minutes, 90 days of hours, 256 MiB.
    fn default() -> Self {
        HistoryConfig {
            ram_window: Duration::from_secs(3600),
            max_points_per_series: 7200,
            max_series: 10_000,
            minute_retention: Duration::from_secs(7 * 86_400),
            hour_retention: Duration::from_secs(90 * 86_400),
            max_disk_mib: 256,
            close_delay: Duration::from_secs(5),
            queue: 16,
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Why the history failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The writer's queue is full: the disk is too slow or the thread stuck.
    /// Retryable.
    #[error("the metrics history's queue is full ({0} jobs waiting)")]
    Busy(usize),
    /// The writer has stopped (the history was shut down).
    #[error("the metrics history has stopped")]
    Stopped,
    /// The state directory or the file could not be created or opened.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being attempted.
        what: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite could not open or set up the file.
    #[error("cannot open the metrics history {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The file is not a SQLite database or holds data that cannot be read.
    /// The history can be started afresh by moving the file aside.
    #[error("the metrics history {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file was written by a newer watchdog (a downgrade).
    #[error(
        "the metrics history {} has schema version {found}, newer than this watchdog's {supported}",
        path.display()
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A statement failed on the open file.
    #[error("cannot {what}: {source}")]
    Sql {
        /// What was being attempted.
        what: &'static str,
        /// The cause.
        source: rusqlite::Error,
    },
}

impl HistoryError {
    /// Whether the same call may succeed later without anyone repairing
    /// anything: the queue was full, or SQLite found the file busy, the disk
    /// full, or met an I/O error.
    pub fn is_retryable(&self) -> bool {
        match self {
            HistoryError::Busy(_) => true,
            HistoryError::Open { source, .. } | HistoryError::Sql { source, .. } => {
                crate::store::is_transient(source)
            }
            _ => false,
        }
    }
}

/// Series by name and label values: the exact name, and each label given
/// with exactly the value given (other labels may be anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// The metric name.
    pub name: String,
    /// Labels the series must have, with these values.
    pub labels: Vec<(String, String)>,
}

impl Matcher {
    /// A matcher from a name and label equalities.
    pub fn new<'a>(name: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Matcher {
        Matcher {
            name: name.to_owned(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// Whether `key` is one of the series this matcher names.
    pub fn matches(&self, key: &SeriesKey) -> bool {
        key.name == self.name && self.labels.iter().all(|(k, v)| key.label(k) == Some(v))
    }
}

/// Which series a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One series.
    Key(SeriesKey),
    /// Every series that matches.
    Match(Matcher),
}

impl From<SeriesKey> for Selector {
    fn from(key: SeriesKey) -> Selector {
        Selector::Key(key)
    }
}

impl From<Matcher> for Selector {
    fn from(matcher: Matcher) -> Selector {
        Selector::Match(matcher)
    }
}

/// A query: which series, over `[from_ms, to_ms)`, with points every `step_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Which series.
    pub selector: Selector,
    /// The start of the range, in milliseconds since the epoch.
    pub from_ms: u64,
    /// The end of the range (excluded).
    pub to_ms: u64,
    /// The spacing wanted between points; 0 for raw samples where the
    /// range allows them.
    pub step_ms: u64,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Where the points came from.
    pub resolution: Resolution,
    /// The spacing of the points (1 ms for raw samples each on its own).
    pub step_ms: u64,
    /// One entry per series selected, in key order; points oldest first,
    /// steps without samples left out.
    pub series: Vec<SeriesPoints>,
}

/// One series' points in an [`Answer`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    /// The series.
    pub key: SeriesKey,
    /// How its values are read.
    pub kind: Kind,
    /// Its points, oldest first.
    pub points: Vec<Point>,
}

/// A series the history holds, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesInfo {
    /// The series.
    pub key: SeriesKey,
    /// How its values are read.
    pub kind: Kind,
    /// The resolutions that hold data of it, finest first.
    pub resolutions: Vec<Resolution>,
}

/// What the history has done since it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Series tracked.
    pub series: usize,
    /// Samples in the RAM rings.
    pub ram_samples: usize,
    /// Heap bytes the RAM rings and open rollups use.
    pub ram_bytes: usize,
    /// Samples recorded.
    pub recorded: u64,
    /// Samples recorded in the ring too late to join a rollup.
    pub late: u64,
    /// Samples refused: not later than their series' last.
    pub out_of_order: u64,
    /// Samples refused: not a finite number.
    pub not_finite: u64,
    /// Samples refused: of another kind than their series.
    pub kind_changed: u64,
    /// Samples refused: their series would pass [`HistoryConfig::max_series`].
    pub too_many_series: u64,
    /// Batches of rollups written.
    pub batches_written: u64,
    /// Batches of rollups dropped because the writer's queue was full.
    pub batches_dropped: u64,
    /// Batches of rollups that failed to be written.
    pub batches_failed: u64,
    /// Bytes the writer sent toward storage (see [`History::bytes_written`]).
    pub bytes_written: u64,
    /// Bytes the writer passed to `write` calls, before the page cache
    /// merged rewrites of the same pages.
    pub bytes_passed: u64,
    /// The history file's size after the last batch.
    pub file_bytes: u64,
    /// The last failure, for people.
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Series {
    id: u32,
    /// Shared with the index, and with whoever asks for it
    /// ([`History::shared_key`]): a series' key is kept once.
    key: Arc<SeriesKey>,
    kind: Kind,
    ring: Ring,
    /// The open minute's start and rollup.
    open: Option<(u64, Bucket)>,
    /// A counter's last value that joined a rollup.
    previous: Option<f64>,
    /// The newest minute of it sent to the file, or found there.
    minute_last_ms: Option<u64>,
    /// The newest hour of it in the file (an open hour counts).
    hour_last_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct Counts {
    recorded: u64,
    late: u64,
    out_of_order: u64,
    not_finite: u64,
    kind_changed: u64,
    too_many_series: u64,
}

/// The metrics history. See the [module documentation](self).
///
/// Owned by one task, the recorder; recording and closing minutes never
/// block. Rollup queries are answered by the writer thread
/// ([`PendingQuery`]).
pub struct History {
    config: HistoryConfig,
    series: Vec<Series>,
    index: HashMap<Arc<SeriesKey>, usize>,
    next_id: u32,
    /// Series not yet sent to the file.
    new_series: Vec<(u32, Arc<SeriesKey>, Kind)>,
    /// Minutes some series have left but not yet closed: start, rollups.
    pending: BTreeMap<u64, Vec<(u32, Bucket)>>,
    /// Every minute before this is closed.
    closed_until_ms: u64,
    /// This run's first sample.
    ram_since_ms: Option<u64>,
    counts: Counts,
    writer: Writer,
}

impl History {
    /// Opens `dir/history.db` (creating it), reads back the series and
    /// rollups it holds, and starts the writer thread. Call from a
    /// blocking context: it reads the file.
    pub fn open(dir: &Path, config: HistoryConfig) -> Result<History, HistoryError> {
        let limits = Limits {
            minute_retention_ms: ms(config.minute_retention),
            hour_retention_ms: ms(config.hour_retention),
            max_bytes: config.max_disk_mib.saturating_mul(1 << 20),
        };
        let (file, stored) = File::open(dir, limits)?;
        let writer = Writer::spawn(file, config.queue)?;
        let mut history = History {
            config,
            series: Vec::with_capacity(stored.len()),
            index: HashMap::with_capacity(stored.len()),
            next_id: 0,
            new_series: Vec::new(),
            pending: BTreeMap::new(),
            closed_until_ms: 0,
            ram_since_ms: None,
            counts: Counts::default(),
            writer,
        };
        for s in stored {
            history.next_id = history.next_id.max(s.id + 1);
            let key = Arc::new(s.key);
            history.index.insert(Arc::clone(&key), history.series.len());
            history.series.push(Series {
                id: s.id,
                key,
                kind: s.kind,
                ring: Ring::default(),
                open: None,
                previous: None,
                minute_last_ms: s.minute_last_ms,
                hour_last_ms: s.hour_last_ms.max(s.minute_last_ms.map(|m| m - m % HOUR)),
            });
        }
        Ok(history)
    }

    /// Records a sample: into its series' ring, and into the open minute's
    /// rollup unless that minute has closed. Never blocks.
    pub fn record(&mut self, sample: &Sample) {
        let (at, value) = (sample.at_ms, sample.value);
        if !value.is_finite() {
            self.counts.not_finite += 1;
            return;
        }
        let i = match self.index.get(&sample.key) {
            Some(&i) => i,
            None => {
                if self.series.len() >= self.config.max_series {
                    self.counts.too_many_series += 1;
                    return;
                }
                let id = self.next_id;
                self.next_id += 1;
                let key = Arc::new(sample.key.clone());
                self.new_series.push((id, Arc::clone(&key), sample.kind));
                self.index.insert(Arc::clone(&key), self.series.len());
                self.series.push(Series {
                    id,
                    key,
                    kind: sample.kind,
                    ring: Ring::default(),
                    open: None,
                    previous: None,
                    minute_last_ms: None,
                    hour_last_ms: None,
                });
                self.series.len() - 1
            }
        };
        let s = &mut self.series[i];
        if s.kind != sample.kind {
            self.counts.kind_changed += 1;
            return;
        }
        if !s.ring.push(at, value) {
            self.counts.out_of_order += 1;
            return;
        }
        s.ring.prune(
            at.saturating_sub(ms(self.config.ram_window)),
            self.config.max_points_per_series,
        );
        self.counts.recorded += 1;
        self.ram_since_ms = Some(self.ram_since_ms.map_or(at, |t| t.min(at)));
        let minute = at - at % MINUTE;
        if minute < self.closed_until_ms {
            // The counter's previous value stays: its next sample's increase
            // covers this one's.
            self.counts.late += 1;
            return;
        }
        let increase = match s.kind {
            Kind::Gauge => None,
            Kind::Counter => {
                let growth = s.previous.map_or(0.0, |p| counter_increase(p, value));
                s.previous = Some(value);
                Some(growth)
            }
        };
        match &mut s.open {
            Some((start, bucket)) if *start == minute => bucket.add(value, increase),
            open => {
                if let Some((start, bucket)) = open.take() {
                    self.pending.entry(start).or_default().push((s.id, bucket));
                }
                *open = Some((minute, Bucket::of(value, increase)));
            }
        }
    }

    /// Closes every minute that ended [`HistoryConfig::close_delay`] before
    /// `now_ms` and queues them for the file as one batch; also applies
    /// retention (in the writer) and trims the rings of series gone quiet.
    /// Call it every few seconds; it does nothing new within a minute.
    /// Never blocks: a full queue drops the batch and counts it.
    pub fn close_minutes(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(ms(self.config.close_delay));
        let closed_until = cutoff - cutoff % MINUTE;
        if closed_until <= self.closed_until_ms {
            return;
        }
        let ram_from = now_ms.saturating_sub(ms(self.config.ram_window));
        for s in &mut self.series {
            if let Some((start, _)) = s.open
                && start < closed_until
                && let Some((start, bucket)) = s.open.take()
            {
                self.pending.entry(start).or_default().push((s.id, bucket));
            }
            s.ring.prune(ram_from, self.config.max_points_per_series);
        }
        let open = self.pending.split_off(&closed_until);
        let closed = std::mem::replace(&mut self.pending, open);
        // A dropped batch is counted in the writer's report.
        let _ = self.send(now_ms, closed_until, closed, false);
        self.closed_until_ms = closed_until;
    }

    fn send(
        &mut self,
        now_ms: u64,
        closed_until_ms: u64,
        minutes: BTreeMap<u64, Vec<(u32, Bucket)>>,
        wait: bool,
    ) -> Result<(), HistoryError> {
        let minutes: Vec<(u64, Vec<(u32, Bucket)>)> = minutes
            .into_iter()
            .map(|(start, mut records)| {
                records.sort_unstable_by_key(|r| r.0);
                (start, records)
            })
            .collect();
        let batch = Batch {
            now_ms,
            closed_until_ms,
            new_series: std::mem::take(&mut self.new_series),
            minutes,
        };
        let sent_minutes: Vec<(u64, Vec<u32>)> = batch
            .minutes
            .iter()
            .map(|(start, records)| (*start, records.iter().map(|r| r.0).collect()))
            .collect();
        if wait {
            let ids = batch.new_series.clone();
            self.writer
                .write_waiting(batch)
                .inspect_err(|_| self.new_series = ids)?;
        } else if let Err(batch) = self.writer.write(batch) {
            // The series must reach the file with a later batch.
            self.new_series = batch.new_series;
            return Err(HistoryError::Busy(self.config.queue));
        }
        for (start, ids) in sent_minutes {
            for id in ids {
                // Series are kept in id order.
                if let Ok(i) = self.series.binary_search_by_key(&id, |s| s.id) {
                    let s = &mut self.series[i];
                    s.minute_last_ms = s.minute_last_ms.max(Some(start));
                    s.hour_last_ms = s.hour_last_ms.max(Some(start - start % HOUR));
                }
            }
        }
        Ok(())
    }

    /// Answers a query. Raw points come from the RAM ring at once; rollups
    /// are read by the writer thread, behind the batches already queued, so
    /// a minute just closed is in the answer. Fails with
    /// [`HistoryError::Busy`] when the queue is full.
    pub fn query(&self, query: &Query, now_ms: u64) -> PendingQuery {
        let mut selected: Vec<&Series> = match &query.selector {
            Selector::Key(key) => self
                .index
                .get(key)
                .map(|&i| &self.series[i])
                .into_iter()
                .collect(),
            Selector::Match(m) => self.series.iter().filter(|s| m.matches(&s.key)).collect(),
        };
        selected.sort_by(|a, b| a.key.cmp(&b.key));
        let resolution = choose_resolution(query.from_ms, query.step_ms, self.horizons(now_ms));
        let step_ms = resolution.step_for(query.step_ms);
        let (from, to) = (query.from_ms, query.to_ms);
        if resolution == Resolution::Raw {
            let series = selected
                .iter()
                .map(|s| {
                    let (before, samples) = s.ring.range(from, to);
                    let buckets = query::sample_buckets(s.kind, before.map(|b| b.1), &samples);
                    SeriesPoints {
                        key: SeriesKey::clone(&s.key),
                        kind: s.kind,
                        points: query::to_points(buckets, step_ms),
                    }
                })
                .collect();
            return PendingQuery {
                resolution,
                step_ms,
                state: Pending::Ready(Ok(series)),
            };
        }
        let series: Vec<PendingSeries> = selected
            .iter()
            .map(|s| {
                let mut in_ram: Vec<(u64, Bucket)> = self
                    .pending
                    .range(from..to)
                    .flat_map(|(start, records)| {
                        records
                            .iter()
                            .filter(|r| r.0 == s.id)
                            .map(|r| (*start, r.1))
                    })
                    .collect();
                in_ram.extend(s.open.filter(|(start, _)| (from..to).contains(start)));
                PendingSeries {
                    id: s.id,
                    key: SeriesKey::clone(&s.key),
                    kind: s.kind,
                    in_ram,
                }
            })
            .collect();
        let mut ids: Vec<u32> = series.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        let state = match self.writer.read(resolution, ids, from, to) {
            Ok(reply) => Pending::File { series, reply },
            Err(e) => Pending::Ready(Err(e)),
        };
        PendingQuery {
            resolution,
            step_ms,
            state,
        }
    }

    fn horizons(&self, now_ms: u64) -> Horizons {
        let cut = self
            .writer
            .shared
            .minutes_cut_before_ms
            .load(Ordering::Relaxed);
        Horizons {
            raw_from_ms: self
                .ram_since_ms
                .map(|since| since.max(now_ms.saturating_sub(ms(self.config.ram_window)))),
            minute_from_ms: now_ms
                .saturating_sub(ms(self.config.minute_retention))
                .max(cut),
        }
    }

    /// Every series the history holds data of, in key order, with the
    /// resolutions that hold it as of `now_ms`.
    pub fn series(&self, now_ms: u64) -> Vec<SeriesInfo> {
        let horizons = self.horizons(now_ms);
        let hour_from = now_ms.saturating_sub(ms(self.config.hour_retention));
        let mut pending_ids: Vec<u32> = self.pending.values().flatten().map(|r| r.0).collect();
        pending_ids.sort_unstable();
        let mut out: Vec<SeriesInfo> = self
            .series
            .iter()
            .filter_map(|s| {
                let in_ram = s.open.is_some() || pending_ids.binary_search(&s.id).is_ok();
                let mut resolutions = Vec::new();
                if s.ring.len() > 0 {
                    resolutions.push(Resolution::Raw);
                }
                if in_ram
                    || s.minute_last_ms
                        .is_some_and(|m| m >= horizons.minute_from_ms)
                {
                    resolutions.push(Resolution::Minute);
                }
                if in_ram || s.hour_last_ms.is_some_and(|h| h + HOUR > hour_from) {
                    resolutions.push(Resolution::Hour);
                }
                (!resolutions.is_empty()).then(|| SeriesInfo {
                    key: SeriesKey::clone(&s.key),
                    kind: s.kind,
                    resolutions,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// The history's own copy of `key`, if it tracks that series: callers
    /// that keep keys of their own share it instead of keeping another.
    pub fn shared_key(&self, key: &SeriesKey) -> Option<Arc<SeriesKey>> {
        self.index
            .get(key)
            .map(|&i| Arc::clone(&self.series[i].key))
    }

    /// Bytes the history has sent toward storage since it was opened: what
    /// the writer thread dirtied in the page cache for the file and its
    /// WAL, as the kernel counts it for the thread (`write_bytes` of
    /// `/proc/thread-self/io`; 0 where the kernel keeps no such count or
    /// the file is on a RAM disk). Updated after each batch.
    pub fn bytes_written(&self) -> u64 {
        self.writer.shared.bytes_written.load(Ordering::Relaxed)
    }

    /// What the history has done since it was opened.
    pub fn stats(&self) -> HistoryStats {
        let shared = &self.writer.shared;
        let ram_bytes = self
            .series
            .iter()
            .map(|s| s.ring.heap_bytes() + std::mem::size_of::<Series>())
            .sum::<usize>()
            + self
                .pending
                .values()
                .map(|v| v.capacity() * 48)
                .sum::<usize>();
        HistoryStats {
            series: self.series.len(),
            ram_samples: self.series.iter().map(|s| s.ring.len()).sum(),
            ram_bytes,
            recorded: self.counts.recorded,
            late: self.counts.late,
            out_of_order: self.counts.out_of_order,
            not_finite: self.counts.not_finite,
            kind_changed: self.counts.kind_changed,
            too_many_series: self.counts.too_many_series,
            batches_written: shared.batches_written.load(Ordering::Relaxed),
            batches_dropped: shared.batches_dropped.load(Ordering::Relaxed),
            batches_failed: shared.batches_failed.load(Ordering::Relaxed),
            bytes_written: shared.bytes_written.load(Ordering::Relaxed),
            bytes_passed: shared.bytes_passed.load(Ordering::Relaxed),
            file_bytes: shared.file_bytes.load(Ordering::Relaxed),
            last_error: shared.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    /// Waits until the writer has written every batch queued so far.
    /// Blocks: call from a blocking context.
    pub fn flush(&self) -> Result<(), HistoryError> {
        self.writer.flush(false)
    }

    /// Writes the open minutes as they stand, waits for the writer, folds
    /// the WAL into the file and stops the writer. Blocks.
    pub fn shutdown(mut self, now_ms: u64) -> Result<(), HistoryError> {
        for s in &mut self.series {
            if let Some((start, bucket)) = s.open.take() {
                self.pending.entry(start).or_default().push((s.id, bucket));
            }
        }
        let minutes = std::mem::take(&mut self.pending);
        let closed_until = self.closed_until_ms;
        self.send(now_ms, closed_until, minutes, true)?;
        self.writer.stop()
    }
}

struct PendingSeries {
    id: u32,
    key: SeriesKey,
    kind: Kind,
    in_ram: Vec<(u64, Bucket)>,
}

enum Pending {
    Ready(Result<Vec<SeriesPoints>, HistoryError>),
    File {
        series: Vec<PendingSeries>,
        reply: tokio::sync::oneshot::Receiver<Result<Buckets, HistoryError>>,
    },
}

/// A query on its way: raw answers are ready, rollups wait for the writer.
pub struct PendingQuery {
    resolution: Resolution,
    step_ms: u64,
    state: Pending,
}

impl PendingQuery {
    /// The resolution chosen for the query.
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// Waits for the answer without blocking the thread.
    pub async fn answer(self) -> Result<Answer, HistoryError> {
        let (resolution, step_ms) = (self.resolution, self.step_ms);
        let series = match self.state {
            Pending::Ready(series) => series?,
            Pending::File { series, reply } => {
                let file = reply.await.map_err(|_| HistoryError::Stopped)??;
                assemble(series, file, step_ms)
            }
        };
        Ok(Answer {
            resolution,
            step_ms,
            series,
        })
    }

    /// Waits for the answer, blocking the thread. Not for async code.
    pub fn wait(self) -> Result<Answer, HistoryError> {
        let (resolution, step_ms) = (self.resolution, self.step_ms);
        let series = match self.state {
            Pending::Ready(series) => series?,
            Pending::File { series, reply } => {
                let file = reply.blocking_recv().map_err(|_| HistoryError::Stopped)??;
                assemble(series, file, step_ms)
            }
        };
        Ok(Answer {
            resolution,
            step_ms,
            series,
        })
    }
}

fn assemble(series: Vec<PendingSeries>, mut file: Buckets, step_ms: u64) -> Vec<SeriesPoints> {
    series
        .into_iter()
        .map(|s| {
            let mut buckets = file.remove(&s.id).unwrap_or_default();
            buckets.extend(s.in_ram);
            // Stable: what the file holds comes before what is still in RAM.
            buckets.sort_by_key(|b| b.0);
            SeriesPoints {
                key: s.key,
                kind: s.kind,
                points: query::to_points(buckets, step_ms),
            }
        })
        .collect()
}
