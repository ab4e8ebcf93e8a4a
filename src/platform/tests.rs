//! The platform's documents: golden files of each, on a JetPack 6 Orin
//! Nano fixture tree and known series; the summary from a real history.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::documents::{self, CheckBrief, Facts, Summary, Verdict};
use super::{machine, read_host, summary};
use crate::config::Figures;
use crate::metrics::history::{History, HistoryConfig};
use crate::metrics::recorder::{Latest, Request};
use crate::metrics::{Kind, Sample, SeriesKey};
use crate::probe::jetson::fixture;
use crate::status::IdentityView;

/// A series and its value: name, labels, value.
type Value3<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Latest values as the collectors would publish them.
fn latest(values: &[Value3<'_>]) -> Latest {
    let mut l = Latest::default();
    for (name, labels, v) in values {
        let key = SeriesKey::new(name, labels.iter().copied());
        l.values.insert(Arc::new(key), (Kind::Gauge, *v));
    }
    l
}

fn facts() -> Facts {
    let host = read_host(&fixture::path("jp6-orin-nano"));
    let m = machine(&latest(&[
        ("rvm_host_cpu_usage_ratio", &[("cpu", "total")], 0.2534),
        ("rvm_host_cpu_usage_ratio", &[("cpu", "0")], 0.9),
        (
            "rvm_host_memory_bytes",
            &[("kind", "total")],
            7_990_000_000.0,
        ),
        (
            "rvm_host_memory_bytes",
            &[("kind", "available")],
            5_993_000_000.0,
        ),
        (
            "rvm_host_disk_size_bytes",
            &[("mount", "/")],
            58_000_000_000.0,
        ),
        (
            "rvm_host_disk_used_bytes",
            &[("mount", "/")],
            21_460_000_000.0,
        ),
        ("rvm_host_disk_used_bytes", &[("mount", "/data")], 1.0),
        (
            "rvm_jetson_gpu_load_ratio",
            &[("gpu", "17000000.gpu")],
            0.123,
        ),
    ]));
    Facts {
        identity: IdentityView {
            name: "RVM-017".into(),
            hardware_id: Some("hw-17".into()),
            site: None,
        },
        verdict: Verdict::Degraded,
        checks: vec![
            (
                "target:camera".into(),
                CheckBrief {
                    status: "warn",
                    output: Some("probe v4l2 is failing: no camera matches".into()),
                },
            ),
            (
                "target:myrvm-edge".into(),
                CheckBrief {
                    status: "pass",
                    output: None,
                },
            ),
        ],
        targets: vec![
            ("camera".into(), "failing".into()),
            ("myrvm-edge".into(), "healthy".into()),
        ],
        uptime_s: 3600,
        now: "2026-12-04T10:00:00Z".into(),
        board: host.board,
        kernel: host.kernel,
        architecture: host.architecture,
        memory_total: m.memory_total,
        memory_available: m.memory_available,
        disk_total: m.disk_total,
        disk_used: m.disk_used,
        cameras: host.cameras,
        addresses: vec![documents::Address {
            interface: "eth0".into(),
            address: "192.168.1.17".into(),
        }],
        usage: m.usage,
        alerts: vec![(
            "2026-12-04T09:58:00Z".into(),
            "target:camera: probe v4l2 is failing: no camera matches".into(),
        )],
        summary: Summary {
            daily: documents::Window {
                detections: Some(412),
                success_rate: Some(96.34),
                avg_processing_time_ms: Some(183.27),
                errors: Some(3),
                api_requests: Some(1290),
                avg_cpu_usage: Some(31.26),
                avg_memory_usage: Some(24.9),
                hours_of_history: 24.0,
            },
            ..Summary::default()
        },
    }
}

fn golden(name: &str, doc: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/platform")
        .join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(doc).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(text, want, "{name} differs from {}", path.display());
}

#[test]
fn each_document_has_the_shape_the_platform_reads() {
    let f = facts();
    // The version is the build's: the golden files hold a placeholder.
    let versioned = |mut v: Value| {
        if v.get("version").is_some() {
            v["version"] = Value::from("VERSION");
        }
        v
    };
    golden("health", &versioned(documents::health(&f)));
    golden("status", &versioned(documents::status(&f)));
    golden("hardware", &documents::hardware(&f));
    golden("monitoring-status", &documents::monitoring_status(&f));
    golden("monitoring-summary", &documents::monitoring_summary(&f));

    // What the maintenance page reads, as it reads it.
    let hw = documents::hardware(&f);
    let jetson = &hw["hardware_info"]["jetson_info"];
    assert_eq!(
        jetson["model"],
        "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    );
    assert_eq!(jetson["l4t_version"], "36.4.3");
    assert_eq!(jetson["jetpack_version"], "6.2");
    assert_eq!(jetson["kernel_version"], "5.15.148-tegra");
    assert_eq!(jetson["architecture"], "aarch64");
    assert_eq!(
        hw["hardware_info"]["cameras"][0],
        "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_5F2B4C3F-video-index0"
    );
    let m = documents::monitoring_status(&f);
    assert_eq!(m["cpu_usage"], 25.3);
    assert_eq!(m["memory_usage"], 25.0);
    assert_eq!(m["disk_usage"], 37.0);
    assert_eq!(m["gpu_usage"], 12.3);
    assert_eq!(m["status"], "success");
    assert_eq!(documents::health(&f)["status"], "degraded");
    assert_eq!(documents::status(&f)["api_status"], "online");
}

#[test]
fn percentages_are_clamped_and_missing_figures_are_null() {
    assert_eq!(documents::percent(100.04), 100.0);
    assert_eq!(documents::percent(-3.0), 0.0);
    let mut f = facts();
    f.usage = documents::Usage::default();
    f.usage.cpu = Some(f64::NAN);
    let m = documents::monitoring_status(&f);
    for key in ["cpu_usage", "memory_usage", "disk_usage", "gpu_usage"] {
        assert!(m[key].is_null(), "{key}: {}", m[key]);
    }
}

const HOUR: u64 = 3_600_000;

/// A real history with three hours of known samples, answering the
/// summary's queries as the recorder does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_sums_a_known_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::open(dir.path(), HistoryConfig::default()).unwrap();
    let now = crate::metrics::collect::now_ms() / HOUR * HOUR + HOUR / 2;
    let start = now - 3 * HOUR;
    let series = |name: &str, labels: &[(&str, &str)]| SeriesKey::new(name, labels.iter().copied());
    let cpu = series("rvm_host_cpu_usage_ratio", &[("cpu", "total")]);
    let used = series("rvm_host_memory_bytes", &[("kind", "used")]);
    let total = series("rvm_host_memory_bytes", &[("kind", "total")]);
    let det_a = series("rvm_detections_total", &[("camera", "front")]);
    let det_b = series("rvm_detections_total", &[("camera", "side")]);
    let time = series("rvm_processing_ms", &[]);
    // A sample a minute for three hours: CPU 0.2 then 0.4 (mean 0.3),
    // memory a quarter used, detections +2 and +1 a minute (the front
    // camera's counter reset once, at 90 minutes), processing 150 ms.
    for i in 0..180u64 {
        let at = start + i * 60_000;
        let add = |key: &SeriesKey, kind: Kind, value: f64, h: &mut History| {
            h.record(&Sample {
                key: key.clone(),
                kind,
                at_ms: at,
                value,
            });
        };
        add(&cpu, Kind::Gauge, if i < 90 { 0.2 } else { 0.4 }, &mut h);
        add(&used, Kind::Gauge, 2.0e9, &mut h);
        add(&total, Kind::Gauge, 8.0e9, &mut h);
        let front = if i < 90 { 2 * i } else { 2 * (i - 90) };
        add(&det_a, Kind::Counter, front as f64, &mut h);
        add(&det_b, Kind::Counter, i as f64, &mut h);
        add(&time, Kind::Gauge, 150.0, &mut h);
    }
    h.close_minutes(now);
    h.flush().unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Request>(8);
    // Off the runtime, as the recorder's history thread is.
    std::thread::spawn(move || {
        while let Some(request) = rx.blocking_recv() {
            if let Request::Query { query, reply } = request {
                let _ = reply.send(h.query(&query, now).wait().map_err(|e| e.to_string()));
            }
        }
    });
    let figures = Figures {
        detections: Some("rvm_detections_total".into()),
        processing_time_ms: Some("rvm_processing_ms".into()),
        ..Figures::default()
    };
    let s = tokio::time::timeout(Duration::from_secs(30), summary(&tx, &figures, now))
        .await
        .unwrap();
    let d = &s.daily;
    assert!((d.avg_cpu_usage.unwrap() - 30.0).abs() < 1e-6, "{d:?}");
    assert!((d.avg_memory_usage.unwrap() - 25.0).abs() < 1e-6, "{d:?}");
    assert_eq!(d.avg_processing_time_ms, Some(150.0));
    // 179 steps of +1 (side) and 178 of +2 (front) and the reset counted
    // as growth from zero (+0): the growth between the samples held.
    assert_eq!(d.detections, Some(179 + 2 * 178), "{d:?}");
    assert!(d.success_rate.is_none() && d.errors.is_none());
    // Three hours and a half: the hours that hold samples.
    assert_eq!(d.hours_of_history, 4.0, "{d:?}");
    // A month and a year hold the same three hours.
    assert_eq!(s.monthly.detections, d.detections);
    assert_eq!(s.yearly.avg_cpu_usage, d.avg_cpu_usage);
}

#[test]
fn the_heartbeat_figures_carry_both_key_sets_and_the_cpu_zone_by_type() {
    let m = machine(&latest(&[
        ("rvm_host_cpu_usage_ratio", &[("cpu", "total")], 0.42),
        ("rvm_host_memory_bytes", &[("kind", "total")], 8.0e9),
        ("rvm_host_memory_bytes", &[("kind", "available")], 6.0e9),
        (
            "rvm_jetson_temperature_celsius",
            &[("zone", "CPU-therm")],
            47.5,
        ),
        (
            "rvm_jetson_temperature_celsius",
            &[("zone", "GPU-therm")],
            60.0,
        ),
        (
            "rvm_jetson_temperature_celsius",
            &[("zone", "Tboard_tegra")],
            39.0,
        ),
    ]));
    golden("health-metrics", &documents::health_metrics(&m));
    let h = &documents::health_metrics(&m)["health_metrics"];
    assert_eq!(h["cpu_usage_percent"], 42.0);
    assert_eq!(h["cpu_usage"], 42.0);
    assert_eq!(h["memory_usage_percent"], 25.0);
    assert_eq!(h["cpu_temperature"], 47.5);
    assert_eq!(h["temperature"], 47.5);
    assert!(h["disk_usage_percent"].is_null() && h["gpu_usage"].is_null());
}
