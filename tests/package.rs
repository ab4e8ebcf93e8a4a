//! The Debian package, as root on this machine. tests/run builds it first
//! with `packaging/build-deb.sh`; this test takes the newest
//! `target/debian/rvm-watchdog_*_amd64.deb` (or `RVM_WATCHDOG_DEB`) and:
//! lints it, lists it, checks its binary's glibc floor, installs it with
//! dpkg, checks the installed configuration, the token and the unit file,
//! runs the installed daemon and unit under a real systemd with the shipped
//! policies pointed at test units, then removes and purges it and looks for
//! anything left behind.
//!
//! It changes this machine's package database, so it refuses to run where
//! systemd is PID 1 (postinst would start the watchdog for real) or where
//! rvm-watchdog is installed or configured already.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::daemon::{free_port, http_get};
use support::systemd::{PrivateSystemd, journal_field, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn debian_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian")
}

/// The newest package for `arch` in target/debian.
fn newest_deb(arch: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(debian_dir()).ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("rvm-watchdog_") && name.ends_with(&format!("_{arch}.deb"))
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// The package under test.
fn deb() -> PathBuf {
    if let Some(path) = std::env::var_os("RVM_WATCHDOG_DEB") {
        return PathBuf::from(path);
    }
    newest_deb("amd64").unwrap_or_else(|| {
        panic!(
            "no package in {}: build it first with packaging/build-deb.sh (tests/run does)",
            debian_dir().display()
        )
    })
}

/// The newest `GLIBC_x.y` version an ELF file's dynamic symbols need, by
/// `readelf` (which reads any architecture's).
fn newest_glibc(binary: &Path) -> Vec<u32> {
    let symbols = ok("readelf", &["-W", "--dyn-syms", binary.to_str().unwrap()]);
    symbols
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .map(|v| {
            v.split('.')
                .map(|n| n.parse::<u32>().unwrap_or(0))
                .collect::<Vec<_>>()
        })
        .max()
        .expect("the binary needs glibc symbols")
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "rvm-watchdog"]);
    }
}

fn installed_status() -> Option<String> {
    let out = run("dpkg-query", &["-W", "-f=${Status}", "rvm-watchdog"]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        .filter(|s| !s.contains("not-installed"))
}

/// `dpkg -c` as (mode, path) pairs, paths without the leading `.`.
fn contents(deb: &Path) -> Vec<(String, String)> {
    ok("dpkg-deb", &["-c", deb.to_str().unwrap()])
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let mode = f.next()?.to_owned();
            let path = f.nth(4)?.trim_start_matches('.').to_owned();
            Some((mode, path))
        })
        .collect()
}

fn shipped_policies() -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
    names.sort();
    names
}

