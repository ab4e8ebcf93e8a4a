//! Recovery end to end, against a real systemd: a crash-looping unit is
//! restarted along its ladder with the configured backoff until the watchdog
//! gives up, and nothing else is touched; observe mode acts on nothing but
//! logs every decision; a unit systemd gave up on (start-limit-hit) is
//! brought back, and systemd's own pending restart is never raced.

mod support;

use std::path::Path;
use std::time::Duration;

use support::daemon::{TestDaemon, target};
use support::systemd::{PrivateSystemd, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn setup(sd: &PrivateSystemd, dir: &Path, policies: &[(&str, String)]) -> TestDaemon {
    setup_with(sd, dir, "", policies)
}

/// [`setup`] with more `watchdog.toml` text after the daemon and log tables.
fn setup_with(
    sd: &PrivateSystemd,
    dir: &Path,
    extra: &str,
    policies: &[(&str, String)],
) -> TestDaemon {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!("[daemon]\nbus = \"user\"\n\n[log]\noutput = \"stderr\"\n{extra}"),
    )
    .unwrap();
    for (name, text) in policies {
        std::fs::write(dir.join("policies").join(format!("{name}.toml")), text).unwrap();
    }
    TestDaemon::start_with_env(
        dir,
        &[("DBUS_SESSION_BUS_ADDRESS".into(), sd.bus_address())],
    )
}

/// SIGKILL to a process (a unit's main process, by its pid).
fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// The lines of the daemon's log containing all of `needles`.
fn lines_with<'a>(daemon: &'a TestDaemon, needles: &[&str]) -> Vec<&'a String> {
    daemon
        .seen
        .iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// The time stamp of a log line, in seconds (the fmt layer's RFC 3339 prefix).
fn stamp(line: &str) -> f64 {
    let time = line.split_whitespace().next().unwrap();
    let t = time.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

#[test]
fn a_crash_looping_unit_is_restarted_with_backoff_until_the_ladder_gives_up() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-crashloop.service";
    let bystander = "rec-bystander.service";
    sd.write_unit(
        unit,
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sh -c 'sleep 0.3; exit 3'\n",
    );
    sd.write_unit(bystander, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit, bystander]).status.success());
    let bystander_pid = sd.main_pid(bystander);
    let temp = tempfile::tempdir().unwrap();
    let policy = format!(
        "[target]\nname = \"crashloop\"\nunit = \"{unit}\"\n\n[[recovery]]\naction = \"restart\"\nattempts = 3\n\
         backoff = {{ initial = \"1s\", factor = 2.0, max = \"10s\", jitter = 0.0 }}\nhealthy-for = \"5s\"\n"
    );
    let other = format!(
        "[target]\nname = \"bystander\"\nunit = \"{bystander}\"\n\n[[recovery]]\naction = \"restart\"\n"
    );
    let mut daemon = setup(
        sd,
        temp.path(),
        &[("crashloop", policy), ("bystander", other)],
    );

    // It gives up, and says so on /health.
    let health = daemon.wait_for("crashloop given up", WAIT, |h| {
        target(h, "crashloop")["recovery"]["gaveUp"].is_object()
    });
    assert!(
        target(&health, "crashloop")["recovery"]["gaveUp"]["reason"]
            .as_str()
            .unwrap()
            .contains("every step of the ladder was tried"),
        "{health:#}"
    );
    // A target that gave up fails the machine's health: the platform sees it.
    let health = daemon.wait_for("health failing", WAIT, |h| h["status"] == "fail");
    assert_eq!(health["checks"]["target:crashloop"][0]["state"], "gave-up");
    assert_eq!(health["checks"]["target:bystander"][0]["state"], "healthy");
    assert_eq!(daemon.get("/health").0, 503);
    // The log has told the whole story once it tells of the give-up.
    daemon.wait_for_line("gave up on crashloop", WAIT);
    let restarts = lines_with(&daemon, &["recovering crashloop: restart"]);
    assert_eq!(
        restarts.len(),
        3,
        "three restarts, then no more: {restarts:#?}"
    );
    for (i, line) in restarts.iter().enumerate() {
        assert!(line.contains(&format!("attempt {}", i + 1)), "{line}");
    }
    // The delays decided follow the policy: 1 s, then 2 s, then 4 s. (That
    // the engine keeps to them is proven with a simulated clock in its unit
    // tests; wall-clock gaps between log lines would only make this flaky.)
    // A stale "failed" that systemd reports just after a restart job can
    // schedule the next attempt once more before the unit is seen running:
    // the same decision, logged twice in a row.
    let mut scheduled: Vec<&str> =
        lines_with(&daemon, &["crashloop: restart (step 1, attempt", ") in "])
            .into_iter()
            .map(|l| {
                let message = l
                    .split_once(" INFO crashloop: ")
                    .map_or(l.as_str(), |(_, m)| m);
                message.split(" target_name=").next().unwrap()
            })
            .collect();
    scheduled.dedup();
    assert_eq!(
        scheduled,
        [
            "restart (step 1, attempt 1) in 1s",
            "restart (step 1, attempt 2) in 2s",
            "restart (step 1, attempt 3) in 4s",
        ],
        "the scheduled restarts in:\n{}",
        daemon.seen.join("\n")
    );

    assert_eq!(
        lines_with(&daemon, &["recovering bystander"]).len(),
        0,
        "nothing else was restarted"
    );
    // The same story in the metrics.
    let (code, content_type, metrics) =
        support::daemon::try_http_get(daemon.addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for line in [
        "rvm_watchdog_actions_total{target=\"crashloop\",action=\"restart\",result=\"ok\"} 3",
        "rvm_watchdog_decisions_total{target=\"crashloop\",decision=\"gave-up\"} 1",
        "rvm_watchdog_decisions_total{target=\"crashloop\",decision=\"act\"} 3",
        "rvm_watchdog_target_gave_up{target=\"crashloop\"} 1",
        "rvm_watchdog_target_gave_up{target=\"bystander\"} 0",
        "rvm_watchdog_systemd_connected 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no line {line:?} in\n{metrics}"
        );
    }
    assert_eq!(sd.main_pid(bystander), bystander_pid);
    sd.systemctl(&["stop", unit, bystander]);
    sd.systemctl(&["reset-failed", unit]);
}

