//! Reload (SIGHUP) applies all or nothing, and the daemon refuses to start on
//! an invalid configuration.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use support::daemon::{TestDaemon, binary};

const WAIT: Duration = Duration::from_secs(20);

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn setup(dir: &Path) {
    write(&dir.join("watchdog.toml"), "[log]\noutput = \"stderr\"\n");
    write(
        &dir.join("policies/alpha.toml"),
        "[target]\nname = \"alpha\"\n\n[[probe]]\nkind = \"memory\"\n",
    );
}

fn target_names(health: &Value) -> Vec<String> {
    health["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The configuration check's output: "generation N from … applied …", and
/// what became of the last reload.
fn config_output(health: &Value) -> &str {
    health["checks"]["config:targets"][0]["output"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn a_broken_reload_keeps_the_running_configuration_and_a_good_one_applies() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    setup(dir);
    // Beta's tcp probe, once it is added, connects here: a port this test
    // holds open, so the probe passes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let probed = listener.local_addr().unwrap();
    let mut daemon = TestDaemon::start(dir);

    let (code, content_type, _) = daemon.get("/health");
    assert_eq!(code, 200);
    assert_eq!(content_type, "application/health+json");
    let health = daemon.get_json("/health");
    assert_eq!(health["status"], "pass");
    assert_eq!(target_names(&health), ["alpha"]);
    assert_eq!(health["checks"]["config:targets"][0]["observedValue"], 1);

    // A valid change to alpha together with a broken new file: nothing of it may apply.
    write(
        &dir.join("policies/alpha.toml"),
        "[target]\nname = \"alpha\"\n\n[[probe]]\nkind = \"memory\"\n\n[[probe]]\nkind = \"disk\"\n",
    );
    write(
        &dir.join("policies/beta.toml"),
        "[target]\nname = \"beta\"\nunit = \"beta\n",
    );
    let mark = daemon.seen.len();
    daemon.signal(Signal::SIGHUP);
    let refused = daemon.wait_for_line_after(mark, "reload refused", WAIT);
    assert!(refused.contains("1 error"), "{refused}");
    let problem = daemon.wait_for_line_after(mark, "beta.toml:3:", WAIT);
    assert!(
        problem.contains("ERROR"),
        "the problem is logged as an error: {problem}"
    );

    let health = daemon.wait_for("the refused reload on /health", WAIT, |h| {
        config_output(h).contains("refused with")
    });
    assert_eq!(health["status"], "warn");
    assert_eq!(
        target_names(&health),
        ["alpha"],
        "the old targets still serve"
    );
    assert_eq!(
        health["targets"][0]["probes"],
        serde_json::json!(["memory"]),
        "alpha unchanged"
    );
    let output = config_output(&health);
    assert!(output.starts_with("generation 1 "), "{output}");
    assert!(
        output.contains("refused with 1 error(s), running configuration kept"),
        "{output}"
    );
    assert!(output.contains("beta.toml:3:"), "{output}");
    assert_eq!(daemon.get("/livez").0, 200, "the daemon is alive");

    // Fixed: everything applies at once.
    write(
        &dir.join("policies/beta.toml"),
        &format!(
            "[target]\nname = \"beta\"\n\n[[probe]]\nkind = \"tcp\"\naddress = \"{probed}\"\n"
        ),
    );
    let mark = daemon.seen.len();
    daemon.signal(Signal::SIGHUP);
    let applied = daemon.wait_for_line_after(mark, "reload applied", WAIT);
    assert!(applied.contains("generation=2"), "{applied}");
    assert!(applied.contains("added=[\"beta\"]"), "{applied}");
    assert!(applied.contains("changed=[\"alpha\"]"), "{applied}");

    // Generation 2 serves once every probe it added has run at least once.
    let health = daemon.wait_for("generation 2 with its new probes run", WAIT, |h| {
        config_output(h).starts_with("generation 2 ")
            && h["checks"]["alpha:disk"][0]["status"].is_string()
            && h["checks"]["beta:tcp"][0]["status"].is_string()
    });
    assert_eq!(health["status"], "pass", "{health:#}");
    assert_eq!(health["checks"]["beta:tcp"][0]["status"], "pass");
    assert_eq!(target_names(&health), ["alpha", "beta"]);
    assert_eq!(
        health["targets"][0]["probes"],
        serde_json::json!(["memory", "disk"])
    );
    assert_eq!(health["targets"][1]["probes"], serde_json::json!(["tcp"]));
    let output = config_output(&health);
    assert!(output.starts_with("generation 2 "), "{output}");

    // A file removed, a target gone.
    std::fs::remove_file(dir.join("policies/alpha.toml")).unwrap();
    let mark = daemon.seen.len();
    daemon.signal(Signal::SIGHUP);
    let applied = daemon.wait_for_line_after(mark, "reload applied", WAIT);
    assert!(applied.contains("removed=[\"alpha\"]"), "{applied}");
    let health = daemon.wait_for("generation 3 on /health", WAIT, |h| {
        config_output(h).starts_with("generation 3 ")
    });
    assert_eq!(target_names(&health), ["beta"]);

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "a clean stop exits 0");
    drop(listener);
}

#[test]
fn an_invalid_configuration_is_refused_at_start_with_every_problem() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    setup(dir);
    write(
        &dir.join("policies/beta.toml"),
        "[target]\nname = \"beta\"\nunit = \"beta\"\nfoo = 1\n",
    );
    let out = binary()
        .arg("run")
        .arg("--config")
        .arg(dir.join("watchdog.toml"))
        .arg("--policies")
        .arg(dir.join("policies"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("beta.toml:3:8: error: unit name \"beta\" lacks a type suffix"),
        "{stderr}"
    );
    assert!(
        stderr.contains("beta.toml:4:1: error: unknown key `foo`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("configuration is invalid (2 error(s)); nothing started"),
        "{stderr}"
    );
}

#[test]
fn a_taken_port_fails_the_start_with_the_address_named() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    setup(dir);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = binary()
        .arg("run")
        .arg("--config")
        .arg(dir.join("watchdog.toml"))
        .arg("--policies")
        .arg(dir.join("policies"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn a_fifo_among_the_policies_refuses_the_reload_and_the_loop_goes_on() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    setup(dir);
    let mut daemon = TestDaemon::start(dir);
    // A named pipe nobody writes to: opening it for reading would block.
    let fifo = dir.join("policies/pipe.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mark = daemon.seen.len();
    daemon.signal(Signal::SIGHUP);
    let problem = daemon.wait_for_line_after(mark, "pipe.toml", WAIT);
    assert!(problem.contains("not a regular file"), "{problem}");
    daemon.wait_for_line_after(mark, "reload refused", WAIT);
    let health = daemon.wait_for("the refused reload on /health", WAIT, |h| {
        config_output(h).contains("refused with")
    });
    assert_eq!(target_names(&health), ["alpha"]);
    // The core loop goes round: /livez passes, and a reload without the pipe applies.
    assert_eq!(daemon.get("/livez").0, 200);
    std::fs::remove_file(&fifo).unwrap();
    let mark = daemon.seen.len();
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_line_after(mark, "reload applied", WAIT);
}

/// A reload that changes a channel applies the rest and says the channels
/// change only at a restart.
#[test]
fn a_reload_that_changes_the_channels_says_they_change_at_restart() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    setup(dir);
    let mut daemon = TestDaemon::start(dir);
    write(
        &dir.join("watchdog.toml"),
        "[log]\noutput = \"stderr\"\n\n[channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n",
    );
    let mark = daemon.seen.len();
    daemon.signal(Signal::SIGHUP);
    let line = daemon.wait_for_line_after(mark, "change only at restart", WAIT);
    assert!(
        line.contains("WARN") && line.contains("[channels.*]"),
        "{line}"
    );
}
