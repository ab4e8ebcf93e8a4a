//! The earlier platform generation's five documents, in exactly the shapes
//! its maintenance page reads (../shared/domain/MYRVM.md), made from
//! [`Facts`]: the watchdog's real state, never a constant. Pure: the task in
//! [`super`] gathers the facts; tests give them from fixtures.

use serde::Serialize;
use serde_json::{Value, json};

use crate::probe::jetson::Board;
use crate::status::IdentityView;

/// The aggregate health, in the platform's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check that counts passes.
    Healthy,
    /// Something is degraded (a `warn`).
    Degraded,
    /// Something is down (a `fail`).
    Unhealthy,
}

impl Verdict {
    /// The word the platform reads in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Unhealthy => "unhealthy",
        }
    }
}

/// One check of `/health`, in brief.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckBrief {
    /// `pass`, `warn` or `fail`.
    pub status: &'static str,
    /// Its line for people, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A network address of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub interface: String,
    pub address: String,
}

/// Usage now, in percent (0 to 100).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    pub disk: Option<f64>,
    pub gpu: Option<f64>,
}

/// A window of the history, summed up.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Window {
    /// Detections counted (the `detections-series` counter's growth).
    pub detections: Option<u64>,
    /// Mean detection success rate, percent.
    pub success_rate: Option<f64>,
    /// Mean processing time, milliseconds.
    pub avg_processing_time_ms: Option<f64>,
    /// Errors counted.
    pub errors: Option<u64>,
    /// API requests counted.
    pub api_requests: Option<u64>,
    /// Mean CPU use, percent.
    pub avg_cpu_usage: Option<f64>,
    /// Mean memory use, percent.
    pub avg_memory_usage: Option<f64>,
    /// Hours of history the figures come from (the window may reach back
    /// before the history does: hours are kept 90 days).
    pub hours_of_history: f64,
}

/// The daily, monthly and yearly windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub daily: Window,
    pub monthly: Window,
    pub yearly: Window,
}

/// Everything the documents say.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Who this machine is.
    pub identity: IdentityView,
    /// The aggregate health.
    pub verdict: Verdict,
    /// Every check of `/health`, by name.
    pub checks: Vec<(String, CheckBrief)>,
    /// Each target's state (`healthy`, `failing`, …), by name.
    pub targets: Vec<(String, String)>,
    /// How long the watchdog has run, seconds.
    pub uptime_s: u64,
    /// Now, RFC 3339.
    pub now: String,
    /// The board: model, L4T, JetPack.
    pub board: Board,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// The machine's architecture (`aarch64`).
    pub architecture: Option<String>,
    /// Memory: total and available bytes.
    pub memory_total: Option<f64>,
    pub memory_available: Option<f64>,
    /// The root file system: size and used bytes.
    pub disk_total: Option<f64>,
    pub disk_used: Option<f64>,
    /// Camera nodes found (`/dev/v4l/by-id/…`, else `/dev/video*`).
    pub cameras: Vec<String>,
    /// Addresses of the machine's interfaces (loopback left out).
    pub addresses: Vec<Address>,
    /// Usage now.
    pub usage: Usage,
    /// Alerts: when, and a line for people, newest first.
    pub alerts: Vec<(String, String)>,
    /// The history, summed up.
    pub summary: Summary,
}

/// Rounds to one decimal, as the platform shows percentages; clamps to
/// 0–100 (a ratio read a hair over 1 is still 100 %).
pub fn percent(value: f64) -> f64 {
    ((value.clamp(0.0, 100.0)) * 10.0).round() / 10.0
}

fn rounded(v: Option<f64>) -> Value {
    match v {
        Some(x) if x.is_finite() => json!((x * 10.0).round() / 10.0),
        _ => Value::Null,
    }
}

fn pct(v: Option<f64>) -> Value {
    match v {
        Some(x) if x.is_finite() => json!(percent(x)),
        _ => Value::Null,
    }
}

/// `GET /api/health`: 200 while the watchdog serves; `status` from the real
/// aggregate health.
pub fn health(f: &Facts) -> Value {
    let checks: serde_json::Map<String, Value> = f
        .checks
        .iter()
        .map(|(name, c)| (name.clone(), json!(c)))
        .collect();
    let targets: serde_json::Map<String, Value> = f
        .targets
        .iter()
        .map(|(name, state)| (name.clone(), json!(state)))
        .collect();
    json!({
        "status": f.verdict.as_str(),
        "service": "rvm-watchdog",
        "version": env!("CARGO_PKG_VERSION"),
        "timestamp": f.now,
        "uptime": f.uptime_s,
        "hardware_id": f.identity.hardware_id,
        "name": f.identity.name,
        "detail": {
            "targets": targets,
            "checks": checks,
        },
    })
}

