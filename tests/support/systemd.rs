//! A private, real `systemd --user` manager — with its own socket-activated
//! D-Bus session bus and its own journald — for integration tests.
//!
//! The watchdog supervises systemd units over D-Bus and logs to journald, so
//! its integration tests drive the real programs instead of fakes (see
//! `/work/shared/TESTING.md`). The machines that run them (Debian 12, systemd
//! 252) do not boot with systemd as PID 1, so the harness builds a small
//! systemd world of its own:
//!
//! * **Namespace.** `systemd --user` only starts if `/run/systemd/system`
//!   exists. A wrapper script runs in a private mount namespace (`unshare
//!   --mount --propagation private`), where it mounts tmpfs over
//!   `/run/systemd` and `/run/log` and bind-mounts `$H/journal` on
//!   `/run/log/journal`; the host's `/run` is never modified.
//! * **journald.** The wrapper starts `/lib/systemd/systemd-journald`, which
//!   creates its sockets under the private `/run/systemd/journal`, with a
//!   drop-in that keeps the journal volatile, turns rate limiting off and
//!   does not import the kernel log. Units' stdout/stderr, native journal
//!   messages and the manager's own messages (`--log-target=journal`) all
//!   land in `$H/journal`, which [`PrivateSystemd::journal`] reads from the
//!   outside with `journalctl -D`.
//! * **Bus.** The manager itself runs `dbus.socket`/`dbus.service` (from
//!   Debian's `dbus-user-session`), exactly as the system manager does in
//!   production, so a test can kill the bus and watch systemd restart it and
//!   come back onto it.
//! * **cgroups.** Before anything else the wrapper moves itself into cgroups
//!   of its own (`rvmwd-test-<pid>-<nanos>` under the `name=systemd` v1
//!   hierarchy and under the cgroup2 hierarchy, whichever are mounted). A
//!   manager treats the cgroup it starts in as its root; two managers that
//!   both start in `/` (two test binaries running in parallel) share unit
//!   cgroup paths and kill each other's units. With one cgroup each they stay
//!   apart.
//! * **Teardown, by pid only.** A `static` is never dropped, so teardown
//!   cannot live in `Drop`. Instead the wrapper stays alive as the parent of
//!   journald and the manager and traps `TERM`/`INT`/`HUP`/`EXIT`: it
//!   sends SIGTERM to the manager (which stops its units and its bus) and
//!   waits for it (sending SIGKILL after 10 s), sends SIGTERM to its
//!   journald, sends SIGKILL by pid to anything still left in its own
//!   cgroups, removes those cgroups depth-first and deletes `$H`. The
//!   wrapper is told to do this
//!   - at normal process exit, by an `atexit` handler that sends it SIGTERM
//!     and waits until it has finished, so nothing is left behind when the
//!     test binary returns; and
//!   - when the test binary dies any other way (SIGKILL, abort), by the
//!     kernel: the wrapper is spawned with `PR_SET_PDEATHSIG = SIGTERM`. That
//!     signal fires when the *thread* that forked the child exits, not the
//!     process, so the wrapper is spawned from a dedicated thread that lives
//!     until the wrapper exits (it sits in `wait()` on it).
//!
//! One manager is shared by all tests of a test binary
//! ([`PrivateSystemd::shared`]; starting one takes about 0.2 s here), so
//! each test must use unit names of its own.
//!
//! Things a test should know:
//! * The manager's environment (and so the units') is minimal: `PATH`,
//!   `LANG=C.UTF-8`, `HOME=$H`, `XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME` and
//!   `DBUS_SESSION_BUS_ADDRESS`. Anything else a unit needs goes in its
//!   `Environment=`.
//! * journald takes a process's unit from its cgroup path, which here starts
//!   with the wrapper's `/rvmwd-test-…` rather than a slice it knows, so
//!   entries carry `_SYSTEMD_CGROUP=/rvmwd-test-…/app.slice/<unit>` (and only
//!   when the process was still alive as journald read it) but neither
//!   `_SYSTEMD_UNIT` nor `_SYSTEMD_USER_UNIT`. Match on `MESSAGE` or
//!   `SYSLOG_IDENTIFIER`, or on `USER_UNIT` for the manager's own messages
//!   about a unit.
//! * `MESSAGE` and other fields can be JSON strings or, for non-UTF-8 or
//!   binary data, arrays of bytes: read them with [`journal_field`].
//! * Killing the bus while other units change state stalls systemd 252 for
//!   90 s; see [`PrivateSystemd::bus_daemon_pid`].
//! * `org.freedesktop.systemd1` is on the session bus at
//!   [`PrivateSystemd::bus_address`]; `systemctl --user` (with
//!   [`PrivateSystemd::env`]) talks to the manager over its private socket
//!   and keeps working while the bus is down.
//!
//! Root is required (mount namespace, cgroups). Where the manager cannot
//! start, [`PrivateSystemd::shared`] returns `None` and tests skip — unless
//! `CI` is set, where it panics: on CI the systemd tests must fail loudly,
//! never pass by skipping.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::ffi::c_int;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// How long the manager may take to answer on the bus after it was spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long process exit waits for the wrapper to finish tearing down.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// `PATH` for the wrapper, journald, the manager and its units.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SYSTEMD: &str = "/usr/lib/systemd/systemd";
const JOURNALD: &str = "/lib/systemd/systemd-journald";
const BASH: &str = "/bin/bash";

