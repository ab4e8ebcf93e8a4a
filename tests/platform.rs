//! The earlier platform's maintenance page against the running watchdog:
//! a poller that behaves as the page does (five GETs one after another, a
//! 5 s timeout each, reading the fields ../shared/domain/MYRVM.md lists)
//! on the watchdog's `[platform] legacy-endpoints`, with a JetPack 6 Orin
//! Nano fixture tree as its host root.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::{TestDaemon, free_port, kill9, try_http_get};

const WAIT: Duration = Duration::from_secs(30);

/// What the page saw in one round.
#[derive(Debug)]
struct Card {
    green: bool,
    online: bool,
    model: Option<String>,
    cpu: Option<f64>,
    memory: Option<f64>,
    disk: Option<f64>,
    gpu: Option<f64>,
    daily: bool,
    /// The page's five GETs, each within its 5 s.
    answered: bool,
    cors: bool,
}

/// One round of the page: the five GETs in its order.
fn poll(addr: SocketAddr) -> Card {
    let mut answered = true;
    let mut cors = true;
    let mut get = |path: &str| -> Option<Value> {
        let started = Instant::now();
        let got = try_http_get(addr, path);
        if started.elapsed() > Duration::from_secs(5) {
            answered = false;
            return None;
        }
        let (code, _, body) = got.ok()?;
        if code >= 400 {
            answered = false;
            return None;
        }
        cors &= cors_header(addr, path);
        serde_json::from_str(&body).ok()
    };
    let health = get("/api/health");
    let status = get("/api/status");
    let hardware = get("/api/hardware");
    let monitoring = get("/api/monitoring/status");
    let summary = get("/api/monitoring/summary");
    let number = |v: &Option<Value>, key: &str| v.as_ref().and_then(|v| v[key].as_f64());
    Card {
        green: health.as_ref().is_some_and(|h| h["status"] == "healthy"),
        online: status.as_ref().is_some_and(|s| s["api_status"] == "online"),
        model: hardware.as_ref().and_then(|h| {
            h["hardware_info"]["jetson_info"]["model"]
                .as_str()
                .map(str::to_owned)
        }),
        cpu: number(&monitoring, "cpu_usage"),
        memory: number(&monitoring, "memory_usage"),
        disk: number(&monitoring, "disk_usage"),
        gpu: number(&monitoring, "gpu_usage"),
        daily: summary.as_ref().is_some_and(|s| s["daily"].is_object()),
        answered,
        cors,
    }
}

/// Whether the answer says `Access-Control-Allow-Origin: *`.
fn cors_header(addr: SocketAddr, path: &str) -> bool {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .to_ascii_lowercase()
        .contains("\r\naccess-control-allow-origin: *\r\n")
}

