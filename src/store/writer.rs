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
    jobs: SyncSender<StoreJob>,
    capacity: usize,
    health: Arc<Health>,
}

/// One piece of work for the store's thread.
type StoreJob = Box<dyn FnOnce(&Store) + Send>;

#[derive(Default)]
struct Health {
    failed: AtomicU64,
    dropped: AtomicU64,
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
        let (jobs, rx) = sync_channel::<StoreJob>(capacity);
        std::thread::Builder::new()
            .name("rvm-watchdog-store".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&store);
                }
            })
            .expect("start the store thread");
        StoreThread {
            jobs,
            capacity,
            health: Arc::default(),
        }
    }

    /// Queues a write without waiting; a failure or a full queue is counted
    /// in [`StoreThread::report`], never fatal.
    pub fn write(
        &self,
        what: &'static str,
        job: impl FnOnce(&Store) -> Result<(), StoreError> + Send + 'static,
    ) {
        let health = self.health.clone();
        let sent = self.jobs.try_send(Box::new(move |store| {
            if let Err(e) = job(store) {
                tracing::debug!(error = %e, "cannot {what}");
                health.note(&health.failed, format!("cannot {what}: {e}"));
            }
        }));
        if let Err(TrySendError::Full(_)) = sent {
            self.health.note(
                &self.health.dropped,
                format!("cannot {what}: {}", StoreError::Busy(self.capacity)),
            );
        }
    }

    /// Runs a query and waits for its answer; fails at once when the queue is full.
    pub async fn query<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.jobs.try_send(Box::new(move |store| {
            let _ = tx.send(job(store));
        }));
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
}
