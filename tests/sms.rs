//! SMS delivery in the running daemon, to a gateway on loopback: a
//! Twilio-style form (To, From, Body, basic auth from the password file)
//! to two numbers, the second answering 503 once, and a channel with a
//! JSON template of its own. The number the gateway took first is not sent
//! again when the other is retried; every message fits one SMS.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;
use support::daemon::TestDaemon;
use support::systemd::wait_until;

const WAIT: Duration = Duration::from_secs(40);
const FIRST: &str = "+6281111111111";
const SECOND: &str = "+6282222222222";
const THIRD: &str = "+6283333333333";

#[test]
fn a_gateway_gets_the_form_and_the_template_and_a_retry_skips_the_number_it_took() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // A gateway that refuses the second number once.
    let seen_second = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen_second.clone();
    let (url, got) = support::receiver::start(60, move |g, _| {
        if g.field("To").as_deref() == Some(SECOND)
            && count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
        {
            return (503, "busy".to_owned());
        }
        (201, r#"{"sid":"SM1"}"#.to_owned())
    });
    let password = dir.join("sms.token");
    std::fs::write(&password, "tok3n-from-a-file\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[log]\noutput = \"stderr\"\n\n[identity]\nname = \"RVM-017 Mall Kelapa Gading\"\n\n\
             [alerts]\ndefault-escalation = \"ops\"\ngroup-wait = \"0s\"\n\n\
             [channels.sms]\nkind = \"sms\"\nurl = \"{url}/2010-04-01/Accounts/AC1/Messages.json\"\n\
             username = \"AC1\"\npassword-file = \"{}\"\nfrom = \"+15005550006\"\n\
             to = [\"{FIRST}\", \"{SECOND}\"]\nmin-severity = \"critical\"\n\n\
             [channels.own]\nkind = \"sms\"\nurl = \"{url}/send\"\nstyle = \"template\"\n\
             template = '{{\"number\": \"{{to}}\", \"text\": \"{{message}}\"}}'\n\
             to = [\"{THIRD}\"]\nmin-severity = \"critical\"\n\n\
             [escalation.ops]\nlevels = [{{ after = \"0s\", channels = [\"sms\", \"own\"] }}]\n",
            password.display()
        ),
    )
    .unwrap();
    // A long summary: the message must be cut to one SMS.
    std::fs::write(
        dir.join("policies/camera.toml"),
        "[target]\nname = \"camera\"\n\n[target.process]\ncommand = [\"/bin/sh\", \"-c\", \"exit 1\"]\n\n\
         [alert]\nseverity = \"critical\"\n",
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);

    // The Twilio channel's notification: sent once both numbers took it.
    let n = wait_until("the SMS notification sent", WAIT, || {
        let list = daemon.get_json("/api/v1/notifications?limit=50");
        list["notifications"]
            .as_array()?
            .iter()
            .find(|n| n["channel"] == "sms" && n["state"] == "sent")
            .cloned()
    })
    .unwrap();
    assert_eq!(n["attempts"], 2, "{n:#}");
    let got = got.lock().unwrap().clone();
    let form: Vec<_> = got
        .iter()
        .filter(|g| g.path == "/2010-04-01/Accounts/AC1/Messages.json")
        .collect();
    let to = |number: &str| {
        form.iter()
            .filter(|g| g.field("To").as_deref() == Some(number))
            .count()
    };
    assert_eq!(
        to(FIRST),
        1,
        "the number the gateway took is not sent again"
    );
    assert_eq!(to(SECOND), 2, "the number answered 503 is retried");
    for g in &form {
        assert_eq!(g.method, "POST");
        assert_eq!(
            g.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            g.header("authorization"),
            Some("Basic QUMxOnRvazNuLWZyb20tYS1maWxl"),
            "username and password file as basic auth"
        );
        assert_eq!(g.field("From").as_deref(), Some("+15005550006"));
        let body = g.field("Body").unwrap();
        assert!(
            body.starts_with("[CRITICAL] RVM-017 Mall Kelapa Gading: camera target-failing"),
            "{body}"
        );
        assert!(body.chars().count() <= 160, "one SMS: {body}");
    }

    // The template channel: JSON of its own shape, no credentials.
    let own: Vec<_> = got.iter().filter(|g| g.path == "/send").collect();
    assert_eq!(own.len(), 1, "{own:#?}");
    assert_eq!(own[0].header("content-type"), Some("application/json"));
    assert_eq!(own[0].header("authorization"), None, "none configured");
    let body: Value = serde_json::from_str(&own[0].body).unwrap();
    assert_eq!(body["number"], THIRD);
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("camera target-failing"),
        "{body}"
    );

    // The delivery log names each number's answer.
    let fp = n["alerts"][0].as_str().unwrap().to_owned();
    let one = daemon.get_json(&format!("/api/v1/alerts/{fp}"));
    let sms = one["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["channel"] == "sms")
        .unwrap()
        .clone();
    let log = sms["delivery"].as_array().unwrap();
    assert_eq!(log[0]["result"], "retry", "{sms:#}");
    assert_eq!(
        log[0]["answer"],
        format!("{FIRST}: HTTP 201: {{\"sid\":\"SM1\"}}; {SECOND}: HTTP 503: busy")
    );
    assert_eq!(log[1]["result"], "delivered", "{sms:#}");
}