/// The wrapper that owns one manager: run as
/// `manager.sh H CGROUP_NAME [HIERARCHY ORIGINAL_CGROUP]...` in a new session
/// and a private mount namespace. See the module documentation.
const WRAPPER_SCRIPT: &str = r#"#!/bin/bash
# Owns one private `systemd --user` manager for rvm-watchdog's integration
# tests; written and started by tests/support/systemd.rs, which explains why.
# Usage: manager.sh H CGROUP_NAME [HIERARCHY ORIGINAL_CGROUP]...
set -u
SD= JD= TORN_DOWN=
OWN=() ORIG=()
trap teardown EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

log() { printf 'wrapper[%s]: %s\n' "$$" "$*" >&2; }

# Succeeds once process $1 has exited (is gone or a zombie).
gone() {
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -z "$state" ] || [ "$state" = Z ]
}

# wait_gone PID STEPS: polls every 50 ms, at most STEPS times.
wait_gone() {
    local steps=$2
    until gone "$1"; do
        [ "$steps" -le 0 ] && return 1
        steps=$((steps - 1))
        sleep 0.05
    done
}

teardown() {
    [ -n "$TORN_DOWN" ] && return
    TORN_DOWN=1
    trap '' TERM INT HUP
    if [ -n "$SD" ]; then
        kill -TERM "$SD" 2>/dev/null
        if ! wait_gone "$SD" 200; then
            log "manager $SD still running 10 s after SIGTERM; sending SIGKILL"
            kill -KILL "$SD" 2>/dev/null
            wait_gone "$SD" 100
        fi
        wait "$SD" 2>/dev/null
    fi
    if [ -n "$JD" ]; then
        kill -TERM "$JD" 2>/dev/null
        wait_gone "$JD" 100 || kill -KILL "$JD" 2>/dev/null
        wait "$JD" 2>/dev/null
    fi
    # Leave our cgroups so that they can be removed.
    local i d p left steps=100
    for i in "${!ORIG[@]}"; do
        echo $$ >"${ORIG[$i]}/cgroup.procs" 2>/dev/null
    done
    # Whatever is still inside them was started by this wrapper.
    while :; do
        left=
        for d in "${OWN[@]}"; do
            [ -d "$d" ] || continue
            for p in $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null); do
                [ "$p" = $$ ] && continue
                left=1
                kill -KILL "$p" 2>/dev/null
            done
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
            [ -d "$d" ] && left=1
        done
        [ -z "$left" ] && break
        if [ "$steps" -le 0 ]; then
            log "could not remove cgroups ${OWN[*]}"
            break
        fi
        steps=$((steps - 1))
        sleep 0.05
    done
    umount /run/log/journal 2>/dev/null
    rm -rf "$H"
}

