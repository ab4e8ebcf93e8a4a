//! The shipped hooks beside `usb-reset` (tests/usb_reset.rs): `argus-restart`
//! against units of a real systemd, and `diagnostics` against a running
//! watchdog, its bundle read back through the API.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use support::daemon::{TestDaemon, try_http_get, try_http_get_with_token};
use support::systemd::PrivateSystemd;

fn hook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("hooks")
        .join(name)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn monotonic(sd: &PrivateSystemd, unit: &str, property: &str) -> u64 {
    sd.show(unit, property).parse().unwrap_or(0)
}

#[test]
fn argus_restart_stops_the_consumers_restarts_the_daemon_and_starts_them_again() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    sd.write_unit(
        "argus-test.service",
        "[Service]\nExecStart=/bin/sleep 600\n",
    );
    sd.write_unit(
        "argus-consumer.service",
        "[Service]\nExecStart=/bin/sleep 600\n",
    );
    for unit in ["argus-test.service", "argus-consumer.service"] {
        assert!(sd.systemctl(&["start", unit]).status.success());
    }
    let daemon_pid = sd.main_pid("argus-test.service");
    let consumer_pid = sd.main_pid("argus-consumer.service");

    let out = Command::new(hook("argus-restart"))
        .args([
            "--user",
            "--unit",
            "argus-test.service",
            "--consumer",
            "argus-consumer.service",
            "--wait",
            "10",
        ])
        .envs(sd.env())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "argus-restart: stopped argus-consumer.service",
            "argus-restart: argus-test.service restarted and active",
            "argus-restart: started argus-consumer.service",
        ]
    );
    // Both run again, as new processes, and the consumer was down while
    // the daemon started.
    assert_ne!(sd.main_pid("argus-test.service"), daemon_pid);
    assert_ne!(sd.main_pid("argus-consumer.service"), consumer_pid);
    assert_eq!(sd.show("argus-consumer.service", "ActiveState"), "active");
    let consumer_down = monotonic(
        sd,
        "argus-consumer.service",
        "InactiveEnterTimestampMonotonic",
    );
    let daemon_up = monotonic(sd, "argus-test.service", "ActiveEnterTimestampMonotonic");
    let consumer_up = monotonic(
        sd,
        "argus-consumer.service",
        "ActiveEnterTimestampMonotonic",
    );
    assert!(
        consumer_down < daemon_up && daemon_up < consumer_up,
        "consumer down {consumer_down}, daemon up {daemon_up}, consumer up {consumer_up}"
    );

    // A daemon that cannot be restarted fails the hook, and the consumer is
    // started again all the same.
    let out = Command::new(hook("argus-restart"))
        .args(["--user", "--unit", "argus-absent.service"])
        .args(["--consumer", "argus-consumer.service", "--wait", "5"])
        .envs(sd.env())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("systemctl restart argus-absent.service failed"),
        "{stderr}"
    );
    assert!(
        stdout.contains("started argus-consumer.service"),
        "{stdout}"
    );
    assert_eq!(sd.show("argus-consumer.service", "ActiveState"), "active");

    let out = Command::new(hook("argus-restart"))
        .args(["--wait", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("--wait takes whole seconds, not 'soon'")
    );
    sd.systemctl(&["stop", "argus-test.service", "argus-consumer.service"]);
}

/// Files in a `.tar.gz`, by `tar -tzf`.
fn listed(bundle: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(bundle)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut names: Vec<String> = text(&out).0.lines().map(str::to_owned).collect();
    names.sort();
    names
}