#[test]
fn observe_mode_acts_on_nothing_but_logs_each_decision() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-observed.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    let temp = tempfile::tempdir().unwrap();
    let policy = format!(
        "[target]\nname = \"observed\"\nunit = \"{unit}\"\nobserve = true\n\n[[recovery]]\naction = \"restart\"\nattempts = 2\n\
         backoff = {{ initial = \"200ms\", jitter = 0.0 }}\n"
    );
    let mut daemon = setup(sd, temp.path(), &[("observed", policy)]);
    daemon.wait_for_line("unit rec-observed.service is active/running", WAIT);
    let pid = sd.main_pid(unit);
    kill9(pid);

    daemon.wait_for_line("gave up on observed", WAIT);
    let would = lines_with(&daemon, &["observe mode: would restart observed"]);
    assert_eq!(would.len(), 2, "{would:#?}");
    assert!(
        lines_with(&daemon, &["restart of observed:"])
            .iter()
            .all(|l| l.contains("not performed"))
    );
    let (_, _, metrics) = support::daemon::try_http_get(daemon.addr, "/metrics").unwrap();
    assert!(
        metrics.contains(
            "rvm_watchdog_actions_total{target=\"observed\",action=\"restart\",result=\"observed\"} 2"
        ),
        "{metrics}"
    );
    // Nothing was done: the unit is still failed, never restarted.
    assert_eq!(sd.show(unit, "ActiveState"), "failed");
    assert_eq!(sd.show(unit, "NRestarts"), "0");
    sd.systemctl(&["reset-failed", unit]);
}

