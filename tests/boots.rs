//! Boots: the watchdog reports how the previous boot ended, and a boot loop
//! puts it in safe mode. The boot id is read under `[daemon] host-root`, so
//! a test can give each start a boot of its own.

mod support;

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::daemon::TestDaemon;

const WAIT: Duration = Duration::from_secs(20);

fn boot(dir: &Path, id: &str) {
    let file = dir.join("host/proc/sys/kernel/random/boot_id");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, format!("{id}\n")).unwrap();
}

#[test]
fn the_previous_boot_is_reported_and_a_boot_loop_enters_safe_mode() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("watchdog.toml"),
        format!(
            "[daemon]\nhost-root = \"{}\"\n\n[log]\noutput = \"stderr\"\n\n[reboot]\nboot-loop = \"3/30m\"\n",
            dir.join("host").display()
        ),
    )
    .unwrap();

    // First boot: nothing known before it; a clean stop.
    boot(dir, "11111111-aaaa-4aaa-8aaa-000000000001");
    let mut daemon = TestDaemon::start(dir);
    assert!(daemon.get_json("/health")["previousBoot"].is_null());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(WAIT).code(), Some(0));

    // Second boot: the first ended cleanly. Then the watchdog dies with the machine.
    boot(dir, "11111111-aaaa-4aaa-8aaa-000000000002");
    let mut daemon = TestDaemon::start(dir);
    daemon.wait_for_line("the previous boot ended with a clean shutdown", WAIT);
    assert_eq!(
        daemon.get_json("/health")["previousBoot"]["ended"],
        "clean-shutdown"
    );
    // A restart of the watchdog within one boot is not a new boot.
    daemon.signal(Signal::SIGKILL);
    daemon.wait_exit(WAIT);
    let mut daemon = TestDaemon::start(dir);
    assert_eq!(
        daemon.get_json("/health")["previousBoot"]["ended"],
        "clean-shutdown"
    );
    daemon.signal(Signal::SIGKILL);
    daemon.wait_exit(WAIT);

    // Third boot within half an hour: the second ended unexpectedly, and
    // three boots in the window are a boot loop.
    boot(dir, "11111111-aaaa-4aaa-8aaa-000000000003");
    let mut daemon = TestDaemon::start(dir);
    daemon.wait_for_line("the previous boot ended unexpectedly", WAIT);
    let line = daemon.wait_for_line("entering safe mode: boot loop: 3 boots", WAIT);
    assert!(line.contains("ERROR"), "{line}");
    let health = daemon.get_json("/health");
    assert_eq!(health["previousBoot"]["ended"], "unexpected");
    assert_eq!(health["checks"]["recovery:safe-mode"][0]["status"], "warn");
    let (_, _, metrics) = support::daemon::try_http_get(daemon.addr, "/metrics").unwrap();
    assert!(
        metrics.lines().any(|l| l == "rvm_watchdog_safe_mode 1"),
        "{metrics}"
    );
}
