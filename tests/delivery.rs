//! Webhook delivery in the running daemon, to a receiver on loopback: the
//! body is signed with the channel's secret and keeps its idempotency key
//! across retries; a 500 is retried after a backoff, a 429 after its
//! Retry-After, a 400 not at all; every attempt is in the alert's log.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::daemon::TestDaemon;
use support::systemd::wait_until;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "s3cret-shared-with-the-receiver";

/// A request the receiver got: its headers (lowercase names) and body.
#[derive(Clone, Debug)]
struct Got {
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on loopback. The start notice gets a 400; the
/// camera's alert a 500, then a 429 (Retry-After: 1), then a 200; an
/// offline summary a 200.
fn receiver() -> (String, Arc<Mutex<Vec<Got>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/rvm", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        let mut camera = 0;
        for stream in listener.incoming().take(50) {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((n, v)) = l.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let name = serde_json::from_str::<Value>(&body).unwrap()["items"][0]["name"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let answer = if name == "target-failing" {
                camera += 1;
                match camera {
                    1 => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
                    2 => {
                        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
                    }
                    _ => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                }
            } else if name == "delivery-summary" {
                "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsummed u"
            } else {
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nunknown kind"
            };
            seen.lock().unwrap().push(Got { headers, body });
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, got)
}

#[test]
fn a_webhook_is_signed_retried_on_500_and_429_and_not_on_400() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (url, got) = receiver();
    let secret = dir.join("hook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[alerts]\ndefault-escalation = \"ops\"\ngroup-wait = \"0s\"\n\n\
             [channels.hook]\nkind = \"webhook\"\nurl = \"{url}\"\nsecret-file = \"{}\"\n\n\
             [escalation.ops]\nlevels = [{{ after = \"0s\", channels = [\"hook\"] }}]\n",
            secret.display()
        ),
    )
    .unwrap();
    // A process that fails at once, with no ladder: alerted, not healed.
    std::fs::write(
        dir.join("policies/camera.toml"),
        "[target]\nname = \"camera\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"exit 1\"]\n\n[alert]\nseverity = \"critical\"\n",
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);

    // The camera's alert: 500, then 429 (Retry-After 1 s), then delivered.
    let alert = wait_until("the camera's alert delivered", WAIT, || {
        let (_, _, body) = support::daemon::http_get(daemon.addr, "/api/v1/alerts?state=all");
        let list: Value = serde_json::from_str(&body).ok()?;
        let a = list["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == "target-failing")?
            .clone();
        let fp = a["fingerprint"].as_str()?.to_owned();
        let (_, _, body) = support::daemon::http_get(daemon.addr, &format!("/api/v1/alerts/{fp}"));
        let one: Value = serde_json::from_str(&body).ok()?;
        let n = one["notifications"].as_array()?.first()?.clone();
        (n["state"] == "sent").then_some(n)
    })
    .unwrap();
    let attempts: Vec<&str> = alert["delivery"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["result"].as_str().unwrap())
        .collect();
    assert_eq!(attempts, vec!["retry", "retry", "delivered"], "{alert:#}");
    let log = alert["delivery"].as_array().unwrap();
    assert_eq!(log[0]["answer"], "HTTP 500: oops");
    let gap = |i: usize| log[i + 1]["atMs"].as_i64().unwrap() - log[i]["atMs"].as_i64().unwrap();
    assert!(
        gap(0) >= 4000,
        "the 500 waited its backoff (5 s ± 20 %): {alert:#}"
    );
    assert!(
        (1000..4000).contains(&gap(1)),
        "the 429 waited its Retry-After of 1 s: {alert:#}"
    );

    // What the receiver got: one key for the three tries, each signed.
    let got = got.lock().unwrap().clone();
    let camera: Vec<&Got> = got
        .iter()
        .filter(|g| g.body.contains("\"target-failing\""))
        .collect();
    assert_eq!(camera.len(), 3);
    let key = alert["key"].as_str().unwrap();
    for g in &camera {
        assert_eq!(g.header("idempotency-key"), Some(key));
        let expected = rvm_watchdog::delivery::webhook::sign(SECRET.as_bytes(), g.body.as_bytes());
        assert_eq!(g.header("x-rvm-signature"), Some(expected.as_str()));
        let body: Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(body["version"], 1);
        assert_eq!(body["items"][0]["target"], "camera");
        assert_eq!(body["items"][0]["why"]["kind"], "firing");
        assert!(body["machine"]["name"].is_string());
    }

    // The start notice was refused with a 400: tried once, failed for good.
    let (_, _, body) = support::daemon::http_get(daemon.addr, "/api/v1/notifications?limit=50");
    let list: Value = serde_json::from_str(&body).unwrap();
    let started = list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["notification"]["items"][0]["name"] == "watchdog-started")
        .expect("the start notice")
        .clone();
    assert_eq!(started["state"], "failed", "{started:#}");
    assert_eq!(started["attempts"], 1);
    assert_eq!(
        got.iter()
            .filter(|g| g.body.contains("\"watchdog-started\""))
            .count(),
        1,
        "a 400 is not retried"
    );