#[test]
fn a_unit_systemd_gave_up_on_is_brought_back_without_racing_systemd() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-startlimit.service";
    let flag = tempfile::NamedTempFile::new().unwrap();
    // Crashes until the flag file is removed; systemd restarts it 3 times, then
    // gives up (start limit: 3 starts a minute).
    sd.write_unit(
        unit,
        &format!(
            "[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=3\n[Service]\nRestart=always\nRestartSec=100ms\n\
             ExecStart=/bin/sh -c 'if [ -e {} ]; then exit 1; fi; exec sleep 300'\n",
            flag.path().display()
        ),
    );
    let temp = tempfile::tempdir().unwrap();
    let policy = format!(
        "[target]\nname = \"limited\"\nunit = \"{unit}\"\n\n[[recovery]]\naction = \"restart\"\nattempts = 10\n\
         backoff = {{ initial = \"500ms\", jitter = 0.0 }}\n"
    );
    let mut daemon = setup(sd, temp.path(), &[("limited", policy)]);
    daemon.wait_for_line("watching target limited", WAIT);
    assert!(
        sd.systemctl(&["start", "--no-block", unit])
            .status
            .success()
    );
    // systemd 252 leaves such a unit failed with its last result; it gave
    // up once it made its 3 restarts.
    wait_until("systemd to give up", WAIT, || {
        (sd.show(unit, "NRestarts") == "3" && sd.show(unit, "ActiveState") == "failed")
            .then_some(())
    })
    .unwrap();
    // Fixed in the field: the next start will hold.
    std::fs::remove_file(flag.path()).unwrap();

    daemon.wait_for_line("restart of limited: restarted", WAIT);
    wait_until("the unit running again", WAIT, || {
        (sd.show(unit, "ActiveState") == "active").then_some(())
    })
    .unwrap();
    let ours = lines_with(&daemon, &["recovering limited: restart"]);
    assert_eq!(
        ours.len(),
        1,
        "one restart of ours, after systemd gave up: {ours:#?}"
    );
    let counted = lines_with(&daemon, &["systemd restarted limited itself"]);
    assert!(
        counted.len() >= 2,
        "systemd's own restarts were counted: {counted:#?}"
    );
    // Ours came after systemd's last restart and its give-up, never during a pending one.
    let last_systemd = counted.iter().map(|l| stamp(l)).fold(0.0, f64::max);
    assert!(stamp(ours[0]) > last_systemd);
    sd.systemctl(&["stop", unit]);
}

