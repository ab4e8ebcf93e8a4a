//! The new probe kinds in the running daemon: a camera that is absent fails
//! its target and its ladder runs the hook with the camera's device; a
//! camera whose frame heartbeat freezes fails; the uplink's steps pass
//! against a local listener; and all of it shows on `/health`.

mod support;

use std::path::Path;
use std::time::Duration;

use support::daemon::{TestDaemon, http_get};
use support::systemd::wait_until;

const WAIT: Duration = Duration::from_secs(30);

/// The `/health` check of `target:probe`: (status, output).
fn check(daemon: &TestDaemon, key: &str) -> Option<(String, String)> {
    let (_, _, body) = http_get(daemon.addr, "/health");
    let health: serde_json::Value = serde_json::from_str(&body).ok()?;
    let c = health.get("checks")?.get(key)?.get(0)?;
    Some((
        c.get("status")?.as_str()?.to_owned(),
        c.get("output")?.as_str()?.to_owned(),
    ))
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn setup(dir: &Path, hooks: &Path) {
    setup_with(dir, hooks, "");
}

fn setup_with(dir: &Path, hooks: &Path, daemon: &str) {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::create_dir_all(hooks).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[daemon]\nhooks-dirs = [\"{}\"]\n{daemon}\n[log]\noutput = \"stderr\"\n",
            hooks.display()
        ),
    )
    .unwrap();
}