#[test]
fn the_package_lints_installs_runs_and_leaves_nothing_behind() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the package test installs a package: run it as root (tests/run does)"
    );
    assert!(
        !Path::new("/run/systemd/system").exists(),
        "this machine runs systemd as PID 1: installing would start the watchdog for real; run this test in a container or VM without it"
    );
    assert!(
        installed_status().is_none() && !Path::new("/etc/rvm-watchdog").exists(),
        "rvm-watchdog is installed or configured on this machine already ({:?}, /etc/rvm-watchdog): not touching it",
        installed_status()
    );
    let deb = deb();
    let deb_str = deb.to_str().unwrap();
    eprintln!(
        "package: {} ({} bytes)",
        deb.display(),
        deb.metadata().unwrap().len()
    );

    // Lint: no error; warnings are printed (each justified in
    // packaging/lintian-overrides when it is overridden).
    let lint = run(
        "lintian",
        &["--fail-on", "error", "--tag-display-limit", "0", deb_str],
    );
    let said = String::from_utf8_lossy(&lint.stdout).into_owned();
    eprintln!("lintian:\n{said}");
    assert!(lint.status.success(), "lintian found errors:\n{said}");
    assert!(!said.lines().any(|l| l.starts_with("E: ")), "{said}");

    // The files and their modes.
    let listed = contents(&deb);
    let mode_of = |path: &str| {
        listed
            .iter()
            .find(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .unwrap_or_else(|| panic!("{path} is not in the package: {listed:#?}"))
    };
    assert_eq!(mode_of("/usr/bin/rvm-watchdog"), "-rwxr-xr-x");
    assert_eq!(
        mode_of("/lib/systemd/system/rvm-watchdog.service"),
        "-rw-r--r--"
    );
    assert_eq!(mode_of("/etc/rvm-watchdog/watchdog.toml"), "-rw-r--r--");
    for policy in shipped_policies() {
        assert_eq!(
            mode_of(&format!("/etc/rvm-watchdog/policies/{policy}")),
            "-rw-r--r--"
        );
    }
    for hook in ["usb-reset", "argus-restart", "diagnostics"] {
        assert_eq!(
            mode_of(&format!("/usr/share/rvm-watchdog/hooks/{hook}")),
            "-rwxr-xr-x"
        );
    }
    for file in [
        "/usr/share/man/man1/rvm-watchdog.1.gz",
        "/usr/share/man/man1/rvm-watchdog-check.1.gz",
        "/usr/share/bash-completion/completions/rvm-watchdog",
        "/usr/share/zsh/vendor-completions/_rvm-watchdog",
        "/usr/share/fish/vendor_completions.d/rvm-watchdog.fish",
        "/usr/share/doc/rvm-watchdog/README.md",
        "/usr/share/doc/rvm-watchdog/copyright",
    ] {
        assert_eq!(mode_of(file), "-rw-r--r--", "{file}");
    }
    assert!(
        listed
            .iter()
            .all(|(m, _)| !m.starts_with('-') || m == "-rw-r--r--" || m == "-rwxr-xr-x"),
        "a file whose mode is neither 644 nor 755: {listed:#?}"
    );

    // Configuration files are conffiles: an operator's edits survive upgrades.
    let control = tempfile::tempdir().unwrap();
    ok(
        "dpkg-deb",
        &["-e", deb_str, control.path().to_str().unwrap()],
    );
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/rvm-watchdog/watchdog.toml"),
        "{conffiles}"
    );
    for policy in shipped_policies() {
        let path = format!("/etc/rvm-watchdog/policies/{policy}");
        assert!(
            conffiles.lines().any(|l| l == path),
            "{path} not in {conffiles}"
        );
    }
    let fields = std::fs::read_to_string(control.path().join("control")).unwrap();
    assert!(fields.contains("Depends: libc6 (>= 2.31)"), "{fields}");

    // The binary's glibc floor: JetPack 5 has 2.31.
    let unpacked = tempfile::tempdir().unwrap();
    ok(
        "dpkg-deb",
        &["-x", deb_str, unpacked.path().to_str().unwrap()],
    );
    let newest = newest_glibc(&unpacked.path().join("usr/bin/rvm-watchdog"));
    eprintln!("newest glibc symbol needed: {newest:?}");
    assert!(
        newest <= vec![2, 31],
        "needs GLIBC {newest:?}, newer than 2.31"
    );

    // Install.
    let installed = Installed;
    let out = run("dpkg", &["-i", deb_str]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("dpkg -i:\n{said}");
    assert!(out.status.success(), "dpkg -i failed:\n{said}");
    assert!(installed_status().unwrap().contains("install ok installed"));

    // Valid as installed, with no edits.
    let check = run("/usr/bin/rvm-watchdog", &["check"]);
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success(),
        "the installed configuration does not pass check:\n{said}"
    );
    assert!(
        said.contains("Checking '/etc/rvm-watchdog/watchdog.toml' SUCCESS"),
        "{said}"
    );
    assert!(said.contains("configuration is valid"), "{said}");
    // The platform's policy ships disabled and says what it needs.
    assert!(
        said.contains("platform.toml") && said.contains("[platform] base-url"),
        "{said}"
    );

    // The token: made by postinst, root's only.
    let token = Path::new("/var/lib/rvm-watchdog/api.token");
    let meta = std::fs::metadata(token).expect("postinst writes the API token");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(token).unwrap();
    assert_eq!(text.trim().len(), 64, "{text:?}");
    assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    let state = std::fs::metadata("/var/lib/rvm-watchdog").unwrap();
    assert_eq!(state.permissions().mode() & 0o777, 0o700);
    assert!(
        Path::new("/etc/rvm-watchdog/hooks").is_dir(),
        "the site hooks directory"
    );
    // Enabled for the next boot, as dh_installsystemd does.
    assert!(
        Path::new("/etc/systemd/system/multi-user.target.wants/rvm-watchdog.service").exists(),
        "the unit is enabled"
    );

    // The unit file as installed.
    let verify = run(
        "systemd-analyze",
        &["verify", "/lib/systemd/system/rvm-watchdog.service"],
    );
    let said = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(verify.status.success(), "systemd-analyze verify:\n{said}");
    assert!(
        !said.contains("rvm-watchdog.service"),
        "systemd-analyze verify says:\n{said}"
    );

    postinst_restarts_only_on_a_configuration_that_passes_check();
    run_installed_under_systemd();

    // Remove: the program goes, the configuration stays.
    let out = run("dpkg", &["--remove", "rvm-watchdog"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!Path::new("/usr/bin/rvm-watchdog").exists());
    assert!(
        Path::new("/etc/rvm-watchdog/watchdog.toml").exists(),
        "conffiles are kept on remove"
    );
    assert!(installed_status().unwrap().contains("config-files"));

    // Purge: nothing is left.
    let out = run("dpkg", &["--purge", "rvm-watchdog"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(installed);
    assert!(installed_status().is_none(), "{:?}", installed_status());
    for path in [
        "/etc/rvm-watchdog",
        "/var/lib/rvm-watchdog",
        "/usr/share/rvm-watchdog",
        "/usr/share/doc/rvm-watchdog",
        "/usr/bin/rvm-watchdog",
        "/lib/systemd/system/rvm-watchdog.service",
        "/etc/systemd/system/rvm-watchdog.service",
        "/etc/systemd/system/multi-user.target.wants/rvm-watchdog.service",
        "/usr/share/man/man1/rvm-watchdog.1.gz",
        "/usr/share/bash-completion/completions/rvm-watchdog",
    ] {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "{path} is left after purge"
        );
    }
    for dir in [
        "/var/lib/systemd/deb-systemd-helper-enabled",
        "/var/lib/systemd/deb-systemd-helper-masked",
    ] {
        let left: Vec<String> = walk(Path::new(dir))
            .into_iter()
            .filter(|p| p.contains("rvm-watchdog"))
            .collect();
        assert!(left.is_empty(), "left in {dir}: {left:?}");
    }
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            out.push(path.display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&path));
            }
        }
    }
    out
}

