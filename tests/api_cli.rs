//! The API and its CLI against the running daemon on a real systemd: a
//! live-stream client sees a killed unit fail and recover, in order, and
//! one that reconnects with `Last-Event-ID` misses nothing; `status`,
//! `events` (and `--follow`), `pause` and `restart` do what they say; a
//! daemon that is down, a wrong token and a target that does not exist
//! each get their message and a non-zero exit.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rvm_watchdog::cli::sse::Stream;
use serde_json::Value;
use support::daemon::{TestDaemon, kill9};
use support::systemd::PrivateSystemd;

const WAIT: Duration = Duration::from_secs(30);

const LADDER: &str = "[[recovery]]\naction = \"restart\"\nattempts = 100\nbackoff = { initial = \"1s\", factor = 1.0, jitter = 0.0 }\nhealthy-for = \"1s\"\n";

/// The daemon on one unit target, `name`, whose unit sleeps.
fn start(sd: &PrivateSystemd, dir: &Path, name: &str, unit: &str) -> TestDaemon {
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        "[daemon]\nbus = \"user\"\n\n[log]\noutput = \"stderr\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("policies").join(format!("{name}.toml")),
        format!("[target]\nname = \"{name}\"\nunit = \"{unit}\"\n\n{LADDER}"),
    )
    .unwrap();
    let mut daemon = TestDaemon::start_with_env(
        dir,
        &[("DBUS_SESSION_BUS_ADDRESS".into(), sd.bus_address())],
    );
    daemon.wait_for("the target healthy", WAIT, |h| state(h, name) == "healthy");
    daemon
}

fn state(h: &Value, t: &str) -> Value {
    h["checks"][format!("target:{t}")][0]["state"].clone()
}

/// One message of the stream: event, id, data.
type Message = (String, Option<String>, Value);

/// Reads messages on a thread of its own, so that a wait is bounded.
fn reader(mut stream: Stream) -> std::sync::mpsc::Receiver<Message> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Some((kind, id, data)) = stream.next_message() {
            let v = serde_json::from_str(&data).unwrap_or(Value::Null);
            if tx.send((kind, id, v)).is_err() {
                return;
            }
        }
    });
    rx
}

fn connect(daemon: &TestDaemon, last: Option<&str>) -> std::sync::mpsc::Receiver<Message> {
    reader(
        Stream::open(daemon.addr, None, last)
            .expect("connect to the stream")
            .expect("the stream answers 200"),
    )
}

/// Messages until `stop` takes one (that one included), within [`WAIT`].
fn until_message(
    rx: &std::sync::mpsc::Receiver<Message>,
    what: &str,
    stop: impl Fn(&Message) -> bool,
) -> Vec<Message> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(m) => {
                let done = stop(&m);
                got.push(m);
                if done {
                    return got;
                }
            }
            Err(e) => panic!("no {what} ({e}); got {got:#?}"),
        }
    }
}

fn health_to(m: &Message, target: &str, to: &str) -> bool {
    m.0 == "health-changed" && m.2["target"] == target && m.2["fields"]["to"]["state"] == to
}

