//! Process targets: the watchdog runs the process, restarts it along its
//! ladder, detects a stopped one, and leaves nothing behind when it stops it.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use support::daemon::TestDaemon;
use support::systemd::wait_until;

const WAIT: Duration = Duration::from_secs(30);

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn script(path: &Path, text: &str) {
    write(path, text);
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// Alive and not a zombie (PID 1 here reaps orphans slowly).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z' && state != 'X'
        }
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The pid at the end of an answer like "restarted helper: pid 123", once
/// the process has written it to its pid file too (it may lag the answer).
fn answered_pid(text: &str, pid_file: &Path) -> i32 {
    let pid: i32 = text
        .rsplit_once("pid ")
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"));
    let deadline = std::time::Instant::now() + WAIT;
    while read_pid(pid_file) != Some(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} never reached {}",
            pid_file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    pid
}

fn setup(dir: &Path, policy: &str) -> TestDaemon {
    write(&dir.join("watchdog.toml"), "[log]\noutput = \"stderr\"\n");
    write(&dir.join("policies/helper.toml"), policy);
    TestDaemon::start(dir)
}

#[test]
fn stopping_leaves_no_process_behind_even_grandchildren_that_ignore_sigterm() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // The main process ignores SIGTERM; so does its grandchild; another
    // descendant even leaves the process group with setsid.
    script(
        &dir.join("stubborn"),
        &format!(
            "#!/bin/sh\ntrap '' TERM\n\
             sh -c 'trap \"\" TERM; echo $$ > {d}/grandchild.pid; exec sleep 300' &\n\
             setsid sh -c 'trap \"\" TERM; echo $$ > {d}/escaped.pid; exec sleep 300' &\n\
             echo $$ > {d}/main.pid\nwhile true; do sleep 1; done\n",
            d = dir.display()
        ),
    );
    let policy = format!(
        "[target]\nname = \"stubborn\"\n\n[target.process]\ncommand = [\"{}\"]\nstop-timeout = \"1s\"\n",
        dir.join("stubborn").display()
    );
    let mut daemon = setup(dir, &policy);
    let pids: Vec<i32> = wait_until("all three processes up", WAIT, || {
        let pids: Vec<i32> = ["main.pid", "grandchild.pid", "escaped.pid"]
            .iter()
            .filter_map(|f| read_pid(&dir.join(f)))
            .collect();
        (pids.len() == 3 && pids.iter().all(|p| alive(*p))).then_some(pids)
    })
    .unwrap();
    daemon.wait_for_line("started stubborn", WAIT);

    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(WAIT).code(), Some(0));
    for pid in pids {
        assert!(!alive(pid), "process {pid} was left behind");
    }
    daemon.wait_for_line("killing what is left of stubborn", WAIT);
}

#[test]
fn a_crash_looping_process_restarts_with_backoff_and_stops_at_its_budget() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let runs = dir.join("runs");
    let policy = format!(
        "[target]\nname = \"crasher\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"echo run >> {}; echo going down; exit 7\"]\n\n\
         [[recovery]]\naction = \"restart\"\nattempts = 3\nbackoff = {{ initial = \"300ms\", factor = 2.0, jitter = 0.0 }}\n",
        runs.display()
    );
    let mut daemon = setup(dir, &policy);
    daemon.wait_for_line("gave up on crasher", WAIT);
    // The first start, then three restarts, then no more.
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 4);
    let delays: Vec<&str> = daemon
        .seen
        .iter()
        .filter(|l| l.contains(" crasher: restart (step 1, attempt") && l.contains(") in "))
        .map(|l| {
            l.split(") in ")
                .nth(1)
                .unwrap()
                .split(" target_name=")
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(delays, ["300ms", "600ms", "1s 200ms"]);
    assert!(
        daemon
            .seen
            .iter()
            .any(|l| l.contains("going down") && l.contains("stream=\"stdout\""))
    );
    assert!(
        daemon
            .seen
            .iter()
            .any(|l| l.contains("process of crasher exited with code 7"))
    );
}

#[test]
fn a_stopped_process_is_detected_and_replaced() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let pidfile = dir.join("pid");
    let policy = format!(
        "[target]\nname = \"frozen\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"echo $$ > {}; exec sleep 300\"]\n\n\
         [[probe]]\nkind = \"process\"\nstuck-for = \"1s\"\n\n\
         [[recovery]]\naction = \"restart\"\nbackoff = {{ initial = \"200ms\", jitter = 0.0 }}\n",
        pidfile.display()
    );
    let mut daemon = setup(dir, &policy);
    let first = wait_until("the process up", WAIT, || {
        read_pid(&pidfile).filter(|p| alive(*p))
    })
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();

    daemon.wait_for_line("frozen is failing: process of frozen is stopped for", WAIT);
    daemon.wait_for_line("restart of frozen: restarted frozen", WAIT);
    let second = wait_until("a new process", WAIT, || {
        read_pid(&pidfile).filter(|p| *p != first && alive(*p))
    })
    .unwrap();
    assert!(!alive(first), "the stopped process was killed");
    assert_ne!(first, second);
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(WAIT).code(), Some(0));
    assert!(!alive(second));
}

