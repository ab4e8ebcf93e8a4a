//! `rvm-watchdog check`: golden tests of invalid files, the shipped files,
//! and the command's exit codes.
//!
//! Each directory under `tests/fixtures/check/` is one case: a
//! `watchdog.toml`, a `policies/` directory, and `expected.txt`, the exact
//! report. The case is copied to a temporary directory first (the `hooks`
//! case adds hook files with modes and owners git cannot store), and that
//! directory's path is shown as `$CASE` in the report. Run with
//! `UPDATE_GOLDEN=1` to rewrite the expected files after a deliberate change,
//! then read the diff.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rvm_watchdog::cli::{self, FileArgs};
use rvm_watchdog::config::{self, Sources};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs `check` on a copy of the case, after `prepare` may add files to it.
fn report(case: &str, prepare: impl FnOnce(&Path)) -> (String, bool) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join(case);
    copy_dir(&fixtures().join(case), &dir);
    std::fs::remove_file(dir.join("expected.txt")).ok();
    prepare(&dir);
    let args = FileArgs {
        config: Some(dir.join("watchdog.toml")).filter(|p| p.exists()),
        policies: Some(dir.join("policies")).filter(|p| p.exists()),
    };
    let mut out = Vec::new();
    let ok = cli::check(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    (text.replace(&dir.display().to_string(), "$CASE"), ok)
}

fn golden(case: &str, prepare: impl FnOnce(&Path)) {
    let (text, ok) = report(case, prepare);
    assert!(!ok, "case {case} should be invalid:\n{text}");
    let expected_path = fixtures().join(case).join("expected.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", expected_path.display()));
    assert_eq!(
        text,
        expected,
        "report for case {case} differs from {}",
        expected_path.display()
    );
}

#[test]
fn syntax_error_is_located_and_other_files_still_checked() {
    golden("syntax-error", |_| {});
}

#[test]
fn every_unknown_key_is_reported_with_a_suggestion() {
    golden("unknown-keys", |_| {});
}

#[test]
fn bad_values_name_the_value_and_what_is_accepted() {
    golden("bad-values", |_| {});
}

#[test]
fn cross_file_problems_duplicates_dependencies_cycles_chains() {
    golden("cross-file", |_| {});
}

#[test]
fn channel_problems_per_kind() {
    golden("channels", |_| {});
}

#[test]
fn a_named_policies_directory_must_exist() {
    golden("missing-dir", |_| {});
}

fn hook(dir: &Path, name: &str, mode: u32, uid: Option<u32>) {
    let path = dir.join(name);
    std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(uid) = uid {
        std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
    }
}

