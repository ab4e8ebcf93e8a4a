//! The store's single owner: a thread that runs every query and write in
//! order, so the async daemon never blocks on the disk. Work is sent as a
//! closure over a **bounded** queue: a write that finds it full is dropped
//! and counted, never waited for; a query that finds it full fails at once.
//! Failed and dropped writes are counted in a [`WriterReport`], which the
//! daemon turns into a trouble event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use super::{Store, StoreError};

/// Jobs that may wait for the store's thread.
pub const QUEUE: usize = 4096;

/// The store's single owner. Cheap to clone.
#[derive(Clone)]
pub struct StoreThread {
    jobs: SyncSender<Job>,
    capacity: usize,
    health: Arc<Health>,
}

/// One piece of work for the store's thread.
type StoreJob = Box<dyn FnOnce(&Store) + Send>;

/// A job and whether it may share a transaction with the jobs around it.
enum Job {
    /// Runs on its own, after the open batch is committed.
    Alone(StoreJob),
    /// Joins the open batch (one row appended or upserted).
    Batched(StoreJob),
    /// A read: runs inside the open batch, if there is one, and sees its
    /// rows (one connection), without committing it. Readers polling the
    /// API do not cost the flash a commit each.
    Read(StoreJob),
}

/// A batch is committed once it is this old (each commit writes every page
/// it touched, a few per table and index, whatever the rows: a
/// crash-looping target's events, ladder, alerts and incident record in
/// one commit cost a fraction of what they cost apart) …
const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);
/// … or this large.
const MAX_BATCH: usize = 1024;

#[derive(Default)]
struct Health {
    failed: AtomicU64,
    dropped: AtomicU64,
    commits: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Health {
    fn note(&self, counter: &AtomicU64, error: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }
}

/// Writes that went wrong since the store's thread started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterReport {
    /// Writes that failed.
    pub failed: u64,
    /// Writes dropped because the queue was full.
    pub dropped: u64,
    /// The last failure, for people.
    pub last_error: Option<String>,
}

impl StoreThread {
    /// Moves `store` to a thread of its own, with a queue of [`QUEUE`] jobs.
    pub fn spawn(store: Store) -> StoreThread {
        Self::with_capacity(store, QUEUE)
    }

    /// [`StoreThread::spawn`] with a queue of `capacity` jobs.
    pub fn with_capacity(store: Store, capacity: usize) -> StoreThread {
        let (jobs, rx) = sync_channel::<Job>(capacity);
        let health: Arc<Health> = Arc::default();
        let counts = health.clone();
        std::thread::Builder::new()
            .name("rvm-watchdog-store".into())
            .spawn(move || run(&store, &rx, &counts))
            .expect("start the store thread");
        StoreThread {
            jobs,
            capacity,
            health,
        }
    }

    /// Queues a write without waiting; a failure or a full queue is counted
    /// in [`StoreThread::report`], never fatal.
    pub fn write(
        &self,
        what: &'static str,
        job: impl FnOnce(&Store) -> Result<(), StoreError> + Send + 'static,
    ) {
        self.send(what, job, false);
    }

    /// Queues a write that may share a transaction with the writes around
    /// it (an event appended, a ladder saved): a burst of them is
    /// committed once, within 10 s, which spares the flash. A SIGKILL loses at most that
    /// much of them; the journal has every event. Like
    /// [`StoreThread::write`], never waits.
    pub fn write_batched(
        &self,
        what: &'static str,
        job: impl FnOnce(&Store) -> Result<(), StoreError> + Send + 'static,
    ) {
        self.send(what, job, true);
    }

    fn send(
        &self,
        what: &'static str,
        job: impl FnOnce(&Store) -> Result<(), StoreError> + Send + 'static,
        batched: bool,
    ) {
        let health = self.health.clone();
        let job: StoreJob = Box::new(move |store| {
            if let Err(e) = job(store) {
                tracing::debug!(error = %e, "cannot {what}");
                health.note(&health.failed, format!("cannot {what}: {e}"));
            }
        });
        let job = if batched {
            Job::Batched(job)
        } else {
            Job::Alone(job)
        };
        if let Err(TrySendError::Full(_)) = self.jobs.try_send(job) {
            self.health.note(
                &self.health.dropped,
                format!("cannot {what}: {}", StoreError::Busy(self.capacity)),
            );
        }
    }

    /// Transactions the store thread committed for batched writes.
    pub fn batch_commits(&self) -> u64 {
        self.health.commits.load(Ordering::Relaxed)
    }

    /// Runs `job` on the store's thread and answers its result. It sees
    /// every write queued before it, committed or not; it commits nothing
    /// itself (a read, or a write that may wait for the next commit).
    pub async fn query<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.ask(job, false).await
    }

    /// [`StoreThread::query`] after the open batch is committed, run on its
    /// own: for a job that must only act on what is on disk (the outbox
    /// read before a send) or that syncs fully (a reboot recorded).
    pub async fn query_committed<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.ask(job, true).await
    }

    async fn ask<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        committed: bool,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: StoreJob = Box::new(move |store| {
            let _ = tx.send(job(store));
        });
        let sent = self.jobs.try_send(if committed {
            Job::Alone(job)
        } else {
            Job::Read(job)
        });
        match sent {
            Ok(()) => rx.await.unwrap_or(Err(StoreError::Stopped)),
            Err(TrySendError::Full(_)) => Err(StoreError::Busy(self.capacity)),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Stopped),
        }
    }

    /// Writes that failed or were dropped so far.
    pub fn report(&self) -> WriterReport {
        WriterReport {
            failed: self.health.failed.load(Ordering::Relaxed),
            dropped: self.health.dropped.load(Ordering::Relaxed),
            last_error: self.health.last_error.lock().ok().and_then(|l| l.clone()),
        }
    }
}