#[test]
fn the_ladder_escalates_from_restarts_to_a_hook_then_gives_up() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-escalate.service";
    sd.write_unit(
        unit,
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sh -c 'sleep 0.2; exit 3'\n",
    );
    assert!(sd.systemctl(&["start", unit]).status.success());
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let hooks = dir.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let marker = dir.join("hook-ran");
    let hook = hooks.join("note-it");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$RVM_TARGET step=$RVM_STEP attempt=$RVM_ATTEMPT unit=$RVM_UNIT\" >> {}\necho noted\nexit 0\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[daemon]\nbus = \"user\"\nhooks-dirs = [\"{}\"]\n\n[log]\noutput = \"stderr\"\n",
            hooks.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/escalate.toml"),
        format!(
            "[target]\nname = \"escalate\"\nunit = \"{unit}\"\n\n\
             [[recovery]]\naction = \"restart\"\nattempts = 2\nbackoff = {{ initial = \"300ms\", jitter = 0.0 }}\n\n\
             [[recovery]]\naction = \"hook\"\nhook = \"note-it\"\nattempts = 1\nbackoff = {{ initial = \"300ms\", jitter = 0.0 }}\n"
        ),
    )
    .unwrap();
    let mut daemon = TestDaemon::start_with_env(
        dir,
        &[("DBUS_SESSION_BUS_ADDRESS".into(), sd.bus_address())],
    );
    daemon.wait_for_line("gave up on escalate", WAIT);
    let order: Vec<&str> = daemon
        .seen
        .iter()
        .filter(|l| l.contains("recovering escalate:"))
        .map(|l| {
            if l.contains(": restart (") {
                "restart"
            } else if l.contains(": hook (") {
                "hook"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(order, ["restart", "restart", "hook"]);
    assert!(!lines_with(&daemon, &["escalating to step 2 (hook)"]).is_empty());
    let noted = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        noted.trim(),
        format!("escalate step=2 attempt=1 unit={unit}")
    );
    // The event log holds every decision and action, the hook's output included.
    let store = rvm_watchdog::store::Store::open(&dir.join("state")).unwrap();
    let events = wait_until("the hook's event", WAIT, || {
        let events = store
            .events(&rvm_watchdog::store::EventQuery {
                target: Some("escalate".into()),
                ..Default::default()
            })
            .ok()?;
        events.iter().any(|e| e.kind == "gave-up").then_some(events)
    })
    .unwrap();
    let hook_done = events
        .iter()
        .find(|e| e.kind == "action-finished" && e.message.starts_with("hook of escalate"))
        .expect("the hook's action is in the event log");
    assert_eq!(hook_done.result.as_deref(), Some("ok"));
    assert_eq!(
        hook_done.fields["output"].as_str().map(str::trim),
        Some("noted")
    );
    assert_eq!(hook_done.step, Some(1));
    let restarts = events
        .iter()
        .filter(|e| e.kind == "action-finished" && e.message.starts_with("restart of escalate"))
        .count();
    assert_eq!(restarts, 2);
    assert!(
        !lines_with(&daemon, &["noted", "stream=\"stdout\""]).is_empty(),
        "the hook's output is logged"
    );
    sd.systemctl(&["stop", unit]);
    sd.systemctl(&["reset-failed", unit]);
}

#[test]
fn a_spent_reboot_budget_enters_safe_mode_also_after_a_sigkill_restart() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-reboot.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/false\n");
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let reboots = dir.join("reboots");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[daemon]\nbus = \"user\"\n\n[log]\noutput = \"stderr\"\n\n\
             [reboot]\nbudget = \"1/1h\"\nmin-uptime = \"0s\"\ncommand = [\"/bin/sh\", \"-c\", \"echo reboot >> {}\"]\n",
            reboots.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/doomed.toml"),
        format!(
            "[target]\nname = \"doomed\"\nunit = \"{unit}\"\n\n\
             [[recovery]]\naction = \"reboot\"\nattempts = 2\nbackoff = {{ initial = \"1s\", jitter = 0.0 }}\n"
        ),
    )
    .unwrap();
    let env = [("DBUS_SESSION_BUS_ADDRESS".to_owned(), sd.bus_address())];
    // Type=simple: the start succeeds, then the unit fails at once.
    assert!(sd.systemctl(&["start", unit]).status.success());

    // The first reboot is made; the watchdog is then killed before anything else.
    let mut daemon = TestDaemon::start_with_env(dir, &env);
    daemon.wait_for_line("reboot of doomed: reboot command /bin/sh ran", WAIT);
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    daemon.wait_exit(WAIT);
    assert_eq!(
        std::fs::read_to_string(&reboots).unwrap().lines().count(),
        1
    );

    // Started again: the ladder and the budget survived; the second reboot
    // inside the hour is refused and safe mode is entered.
    let mut daemon = TestDaemon::start_with_env(dir, &env);
    let refused = daemon.wait_for_line("reboot refused", WAIT);
    assert!(refused.contains("the reboot budget 1/1h"), "{refused}");
    daemon.wait_for_line("entering safe mode", WAIT);
    assert_eq!(
        std::fs::read_to_string(&reboots).unwrap().lines().count(),
        1,
        "no second reboot"
    );
    // The log line can come before /health shows it: wait for the state.
    let health = daemon.wait_for("safe mode on /health", WAIT, |h| {
        h["checks"]["recovery:safe-mode"].is_array()
    });
    let safe = &health["checks"]["recovery:safe-mode"][0];
    assert_eq!(safe["status"], "warn");
    assert!(
        safe["output"].as_str().unwrap().contains("reboot budget"),
        "{safe}"
    );
    // Safe mode degrades the machine; doomed, failing still, may fail it.
    assert_ne!(health["status"], "pass");

    // Killed and started once more: still in safe mode.
    wait_for_safe_mode_on_disk(dir);
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    daemon.wait_exit(WAIT);
    let mut daemon = TestDaemon::start_with_env(dir, &env);
    daemon.wait_for_line("still in safe mode", WAIT);
    let health = daemon.wait_for("safe mode on /health", WAIT, |h| {
        h["checks"]["recovery:safe-mode"].is_array()
    });
    assert!(health["checks"]["recovery:safe-mode"][0]["status"] == "warn");
    sd.systemctl(&["reset-failed", unit]);
}

/// Waits until safe mode is committed to `dir`'s state store: the daemon
/// queues it to the store's thread, which a loaded machine may run a moment
/// after /health shows it.
fn wait_for_safe_mode_on_disk(dir: &Path) {
    wait_until("safe mode in the state store", WAIT, || {
        let store = rvm_watchdog::store::Store::open(&dir.join("state")).ok()?;
        store.get_state("safe-mode").ok().flatten()
    })
    .unwrap();
}

