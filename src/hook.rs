//! Recovery hooks: executable files that a policy names by file name, and
//! the runner that executes them (the contract is `hooks/README.md`).
//!
//! Hooks run as root, so only files an attacker could not have written are
//! accepted: a regular file, owned by root, executable, and neither group-
//! nor world-writable. Hooks come from directories only — never from an API
//! call or alert text. The search path is `[daemon] hooks-dirs`; the first
//! directory holding the name wins, so a site hook overrides a shipped one.
//!
//! Words used here:
//!
//! - a **hook run** ([`HookRun`]) is one execution of a hook for one attempt
//!   of one ladder step: the file, its expanded arguments, its environment
//!   ([`HookEnv`]), its timeout and how much of its output is kept;
//! - the hook's **process group** is the group it is started in (its own):
//!   the hook and every child it starts, unless a child leaves the group on
//!   purpose. Past the timeout, and after the hook exits, the whole group is
//!   killed, so a hook never leaves processes behind;
//! - the **outcome** ([`HookOutcome`]) is how it ended ([`HookStatus`]) and
//!   what it printed; only exit code 0 is success.
//!
//! The runner never uses a shell: each argument is one `argv` element, and
//! the environment is exactly the documented variables, nothing inherited.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Why a hook cannot be used or run.
///
/// None of these is fixed by retrying alone: a refused file stays refused
/// until someone fixes its owner or mode, and a spawn failure usually means
/// a broken file (a missing interpreter on the `#!` line). A hook that ran
/// and failed is not an error: see [`HookOutcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The name has a path separator or is otherwise not a plain file name.
    #[error("hook name \"{0}\" must be a plain file name, without '/'")]
    BadName(String),
    /// No directory of the search path holds it.
    #[error("hook \"{name}\" not found in {searched}")]
    NotFound {
        /// Hook name.
        name: String,
        /// The directories searched, for the message.
        searched: String,
    },
    /// The file is there but unsafe or unusable.
    #[error("hook {path} is refused: {why}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The file passed the checks but could not be executed (the `exec`
    /// failed, e.g. its `#!` interpreter does not exist), or the watchdog
    /// lost track of the process it started.
    #[error("cannot run hook {path}: {error}")]
    Spawn {
        /// The file.
        path: PathBuf,
        /// What failed, from the operating system.
        error: String,
    },
}

/// Finds `name` in `dirs` and checks that it is safe to run as root.
pub fn resolve(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, HookError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(HookError::BadName(name.to_owned()));
    }
    for dir in dirs {
        let path = dir.join(name);
        if path.symlink_metadata().is_ok() {
            check_file(&path)?;
            return Ok(path);
        }
    }
    let searched = if dirs.is_empty() {
        "no hooks directory (set [daemon] hooks-dirs)".to_owned()
    } else {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(HookError::NotFound {
        name: name.to_owned(),
        searched,
    })
}

/// Checks that an existing hook file is safe to run as root: the file it
/// is (a symlink is judged where it leads, and named so) and every
/// directory above that file, up to `/`.
pub fn check_file(path: &Path) -> Result<(), HookError> {
    // Follow a symlink, but judge, and name, the file it points to.
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let refused = |why: String| HookError::Refused {
        path: if real == path {
            path.to_owned()
        } else {
            PathBuf::from(format!("{} (-> {})", path.display(), real.display()))
        },
        why,
    };
    let meta = std::fs::metadata(&real).map_err(|e| refused(format!("cannot read it ({e})")))?;
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    let mode = meta.permissions().mode();
    if meta.uid() != 0 {
        return Err(refused(format!(
            "owned by uid {}, not root (hooks run as root)",
            meta.uid()
        )));
    }
    if mode & 0o022 != 0 {
        return Err(refused(format!(
            "mode {:04o} lets group or others write it (fix: chmod go-w {})",
            mode & 0o7777,
            real.display()
        )));
    }
    if mode & 0o100 == 0 {
        return Err(refused(format!(
            "not executable (mode {:04o}; fix: chmod 755 {})",
            mode & 0o7777,
            real.display()
        )));
    }
    crate::trust::trusted_parents(&real).map_err(refused)?;
    Ok(())
}

