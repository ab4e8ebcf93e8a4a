//! The alert engine in the running daemon, against a real systemd: an
//! incident's story names its failing dependency as root cause, with the
//! actions, notifications and times; open alerts, acknowledgements,
//! silences, maintenance windows and the escalation position survive a
//! SIGKILL of the watchdog.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::daemon::{TestDaemon, kill9};
use support::systemd::{PrivateSystemd, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// `watchdog.toml` with one webhook channel on a two-level chain (the
/// second level an hour on), the shipped shape in small.
const CONFIG: &str = r#"[daemon]
bus = "user"

[log]
output = "stderr"

[alerts]
default-escalation = "field-ops"
group-wait = "3s"

[channels.ops-webhook]
kind = "webhook"
url = "http://127.0.0.1:9/hooks/rvm"

[channels.ops-email]
kind = "webhook"
url = "http://127.0.0.1:9/hooks/email"

[escalation.field-ops]
levels = [
  { after = "0s", channels = ["ops-webhook"] },
  { after = "1h", channels = ["ops-email"] },
]
"#;

fn start(sd: &PrivateSystemd, dir: &Path, policies: &[(&str, String)]) -> TestDaemon {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("watchdog.toml"), CONFIG).unwrap();
    for (name, text) in policies {
        std::fs::write(dir.join("policies").join(format!("{name}.toml")), text).unwrap();
    }
    restart(sd, dir)
}

fn restart(sd: &PrivateSystemd, dir: &Path) -> TestDaemon {
    TestDaemon::start_with_env(
        dir,
        &[("DBUS_SESSION_BUS_ADDRESS".into(), sd.bus_address())],
    )
}

/// Waits (bounded) until `f` gives something.
fn until<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_until(what, WAIT, f).unwrap()
}

fn state(h: &Value, t: &str) -> Value {
    h["checks"][format!("target:{t}")][0]["state"].clone()
}