#[test]
fn operator_commands_return_after_the_action_with_its_result() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-operator.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let token = dir.join("api.token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[daemon]\nbus = \"user\"\n\n[log]\noutput = \"stderr\"\n\n[api]\ntoken-file = \"{}\"\n",
            token.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/op.toml"),
        format!(
            "[target]\nname = \"op\"\nunit = \"{unit}\"\n\n[[recovery]]\naction = \"restart\"\n"
        ),
    )
    .unwrap();
    let mut daemon = TestDaemon::start_with_env(
        dir,
        &[("DBUS_SESSION_BUS_ADDRESS".into(), sd.bus_address())],
    );
    daemon.wait_for_line("unit rec-operator.service is active/running", WAIT);
    let cli = |args: &[&str]| {
        let out = support::daemon::binary()
            .args(args)
            .arg("--config")
            .arg(dir.join("watchdog.toml"))
            .arg("--api")
            .arg(daemon.addr.to_string())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    };

    // Without the token: refused.
    let (code, _, body) =
        support::daemon::try_http_post(daemon.addr, "/api/v1/targets/op/restart", None).unwrap();
    assert_eq!(code, 401, "{body}");

    let before = sd.main_pid(unit);
    let (code, text) = cli(&["restart", "op"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with(&format!("restarted {unit} in ")), "{text}");
    // It returned once systemd's job had finished: the new process is there already.
    let after = sd.main_pid(unit);
    assert!(after != 0 && after != before, "{before} → {after}");
    assert_eq!(sd.show(unit, "ActiveState"), "active");

    let (code, text) = cli(&["step", "op", "1"]);
    assert_eq!(
        (code, text.starts_with("restarted")),
        (Some(0), true),
        "{text}"
    );
    let (code, text) = cli(&["step", "op", "2"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        text,
        "target \"op\" has 1 ladder step(s); there is no step 2"
    );
    let (code, text) = cli(&["restart", "nope"]);
    assert_eq!((code, text.as_str()), (Some(1), "no target named \"nope\""));
    let (code, text) = cli(&["reset", "op"]);
    assert_eq!((code, text.as_str()), (Some(0), "op's ladder starts over"));
    daemon.wait_for_line("operator restart of op: restarted", WAIT);
    sd.systemctl(&["stop", unit]);
}

#[test]
fn a_unit_probe_follows_the_units_state() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-upstream.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    let temp = tempfile::tempdir().unwrap();
    let policy = format!(
        "[target]\nname = \"kiosk\"\n\n[[probe]]\nname = \"upstream\"\nkind = \"unit\"\nunit = \"{unit}\"\nfail-after = 1\npass-after = 1\n"
    );
    let mut daemon = setup(sd, temp.path(), &[("kiosk", policy)]);
    daemon.wait_for_line("probe kiosk/upstream is passing", WAIT);
    let check =
        |daemon: &TestDaemon| daemon.get_json("/health")["checks"]["kiosk:upstream"][0].clone();
    assert_eq!(check(&daemon)["status"], "pass");

    assert!(sd.systemctl(&["stop", unit]).status.success());
    daemon.wait_for_line("probe kiosk/upstream is failing", WAIT);
    daemon.wait_for_line("kiosk is failing: probe upstream is failing", WAIT);
    let failing = check(&daemon);
    assert_eq!(failing["status"], "fail");
    assert!(
        failing["output"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{unit} is inactive/dead")),
        "{failing}"
    );

    let mark = daemon.seen.len();
    assert!(sd.systemctl(&["start", unit]).status.success());
    daemon.wait_for_line_after(mark, "probe kiosk/upstream is passing", WAIT);
    assert_eq!(check(&daemon)["status"], "pass");
    sd.systemctl(&["stop", unit]);
}

#[test]
fn unit_accounting_reaches_metrics() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-accounted.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    let temp = tempfile::tempdir().unwrap();
    let policy = format!("[target]\nname = \"accounted\"\nunit = \"{unit}\"\n");
    let daemon = setup_with(
        sd,
        temp.path(),
        "\n[metrics]\ninterval = \"1s\"\n",
        &[("accounted", policy)],
    );
    // NRestarts is always accounted; memory, CPU and tasks only where the
    // cgroup controllers are on (not on this harness's cgroup v1 manager).
    let want = format!("rvm_watchdog_unit_restarts_total{{unit=\"{unit}\"}} 0");
    wait_until("the unit's figures on /metrics", WAIT, || {
        let (_, _, text) = support::daemon::try_http_get(daemon.addr, "/metrics").ok()?;
        text.lines().any(|l| l == want).then_some(())
    })
    .unwrap();
    sd.systemctl(&["stop", unit]);
}