/// `GET /api/status`
pub fn status(f: &Facts) -> Value {
    let healthy = f.targets.iter().filter(|(_, s)| s == "healthy").count();
    let failing = f
        .targets
        .iter()
        .filter(|(_, s)| s == "failing" || s == "gave-up")
        .count();
    json!({
        "api_status": "online",
        "status": f.verdict.as_str(),
        "service": "rvm-watchdog",
        "version": env!("CARGO_PKG_VERSION"),
        "hardware_id": f.identity.hardware_id,
        "name": f.identity.name,
        "uptime": f.uptime_s,
        "targets": {
            "total": f.targets.len(),
            "healthy": healthy,
            "failing": failing,
        },
        "timestamp": f.now,
    })
}

/// `GET /api/hardware`
pub fn hardware(f: &Facts) -> Value {
    let memory_used = match (f.memory_total, f.memory_available) {
        (Some(t), Some(a)) if t > 0.0 => Some((t - a) / t * 100.0),
        _ => None,
    };
    let disk_used = match (f.disk_total, f.disk_used) {
        (Some(t), Some(u)) if t > 0.0 => Some(u / t * 100.0),
        _ => None,
    };
    let bytes = |v: Option<f64>| v.map(|b| b.round() as u64);
    json!({
        "status": "success",
        "hardware_info": {
            "jetson_info": {
                "model": f.board.model,
                "architecture": f.architecture,
                "kernel_version": f.kernel,
                "l4t_version": f.board.l4t,
                "jetpack_version": f.board.jetpack,
            },
            "memory": {
                "total_bytes": bytes(f.memory_total),
                "available_bytes": bytes(f.memory_available),
                "usage_percent": pct(memory_used),
            },
            "disk": {
                "total_bytes": bytes(f.disk_total),
                "used_bytes": bytes(f.disk_used),
                "usage_percent": pct(disk_used),
            },
            "cameras": f.cameras,
            "network": { "addresses": f.addresses },
        },
        "timestamp": f.now,
    })
}

/// `GET /api/monitoring/status`: the four figures flat, as numbers.
pub fn monitoring_status(f: &Facts) -> Value {
    let alerts: Vec<Value> = f
        .alerts
        .iter()
        .map(|(at, message)| json!({ "timestamp": at, "message": message }))
        .collect();
    json!({
        "status": "success",
        "cpu_usage": pct(f.usage.cpu),
        "memory_usage": pct(f.usage.memory),
        "disk_usage": pct(f.usage.disk),
        "gpu_usage": pct(f.usage.gpu),
        "alerts": alerts,
        "timestamp": f.now,
    })
}

fn window(w: &Window) -> Value {
    json!({
        "detections": w.detections,
        "success_rate": pct(w.success_rate),
        "avg_processing_time_ms": rounded(w.avg_processing_time_ms),
        "errors": w.errors,
        "api_requests": w.api_requests,
        "avg_cpu_usage": pct(w.avg_cpu_usage),
        "avg_memory_usage": pct(w.avg_memory_usage),
        "hours_of_history": rounded(Some(w.hours_of_history)),
    })
}

/// `GET /api/monitoring/summary`: `daily`, `monthly`, `yearly`.
pub fn monitoring_summary(f: &Facts) -> Value {
    json!({
        "status": "success",
        "daily": window(&f.summary.daily),
        "monthly": window(&f.summary.monthly),
        "yearly": window(&f.summary.yearly),
        "timestamp": f.now,
    })
}

/// `GET /api/v1/health-metrics` (the watchdog's own API, for the edge
/// client's heartbeat): `health_metrics` with both key sets the current
/// platform's two dashboards read, as numbers (`null` where not measured).
/// `temperature` is the CPU's, as `cpu_temperature`.
pub fn health_metrics(m: &super::Machine) -> Value {
    let temperature = rounded(m.cpu_temperature);
    json!({
        "health_metrics": {
            "cpu_usage_percent": pct(m.usage.cpu),
            "memory_usage_percent": pct(m.usage.memory),
            "disk_usage_percent": pct(m.usage.disk),
            "cpu_temperature": temperature,
            "cpu_usage": pct(m.usage.cpu),
            "gpu_usage": pct(m.usage.gpu),
            "temperature": temperature,
        }
    })
}
