//! The daemon's event stream, followed by observers of the running daemon
//! (in-process, through its command channel): one that joins while a
//! target is failing sees the open incident first, then the live events
//! (the probe passing, the target healthy);
//! one that stalls never slows the core loop.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvm_watchdog::command::{Command, Operation};
use rvm_watchdog::config::{self, Sources};
use rvm_watchdog::event::{Event, Observer, Stamped};
use rvm_watchdog::recovery::Health;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

struct Running {
    commands: mpsc::Sender<Command>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

/// The daemon on one probed target, `edge`, whose tcp probe dials `port`.
async fn start(port: u16) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("policies")).unwrap();
    std::fs::write(d.join("watchdog.toml"), "[log]\noutput = \"stderr\"\n").unwrap();
    std::fs::write(
        d.join("policies/edge.toml"),
        format!(
            "[target]\nname = \"edge\"\n\n[[probe]]\nname = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\
             interval = \"200ms\"\ntimeout = \"150ms\"\nfail-after = 1\npass-after = 1\n"
        ),
    )
    .unwrap();
    let sources = Sources {
        config_file: Some(d.join("watchdog.toml")),
        policies_dir: Some(d.join("policies")),
        state_dir: Some(d.join("state")),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Sources::default()
    };
    let loaded = config::load(&sources);
    assert!(loaded.config.is_some(), "{:?}", loaded.diagnostics);
    let shutdown = CancellationToken::new();
    let (commands, rx) = mpsc::channel(16);
    let task = tokio::spawn(rvm_watchdog::daemon::run(
        sources,
        loaded,
        None,
        shutdown.clone(),
        rx,
    ));
    Running {
        commands,
        shutdown,
        task,
        _dir: dir,
    }
}

impl Running {
    async fn observe(&self) -> Observer {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Observe { reply })
            .await
            .unwrap();
        tokio::time::timeout(WAIT, answer).await.unwrap().unwrap()
    }

    /// An operator's reset of `target`, answered once the core loop is done.
    async fn reset(&self, target: &str) -> rvm_watchdog::command::OperationDone {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Operate {
                target: target.into(),
                operation: Operation::Reset,
                reply,
            })
            .await
            .unwrap();
        tokio::time::timeout(WAIT, answer)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn kind_of(e: &Stamped) -> (&'static str, Option<&str>) {
    (e.event.kind(), e.event.target())
}

/// The next event on `rx` that `pick` takes, within the deadline.
async fn next_where(
    rx: &mut broadcast::Receiver<Arc<Stamped>>,
    what: &str,
    pick: impl Fn(&Event) -> bool,
) -> Arc<Stamped> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(e)) if pick(&e.event) => return e,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("waiting for {what}: {e}"),
            Err(_) => panic!("no {what} within {WAIT:?}"),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_joining_mid_incident_sees_it_first_then_the_live_events() {
    let port = free_port();
    let daemon = start(port).await;

    // Wait, through the stream, until edge's incident is open.
    let (_, mut early) = daemon.observe().await;
    next_where(
        &mut early,
        "edge's incident",
        |e| matches!(e, Event::IncidentOpened { target, .. } if target == "edge"),
    )
    .await;

    // A newcomer starts from what holds: the failing probe, edge's
    // health and the open incident, in the order they were emitted.
    let (current, mut rx) = daemon.observe().await;
    let kinds: Vec<_> = current.iter().map(|e| kind_of(e)).collect();
    assert_eq!(
        kinds,
        [
            ("probe-changed", Some("edge")),
            ("health-changed", Some("edge")),
            ("incident-opened", Some("edge")),
        ],
        "{current:#?}"
    );
    let joined_at = current.last().unwrap().seq;

    // Then it follows the stream: the uplink comes back, edge heals.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let passing = next_where(
        &mut rx,
        "the probe passing",
        |e| matches!(e, Event::ProbeChanged { target, .. } if target == "edge"),
    )
    .await;
    assert!(
        passing.seq > joined_at,
        "live events come after the current ones"
    );
    let healed = next_where(&mut rx, "edge healthy", |e| {
        matches!(e, Event::HealthChanged { target, to: Health::Healthy, .. } if target == "edge")
    })
    .await;
    assert!(healed.seq > passing.seq);
    // A newcomer now starts from edge's healthy state.
    let (current, _) = daemon.observe().await;
    assert!(current.iter().any(|e| e.seq == healed.seq), "{current:#?}");
    assert!(
        !current
            .iter()
            .any(|e| matches!(&e.event, Event::ProbeChanged { .. })),
        "no failing probe is left: {current:#?}"
    );
    drop(listener);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_observer_never_slows_the_core_loop() {
    let port = free_port();
    let _listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let daemon = start(port).await;
    // Subscribed and never read.
    let (_, mut stalled) = daemon.observe().await;

    // Far more events than an observer may lag behind: each reset is an
    // operator command the core loop emits, answered only once it is done.
    let n = 3 * 1024;
    for _ in 0..n {
        assert!(daemon.reset("edge").await.ok);
    }
    // The core loop still answers, and the stalled observer learns what it missed.
    let (_, mut fresh) = daemon.observe().await;
    match stalled.try_recv() {
        Err(broadcast::error::TryRecvError::Lagged(missed)) => {
            assert!(missed >= (n - 1024) as u64, "missed {missed}")
        }
        other => panic!("the stalled observer is told it lagged: {other:?}"),
    }
    // A newcomer after the burst follows live events as usual.
    daemon.reset("edge").await;
    next_where(&mut fresh, "the next reset", |e| {
        matches!(
            e,
            Event::OperatorCommand {
                command: "reset",
                ..
            }
        )
    })
    .await;
    daemon.stop().await;
}