/// The output a hook run keeps and logs, as `hooks/README.md` promises:
/// the [`HookRun::output_limit`] the daemon uses.
pub const OUTPUT_LIMIT: usize = 16 * 1024;

/// `PATH` of every hook run: the system directories, nothing from the
/// watchdog's own environment.
const HOOK_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a hook's process group has, past its timeout, between `SIGTERM`
/// and `SIGKILL`.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// How long output is still read once the hook's process group is dead. A
/// process that left the group (`setsid`) may hold the pipes open forever;
/// its output is not waited for past this.
const DRAIN: Duration = Duration::from_secs(2);

/// A longer line is split: one log record holds at most this many bytes.
const MAX_LINE: usize = 4096;

/// How often the group is looked at while it is given its grace.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// The documented environment of a hook run (`hooks/README.md`): what it is
/// run for. Each field becomes one `RVM_*` variable; some also fill an
/// argument placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEnv {
    /// The target's name: `RVM_TARGET`, `{target}`.
    pub target: String,
    /// The target's systemd unit, for unit targets: `RVM_UNIT`, `{unit}`.
    pub unit: Option<String>,
    /// The incident's id (text to log, not to parse): `RVM_INCIDENT`,
    /// `{incident}`.
    pub incident: String,
    /// Which attempt of this step this is, counted from 1: `RVM_ATTEMPT`.
    pub attempt: u32,
    /// Which step of the ladder this is, counted from 1: `RVM_STEP`.
    pub step: u32,
    /// Why the target is being recovered, one line for people:
    /// `RVM_REASON`. May carry probe output; hooks treat it as data.
    pub reason: String,
    /// The `device` of the target's camera probe, when it has one:
    /// `RVM_DEVICE`, `{device}`.
    pub device: Option<String>,
    /// The USB port (e.g. `2-1.4`) the target's camera is, or was last
    /// seen, on: `RVM_USB_PORT`, `{usb-port}`.
    pub usb_port: Option<String>,
    /// The address of this watchdog's dashboard, when it is served:
    /// `RVM_DASHBOARD_URL`.
    pub dashboard_url: Option<String>,
    /// `[daemon] host-root`: `RVM_HOST_ROOT`.
    pub host_root: PathBuf,
}

impl HookEnv {
    /// The hook's whole environment, in the order of `hooks/README.md`.
    fn variables(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let text = |s: &str| without_nul(s).into();
        let mut vars = vec![("RVM_TARGET", text(&self.target))];
        if let Some(unit) = &self.unit {
            vars.push(("RVM_UNIT", text(unit)));
        }
        vars.push(("RVM_INCIDENT", text(&self.incident)));
        vars.push(("RVM_ATTEMPT", self.attempt.to_string().into()));
        vars.push(("RVM_STEP", self.step.to_string().into()));
        vars.push(("RVM_REASON", text(&self.reason)));
        if let Some(device) = &self.device {
            vars.push(("RVM_DEVICE", text(device)));
        }
        if let Some(port) = &self.usb_port {
            vars.push(("RVM_USB_PORT", text(port)));
        }
        if let Some(url) = &self.dashboard_url {
            vars.push(("RVM_DASHBOARD_URL", text(url)));
        }
        vars.push(("RVM_HOST_ROOT", self.host_root.clone().into_os_string()));
        vars.push(("PATH", HOOK_PATH.into()));
        vars.push(("LANG", "C.UTF-8".into()));
        vars
    }
}