#[test]
fn an_adopted_process_is_watched_and_never_signalled_without_permission() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let marker = dir.join("adoptee-marker").display().to_string();
    // Started by someone else; its command line carries the marker.
    let mut adoptee = std::process::Command::new("/bin/sh")
        .args(["-c", "sleep 300; true", &marker])
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = adoptee.id() as i32;
    let policy = format!(
        "[target]\nname = \"helper\"\n\n[target.adopt]\nmatch = \"{marker}\"\n\n[[probe]]\nkind = \"process\"\nstuck-for = \"1s\"\n"
    );
    let mut daemon = setup(dir, &policy);
    let state =
        |daemon: &TestDaemon| daemon.get_json("/health")["targets"][0]["processState"].clone();
    wait_until("the adopted process found", WAIT, || {
        (state(&daemon)["pid"] == pid).then_some(())
    })
    .unwrap();
    assert_eq!(state(&daemon)["status"], "running");
    daemon.wait_for_line(&format!("found helper: pid {pid}"), WAIT);

    // Stopped: seen as stuck, and left alone (no may-signal, no ladder).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    wait_until("stuck on /health", WAIT, || {
        (state(&daemon)["status"] == "stuck").then_some(())
    })
    .unwrap();
    daemon.wait_for_line("helper is failing: process of helper is stopped", WAIT);
    assert!(alive(pid), "not killed by the watchdog");

    // Gone (with its sleep): reported absent.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    adoptee.wait().unwrap();
    wait_until("absent on /health", WAIT, || {
        (state(&daemon)["status"] == "absent").then_some(())
    })
    .unwrap();
    assert!(
        state(&daemon)["reason"]
            .as_str()
            .unwrap()
            .contains("adoptee-marker")
    );
}

/// A failing liveness probe restarts the process; a failing dependency
/// probe only reports (a dependency's outage must not cause restart storms).
#[test]
fn a_liveness_failure_restarts_and_a_dependency_failure_does_not() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let pidfile = dir.join("pid");
    let alive_flag = dir.join("alive");
    let upstream_flag = dir.join("upstream");
    std::fs::write(&alive_flag, "").unwrap();
    std::fs::write(&upstream_flag, "").unwrap();
    let policy = format!(
        "[target]\nname = \"worker\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"echo $$ > {pid}; exec sleep 300\"]\n\n\
         [[probe]]\nname = \"alive\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"test -e {alive} || exit 2\"]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfail-after = 2\n\n\
         [[probe]]\nname = \"upstream\"\nrole = \"dependency\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"test -e {up} || exit 2\"]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfail-after = 2\n\n\
         [[recovery]]\naction = \"restart\"\nattempts = 5\nbackoff = {{ initial = \"100ms\", jitter = 0.0 }}\n",
        pid = pidfile.display(),
        alive = alive_flag.display(),
        up = upstream_flag.display()
    );
    let mut daemon = setup(dir, &policy);
    let first = wait_until("the process up", WAIT, || {
        read_pid(&pidfile).filter(|p| alive(*p))
    })
    .unwrap();
    daemon.wait_for_line("probe worker/upstream is passing", WAIT);

    // The dependency fails: reported, nothing restarted.
    std::fs::remove_file(&upstream_flag).unwrap();
    daemon.wait_for_line("probe worker/upstream is failing", WAIT);
    let health = daemon.get_json("/health");
    assert_eq!(health["checks"]["worker:upstream"][0]["status"], "fail");
    assert_eq!(health["status"], "warn");
    assert!(daemon.seen.iter().all(|l| !l.contains("recovering worker")));
    assert_eq!(read_pid(&pidfile), Some(first));
    assert!(alive(first));

    // Its liveness probe fails: restarted.
    std::fs::remove_file(&alive_flag).unwrap();
    daemon.wait_for_line("probe worker/alive is failing", WAIT);
    daemon.wait_for_line("worker is failing: probe alive is failing", WAIT);
    std::fs::write(&alive_flag, "").unwrap();
    daemon.wait_for_line("restart of worker: restarted worker", WAIT);
    let second = wait_until("a new process", WAIT, || {
        read_pid(&pidfile).filter(|p| *p != first && alive(*p))
    })
    .unwrap();
    assert!(!alive(first));
    assert_ne!(first, second);
}