/// A hook that appends its arguments to `marker`.
fn recording_hook(hooks: &Path, name: &str, marker: &Path) {
    let hook = hooks.join(name);
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A `camera` target on `device` whose one recovery step runs the
/// `usb-reset` hook with `args` (TOML list items).
fn camera_policy(dir: &Path, device: &Path, args: &str) {
    std::fs::write(
        dir.join("policies/camera.toml"),
        format!(
            "[target]\nname = \"camera\"\n\n\
             [[probe]]\nname = \"v4l2\"\nkind = \"camera\"\ndevice = \"{}\"\nkernel-errors = false\n\
             interval = \"200ms\"\nfail-after = 2\n\n\
             [[recovery]]\naction = \"hook\"\nhook = \"usb-reset\"\nargs = [{args}]\n\
             attempts = 1\nbackoff = {{ initial = \"100ms\", jitter = 0.0 }}\n",
            device.display()
        ),
    )
    .unwrap();
}

/// Starts the daemon and waits for the camera probe to fail and its hook to
/// run: the probe's output and the arguments the hook got.
fn camera_fails_and_hook_runs(dir: &Path, marker: &Path) -> (String, String) {
    let mut daemon = TestDaemon::start(dir);
    daemon.wait_for_line("probe camera/v4l2 is failing", WAIT);
    let (status, output) = check(&daemon, "camera:v4l2").unwrap();
    assert_eq!(status, "fail");
    let args = wait_until("the hook ran", WAIT, || {
        std::fs::read_to_string(marker).ok()
    })
    .unwrap();
    (output, args.trim().to_owned())
}

#[test]
fn an_absent_camera_fails_and_its_hook_gets_the_device() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let hooks = dir.join("hooks");
    setup(dir, &hooks);
    let marker = dir.join("hook-args");
    recording_hook(&hooks, "usb-reset", &marker);
    let device = dir.join("by-id/usb-046d_HD_Pro_Webcam_C920-video-index0");
    camera_policy(dir, &device, r#""--device", "{device}""#);
    let (output, args) = camera_fails_and_hook_runs(dir, &marker);
    assert_eq!(output, format!("{} is absent", device.display()));
    assert_eq!(args, format!("--device {}", device.display()));
}

#[test]
fn a_frozen_frame_heartbeat_fails_and_the_uplink_passes() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    setup(dir, &dir.join("hooks"));
    let beat = dir.join("camera.heartbeat");
    std::fs::write(&beat, format!("ts={:.3} seq=1 hash=aa\n", now_secs())).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::fs::write(
        dir.join("policies/frames.toml"),
        format!(
            "[target]\nname = \"frames\"\n\n\
             [[probe]]\nname = \"beat\"\nkind = \"camera\"\ndevice = \"/dev/null\"\n\
             frame-heartbeat = \"{}\"\nidentical-frames = 3\nkernel-errors = false\n\
             interval = \"200ms\"\nfail-after = 1\nrole = \"dependency\"\n",
            beat.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policies/uplink.toml"),
        format!(
            "[target]\nname = \"uplink\"\n\n\
             [[probe]]\nname = \"path\"\nkind = \"network\"\ndefault-route = false\n\
             resolve = \"localhost\"\naddress = \"{address}\"\ninterval = \"200ms\"\n"
        ),
    )
    .unwrap();
    let daemon = TestDaemon::start(dir);
    let (status, output) = wait_until("the uplink passes", WAIT, || {
        check(&daemon, "uplink:path").filter(|(s, _)| s == "pass")
    })
    .unwrap();
    assert_eq!(status, "pass");
    assert!(output.starts_with("localhost is "), "{output}");
    assert!(output.contains(&format!("TCP {address} in ")), "{output}");
    // And on /metrics: its status and what it measured.
    let (_, _, metrics) = http_get(daemon.addr, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "rvm_watchdog_probe_status{target=\"uplink\",probe=\"path\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "rvm_watchdog_probe_value{target=\"uplink\",probe=\"path\",unit=\"ms\"} "
        )),
        "{metrics}"
    );

    // The capture service keeps writing fresh heartbeats with new sequence
    // numbers but the same frame: frozen. (The node is not a camera, so
    // the probe fails anyway; the heartbeat's verdict is in the output.)
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let service = {
        let (stop, beat) = (stop.clone(), beat.clone());
        std::thread::spawn(move || {
            let next = beat.with_extension("tmp");
            let mut seq = 2;
            // Bounded: the test stops it, or it gives up after a minute.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && seq < 1200 {
                std::fs::write(&next, format!("ts={:.3} seq={seq} hash=aa\n", now_secs())).unwrap();
                std::fs::rename(&next, &beat).unwrap();
                seq += 1;
                std::thread::sleep(Duration::from_millis(50)); // 20 frames a second
            }
        })
    };
    let frozen = wait_until("the heartbeat is judged frozen", WAIT, || {
        check(&daemon, "frames:beat").filter(|(_, o)| o.contains("frozen: frame hash aa"))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    service.join().unwrap();
    let frozen = frozen.unwrap();
    assert_eq!(frozen.0, "fail");
    assert!(
        frozen.1.starts_with("/dev/null is not a V4L2 device"),
        "{}",
        frozen.1
    );
    drop(listener);
}

#[test]
fn the_hook_gets_the_usb_port_the_camera_was_on() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let hooks = dir.join("hooks");
    let root = dir.join("root");
    setup_with(
        dir,
        &hooks,
        &format!("host-root = \"{}\"\n", root.display()),
    );
    let marker = dir.join("hook-args");
    recording_hook(&hooks, "usb-reset", &marker);
    // A node (a plain file: it does not answer VIDIOC_QUERYCAP, as a
    // wedged camera may not) whose sysfs entry hangs off USB port 2-1.4.
    std::fs::create_dir_all(root.join("dev/v4l/by-id")).unwrap();
    std::fs::write(root.join("dev/video0"), "").unwrap();
    let device = root.join("dev/v4l/by-id/usb-cam-video-index0");
    std::os::unix::fs::symlink("../../video0", &device).unwrap();
    let iface = "devices/platform/3610000.usb/usb2/2-1/2-1.4/2-1.4:1.0";
    std::fs::create_dir_all(root.join("sys").join(iface)).unwrap();
    std::fs::create_dir_all(root.join("sys/class/video4linux/video0")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../{iface}"),
        root.join("sys/class/video4linux/video0/device"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("sys/bus/usb/devices")).unwrap();
    std::os::unix::fs::symlink(
        "../../../devices/platform/3610000.usb/usb2/2-1/2-1.4",
        root.join("sys/bus/usb/devices/2-1.4"),
    )
    .unwrap();
    camera_policy(
        dir,
        &device,
        r#""--device", "{device}", "--port", "{usb-port}""#,
    );
    let (output, args) = camera_fails_and_hook_runs(dir, &marker);
    assert_eq!(output, format!("{} is not a V4L2 device", device.display()));
    assert_eq!(args, format!("--device {} --port 2-1.4", device.display()));
}