#[test]
fn the_maintenance_page_sees_a_true_card_that_turns_when_a_target_fails() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    // A JetPack 6 Orin Nano's sysfs and device tree, with an Orin Nano's /proc.
    let root = dir.join("root");
    let copy = |from: &Path| {
        let ok = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", from.display()))
            .arg(&root)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cp -a {}", from.display());
    };
    std::fs::create_dir_all(&root).unwrap();
    copy(&fixtures.join("jetson/jp6-orin-nano"));
    copy(&fixtures.join("collect/host-a"));

    let port = free_port();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[daemon]\nhost-root = \"{}\"\n\n[platform]\nbase-url = \"http://127.0.0.1:9/api/v1\"\nlegacy-endpoints = true\nlegacy-listen = \"127.0.0.1:{port}\"\n\n[metrics]\ninterval = \"1s\"\n",
            root.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/app.toml"),
        "[target]\nname = \"app\"\n\n[target.process]\ncommand = [\"/bin/sleep\", \"600\"]\n\n[alert]\nseverity = \"critical\"\n",
    )
    .unwrap();
    let mut daemon = TestDaemon::start(dir);
    daemon.wait_for_line("serving the platform's endpoints", WAIT);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Once the first round read host-a, ten seconds of the machine later
    // (fixtures/collect/README.md): CPU use is the difference of two rounds.
    let deadline = Instant::now() + WAIT;
    while !daemon
        .get("/metrics")
        .2
        .contains("rvm_host_memory_bytes{kind=\"total\"}")
    {
        assert!(Instant::now() < deadline, "no host round on /metrics");
        std::thread::sleep(Duration::from_millis(50));
    }
    copy(&fixtures.join("collect/host-b"));

    // Green once the target is healthy, with the fixture's figures.
    let deadline = Instant::now() + WAIT;
    let card = loop {
        let card = poll(addr);
        if card.green && card.cpu.is_some() && card.gpu.is_some() {
            break card;
        }
        assert!(
            Instant::now() < deadline,
            "no green card with figures: {card:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(card.answered && card.cors, "{card:?}");
    assert!(card.online, "{card:?}");
    assert_eq!(
        card.model.as_deref(),
        Some("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super")
    );
    // Real numbers: the fixture's meminfo (7,620,000 kB, 3,810,000
    // available) and GPU load (123 ‰); CPU and disk as the watchdog
    // measures them.
    assert_eq!(card.memory, Some(50.0), "{card:?}");
    assert_eq!(card.gpu, Some(12.3), "{card:?}");
    assert!(
        card.cpu.is_some_and(|c| (0.0..=100.0).contains(&c)),
        "{card:?}"
    );
    assert!(
        card.disk.is_some_and(|d| (0.0..=100.0).contains(&d)),
        "{card:?}"
    );
    assert!(card.daily, "{card:?}");

    // The edge client's heartbeat figures, on the watchdog's own API: the
    // CPU zone found by type (the fixture's cpu-thermal reads 44125).
    let figures = daemon.get_ok("/api/v1/health-metrics");
    let h = &figures["health_metrics"];
    assert_eq!(h["cpu_temperature"], 44.1, "{figures}");
    assert_eq!(h["temperature"], 44.1, "{figures}");
    assert_eq!(h["memory_usage_percent"], 50.0, "{figures}");
    assert_eq!(h["gpu_usage"], 12.3, "{figures}");
    assert!(
        h["cpu_usage_percent"].is_number() && h["cpu_usage"] == h["cpu_usage_percent"],
        "{figures}"
    );

    // The target fails: the card turns, and the API still answers.
    let health = daemon.get_json("/health");
    let pid = health["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "app")
        .and_then(|t| t["processState"]["pid"].as_u64())
        .expect("the app's pid") as u32;
    kill9(pid);
    let deadline = Instant::now() + WAIT;
    let turned = loop {
        let card = poll(addr);
        if !card.green {
            break card;
        }
        assert!(Instant::now() < deadline, "the card stayed green: {card:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(turned.answered && turned.online, "{turned:?}");
    // The alert engine's alert about it is among the page's alerts.
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, _, body) = try_http_get(addr, "/api/monitoring/status").unwrap();
        let doc: Value = serde_json::from_str(&body).unwrap();
        let listed = doc["alerts"].as_array().unwrap().iter().any(|a| {
            a["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("[critical] target-failing on app: "))
                && a["timestamp"].is_string()
        });
        if listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no alert about app listed: {doc}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (code, _, body) = try_http_get(addr, "/api/health").unwrap();
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_ne!(doc["status"], "healthy", "{doc}");
}

#[test]
fn the_endpoints_are_off_by_default() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let port = free_port();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!("[platform]\nbase-url = \"http://127.0.0.1:9/api/v1\"\nlegacy-listen = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    let daemon = TestDaemon::start(dir);
    // The daemon serves its own API; nothing listens on the platform's port.
    assert_eq!(daemon.get("/livez").0, 200);
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "the platform's endpoints listen without legacy-endpoints"
    );
}

#[test]
fn a_port_another_service_holds_is_said_and_the_rest_runs() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!("[platform]\nbase-url = \"http://127.0.0.1:9/api/v1\"\nlegacy-endpoints = true\nlegacy-listen = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    let mut daemon = TestDaemon::start(dir);
    let line = daemon.wait_for_line("for the platform's endpoints", WAIT);
    assert!(
        line.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && line.contains("[platform] legacy-listen"),
        "{line}"
    );
    assert_eq!(daemon.get("/livez").0, 200);
    drop(held);
}

/// The earlier platform's rules for a monitoring record (MYRVM.md): every
/// field nullable; the four percentages numbers 0–100; the processing time
/// not negative; counts whole and not negative. Invalid input is a 500.
fn valid(record: &Value) -> Result<(), String> {
    let fields = [
        "timestamp",
        "cpu_usage",
        "memory_usage",
        "gpu_usage",
        "disk_usage",
        "processing_time_ms",
        "detections_count",
        "error_count",
        "api_requests_count",
    ];
    let o = record.as_object().ok_or("not an object")?;
    for f in fields {
        if !o.contains_key(f) {
            return Err(format!("{f} is missing"));
        }
    }
    for f in ["cpu_usage", "memory_usage", "gpu_usage", "disk_usage"] {
        if !(o[f].is_null() || o[f].as_f64().is_some_and(|v| (0.0..=100.0).contains(&v))) {
            return Err(format!("{f} = {}", o[f]));
        }
    }
    if !(o["processing_time_ms"].is_null()
        || o["processing_time_ms"].as_f64().is_some_and(|v| v >= 0.0))
    {
        return Err(format!("processing_time_ms = {}", o["processing_time_ms"]));
    }
    for f in ["detections_count", "error_count", "api_requests_count"] {
        if !(o[f].is_null() || o[f].is_u64()) {
            return Err(format!("{f} = {}", o[f]));
        }
    }
    Ok(())
}

#[test]
fn the_monitoring_push_is_valid_waits_bounded_while_the_platform_is_down_and_drains_in_order() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let port = free_port();
    let key = dir.join("api_key");
    std::fs::write(&key, "k-123\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[platform]\nbase-url = \"http://127.0.0.1:9/api/v1\"\napi-key-file = \"{}\"\nmonitoring-url = \"http://127.0.0.1:{port}/api/maintenance/17/monitoring\"\nmonitoring-every = \"1s\"\nmonitoring-backlog = 3\ntimeout = \"500ms\"\ndetections-series = \"app_detections_total\"\n\n[metrics]\ninterval = \"1s\"\n",
            key.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    let mut daemon = TestDaemon::start(dir);
    daemon.wait_for_line("pushing monitoring records to the platform", WAIT);

    // The platform is down: records wait, at most three, the oldest dropped.
    let push = |h: &Value| h["checks"]["platform:monitoring-push"][0].clone();
    let down = daemon.wait_for("the backlog full and dropping", WAIT, |h| {
        let p = push(h);
        p["status"] == "warn"
            && p["observedValue"] == 3
            && p["output"]
                .as_str()
                .is_some_and(|o| o.contains("waiting (at most 3)") && !o.contains(" 0 dropped"))
    });
    let said = push(&down)["output"].as_str().unwrap().to_owned();
    assert!(said.contains("cannot reach the platform"), "{said}");
    assert_ne!(down["status"], "pass", "/health says so: {down}");

    // Detections counted by the application, between records.
    let token = daemon.token(dir);
    for total in [5, 9] {
        let body = format!(
            "# TYPE app_detections_total counter\napp_detections_total{{camera=\"front\"}} {total}\n"
        );
        let (code, answer) = support::daemon::post(
            daemon.addr,
            "/api/v1/ingest",
            token.trim(),
            "text/plain",
            &body,
        );
        assert_eq!(code, 200, "{answer}");
        std::thread::sleep(Duration::from_millis(1100));
    }

    // The platform comes up, applying its rules: every record is accepted,
    // oldest first, with the key as configured.
    let verdicts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = verdicts.clone();
    let listener = std::net::TcpListener::bind(format!("127.0.0.1:{port}")).unwrap();
    let (_url, got) = support::receiver::start_on(listener, 100, move |g, _| {
        let verdict = serde_json::from_str::<Value>(&g.body)
            .map_err(|e| e.to_string())
            .and_then(|v| valid(&v));
        let ok = verdict.is_ok();
        seen.lock().unwrap().push(verdict);
        if ok {
            (200, r#"{"success":true}"#.into())
        } else {
            (500, "invalid".into())
        }
    });
    let drained = daemon.wait_for("the backlog drained", WAIT, |h| {
        push(h)["status"] == "pass" && push(h)["observedValue"] == 0
    });
    let got = got.lock().unwrap().clone();
    assert!(got.len() >= 3, "{got:?}");
    for g in &got {
        assert_eq!(g.method, "POST");
        assert_eq!(g.path, "/api/maintenance/17/monitoring");
        assert_eq!(g.header("authorization"), Some("Bearer k-123"));
        assert_eq!(g.header("content-type"), Some("application/json"));
    }
    let verdicts = verdicts.lock().unwrap();
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    let stamps: Vec<String> = got
        .iter()
        .map(|g| {
            serde_json::from_str::<Value>(&g.body).unwrap()["timestamp"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_eq!(stamps, sorted, "oldest first");
    // The detections between two records (5 -> 9), counted once.
    let counted: u64 = got
        .iter()
        .filter_map(|g| {
            serde_json::from_str::<Value>(&g.body).unwrap()["detections_count"].as_u64()
        })
        .sum();
    // Counted once each: 9 in all, or 4 if the full backlog dropped the
    // record that held the first 5 (a slow machine).
    assert!(
        counted == 9 || counted == 4,
        "counted {counted} of 9: {stamps:?}"
    );
    let accepted = push(&drained)["output"].as_str().unwrap().to_owned();
    assert!(accepted.contains("0 waiting"), "{accepted}");
}

#[test]
fn nothing_is_pushed_when_no_monitoring_url_is_set() {
    let (url, got) = support::receiver::start(10, |_, _| (200, "{}".into()));
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!("[platform]\nbase-url = \"{url}/api/v1\"\nlegacy-endpoints = false\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    let daemon = TestDaemon::start(dir);
    std::thread::sleep(Duration::from_secs(3));
    assert!(got.lock().unwrap().is_empty(), "something was sent");
    let health = daemon.get_json("/health");
    assert!(
        health["checks"].get("platform:monitoring-push").is_none(),
        "{health}"
    );
}
