//! Gathering the [`Facts`] the documents say: the snapshot's health, the
//! recorder's latest values, the machine's fixed facts (read off the
//! runtime, at start and every ten minutes), the history's windows.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::documents::{Address, CheckBrief, Facts, Summary, Usage, Verdict, Window};
use crate::alert::task::OpenByTarget;
use crate::api::views::{HealthReport, Status};
use crate::config::Figures;
use crate::metrics::SeriesKey;
use crate::metrics::history::{Matcher, Query, Selector};
use crate::metrics::recorder::{Latest, Request};
use crate::probe::jetson::{Board, Reader};
use crate::status::{Snapshot, rfc3339};

/// What does not change while the watchdog runs (or hardly).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Host {
    pub board: Board,
    pub kernel: Option<String>,
    pub architecture: Option<String>,
    pub cameras: Vec<String>,
    pub addresses: Vec<Address>,
}

/// Reads the machine under `root`: the board (device tree, L4T), the
/// kernel's release, the cameras, and (on the machine itself, `root` = `/`)
/// its interfaces' addresses. Blocking.
pub fn read_host(root: &Path) -> Host {
    let board = Reader::new(root.to_owned()).read(Instant::now()).board;
    let kernel = std::fs::read_to_string(root.join("proc/sys/kernel/osrelease"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let mut cameras: Vec<String> = list(&root.join("dev/v4l/by-id"), |_| true);
    if cameras.is_empty() {
        cameras = list(&root.join("dev"), |n| {
            n.strip_prefix("video")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        });
    }
    let on_machine = root == Path::new("/");
    // `kernel.arch` (Linux 5.x and later); the build's own on the machine.
    let architecture = std::fs::read_to_string(root.join("proc/sys/kernel/arch"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| on_machine.then(|| std::env::consts::ARCH.to_owned()));
    let addresses = if on_machine { addresses() } else { Vec::new() };
    Host {
        board,
        kernel,
        architecture,
        cameras,
        addresses,
    }
}

/// The entries of `dir` whose names pass `keep`, as `/dev/…` paths, sorted.
fn list(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let dev = dir
        .to_string_lossy()
        .find("/dev")
        .map(|i| dir.to_string_lossy()[i..].to_owned())
        .unwrap_or_default();
    let mut found: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| keep(n))
        .map(|n| format!("{dev}/{n}"))
        .collect();
    found.sort();
    found
}

/// The machine's IPv4 and IPv6 addresses, loopback left out.
fn addresses() -> Vec<Address> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for a in all {
        let Some(address) = a.address else { continue };
        let ip = if let Some(v4) = address.as_sockaddr_in() {
            std::net::IpAddr::V4(v4.ip())
        } else if let Some(v6) = address.as_sockaddr_in6() {
            std::net::IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if ip.is_loopback() {
            continue;
        }
        found.push(Address {
            interface: a.interface_name.clone(),
            address: ip.to_string(),
        });
    }
    found.sort_by(|a, b| (&a.interface, &a.address).cmp(&(&b.interface, &b.address)));
    found.dedup();
    found
}

fn value(latest: &Latest, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let key = SeriesKey::new(name, labels.iter().copied());
    latest
        .values
        .get(&key)
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
}

/// What the recorder's latest values say of the machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    pub memory_total: Option<f64>,
    pub memory_available: Option<f64>,
    pub disk_total: Option<f64>,
    pub disk_used: Option<f64>,
    pub usage: Usage,
    /// The CPU's thermal zone, found by its type (`cpu-thermal` on JetPack
    /// 6, `CPU-therm` on 5), not by its number.
    pub cpu_temperature: Option<f64>,
}

/// The machine's figures from the collectors' series: CPU (all cores),
/// memory (used = total − available), the root file system, and the
/// busiest Jetson GPU.
pub fn machine(latest: &Latest) -> Machine {
    let memory_total = value(latest, "rvm_host_memory_bytes", &[("kind", "total")]);
    let memory_available = value(latest, "rvm_host_memory_bytes", &[("kind", "available")]);
    let disk_total = value(latest, "rvm_host_disk_size_bytes", &[("mount", "/")]);
    let disk_used = value(latest, "rvm_host_disk_used_bytes", &[("mount", "/")]);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b * 100.0),
        _ => None,
    };
    let gpu = latest
        .values
        .iter()
        .filter(|(k, _)| k.name == "rvm_jetson_gpu_load_ratio")
        .map(|(_, (_, v))| *v * 100.0)
        .filter(|v| v.is_finite())
        .reduce(f64::max);
    let cpu_temperature = latest
        .values
        .iter()
        .find(|(k, _)| {
            k.name == "rvm_jetson_temperature_celsius"
                && k.label("zone")
                    .is_some_and(|z| z.to_ascii_lowercase().starts_with("cpu"))
        })
        .map(|(_, (_, v))| *v)
        .filter(|v| v.is_finite());
    Machine {
        memory_total,
        memory_available,
        disk_total,
        disk_used,
        cpu_temperature,
        usage: Usage {
            cpu: value(latest, "rvm_host_cpu_usage_ratio", &[("cpu", "total")]).map(|r| r * 100.0),
            memory: ratio(
                memory_total.zip(memory_available).map(|(t, a)| t - a),
                memory_total,
            ),
            disk: ratio(disk_used, disk_total),
            gpu,
        },
    }
}