H=$1 NAME=$2
shift 2
while [ $# -ge 2 ]; do
    mkdir "$1/$NAME" || exit 10
    OWN+=("$1/$NAME")
    ORIG+=("$1$2")
    echo $$ >"$1/$NAME/cgroup.procs" || exit 11
    shift 2
done

mount -t tmpfs -o mode=0755 tmpfs /run/systemd || exit 12
mkdir -p /run/systemd/system /run/systemd/journal /run/systemd/journald.conf.d || exit 12
cat >/run/systemd/journald.conf.d/50-rvmwd-test.conf <<'EOF' || exit 12
[Journal]
Storage=volatile
RateLimitIntervalSec=0
ReadKMsg=no
ForwardToSyslog=no
ForwardToWall=no
EOF
mkdir -p /run/log || exit 13
mount -t tmpfs -o mode=0755 tmpfs /run/log || exit 13
mkdir /run/log/journal || exit 13
mount --bind "$H/journal" /run/log/journal || exit 13

/lib/systemd/systemd-journald </dev/null &
JD=$!
echo "$JD" >"$H/journald.pid"
steps=200
until [ -S /run/systemd/journal/stdout ] && [ -S /run/systemd/journal/socket ]; do
    gone "$JD" && { log "journald exited during start-up"; exit 14; }
    [ "$steps" -le 0 ] && { log "journald created no sockets within 10 s"; exit 14; }
    steps=$((steps - 1))
    sleep 0.05
done

/usr/lib/systemd/systemd --user --log-target=journal </dev/null &
SD=$!
echo "$SD" >"$H/manager.pid"
wait "$SD"
rc=$?
log "manager $SD exited with status $rc"
SD=
exit "$rc"
"#;

/// The process-wide manager, or why it could not start.
static SHARED: OnceLock<Result<PrivateSystemd, String>> = OnceLock::new();

/// A running private `systemd --user` manager with its bus and journald.
/// See the module documentation.
pub struct PrivateSystemd {
    home: PathBuf,
    cgroup_dirs: Vec<PathBuf>,
    wrapper_pid: u32,
    manager_pid: u32,
    journald_pid: u32,
    /// Set (to a description of its exit) once the wrapper has exited.
    wrapper_exit: Arc<OnceLock<String>>,
    startup_time: Duration,
}

impl PrivateSystemd {
    /// The manager shared by all tests of this test binary, started on first
    /// use and torn down when the process exits.
    ///
    /// If it cannot start, this panics with the reason when the environment
    /// variable `CI` is set (non-empty), and otherwise prints the reason to
    /// stderr and returns `None`; the test should then print a notice and
    /// return.
    pub fn shared() -> Option<&'static PrivateSystemd> {
        match SHARED.get_or_init(start) {
            Ok(manager) => Some(manager),
            Err(why) if ci() => panic!(
                "the private systemd --user manager did not start, and CI is set, \
                 so systemd tests fail instead of skipping: {why}"
            ),
            Err(why) => {
                eprintln!("private systemd --user manager unavailable: {why}");
                None
            }
        }
    }

    /// `$H`, the temporary directory that holds everything of this manager.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `$H/config/systemd/user`, where the manager loads units from.
    pub fn unit_dir(&self) -> PathBuf {
        self.home.join("config/systemd/user")
    }

    /// `$H/journal`, the private journald's storage (read it with
    /// `journalctl -D`).
    pub fn journal_dir(&self) -> PathBuf {
        self.home.join("journal")
    }

    /// `$H/xdg`, the manager's `XDG_RUNTIME_DIR`.
    pub fn runtime_dir(&self) -> PathBuf {
        self.home.join("xdg")
    }

    /// The session bus address, `unix:path=$H/xdg/bus`.
    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.runtime_dir().join("bus").display())
    }

    /// Environment for commands that talk to this manager or its bus:
    /// `DBUS_SESSION_BUS_ADDRESS` and `XDG_RUNTIME_DIR`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus_address()),
            (
                "XDG_RUNTIME_DIR".into(),
                self.runtime_dir().display().to_string(),
            ),
        ]
    }

    /// Runs `systemctl --user ARGS...` against this manager and returns its
    /// output, whatever its exit status. Panics only if it cannot be run.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        Command::new("systemctl")
            .arg("--user")
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run systemctl --user {args:?}: {e}"))
    }

    /// Writes `$H/config/systemd/user/NAME` and reloads the manager. Panics
    /// on failure.
    pub fn write_unit(&self, name: &str, contents: &str) {
        let path = self.unit_dir().join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write unit {}: {e}", path.display()));
        self.daemon_reload();
    }

    /// `systemctl --user daemon-reload`; returns once the reload is done.
    /// Panics on failure.
    pub fn daemon_reload(&self) {
        check("daemon-reload", &self.systemctl(&["daemon-reload"]));
    }

    /// The value of one property of a unit
    /// (`systemctl --user show -p PROPERTY --value UNIT`), without the
    /// trailing newline. Panics if systemctl fails.
    pub fn show(&self, unit: &str, property: &str) -> String {
        let output = self.systemctl(&["show", "-p", property, "--value", unit]);
        check(&format!("show -p {property} {unit}"), &output);
        String::from_utf8_lossy(&output.stdout)
            .trim_end_matches('\n')
            .to_string()
    }

    /// Polls [`show`](Self::show) until `property` of `unit` equals `want`.
    /// The error names the last value seen.
    pub fn wait_for_property(
        &self,
        unit: &str,
        property: &str,
        want: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut last = String::new();
        wait_until(&format!("{unit} {property}={want}"), timeout, || {
            last = self.show(unit, property);
            (last == want).then_some(())
        })
        .map_err(|e| format!("{e}; last value seen: {last:?}"))
    }

    /// All entries of the private journal, oldest first, as `journalctl -o
    /// json` writes them. journald may not have stored a message yet when
    /// this returns; use [`wait_for_journal`](Self::wait_for_journal) to wait
    /// for one. Panics if journalctl fails.
    pub fn journal(&self) -> Vec<Value> {
        let output = Command::new("journalctl")
            .arg("--directory")
            .arg(self.journal_dir())
            .args(["--output=json", "--no-pager", "--quiet"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run journalctl: {e}"));
        check("journalctl", &output);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("journalctl wrote bad JSON ({e}): {line}"))
            })
            .collect()
    }

    /// Polls the journal until at least one entry satisfies `pred` and
    /// returns all entries that do. The error says how many entries there
    /// were and shows the last messages.
    pub fn wait_for_journal(
        &self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Vec<Value>, String> {
        let mut last = Vec::new();
        wait_until("a matching journal entry", timeout, || {
            last = self.journal();
            let matching: Vec<Value> = last.iter().filter(|e| pred(e)).cloned().collect();
            (!matching.is_empty()).then_some(matching)
        })
        .map_err(|e| {
            let tail: Vec<String> = last
                .iter()
                .rev()
                .take(10)
                .rev()
                .map(|entry| journal_field(entry, "MESSAGE").unwrap_or_default())
                .collect();
            format!(
                "{e}; none of the {} entries matched; the last messages were {tail:#?}",
                last.len()
            )
        })
    }

    /// The unit's `MainPID` (0 when it has no main process). Panics if
    /// systemctl fails.
    pub fn main_pid(&self, unit: &str) -> u32 {
        let value = self.show(unit, "MainPID");
        value
            .parse()
            .unwrap_or_else(|e| panic!("MainPID of {unit} is {value:?}: {e}"))
    }

    /// The pid of the bus daemon (`MainPID` of `dbus.service`), for tests
    /// that kill the bus. After a kill, the next client that connects to the
    /// bus socket starts a new daemon and systemd gets back onto it.
    ///
    /// Kill the bus only while no unit of this manager changes state: if one
    /// does around the bus's death, systemd 252 blocks its whole main loop
    /// for 90 s (systemd/systemd#21177; seen here whenever a unit was killed
    /// within milliseconds of the bus), and every test talking to the manager
    /// meanwhile times out. Give such tests a test binary (and so a manager)
    /// of their own, or serialize them against the others.
    pub fn bus_daemon_pid(&self) -> u32 {
        self.main_pid("dbus.service")
    }

    /// The pid of the `systemd --user` manager.
    pub fn manager_pid(&self) -> u32 {
        self.manager_pid
    }

    /// The pid of the private journald.
    pub fn journald_pid(&self) -> u32 {
        self.journald_pid
    }

    /// The cgroup directories this manager runs in, one per hierarchy.
    pub fn cgroup_dirs(&self) -> &[PathBuf] {
        &self.cgroup_dirs
    }

    /// How long the manager took from spawn until it answered on the bus.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// Asks the wrapper to tear everything down and waits until it has.
    fn stop(&self) -> Result<(), String> {
        if self.wrapper_exit.get().is_none() {
            // It may exit on its own at any moment; an error here just means
            // it already has.
            let _ = kill(pid(self.wrapper_pid), Signal::SIGTERM);
        }
        wait_until("the systemd wrapper to tear down", TEARDOWN_TIMEOUT, || {
            self.wrapper_exit.get().map(|_| ())
        })
    }
}