#[test]
fn a_failing_unit_target_without_probes_degrades_health_until_it_is_healed() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-plain.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    let temp = tempfile::tempdir().unwrap();
    let policy = format!(
        "[target]\nname = \"plain\"\nunit = \"{unit}\"\n\n[[recovery]]\naction = \"restart\"\n\
         backoff = {{ initial = \"1s\", jitter = 0.0 }}\nhealthy-for = \"1s\"\n"
    );
    let mut daemon = setup(sd, temp.path(), &[("plain", policy)]);
    let check = |h: &serde_json::Value| h["checks"]["target:plain"][0].clone();
    daemon.wait_for("plain healthy", WAIT, |h| {
        h["status"] == "pass" && check(h)["state"] == "healthy"
    });

    let pid = sd.main_pid(unit);
    kill9(pid);
    let down = daemon.wait_for("health degraded", WAIT, |h| h["status"] == "warn");
    assert_eq!(check(&down)["state"], "failing", "{down:#}");
    assert!(
        check(&down)["output"]
            .as_str()
            .unwrap()
            .contains("rec-plain.service failed"),
        "{down:#}"
    );
    assert!(check(&down)["since"].is_string());

    // The ladder restarts it; health passes again and names what was done.
    // (systemd can tell of the new process before the action's report is in.)
    let up = daemon.wait_for("health back, with the restart", WAIT, |h| {
        h["status"] == "pass"
            && check(h)["state"] == "healthy"
            && check(h)["lastAction"]["action"] == "restart"
    });
    let last = &check(&up)["lastAction"];
    assert_eq!(last["action"], "restart");
    assert_eq!(
        (last["by"].as_str(), last["result"].as_str()),
        (Some("ladder"), Some("ok"))
    );
    assert_ne!(sd.main_pid(unit), pid);
    sd.systemctl(&["stop", unit]);
}

