//! The collector scheduler: each collector on its own interval, off the
//! async runtime, its rounds sent to the recorder without ever waiting.
//!
//! Each collector gets a task that ticks on the collector's interval (the
//! first round at once) and runs the round with
//! [`tokio::task::spawn_blocking`], so the blocking reads of `/proc` and
//! `/sys` never occupy a worker thread of the runtime. A collector runs
//! one round at a time: a round that takes longer than the interval makes
//! the collector skip the ticks it missed. A round with samples goes into
//! the bounded channel with `try_send`; when the channel is full the
//! round is **dropped** and counted, and the first drop after a round got
//! through is logged. A closed channel (the recorder is gone) ends the
//! collectors. A collector that panics is logged and counted, and runs no
//! more; the others go on.
//!
//! Cancelling the token ends every collector at once, also one whose
//! round is still reading (a hung sysfs file): that round finishes on its
//! blocking thread and is thrown away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::{Collector, now_ms};
use crate::metrics::Sample;

/// The shortest interval a collector runs at; shorter ones are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A collector and how often it runs.
pub struct Scheduled {
    /// The collector.
    pub collector: Box<dyn Collector>,
    /// Time between the starts of its rounds.
    pub interval: Duration,
}

impl std::fmt::Debug for Scheduled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduled")
            .field("collector", &self.collector.name())
            .field("interval", &self.interval)
            .finish()
    }
}

/// What one collector has done so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// The collector's name.
    pub collector: &'static str,
    /// Its interval.
    pub interval: Duration,
    /// Rounds it finished.
    pub rounds: u64,
    /// Rounds sent to the recorder.
    pub sent: u64,
    /// Rounds dropped because the channel was full.
    pub dropped: u64,
    /// Whether it panicked (and so runs no more).
    pub panicked: bool,
}

/// The counts one collector's task keeps.
#[derive(Debug, Default)]
struct Tally {
    rounds: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    panicked: AtomicBool,
}

/// Running collectors. Dropping it leaves them running until the token is
/// cancelled.
#[derive(Debug)]
pub struct Scheduler {
    tasks: TaskTracker,
    tallies: Vec<(&'static str, Duration, Arc<Tally>)>,
}

impl Scheduler {
    /// Starts `collectors` on the current runtime, each round sent into
    /// `rounds`, until `stop` is cancelled.
    pub fn spawn(
        collectors: Vec<Scheduled>,
        rounds: mpsc::Sender<Vec<Sample>>,
        stop: CancellationToken,
    ) -> Scheduler {
        let tasks = TaskTracker::new();
        let mut tallies = Vec::new();
        for Scheduled {
            collector,
            interval,
        } in collectors
        {
            let interval = interval.max(MIN_INTERVAL);
            let tally = Arc::new(Tally::default());
            tallies.push((collector.name(), interval, Arc::clone(&tally)));
            tasks.spawn(run(
                collector,
                interval,
                rounds.clone(),
                stop.clone(),
                tally,
            ));
        }
        tasks.close();
        Scheduler { tasks, tallies }
    }