/// Calls `f` until it returns `Some`, sleeping briefly (10 ms, growing to
/// 100 ms) between tries; gives up after `timeout` with an error that names
/// `what`. Use this instead of fixed sleeps.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = f() {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "timed out after {:?} waiting for {what}",
                now - start
            ));
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// One field of a journal entry as text: `journalctl -o json` writes a
/// field as a string, or as an array of bytes when it is not printable
/// UTF-8; for a field that occurs several times, the first value.
pub fn journal_field(entry: &Value, field: &str) -> Option<String> {
    fn text(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) if items.iter().all(Value::is_u64) => {
                let bytes: Vec<u8> = items
                    .iter()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            Value::Array(items) => items.first().and_then(text),
            _ => None,
        }
    }
    entry.get(field).and_then(text)
}

fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

fn pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).expect("pid fits in i32"))
}

/// Panics with systemctl's or journalctl's stderr if it failed.
fn check(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Starts the wrapper and waits until the manager answers on its bus.
fn start() -> Result<PrivateSystemd, String> {
    preflight()?;
    let hierarchies = cgroup_hierarchies()?;
    let home = make_home()?;
    let result = start_in(&home, &hierarchies);
    if result.is_err() && home.exists() {
        // The wrapper removes $H itself, except when it never ran.
        let _ = fs::remove_dir_all(&home);
    }
    result
}

fn preflight() -> Result<(), String> {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Err(format!(
            "needs root (for a private mount namespace and cgroups); euid is {euid}"
        ));
    }
    let needed = [SYSTEMD, JOURNALD, BASH, "/usr/lib/systemd/user/dbus.socket"];
    for path in needed {
        if !Path::new(path).exists() {
            return Err(format!("{path} is missing (systemd, dbus-user-session)"));
        }
    }
    for program in ["unshare", "systemctl", "journalctl", "busctl"] {
        if find_program(program).is_none() {
            return Err(format!("{program} is not installed"));
        }
    }
    Ok(())
}