/// A NUL cannot be passed in `argv` or the environment; probe text in
/// `RVM_REASON` may hold one. It becomes U+FFFD rather than failing the run.
fn without_nul(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// Fills the `{target}`, `{unit}`, `{device}`, `{usb-port}` and `{incident}` placeholders
/// of a step's `args` from `env`.
///
/// Each argument stays exactly one element, whatever the values hold
/// (spaces, quotes, braces): there is no shell and no re-expansion of a
/// filled-in value. A placeholder without a value (`{unit}` of a target
/// without a unit), an unknown one or an unclosed `{` is left as written;
/// `check` has already rejected such a policy.
pub fn expand_args(args: &[String], env: &HookEnv) -> Vec<String> {
    args.iter().map(|arg| expand_arg(arg, env)).collect()
}

/// One argument; scans like the validator's `check_placeholders`.
fn expand_arg(arg: &str, env: &HookEnv) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        let value = match &rest[open + 1..close] {
            "target" => Some(env.target.as_str()),
            "unit" => env.unit.as_deref(),
            "device" => env.device.as_deref(),
            // Unknown until the camera probe saw the camera once: empty.
            "usb-port" => Some(env.usb_port.as_deref().unwrap_or("")),
            "incident" => Some(env.incident.as_str()),
            _ => None,
        };
        out.push_str(&rest[..open]);
        out.push_str(value.unwrap_or(&rest[open..=close]));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// One execution of a hook: for one attempt of one ladder step.
#[derive(Debug, Clone)]
pub struct HookRun<'a> {
    /// The hook's name as the policy gives it, for logs.
    pub name: &'a str,
    /// The file, as [`resolve`] found it: an absolute path.
    pub path: &'a Path,
    /// Its arguments, placeholders already filled in ([`expand_args`]).
    pub args: Vec<String>,
    /// What it is run for; becomes its environment.
    pub env: HookEnv,
    /// The step's `timeout`: past it the hook's process group is killed.
    pub timeout: Duration,
    /// How many bytes of output are kept and logged ([`OUTPUT_LIMIT`]); the
    /// rest is read and dropped, so the hook never blocks on a full pipe.
    pub output_limit: usize,
}

/// How a hook run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStatus {
    /// It exited with this code; only 0 is success.
    Exited(i32),
    /// It was killed by this signal, and not by the runner's timeout (it
    /// crashed, or someone else killed it).
    Signaled(i32),
    /// It was still running at its timeout, and its process group was
    /// killed.
    TimedOut,
}

impl std::fmt::Display for HookStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Exited(code) => write!(f, "exit code {code}"),
            Self::Signaled(signal) => write!(f, "killed by signal {}", signal_name(signal)),
            Self::TimedOut => f.write_str("timed out"),
        }
    }
}

/// `SIGKILL` for 9; the number when it is not a known signal.
fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.as_str().to_owned())
}

/// What a hook run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    /// How it ended.
    pub status: HookStatus,
    /// Standard output and standard error, interleaved line by line as they
    /// were read, each line ending in `\n`; invalid UTF-8 replaced. At most
    /// [`HookRun::output_limit`] bytes.
    pub output: String,
    /// Whether the hook printed more than was kept.
    pub truncated: bool,
    /// From start to end, including the timeout's grace.
    pub took: Duration,
}

impl HookOutcome {
    /// Whether the hook did what it is for: it exited with code 0. Being
    /// killed, timing out or any other code is failure.
    pub fn success(&self) -> bool {
        self.status == HookStatus::Exited(0)
    }
}

