//! The hook runner against real processes: timeouts kill the whole process
//! group, unsafe files are refused at run time, the environment is exactly
//! the documented one, exit codes and output are reported, nothing is left
//! behind (`hooks/README.md`).
//!
//! Hooks must be root-owned, so these tests need root (as `tests/run` has);
//! without it each test says so and passes, except under `CI`, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvm_watchdog::hook::{self, HookEnv, HookError, HookOutcome, HookRun, HookStatus};
use tokio::time::Instant;

/// Whether the test can run; a notice when it cannot, a failure under CI.
fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "hook tests need root (hooks must be root-owned) and CI is set"
    );
    eprintln!("notice: not root; skipping this hook test (hooks must be root-owned)");
    false
}

/// Writes a `/bin/sh` hook, mode 0755, owned by us (root).
fn write_hook(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A plain environment for a target without a unit, device or dashboard.
fn env() -> HookEnv {
    HookEnv {
        target: "camera".into(),
        unit: None,
        incident: "inc-42".into(),
        attempt: 1,
        step: 1,
        reason: "probe failed".into(),
        device: None,
        usb_port: None,
        dashboard_url: None,
        host_root: "/".into(),
    }
}

fn hook_run<'a>(name: &'a str, path: &'a Path, args: &[&str], timeout: Duration) -> HookRun<'a> {
    HookRun {
        name,
        path,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: env(),
        timeout,
        output_limit: hook::OUTPUT_LIMIT,
    }
}

async fn run_ok(run: HookRun<'_>) -> HookOutcome {
    let name = run.name.to_owned();
    hook::run(run)
        .await
        .unwrap_or_else(|e| panic!("hook {name} could not be run: {e}"))
}

/// The process state letter from `/proc/PID/stat`, `None` when there is no
/// such process.
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": comm may hold spaces and parentheses.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Gone: no such process, or a zombie (dead, waiting for its parent — here
/// init, which may reap slowly — to reap it).
fn gone(pid: i32) -> bool {
    matches!(process_state(pid), None | Some('Z'))
}

/// Polls `condition` until it holds or `within` has passed; whether it held.
async fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pid a hook wrote to `path`.
fn read_pid(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("hook did not write {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{} holds {text:?}: {e}", path.display()))
}

async fn assert_all_gone(pids: &[i32]) {
    let all_gone = wait_until(Duration::from_secs(5), || pids.iter().all(|&p| gone(p))).await;
    let states: Vec<_> = pids.iter().map(|&p| (p, process_state(p))).collect();
    assert!(all_gone, "processes still alive (pid, state): {states:?}");
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_with_its_children() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hook = write_hook(
        dir.path(),
        "hang",
        r#"sleep 300 &
echo $! > "$1"
echo $$ > "$2"
echo started
sleep 300"#,
    );
    let (child_pid, hook_pid) = (dir.path().join("child.pid"), dir.path().join("hook.pid"));
    let started = Instant::now();
    let outcome = run_ok(hook_run(
        "hang",
        &hook,
        &[child_pid.to_str().unwrap(), hook_pid.to_str().unwrap()],
        Duration::from_secs(1),
    ))
    .await;
    let took = started.elapsed();

    assert_eq!(outcome.status, HookStatus::TimedOut);
    assert!(!outcome.success());
    assert_eq!(outcome.output, "started\n");
    // A sanity bound, not a measurement: 1 s timeout, 2 s grace, slack.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(outcome.took >= Duration::from_secs(1), "{:?}", outcome.took);
    assert_all_gone(&[read_pid(&child_pid), read_pid(&hook_pid)]).await;
}

#[tokio::test]
async fn a_hook_that_exits_leaves_nothing_behind() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // One background child keeps the output pipes open, the other does not.
    for (name, body) in [
        ("holds-pipes", "sleep 300 &\necho $! > \"$1\"\nexit 0"),
        (
            "quiet-child",
            "sleep 300 >/dev/null 2>&1 &\necho $! > \"$1\"\nexit 0",
        ),
    ] {
        let hook = write_hook(dir.path(), name, body);
        let pid_file = dir.path().join(format!("{name}.pid"));
        let started = Instant::now();
        let outcome = run_ok(hook_run(
            name,
            &hook,
            &[pid_file.to_str().unwrap()],
            Duration::from_secs(60),
        ))
        .await;
        assert!(outcome.success(), "{name}: {outcome:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} took {:?}",
            started.elapsed()
        );
        assert_all_gone(&[read_pid(&pid_file)]).await;
    }
}