fn find_program(name: &str) -> Option<PathBuf> {
    SYSTEM_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// The cgroup hierarchies to give the manager a cgroup in: the `name=systemd`
/// v1 hierarchy and the cgroup2 hierarchy, whichever are mounted, each with
/// this process's current cgroup in it (where the wrapper returns to before
/// removing its own).
fn cgroup_hierarchies() -> Result<Vec<(PathBuf, String)>, String> {
    let read =
        |path: &str| fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let mountinfo = read("/proc/self/mountinfo")?;
    let own = read("/proc/self/cgroup")?;
    let mut hierarchies = Vec::new();
    for line in mountinfo.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let mut right = right.split(' ');
        let (fs_type, super_options) = (right.next(), right.nth(1).unwrap_or(""));
        let controllers = match fs_type {
            Some("cgroup2") => "",
            Some("cgroup") if super_options.split(',').any(|o| o == "name=systemd") => {
                "name=systemd"
            }
            _ => continue,
        };
        // Lines are ID:CONTROLLERS:PATH; cgroup2's has no controllers.
        let current = own
            .lines()
            .find_map(|line| {
                let mut parts = line.splitn(3, ':').skip(1);
                let (found, path) = (parts.next()?, parts.next()?);
                (found == controllers).then(|| path.to_string())
            })
            .ok_or_else(|| format!("/proc/self/cgroup has no {controllers:?} line"))?;
        hierarchies.push((PathBuf::from(mount_point), current));
    }
    if hierarchies.is_empty() {
        return Err("no name=systemd or cgroup2 hierarchy is mounted".into());
    }
    Ok(hierarchies)
}