    // The attempts are counted on /metrics, by channel and result.
    let mut last = String::new();
    wait_until("the delivery counters on /metrics", WAIT, || {
        let (_, _, text) = support::daemon::http_get(daemon.addr, "/metrics");
        last = text
            .lines()
            .filter(|l| l.contains("deliver") || l.contains("notifications_total"))
            .collect::<Vec<_>>()
            .join("\n");
        let has = |line: &str| text.lines().any(|l| l == line);
        (has(r#"rvm_watchdog_deliveries_total{channel="hook",result="retry"} 2.0"#)
            && has(r#"rvm_watchdog_deliveries_total{channel="hook",result="delivered"} 1.0"#)
            && has(r#"rvm_watchdog_deliveries_total{channel="hook",result="failed"} 1.0"#))
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}:\n{last}"));
}

/// Twelve targets fail one after another while the only channel's receiver
/// is down, with `outbox-max = 10`: the backlog is an alert of its own, and
/// what went past the bound is given up saying so, in the notification log
/// and on `/metrics`, never dropped silently.
#[test]
fn the_outbox_at_its_bound_raises_an_alert_and_says_what_it_gave_up() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // A port nobody listens on: every attempt is refused, and retried.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[alerts]\ndefault-escalation = \"ops\"\ngroup-wait = \"0s\"\noutbox-max = 10\n\n\
             [channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\n\
             [escalation.ops]\nlevels = [{{ after = \"0s\", channels = [\"hook\"] }}]\n"
        ),
    )
    .unwrap();
    for i in 0..12 {
        std::fs::write(
            dir.join(format!("policies/t{i:02}.toml")),
            format!(
                "[target]\nname = \"t{i:02}\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"sleep {}; exit 1\"]\n",
                f64::from(i) * 1.2
            ),
        )
        .unwrap();
    }
    let daemon = TestDaemon::start(dir);
    let list = |path: &str, key: &str| -> Vec<Value> {
        let (_, _, body) = support::daemon::http_get(daemon.addr, path);
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v[key].as_array().cloned())
            .unwrap_or_default()
    };

    let backlog = wait_until("the outbox-backlog alert", Duration::from_secs(60), || {
        list("/api/v1/alerts", "alerts")
            .into_iter()
            .find(|a| a["name"] == "outbox-backlog")
    })
    .unwrap();
    assert_eq!(backlog["state"], "firing", "{backlog:#}");
    assert!(
        backlog["summary"].as_str().unwrap().contains("(bound 10)"),
        "{backlog:#}"
    );

    // Past the bound, the oldest are given up, each saying why.
    let given_up = wait_until("a notification given up", Duration::from_secs(60), || {
        let expired: Vec<Value> = list("/api/v1/notifications?limit=100", "notifications")
            .into_iter()
            .filter(|n| {
                n["state"] == "expired" && n["notification"]["items"][0]["name"] == "target-failing"
            })
            .collect();
        (!expired.is_empty()).then_some(expired)
    })
    .unwrap();
    let fp = given_up[0]["alerts"][0].as_str().unwrap().to_owned();
    let (_, _, body) = support::daemon::http_get(daemon.addr, &format!("/api/v1/alerts/{fp}"));
    let one: Value = serde_json::from_str(&body).unwrap();
    let answers: Vec<String> = one["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["delivery"].as_array().cloned().unwrap_or_default())
        .map(|a| a["answer"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        answers
            .iter()
            .any(|a| a.contains("more than `[alerts] outbox-max` (10)")),
        "{one:#}"
    );
    let queued = list("/api/v1/notifications?limit=100", "notifications")
        .into_iter()
        .filter(|n| n["state"] == "queued")
        .count();
    assert!(queued <= 10, "the bound holds: {queued} waiting");
    let metrics = wait_until("the given-up count on /metrics", WAIT, || {
        let (_, _, text) = support::daemon::http_get(daemon.addr, "/metrics");
        text.lines()
            .find(|l| l.starts_with("rvm_watchdog_outbox_given_up_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .filter(|n| *n >= 1.0)
    })
    .unwrap();
    assert!(
        metrics >= given_up.len() as f64 - 0.5,
        "{metrics} {}",
        given_up.len()
    );
}

/// A day's backlog in the outbox (written there before the daemon starts,
/// as a day offline would have left it): it leaves as one summary listing
/// every notification, and each one's log says it went out in it.
#[test]
fn a_day_of_backlog_leaves_as_one_summary() {
    use rvm_watchdog::alert::{Item, Notification, Severity, Why};
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (url, got) = receiver();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day_ago = now - 24 * 3_600_000;
    {
        let store = rvm_watchdog::store::Store::open(&dir.join("state")).unwrap();
        for h in 0..6i64 {
            let key = format!("backlog-{h}");
            let at = day_ago + h * 3_600_000;
            let n = Notification {
                key: key.clone(),
                channel: "hook".into(),
                created_at: at as u64,
                severity: Severity::Warning,
                items: vec![Item {
                    fingerprint: format!("fp{h}"),
                    why: Why::Firing,
                    name: "gpu-hot".into(),
                    target: Some("gpu".into()),
                    labels: Default::default(),
                    severity: Severity::Warning,
                    summary: format!("hot, hour {h}"),
                    started_at: at as u64,
                    resolved_at: None,
                    incident: None,
                    suppressed_by: None,
                }],
            };
            store
                .enqueue(&rvm_watchdog::store::OutboxRow {
                    key,
                    channel: "hook".into(),
                    created_ms: at,
                    severity: "warning".into(),
                    body: serde_json::to_string(&n).unwrap(),
                    state: "queued".into(),
                    attempts: 0,
                    fingerprints: vec![format!("fp{h}")],
                })
                .unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[alerts]\ndefault-escalation = \"ops\"\n\n\
             [channels.hook]\nkind = \"webhook\"\nurl = \"{url}\"\n\n\
             [escalation.ops]\nlevels = [{{ after = \"0s\", channels = [\"hook\"] }}]\n"
        ),
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);
    let summaries = wait_until("the summary received", WAIT, || {
        let got = got.lock().unwrap().clone();
        let s: Vec<Value> = got
            .iter()
            .filter_map(|g| serde_json::from_str::<Value>(&g.body).ok())
            .filter(|b| b["items"][0]["name"] == "delivery-summary")
            .collect();
        (!s.is_empty()).then_some(s)
    })
    .unwrap();
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    let items = summaries[0]["items"].as_array().unwrap();
    assert_eq!(items.len(), 7, "the notice and the six: {items:#?}");
    assert!(
        items[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("6 notifications (6 alerts and notices) waited for hook for 1d"),
        "{items:#?}"
    );
    let hours: Vec<&str> = items[1..]
        .iter()
        .map(|i| i["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        hours,
        (0..6).map(|h| format!("hot, hour {h}")).collect::<Vec<_>>()
    );
    // None of the six was sent on its own; each says where it went.
    let got = got.lock().unwrap().clone();
    assert!(
        !got.iter().any(|g| g.body.contains("\"key\":\"backlog-")),
        "no notification of the backlog was sent on its own"
    );
    let rows = wait_until("the backlog marked sent", WAIT, || {
        let (_, _, body) =
            support::daemon::http_get(daemon.addr, "/api/v1/notifications?channel=hook&limit=100");
        let list: Value = serde_json::from_str(&body).ok()?;
        let backlog: Vec<Value> = list["notifications"]
            .as_array()?
            .iter()
            .filter(|n| n["key"].as_str().is_some_and(|k| k.starts_with("backlog-")))
            .cloned()
            .collect();
        (backlog.len() == 6 && backlog.iter().all(|n| n["state"] == "sent")).then_some(backlog)
    })
    .unwrap();
    let key = summaries[0]["key"].as_str().unwrap().to_owned();
    assert!(
        rows.iter().all(|n| n["attempts"] == 1),
        "one attempt each, the summary: {rows:#?}"
    );
    // Each one's delivery log names the summary it went out in.
    let store_dir = dir.join("state");
    for h in 0..6 {
        let last = wait_until("the attempt on disk", WAIT, || {
            let store = rvm_watchdog::store::Store::open(&store_dir).ok()?;
            store.attempts(&format!("backlog-{h}")).ok()?.pop()
        })
        .unwrap();
        assert_eq!(last.result, "delivered");
        assert_eq!(
            last.answer,
            format!("in the summary {key}: HTTP 200: summed u")
        );
    }
}

/// A receiver on loopback that answers every request with `answer`.
fn answering(answer: &'static str) -> (String, Arc<Mutex<Vec<Got>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut headers, mut line) = (Vec::new(), String::new());
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((n, v)) = l.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            seen.lock().unwrap().push(Got { headers, body });
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, got)
}

/// A channel that refuses a notification for good hands it to its
/// `fallback`: the fallback gets a copy under a key of its own, once, and
/// both logs say what happened.
#[test]
fn a_notification_the_channel_refuses_goes_to_its_fallback() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (primary, refused) =
        answering("HTTP/1.1 400 Bad Request\r\nContent-Length: 8\r\n\r\nno thank");
    let (backup, taken) = answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[alerts]\ndefault-escalation = \"ops\"\ngroup-wait = \"0s\"\n\n\
             [channels.primary]\nkind = \"webhook\"\nurl = \"{primary}\"\nfallback = \"backup\"\n\n\
             [channels.backup]\nkind = \"webhook\"\nurl = \"{backup}\"\n\n\
             [escalation.ops]\nlevels = [{{ after = \"0s\", channels = [\"primary\"] }}]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/camera.toml"),
        "[target]\nname = \"camera\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"exit 1\"]\n",
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);
    let copy = wait_until("the camera's alert at the fallback", WAIT, || {
        taken
            .lock()
            .unwrap()
            .iter()
            .find(|g| g.body.contains("\"target-failing\""))
            .cloned()
    })
    .unwrap();
    let body: Value = serde_json::from_str(&copy.body).unwrap();
    assert_eq!(body["channel"], "backup");
    let original = refused
        .lock()
        .unwrap()
        .iter()
        .find(|g| g.body.contains("\"target-failing\""))
        .cloned()
        .expect("the primary was tried first");
    let first: Value = serde_json::from_str(&original.body).unwrap();
    let key = first["key"].as_str().unwrap();
    assert_eq!(body["key"], format!("{key}~backup"));
    assert_eq!(
        copy.header("idempotency-key"),
        Some(format!("{key}~backup").as_str())
    );
    // Both in the outbox: the primary's failed, the fallback's sent.
    let states = wait_until("both notifications settled", WAIT, || {
        let (_, _, text) =
            support::daemon::http_get(daemon.addr, "/api/v1/notifications?limit=100");
        let list: Value = serde_json::from_str(&text).ok()?;
        let of = |k: &str| {
            list["notifications"]
                .as_array()?
                .iter()
                .find(|n| n["key"] == k)
                .map(|n| n["state"].as_str().unwrap_or("").to_owned())
        };
        let pair = (of(key)?, of(&format!("{key}~backup"))?);
        (pair.1 == "sent").then_some(pair)
    })
    .unwrap();
    assert_eq!(states, ("failed".to_owned(), "sent".to_owned()));
    let copies = taken
        .lock()
        .unwrap()
        .iter()
        .filter(|g| g.body.contains("\"target-failing\""))
        .count();
    assert_eq!(copies, 1, "the fallback is told once");
}

/// A listener that takes connections and never answers (bounded: it
/// stops taking them after 500); what a receiver behind a dead uplink
/// looks like to a sender, until the sender's timeout.
fn black_hole() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(500) {
            held.push(stream);
        }
    });
    port
}

/// The probe lag histogram on `/metrics`: (runs, runs started within 1 s
/// of their schedule).
fn lag(addr: std::net::SocketAddr) -> (f64, f64) {
    let (_, _, text) = support::daemon::http_get(addr, "/metrics");
    let value = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("rvm_watchdog_probe_lag_seconds_count"),
        value("rvm_watchdog_probe_lag_seconds_bucket{le=\"1.0\"}"),
    )
}

/// Every channel's receiver takes the connection and never answers (a
/// webhook, an SMTP server, an SMS gateway, an Alertmanager), while a
/// process crashes over and over and another target is probed every
/// second: the probes keep their schedule and the crashing process keeps
/// being restarted, measured over 20 s of the outage.
#[test]
fn probes_and_recovery_keep_their_schedule_while_every_channel_fails() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (hook, smtp, sms, am) = (black_hole(), black_hole(), black_hole(), black_hole());
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[alerts]\ndefault-escalation = \"ops\"\ngroup-wait = \"0s\"\n\n\
             [channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/hook\"\ntimeout = \"5s\"\n\n\
             [channels.mail]\nkind = \"email\"\nsmtp = \"127.0.0.1:{smtp}\"\ntls = \"none\"\n\
             from = \"rvm@example.com\"\nto = [\"ops@example.com\"]\ntimeout = \"5s\"\n\n\
             [channels.sms]\nkind = \"sms\"\nurl = \"http://127.0.0.1:{sms}/send\"\nto = [\"+6281234567890\"]\ntimeout = \"5s\"\n\n\
             [channels.am]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:{am}\"\ntimeout = \"5s\"\nresend-every = \"10s\"\n\n\
             [escalation.ops]\nlevels = [{{ after = \"0s\", channels = [\"hook\", \"mail\", \"sms\", \"am\"] }}]\n"
        ),
    )
    .unwrap();
    let runs = dir.join("runs");
    std::fs::write(
        dir.join("policies/crasher.toml"),
        format!(
            "[target]\nname = \"crasher\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"echo run >> {}; sleep 1; exit 1\"]\n\n\
             [[recovery]]\naction = \"restart\"\nattempts = 100\nbackoff = {{ initial = \"1s\", factor = 1.0, jitter = 0.0 }}\n\n\
             [alert]\nseverity = \"critical\"\n",
            runs.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/probed.toml"),
        "[target]\nname = \"probed\"\n\n[target.process]\ncommand = [\"/bin/sleep\", \"300\"]\n\n\
         [[probe]]\nname = \"alive\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);

    // The outage is on: every channel has an attempt in flight or retried.
    let mut last = Vec::new();
    wait_until("every channel failing", Duration::from_secs(60), || {
        let list = daemon.get_json("/api/v1/notifications?limit=100");
        let rows = list["notifications"].as_array()?.clone();
        last = rows
            .iter()
            .map(|n| format!("{} {} {}", n["channel"], n["state"], n["attempts"]))
            .collect();
        let tried = |ch: &str| {
            rows.iter()
                .any(|n| n["channel"] == ch && n["attempts"].as_i64().unwrap_or(0) >= 1)
        };
        (tried("hook") && tried("mail") && tried("sms") && tried("am")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {last:#?}"));
    let count_runs = || {
        std::fs::read_to_string(&runs)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let (lag0, on_time0) = lag(daemon.addr);
    let runs0 = count_runs();
    std::thread::sleep(Duration::from_secs(20));
    let (lag1, on_time1) = lag(daemon.addr);
    let runs1 = count_runs();

    let probed = lag1 - lag0;
    let on_time = on_time1 - on_time0;
    eprintln!(
        "during 20 s of the outage: {probed} probe runs, {on_time} within 1 s of schedule; {} restarts",
        runs1 - runs0
    );
    assert!(probed >= 15.0, "the 1 s probe ran {probed} times in 20 s");
    assert!(
        on_time >= probed * 0.95,
        "{on_time} of {probed} probe runs started within 1 s of schedule"
    );
    assert!(
        runs1 - runs0 >= 5,
        "the crashing process was restarted {} times in 20 s (each run 1 s, backoff 1 s)",
        runs1 - runs0
    );
    // And nothing was delivered meanwhile: the outage was real.
    let (_, _, text) = support::daemon::http_get(daemon.addr, "/metrics");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("rvm_watchdog_deliveries_total")
                && l.contains("result=\"delivered\"")),
        "{text}"
    );
}
