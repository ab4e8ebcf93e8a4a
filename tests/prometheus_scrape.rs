//! A real Prometheus (Debian's `prometheus` package) scrapes the daemon on
//! loopback, as a fleet's would: the scrape is up and its HTTP API returns
//! the watchdog's series (counters and histogram included), a host series
//! the collectors read and a series a service pushed.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::{TestDaemon, try_http_get};

const BINARY: &str = "/usr/bin/prometheus";
const WAIT: Duration = Duration::from_secs(60);

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Prometheus server the test started, killed by pid when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks Prometheus' HTTP API for an instant query until `cond` holds for
/// its result, or panics after [`WAIT`].
fn query_until(addr: std::net::SocketAddr, query: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    let path = format!(
        "/api/v1/query?query={}",
        query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    );
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok((200, _, body)) = try_http_get(addr, &path) {
            if let Ok(v) = serde_json::from_str::<Value>(&body)
                && cond(&v["data"]["result"])
            {
                return v["data"]["result"].clone();
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus never answered {query} as expected; last: {last}");
}

#[test]
fn a_real_prometheus_scrapes_the_watchdog() {
    if !Path::new(BINARY).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{BINARY} is missing (Debian package prometheus); tests/run installs it"
        );
        eprintln!("skipped: no {BINARY}");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write(&dir.join("watchdog.toml"), "[log]\noutput = \"stderr\"\n");
    write(
        &dir.join("policies/alpha.toml"),
        "[target]\nname = \"alpha\"\n\n[[probe]]\nkind = \"memory\"\ninterval = \"200ms\"\n",
    );
    let daemon = TestDaemon::start(dir);

    let port = free_port();
    write(
        &dir.join("prometheus.yml"),
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: rvm\n    static_configs:\n      - targets: ['{}']\n",
            daemon.addr
        ),
    );
    let prometheus = Prometheus(
        Command::new(BINARY)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let first = |r: &Value| r[0]["value"][1].as_str().map(str::to_owned);

    let up = query_until(addr, "up{job=\"rvm\"}", |r| {
        first(r).as_deref() == Some("1")
    });
    assert_eq!(up[0]["metric"]["instance"], daemon.addr.to_string());
    let targets = query_until(addr, "rvm_watchdog_targets", |r| first(r).is_some());
    assert_eq!(first(&targets).as_deref(), Some("1"));
    // A counter, read by its `_total` samples.
    query_until(addr, "rvm_watchdog_events_total{kind=\"boot\"}", |r| {
        first(r).as_deref() == Some("1")
    });
    // The lag histogram's buckets.
    query_until(
        addr,
        "rvm_watchdog_probe_lag_seconds_bucket{le=\"+Inf\"}",
        |r| first(r).is_some_and(|v| v != "0"),
    );
    // A host series the collectors read, and a series a service pushed.
    query_until(addr, "rvm_host_memory_bytes{kind=\"available\"}", |r| {
        first(r).is_some_and(|v| v.parse::<f64>().is_ok_and(|v| v > 0.0))
    });
    let token = daemon.token(dir);
    let body = "rvm_bin_fill_ratio 0.25\n";
    let mut s = std::net::TcpStream::connect(daemon.addr).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!(
            "POST /api/v1/ingest HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             content-type: text/plain\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}",
            daemon.addr,
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    query_until(addr, "rvm_bin_fill_ratio", |r| {
        first(r).as_deref() == Some("0.25")
    });
    drop(prometheus);
}