/// Creates `$H` with its subdirectories. Unix socket paths are limited to
/// 108 bytes, so a long `TMPDIR` is replaced by `/tmp`.
fn make_home() -> Result<PathBuf, String> {
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 40 {
        base = PathBuf::from("/tmp");
    }
    let home = tempfile::Builder::new()
        .prefix("rvmwd-sd-")
        .tempdir_in(&base)
        .map_err(|e| {
            format!(
                "cannot create a temporary directory in {}: {e}",
                base.display()
            )
        })?
        .keep();
    let result = (|| {
        for dir in ["xdg", "journal", "config/systemd/user"] {
            fs::create_dir_all(home.join(dir))?;
        }
        fs::set_permissions(home.join("xdg"), fs::Permissions::from_mode(0o700))?;
        let script = home.join("manager.sh");
        fs::write(&script, WRAPPER_SCRIPT)?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
    })();
    match result {
        Ok(()) => Ok(home),
        Err(e) => {
            let _ = fs::remove_dir_all(&home);
            Err(format!("cannot set up {}: {e}", home.display()))
        }
    }
}

fn start_in(home: &Path, hierarchies: &[(PathBuf, String)]) -> Result<PrivateSystemd, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let cgroup_name = format!("rvmwd-test-{}-{nanos}", std::process::id());
    let log_path = home.join("manager.log");
    let log = File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    // Kept open so that the log stays readable after the wrapper removed $H.
    let mut log_reader =
        File::open(&log_path).map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;

    let command = wrapper_command(home, &cgroup_name, hierarchies, log)?;
    let started = Instant::now();
    let (wrapper_pid, wrapper_exit) = spawn_wrapper(command)?;

    let bus_address = format!("unix:path={}", home.join("xdg/bus").display());
    let ready = wait_until(
        "org.freedesktop.systemd1 to answer on the bus with SystemState running",
        STARTUP_TIMEOUT,
        || {
            if let Some(exit) = wrapper_exit.get() {
                return Some(Err(format!("the wrapper exited early: {exit}")));
            }
            matches!(
                system_state(&bus_address).as_deref(),
                Some("running" | "degraded")
            )
            .then_some(Ok(()))
        },
    )
    .and_then(|r| r);
    let startup_time = started.elapsed();

    let manager = ready.and_then(|()| {
        Ok(PrivateSystemd {
            home: home.to_path_buf(),
            cgroup_dirs: hierarchies
                .iter()
                .map(|(mount_point, _)| mount_point.join(&cgroup_name))
                .collect(),
            wrapper_pid,
            manager_pid: read_pid(&home.join("manager.pid"))?,
            journald_pid: read_pid(&home.join("journald.pid"))?,
            wrapper_exit: Arc::clone(&wrapper_exit),
            startup_time,
        })
    });
    match manager {
        Ok(manager) => {
            register_teardown_at_exit();
            Ok(manager)
        }
        Err(why) => {
            let _ = kill(pid(wrapper_pid), Signal::SIGTERM);
            let stopped = wait_until("the wrapper to exit", TEARDOWN_TIMEOUT, || {
                wrapper_exit.get().cloned()
            });
            let mut log = String::new();
            let _ = log_reader.read_to_string(&mut log);
            let teardown = match stopped {
                Ok(_) => String::new(),
                Err(e) => format!("\nand its teardown failed: {e}"),
            };
            Err(format!("{why}; wrapper log:\n{log}{teardown}"))
        }
    }
}

