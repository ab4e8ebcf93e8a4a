//! The dashboard in a real headless Chromium, served by a running daemon:
//! the page draws live data (a target's row, the machine's tiles and a
//! chart), logs nothing to the browser console, and a screenshot of it is
//! kept as a test artifact (target/test-artifacts/dashboard.png). Driven
//! over WebDriver on a real systemd: an alert acknowledged through its
//! button is acknowledged in the API; a killed unit shows as failing
//! without a reload, then recovered; the site's view and a browser's own
//! apply; at a phone's width nothing overflows.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::{TestDaemon, kill9};
use support::systemd::{PrivateSystemd, wait_until};
use support::webdriver::Browser;

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

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The row state the page shows for `target`.
fn row_state(target: &str) -> String {
    format!(
        "const r = document.querySelector('tr[data-target=\"{target}\"]'); return r && r.dataset.state;"
    )
}

#[test]
fn the_dashboard_acknowledges_follows_a_killed_unit_keeps_its_view_and_fits_a_phone() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    if support::webdriver::installed().is_none() {
        eprintln!("no chromedriver here: skipped (tests/run installs chromium-driver)");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // camera: no ladder, so its alert stays; vision: restarted by the ladder.
    let (camera, vision) = ("db-camera.service", "db-vision.service");
    // vision takes 3 s to start, so that its restart is seen.
    sd.write_unit(camera, "[Service]\nExecStart=/bin/sleep 300\n");
    sd.write_unit(
        vision,
        "[Service]\nExecStartPre=/bin/sleep 3\nExecStart=/bin/sleep 300\n",
    );
    for unit in [camera, vision] {
        assert!(sd.systemctl(&["start", unit]).status.success());
    }
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        "[daemon]\nbus = \"user\"\n\n[log]\noutput = \"stderr\"\n\n[metrics]\ninterval = \"1s\"\n\n\
         [dashboard]\ntiles = [\"systemd\", \"memory\", \"cpu\", \"network\", \"outbox\"]\n\
         charts = [\"memory\", \"cpu\", \"watchdog\"]\ntargets = [\"vision\", \"camera\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/camera.toml"),
        format!(
            "[target]\nname = \"camera\"\nunit = \"{camera}\"\n\n[alert]\nseverity = \"critical\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/vision.toml"),
        format!(
            "[target]\nname = \"vision\"\nunit = \"{vision}\"\n\n[[recovery]]\naction = \"restart\"\nattempts = 10\n\
             backoff = {{ initial = \"1s\", factor = 1.0, jitter = 0.0 }}\nhealthy-for = \"1s\"\n"
        ),
    )
    .unwrap();
    let mut daemon = TestDaemon::start_with_env(
        dir,
        &[("DBUS_SESSION_BUS_ADDRESS".into(), sd.bus_address())],
    );
    daemon.wait_for("both targets healthy", WAIT, |h| {
        ["camera", "vision"]
            .iter()
            .all(|t| h["checks"][format!("target:{t}")][0]["state"] == "healthy")
    });
    wait_until("a point of memory in the history", WAIT, || {
        let v = daemon
            .get_ok("/api/v1/query?since=5m&series=rvm_host_memory_bytes%7Bkind%3D%22used%22%7D");
        (!v["series"][0]["points"].as_array()?.is_empty()).then_some(())
    })
    .unwrap();
    let token = daemon.token(dir);
    let url = format!("http://{}/", daemon.addr);

    let browser = Browser::start(1280, 1000).expect("a browser");
    browser.goto(&url);
    // The token through the page's own form.
    browser.click("#login");
    browser.type_into("#token-input", &token);
    browser.click("#token-form button[type=submit]");
    browser.wait("vision's row", WAIT, &row_state("vision"));
    assert_eq!(
        browser.run("return document.getElementById('token-form').offsetParent === null"),
        true,
        "the token form stays open after the token was taken"
    );
    browser.wait(
        "a chart with points",
        WAIT,
        "return [...plots.values()].some((p) => p.data[0].length > 0) && document.querySelector('.chart canvas') !== null",
    );
    browser.wait(
        "the stream live",
        WAIT,
        "return document.getElementById('live').textContent === 'live'",
    );
    assert_eq!(
        browser.run("return sessionStorage.getItem('rvm-token')"),
        Value::String(token.clone()),
        "the token is kept for the session"
    );
    assert_eq!(
        browser.run("return localStorage.getItem('rvm-token')"),
        Value::Null
    );

    // The site's view: tiles and targets in the order watchdog.toml gives.
    let tiles = browser.wait(
        "the tiles",
        WAIT,
        "const t = [...document.querySelectorAll('#tiles .tile')].map((e) => e.dataset.tile); return t.length >= 4 && t",
    );
    let tiles: Vec<&str> = tiles
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let order = ["systemd", "memory", "cpu", "network", "outbox"];
    let expected: Vec<&str> = order
        .iter()
        .copied()
        .filter(|t| tiles.contains(t))
        .collect();
    assert_eq!(tiles, expected, "tiles out of the site's order");
    assert!(
        tiles.starts_with(&["systemd", "memory", "cpu"]),
        "{tiles:?}"
    );
    let rows = browser.run("return [...document.querySelectorAll('#targets tr[data-target]')].map((r) => r.dataset.target)");
    assert_eq!(rows, serde_json::json!(["vision", "camera"]));
    let charts = browser
        .run("return [...document.querySelectorAll('#charts .chart')].map((c) => c.dataset.chart)");
    assert_eq!(charts, serde_json::json!(["memory", "cpu", "watchdog"]));

    // This browser's own view: the CPU tile off, kept over a reload.
    browser.click("#customise summary");
    browser.click("input[data-choice='tiles:cpu']");
    browser.wait(
        "the CPU tile gone",
        WAIT,
        "return document.querySelector('[data-tile=cpu]') === null",
    );
    browser.goto(&url);
    browser.wait(
        "the page again",
        WAIT,
        "return document.querySelector('[data-tile=memory]') !== null",
    );
    assert_eq!(
        browser.run("return document.querySelector('[data-tile=cpu]') === null"),
        true
    );
    browser.click("#customise summary");
    browser.click("#reset-view");
    browser.wait(
        "the CPU tile back",
        WAIT,
        "return document.querySelector('[data-tile=cpu]') !== null",
    );

    // The camera fails: its alert is acknowledged through the page.
    kill9(sd.main_pid(camera));
    let fp = browser.wait(
        "the camera's alert with its button",
        WAIT,
        "const b = [...document.querySelectorAll('#alerts [data-ack]')].find((b) => b.closest('li').textContent.includes('on camera')); return b && b.dataset.ack",
    );
    let fp = fp.as_str().unwrap().to_owned();
    browser.click(&format!("[data-ack='{fp}']"));
    browser.type_into("#alerts form input", "technician on the way");
    browser.click("#alerts form button[type=submit]");
    let acked = wait_until("the acknowledgement in the API", WAIT, || {
        let a = daemon.get_ok(&format!("/api/v1/alerts/{fp}"));
        (a["alert"]["state"] == "acknowledged").then_some(a)
    })
    .unwrap();
    assert_eq!(acked["alert"]["ack"]["by"], "dashboard", "{acked}");
    assert_eq!(
        acked["alert"]["ack"]["comment"], "technician on the way",
        "{acked}"
    );
    browser.wait(
        "the acknowledgement on the page",
        WAIT,
        "return document.getElementById('alerts').textContent.includes('acknowledged by dashboard: technician on the way')",
    );

    // vision is killed with the page open: failing on the page without a
    // reload, then recovered.
    // Every state vision's row is drawn with, as it is drawn.
    browser.run(
        "window.rvmStillHere = true; window.rvmSeen = []; \
         const body = document.querySelector('#targets tbody'); \
         new MutationObserver(() => { const r = body.querySelector('tr[data-target=\"vision\"]'); \
           const s = (r && r.dataset.state) || '-'; if (rvmSeen[rvmSeen.length - 1] !== s) rvmSeen.push(s); }) \
           .observe(body, { childList: true, subtree: true }); return null",
    );
    let killed = Instant::now();
    kill9(sd.main_pid(vision));
    browser.wait(
        "vision failing on the page",
        WAIT,
        "return window.rvmSeen.includes('failing')",
    );
    let shown = killed.elapsed();
    let seen = browser.run("return window.rvmSeen");
    eprintln!(
        "dashboard: a killed unit showed as failing on the page {} ms after the kill (the row: {seen})",
        shown.as_millis()
    );
    let first_bad = seen.as_array().unwrap().iter().find(|s| *s != "healthy");
    assert_eq!(first_bad, Some(&Value::from("failing")), "{seen}");
    assert!(
        shown <= Duration::from_secs(2),
        "vision showed as failing {shown:?} after the kill (the page must show it within 2 s)"
    );
    browser.wait(
        "vision recovered on the page",
        WAIT,
        &format!(
            "return (() => {{ {} }})() === 'healthy'",
            row_state("vision")
        ),
    );
    assert_eq!(
        browser.run("return window.rvmStillHere === true"),
        true,
        "the page was reloaded"
    );

    // Nothing but the daemon was asked for; nothing went to the console.
    let origin = format!("http://{}", daemon.addr);
    let asked = browser.run("return performance.getEntriesByType('resource').map((e) => e.name)");
    let outside: Vec<&Value> = asked
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| !u.as_str().unwrap().starts_with(&origin))
        .collect();
    assert!(outside.is_empty(), "asked outside the daemon: {outside:?}");
    let console = browser.console();
    assert!(console.is_empty(), "the page logged: {console:#?}");

    let shot = artifacts().join("dashboard-live.png");
    browser.screenshot(&shot);

    // A phone: every tile readable, nothing wider than the screen.
    // A phone's viewport, as DevTools' device mode sets it (a window 390 px
    // wide would give the page 375: desktop scroll bars take the rest).
    browser.devtools(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
    );
    browser.goto(&url);
    browser.wait("the page at 390 px", WAIT, "return document.querySelectorAll('#tiles .tile').length >= 4 && document.querySelector('.chart canvas') !== null");
    let fit = browser.run(
        "const w = document.documentElement.clientWidth; \
         const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > w + 1 && e.closest('.scroll') === null).map((e) => e.tagName + '#' + e.id + '.' + e.className); \
         const clipped = [...document.querySelectorAll('.tile')].filter((t) => t.scrollWidth > t.clientWidth).map((t) => t.dataset.tile); \
         return { width: w, scroll: document.documentElement.scrollWidth, wide, clipped };",
    );
    assert_eq!(fit["width"], 390, "{fit}");
    assert!(
        fit["scroll"].as_u64().unwrap() <= 390,
        "the page scrolls sideways: {fit}"
    );
    assert_eq!(fit["wide"], serde_json::json!([]), "{fit}");
    assert_eq!(fit["clipped"], serde_json::json!([]), "{fit}");
    let (w, _) = browser.screenshot(&artifacts().join("dashboard-live-390.png"));
    assert_eq!(w, 390);
    let console = browser.console();
    assert!(console.is_empty(), "the page logged: {console:#?}");

    // First paint, as loaded here, and with the CPU four times slower
    // (about a Jetson Orin Nano's cores against this machine's).
    browser.devtools(
        "Emulation.clearDeviceMetricsOverride",
        serde_json::json!({}),
    );
    let mut paints = Vec::new();
    for rate in [1, 4] {
        browser.devtools(
            "Emulation.setCPUThrottlingRate",
            serde_json::json!({ "rate": rate }),
        );
        browser.goto(&url);
        let fcp = browser.wait(
            "the first paint",
            WAIT,
            "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : null",
        );
        paints.push(fcp.as_f64().unwrap());
    }
    eprintln!(
        "dashboard: first contentful paint {:.0} ms; with the CPU 4x slower {:.0} ms",
        paints[0], paints[1]
    );
    drop(browser);
    drop(daemon);
}
