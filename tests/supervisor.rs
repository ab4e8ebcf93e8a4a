//! Supervision of systemd units over D-Bus, against a real systemd: events
//! for crashes and clean exits, actions and their classified failures, and
//! units that appear after a daemon-reload.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use rvm_watchdog::supervisor::{
    ActionError, BusTarget, KillWhom, Supervisor, UnitAction, UnitChanged,
};
use support::systemd::PrivateSystemd;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const ACT: Duration = Duration::from_secs(30);

fn units(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// A supervisor on the private manager's bus; stops when the test ends.
struct Fixture {
    supervisor: Supervisor,
    events: mpsc::Receiver<UnitChanged>,
    /// Every event seen so far.
    seen: Vec<UnitChanged>,
    stop: CancellationToken,
}

impl Fixture {
    fn new(sd: &PrivateSystemd, watched: &[&str]) -> Fixture {
        let (tx, events) = mpsc::channel(256);
        let stop = CancellationToken::new();
        let supervisor = Supervisor::spawn(
            BusTarget::Address(sd.bus_address()),
            units(watched),
            tx,
            stop.clone(),
        );
        Fixture {
            supervisor,
            events,
            seen: Vec::new(),
            stop,
        }
    }

    /// Waits for an event of `unit` matching `pred` (seen before or arriving in time).
    async fn wait(
        &mut self,
        unit: &str,
        what: &str,
        pred: impl Fn(&UnitChanged) -> bool,
    ) -> UnitChanged {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(e) = self.seen.iter().find(|e| e.state.unit == unit && pred(e)) {
                return e.clone();
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                _ => panic!(
                    "no event of {unit} where {what} within {WAIT:?}; seen: {:#?}",
                    self.seen
                        .iter()
                        .filter(|e| e.state.unit == unit)
                        .map(|e| e.state.summary())
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Forgets the events seen so far.
    fn clear(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        self.seen.clear();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_main_process_is_a_failure_and_a_clean_exit_is_not() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    sd.write_unit("sup-crash.service", "[Service]\nExecStart=/bin/sleep 300\n");
    sd.write_unit(
        "sup-clean.service",
        "[Service]\nExecStart=/bin/sh -c 'sleep 0.5; exit 0'\n",
    );
    let mut f = Fixture::new(sd, &["sup-crash.service", "sup-clean.service"]);
    f.wait("sup-crash.service", "it is read", |e| {
        e.state.load_state == "loaded"
    })
    .await;

    assert!(
        sd.systemctl(&["start", "sup-crash.service", "sup-clean.service"])
            .status
            .success()
    );
    let running = f
        .wait("sup-crash.service", "it runs", |e| {
            e.state.active_state == "active" && e.state.main_pid != 0
        })
        .await;
    kill9(running.state.main_pid);
    let failed = f
        .wait("sup-crash.service", "it failed", |e| e.failure().is_some())
        .await;
    assert_eq!(failed.failure(), Some("signal"));
    assert_eq!(failed.state.active_state, "failed");
    assert_eq!(failed.state.exec_main_code, 2, "killed");
    assert_eq!(failed.state.exec_main_status, 9, "by SIGKILL");
    assert_eq!(
        failed.previous.as_ref().map(|p| p.active_state.as_str()),
        Some("active")
    );

    let done = f
        .wait("sup-clean.service", "it ended", |e| {
            e.state.active_state == "inactive" && e.previous.is_some()
        })
        .await;
    assert_eq!(done.state.result, "success");
    assert!(
        f.seen
            .iter()
            .filter(|e| e.state.unit == "sup-clean.service")
            .all(|e| e.failure().is_none()),
        "a clean exit is never a failure"
    );
    sd.systemctl(&["reset-failed", "sup-crash.service"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_change_the_unit_and_failures_are_classified() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "sup-act.service";
    sd.write_unit(
        unit,
        "[Service]\nExecStart=/bin/sleep 300\nMemoryAccounting=yes\nCPUAccounting=yes\nTasksAccounting=yes\n",
    );
    sd.write_unit(
        "sup-badexec.service",
        "[Service]\nType=exec\nExecStart=/nonexistent/rvm-watchdog-test-binary\n",
    );
    sd.write_unit(
        "sup-oneshot-fails.service",
        "[Service]\nType=oneshot\nExecStart=/bin/false\n",
    );
    let mut f = Fixture::new(sd, &[unit]);
    f.wait(unit, "it is read", |e| e.state.load_state == "loaded")
        .await;

    let done = f
        .supervisor
        .act(unit, UnitAction::Start, ACT)
        .await
        .unwrap();
    assert_eq!(done.job_result.as_deref(), Some("done"));
    assert_eq!(
        sd.show(unit, "ActiveState"),
        "active",
        "start returned after the job finished"
    );
    let first_pid = sd.main_pid(unit);

    f.supervisor
        .act(unit, UnitAction::Restart, ACT)
        .await
        .unwrap();
    assert_eq!(sd.show(unit, "ActiveState"), "active");
    let second_pid = sd.main_pid(unit);
    assert_ne!(first_pid, second_pid, "restart replaced the process");

    // A user manager on cgroup v1 has no controllers to account with: the
    // figures are then absent rather than systemd's "unset" value.
    let accounting = f.supervisor.accounting(unit).await.unwrap();
    assert_eq!(accounting.n_restarts, 0);
    assert!(accounting.tasks.is_none_or(|t| t >= 1), "{accounting:?}");
    assert!(
        accounting
            .memory_bytes
            .is_none_or(|m| m > 0 && m < u64::MAX),
        "{accounting:?}"
    );

    f.clear();
    f.supervisor
        .act(
            unit,
            UnitAction::Kill {
                whom: KillWhom::Main,
                signal: 9,
            },
            ACT,
        )
        .await
        .unwrap();
    let killed = f.wait(unit, "it failed", |e| e.failure().is_some()).await;
    assert_eq!(killed.failure(), Some("signal"));

    f.supervisor
        .act(unit, UnitAction::ResetFailed, ACT)
        .await
        .unwrap();
    f.wait(unit, "reset", |e| e.state.active_state == "inactive")
        .await;
    assert_eq!(sd.show(unit, "ActiveState"), "inactive");

    f.supervisor
        .act(unit, UnitAction::Start, ACT)
        .await
        .unwrap();
    f.supervisor.act(unit, UnitAction::Stop, ACT).await.unwrap();
    assert_eq!(
        sd.show(unit, "ActiveState"),
        "inactive",
        "stop returned after the job finished"
    );

    // systemd's own restarts are counted.
    let restarting = "sup-restarting.service";
    sd.write_unit(
        restarting,
        "[Service]\nExecStart=/bin/sleep 300\nRestart=always\nRestartSec=100ms\n",
    );
    f.supervisor.watch(units(&[unit, restarting])).await;
    f.supervisor
        .act(restarting, UnitAction::Start, ACT)
        .await
        .unwrap();
    let pid = sd.main_pid(restarting);
    kill9(pid);
    let back = f
        .wait(restarting, "systemd restarted it", |e| {
            e.state.n_restarts == 1 && e.state.active_state == "active"
        })
        .await;
    assert_ne!(back.state.main_pid, pid);
    assert!(
        f.seen.iter().any(|e| e.state.unit == restarting
            && e.state.sub_state == "auto-restart"
            && e.failure() == Some("signal")),
        "the crash was seen while systemd's restart was pending"
    );
    assert_eq!(
        f.supervisor
            .accounting(restarting)
            .await
            .unwrap()
            .n_restarts,
        1
    );
    f.supervisor
        .act(restarting, UnitAction::Stop, ACT)
        .await
        .unwrap();

    // A job systemd cannot complete.
    let err = f
        .supervisor
        .act("sup-badexec.service", UnitAction::Start, ACT)
        .await
        .unwrap_err();
    match &err {
        ActionError::JobFailed { result, detail, .. } => {
            assert_eq!(result, "failed");
            assert_eq!(detail, " (unit result exit-code)");
        }
        other => panic!("expected a failed job, got {other:?}"),
    }
    assert!(err.retryable());
    let err = f
        .supervisor
        .act("sup-oneshot-fails.service", UnitAction::Start, ACT)
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::JobFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("ended with \"failed\""), "{err}");

    // A unit that does not exist.
    let err = f
        .supervisor
        .act("sup-missing.service", UnitAction::Start, ACT)
        .await
        .unwrap_err();
    assert_eq!(err, ActionError::NoSuchUnit("sup-missing.service".into()));
    assert!(!err.retryable());

    sd.systemctl(&[
        "reset-failed",
        "sup-badexec.service",
        "sup-oneshot-fails.service",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_added_later_with_daemon_reload_is_supervised() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "sup-late.service";
    let mut f = Fixture::new(sd, &[unit]);
    let absent = f.wait(unit, "it is read", |_| true).await;
    assert_eq!(absent.state.load_state, "not-found");

    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    let running = f
        .wait(unit, "it runs", |e| {
            e.state.active_state == "active" && e.state.main_pid != 0
        })
        .await;
    assert_eq!(running.state.load_state, "loaded");
    kill9(running.state.main_pid);
    let failed = f.wait(unit, "it failed", |e| e.failure().is_some()).await;
    assert_eq!(failed.failure(), Some("signal"));
    sd.systemctl(&["reset-failed", unit]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_new_set_reads_the_added_units() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    sd.write_unit(
        "sup-watch-a.service",
        "[Service]\nExecStart=/bin/sleep 300\n",
    );
    sd.write_unit(
        "sup-watch-b.service",
        "[Service]\nExecStart=/bin/sleep 300\n",
    );
    assert!(
        sd.systemctl(&["start", "sup-watch-b.service"])
            .status
            .success()
    );
    let mut f = Fixture::new(sd, &["sup-watch-a.service"]);
    f.wait("sup-watch-a.service", "it is read", |_| true).await;
    assert!(f.supervisor.state("sup-watch-b.service").await.is_none());
    f.supervisor.watch(units(&["sup-watch-b.service"])).await;
    let b = f
        .wait("sup-watch-b.service", "it is read", |e| {
            e.state.active_state == "active"
        })
        .await;
    assert_ne!(b.state.main_pid, 0);
    assert_eq!(
        f.supervisor
            .state("sup-watch-b.service")
            .await
            .unwrap()
            .active_state,
        "active"
    );
    assert!(
        f.supervisor.state("sup-watch-a.service").await.is_none(),
        "a is no longer watched"
    );
    sd.systemctl(&["stop", "sup-watch-b.service"]);
}