/// The one alert of `name` about `target`, open or not.
fn alert(daemon: &TestDaemon, name: &str, target: &str) -> Option<Value> {
    daemon.get_ok("/api/v1/alerts?state=all")["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name && a["target"] == target)
        .cloned()
}

#[test]
fn an_incident_names_its_failing_dependency_and_tells_the_whole_story() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let (api, uplink) = ("al-story-api.service", "al-story-uplink.service");
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // The uplink comes up only while its flag file is there: with it gone,
    // its restarts fail and it stays down.
    let flag = dir.join("uplink-up");
    std::fs::write(&flag, "").unwrap();
    sd.write_unit(api, "[Service]\nExecStart=/bin/sleep 300\n");
    sd.write_unit(
        uplink,
        &format!(
            "[Service]\nExecStart=/bin/sh -c 'test -e {} && exec sleep 300'\n",
            flag.display()
        ),
    );
    for unit in [api, uplink] {
        assert!(sd.systemctl(&["start", unit]).status.success());
    }
    let ladder = "[[recovery]]\naction = \"restart\"\nattempts = 100\nbackoff = { initial = \"1s\", factor = 1.0, jitter = 0.0 }\nhealthy-for = \"1s\"\n";
    let mut daemon = start(
        sd,
        dir,
        &[
            (
                "api",
                format!(
                    "[target]\nname = \"myrvm-api\"\nunit = \"{api}\"\ndepends-on = [\"uplink\"]\n\n{ladder}\n[alert]\nseverity = \"critical\"\n"
                ),
            ),
            (
                "uplink",
                format!(
                    "[target]\nname = \"uplink\"\nunit = \"{uplink}\"\n\n{ladder}\n[alert]\nseverity = \"critical\"\n"
                ),
            ),
        ],
    );
    daemon.wait_for("both healthy", WAIT, |h| {
        state(h, "myrvm-api") == "healthy" && state(h, "uplink") == "healthy"
    });
    // The uplink goes (and stays down); then the API that depends on it.
    std::fs::remove_file(&flag).unwrap();
    kill9(sd.main_pid(uplink));
    daemon.wait_for("the uplink failing", WAIT, |h| {
        state(h, "uplink") == "failing"
    });
    kill9(sd.main_pid(api));
    until("the API's alert suppressed by the uplink", || {
        let a = alert(&daemon, "target-failing", "myrvm-api")?;
        (a["suppressedBy"] == "uplink").then_some(())
    });
    // The platform sees it on /health, beside the API's check.
    daemon.wait_for("/health naming the suppressing dependency", WAIT, |h| {
        let c = &h["checks"]["target:myrvm-api"][0];
        c["suppressedBy"] == "uplink" && c["openAlerts"] == 1 && c["acknowledged"] == false
    });
    // The outage's notification leaves (the group waits 3 s: the API's
    // alert goes with it); then the uplink can come back: its next restart
    // works, then the API's.
    until("the uplink's alert sent", || {
        let a = alert(&daemon, "target-failing", "uplink")?;
        a["told"]["ops-webhook"].is_object().then_some(())
    });
    std::fs::write(&flag, "").unwrap();
    daemon.wait_for("both healed", WAIT, |h| {
        state(h, "myrvm-api") == "healthy" && state(h, "uplink") == "healthy"
    });

    // Both incidents closed and their resolutions handed on.
    let mut last = Value::Null;
    let records = wait_until("both incidents closed and told", WAIT, || {
        let list = daemon.get_ok("/api/v1/incidents")["incidents"].clone();
        last = list.clone();
        let all = list.as_array().cloned().unwrap_or_default();
        let closed = |t: &str| {
            all.iter()
                .find(|r| r["target"] == t && r["closedAt"].is_u64())
                .cloned()
        };
        let up = closed("uplink")?;
        let told = |r: &Value, why: &str| {
            r["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["why"] == why)
        };
        (told(&up, "firing") && told(&up, "resolved")).then_some(())?;
        // The API's resolution leaves with a group of its own.
        let api_alert = alert(&daemon, "target-failing", "myrvm-api")?;
        (api_alert["told"]["ops-webhook"]["resolved"] == true).then_some(())?;
        Some((closed("myrvm-api")?, up))
    })
    .unwrap_or_else(|e| panic!("{e}; incidents:\n{last:#}"));
    let (api_record, up_record) = records;

    // The API's incident names the uplink as its root cause.
    assert_eq!(api_record["rootCause"], "uplink", "{api_record:#}");
    assert!(
        api_record["reason"].as_str().unwrap().contains(api),
        "{api_record:#}"
    );
    // Its actions: held while the uplink failed, then restarted.
    let actions = api_record["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["action"] == "restart" && a["result"] == "ok"),
        "{api_record:#}"
    );
    let ttd = api_record["timeToDetectMs"].as_u64().unwrap();
    let ttr = api_record["timeToRecoverMs"].as_u64().unwrap();
    assert!(ttr >= ttd && ttr > 0, "{api_record:#}");
    assert!(api_record["openedAt"].as_u64().unwrap() >= api_record["beganAt"].as_u64().unwrap());

    // The uplink's story: its restart, and the notifications about it.
    assert!(up_record["rootCause"].is_null());
    assert!(
        up_record["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "restart" && a["result"] == "ok"),
        "{up_record:#}"
    );
    assert!(
        up_record["outcome"]
            .as_str()
            .unwrap()
            .starts_with("recovered by restart"),
        "{up_record:#}"
    );

    // One outage, one alert: the API's, suppressed by its root cause, went
    // out only as a line of the uplink's notification; it healed within its
    // release grace once the uplink was back, and its resolution followed.
    let api_alert = alert(&daemon, "target-failing", "myrvm-api").expect("the API's alert");
    assert_eq!(api_alert["state"], "resolved");
    let told = &api_alert["told"]["ops-webhook"];
    assert_eq!(told["suppressed"], true, "{api_alert:#}");
    assert_eq!(told["resolved"], true, "{api_alert:#}");
    let outbox = daemon.get_ok("/api/v1/notifications?limit=100")["notifications"].clone();
    let about = |target: &str| -> Vec<String> {
        outbox
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n["notification"]["items"].as_array().unwrap().clone())
            .filter(|i| i["name"] == "target-failing" && i["target"] == target)
            .map(|i| i["why"]["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut api_told = about("myrvm-api");
    api_told.sort();
    assert_eq!(api_told, vec!["resolved", "suppressed"], "{outbox:#}");
    let mut up = about("uplink");
    up.sort();
    assert_eq!(up, vec!["firing", "resolved"], "{outbox:#}");
    let firing = outbox
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["notification"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["name"] == "target-failing" && i["why"]["kind"] == "firing")
        })
        .count();
    assert_eq!(firing, 1, "one notification of the outage: {outbox:#}");

    // The CLI tells the same story.
    let (code, text) = daemon.cli(dir, &["incidents", api_record["id"].as_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("root cause:       uplink"), "{text}");
    assert!(text.contains("time to recover:"), "{text}");
    assert!(text.contains("restart ok"), "{text}");

    // The event log tells it too, newest first: the uplink's incident
    // opened before it closed, and nothing of the API's target in a list
    // asked for the uplink's.
    let log = daemon.get_ok("/api/v1/events?target=uplink&limit=1000")["events"].clone();
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let position = |k: &str| kinds.iter().position(|x| *x == k);
    let (opened, closed) = (position("incident-opened"), position("incident-closed"));
    assert!(
        opened.is_some() && closed.is_some() && closed < opened,
        "{kinds:?}"
    );
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|e| e["target"] == "uplink"),
        "{log:#}"
    );
    let (code, text) = daemon.cli(
        dir,
        &["events", "--target", "uplink", "--kind", "incident-closed"],
    );
    assert_eq!(code, Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        !lines.is_empty()
            && lines
                .iter()
                .all(|l| l.contains("incident-closed") && l.contains("uplink")),
        "{text}"
    );
    let (code, text) = daemon.cli(dir, &["events", "--target", "nope"]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("no target named \"nope\""), "{text}");

    // The figures are series.
    until("the incident figures in /metrics", || {
        let (_, _, body) = support::daemon::http_get(daemon.addr, "/metrics");
        (body.contains("rvm_watchdog_incidents_closed_total 2")
            && body.contains("rvm_watchdog_incident_recovery_seconds_mean"))
        .then_some(())
    });
    for unit in [api, uplink] {
        sd.systemctl(&["stop", unit]);
    }
}

#[test]
fn alerts_acks_silences_windows_and_the_chain_position_survive_a_sigkill() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    let unit = "al-keep-camera.service";
    sd.write_unit(unit, "[Service]\nExecStart=/bin/sleep 300\n");
    assert!(sd.systemctl(&["start", unit]).status.success());
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // No ladder: a failure is alerted, not healed.
    let mut daemon = start(
        sd,
        dir,
        &[(
            "camera",
            format!(
                "[target]\nname = \"camera\"\nunit = \"{unit}\"\n\n[alert]\nseverity = \"critical\"\n"
            ),
        )],
    );
    daemon.wait_for("the camera healthy", WAIT, |h| {
        state(h, "camera") == "healthy"
    });
    kill9(sd.main_pid(unit));
    daemon.wait_for("the camera failing", WAIT, |h| {
        state(h, "camera") == "failing"
    });
    let fired = until("the camera's alert sent to the first level", || {
        let a = alert(&daemon, "target-failing", "camera")?;
        a["told"]["ops-webhook"].is_object().then_some(a)
    });
    let fp = fired["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fired["level"], 0);

    let (code, text) = daemon.cli(
        dir,
        &[
            "ack",
            &fp,
            "--comment",
            "technician on the way",
            "--by",
            "ana",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = daemon.cli(
        dir,
        &[
            "silence", "--target", "gpu", "--for", "2h", "--reason", "fan swap", "--by", "budi",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = daemon.cli(
        dir,
        &[
            "maintenance",
            "on",
            "--every",
            "sun 02:00-03:00",
            "--reason",
            "weekly reboot",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = daemon.cli(dir, &["alerts"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("acknowledged by ana: technician on the way"),
        "{text}"
    );
    // /health says the camera's trouble is acknowledged, and by whom.
    daemon.wait_for("/health showing the acknowledgement", WAIT, |h| {
        let c = &h["checks"]["target:camera"][0];
        c["acknowledged"] == true && c["acknowledgedBy"] == "ana"
    });

    // Saved before the kill (the store commits within a second).
    let store_dir = dir.join("state");
    until("the acknowledgement saved", || {
        let store = rvm_watchdog::store::Store::open(&store_dir).ok()?;
        let doc = store.get_state(&format!("alert/{fp}")).ok()??;
        let silences = store.states_with_prefix("silence/").ok()?;
        let windows = store.states_with_prefix("maintenance/").ok()?;
        (doc["ack"]["by"] == "ana" && silences.len() == 1 && windows.len() == 1).then_some(())
    });
    let told_before = daemon.get_ok(&format!("/api/v1/alerts/{fp}"))["notifications"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(told_before, 1);

    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    daemon.wait_exit(WAIT);
    let mut daemon = restart(sd, dir);
    daemon.wait_for("the camera still failing", WAIT, |h| {
        state(h, "camera") == "failing"
    });
    let a = alert(&daemon, "target-failing", "camera").expect("the alert came back");
    assert_eq!(a["fingerprint"], fp.as_str());
    assert_eq!(a["state"], "acknowledged", "{a:#}");
    assert_eq!(a["ack"]["comment"], "technician on the way");
    assert_eq!(a["level"], 0, "still at the first level: {a:#}");
    assert!(a["told"]["ops-webhook"].is_object());
    let silences = daemon.get_ok("/api/v1/silences")["silences"].clone();
    assert_eq!(silences[0]["matcher"]["target"], "gpu", "{silences:#}");
    assert_eq!(silences[0]["reason"], "fan swap");
    let windows = daemon.get_ok("/api/v1/maintenance")["maintenance"].clone();
    assert_eq!(
        windows[0]["window"]["schedule"]["every"], "sun 02:00-03:00",
        "{windows:#}"
    );
    // Nothing was told twice: the restart resumed, it did not start over.
    // (Once the restart's own notice is out, the engine has sent its group.)
    until("the restart's notice in the outbox", || {
        let list = daemon.get_ok("/api/v1/notifications?limit=100")["notifications"].clone();
        let started = list
            .as_array()?
            .iter()
            .filter(|n| n["notification"]["items"][0]["name"] == "watchdog-started")
            .count();
        (started == 2).then_some(())
    });
    let told_after = daemon.get_ok(&format!("/api/v1/alerts/{fp}"))["notifications"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(told_after, 1);
    // Unacknowledged, it climbs on from where it was.
    let (code, text) = daemon.cli(dir, &["unack", &fp]);
    assert_eq!(code, Some(0), "{text}");
    let a = alert(&daemon, "target-failing", "camera").unwrap();
    assert_eq!(a["state"], "firing");
    assert!(a["ack"].is_null());
    sd.systemctl(&["stop", unit]);
}