#[tokio::test]
async fn a_cancelled_run_kills_the_group() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hook = write_hook(
        dir.path(),
        "slow",
        "sleep 300 &\necho $! > \"$1\"\necho $$ > \"$2.tmp\" && mv \"$2.tmp\" \"$2\"\nsleep 300",
    );
    let (child_pid, hook_pid) = (dir.path().join("child.pid"), dir.path().join("hook.pid"));
    let run = hook::run(hook_run(
        "slow",
        &hook,
        &[child_pid.to_str().unwrap(), hook_pid.to_str().unwrap()],
        Duration::from_secs(300),
    ));
    tokio::select! {
        outcome = run => panic!("the hook ended: {outcome:?}"),
        written = wait_until(Duration::from_secs(10), || hook_pid.exists()) => {
            assert!(written, "the hook did not start within 10 s");
        }
    }
    // The run future is dropped here, its process group killed.
    assert_all_gone(&[read_pid(&child_pid), read_pid(&hook_pid)]).await;
}

#[tokio::test]
async fn an_unsafe_hook_is_refused_and_not_run() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let hook = write_hook(dir.path(), "unsafe", &format!("touch {}", marker.display()));

    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = hook::run(hook_run("unsafe", &hook, &[], Duration::from_secs(5)))
        .await
        .unwrap_err();
    let HookError::Refused { path, why } = &err else {
        panic!("expected Refused, got {err:?}");
    };
    assert_eq!(path, &hook);
    assert!(why.contains("mode 0777"), "{why}");
    assert!(err.to_string().contains(hook.to_str().unwrap()), "{err}");

    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&hook, Some(65534), None).unwrap();
    let err = hook::run(hook_run("unsafe", &hook, &[], Duration::from_secs(5)))
        .await
        .unwrap_err();
    let HookError::Refused { why, .. } = &err else {
        panic!("expected Refused, got {err:?}");
    };
    assert!(why.contains("uid 65534"), "{why}");

    assert!(!marker.exists(), "a refused hook ran");
}