/// `unshare --mount --propagation private bash $H/manager.sh ...` in a new
/// session, with a minimal environment, its output going to `log`, and
/// SIGTERM as its parent-death signal.
fn wrapper_command(
    home: &Path,
    cgroup_name: &str,
    hierarchies: &[(PathBuf, String)],
    log: File,
) -> Result<Command, String> {
    let mut command = Command::new(find_program("unshare").expect("checked in preflight"));
    command
        .args(["--mount", "--propagation", "private", BASH])
        .arg(home.join("manager.sh"))
        .arg(home)
        .arg(cgroup_name);
    for (mount_point, current) in hierarchies {
        command.arg(mount_point).arg(current);
    }
    let runtime_dir = home.join("xdg");
    command
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("LANG", "C.UTF-8")
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", runtime_dir.join("bus").display()),
        )
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|e| format!("cannot dup the log file: {e}"))?,
        )
        .stderr(log);
    // SAFETY: setsid(2) and prctl(2) are async-signal-safe system calls, and
    // the closure touches no memory shared with the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
            Ok(())
        });
    }
    Ok(command)
}

/// Spawns the wrapper from a thread of its own and returns its pid and a
/// cell that is set (to how it exited) once it has exited.
fn spawn_wrapper(mut command: Command) -> Result<(u32, Arc<OnceLock<String>>), String> {
    let wrapper_exit = Arc::new(OnceLock::new());
    let exit_cell = Arc::clone(&wrapper_exit);
    let (spawned_tx, spawned_rx) = mpsc::channel();
    // The wrapper's parent-death signal fires when this thread ends, so it
    // lives exactly as long as the wrapper: it waits for it to exit.
    thread::Builder::new()
        .name("private-systemd".into())
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = spawned_tx.send(Ok(child.id()));
                let exit = match child.wait() {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("unknown ({e})"),
                };
                let _ = exit_cell.set(exit);
            }
            Err(e) => {
                let _ = spawned_tx.send(Err(format!("cannot spawn the wrapper: {e}")));
            }
        })
        .map_err(|e| format!("cannot start the wrapper's thread: {e}"))?;
    let wrapper_pid = spawned_rx
        .recv()
        .map_err(|_| "the wrapper's thread ended without a word".to_string())??;
    Ok((wrapper_pid, wrapper_exit))
}

/// A pid the wrapper wrote to a file.
fn read_pid(path: &Path) -> Result<u32, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{} holds {text:?}: {e}", path.display()))
}

/// The manager's `SystemState` as read over the bus, if it answers.
fn system_state(bus_address: &str) -> Option<String> {
    let output = Command::new("busctl")
        .arg(format!("--address={bus_address}"))
        .args([
            "--timeout=2",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.DBus.Properties",
            "Get",
            "ss",
            "org.freedesktop.systemd1.Manager",
            "SystemState",
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    // Prints `v s "running"`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    output.status.success().then(|| {
        stdout
            .trim()
            .trim_start_matches("v s ")
            .trim_matches('"')
            .to_string()
    })
}

unsafe extern "C" {
    /// `atexit(3)` from the C library.
    fn atexit(callback: extern "C" fn()) -> c_int;
}

/// Runs at normal process exit (libtest returns from `main` or calls
/// `std::process::exit`): tears the shared manager down and waits for it, so
/// that nothing is left behind when the test binary has exited.
extern "C" fn teardown_at_exit() {
    if let Some(Ok(manager)) = SHARED.get()
        && let Err(e) = manager.stop()
    {
        eprintln!("private systemd manager in {}: {e}", manager.home.display());
    }
}

fn register_teardown_at_exit() {
    // SAFETY: registers a plain function; the C library calls it once, at exit.
    let rc = unsafe { atexit(teardown_at_exit) };
    if rc != 0 {
        eprintln!(
            "atexit failed ({rc}): the private systemd manager will be torn down \
             by its parent-death signal, after this process has exited"
        );
    }
}
