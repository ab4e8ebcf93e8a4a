//! The metrics history in the running daemon: a service's endpoint scraped,
//! samples pushed, host series collected and a KPI computed all come back
//! from the query API; a bad push stores nothing; and rollups survive a
//! SIGKILL and restart of the watchdog.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use support::daemon::{TestDaemon, post};

const WAIT: Duration = Duration::from_secs(30);

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A service's metrics endpoint on 127.0.0.1: every scrape, 9 more good
/// detections and 1 more bad one. Stops when dropped.
struct Service {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Service {
    fn start() -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let scrapes = AtomicU64::new(0);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let Ok((mut sock, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = sock.set_nonblocking(false);
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf);
                let n = scrapes.fetch_add(1, Ordering::Relaxed) + 1;
                let body = format!(
                    "# TYPE vision_detections_total counter\n\
                     vision_detections_total{{result=\"ok\"}} {}\n\
                     vision_detections_total{{result=\"bad\"}} {}\n",
                    9 * n,
                    n
                );
                let _ = write!(
                    sock,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Service { addr, stop }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Queries until `cond` holds for the answer's series, or panics after `within`.
fn query_until(
    daemon: &TestDaemon,
    query: &str,
    within: Duration,
    cond: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        let (code, _, body) = daemon.get(&format!("/api/v1/query?{query}"));
        if code == 200 {
            let v: Value = serde_json::from_str(&body).unwrap();
            let series = v["series"].as_array().cloned().unwrap_or_default();
            if cond(&series) {
                return series;
            }
        }
        last = body;
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("query {query} never answered as expected; last: {last}");
}

/// The history's batches written so far, from `/metrics`.
fn batches_written(daemon: &TestDaemon) -> u64 {
    let (_, _, metrics) = daemon.get("/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("rvm_watchdog_history_batches_written_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn last_value(series: &Value) -> Option<f64> {
    series["points"].as_array()?.last()?["last"].as_f64()
}

#[test]
fn scraped_pushed_collected_and_computed_series_come_back_and_survive_a_sigkill() {
    let service = Service::start();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write(
        &dir.join("watchdog.toml"),
        &format!(
            "[log]\noutput = \"stderr\"\n\n[metrics]\ninterval = \"1s\"\n\n\
             [[metrics.scrape]]\nname = \"vision\"\nurl = \"http://{}/metrics\"\ninterval = \"1s\"\ntimeout = \"1s\"\n\n\
             [[metrics.kpi]]\nname = \"rvm_kpi_detection_success_ratio\"\nkind = \"ratio\"\n\
             numerator = 'vision_detections_total{{result=\"ok\"}}'\ndenominator = \"vision_detections_total\"\nwindow = \"10m\"\n",
            service.addr
        ),
    );
    write(
        &dir.join("policies/alpha.toml"),
        "[target]\nname = \"alpha\"\n\n[[probe]]\nkind = \"memory\"\n",
    );
    let daemon = TestDaemon::start(dir);
    let token = daemon.token(dir);

    // Scraped, labelled with its source.
    let scraped = query_until(
        &daemon,
        &format!(
            "series={}&since=10m",
            encoded("vision_detections_total{result=\"ok\"}")
        ),
        WAIT,
        |s| s.len() == 1 && last_value(&s[0]).is_some_and(|v| v >= 18.0),
    );
    assert_eq!(scraped[0]["labels"]["source"], "vision");
    assert_eq!(scraped[0]["kind"], "counter");

    // Pushed.
    let batches_before = batches_written(&daemon);
    // Pushed in a minute's first seconds, the minute before may still be
    // open: its batch comes first.
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 60_000;
    let holding_batch = batches_before + 1 + u64::from(second < 7_000);
    let (code, body) = post(
        daemon.addr,
        "/api/v1/ingest",
        &token,
        "text/plain",
        "rvm_deposits_total{material=\"PET\"} 41\nrvm_bin_fill_ratio 0.25\n",
    );
    assert_eq!(code, 200, "{body}");
    let pushed = query_until(&daemon, "series=rvm_bin_fill_ratio&since=10m", WAIT, |s| {
        s.len() == 1 && last_value(&s[0]) == Some(0.25)
    });
    assert_eq!(pushed[0]["series"], "rvm_bin_fill_ratio");

    // A bad push stores nothing of it.
    let (code, body) = post(
        daemon.addr,
        "/api/v1/ingest",
        &token,
        "text/plain",
        "rvm_half_stored 1\nrvm_half_stored{ 2\n",
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("line 2"), "{body}");
    let (_, _, listed) = daemon.get("/api/v1/series");
    assert!(!listed.contains("rvm_half_stored"), "{listed}");

    // Collected from this machine.
    let memory = query_until(
        &daemon,
        &format!(
            "series={}&since=10m",
            encoded("rvm_host_memory_bytes{kind=\"available\"}")
        ),
        WAIT,
        |s| s.len() == 1 && last_value(&s[0]).is_some_and(|v| v > 0.0),
    );
    assert_eq!(memory[0]["kind"], "gauge");

    // The KPI: 9 good detections in every 10.
    let kpi = query_until(
        &daemon,
        "series=rvm_kpi_detection_success_ratio&since=10m",
        WAIT,
        |s| s.len() == 1 && last_value(&s[0]).is_some(),
    );
    let ratio = last_value(&kpi[0]).unwrap();
    assert!((ratio - 0.9).abs() < 1e-9, "ratio {ratio}");

    // /metrics carries the host series too.
    let (_, _, metrics) = daemon.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rvm_host_memory_bytes{kind=\"available\"} ")),
        "{metrics}"
    );

    // Once the push's minute has closed (a minute boundary, then the
    // history's 5 s for late samples) and its batch is written, it is on
    // disk: a SIGKILL loses none of it.
    let deadline = Instant::now() + Duration::from_secs(100);
    while batches_written(&daemon) < holding_batch {
        assert!(Instant::now() < deadline, "no batch written within 100 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.signal(Signal::SIGKILL);
    drop(daemon);
    let daemon = TestDaemon::start(dir);
    let kept = query_until(
        &daemon,
        "series=rvm_bin_fill_ratio&since=30m&step=1m",
        WAIT,
        |s| s.len() == 1 && !s[0]["points"].as_array().unwrap().is_empty(),
    );
    let point = &kept[0]["points"][0];
    assert_eq!(point["last"], 0.25);
    assert_eq!(point["count"], 1);
    assert_eq!(
        (point["min"].as_f64(), point["max"].as_f64()),
        (Some(0.25), Some(0.25))
    );

    // The same from the command line.
    let (code, text) = daemon.cli(
        dir,
        &[
            "query",
            "rvm_bin_fill_ratio",
            "--since",
            "30m",
            "--step",
            "1m",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.starts_with("rvm_bin_fill_ratio  (gauge, 1m resolution, 1 points)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.ends_with("0.2500") && l.contains('T')),
        "{text}"
    );
    drop(service);
}
