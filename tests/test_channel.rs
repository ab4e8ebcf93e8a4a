//! `rvm-watchdog test-channel NAME` against a webhook receiver on loopback:
//! a receiver that takes it prints "delivered" with its answer and gets a
//! notice naming the machine and the channel; one that refuses it (400)
//! prints "refused" and exits 1; an unknown channel exits 3 naming the
//! channels there are. No daemon runs.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;

use serde_json::Value;
use support::daemon::binary;

/// A receiver on loopback that answers each request with the next of
/// `answers`, and hands back the bodies it got.
fn receiver(answers: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/rvm", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for answer in answers {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let mut length = 0usize;
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((n, v)) = l.split_once(':')
                    && n.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            bodies.push(String::from_utf8(body).unwrap());
            stream.write_all(answer.as_bytes()).unwrap();
        }
        bodies
    });
    (url, handle)
}

fn config(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("watchdog.toml");
    std::fs::write(
        &path,
        format!(
            "[identity]\nname = \"RVM-017 Mall Kelapa Gading\"\nhardware-id = \"RVM-017\"\n\n\
             [channels.ops-webhook]\nkind = \"webhook\"\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    path
}

fn run(config: &Path, channel: &str) -> (Option<i32>, String) {
    let out = binary()
        .args(["test-channel", channel, "--config"])
        .arg(config)
        .arg("--policies")
        .arg(config.parent().unwrap().join("policies"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn a_test_notification_reaches_the_receiver_and_its_answer_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (url, got) = receiver(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nthanks, got",
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\n\r\nunknown hook",
    ]);
    let config = config(dir.path(), &url);

    let (code, text) = run(&config, "ops-webhook");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("delivered in"), "{text}");
    assert!(text.contains("thanks, got"), "{text}");

    let (code, text) = run(&config, "ops-webhook");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("refused"), "{text}");
    assert!(text.contains("unknown hook"), "{text}");
    assert!(text.contains("would not retry"), "{text}");

    let bodies = got.join().unwrap();
    let first: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(first["items"][0]["name"], "channel-test", "{first}");
    assert_eq!(first["items"][0]["labels"]["channel"], "ops-webhook");
    assert!(
        first["items"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("RVM-017 Mall Kelapa Gading"),
        "{first}"
    );
    let second: Value = serde_json::from_str(&bodies[1]).unwrap();
    assert_ne!(
        first["key"], second["key"],
        "each test is a notification of its own"
    );
}

#[test]
fn an_unknown_channel_is_named_with_the_channels_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "http://127.0.0.1:9/hook");
    let (code, text) = run(&config, "pager");
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("no channel named \"pager\"; the channels are: ops-webhook"),
        "{text}"
    );
    // A receiver that is not there: not delivered, retried by the daemon.
    let (code, text) = run(&config, "ops-webhook");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("would retry"), "{text}");
}