/// The facts now.
pub fn gather(
    s: &Snapshot,
    alerts: &OpenByTarget,
    latest: &Latest,
    host: &Host,
    summary: &Summary,
) -> Facts {
    let wall = SystemTime::now();
    let report = HealthReport::new(s, alerts, Instant::now(), wall);
    let verdict = match report.status {
        Status::Pass => Verdict::Healthy,
        Status::Warn => Verdict::Degraded,
        Status::Fail => Verdict::Unhealthy,
    };
    let word = |status: Status| match status {
        Status::Pass => "pass",
        Status::Warn => "warn",
        Status::Fail => "fail",
    };
    let mut checks = Vec::new();
    let mut targets = Vec::new();
    for (name, list) in &report.checks {
        let Some(check) = list.first() else { continue };
        checks.push((
            name.clone(),
            CheckBrief {
                status: word(check.status),
                output: check.output.clone(),
            },
        ));
        if let (Some(target), Some(state)) = (name.strip_prefix("target:"), check.state) {
            targets.push((target.to_owned(), state.to_owned()));
        }
    }
    let m = machine(latest);
    Facts {
        identity: s.identity.clone(),
        verdict,
        checks,
        targets,
        uptime_s: wall
            .duration_since(s.started_at)
            .unwrap_or(Duration::ZERO)
            .as_secs(),
        now: rfc3339(wall),
        board: host.board.clone(),
        kernel: host.kernel.clone(),
        architecture: host.architecture.clone(),
        memory_total: m.memory_total,
        memory_available: m.memory_available,
        disk_total: m.disk_total,
        disk_used: m.disk_used,
        cameras: host.cameras.clone(),
        addresses: host.addresses.clone(),
        usage: m.usage,
        // The alert engine's, filled in by the task (see recent_alerts).
        alerts: Vec::new(),
        summary: summary.clone(),
    }
}

const HOUR_MS: u64 = 3_600_000;

/// The alerts the page lists: every open one and those resolved within
/// the last day, newest first, at most [`RECENT`]; each `[severity] name
/// on target: summary (state)`, timed when it started (or, resolved, when
/// it ended).
pub async fn recent_alerts(
    alerts: &mpsc::Sender<crate::alert::task::Request>,
) -> Vec<(String, String)> {
    let filter = crate::alert::task::Filter {
        all: true,
        ..Default::default()
    };
    let Ok(list) = crate::api::ask(alerts, |reply| {
        crate::alert::task::Request::List(filter, reply)
    })
    .await
    else {
        return Vec::new();
    };
    let now = crate::metrics::collect::now_ms();
    let at = |ms: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
    let mut recent: Vec<(u64, String)> = list
        .iter()
        .filter(|a| {
            a.resolved_at
                .is_none_or(|r| now.saturating_sub(r) < 24 * HOUR_MS)
        })
        .map(|a| {
            let when = a.resolved_at.unwrap_or(a.started_at);
            let on = a
                .target
                .as_deref()
                .map(|t| format!(" on {t}"))
                .unwrap_or_default();
            (
                when,
                format!(
                    "[{}] {}{on}: {} ({})",
                    a.severity.as_str(),
                    a.name,
                    a.summary,
                    a.state.as_str()
                ),
            )
        })
        .collect();
    recent.sort_by_key(|r| std::cmp::Reverse(r.0));
    recent.truncate(RECENT);
    recent
        .into_iter()
        .map(|(ms, line)| (at(ms), line))
        .collect()
}