#[test]
fn a_unit_systemd_gave_up_on_is_rescued_before_the_shipped_ladder_reboots() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-rescue.service";
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // Fails while the flag is there; systemd allows three starts a minute
    // and restarts at once, so it soon gives up.
    let flag = dir.join("broken");
    std::fs::write(&flag, "").unwrap();
    let script = dir.join("edge");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -e {} ] && exit 1\nexec sleep 300\n",
            flag.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    sd.write_unit(
        unit,
        &format!(
            "[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=3\n[Service]\nRestart=always\nRestartSec=0\n\
             ExecStart={}\n",
            script.display()
        ),
    );
    let reboots = dir.join("reboots");
    // The shipped myrvm-edge ladder: restart x3, then reboot.
    let policy = format!(
        "[target]\nname = \"edge\"\nunit = \"{unit}\"\n\n\
         [[recovery]]\naction = \"restart\"\nattempts = 3\nbackoff = {{ initial = \"3s\", factor = 2.0, max = \"1m\", jitter = 0.0 }}\n\
         healthy-for = \"1s\"\n\n[[recovery]]\naction = \"reboot\"\nbudget = \"1/6h\"\n"
    );
    let extra = format!(
        "\n[reboot]\nmin-uptime = \"0s\"\ncommand = [\"/bin/sh\", \"-c\", \"echo reboot >> {}\"]\n",
        reboots.display()
    );
    let mut daemon = setup_with(sd, &dir.join("wd"), &extra, &[("edge", policy)]);
    daemon.wait_for_line("watching target edge", WAIT);
    assert!(
        sd.systemctl(&["start", "--no-block", unit])
            .status
            .success()
    );

    // systemd gives up: failed, no restart pending. Mended in the field
    // before the ladder's first backoff (3 s) runs out.
    wait_until("systemd to give up", WAIT, || {
        (sd.show(unit, "ActiveState") == "failed").then_some(())
    })
    .unwrap();
    std::fs::remove_file(&flag).unwrap();

    // Rescued: running again, healthy on /health, the rescue its last action.
    daemon.wait_for("edge healthy again", WAIT, |h| {
        let check = &h["checks"]["target:edge"][0];
        check["state"] == "healthy"
            && check["lastAction"]["action"] == "restart"
            && target(h, "edge")["unitState"]["subState"] == "running"
    });
    assert_eq!(sd.show(unit, "ActiveState"), "active");
    assert!(!reboots.exists(), "no reboot ran");
    let rows = rvm_watchdog::store::Store::open(&dir.join("wd/state"))
        .unwrap()
        .events(&rvm_watchdog::store::EventQuery {
            target: Some("edge".into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    let rescues: Vec<_> = rows
        .iter()
        .filter(|r| r.kind == "decision" && r.message.contains("start-limit rescue"))
        .collect();
    assert_eq!(rescues.len(), 1, "{rows:#?}");
    assert!(
        rescues[0]
            .message
            .contains("time(s) and stopped restarting it"),
        "{}",
        rescues[0].message
    );
    // What systemd did, in its own words.
    assert!(
        rescues[0].message.contains("StartLimitBurst=3"),
        "{}",
        rescues[0].message
    );
    assert_eq!(rescues[0].fields["startLimitBurst"], 3);
    assert!(rescues[0].fields["nRestarts"].as_u64().unwrap() >= 3);
    // After the rescue, nothing is scheduled from the state before it
    // (rows are newest first: those before the rescue's row came after it).
    let after: Vec<_> = rows
        .iter()
        .take_while(|r| r.id != rescues[0].id)
        .filter(|r| r.kind == "decision")
        .map(|r| &r.message)
        .collect();
    let story: Vec<_> = rows
        .iter()
        .take_while(|r| r.id != rescues[0].id)
        .map(|r| format!("{} {}", r.kind, r.message))
        .collect();
    assert!(
        after.is_empty(),
        "decisions after the rescue: {after:#?}; all after it: {story:#?}"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.kind == "decision" && r.result.as_deref() == Some("escalated")),
        "never escalated to the reboot: {rows:#?}"
    );
    daemon.wait_for_line("start-limit rescue", WAIT);
    sd.systemctl(&["stop", unit]);
    sd.systemctl(&["reset-failed", unit]);
}

#[test]
fn a_paused_target_is_watched_and_never_acted_on_until_resumed() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-paused.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let policy = format!(
        "[target]\nname = \"kiosk\"\nunit = \"{unit}\"\n\n[[recovery]]\naction = \"restart\"\n\
         backoff = {{ initial = \"500ms\", jitter = 0.0 }}\n"
    );
    let mut daemon = setup(sd, dir, &[("kiosk", policy)]);
    let check = |h: &serde_json::Value| h["checks"]["target:kiosk"][0].clone();
    daemon.wait_for("kiosk healthy", WAIT, |h| check(h)["state"] == "healthy");

    // Paused from the command line, for maintenance.
    let (code, text) = daemon.cli(dir, &["pause", "kiosk", "--for", "10m"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text, "kiosk is paused for 10m: watched, not acted on");

    // The unit dies: it is watched and shown, and left alone.
    let pid = sd.main_pid(unit);
    kill9(pid);
    let health = daemon.wait_for("kiosk failing while paused", WAIT, |h| {
        check(h)["output"]
            .as_str()
            .is_some_and(|o| o.contains("failing"))
    });
    assert_eq!(check(&health)["state"], "paused");
    assert_eq!(check(&health)["status"], "warn");
    // Three times its first backoff, and no restart.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sd.show(unit, "ActiveState"), "failed");
    assert!(lines_with(&daemon, &["recovering kiosk"]).is_empty());
    let (_, _, metrics) = daemon.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "rvm_watchdog_target_paused{target=\"kiosk\"} 1"),
        "{metrics}"
    );

    // Resumed through the API: the ladder acts.
    let (code, _, body) = support::daemon::try_http_post(
        daemon.addr,
        "/api/v1/targets/kiosk/resume",
        Some(&daemon.token(dir)),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("kiosk is resumed: its ladder acts again"),
        "{body}"
    );
    daemon.wait_for("kiosk restarted", WAIT, |h| check(h)["state"] == "healthy");
    assert_ne!(sd.main_pid(unit), pid);
    let (code, _, body) = support::daemon::try_http_post(
        daemon.addr,
        "/api/v1/targets/kiosk/resume",
        Some(&daemon.token(dir)),
    )
    .unwrap();
    assert_eq!(code, 409, "{body}");
    sd.systemctl(&["stop", unit]);
}