/// Runs a hook to its end and returns how it ended; a hook that fails is an
/// `Ok` outcome that is not [`HookOutcome::success`].
///
/// The file is checked again first ([`check_file`]): it may have changed
/// since the configuration was loaded. The hook runs without a shell, with
/// exactly the documented environment, standard input from `/dev/null`, in
/// `/`, in a process group of its own. Every line it prints is logged with
/// the target's name, up to `output_limit` bytes. Past its timeout the group
/// gets `SIGTERM`, then after 2 s `SIGKILL`; after a normal exit, whatever is
/// left of the group gets `SIGKILL`. When `run` returns, nothing of the
/// group is left, except a process that left the group on purpose.
///
/// If the returned future is dropped before it ends, the group is killed.
pub async fn run(run: HookRun<'_>) -> Result<HookOutcome, HookError> {
    let HookRun {
        name,
        path,
        args,
        env,
        timeout,
        output_limit,
    } = run;
    if !path.is_absolute() {
        // A bare name would be looked up in PATH by exec.
        return Err(HookError::Refused {
            path: path.to_owned(),
            why: "not an absolute path".into(),
        });
    }
    check_file(path)?;
    let unit = env.unit.as_deref();
    info!(
        target_name = %env.target,
        object_systemd_unit = unit,
        hook = name,
        incident = %env.incident,
        attempt = env.attempt,
        step = env.step,
        timeout_ms = millis(timeout),
        "running hook {name} ({}) for {}: step {}, attempt {}",
        path.display(),
        env.target,
        env.step,
        env.attempt
    );
    let started = Instant::now();
    let mut child = spawn(path, &args, &env).await?;
    let spawn_error = |error: String| HookError::Spawn {
        path: path.to_owned(),
        error,
    };
    let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        return Err(spawn_error(
            "the process has no id right after it started".into(),
        ));
    };
    // Declared after `child`, so dropped before it: the group is killed
    // while its leader is still unreaped and its id cannot be reused.
    let mut group = ProcessGroup {
        id: Pid::from_raw(pid),
        armed: true,
    };
    let mut stdout = Stream::new("stdout", child.stdout.take());
    let mut stderr = Stream::new("stderr", child.stderr.take());
    let mut output = Output::new(&env, name, output_limit);

    let ended = {
        let supervise = supervise(&mut child, &group, timeout);
        tokio::pin!(supervise);
        loop {
            tokio::select! {
                ended = &mut supervise => break ended,
                line = stdout.next_line(), if stdout.is_open() => output.push(line),
                line = stderr.next_line(), if stderr.is_open() => output.push(line),
            }
        }
    };
    let ended = ended.map_err(|e| spawn_error(format!("while waiting for it to end: {e}")))?;
    // The whole group has been killed and the leader reaped.
    group.armed = false;

    // What the dead group wrote is still in the pipes; read it to the end.
    let drain_until = Instant::now() + DRAIN;
    while stdout.is_open() || stderr.is_open() {
        tokio::select! {
            line = stdout.next_line(), if stdout.is_open() => output.push(line),
            line = stderr.next_line(), if stderr.is_open() => output.push(line),
            () = tokio::time::sleep_until(drain_until) => {
                debug!(
                    target_name = %env.target,
                    object_systemd_unit = unit,
                    hook = name,
                    "hook {name}: its output is still open after its process group was killed \
                     (a process left the group); not reading more"
                );
                break;
            }
        }
    }
    let took = started.elapsed();
    output.finish();

    if ended.left_behind {
        info!(
            target_name = %env.target,
            object_systemd_unit = unit,
            hook = name,
            incident = %env.incident,
            "hook {name} exited but left processes in its group; they were killed"
        );
    }
    log_outcome(name, &env, ended.status, timeout, took);
    Ok(HookOutcome {
        status: ended.status,
        output: output.kept,
        truncated: output.truncated,
        took,
    })
}

/// Starts the hook, exactly as documented.
async fn spawn(path: &Path, args: &[String], env: &HookEnv) -> Result<Child, HookError> {
    let mut command = Command::new(path);
    command
        .args(args.iter().map(|a| without_nul(a)))
        .env_clear()
        .envs(env.variables())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir("/")
        .process_group(0)
        .kill_on_drop(true);
    // ETXTBSY: the file is open for writing somewhere right now: being
    // installed, or, in a threaded process, a write descriptor inherited by a
    // child between its fork and exec. Both pass within moments.
    let mut busy = 0;
    loop {
        match command.spawn() {
            Ok(child) => return Ok(child),
            Err(e) if e.raw_os_error() == Some(Errno::ETXTBSY as i32) && busy < 5 => {
                busy += 1;
                tokio::time::sleep(Duration::from_millis(20 * busy)).await;
            }
            Err(e) => {
                return Err(HookError::Spawn {
                    path: path.to_owned(),
                    error: e.to_string(),
                });
            }
        }
    }
}

/// How the hook's process ended, once its whole group is dead.
struct Ended {
    status: HookStatus,
    /// The hook exited normally but processes of its group were still there.
    left_behind: bool,
}

