//! Alertmanager delivery in the running daemon, to a real Alertmanager on
//! loopback (Debian's prometheus-alertmanager): a failing target's alert
//! is listed through Alertmanager's own API with the machine's labels, and
//! leaves that list when the target heals, long before its `endsAt`.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::daemon::TestDaemon;
use support::systemd::wait_until;

const WAIT: Duration = Duration::from_secs(60);
const BINARY: &str = "/usr/bin/prometheus-alertmanager";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Alertmanager on `port`, clustering off; killed (by pid) on drop.
struct Am(Child);

impl Am {
    fn start(port: u16, dir: &Path) -> Am {
        std::fs::write(
            dir.join("am.yml"),
            "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
        )
        .unwrap();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let am = Am(child);
        wait_until("Alertmanager ready", WAIT, || {
            let (code, _, _) = support::daemon::try_http_get(
                format!("127.0.0.1:{port}").parse().unwrap(),
                "/-/ready",
            )
            .ok()?;
            (code == 200).then_some(())
        })
        .unwrap();
        am
    }
}

impl Drop for Am {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The alerts Alertmanager lists, through its own v2 API.
fn listed(port: u16) -> Vec<Value> {
    support::daemon::try_http_get(
        format!("127.0.0.1:{port}").parse().unwrap(),
        "/api/v2/alerts",
    )
    .ok()
    .and_then(|(_, _, body)| serde_json::from_str::<Value>(&body).ok())
    .and_then(|v| v.as_array().cloned())
    .unwrap_or_default()
}

#[test]
fn alertmanager_lists_the_alert_with_the_machines_labels_and_then_sees_it_resolved() {
    if !Path::new(BINARY).exists() {
        eprintln!("skipped: prometheus-alertmanager is not installed (tests/run installs it)");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let port = free_port();
    let _am = Am::start(port, dir);
    // The camera comes up only while its flag file is there.
    let flag = dir.join("camera-ok");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[identity]\nname = \"RVM-017\"\nhardware-id = \"hw-0017\"\nsite = \"Mall Kelapa Gading\"\n\n\
             [alerts]\ndefault-escalation = \"fleet\"\ngroup-wait = \"0s\"\n\n\
             [channels.am]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:{port}\"\nresend-every = \"1m\"\n\
             external-url = \"http://rvm-017.example:8001\"\nmin-severity = \"critical\"\n\n\
             [escalation.fleet]\nlevels = [{{ after = \"0s\", channels = [\"am\"] }}]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/camera.toml"),
        format!(
            "[target]\nname = \"camera\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"test -e {} && exec sleep 300; exit 1\"]\n\n\
             [[recovery]]\naction = \"restart\"\nattempts = 100\nbackoff = {{ initial = \"1s\", factor = 1.0, jitter = 0.0 }}\nhealthy-for = \"1s\"\n\n\
             [alert]\nseverity = \"critical\"\n",
            flag.display()
        ),
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);

    let alert = wait_until("the camera's alert in Alertmanager", WAIT, || {
        listed(port)
            .into_iter()
            .find(|a| a["labels"]["target"] == "camera")
    })
    .unwrap();
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "target-failing", "{alert:#}");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["instance"], "RVM-017");
    assert_eq!(labels["hardware_id"], "hw-0017");
    assert_eq!(labels["site"], "Mall Kelapa Gading");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(alert["generatorURL"], "http://rvm-017.example:8001/health");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("camera"),
        "{alert:#}"
    );
    let ends: &str = alert["endsAt"].as_str().unwrap();
    let starts: &str = alert["startsAt"].as_str().unwrap();
    assert!(ends > starts, "{alert:#}");

    // The camera heals: the resolution reaches Alertmanager, which stops
    // listing the alert well before the four minutes its endsAt allowed.
    std::fs::write(&flag, "").unwrap();
    wait_until("the alert resolved in Alertmanager", WAIT, || {
        (!listed(port)
            .iter()
            .any(|a| a["labels"]["target"] == "camera"))
        .then_some(())
    })
    .unwrap();
    let list = daemon.get_json("/api/v1/notifications?limit=50");
    let resolved = list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| {
            n["channel"] == "am" && n["notification"]["items"][0]["why"]["kind"] == "resolved"
        })
        .cloned();
    let resolved = resolved.expect("the resolution in the outbox");
    assert_eq!(resolved["state"], "sent", "{resolved:#}");
}