#[test]
fn an_operator_restarts_a_process_target_through_the_cli_and_the_api() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let pid_file = dir.join("helper.pid");
    let policy = format!(
        "[target]\nname = \"helper\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"echo $$ > {}; exec sleep 300\"]\n\n\
         [[recovery]]\naction = \"restart\"\n",
        pid_file.display()
    );
    let mut daemon = setup(dir, &policy);
    let running_pid = |h: &serde_json::Value| {
        let state = &support::daemon::target(h, "helper")["processState"];
        (state["status"] == "running")
            .then(|| state["pid"].as_i64())
            .flatten()
    };
    let health = daemon.wait_for("helper running", WAIT, |h| running_pid(h).is_some());
    let first = running_pid(&health).unwrap();

    // The CLI returns once the new process runs, with the result.
    let (code, text) = daemon.cli(dir, &["restart", "helper"]);
    assert_eq!(code, Some(0), "{text}");
    let second = answered_pid(&text, &pid_file);
    assert_eq!(text, format!("restarted helper: pid {second}"));
    assert_ne!(second as i64, first);
    assert!(!alive(first as i32), "the old process is gone");

    // The API likewise.
    let (code, _, body) = support::daemon::try_http_post(
        daemon.addr,
        "/api/v1/targets/helper/restart",
        Some(&daemon.token(dir)),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["ok"], true);
    let third = answered_pid(answer["detail"].as_str().unwrap(), &pid_file);
    assert_eq!(answer["detail"], format!("restarted helper: pid {third}"));
    assert_ne!(third, second);
    daemon.wait_for("the new pid on /health", WAIT, |h| {
        running_pid(h) == Some(third as i64)
    });

    // Both in the event log and on /metrics.
    let rows = rvm_watchdog::store::Store::open(&dir.join("state"))
        .unwrap()
        .events(&rvm_watchdog::store::EventQuery {
            kind: Some("operator".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|r| {
        r.target.as_deref() == Some("helper")
            && r.result.as_deref() == Some("ok")
            && r.message
                .starts_with("operator restart of helper: restarted helper: pid ")
    }));
    let (_, _, metrics) = daemon.get("/metrics");
    let line = "rvm_watchdog_operator_commands_total{target=\"helper\",command=\"restart\",result=\"ok\"} 2";
    assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
}

#[test]
fn an_operator_restart_of_an_adopted_process_signals_it_only_with_may_signal() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let marker = dir.join("adopted-marker").display().to_string();
    let mut adoptee = std::process::Command::new("/bin/sh")
        .args(["-c", "sleep 300; true", &marker])
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = adoptee.id() as i32;
    let policy = format!(
        "[target]\nname = \"helper\"\n\n[target.adopt]\nmatch = \"{marker}\"\nmay-signal = true\n"
    );
    let mut daemon = setup(dir, &policy);
    daemon.wait_for("the adopted process found", WAIT, |h| {
        support::daemon::target(h, "helper")["processState"]["pid"] == pid
    });
    let (code, _, body) = support::daemon::try_http_post(
        daemon.addr,
        "/api/v1/targets/helper/restart",
        Some(&daemon.token(dir)),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["detail"],
        format!("sent SIGTERM to helper (pid {pid})")
    );
    // Its own supervisor (here: nobody) would bring it back; it is gone.
    let status = adoptee.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15),
        "{status:?}"
    );
    // Its sleep, in the group the test started.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );

    // Without may-signal it is refused, with the reason.
    let other = tempfile::tempdir().unwrap();
    let policy = format!("[target]\nname = \"helper\"\n\n[target.adopt]\nmatch = \"{marker}\"\n");
    let daemon = setup(other.path(), &policy);
    let (code, _, body) = support::daemon::try_http_post(
        daemon.addr,
        "/api/v1/targets/helper/restart",
        Some(&daemon.token(other.path())),
    )
    .unwrap();
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("is adopted without may-signal"), "{body}");
}