#[test]
fn unsafe_or_missing_hooks_are_refused() {
    if !nix::unistd::Uid::effective().is_root() {
        // Hooks must be root-owned; without root no file here can pass.
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: needs root to create root-owned hooks");
        return;
    }
    golden("hooks", |dir| {
        let hooks = dir.join("hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        hook(&hooks, "world-writable", 0o777, None);
        hook(&hooks, "not-root", 0o755, Some(65534));
        hook(&hooks, "not-executable", 0o644, None);
        hook(&hooks, "usb-reset", 0o755, None);
        std::fs::write(
            dir.join("watchdog.toml"),
            format!("[daemon]\nhooks-dirs = [\"{}\"]\n", hooks.display()),
        )
        .unwrap();
    });
}

/// A configuration that every shipped policy can load against: the shipped
/// hooks directory and a platform for the `myrvm` probe.
fn shipped_config(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = dir.join("watchdog.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nhooks-dirs = [\"{}\"]\n\n[platform]\nbase-url = \"https://myrvm.example/api/v1\"\n",
            root.join("hooks").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn every_shipped_policy_loads_without_problems() {
    let temp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded = config::load(&Sources {
        config_file: Some(shipped_config(temp.path())),
        policies_dir: Some(root.join("policies")),
        ..Sources::default()
    });
    let problems: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        problems.is_empty(),
        "shipped policies have problems:\n{}",
        problems.join("\n")
    );
    let config = loaded.config.expect("shipped policies load");
    let shipped = std::fs::read_dir(root.join("policies"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(loaded.files.len(), shipped + 1, "every file was read");
    assert!(loaded.files.iter().all(|f| f.ok));
    // nvargus-daemon (CSI builds) and platform (site facts) ship disabled;
    // every other policy is a target.
    assert_eq!(config.targets.len(), shipped - 2);
    let camera = config.target("camera").unwrap();
    let actions: Vec<&str> = camera.ladder.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(actions, ["restart-units", "hook", "hook", "reboot"]);
    assert!(config.target("nvargus-daemon").is_none());
    let disabled: Vec<&str> = config.disabled.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(disabled, ["nvargus-daemon", "platform"]);
    // With [platform] set, nothing is left to fix before enabling them.
    assert!(config.disabled.iter().all(|d| d.to_enable.is_empty()));
    // The dependency edges: app -> camera and GPU.
    let edge = config.target("myrvm-edge").unwrap();
    assert_eq!(edge.depends_on, ["camera", "gpu"]);
}

/// The shipped watchdog.toml as installed (only the hooks directory moved
/// to this tree's): every shipped policy loads, and the one that needs site
/// facts is disabled and says what to fill in, as a warning.
#[test]
fn the_shipped_set_is_valid_as_installed() {
    let temp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("packaging/watchdog.toml")).unwrap();
    let hooks = format!("hooks-dirs = [\"{}\"]", root.join("hooks").display());
    let config_text: String = shipped
        .lines()
        .map(|l| {
            if l.starts_with("hooks-dirs = ") {
                hooks.clone()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        config_text.contains(&hooks),
        "the shipped file sets hooks-dirs"
    );
    std::fs::write(temp.path().join("watchdog.toml"), config_text).unwrap();
    let loaded = config::load(&Sources {
        config_file: Some(temp.path().join("watchdog.toml")),
        policies_dir: Some(root.join("policies")),
        ..Sources::default()
    });
    let said: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        said,
        [format!(
            "{}:19:1: warning: a myrvm probe needs [platform] base-url in watchdog.toml (not in effect while the target is disabled; fix it before setting enabled = true)",
            root.join("policies/platform.toml").display()
        )],
    );
    let config = loaded.config.expect("the shipped set loads");
    let platform = config
        .disabled
        .iter()
        .find(|d| d.name == "platform")
        .unwrap();
    assert_eq!(
        platform.to_enable,
        ["a myrvm probe needs [platform] base-url in watchdog.toml"]
    );
}

/// A disabled policy's errors do not break the configuration: they are
/// warnings, and once it is enabled they are errors again.
#[test]
fn a_disabled_policy_with_errors_warns_and_enabled_it_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let policies = temp.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let text = "[target]\nname = \"cam\"\nenabled = false\n\n[[probe]]\nkind = \"tcp\"\naddress = \"nowhere\"\n";
    std::fs::write(policies.join("cam.toml"), text).unwrap();
    let load = || {
        config::load(&Sources {
            config_file: Some(shipped_config(temp.path())),
            policies_dir: Some(policies.clone()),
            ..Sources::default()
        })
    };
    let loaded = load();
    assert!(loaded.config.is_some(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.diagnostics.len(), 1, "{:?}", loaded.diagnostics);
    let warning = loaded.diagnostics[0].to_string();
    assert!(
        warning.contains(": warning: ")
            && warning.contains("nowhere")
            && warning.contains("not in effect while the target is disabled"),
        "{warning}"
    );
    std::fs::write(
        policies.join("cam.toml"),
        text.replace("enabled = false\n", ""),
    )
    .unwrap();
    let loaded = load();
    assert!(loaded.config.is_none());
    assert!(
        loaded.diagnostics[0].to_string().contains(": error: "),
        "{:?}",
        loaded.diagnostics
    );
}

#[test]
fn the_shipped_watchdog_toml_is_the_embedded_default_and_loads_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("packaging/watchdog.toml")).unwrap();
    assert_eq!(shipped, config::EMBEDDED_CONFIG);
    let host = std::fs::read_to_string(root.join("policies/host.toml")).unwrap();
    assert_eq!(host, config::EMBEDDED_POLICIES[0].1);

    // The file itself, with an empty policies directory.
    let temp = tempfile::tempdir().unwrap();
    let loaded = config::load(&Sources {
        config_file: Some(root.join("packaging/watchdog.toml")),
        policies_dir: Some(temp.path().to_owned()),
        ..Sources::default()
    });
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let config = loaded.config.unwrap();
    assert_eq!(config.api.listen.to_string(), "127.0.0.1:9184");
    assert!(config.targets.is_empty());
}

#[test]
fn no_files_at_all_runs_on_the_embedded_default() {
    if Path::new(config::DEFAULT_CONFIG_PATH).exists() {
        eprintln!("skipped: this machine has {}", config::DEFAULT_CONFIG_PATH);
        return;
    }
    let loaded = config::load(&Sources::default());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let config = loaded.config.unwrap();
    assert_eq!(config.targets.len(), 1);
    assert_eq!(config.targets[0].name, "host");
    assert_eq!(loaded.files[0].path, Path::new("<embedded>/watchdog.toml"));
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rvm-watchdog"))
}

#[test]
fn exit_codes_are_0_valid_1_problems_2_usage() {
    let temp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let good = binary()
        .arg("check")
        .arg("--config")
        .arg(shipped_config(temp.path()))
        .arg("--policies")
        .arg(root.join("policies"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("policies/camera.toml' SUCCESS"), "{stdout}");

    let bad = binary()
        .arg("check")
        .arg("--config")
        .arg(fixtures().join("bad-values/watchdog.toml"))
        .arg("--policies")
        .arg(fixtures().join("bad-values/policies"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("FAILED"));

    let missing = binary()
        .args(["check", "--config", "/nonexistent/watchdog.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let text = String::from_utf8_lossy(&missing.stdout);
    assert!(
        text.contains(
            "/nonexistent/watchdog.toml: error: cannot read file: No such file or directory"
        ),
        "{text}"
    );

    let usage = binary().args(["check", "--no-such-flag"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));

    for sub in ["run", "check", "version"] {
        let help = binary().args([sub, "--help"]).output().unwrap();
        assert_eq!(help.status.code(), Some(0), "{sub} --help");
        assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: rvm-watchdog"));
    }
    let version = binary().arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("rvm-watchdog {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unreadable_and_non_utf8_files_are_errors_with_a_path() {
    let temp = tempfile::tempdir().unwrap();
    let policies = temp.path().join("policies");
    std::fs::create_dir_all(policies.join("folder.toml")).unwrap();
    std::fs::write(
        policies.join("latin1.toml"),
        b"[target]\nname = \"caf\xe9\"\n",
    )
    .unwrap();
    std::fs::write(policies.join("notes.txt"), "not a policy: ignored").unwrap();
    let loaded = config::load(&Sources {
        policies_dir: Some(policies.clone()),
        ..Sources::default()
    });
    let lines: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    let dir = policies.display();
    assert_eq!(
        lines,
        [
            format!(
                "{dir}/folder.toml: error: cannot read file: it is a directory, not a regular file"
            ),
            format!(
                "{dir}/latin1.toml:2:12: error: file is not valid UTF-8 (byte 0xe9); save it as UTF-8"
            ),
        ]
    );
    assert!(loaded.config.is_none());
    let checked: Vec<(String, bool)> = loaded
        .files
        .iter()
        .map(|f| {
            (
                f.path.file_name().unwrap().to_string_lossy().into_owned(),
                f.ok,
            )
        })
        .collect();
    assert_eq!(
        checked,
        [
            ("watchdog.toml".to_owned(), true),
            ("folder.toml".to_owned(), false),
            ("latin1.toml".to_owned(), false),
        ]
    );
}

/// Runs `check` and waits for it, at most `limit`: a check that blocks is
/// killed and fails the test.
fn check_within(args: &[&std::ffi::OsStr], limit: std::time::Duration) -> (Option<i32>, String) {
    let mut child = binary()
        .arg("check")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut text = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text).unwrap();
            return (status.code(), text);
        }
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("check did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A FIFO, a device or a huge file among the configuration files is an
/// error naming the file, and `check` finishes: nothing waits for a writer,
/// nothing reads an endless device.
#[test]
fn only_regular_files_of_at_most_1_mib_are_read() {
    let temp = tempfile::tempdir().unwrap();
    let policies = temp.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    nix::unistd::mkfifo(
        &policies.join("pipe.toml"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", policies.join("zero.toml")).unwrap();
    let mut big = b"[target]\nname = \"big\"\n".to_vec();
    big.resize(2 * 1024 * 1024, b'#');
    std::fs::write(policies.join("big.toml"), &big).unwrap();
    // A link to a regular file is read like the file.
    std::fs::write(
        temp.path().join("real.toml"),
        "[target]\nname = \"linked\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(temp.path().join("real.toml"), policies.join("linked.toml"))
        .unwrap();
    let daemon = temp.path().join("daemon.toml");
    std::fs::write(&daemon, "").unwrap();
    let config = temp.path().join("watchdog.toml");
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();

    let dir = policies.display();
    let limit = std::time::Duration::from_secs(30);
    let (code, text) = check_within(
        &[
            "--config".as_ref(),
            daemon.as_os_str(),
            "--policies".as_ref(),
            policies.as_os_str(),
        ],
        limit,
    );
    assert_eq!(code, Some(1), "{text}");
    for line in [
        format!(
            "{dir}/big.toml: error: file is too large: 2097152 bytes; a configuration file may hold at most 1048576 bytes (1 MiB)"
        ),
        format!(
            "{dir}/pipe.toml: error: cannot read file: it is a named pipe (FIFO), not a regular file"
        ),
        format!(
            "{dir}/zero.toml: error: cannot read file: it is a character device, not a regular file"
        ),
        format!("Checking '{dir}/linked.toml' SUCCESS"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nin:\n{text}");
    }

    // The daemon's own file is read the same way.
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, text) = check_within(
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "--policies".as_ref(),
            empty.as_os_str(),
        ],
        limit,
    );
    assert_eq!(code, Some(1), "{text}");
    let line = format!(
        "{}: error: cannot read file: it is a named pipe (FIFO), not a regular file",
        config.display()
    );
    assert!(text.lines().any(|l| l == line), "{line}\nin:\n{text}");
}

/// Every prefix of every shipped policy: whatever an editor leaves half
/// written, loading reports problems and never panics.
#[test]
fn truncated_files_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = config::load(&Sources {
        config_file: Some(root.join("packaging/watchdog.toml")),
        policies_dir: Some(root.join("tests/fixtures/check/channels/policies")),
        ..Sources::default()
    })
    .config
    .unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for cut in (0..text.len())
            .filter(|i| text.is_char_boundary(*i))
            .step_by(5)
        {
            let src = config::SourceFile::new(&path, text[..cut].to_owned());
            let mut out = Vec::new();
            if let Some(raw) = src.deserialize::<config::raw::RawPolicy>(&mut out, |_| None) {
                let _ = config::validate::policy(&src, raw, &base, &mut out);
            }
            for d in &out {
                assert!(d.line >= 1 && d.col >= 1, "{d} has a position");
            }
            checked += 1;
        }
    }
    assert!(checked > 500, "checked {checked} prefixes");
}

/// Every key the files accept is documented in `policies/README.md`.
#[test]
fn every_key_is_documented_in_the_policies_readme() {
    use rvm_watchdog::config::raw::*;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("policies/README.md")).unwrap();
    let tables: [(&str, &[&str]); 23] = [
        ("watchdog.toml", fields_of::<RawConfig>()),
        ("[daemon]", fields_of::<RawDaemon>()),
        ("[log]", fields_of::<RawLog>()),
        ("[api]", fields_of::<RawApi>()),
        ("[identity]", fields_of::<RawIdentity>()),
        ("[platform]", fields_of::<RawPlatform>()),
        ("[metrics]", fields_of::<RawMetrics>()),
        ("[[metrics.scrape]]", fields_of::<RawScrape>()),
        ("[[metrics.kpi]]", fields_of::<RawKpi>()),
        ("[reboot]", fields_of::<RawReboot>()),
        ("[alerts]", fields_of::<RawAlerts>()),
        ("[channels.NAME]", fields_of::<RawChannel>()),
        ("[escalation.NAME]", fields_of::<RawEscalation>()),
        ("escalation levels", fields_of::<RawEscalationLevel>()),
        ("[[rule]]", fields_of::<RawRule>()),
        ("predict", fields_of::<RawPredict>()),
        ("policy", fields_of::<RawPolicy>()),
        ("[target]", fields_of::<RawTarget>()),
        ("[target.process]", fields_of::<RawProcess>()),
        ("[target.adopt]", fields_of::<RawAdopt>()),
        ("[[probe]]", fields_of::<RawProbe>()),
        ("[[recovery]]", fields_of::<RawStep>()),
        ("backoff", fields_of::<RawBackoff>()),
    ];
    let mut missing = Vec::new();
    let mut total = 0;
    for (table, keys) in tables {
        assert!(!keys.is_empty(), "{table} has keys");
        for key in keys {
            total += 1;
            let documented = [format!("`{key}`"), format!("[{key}"), format!("[[{key}]]")]
                .iter()
                .any(|form| readme.contains(form.as_str()));
            if !documented {
                missing.push(format!("{table} {key}"));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    assert!(total > 100, "{total} keys checked");
    for kind in [
        "http",
        "tcp",
        "exec",
        "file-age",
        "unit",
        "disk",
        "memory",
        "temperature",
        "gpu",
        "camera",
        "network",
        "myrvm",
        "process",
    ] {
        assert!(
            readme.contains(&format!("### {kind}")),
            "probe kind {kind} has a section"
        );
    }
    for action in ["restart", "restart-units", "hook", "kill", "reboot"] {
        assert!(
            readme.contains(&format!("### {action}")),
            "action {action} has a section"
        );
    }
}

#[test]
fn probe_runs_a_targets_probes_once_and_exits_with_the_worst() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let fresh = dir.join("fresh");
    std::fs::write(&fresh, "").unwrap();
    std::fs::write(
        policies.join("edge.toml"),
        format!(
            "[target]\nname = \"edge\"\n\n\
             [[probe]]\nname = \"beat\"\nkind = \"file-age\"\nfile = \"{}\"\nmax-age = \"1m\"\n\n\
             [[probe]]\nname = \"gone\"\nkind = \"file-age\"\nfile = \"{}\"\nmax-age = \"1m\"\n\n\
             [[probe]]\nname = \"helper\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"echo degraded; exit 1\"]\n\n\
             [[probe]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\n\n\
             [[probe]]\nname = \"gpu\"\nkind = \"gpu\"\n\n\
             [[probe]]\nname = \"cam\"\nkind = \"camera\"\ndevice = \"/dev/null\"\nkernel-errors = false\n",
            fresh.display(),
            dir.join("missing").display()
        ),
    )
    .unwrap();
    let run = |which: &str| {
        let out = binary()
            .args(["probe", which, "--policies"])
            .arg(&policies)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run("edge/beat");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("edge/beat: pass ["), "{text}");
    let (code, text) = run("edge/helper");
    assert_eq!(
        (
            code,
            text.contains("edge/helper: warn [1.00 exit code] degraded")
        ),
        (Some(1), true),
        "{text}"
    );
    let (code, text) = run("edge");
    assert_eq!(code, Some(2), "the worst of all: {text}");
    assert!(text.contains("edge/gone: fail cannot read"), "{text}");
    assert!(
        text.contains("edge/web: fail cannot connect: http://127.0.0.1:1/"),
        "{text}"
    );
    // This machine has no Jetson GPU and no NVML.
    assert!(
        text.contains("edge/gpu: warn no GPU found (no Jetson devfreq GPU under /, no NVML)"),
        "{text}"
    );
    assert!(
        text.contains("edge/cam: fail /dev/null is not a V4L2 device"),
        "{text}"
    );
    let (code, text) = run("nope");
    assert_eq!((code, text.trim()), (Some(3), "no target named \"nope\""));
    let (code, text) = run("edge/nope");
    assert_eq!(
        (code, text.trim()),
        (Some(3), "target \"edge\" has no probe named \"nope\"")
    );
}

#[test]
fn probe_details_show_what_a_gpu_probe_read_on_a_jetson_tree() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jetson/jp6-orin-nano");
    let config = dir.join("watchdog.toml");
    std::fs::write(
        &config,
        format!("[daemon]\nhost-root = \"{}\"\n", root.display()),
    )
    .unwrap();
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("board.toml"),
        "[target]\nname = \"board\"\n\n[[probe]]\nname = \"gpu\"\nkind = \"gpu\"\n",
    )
    .unwrap();
    let out = binary()
        .args(["probe", "board/gpu", "--details", "--config"])
        .arg(&config)
        .arg("--policies")
        .arg(&policies)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("board/gpu: pass [44.53 °C] GPU 17000000.gpu: load 12.3 %"),
        "{text}"
    );
    for line in [
        "    gpu_load_percent 12.3",
        "    gpu_frequency_hertz 306000000",
        "    temperature_celsius{zone=gpu-thermal} 44.531",
    ] {
        assert!(lines.contains(&line), "{line} in\n{text}");
    }
    // Offline zones are not figures.
    assert!(!text.contains("cv0-thermal"), "{text}");
}
