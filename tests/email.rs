//! Email delivery in the running daemon, to a real SMTP server on loopback
//! (Debian's python3-aiosmtpd storing each message in a maildir): the
//! server is down when the alert is first sent; once it is up, the alert
//! arrives once, with the subject, bodies and Message-ID it should have.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::daemon::TestDaemon;
use support::systemd::wait_until;

const WAIT: Duration = Duration::from_secs(40);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd on `port`, storing messages in `maildir`; killed (by pid) on drop.
struct Smtp(Child);

impl Smtp {
    fn start(port: u16, maildir: &Path) -> Option<Smtp> {
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let up = wait_until("the SMTP server listening", WAIT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        up.ok().map(|_| Smtp(child))
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn messages(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect()
}

#[test]
fn an_alert_sent_while_the_smtp_server_is_down_arrives_once_it_is_up() {
    if !Path::new("/usr/bin/python3").exists()
        || !Command::new("/usr/bin/python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: python3-aiosmtpd is not installed (tests/run installs it)");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let maildir = dir.join("maildir");
    let port = free_port();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[identity]\nname = \"RVM-017 Mall Kelapa Gading\"\n\n\
             [alerts]\ndefault-escalation = \"ops\"\ngroup-wait = \"0s\"\n\n\
             [channels.ops-email]\nkind = \"email\"\nsmtp = \"127.0.0.1:{port}\"\ntls = \"none\"\n\
             from = \"rvm-017@example.com\"\nto = [\"field-ops@example.com\"]\ntimeout = \"5s\"\n\n\
             [escalation.ops]\nlevels = [{{ after = \"0s\", channels = [\"ops-email\"] }}]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/camera.toml"),
        "[target]\nname = \"camera\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"exit 1\"]\n\n[alert]\nseverity = \"critical\"\n",
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);
    let notification = |daemon: &TestDaemon| -> Option<Value> {
        let (_, _, body) = support::daemon::http_get(daemon.addr, "/api/v1/notifications?limit=50");
        let list: Value = serde_json::from_str(&body).ok()?;
        list["notifications"]
            .as_array()?
            .iter()
            .find(|n| n["notification"]["items"][0]["name"] == "target-failing")
            .cloned()
    };
    // The server is down: the first attempt is to be retried.
    wait_until("a failed first attempt", WAIT, || {
        let n = notification(&daemon)?;
        (n["attempts"].as_i64()? >= 1 && n["state"] == "queued").then_some(())
    })
    .unwrap();
    assert!(messages(&maildir).is_empty());

    let _smtp = Smtp::start(port, &maildir).expect("aiosmtpd starts");
    let sent = wait_until("the alert delivered", WAIT, || {
        let n = notification(&daemon)?;
        (n["state"] == "sent").then_some(n)
    })
    .unwrap();
    let key = sent["key"].as_str().unwrap().to_owned();
    let mail: Vec<String> = wait_until("the message in the maildir", WAIT, || {
        let m: Vec<String> = messages(&maildir)
            .into_iter()
            .filter(|m| m.contains(&key))
            .collect();
        (!m.is_empty()).then_some(m)
    })
    .unwrap();
    assert_eq!(mail.len(), 1, "once");
    let m = &mail[0];
    assert!(
        m.contains("Subject: [CRITICAL] RVM-017 Mall Kelapa Gading: camera target-failing"),
        "{m}"
    );
    assert!(
        m.contains(&format!("Message-ID: <{key}@rvm-watchdog>")),
        "{m}"
    );
    assert!(m.contains("To: field-ops@example.com"), "{m}");
    assert!(m.contains("text/plain") && m.contains("text/html"), "{m}");
    assert!(m.contains("camera is failing"), "{m}");
}

/// The SMTP server is down; two targets' alerts wait in the outbox; the
/// watchdog is killed (SIGKILL) and started again while the server is
/// still down. Once it is up, each alert arrives once.
#[test]
fn alerts_waiting_across_a_sigkill_arrive_once_when_the_server_is_back() {
    if !Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: python3-aiosmtpd is not installed (tests/run installs it)");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let maildir = dir.join("maildir");
    let port = free_port();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[alerts]\ndefault-escalation = \"ops\"\ngroup-wait = \"0s\"\n\n\
             [channels.ops-email]\nkind = \"email\"\nsmtp = \"127.0.0.1:{port}\"\ntls = \"none\"\n\
             from = \"rvm-017@example.com\"\nto = [\"field-ops@example.com\"]\ntimeout = \"5s\"\n\
             min-severity = \"critical\"\n\n\
             [escalation.ops]\nlevels = [{{ after = \"0s\", channels = [\"ops-email\"] }}]\n"
        ),
    )
    .unwrap();
    for (name, wait) in [("camera", 0), ("vision", 2)] {
        std::fs::write(
            dir.join(format!("policies/{name}.toml")),
            format!(
                "[target]\nname = \"{name}\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"sleep {wait}; exit 1\"]\n\n\
                 [alert]\nseverity = \"critical\"\n"
            ),
        )
        .unwrap();
    }
    let mut daemon = TestDaemon::start(dir);
    // Both alerts written to the outbox and committed (read from another
    // connection), each tried at least once against the dead server.
    let store_dir = dir.join("state");
    wait_until(
        "both alerts waiting on disk, tried",
        Duration::from_secs(60),
        || {
            let store = rvm_watchdog::store::Store::open(&store_dir).ok()?;
            let rows = store.outbox(None, Some("ops-email"), 50).ok()?;
            let waiting = |t: &str| {
                rows.iter().any(|r| {
                    r.state == "queued"
                        && r.attempts >= 1
                        && r.body.contains(&format!("{t} is failing"))
                })
            };
            (waiting("camera") && waiting("vision")).then_some(())
        },
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    daemon.wait_exit(WAIT);
    let daemon = TestDaemon::start(dir);
    // Still down for a while after the restart.
    std::thread::sleep(Duration::from_secs(2));
    assert!(messages(&maildir).is_empty());

    let _smtp = Smtp::start(port, &maildir).expect("aiosmtpd starts");
    wait_until("every alert delivered", Duration::from_secs(90), || {
        let list = daemon.get_json("/api/v1/notifications?limit=50");
        let rows = list["notifications"].as_array()?.clone();
        let open = rows
            .iter()
            .filter(|n| n["channel"] == "ops-email" && n["state"] != "sent")
            .count();
        let sent = rows.iter().filter(|n| n["state"] == "sent").count();
        (open == 0 && sent >= 1).then_some(())
    })
    .unwrap();
    // Time for a duplicate to show, were there one (bounded).
    std::thread::sleep(Duration::from_secs(6));
    let mail = messages(&maildir);
    for t in ["camera", "vision"] {
        let n = mail
            .iter()
            .filter(|m| m.contains(&format!("{t} is failing")) && m.contains("text/plain"))
            .count();
        assert_eq!(n, 1, "{t}'s alert arrives once: {mail:#?}");
    }
}