    /// Each collector's counts, in the order given.
    pub fn counts(&self) -> Vec<Counts> {
        self.tallies
            .iter()
            .map(|(collector, interval, t)| Counts {
                collector,
                interval: *interval,
                rounds: t.rounds.load(Ordering::Relaxed),
                sent: t.sent.load(Ordering::Relaxed),
                dropped: t.dropped.load(Ordering::Relaxed),
                panicked: t.panicked.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Rounds dropped so far, all collectors together.
    pub fn dropped(&self) -> u64 {
        self.tallies
            .iter()
            .map(|(_, _, t)| t.dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// Waits until every collector has ended (after the token is
    /// cancelled, the channel closed, or each panicked).
    pub async fn stopped(&self) {
        self.tasks.wait().await;
    }
}

/// One collector's loop.
async fn run(
    mut collector: Box<dyn Collector>,
    interval: Duration,
    rounds: mpsc::Sender<Vec<Sample>>,
    stop: CancellationToken,
    tally: Arc<Tally>,
) {
    let name = collector.name();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut dropping = false;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let round = tokio::task::spawn_blocking(move || {
            let samples = collector.collect(now_ms());
            (collector, samples)
        });
        let samples = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            done = round => match done {
                Ok((back, samples)) => {
                    collector = back;
                    samples
                }
                Err(e) => {
                    tally.panicked.store(true, Ordering::Relaxed);
                    warn!(collector = name, "the {name} collector failed and runs no more: {e}");
                    return;
                }
            },
        };
        tally.rounds.fetch_add(1, Ordering::Relaxed);
        if samples.is_empty() {
            continue;
        }
        match rounds.try_send(samples) {
            Ok(()) => {
                tally.sent.fetch_add(1, Ordering::Relaxed);
                dropping = false;
            }
            Err(TrySendError::Full(_)) => {
                let dropped = tally.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if !dropping {
                    warn!(
                        collector = name,
                        dropped,
                        "the metrics recorder is behind: a round of the {name} collector was \
                         dropped ({dropped} so far)"
                    );
                    dropping = true;
                }
            }
            Err(TrySendError::Closed(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::mpsc as std_mpsc;
    use std::thread::ThreadId;

    use super::*;
    use crate::metrics::{Kind, SeriesKey};

    /// A collector that gives one sample named after it per round, and
    /// tells on which thread each round ran.
    struct Ticker {
        name: &'static str,
        threads: Arc<Mutex<Vec<ThreadId>>>,
    }

    impl Ticker {
        fn new(name: &'static str) -> (Ticker, Arc<Mutex<Vec<ThreadId>>>) {
            let threads = Arc::new(Mutex::new(Vec::new()));
            let ticker = Ticker {
                name,
                threads: Arc::clone(&threads),
            };
            (ticker, threads)
        }
    }

    impl Collector for Ticker {
        fn name(&self) -> &'static str {
            self.name
        }

        fn collect(&mut self, now_ms: u64) -> Vec<Sample> {
            self.threads
                .lock()
                .unwrap()
                .push(std::thread::current().id());
            vec![Sample {
                key: SeriesKey::new(self.name, []),
                kind: Kind::Gauge,
                at_ms: now_ms,
                value: 1.0,
            }]
        }
    }

    fn every(collector: impl Collector, secs: u64) -> Scheduled {
        Scheduled {
            collector: Box::new(collector),
            interval: Duration::from_secs(secs),
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Vec<Sample>>) -> Vec<String> {
        let mut names = Vec::new();
        while let Ok(round) = rx.try_recv() {
            names.extend(round.into_iter().map(|s| s.key.name));
        }
        names
    }

    #[tokio::test(start_paused = true)]
    async fn two_collectors_on_their_own_intervals_off_the_runtime_thread() {
        let (fast, fast_threads) = Ticker::new("fast");
        let (slow, _) = Ticker::new("slow");
        let (tx, mut rx) = mpsc::channel(100);
        let stop = CancellationToken::new();
        let s = Scheduler::spawn(vec![every(fast, 1), every(slow, 3)], tx, stop.clone());
        // Rounds at 0 s, then every interval: by 10.5 s, 11 fast, 4 slow.
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        stop.cancel();
        s.stopped().await;
        let names = drain(&mut rx);
        assert_eq!(names.iter().filter(|n| *n == "fast").count(), 11);
        assert_eq!(names.iter().filter(|n| *n == "slow").count(), 4);
        let counts = s.counts();
        assert_eq!(
            (counts[0].collector, counts[0].rounds, counts[0].sent),
            ("fast", 11, 11)
        );
        assert_eq!(
            (counts[1].collector, counts[1].interval, counts[1].rounds),
            ("slow", Duration::from_secs(3), 4)
        );
        let here = std::thread::current().id();
        let threads = fast_threads.lock().unwrap();
        assert!(
            threads.iter().all(|&t| t != here),
            "a round ran on the runtime"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_channel_drops_rounds_and_counts_them() {
        let (fast, _) = Ticker::new("fast");
        let (tx, mut rx) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let s = Scheduler::spawn(vec![every(fast, 1)], tx, stop.clone());
        // Nobody receives: the first round fills the channel.
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        let counts = &s.counts()[0];
        assert_eq!((counts.rounds, counts.sent, counts.dropped), (6, 1, 5));
        assert_eq!(s.dropped(), 5);
        // Room again: the next round gets through.
        assert_eq!(drain(&mut rx), ["fast"]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(drain(&mut rx), ["fast"]);
        assert_eq!(s.counts()[0].sent, 2);
        stop.cancel();
        s.stopped().await;
    }

    /// A collector whose second round blocks until told to go on.
    struct Stuck {
        rounds: u32,
        release: std_mpsc::Receiver<()>,
    }

    impl Collector for Stuck {
        fn name(&self) -> &'static str {
            "stuck"
        }

        fn collect(&mut self, _now_ms: u64) -> Vec<Sample> {
            self.rounds += 1;
            if self.rounds == 2 {
                let _ = self.release.recv();
            }
            Vec::new()
        }
    }

    #[tokio::test]
    async fn cancel_stops_every_collector_even_one_stuck_in_a_read() {
        let (release, wait) = std_mpsc::channel();
        let stuck = Stuck {
            rounds: 0,
            release: wait,
        };
        let (ticker, _) = Ticker::new("ticker");
        let (tx, mut rx) = mpsc::channel(100);
        let stop = CancellationToken::new();
        let collectors = vec![
            Scheduled {
                collector: Box::new(stuck),
                interval: MIN_INTERVAL,
            },
            Scheduled {
                collector: Box::new(ticker),
                interval: MIN_INTERVAL,
            },
        ];
        let s = Scheduler::spawn(collectors, tx, stop.clone());
        let deadline = Duration::from_secs(5);
        // The ticker goes on while the other collector is stuck.
        tokio::time::timeout(deadline, async {
            while s.counts()[1].rounds < 5 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the ticker's rounds");
        assert_eq!(
            s.counts()[0].rounds,
            1,
            "empty rounds count, the stuck one not"
        );
        stop.cancel();
        tokio::time::timeout(deadline, s.stopped())
            .await
            .expect("stopped");
        // Every sender is gone: the channel ends after the rounds sent.
        let ended =
            tokio::time::timeout(deadline, async { while rx.recv().await.is_some() {} }).await;
        assert!(ended.is_ok());
        assert!(rx.is_closed());
        release.send(()).unwrap();
    }

    struct Panics;

    impl Collector for Panics {
        fn name(&self) -> &'static str {
            "panics"
        }

        fn collect(&mut self, _now_ms: u64) -> Vec<Sample> {
            panic!("a bug in a collector");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_collector_that_panics_runs_no_more_and_the_others_go_on() {
        let (ticker, _) = Ticker::new("ticker");
        let (tx, mut rx) = mpsc::channel(100);
        let stop = CancellationToken::new();
        let s = Scheduler::spawn(vec![every(Panics, 1), every(ticker, 1)], tx, stop.clone());
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let counts = s.counts();
        assert!(counts[0].panicked);
        assert_eq!(counts[0].rounds, 0);
        assert_eq!(counts[1].rounds, 3);
        assert_eq!(drain(&mut rx).len(), 3);
        stop.cancel();
        s.stopped().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_channel_ends_the_collectors() {
        let (ticker, _) = Ticker::new("ticker");
        let (tx, rx) = mpsc::channel(100);
        drop(rx);
        let s = Scheduler::spawn(vec![every(ticker, 1)], tx, CancellationToken::new());
        tokio::time::timeout(Duration::from_secs(5), s.stopped())
            .await
            .expect("stopped without a cancel");
        assert_eq!(s.counts()[0].sent, 0);
    }
}