#[tokio::test]
async fn a_hook_in_a_directory_others_may_write_is_refused_and_a_link_is_named_with_its_file() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let hook = write_hook(&open, "fix", &format!("touch {}", marker.display()));
    let err = hook::run(hook_run("fix", &hook, &[], Duration::from_secs(5)))
        .await
        .unwrap_err();
    let HookError::Refused { why, .. } = &err else {
        panic!("expected Refused, got {err:?}");
    };
    assert!(
        why.contains(&format!("directory {}", open.display())) && why.contains("mode 0777"),
        "{why}"
    );

    // Through a symlink from a safe hooks directory: the file judged is named.
    let hooks = dir.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = hooks.join("fix");
    std::os::unix::fs::symlink(&hook, &link).unwrap();
    let err = hook::resolve("fix", std::slice::from_ref(&hooks)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("{} (-> {})", link.display(), hook.display())),
        "{text}"
    );
    assert!(!marker.exists(), "a refused hook ran");

    // The hooks directory itself: `check` refuses one that others may write.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(hook::resolve("fix", std::slice::from_ref(&hooks)).is_ok());
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = dir.path().join("watchdog.toml");
    std::fs::write(
        &config,
        format!("[daemon]\nhooks-dirs = [\"{}\"]\n", hooks.display()),
    )
    .unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let loaded = rvm_watchdog::config::load(&rvm_watchdog::config::Sources {
        config_file: Some(config.clone()),
        policies_dir: Some(policies),
        ..Default::default()
    });
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == rvm_watchdog::config::Level::Error)
        .map(|d| d.to_string())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("{}:2:", config.display()))
            && errors[0].contains(&format!("hooks directory {}", hooks.display()))
            && errors[0].contains("0777"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn a_hook_whose_exec_fails_is_a_spawn_error() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("bad-interpreter");
    std::fs::write(&hook, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = hook::run(hook_run(
        "bad-interpreter",
        &hook,
        &[],
        Duration::from_secs(5),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&err, HookError::Spawn { path, .. } if path == &hook),
        "{err:?}"
    );
}

/// Runs `/usr/bin/env` as a hook (through a symlink, which is followed) and
/// returns what it printed as name → value.
async fn hook_environment(env: HookEnv) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("show-env");
    std::os::unix::fs::symlink("/usr/bin/env", &hook).unwrap();
    let outcome = run_ok(HookRun {
        env,
        ..hook_run("show-env", &hook, &[], Duration::from_secs(10))
    })
    .await;
    assert!(outcome.success(), "{outcome:?}");
    outcome
        .output
        .lines()
        .map(|line| {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not NAME=value: {line:?}"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// The variables of `hooks/README.md`, in its order.
const ALWAYS: [&str; 8] = [
    "RVM_TARGET",
    "RVM_INCIDENT",
    "RVM_ATTEMPT",
    "RVM_STEP",
    "RVM_REASON",
    "RVM_HOST_ROOT",
    "PATH",
    "LANG",
];
const OPTIONAL: [&str; 4] = [
    "RVM_UNIT",
    "RVM_DEVICE",
    "RVM_USB_PORT",
    "RVM_DASHBOARD_URL",
];

#[tokio::test]
async fn a_hook_sees_exactly_the_documented_environment() {
    if !root() {
        return;
    }
    let names = |vars: &BTreeMap<String, String>| vars.keys().cloned().collect::<BTreeSet<_>>();
    let expected = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };

    let full = hook_environment(HookEnv {
        target: "camera".into(),
        unit: Some("camera-capture.service".into()),
        incident: "inc-7".into(),
        attempt: 2,
        step: 3,
        reason: "no frame for 30s: \"timeout\" $HOME `id`".into(),
        device: Some("/dev/v4l/by-id/usb-cam-video-index0".into()),
        usb_port: Some("2-1.4".into()),
        dashboard_url: Some("http://127.0.0.1:9184/".into()),
        host_root: "/tmp/fixture root".into(),
    })
    .await;
    assert_eq!(
        names(&full),
        expected(&[&ALWAYS[..], &OPTIONAL[..]].concat())
    );
    let value = |name: &str| full[name].as_str();
    assert_eq!(value("RVM_TARGET"), "camera");
    assert_eq!(value("RVM_UNIT"), "camera-capture.service");
    assert_eq!(value("RVM_INCIDENT"), "inc-7");
    assert_eq!(value("RVM_ATTEMPT"), "2");
    assert_eq!(value("RVM_STEP"), "3");
    assert_eq!(
        value("RVM_REASON"),
        "no frame for 30s: \"timeout\" $HOME `id`"
    );
    assert_eq!(value("RVM_DEVICE"), "/dev/v4l/by-id/usb-cam-video-index0");
    assert_eq!(value("RVM_USB_PORT"), "2-1.4");
    assert_eq!(value("RVM_DASHBOARD_URL"), "http://127.0.0.1:9184/");
    assert_eq!(value("RVM_HOST_ROOT"), "/tmp/fixture root");
    assert_eq!(value("PATH"), "/usr/sbin:/usr/bin:/sbin:/bin");
    assert_eq!(value("LANG"), "C.UTF-8");

    let plain = hook_environment(env()).await;
    assert_eq!(names(&plain), expected(&ALWAYS));
    assert_eq!(plain["RVM_ATTEMPT"], "1");
}

#[tokio::test]
async fn the_exit_code_decides_success_and_output_is_captured() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(30);

    let ok = write_hook(dir.path(), "ok", "echo did the thing\nexit 0");
    let outcome = run_ok(hook_run("ok", &ok, &[], timeout)).await;
    assert_eq!(outcome.status, HookStatus::Exited(0));
    assert!(outcome.success());
    assert_eq!(outcome.output, "did the thing\n");
    assert!(!outcome.truncated);

    let failing = write_hook(
        dir.path(),
        "failing",
        "echo to stdout\necho to stderr >&2\nprintf 'no newline at the end'\nexit 3",
    );
    let outcome = run_ok(hook_run("failing", &failing, &[], timeout)).await;
    assert_eq!(outcome.status, HookStatus::Exited(3));
    assert!(!outcome.success());
    let lines: BTreeSet<_> = outcome.output.lines().collect();
    assert_eq!(
        lines,
        BTreeSet::from(["to stdout", "to stderr", "no newline at the end"]),
        "{:?}",
        outcome.output
    );

    let crashing = write_hook(dir.path(), "crashing", "kill -KILL $$");
    let outcome = run_ok(hook_run("crashing", &crashing, &[], timeout)).await;
    assert_eq!(outcome.status, HookStatus::Signaled(9));
    assert!(!outcome.success());

    let binary = write_hook(dir.path(), "binary", r"printf '\377ok\n'");
    let outcome = run_ok(hook_run("binary", &binary, &[], timeout)).await;
    assert_eq!(outcome.output, "\u{FFFD}ok\n");

    // Far more than a pipe holds: the hook must not block on a full pipe.
    let chatty = write_hook(
        dir.path(),
        "chatty",
        r#"i=0
while [ $i -lt 20000 ]; do echo "line $i of a hook that talks too much"; i=$((i+1)); done
echo finished >&2"#,
    );
    let outcome = run_ok(HookRun {
        output_limit: 1000,
        ..hook_run("chatty", &chatty, &[], timeout)
    })
    .await;
    assert!(outcome.success(), "{:?}", outcome.status);
    assert!(outcome.truncated);
    assert!(outcome.output.len() <= 1000, "{}", outcome.output.len());
    assert!(
        outcome.output.starts_with("line 0 of a hook"),
        "{}",
        outcome.output
    );
}

#[test]
fn expand_args_fills_placeholders_and_keeps_each_argument_whole() {
    let env = HookEnv {
        target: "camera one".into(),
        unit: Some("camera-capture.service".into()),
        device: Some("/dev/v4l/by-id/usb cam".into()),
        usb_port: Some("2-1.4".into()),
        incident: "inc {target}".into(),
        ..env()
    };
    let args: Vec<String> = [
        "--device",
        "{device}",
        "--port={usb-port}",
        "--unit={unit}",
        "{target} in {incident}",
        "two words",
        "{target}{target}",
        "{unknown}",
        "{unclosed",
        "",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        hook::expand_args(&args, &env),
        [
            "--device",
            "/dev/v4l/by-id/usb cam",
            "--port=2-1.4",
            "--unit=camera-capture.service",
            // A filled-in value is not expanded again.
            "camera one in inc {target}",
            "two words",
            "camera onecamera one",
            "{unknown}",
            "{unclosed",
            "",
        ]
    );

    // Without a unit or device the placeholder stays (check rejects it); a
    // USB port never seen is empty.
    let args = [
        "{unit}".to_owned(),
        "{device}".to_owned(),
        "{usb-port}".to_owned(),
    ];
    assert_eq!(
        hook::expand_args(&args, &self::env()),
        ["{unit}", "{device}", ""]
    );
}

#[tokio::test]
async fn each_argument_reaches_the_hook_as_one_element() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hook = write_hook(dir.path(), "args", r#"for a in "$@"; do echo "[$a]"; done"#);
    let args = hook::expand_args(
        &["{target}", "two  words", "*", "$HOME", "a;b"].map(String::from),
        &HookEnv {
            target: "camera one".into(),
            ..env()
        },
    );
    let outcome = run_ok(HookRun {
        args,
        ..hook_run("args", &hook, &[], Duration::from_secs(10))
    })
    .await;
    assert_eq!(
        outcome.output,
        "[camera one]\n[two  words]\n[*]\n[$HOME]\n[a;b]\n"
    );
}

/// The fields of every event logged, as text.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields<'a>(&'a mut BTreeMap<String, String>);
        impl tracing::field::Visit for Fields<'_> {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
}