/// The installed unit and binary under a private systemd, with the shipped
/// configuration and policies as installed, pointed at test units of the
/// shipped names: the watchdog comes up (`Type=notify`), serves /health
/// with every shipped target, and sees the edge client's unit running.
fn run_installed_under_systemd() {
    let Some(sd) = PrivateSystemd::shared() else {
        return;
    };
    // Not under /tmp, as on a machine (the unit has PrivateTmp=yes).
    let temp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = temp.path();
    let port = free_port();

    // The installed configuration, on the test manager's bus, rebooting
    // nothing.
    let shipped = std::fs::read_to_string("/etc/rvm-watchdog/watchdog.toml").unwrap();
    let config = shipped
        .replacen("\nbus = \"system\"\n", "\nbus = \"user\"\n", 1)
        .replacen("[reboot]\n", "[reboot]\ncommand = [\"/bin/true\"]\n", 1);
    assert_ne!(config, shipped);
    std::fs::write(dir.join("watchdog.toml"), config).unwrap();

    // The edge client, as a test unit of its shipped name.
    sd.write_unit(
        "myrvm-edge.service",
        "[Service]\nExecStart=/bin/sleep 600\n",
    );
    let out = sd.systemctl(&["start", "myrvm-edge.service"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The installed unit, started as it is written, only pointed at these
    // files (and off the system's state directory).
    let unit = std::fs::read_to_string("/lib/systemd/system/rvm-watchdog.service").unwrap();
    let exec = format!(
        "ExecStart=/usr/bin/rvm-watchdog run --config {d}/watchdog.toml --policies /etc/rvm-watchdog/policies --state-dir {d}/state --listen 127.0.0.1:{port}",
        d = dir.display()
    );
    let unit = unit
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                exec.clone()
            } else if l == "PrivateTmp=yes" {
                // The test manager's bus and notify socket live under /tmp;
                // the system's are under /run, which PrivateTmp leaves.
                "PrivateTmp=no".to_owned()
            } else if l.starts_with("StateDirectory") || l.starts_with("WantedBy=") {
                // A user manager's StateDirectory is under ~/.local/state;
                // the state directory is passed instead.
                String::new()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        unit.contains("Type=notify") && unit.contains("WatchdogSec="),
        "{unit}"
    );
    sd.write_unit("rvm-watchdog.service", &unit);
    let out = sd.systemctl(&["start", "rvm-watchdog.service"]);
    assert!(
        out.status.success(),
        "the installed unit did not start: {}\n{}\nits journal:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&sd.systemctl(&["status", "rvm-watchdog.service"]).stdout),
        sd.journal()
            .iter()
            .filter(|e| journal_field(e, "_SYSTEMD_CGROUP")
                .is_some_and(|c| c.ends_with("/rvm-watchdog.service")))
            .filter_map(|e| journal_field(e, "MESSAGE"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(sd.show("rvm-watchdog.service", "ActiveState"), "active");

    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let health: Value = wait_until("/health with the edge client's unit seen", WAIT, || {
        let (code, _, body) = http_get(addr, "/api/v1/health");
        let doc: Value = serde_json::from_str(&body).ok()?;
        let seen = doc["checks"]
            .as_object()?
            .iter()
            .any(|(k, v)| k.starts_with("myrvm-edge:unit") && v[0]["status"] == "pass");
        (code == 200 && seen).then_some(doc)
    })
    .unwrap_or_else(|e| panic!("{e}: {}", http_get(addr, "/api/v1/health").2));
    let mut targets: Vec<&str> = health["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        ["camera", "edge-helper-8001", "gpu", "host", "myrvm-edge"]
    );
    let disabled = &health["disabledTargets"];
    let platform = disabled
        .as_array()
        .and_then(|d| d.iter().find(|t| t["name"] == "platform"))
        .unwrap_or_else(|| panic!("platform is not listed as disabled: {disabled}"));
    assert!(
        platform["toEnable"][0]
            .as_str()
            .is_some_and(|m| m.contains("[platform] base-url")),
        "{platform}"
    );
    let out = sd.systemctl(&["stop", "rvm-watchdog.service", "myrvm-edge.service"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Jetson's package, which tests/run builds where the aarch64 Rust
/// target is installed: an arm64 binary needing glibc 2.31 at most, that
/// runs under qemu and accepts the configuration it ships.
#[test]
fn the_arm64_package_needs_at_most_glibc_2_31_and_runs_under_qemu() {
    let sysroot = ok("rustc", &["--print", "sysroot"]);
    let target = Path::new(sysroot.trim()).join("lib/rustlib/aarch64-unknown-linux-gnu/lib");
    let Some(deb) = newest_deb("arm64") else {
        assert!(
            !target.exists(),
            "the aarch64 Rust target is installed but there is no arm64 package in {}: build it with packaging/build-deb.sh --arch arm64 (tests/run does)",
            debian_dir().display()
        );
        eprintln!("skipped: no arm64 package, and no aarch64 Rust target to build one here");
        return;
    };
    let deb_str = deb.to_str().unwrap();
    eprintln!(
        "package: {} ({} bytes)",
        deb.display(),
        deb.metadata().unwrap().len()
    );
    let lint = run(
        "lintian",
        &["--fail-on", "error", "--tag-display-limit", "0", deb_str],
    );
    let said = String::from_utf8_lossy(&lint.stdout).into_owned();
    assert!(lint.status.success(), "lintian found errors:\n{said}");
    assert_eq!(
        ok("dpkg-deb", &["-f", deb_str, "Architecture"]).trim(),
        "arm64"
    );
    let depends = ok("dpkg-deb", &["-f", deb_str, "Depends"]);
    assert!(depends.contains("libc6 (>= 2.31)"), "{depends}");

    let unpacked = tempfile::tempdir().unwrap();
    let root = unpacked.path();
    ok("dpkg-deb", &["-x", deb_str, root.to_str().unwrap()]);
    let bin = root.join("usr/bin/rvm-watchdog");
    let header = ok("readelf", &["-h", bin.to_str().unwrap()]);
    assert!(header.contains("AArch64"), "{header}");
    let newest = newest_glibc(&bin);
    eprintln!(
        "arm64: newest glibc symbol needed: {newest:?}; binary {} bytes",
        bin.metadata().unwrap().len()
    );
    assert!(
        newest <= vec![2, 31],
        "needs GLIBC {newest:?}, newer than 2.31"
    );

    let qemu = |args: &[&str]| {
        let mut all = vec!["-L", "/usr/aarch64-linux-gnu", bin.to_str().unwrap()];
        all.extend_from_slice(args);
        run("qemu-aarch64-static", &all)
    };
    let version = qemu(&["--version"]);
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("rvm-watchdog {}", env!("CARGO_PKG_VERSION"))
    );
    // The configuration it ships, its hooks where it unpacked them.
    let shipped = std::fs::read_to_string(root.join("etc/rvm-watchdog/watchdog.toml")).unwrap();
    let hooks = root.join("usr/share/rvm-watchdog/hooks");
    let config: String = shipped
        .lines()
        .map(|l| {
            if l.starts_with("hooks-dirs = ") {
                format!("hooks-dirs = [\"{}\"]", hooks.display())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config_path = root.join("watchdog.toml");
    std::fs::write(&config_path, config).unwrap();
    let check = qemu(&[
        "check",
        "--config",
        config_path.to_str().unwrap(),
        "--policies",
        root.join("etc/rvm-watchdog/policies").to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "check under qemu:\n{said}");
    assert!(said.contains("configuration is valid"), "{said}");
}

/// The installed postinst as it runs where systemd is PID 1, in a private
/// mount namespace with `/run/systemd/system` present and `systemctl`,
/// `deb-systemd-invoke` and `deb-systemd-helper` standing in (they record
/// their calls): on the shipped configuration it restarts the unit; on a
/// broken one it says what `check` said and restarts nothing, and the
/// package still configures (exit 0).
fn postinst_restarts_only_on_a_configuration_that_passes_check() {
    let stubs = tempfile::tempdir().unwrap();
    let calls = stubs.path().join("calls");
    for tool in ["systemctl", "deb-systemd-invoke", "deb-systemd-helper"] {
        let path = stubs.path().join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"{tool} $*\" >> {}\n", calls.display()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let postinst = |label: &str| {
        let _ = std::fs::remove_file(&calls);
        let script = "mount -t tmpfs none /run && mkdir -p /run/systemd/system && /var/lib/dpkg/info/rvm-watchdog.postinst configure 0.1.0-1";
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .env(
                "PATH",
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", stubs.path().display()),
            )
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "postinst ({label}) failed: {stdout}{stderr}"
        );
        (std::fs::read_to_string(&calls).unwrap_or_default(), stderr)
    };

    let (called, _) = postinst("valid configuration");
    assert!(
        called.contains("systemctl --system daemon-reload"),
        "{called}"
    );
    assert!(
        called.contains("deb-systemd-invoke restart rvm-watchdog.service"),
        "{called}"
    );

    let config = Path::new("/etc/rvm-watchdog/watchdog.toml");
    let shipped = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, format!("{shipped}\n[api]\nlisten = \"nowhere\"\n")).unwrap();
    let (called, said) = postinst("broken configuration");
    std::fs::write(config, shipped).unwrap();
    assert!(!called.contains("deb-systemd-invoke restart"), "{called}");
    assert!(
        said.contains("watchdog.toml"),
        "check's words are shown: {said}"
    );
    assert!(said.contains("the watchdog was not (re)started"), "{said}");
}