/// The store thread: runs jobs in order; batched ones share a transaction
/// until a lone job, [`MAX_AGE`] or [`MAX_BATCH`] ends it. A lone job (a committed query, a fully synced write) sees
/// every batched write before it committed; a read runs inside the batch.
fn run(store: &Store, rx: &std::sync::mpsc::Receiver<Job>, health: &Health) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut open: Option<(std::time::Instant, usize)> = None;
    let commit = |open: &mut Option<(std::time::Instant, usize)>| {
        if open.take().is_some() {
            match store.end_batch() {
                Ok(()) => {
                    health.commits.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => health.note(&health.failed, format!("cannot commit writes: {e}")),
            }
        }
    };
    loop {
        let next = match open {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some((since, _)) => {
                let left = MAX_AGE.saturating_sub(since.elapsed());
                rx.recv_timeout(left)
            }
        };
        match next {
            Ok(Job::Batched(job)) => {
                if open.is_none() {
                    match store.begin_batch() {
                        Ok(()) => open = Some((std::time::Instant::now(), 0)),
                        Err(e) => health.note(&health.failed, format!("cannot start writes: {e}")),
                    }
                }
                job(store);
                if let Some((since, n)) = &mut open {
                    *n += 1;
                    if *n >= MAX_BATCH || since.elapsed() >= MAX_AGE {
                        commit(&mut open);
                    }
                }
            }
            Ok(Job::Alone(job)) => {
                commit(&mut open);
                job(store);
            }
            Ok(Job::Read(job)) => {
                job(store);
                // A long read inside a batch still ends it in time.
                if open.is_some_and(|(since, _)| since.elapsed() >= MAX_AGE) {
                    commit(&mut open);
                }
            }
            Err(RecvTimeoutError::Timeout) => commit(&mut open),
            Err(RecvTimeoutError::Disconnected) => {
                commit(&mut open);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_full_queue_drops_writes_and_counts_them_without_waiting() {
        let store = Store::open_in_memory().unwrap();
        let thread = StoreThread::with_capacity(store, 2);
        // Hold the thread on its first job until the test lets it go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        thread.write("hold the thread", move |_| {
            let _ = started_tx.send(());
            let _ = held.recv();
            Ok(())
        });
        started.recv().unwrap();
        for _ in 0..5 {
            thread.write("append to the event log", |_| Ok(()));
        }
        // Two fit in the queue; three are dropped, and said so.
        let report = thread.report();
        assert_eq!(report.dropped, 3, "{report:?}");
        assert_eq!(report.failed, 0);
        assert!(
            report.last_error.as_deref().is_some_and(|e| e.contains(
                "cannot append to the event log: the state store's queue is full (2 jobs waiting)"
            )),
            "{report:?}"
        );
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        loop {
            if rt.block_on(thread.query(|_| Ok(()))).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the queue drains once the thread goes on"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_failed_write_is_counted_with_its_error() {
        let thread = StoreThread::spawn(Store::open_in_memory().unwrap());
        thread.write("save a ladder's state", |_| Err(StoreError::Stopped));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(thread.query(|_| Ok(()))).unwrap();
        let report = thread.report();
        assert_eq!(report.failed, 1);
        assert_eq!(
            report.last_error.as_deref(),
            Some("cannot save a ladder's state: the state store has stopped")
        );
    }

    #[test]
    fn a_burst_of_events_is_one_commit_and_a_query_or_a_synced_write_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let thread = StoreThread::with_capacity(store, 128);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        thread.write("hold the thread", move |_| {
            let _ = started_tx.send(());
            let _ = held.recv();
            Ok(())
        });
        started.recv().unwrap();
        for i in 0..50 {
            thread.write_batched("append to the event log", move |s| {
                s.append_event(&super::super::NewEvent::new(
                    std::time::SystemTime::now(),
                    "probe-changed",
                    format!("event {i}"),
                ))
                .map(drop)
            });
        }
        release.send(()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // A query sees the open batch, inside it: nothing is committed for it.
        let events = rt
            .block_on(thread.query(|s| {
                s.events(&super::super::EventQuery {
                    limit: 100,
                    ..Default::default()
                })
            }))
            .unwrap();
        assert_eq!(events.len(), 50);
        assert_eq!(thread.batch_commits(), 0, "a read commits nothing");
        // A committed query ends the batch first: fifty appends, one commit.
        let on_disk = rt
            .block_on(thread.query_committed(|s| {
                s.events(&super::super::EventQuery {
                    limit: 100,
                    ..Default::default()
                })
            }))
            .unwrap();
        assert_eq!(on_disk.len(), 50);
        assert_eq!(thread.batch_commits(), 1, "fifty appends, one commit");
        // A fully synced write right after a batched one: the batch is
        // committed first (synchronous cannot change inside a transaction).
        thread.write_batched("save a ladder's state", |s| {
            s.put_state("ladder:x", &serde_json::json!({"step": 1}))
        });
        rt.block_on(thread.query_committed(|s| {
            s.record_reboot(std::time::SystemTime::now(), Some("x"), "test", "boot-1")
        }))
        .unwrap();
        assert_eq!(thread.batch_commits(), 2);
        let report = thread.report();
        assert_eq!((report.failed, report.dropped), (0, 0), "{report:?}");
        // A lone batched write is committed within its age limit.
        thread.write_batched("save a ladder's state", |s| {
            s.put_state("ladder:y", &serde_json::json!({"step": 2}))
        });
        let deadline = Instant::now() + MAX_AGE * 3;
        while thread.batch_commits() < 3 {
            assert!(Instant::now() < deadline, "the batch was never committed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