/// The most alerts the page is given.
pub const RECENT: usize = 20;

/// One series' (or every series of a name's) hourly points over a window.
async fn hourly(
    metrics: &mpsc::Sender<Request>,
    selector: Selector,
    from_ms: u64,
    to_ms: u64,
) -> Vec<crate::metrics::history::Point> {
    let query = Query {
        selector,
        from_ms,
        to_ms,
        step_ms: HOUR_MS,
    };
    match crate::api::ask(metrics, |reply| Request::Query { query, reply }).await {
        Ok(Ok(answer)) => answer.series.into_iter().flat_map(|s| s.points).collect(),
        _ => Vec::new(),
    }
}

/// The count-weighted mean of points' means.
fn mean(points: &[crate::metrics::history::Point]) -> Option<f64> {
    let n: f64 = points.iter().map(|p| f64::from(p.count)).sum();
    (n > 0.0).then(|| {
        points
            .iter()
            .map(|p| p.mean * f64::from(p.count))
            .sum::<f64>()
            / n
    })
}

/// The growth of counters over points.
fn increase(points: &[crate::metrics::history::Point]) -> Option<u64> {
    let sum: f64 = points.iter().filter_map(|p| p.increase).sum();
    (!points.is_empty()).then_some(sum.max(0.0).round() as u64)
}

/// One window ending now, from hourly rollups.
async fn window(metrics: &mpsc::Sender<Request>, figures: &Figures, days: u64, now: u64) -> Window {
    let from = now.saturating_sub(days * 24 * HOUR_MS);
    let key = |name: &str, labels: &[(&str, &str)]| {
        Selector::Key(SeriesKey::new(name, labels.iter().copied()))
    };
    let named = |name: &str| Selector::Match(Matcher::new(name, []));
    let cpu = hourly(
        metrics,
        key("rvm_host_cpu_usage_ratio", &[("cpu", "total")]),
        from,
        now,
    )
    .await;
    let used = hourly(
        metrics,
        key("rvm_host_memory_bytes", &[("kind", "used")]),
        from,
        now,
    )
    .await;
    let total = hourly(
        metrics,
        key("rvm_host_memory_bytes", &[("kind", "total")]),
        from,
        now,
    )
    .await;
    let mut w = Window {
        avg_cpu_usage: mean(&cpu).map(|r| r * 100.0),
        avg_memory_usage: match (mean(&used), mean(&total)) {
            (Some(u), Some(t)) if t > 0.0 => Some(u / t * 100.0),
            _ => None,
        },
        hours_of_history: cpu.len() as f64,
        ..Window::default()
    };
    if let Some(name) = &figures.detections {
        w.detections = increase(&hourly(metrics, named(name), from, now).await);
    }
    if let Some(name) = &figures.errors {
        w.errors = increase(&hourly(metrics, named(name), from, now).await);
    }
    if let Some(name) = &figures.requests {
        w.api_requests = increase(&hourly(metrics, named(name), from, now).await);
    }
    if let Some(name) = &figures.processing_time_ms {
        w.avg_processing_time_ms = mean(&hourly(metrics, named(name), from, now).await);
    }
    if let Some(name) = &figures.success_rate {
        w.success_rate = mean(&hourly(metrics, named(name), from, now).await).map(|r| r * 100.0);
    }
    w
}

/// The daily (24 h), monthly (30 days) and yearly (365 days, of which the
/// history keeps 90) windows ending at `now_ms`.
pub async fn summary(metrics: &mpsc::Sender<Request>, figures: &Figures, now_ms: u64) -> Summary {
    Summary {
        daily: window(metrics, figures, 1, now_ms).await,
        monthly: window(metrics, figures, 30, now_ms).await,
        yearly: window(metrics, figures, 365, now_ms).await,
    }
}