#[test]
fn diagnostics_writes_a_capped_bundle_the_api_serves() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("watchdog.toml"), "").unwrap();
    std::fs::write(
        dir.join("policies/app.toml"),
        "[target]\nname = \"app\"\n\n[target.process]\ncommand = [\"/bin/sleep\", \"600\"]\n",
    )
    .unwrap();
    let mut daemon = TestDaemon::start(dir);
    daemon.wait_for("app healthy", Duration::from_secs(20), |h| {
        h["checks"]["target:app"][0]["state"] == "healthy"
    });
    let bundles = dir.join("state/diagnostics");
    std::fs::create_dir_all(&bundles).unwrap();
    // Two old bundles of 600 KiB: with a 1 MiB cap, the older goes.
    for (i, name) in ["20200101T000000Z-app.tar.gz", "20200102T000000Z-app.tar.gz"]
        .iter()
        .enumerate()
    {
        let path = bundles.join(name);
        std::fs::write(&path, vec![0u8; 600 * 1024]).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800 + i as u64 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }
    std::fs::write(bundles.join("notes.txt"), "an operator's file").unwrap();

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_rvm-watchdog"))
        .parent()
        .unwrap()
        .to_owned();
    let url = format!("http://{}/", daemon.addr);
    let out = Command::new(hook("diagnostics"))
        .args([
            "--unit",
            "app-test.service",
            "--keep-mib",
            "1",
            "--part-kib",
            "64",
        ])
        .arg("--dir")
        .arg(&bundles)
        .args(["--api", &daemon.addr.to_string()])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display()),
        )
        .env("RVM_TARGET", "app")
        .env("RVM_INCIDENT", "inc-7")
        .env("RVM_DASHBOARD_URL", &url)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let wrote = stdout
        .lines()
        .find_map(|l| l.strip_prefix("diagnostics: wrote "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let path = PathBuf::from(wrote.split(" (").next().unwrap());
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("-app.tar.gz"), "{name}");
    let stem = name.trim_end_matches(".tar.gz");
    assert_eq!(
        listed(&path),
        [
            format!("{stem}/"),
            format!("{stem}/README.txt"),
            format!("{stem}/events.json"),
            format!("{stem}/incidents.json"),
            format!("{stem}/journal-app-test.service.txt"),
            format!("{stem}/kernel.txt"),
            format!("{stem}/status.json"),
        ]
    );
    // The cap: the oldest bundle went, the next fits; other files stay.
    assert!(
        stdout.contains("removed 20200101T000000Z-app.tar.gz"),
        "{stdout}"
    );
    assert!(!bundles.join("20200101T000000Z-app.tar.gz").exists());
    assert!(
        bundles.join("20200102T000000Z-app.tar.gz").exists(),
        "{stdout}"
    );
    assert!(bundles.join("notes.txt").exists());
    assert!(
        stdout.contains(&format!("diagnostics: {url}api/v1/diagnostics/{name}")),
        "{stdout}"
    );

    // The watchdog's own view is in it, as its CLI printed it.
    let unpacked = tempfile::tempdir().unwrap();
    assert!(
        Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(unpacked.path())
            .status()
            .unwrap()
            .success()
    );
    let part = |file: &str| std::fs::read_to_string(unpacked.path().join(stem).join(file)).unwrap();
    let status: serde_json::Value = serde_json::from_str(&part("status.json"))
        .unwrap_or_else(|e| panic!("status.json: {e}: {}", part("status.json")));
    assert!(status.to_string().contains("\"app\""), "{status}");
    let readme = part("README.txt");
    assert!(
        readme.contains("target: app") && readme.contains("incident: inc-7"),
        "{readme}"
    );

    // Listed and served by the API, with the token.
    let token = daemon.token(dir);
    let (code, _, listed_by_api) =
        try_http_get_with_token(daemon.addr, "/api/v1/diagnostics", token.trim()).unwrap();
    assert_eq!(code, 200, "{listed_by_api}");
    assert!(listed_by_api.contains(&name), "{listed_by_api}");
    assert!(!listed_by_api.contains("notes.txt"), "{listed_by_api}");
    let (code, _, _) = try_http_get(daemon.addr, &format!("/api/v1/diagnostics/{name}")).unwrap();
    assert_eq!(code, 401, "a bundle needs the token");

    // A bad size is refused before anything is written.
    let out = Command::new(hook("diagnostics"))
        .args(["--keep-mib", "lots"])
        .arg("--dir")
        .arg(&bundles)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("not 'lots'"));
}