#[tokio::test]
async fn output_and_outcome_are_logged_with_the_target() {
    use tracing_subscriber::layer::SubscriberExt;
    if !root() {
        return;
    }
    let events = Events::default();
    // The test runtime runs on this thread, so a thread default sees the run.
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
    let dir = tempfile::tempdir().unwrap();
    let hook = write_hook(dir.path(), "talks", "echo hello\necho oops >&2\nexit 4");
    run_ok(HookRun {
        env: HookEnv {
            unit: Some("camera-capture.service".into()),
            ..env()
        },
        ..hook_run("talks", &hook, &[], Duration::from_secs(10))
    })
    .await;
    let events = events.0.lock().unwrap().clone();
    let line = |text: &str| {
        events
            .iter()
            .find(|e| e.get("message").map(String::as_str) == Some(text))
            .unwrap_or_else(|| panic!("no event {text:?} in {events:#?}"))
    };
    for (text, stream) in [("hello", "stdout"), ("oops", "stderr")] {
        let event = line(text);
        assert_eq!(event["stream"], stream);
        assert_eq!(event["target_name"], "camera");
        assert_eq!(event["hook"], "talks");
        assert_eq!(event["object_systemd_unit"], "camera-capture.service");
    }
    let end = events
        .iter()
        .find(|e| e.contains_key("exit_code"))
        .unwrap_or_else(|| panic!("no outcome event in {events:#?}"));
    assert_eq!(end["exit_code"], "4");
    assert!(end.contains_key("took_ms"));
    assert_eq!(end["object_systemd_unit"], "camera-capture.service");
    assert!(
        events
            .iter()
            .any(|e| e.contains_key("attempt") && e["message"].starts_with("running hook talks"))
    );
}