#[test]
fn an_operators_systemctl_stop_is_respected_and_a_start_resumes_watching() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "rec-stopped.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let policy = format!(
        "[target]\nname = \"scale\"\nunit = \"{unit}\"\n\n[[recovery]]\naction = \"restart\"\n\
         backoff = {{ initial = \"500ms\", jitter = 0.0 }}\n"
    );
    let mut daemon = setup(sd, dir, &[("scale", policy)]);
    let check = |h: &serde_json::Value| h["checks"]["target:scale"][0].clone();
    daemon.wait_for("scale healthy", WAIT, |h| check(h)["state"] == "healthy");

    // Stopped on purpose: shown as stopped, not failing, and left stopped.
    assert!(sd.systemctl(&["stop", unit]).status.success());
    let health = daemon.wait_for("scale stopped", WAIT, |h| check(h)["state"] == "stopped");
    assert_eq!(health["status"], "pass", "{health:#}");
    assert_eq!(check(&health)["status"], "pass");
    // Three times its first backoff, and no restart.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sd.show(unit, "ActiveState"), "inactive");
    assert!(lines_with(&daemon, &["recovering scale"]).is_empty());
    let told = daemon.wait_for_line("→ stopped", WAIT);
    assert!(
        told.contains("INFO") && told.contains("scale's health:"),
        "an info line tells of the stop: {told}"
    );
    let rows = rvm_watchdog::store::Store::open(&dir.join("state"))
        .unwrap()
        .events(&rvm_watchdog::store::EventQuery {
            kind: Some("health-changed".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(
        rows.iter().any(|r| r.fields["to"]["state"] == "stopped"),
        "{rows:#?}"
    );

    // Started again: watched as before, and a crash is healed.
    assert!(sd.systemctl(&["start", unit]).status.success());
    daemon.wait_for("scale healthy again", WAIT, |h| {
        check(h)["state"] == "healthy"
    });
    let pid = sd.main_pid(unit);
    kill9(pid);
    daemon.wait_for_line("recovering scale: restart", WAIT);
    wait_until("scale running again", WAIT, || {
        let now = sd.main_pid(unit);
        (now != 0 && now != pid).then_some(())
    })
    .unwrap();
    sd.systemctl(&["stop", unit]);
}

#[test]
fn a_dependent_named_first_is_released_on_the_pass_its_dependency_heals() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let (kiosk, camera) = ("rec-dep-kiosk.service", "rec-dep-camera.service");
    for unit in [kiosk, camera] {
        sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
        assert!(sd.systemctl(&["start", unit]).status.success());
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // The dependent sorts first by name.
    let dependent = format!(
        "[target]\nname = \"a-kiosk\"\nunit = \"{kiosk}\"\ndepends-on = [\"z-camera\"]\n\n\
         [[recovery]]\naction = \"restart\"\nbackoff = {{ initial = \"500ms\", jitter = 0.0 }}\nhealthy-for = \"1s\"\n"
    );
    let dependency = format!(
        "[target]\nname = \"z-camera\"\nunit = \"{camera}\"\n\n\
         [[recovery]]\naction = \"restart\"\nbackoff = {{ initial = \"1s\", jitter = 0.0 }}\nhealthy-for = \"1s\"\n"
    );
    let mut daemon = setup(sd, dir, &[("a-kiosk", dependent), ("z-camera", dependency)]);
    let state =
        |h: &serde_json::Value, t: &str| h["checks"][format!("target:{t}")][0]["state"].clone();
    daemon.wait_for("both healthy", WAIT, |h| {
        state(h, "a-kiosk") == "healthy" && state(h, "z-camera") == "healthy"
    });
    kill9(sd.main_pid(camera));
    daemon.wait_for("the camera failing", WAIT, |h| {
        state(h, "z-camera") == "failing"
    });
    kill9(sd.main_pid(kiosk));
    daemon.wait_for_line("holding a-kiosk's recovery: it depends on z-camera", WAIT);
    // The camera is restarted, heals; then the kiosk.
    daemon.wait_for("both healed", WAIT, |h| {
        state(h, "a-kiosk") == "healthy" && state(h, "z-camera") == "healthy"
    });

    let mut rows = rvm_watchdog::store::Store::open(&dir.join("state"))
        .unwrap()
        .events(&rvm_watchdog::store::EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    rows.reverse();
    let closed = rows
        .iter()
        .position(|r| r.kind == "incident-closed" && r.target.as_deref() == Some("z-camera"))
        .expect("the camera's incident closed");
    let released = rows
        .iter()
        .position(|r| {
            r.result.as_deref() == Some("released") && r.target.as_deref() == Some("a-kiosk")
        })
        .expect("the kiosk was released");
    assert!(closed < released, "{rows:#?}");
    // Nothing of another pass in between: the release follows the closing.
    let between: Vec<_> = rows[closed + 1..released]
        .iter()
        .map(|r| (r.kind.as_str(), r.target.as_deref(), r.result.as_deref()))
        .collect();
    assert!(
        between.iter().all(|(kind, _, _)| *kind == "decision"),
        "only the same pass's decisions between them: {between:?}"
    );
    assert!(
        between.iter().all(|(_, t, _)| *t != Some("a-kiosk")),
        "{between:?}"
    );
    for unit in [kiosk, camera] {
        sd.systemctl(&["stop", unit]);
    }
}