#[test]
fn a_stream_client_sees_a_killed_unit_fail_and_recover_in_order_and_a_reconnect_misses_nothing() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (name, unit) = ("st-cam", "st-cam.service");
    let daemon = start(sd, dir, name, unit);
    let whole = connect(&daemon, None);
    let dropped = connect(&daemon, None);
    for rx in [&whole, &dropped] {
        let hello = until_message(rx, "the stream's first message", |m| m.0 == "stream");
        assert_eq!(hello.len(), 1, "{hello:#?}");
        assert_eq!(hello[0].2["resumed"], false);
        // Then the state that holds: the target healthy.
        let current = hello[0].2["current"].as_u64().unwrap();
        let state: Vec<Message> = (0..current)
            .map(|_| rx.recv_timeout(WAIT).unwrap())
            .collect();
        assert!(
            state.iter().any(|m| health_to(m, name, "healthy")),
            "{state:#?}"
        );
    }

    kill9(sd.main_pid(unit));
    // One client stays for the whole story; the other goes once the
    // target is failing.
    let story = until_message(&whole, "the incident closed", |m| {
        m.0 == "incident-closed" && m.2["target"] == name
    });
    let kinds: Vec<&str> = story.iter().map(|m| m.0.as_str()).collect();
    let at = |pick: &dyn Fn(&Message) -> bool, what: &str| {
        story
            .iter()
            .position(pick)
            .unwrap_or_else(|| panic!("no {what} in {kinds:?}"))
    };
    let failed = at(
        &|m| m.0 == "unit-changed" && m.2["result"].is_string(),
        "unit failure",
    );
    let failing = at(&|m| health_to(m, name, "failing"), "failing");
    let opened = at(&|m| m.0 == "incident-opened", "incident");
    let started = at(&|m| m.0 == "action-started", "restart started");
    let done = at(
        &|m| m.0 == "action-finished" && m.2["result"] == "ok",
        "restart done",
    );
    let healthy = at(&|m| health_to(m, name, "healthy"), "healthy again");
    let closed = story.len() - 1;
    assert!(
        failed < failing
            && failing < opened
            && opened < started
            && started < healthy
            && done < closed
            && healthy < closed,
        "out of order: {kinds:?}"
    );
    // Ids count up, one run.
    let seqs: Vec<u64> = story.iter().map(|m| m.2["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // The other client read up to the failure, then lost its connection.
    let part = until_message(&dropped, "the failure", |m| health_to(m, name, "failing"));
    let last = part.last().unwrap().1.clone().unwrap();
    drop(dropped);
    // It comes back after the recovery, with the last id it had.
    let back = connect(&daemon, Some(&last));
    let hello = until_message(&back, "the resumed stream's first message", |m| {
        m.0 == "stream"
    });
    assert_eq!(hello[0].2["resumed"], true, "{hello:#?}");
    let rest = until_message(&back, "the recovery, replayed", |m| {
        m.0 == "incident-closed" && m.2["target"] == name
    });
    let after: Vec<&Option<String>> = story
        .iter()
        .skip_while(|m| m.1.as_deref() != Some(last.as_str()))
        .skip(1)
        .map(|m| &m.1)
        .collect();
    let replayed: Vec<&Option<String>> = rest.iter().map(|m| &m.1).collect();
    assert_eq!(replayed, after, "the reconnect missed or repeated events");
}

#[test]
fn the_cli_shows_status_and_events_pauses_and_restarts_and_says_clearly_what_went_wrong() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (name, unit) = ("cli-api", "cli-api.service");
    let mut daemon = start(sd, dir, name, unit);

    let (code, text) = daemon.cli(dir, &["status"]);
    assert_eq!(code, Some(0), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
    assert!(row.contains("healthy"), "{text}");
    assert!(text.contains("connected to systemd"), "{text}");
    assert!(!text.contains('\x1b'), "no colour off a terminal: {text}");
    let (code, text) = daemon.cli(dir, &["status", "--json"]);
    assert_eq!(code, Some(0), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["health"]["status"], "pass");
    assert!(v["alerts"].is_array(), "{v:#}");

    // Following the events while an operator restarts the unit.
    let mut follow = support::daemon::binary()
        .args(["events", "--follow", "--limit", "5", "--target", name])
        .arg("--config")
        .arg(dir.join("watchdog.toml"))
        .arg("--api")
        .arg(daemon.addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let follow_pid = follow.id();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The listing first (the latest at the bottom); then live lines.
    let before = sd.main_pid(unit);
    let (code, text) = daemon.cli(dir, &["restart", name]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("restarted"), "{text}");
    let after = sd.main_pid(unit);
    assert_ne!(before, after, "the unit's process is a new one");
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("operator") && l.contains("restart"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(e) => panic!("events --follow printed no restart ({e}): {seen:#?}"),
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follow_pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    follow.wait().unwrap();
    assert!(
        seen.iter().all(|l| !l.contains("waiting for it")),
        "{seen:#?}"
    );

    // --json everywhere: the daemon's answer as it gave it.
    for args in [
        vec!["alerts", "--json"],
        vec!["incidents", "--json"],
        vec!["events", "--json", "--limit", "3"],
        vec!["restart", name, "--json"],
    ] {
        let (code, text) = daemon.cli(dir, &args);
        assert_eq!(code, Some(0), "{args:?}: {text}");
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"));
        assert!(
            v["alerts"].is_array()
                || v["incidents"].is_array()
                || v["events"].is_array()
                || v["ok"] == true,
            "{args:?}: {v:#}"
        );
    }
    let (code, text) = daemon.cli(dir, &["events", "--target", name, "--kind", "operator"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.lines().any(|l| l.contains("operator")), "{text}");

    // Paused: shown, and not acted on.
    let (code, text) = daemon.cli(dir, &["pause", name, "--for", "1h"]);
    assert_eq!(code, Some(0), "{text}");
    daemon.wait_for("the target paused", WAIT, |h| state(h, name) == "paused");
    let (_, text) = daemon.cli(dir, &["status"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with(name) && l.contains("paused")),
        "{text}"
    );
    let (code, text) = daemon.cli(dir, &["resume", name]);
    assert_eq!(code, Some(0), "{text}");
    daemon.wait_for("the target resumed", WAIT, |h| state(h, name) == "healthy");

    // The three ways a call goes wrong.
    let (code, text) = daemon.cli(dir, &["restart", "nope"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no target named \"nope\""), "{text}");
    let wrong = dir.join("wrong.token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, text) = daemon.cli(
        dir,
        &["restart", name, "--token-file", wrong.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("refused the token"), "{text}");
    // Neither the token nor a wrong one is ever logged, even at debug.
    let token = daemon.token(dir);
    daemon.wait_for("the log read", WAIT, |_| true);
    assert!(daemon.seen.len() > 20, "{:#?}", daemon.seen);
    for secret in [token.as_str(), "not-the-token"] {
        assert!(
            daemon.seen.iter().all(|l| !l.contains(secret)),
            "a token in the log: {:#?}",
            daemon.seen
        );
    }
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = free.local_addr().unwrap().to_string();
    drop(free);
    for args in [
        vec!["status", "--api", down.as_str()],
        vec!["restart", name, "--api", down.as_str()],
    ] {
        let out = support::daemon::binary()
            .args(&args)
            .arg("--config")
            .arg(dir.join("watchdog.toml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains("is rvm-watchdog running? systemctl status rvm-watchdog"),
            "{args:?}: {text}"
        );
    }
}

/// A probe's interval in the test below; `/health` must fail within it
/// (and the probe's timeout) once the probed port goes.
const PROBE_EVERY: Duration = Duration::from_secs(4);

#[test]
fn health_turns_503_within_a_probe_interval_of_a_critical_probe_failing() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("watchdog.toml"), "[log]\noutput = \"stderr\"\n").unwrap();
    std::fs::write(
        dir.join("policies/edge.toml"),
        format!(
            "[target]\nname = \"edge\"\n\n[[probe]]\nname = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\
             interval = \"{}s\"\ntimeout = \"500ms\"\nfail-after = 1\npass-after = 1\n\n[alert]\nseverity = \"critical\"\n",
            PROBE_EVERY.as_secs()
        ),
    )
    .unwrap();
    let mut daemon = TestDaemon::start(dir);
    daemon.wait_for("the target healthy", WAIT, |h| {
        state(h, "edge") == "healthy"
    });
    assert_eq!(daemon.get("/health").0, 200);
    drop(listener);
    let gone = Instant::now();
    // Bounded by the probe's interval, its timeout and a second for the
    // core loop's round: past that deadline the wait fails.
    let deadline = PROBE_EVERY + Duration::from_millis(500) + Duration::from_secs(1);
    let health = daemon.wait_for("/health failing", deadline, |h| h["status"] == "fail");
    assert_eq!(state(&health, "edge"), "failing", "{health:#}");
    let (code, kind, _) = daemon.get("/health");
    assert_eq!((code, kind.as_str()), (503, "application/health+json"));
    eprintln!("/health failed {:?} after the port went", gone.elapsed());
}