/// Waits for the hook to end or time out, then kills what is left of its
/// group. Returns once the leader is reaped. Cancel safe: dropping it leaves
/// the group to [`ProcessGroup`]'s drop.
async fn supervise(
    child: &mut Child,
    group: &ProcessGroup,
    timeout: Duration,
) -> io::Result<Ended> {
    if let Ok(status) = tokio::time::timeout(timeout, child.wait()).await {
        let status = status?;
        // The leader is reaped, so the group id names a group only while a
        // member is left; a new process could take that id only once none
        // is, and only by making itself a group leader within these moments.
        let left_behind = group.signal(Signal::SIGKILL);
        return Ok(Ended {
            status: exit_status(status),
            left_behind,
        });
    }
    group.signal(Signal::SIGTERM);
    let grace = async {
        child.wait().await?;
        // Zombies count as members until they are reaped by init, so this may
        // wait the whole grace where init reaps slowly; it is bounded.
        while group.exists() {
            tokio::time::sleep(GROUP_POLL).await;
        }
        io::Result::Ok(())
    };
    let graceful = tokio::time::timeout(TERM_GRACE, grace).await;
    group.signal(Signal::SIGKILL);
    let waited = child.wait().await;
    if let Ok(Err(e)) = graceful {
        return Err(e);
    }
    waited?;
    Ok(Ended {
        status: HookStatus::TimedOut,
        left_behind: false,
    })
}

fn exit_status(status: ExitStatus) -> HookStatus {
    match status.code() {
        Some(code) => HookStatus::Exited(code),
        None => HookStatus::Signaled(status.signal().unwrap_or(0)),
    }
}

/// The hook's process group; killed with `SIGKILL` when dropped while armed
/// (the run was cancelled).
struct ProcessGroup {
    id: Pid,
    armed: bool,
}

impl ProcessGroup {
    /// Sends `signal` to every member; whether there was one.
    fn signal(&self, signal: Signal) -> bool {
        match killpg(self.id, signal) {
            Ok(()) => true,
            Err(Errno::ESRCH) => false,
            Err(e) => {
                warn!(
                    process_group = self.id.as_raw(),
                    "cannot send {signal} to hook process group {}: {e}", self.id
                );
                false
            }
        }
    }

    /// Whether any process (zombies included) is still in the group.
    fn exists(&self) -> bool {
        killpg(self.id, None) != Err(Errno::ESRCH)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            let _ = killpg(self.id, Signal::SIGKILL);
        }
    }
}

/// One of the hook's output pipes, read line by line.
struct Stream<R> {
    name: &'static str,
    /// `None` once at its end (or broken).
    reader: Option<BufReader<R>>,
    /// The line read so far; kept across cancelled reads.
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Stream<R> {
    fn new(name: &'static str, pipe: Option<R>) -> Self {
        Self {
            name,
            reader: pipe.map(BufReader::new),
            line: Vec::new(),
        }
    }

    fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// The next line, without its `\n`; a line longer than [`MAX_LINE`]
    /// comes in pieces. `None` at the end of the stream, which closes it.
    ///
    /// Cancel safe: bytes are moved into `self.line` only after an await
    /// has returned, so a cancelled call loses nothing.
    async fn next_line(&mut self) -> Option<(&'static str, Vec<u8>)> {
        let reader = self.reader.as_mut()?;
        loop {
            let available = match reader.fill_buf().await {
                Ok(available) => available,
                Err(e) => {
                    debug!("cannot read a hook's {}: {e}", self.name);
                    &[]
                }
            };
            if available.is_empty() {
                self.reader = None;
                if self.line.is_empty() {
                    return None;
                }
                return Some((self.name, std::mem::take(&mut self.line)));
            }
            let room = MAX_LINE - self.line.len();
            let chunk = &available[..available.len().min(room)];
            if let Some(newline) = chunk.iter().position(|&b| b == b'\n') {
                self.line.extend_from_slice(&chunk[..newline]);
                reader.consume(newline + 1);
                return Some((self.name, std::mem::take(&mut self.line)));
            }
            let taken = chunk.len();
            self.line.extend_from_slice(chunk);
            reader.consume(taken);
            if self.line.len() >= MAX_LINE {
                return Some((self.name, std::mem::take(&mut self.line)));
            }
        }
    }
}

/// The output kept of a hook run, and its logging.
struct Output<'a> {
    env: &'a HookEnv,
    hook: &'a str,
    limit: usize,
    kept: String,
    truncated: bool,
    /// Bytes read but neither kept nor logged.
    dropped: usize,
}

