//! Keys that are accepted but not in effect yet: one warning each, located
//! (the mechanism is tested in `config::pending` itself: no key is pending
//! in this version), none for a configuration that sets every key, and none
//! for the shipped files.

use std::path::Path;

use rvm_watchdog::config::pending::{FileKind, NOT_IN_EFFECT};
use rvm_watchdog::config::{self, Level, Sources};

const CONFIG: &str = r#"[api]
dashboard = true
protect-reads = false

[platform]
base-url = "https://myrvm.example/api/v1"
legacy-endpoints = true

[metrics]
interval = "10s"
raw-retention = "1h"
minute-retention = "7d"
hour-retention = "90d"
max-disk-mib = 256

[alerts]
default-escalation = "field-ops"
notify-resolved = true
outbox-max = 10000
outbox-max-age = "7d"

[channels.fleet]
kind = "alertmanager"
url = "http://alertmanager.example:9093"

[channels.ops]
kind = "alertmanager"
url = "http://ops.example:9093"
timeout = "5s"

[escalation.field-ops]
levels = [{ after = "0s", channels = ["fleet"] }, { after = "10m", channels = ["ops"] }]
repeat = "1h"

[[rule]]
name = "disk-filling"
series = 'disk_used_ratio{mount="/"}'
predict = { within = "6h", above = 0.95 }

[[rule]]
name = "hot"
series = "temperature_celsius"
above = 90.0

[[metrics.scrape]]
name = "vision"
url = "http://127.0.0.1:8000/metrics"

[[metrics.kpi]]
name = "rvm_kpi_deposits_per_hour"
kind = "rate"
of = "rvm_deposits_total"
per = "1h"
"#;

const POLICY: &str = r#"[target]
name = "edge"
unit = "edge.service"

[alert]
severity = "critical"
escalation = "field-ops"
delay = "30s"
notify-resolved = false
"#;

#[test]
fn every_key_set_is_in_effect_and_the_list_of_keys_not_in_effect_is_exercised() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::write(dir.join("watchdog.toml"), CONFIG).unwrap();
    std::fs::create_dir(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/edge.toml"), POLICY).unwrap();
    let loaded = config::load(&Sources {
        config_file: Some(dir.join("watchdog.toml")),
        policies_dir: Some(dir.join("policies")),
        ..Sources::default()
    });
    let shown = dir.display().to_string();
    let lines: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| d.to_string().replace(&shown, "$DIR"))
        .collect();
    // `legacy-endpoints` was the last key not in effect; it is served now.
    assert_eq!(lines, Vec::<String>::new());
    assert!(
        loaded.config.is_some(),
        "warnings do not stop the configuration"
    );

    // Every entry of the list was exercised above.
    for entry in NOT_IN_EFFECT {
        let file = match entry.file {
            FileKind::Daemon => "watchdog.toml",
            FileKind::Policy => "edge.toml",
        };
        let last = entry
            .path
            .iter()
            .rev()
            .find(|s| !matches!(**s, "*" | "[]"))
            .unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.contains(file) && l.contains(last) && l.ends_with(entry.why)),
            "{:?} has a warning",
            entry.path
        );
    }
}

#[test]
fn keys_in_effect_get_no_warning() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::write(
        dir.join("watchdog.toml"),
        "[api]\nprotect-reads = true\ndashboard = false\n\n[dashboard]\ntiles = [\"gpu\", \"cpu\"]\ncharts = [\"kpis\"]\ntargets = [\"edge\"]\n\n[metrics]\ninterval = \"5s\"\n\n\
         [alerts]\ngroup-wait = \"5s\"\nflap-count = 6\ntime-zone = \"Asia/Jakarta\"\n\n\
         [[rule]]\nname = \"hot\"\nseries = 'rvm_jetson_temperature_celsius{zone=\"gpu\"}'\nabove = 85.0\nclear = 80.0\nfor = \"1m\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/edge.toml"),
        "[target]\nname = \"edge\"\n\n[alert]\nseverity = \"critical\"\ndelay = \"30s\"\nnotify-resolved = false\n",
    )
    .unwrap();
    let loaded = config::load(&Sources {
        config_file: Some(dir.join("watchdog.toml")),
        policies_dir: Some(dir.join("policies")),
        ..Sources::default()
    });
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
}

/// The shipped files set no key that is not in effect: they check clean.
#[test]
fn the_shipped_files_set_no_key_that_is_not_in_effect() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded = config::load(&Sources {
        config_file: Some(root.join("packaging/watchdog.toml")),
        policies_dir: Some(root.join("policies")),
        ..Sources::default()
    });
    let warnings: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Level::Warning && d.message.contains("not in effect yet"))
        .map(ToString::to_string)
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}
