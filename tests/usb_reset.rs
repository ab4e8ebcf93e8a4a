//! The shipped `usb-reset` hook against fixture sysfs trees
//! (`RVM_HOST_ROOT`): it finds the camera's USB port through sysfs and
//! toggles `authorized`; with the node gone it uses the port the watchdog
//! last saw; with the device gone from the bus it power-cycles the hub port;
//! and it refuses what it cannot do, saying why.

use std::path::{Path, PathBuf};
use std::process::Command;

const DEVICE: &str = "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920-video-index0";
const PORT_DIR: &str = "sys/devices/platform/3610000.usb/usb2/2-1/2-1.4";

fn hook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/usb-reset")
}

fn symlink(target: &str, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// A camera at /dev/video0, interface 2-1.4:1.0 on port 2-1.4 of hub 2-1,
/// whose port 4 has power control.
fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::write(root.join("dev/video0"), "").unwrap();
    symlink("../../video0", &root.join(&DEVICE[1..]));
    let port = root.join(PORT_DIR);
    std::fs::create_dir_all(port.join("2-1.4:1.0")).unwrap();
    std::fs::write(port.join("authorized"), "1\n").unwrap();
    symlink(
        "../../../devices/platform/3610000.usb/usb2/2-1/2-1.4/2-1.4:1.0",
        &root.join("sys/class/video4linux/video0/device"),
    );
    symlink(
        "../../../devices/platform/3610000.usb/usb2/2-1/2-1.4",
        &root.join("sys/bus/usb/devices/2-1.4"),
    );
    let hub_port = root.join("sys/devices/platform/3610000.usb/usb2/2-1/2-1:1.0/2-1-port4");
    std::fs::create_dir_all(&hub_port).unwrap();
    std::fs::write(hub_port.join("disable"), "0\n").unwrap();
    symlink(
        "../../../devices/platform/3610000.usb/usb2/2-1/2-1:1.0",
        &root.join("sys/bus/usb/devices/2-1:1.0"),
    );
}

fn run(root: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("/bin/sh")
        .arg(hook())
        .args(args)
        .env_clear()
        .env("RVM_HOST_ROOT", root)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

#[test]
fn a_present_camera_is_re_authorized_on_its_own_port() {
    let root = tempfile::tempdir().unwrap();
    tree(root.path());
    let (code, text) = run(root.path(), &["--device", DEVICE, "--port", ""]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text,
        "usb-reset: de-authorizing USB port 2-1.4\nusb-reset: re-authorized USB port 2-1.4\n"
    );
    assert_eq!(read(root.path().join(PORT_DIR).join("authorized")), "1");
}

#[test]
fn a_vanished_node_is_reset_through_the_last_known_port() {
    let root = tempfile::tempdir().unwrap();
    tree(root.path());
    std::fs::remove_file(root.path().join("dev/video0")).unwrap();
    let (code, text) = run(root.path(), &["--device", DEVICE, "--port", "2-1.4"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with(&format!(
            "usb-reset: {DEVICE} is absent; using USB port 2-1.4\n"
        )),
        "{text}"
    );
    assert!(text.ends_with("re-authorized USB port 2-1.4\n"), "{text}");
}

#[test]
fn a_device_gone_from_the_bus_gets_its_hub_port_power_cycled() {
    let root = tempfile::tempdir().unwrap();
    tree(root.path());
    std::fs::remove_file(root.path().join("dev/video0")).unwrap();
    std::fs::remove_dir_all(root.path().join(PORT_DIR)).unwrap();
    let (code, text) = run(root.path(), &["--device", DEVICE, "--port", "2-1.4"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("USB port 2-1.4 is gone; switching port 4 of hub 2-1 off and on\n"),
        "{text}"
    );
    assert!(text.ends_with("port 4 of hub 2-1 is on again\n"), "{text}");
    // Left switched on.
    let disable = root
        .path()
        .join("sys/bus/usb/devices/2-1:1.0/2-1-port4/disable");
    assert_eq!(read(disable), "0");
}

#[test]
fn what_cannot_be_done_is_refused_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    tree(root.path());
    std::fs::remove_file(root.path().join("dev/video0")).unwrap();
    // No port known: nothing to reset.
    let (code, text) = run(root.path(), &["--device", DEVICE, "--port", ""]);
    assert_eq!(code, 1);
    assert_eq!(
        text,
        format!("usb-reset: {DEVICE} is absent and no --port was given\n")
    );
    // A port on a root hub without power control.
    let (code, text) = run(root.path(), &["--port", "3-2"]);
    assert_eq!(code, 1);
    assert!(
        text.contains(
            "USB port 3-2 is gone and the hub port control \
             /sys/bus/usb/devices/usb3/3-0:1.0/usb3-port2/disable cannot be written"
        ),
        "{text}"
    );
    // Not a port name: never guessed at.
    let (code, text) = run(root.path(), &["--port", "3610000.usb"]);
    assert_eq!(code, 1);
    assert!(text.contains("is not a USB port name"), "{text}");
}