/// STARTTLS to a relay whose certificate a site's own CA signed
/// (`ca-file`): the message arrives over the upgraded connection.
#[test]
fn an_alert_reaches_a_starttls_relay_signed_by_the_sites_ca() {
    if !Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success())
        || !Path::new("/usr/bin/openssl").exists()
    {
        eprintln!(
            "skipped: python3-aiosmtpd or openssl is not installed (tests/run installs them)"
        );
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("relay.pem"),
        dir.join("relay.key"),
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let ok = Command::new("/usr/bin/openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl {args:?}");
    };
    // The site's CA, and the relay's certificate signed by it.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=site-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "relay.key",
        "-out",
        "relay.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "relay.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext",
        "-out",
        "relay.pem",
    ]);
    let maildir = dir.join("maildir");
    let port = free_port();
    let child = Command::new("/usr/bin/python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .arg("--tlscert")
        .arg(&cert)
        .arg("--tlskey")
        .arg(&key)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _smtp = Smtp(child);
    wait_until("the SMTP server listening", WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[alerts]\ndefault-escalation = \"ops\"\ngroup-wait = \"0s\"\n\n\
             [channels.ops-email]\nkind = \"email\"\nsmtp = \"127.0.0.1:{port}\"\ntls = \"starttls\"\nca-file = \"{}\"\n\
             from = \"rvm-017@example.com\"\nto = [\"field-ops@example.com\"]\ntimeout = \"5s\"\nmin-severity = \"critical\"\n\n\
             [escalation.ops]\nlevels = [{{ after = \"0s\", channels = [\"ops-email\"] }}]\n",
            ca.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/camera.toml"),
        "[target]\nname = \"camera\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"exit 1\"]\n\n[alert]\nseverity = \"critical\"\n",
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);
    let mut last = Value::Null;
    let sent = wait_until("the alert delivered over STARTTLS", WAIT, || {
        let list = daemon.get_json("/api/v1/notifications?limit=50");
        last = list.clone();
        list["notifications"]
            .as_array()?
            .iter()
            .find(|n| n["channel"] == "ops-email" && n["state"] == "sent")
            .cloned()
    })
    .unwrap_or_else(|e| {
        let fp = last["notifications"][0]["alerts"][0]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let one = daemon.get_json(&format!("/api/v1/alerts/{fp}"));
        panic!("{e}: {:#}", one["notifications"])
    });
    let key = sent["key"].as_str().unwrap().to_owned();
    let mail = wait_until("the message in the maildir", WAIT, || {
        messages(&maildir).into_iter().find(|m| m.contains(&key))
    })
    .unwrap();
    assert!(mail.contains("camera is failing"), "{mail}");
    // The server requires STARTTLS before MAIL: it was upgraded.
    assert_eq!(sent["attempts"], 1, "{sent:#}");
}