impl<'a> Output<'a> {
    fn new(env: &'a HookEnv, hook: &'a str, limit: usize) -> Self {
        Self {
            env,
            hook,
            limit,
            kept: String::new(),
            truncated: false,
            dropped: 0,
        }
    }

    /// Logs and keeps one line, while under the limit. Past the limit lines
    /// are dropped unlogged too: a hook that prints without end must not
    /// flood the journal (and use up journald's rate limit for the
    /// watchdog's own records).
    fn push(&mut self, line: Option<(&'static str, Vec<u8>)>) {
        let Some((stream, bytes)) = line else {
            return;
        };
        if self.truncated {
            self.dropped += bytes.len() + 1;
            return;
        }
        let text = String::from_utf8_lossy(&bytes);
        let line = text.strip_suffix('\r').unwrap_or(&text);
        info!(
            target_name = %self.env.target,
            object_systemd_unit = self.env.unit.as_deref(),
            hook = self.hook,
            incident = %self.env.incident,
            stream,
            "{line}"
        );
        let room = self.limit - self.kept.len();
        if line.len() < room {
            self.kept.push_str(line);
            self.kept.push('\n');
        } else {
            let cut = line.floor_char_boundary(room);
            self.kept.push_str(&line[..cut]);
            self.truncated = true;
            self.dropped += line.len() - cut + 1;
        }
    }

    /// Says how much was dropped, if anything.
    fn finish(&self) {
        if self.truncated {
            warn!(
                target_name = %self.env.target,
                object_systemd_unit = self.env.unit.as_deref(),
                hook = self.hook,
                incident = %self.env.incident,
                output_limit = self.limit,
                dropped_bytes = self.dropped,
                "hook {} printed more than {} bytes; the rest ({} bytes) was neither kept nor logged",
                self.hook,
                self.limit,
                self.dropped
            );
        }
    }
}

/// The run's last record: `info` on success, `warn` on failure.
fn log_outcome(name: &str, env: &HookEnv, status: HookStatus, timeout: Duration, took: Duration) {
    let took_ms = millis(took);
    let unit = env.unit.as_deref();
    match status {
        HookStatus::Exited(0) => info!(
            target_name = %env.target,
            object_systemd_unit = unit,
            hook = name,
            incident = %env.incident,
            attempt = env.attempt,
            step = env.step,
            exit_code = 0,
            took_ms,
            "hook {name} succeeded in {took_ms} ms"
        ),
        HookStatus::Exited(code) => warn!(
            target_name = %env.target,
            object_systemd_unit = unit,
            hook = name,
            incident = %env.incident,
            attempt = env.attempt,
            step = env.step,
            exit_code = code,
            took_ms,
            "hook {name} failed with exit code {code} after {took_ms} ms"
        ),
        HookStatus::Signaled(signal) => warn!(
            target_name = %env.target,
            object_systemd_unit = unit,
            hook = name,
            incident = %env.incident,
            attempt = env.attempt,
            step = env.step,
            signal,
            took_ms,
            "hook {name} failed: killed by signal {} after {took_ms} ms",
            signal_name(signal)
        ),
        HookStatus::TimedOut => warn!(
            target_name = %env.target,
            object_systemd_unit = unit,
            hook = name,
            incident = %env.incident,
            attempt = env.attempt,
            step = env.step,
            timeout_ms = millis(timeout),
            took_ms,
            "hook {name} failed: still running after its timeout of {}; its process group was killed",
            humantime::format_duration(timeout)
        ),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
