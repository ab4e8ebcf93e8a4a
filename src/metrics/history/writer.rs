//! The history file's single owner: a thread that runs every write and
//! read of `history.db` in order, so the recorder never waits on the disk.
//! Work goes over a **bounded** queue: a batch that finds it full is
//! dropped and counted, never waited for; a read that finds it full fails
//! at once with [`HistoryError::Busy`].
//!
//! The thread also measures what it writes: after each job it reads its own
//! line of `/proc/thread-self/io`, where the kernel counts the bytes the
//! thread dirtied in the page cache for storage (`write_bytes`, what will
//! reach the flash, rewrites of a still-dirty page counted once) and the
//! bytes it passed to `write` calls (`wchar`). Nothing else runs on the
//! thread, so both are the history's own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::HistoryError;
use super::bucket::Bucket;
use super::file::{Batch, File};
use super::query::Resolution;

/// Rollups of several series, per series id, oldest first.
pub(crate) type Buckets = HashMap<u32, Vec<(u64, Bucket)>>;

pub(crate) enum Job {
    Write(Batch),
    Read {
        resolution: Resolution,
        ids: Vec<u32>,
        from_ms: u64,
        to_ms: u64,
        reply: tokio::sync::oneshot::Sender<Result<Buckets, HistoryError>>,
    },
    Flush {
        checkpoint: bool,
        reply: std::sync::mpsc::Sender<()>,
    },
    /// Runs a closure on the thread (tests hold the thread with it).
    #[cfg(test)]
    Run(Box<dyn FnOnce(&mut File) + Send>),
}

/// What the thread has done, shared with the handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub batches_written: AtomicU64,
    pub batches_dropped: AtomicU64,
    pub batches_failed: AtomicU64,
    pub bytes_written: AtomicU64,
    pub bytes_passed: AtomicU64,
    pub file_bytes: AtomicU64,
    /// The size cap dropped minutes before this time (0: never).
    pub minutes_cut_before_ms: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Shared {
    fn note_error(&self, counter: &AtomicU64, error: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }
}

/// The handle to the history file's thread.
pub(crate) struct Writer {
    jobs: Option<SyncSender<Job>>,
    capacity: usize,
    pub shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Moves `file` to a thread of its own with a queue of `capacity` jobs.
    pub fn spawn(file: File, capacity: usize) -> Result<Writer, HistoryError> {
        let (jobs, rx) = sync_channel::<Job>(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let path = file.path().to_owned();
        let thread = std::thread::Builder::new()
            .name("rvm-watchdog-history".into())
            .spawn(move || serve(file, rx, &theirs))
            .map_err(|source| HistoryError::Io {
                what: "start the writer thread for",
                path,
                source,
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            capacity: capacity.max(1),
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a batch without waiting; a full queue drops it, counts it
    /// and gives it back.
    pub fn write(&self, batch: Batch) -> Result<(), Batch> {
        let Some(jobs) = &self.jobs else {
            return Err(batch);
        };
        let (why, batch) = match jobs.try_send(Job::Write(batch)) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(job)) => (HistoryError::Busy(self.capacity), job),
            Err(TrySendError::Disconnected(job)) => (HistoryError::Stopped, job),
        };
        self.shared.note_error(
            &self.shared.batches_dropped,
            format!("cannot write rollups: {why}"),
        );
        match batch {
            Job::Write(batch) => Err(batch),
            _ => unreachable!("the job sent was a write"),
        }
    }

    /// Queues a batch, waiting for room (at shutdown).
    pub fn write_waiting(&self, batch: Batch) -> Result<(), HistoryError> {
        let jobs = self.jobs.as_ref().ok_or(HistoryError::Stopped)?;
        jobs.send(Job::Write(batch))
            .map_err(|_| HistoryError::Stopped)
    }

    /// Queues a read without waiting; the answer comes on the receiver.
    pub fn read(
        &self,
        resolution: Resolution,
        ids: Vec<u32>,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Buckets, HistoryError>>, HistoryError> {
        let jobs = self.jobs.as_ref().ok_or(HistoryError::Stopped)?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        match jobs.try_send(Job::Read {
            resolution,
            ids,
            from_ms,
            to_ms,
            reply,
        }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(HistoryError::Busy(self.capacity)),
            Err(TrySendError::Disconnected(_)) => Err(HistoryError::Stopped),
        }
    }

    /// Waits until every job queued before has run; with `checkpoint`, the
    /// WAL is then folded into the file.
    pub fn flush(&self, checkpoint: bool) -> Result<(), HistoryError> {
        let jobs = self.jobs.as_ref().ok_or(HistoryError::Stopped)?;
        let (reply, done) = std::sync::mpsc::channel();
        jobs.send(Job::Flush { checkpoint, reply })
            .map_err(|_| HistoryError::Stopped)?;
        done.recv().map_err(|_| HistoryError::Stopped)
    }

    /// Queues a job, waiting for room (tests).
    #[cfg(test)]
    pub fn run(&self, job: impl FnOnce(&mut File) + Send + 'static) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Run(Box::new(job)));
        }
    }

    /// Runs what is queued, folds the WAL into the file and stops the thread.
    pub fn stop(&mut self) -> Result<(), HistoryError> {
        let flushed = self.flush(true);
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        flushed
    }
}

fn serve(mut file: File, jobs: Receiver<Job>, shared: &Shared) {
    let start = thread_io();
    let account = || {
        if let (Some((w0, c0)), Some((w, c))) = (start, thread_io()) {
            shared
                .bytes_written
                .store(w.saturating_sub(w0), Ordering::Relaxed);
            shared
                .bytes_passed
                .store(c.saturating_sub(c0), Ordering::Relaxed);
        }
    };
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Write(batch) => {
                match file.write(&batch) {
                    Ok(written) => {
                        shared.batches_written.fetch_add(1, Ordering::Relaxed);
                        shared
                            .file_bytes
                            .store(written.file_bytes, Ordering::Relaxed);
                        if let Some(cut) = written.minutes_cut_before_ms {
                            shared
                                .minutes_cut_before_ms
                                .fetch_max(cut, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot write rollups");
                        shared.note_error(&shared.batches_failed, e.to_string());
                    }
                }
                account();
            }
            Job::Read {
                resolution,
                ids,
                from_ms,
                to_ms,
                reply,
            } => {
                let _ = reply.send(file.buckets(resolution, &ids, from_ms, to_ms));
            }
            Job::Flush { checkpoint, reply } => {
                if checkpoint && let Err(e) = file.checkpoint() {
                    shared.note_error(&shared.batches_failed, e.to_string());
                }
                account();
                let _ = reply.send(());
            }
            #[cfg(test)]
            Job::Run(job) => job(&mut file),
        }
    }
}

/// This thread's `write_bytes` and `wchar`, if the kernel counts them.
fn thread_io() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("write_bytes:")?, field("wchar:")?))
}
