//! `/metrics` as Prometheus itself reads it: the daemon runs on a Jetson
//! fixture tree (JetPack 6) with GPU, network, file and camera probes and
//! its collectors (Jetson, host, its own process), and
//! `promtool check metrics` (Debian's `prometheus` package) must find
//! nothing to say about the exposition.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::daemon::{TestDaemon, http_get};
use support::systemd::wait_until;

const WAIT: Duration = Duration::from_secs(30);

fn promtool() -> Option<&'static str> {
    let path = "/usr/bin/promtool";
    if Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool is missing (Debian package prometheus); tests/run installs it"
    );
    eprintln!("skipped: no {path}");
    None
}

#[test]
fn promtool_accepts_the_exposition() {
    let Some(promtool) = promtool() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jetson/jp6-orin-nano");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[daemon]\nhost-root = \"{}\"\n\n[log]\noutput = \"stderr\"\n",
            root.display()
        ),
    )
    .unwrap();
    let beat = dir.join("beat");
    std::fs::write(&beat, "").unwrap();
    std::fs::write(
        dir.join("policies/board.toml"),
        format!(
            "[target]\nname = \"board\"\n\n\
             [[probe]]\nname = \"gpu\"\nkind = \"gpu\"\ninterval = \"200ms\"\n\n\
             [[probe]]\nname = \"uplink\"\nkind = \"network\"\ndefault-route = false\n\
             resolve = \"localhost\"\ninterval = \"200ms\"\n\n\
             [[probe]]\nname = \"beat\"\nkind = \"file-age\"\nfile = \"{}\"\nmax-age = \"1m\"\ninterval = \"200ms\"\n\n\
             [[probe]]\nname = \"cam\"\nkind = \"camera\"\ndevice = \"/dev/null\"\nkernel-errors = false\n\
             interval = \"200ms\"\nrole = \"dependency\"\n",
            beat.display()
        ),
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);
    let metrics = wait_until("every probe on /metrics", WAIT, || {
        let (_, _, text) = http_get(daemon.addr, "/metrics");
        let all = [
            "rvm_watchdog_temperature_celsius{",
            "rvm_watchdog_power_watts{",
            "rvm_watchdog_gpu_load_percent{",
            "rvm_watchdog_fan_rpm{",
            "probe=\"uplink\",unit=\"ms\"}",
            "rvm_watchdog_probe_status{target=\"board\",probe=\"cam\"} 2",
            "rvm_watchdog_probe_lag_seconds_bucket{le=\"+Inf\"}",
            // The collectors: the Jetson's own series and the watchdog's process.
            "rvm_jetson_temperature_celsius{",
            "rvm_jetson_gpu_load_ratio{",
            "rvm_jetson_rail_power_watts{",
            "rvm_watchdog_process_resident_memory_bytes ",
            "rvm_watchdog_history_series ",
        ];
        all.iter().all(|s| text.contains(s)).then_some(text)
    })
    .unwrap();

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n--- exposition:\n{metrics}"
    );
}
