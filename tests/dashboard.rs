//! The dashboard in a real headless Chromium, served by a running daemon:
//! the page draws live data (a target's row, the machine's tiles and a
//! chart), logs nothing to the browser console, and a screenshot of it is
//! kept as a test artifact (target/test-artifacts/dashboard.png).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::daemon::TestDaemon;

const WAIT: Duration = Duration::from_secs(30);

/// Debian's Chromium, or `None` when it is not installed here (tests/run
/// installs it).
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Chromium on `url` with a fresh profile, closed to the network but the
/// daemon, its virtual clock run for `budget_ms`; `what` is `--dump-dom`
/// or `--screenshot=…`. Returns (stdout, stderr).
fn browse(bin: &Path, profile: &Path, url: &str, width: u32, what: &str) -> (String, String) {
    let out = Command::new("timeout")
        .arg("60")
        .arg(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},1600"))
        .arg(what)
        .arg(url)
        .output()
        .expect("run chromium");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_dashboard_draws_live_data_in_a_real_browser_and_logs_no_error() {
    let Some(bin) = chromium() else {
        eprintln!("no chromium here: skipped (tests/run installs it)");
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("watchdog.toml"), "[log]\noutput = \"stderr\"\n").unwrap();
    std::fs::write(
        dir.join("policies/edge.toml"),
        format!(
            "[target]\nname = \"edge\"\n\n[[probe]]\nname = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\ninterval = \"1s\"\n"
        ),
    )
    .unwrap();
    let mut daemon = TestDaemon::start(dir);
    daemon.wait_for("the target healthy", WAIT, |h| {
        h["checks"]["target:edge"][0]["state"] == "healthy"
    });
    // The charts need the history to hold a point of the memory series.
    support::systemd::wait_until("a point of memory in the history", WAIT, || {
        let (code, _, body) = support::daemon::http_get(
            daemon.addr,
            "/api/v1/query?since=5m&series=rvm_host_memory_bytes%7Bkind%3D%22used%22%7D",
        );
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (code == 200
            && v["series"][0]["points"]
                .as_array()
                .is_some_and(|p| !p.is_empty()))
        .then_some(())
    })
    .unwrap();
    let url = format!("http://{}/", daemon.addr);
    let (dom, log) = browse(&bin, &dir.join("profile"), &url, 1280, "--dump-dom");
    assert!(
        dom.contains("data-target=\"edge\""),
        "no row for edge:\n{dom}"
    );
    assert!(
        dom.contains("<span class=\"state healthy\">healthy</span>"),
        "edge not shown healthy:\n{dom}"
    );
    assert!(dom.contains("class=\"tile\""), "no tiles:\n{dom}");
    assert!(dom.contains("<canvas"), "no chart drawn:\n{dom}");
    assert!(
        dom.contains("<span id=\"live\" class=\"state live\">live</span>"),
        "the live stream is not connected:\n{dom}"
    );
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "the page logged: {console:#?}");
    let blocked: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Content Security Policy") || l.contains("Refused to"))
        .collect();
    assert!(
        blocked.is_empty(),
        "the page tried to load or call something else: {blocked:#?}"
    );

    // A screenshot for people, at a phone's width too.
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    for (width, name) in [(1280, "dashboard.png"), (390, "dashboard-390.png")] {
        let shot = artifacts.join(name);
        let _ = std::fs::remove_file(&shot);
        browse(
            &bin,
            &dir.join(format!("profile-{width}")),
            &url,
            width,
            &format!("--screenshot={}", shot.display()),
        );
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is {size} bytes", shot.display());
    }
    drop(listener);
}
