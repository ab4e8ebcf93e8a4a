//! Process targets: plain processes the watchdog runs itself, for services
//! that are not systemd units (helpers an edge client used to start, a
//! development machine without systemd).
//!
//! Each **process target** has a task that owns its child. The child runs
//! in a session and process group of its own; the watchdog is a child
//! subreaper, so grandchildren that outlive their parent are re-parented to
//! it rather than to PID 1 and cannot escape. **Stopping** sends the stop
//! signal (and SIGCONT, so a stopped process can act on it) to the group and
//! to every descendant, waits `stop-timeout`, then SIGKILLs whatever is
//! left: afterwards no process of the target remains. A child that is
//! stopped (`T`) or in uninterruptible sleep (`D`) longer than its `process`
//! probe's `stuck-for` is reported **stuck**. Each stdout and stderr line
//! goes to the journal with the target's name. Restarts are the recovery
//! engine's decision, like a unit's.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::{AdoptBy, AdoptSpec, Check, ProcessSpec, Target, TargetKind};

/// What a process target is doing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum ProcessState {
    /// Running.
    Running {
        /// Its pid.
        pid: u32,
    },
    /// It exited with this code.
    Exited {
        /// Exit code.
        code: i32,
    },
    /// A signal killed it.
    Killed {
        /// Signal number.
        signal: i32,
    },
    /// Stopped or in uninterruptible sleep too long.
    Stuck {
        /// Its pid.
        pid: u32,
        /// `T` (stopped) or `D` (uninterruptible sleep).
        state: char,
        /// For how long, in seconds.
        secs: u64,
    },
    /// It could not be started.
    SpawnFailed {
        /// Why.
        error: String,
    },
    /// Stopped by the watchdog.
    Stopped,
    /// An adopted process that cannot be found.
    Absent {
        /// How it was looked for.
        reason: String,
    },
}

/// A process target's state changed.
#[derive(Debug, Clone)]
pub struct ProcessEvent {
    /// The target.
    pub target: String,
    /// Which start of the process this is about (counts up from 1), so a
    /// late event about an earlier process is told apart.
    pub spawn: u64,
    /// Its state now.
    pub state: ProcessState,
}

enum Request {
    Restart(oneshot::Sender<Result<(u64, String), String>>),
    Signal(Signal, oneshot::Sender<Result<String, String>>),
}

/// A handle to one process target's task. Cheap to clone.
#[derive(Clone)]
pub struct ProcessHandle {
    requests: mpsc::Sender<Request>,
    stop: CancellationToken,
}

impl ProcessHandle {
    /// Starts the task for `target` (a `[target.process]` target), which
    /// starts the process at once.
    /// The task is tracked by `tasks`, so the daemon can wait for every
    /// process to be stopped before it exits.
    pub fn spawn(
        target: &Target,
        events: mpsc::Sender<ProcessEvent>,
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
    ) -> Option<ProcessHandle> {
        let TargetKind::Process(spec) = &target.kind else {
            return None;
        };
        let (name, spec) = (target.name.clone(), spec.clone());
        Some(Self::start_task(
            target,
            shutdown,
            tasks,
            |stuck_for, rx, stop| run(name, spec, stuck_for, events, rx, stop),
        ))
    }

    /// Stops the process and restarts it; returns once the new one runs,
    /// with its spawn number (see [`ProcessEvent::spawn`]).
    pub async fn restart(&self) -> Result<(u64, String), String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Restart(tx))
            .await
            .map_err(|_| "the process target has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the process target has stopped".to_owned())?
    }

    /// Sends a signal to the process.
    pub async fn signal(&self, signal: Signal) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Signal(signal, tx))
            .await
            .map_err(|_| "the process target has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the process target has stopped".to_owned())?
    }

    /// Stops the process for good (the target was removed, or the daemon stops).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl ProcessHandle {
    /// Starts watching an adopted process (`[target.adopt]`): found by its
    /// pid file or by text in its command line, checked every second, and
    /// signalled only when the policy allows it.
    pub fn adopt(
        target: &Target,
        events: mpsc::Sender<ProcessEvent>,
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
    ) -> Option<ProcessHandle> {
        let TargetKind::Adopted(spec) = &target.kind else {
            return None;
        };
        let (name, spec) = (target.name.clone(), spec.clone());
        Some(Self::start_task(
            target,
            shutdown,
            tasks,
            |stuck_for, rx, stop| watch_adopted(name, spec, stuck_for, events, rx, stop),
        ))
    }

    /// Starts a target's task (tracked, stopped with `shutdown`) and
    /// returns the handle that talks to it.
    fn start_task<F>(
        target: &Target,
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
        task: impl FnOnce(Option<Duration>, mpsc::Receiver<Request>, CancellationToken) -> F,
    ) -> ProcessHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (requests, rx) = mpsc::channel(8);
        let stop = shutdown.child_token();
        tasks.spawn(task(stuck_limit(target), rx, stop.clone()));
        ProcessHandle { requests, stop }
    }
}

/// Finds an adopted process now.
fn find_adopted(by: &AdoptBy) -> Result<u32, String> {
    let me = std::process::id();
    match by {
        AdoptBy::Pidfile(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let pid: u32 = text
                .trim()
                .parse()
                .map_err(|_| format!("{} does not hold a pid", path.display()))?;
            match proc_state(pid) {
                Some(s) if s != 'Z' && s != 'X' => Ok(pid),
                _ => Err(format!("pid {pid} from {} is not running", path.display())),
            }
        }
        AdoptBy::Match(text) => {
            let mut found: Vec<u32> = std::fs::read_dir("/proc")
                .map_err(|e| format!("cannot read /proc: {e}"))?
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| *pid != me)
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|raw| {
                            let line: Vec<String> = raw
                                .split(|b| *b == 0)
                                .filter(|a| !a.is_empty())
                                .map(|a| String::from_utf8_lossy(a).into_owned())
                                .collect();
                            line.join(" ").contains(text.as_str())
                        })
                        .unwrap_or(false)
                })
                .filter(|pid| proc_state(*pid).is_some_and(|s| s != 'Z' && s != 'X'))
                .collect();
            found.sort_unstable();
            found
                .first()
                .copied()
                .ok_or_else(|| format!("no process's command line holds \"{text}\""))
        }
    }
}

async fn watch_adopted(
    name: String,
    spec: AdoptSpec,
    stuck_for: Option<Duration>,
    events: mpsc::Sender<ProcessEvent>,
    mut requests: mpsc::Receiver<Request>,
    stop: CancellationToken,
) {
    let mut last: Option<ProcessState> = None;
    let mut spawn = 0;
    let mut stuck_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            request = requests.recv() => match request {
                None => return,
                Some(Request::Restart(reply)) => {
                    let _ = reply.send(Err(format!("{name} is adopted: the watchdog did not start it and cannot restart it")));
                }
                Some(Request::Signal(signal, reply)) => {
                    let answer = if !spec.may_signal {
                        Err(format!("{name} is adopted without may-signal: the watchdog does not signal it"))
                    } else {
                        match find_adopted(&spec.by) {
                            Ok(pid) => kill(Pid::from_raw(pid as i32), signal)
                                .map(|()| format!("sent {signal} to {name} (pid {pid})"))
                                .map_err(|e| format!("cannot signal {name}: {e}")),
                            Err(e) => Err(e),
                        }
                    };
                    let _ = reply.send(answer);
                }
            },
            _ = tick.tick() => {
                let state = match find_adopted(&spec.by) {
                    Ok(pid) => match proc_state(pid) {
                        Some(c @ ('T' | 't' | 'D')) if stuck_for.is_some() => {
                            let since = *stuck_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= stuck_for.unwrap_or_default() {
                                ProcessState::Stuck { pid, state: c.to_ascii_uppercase(), secs: since.elapsed().as_secs() }
                            } else {
                                ProcessState::Running { pid }
                            }
                        }
                        _ => {
                            stuck_since = None;
                            ProcessState::Running { pid }
                        }
                    },
                    Err(reason) => {
                        stuck_since = None;
                        ProcessState::Absent { reason }
                    }
                };
                // Only changes are news (the seconds of a stuck state are not).
                let same = match (&last, &state) {
                    (Some(ProcessState::Stuck { pid: a, .. }), ProcessState::Stuck { pid: b, .. }) => a == b,
                    (Some(old), new) => old == new,
                    (None, _) => false,
                };
                if !same {
                    if let ProcessState::Running { pid } = &state
                        && !matches!(last, Some(ProcessState::Running { .. }) | Some(ProcessState::Stuck { .. }))
                    {
                        spawn += 1;
                        info!(target_name = %name, pid, "found {name}: pid {pid}");
                    }
                    last = Some(state.clone());
                    let _ = events.send(ProcessEvent { target: name.clone(), spawn, state }).await;
                }
            }
        }
    }
}

/// The `stuck-for` of the target's `process` probe, if it has one.
fn stuck_limit(target: &Target) -> Option<Duration> {
    target.probes.iter().find_map(|p| match p.check {
        Check::Process { stuck_for } => Some(stuck_for),
        _ => None,
    })
}

/// Makes this process a child subreaper, so orphaned descendants of
/// process targets come back to the watchdog instead of PID 1.
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        warn!(error = %e, "cannot become a child subreaper; grandchildren of process targets may escape");
    }
}

async fn run(
    name: String,
    spec: ProcessSpec,
    stuck_for: Option<Duration>,
    events: mpsc::Sender<ProcessEvent>,
    mut requests: mpsc::Receiver<Request>,
    stop: CancellationToken,
) {
    let mut spawn = 1;
    let send = |spawn: u64, state: ProcessState| {
        let events = events.clone();
        let target = name.clone();
        async move {
            let _ = events
                .send(ProcessEvent {
                    target,
                    spawn,
                    state,
                })
                .await;
        }
    };
    let mut child = start(&name, &spec);
    send(spawn, state_of(&child)).await;
    let mut stuck_since: Option<(Instant, char)> = None;
    let mut reported_stuck = false;
    let mut check = tokio::time::interval(Duration::from_millis(500));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                if let Ok(c) = &mut child {
                    stop_child(&name, &spec, c).await;
                }
                send(spawn, ProcessState::Stopped).await;
                return;
            }
            status = async { child.as_mut().unwrap().wait().await }, if child.is_ok() => {
                let pid = child.as_ref().ok().and_then(Child::id);
                let state = match status {
                    Ok(s) => exit_state(s),
                    Err(e) => ProcessState::SpawnFailed { error: format!("cannot wait for the process: {e}") },
                };
                warn!(target_name = %name, state = ?state, "process of {name} ended: {state:?}");
                // What it left behind goes too: a restart starts clean.
                if let Some(pid) = pid {
                    kill_leftovers(&name, pid, Duration::from_secs(2)).await;
                }
                child = Err("not running".into());
                stuck_since = None;
                send(spawn, state).await;
            }
            request = requests.recv() => match request {
                None => return,
                Some(Request::Restart(reply)) => {
                    if let Ok(c) = &mut child {
                        stop_child(&name, &spec, c).await;
                    }
                    child = start(&name, &spec);
                    spawn += 1;
                    stuck_since = None;
                    reported_stuck = false;
                    let state = state_of(&child);
                    let answer = match &state {
                        ProcessState::Running { pid } => Ok((spawn, format!("restarted {name}: pid {pid}"))),
                        other => Err(format!("cannot restart {name}: {other:?}")),
                    };
                    send(spawn, state).await;
                    let _ = reply.send(answer);
                }
                Some(Request::Signal(signal, reply)) => {
                    let answer = match child.as_ref().ok().and_then(Child::id) {
                        Some(pid) => kill(Pid::from_raw(pid as i32), signal)
                            .map(|()| format!("sent {signal} to {name} (pid {pid})"))
                            .map_err(|e| format!("cannot signal {name}: {e}")),
                        None => Err(format!("{name} is not running")),
                    };
                    let _ = reply.send(answer);
                }
            },
            _ = check.tick(), if child.is_ok() => {
                let Some(pid) = child.as_ref().ok().and_then(Child::id) else { continue };
                // Safety net: an exit whose SIGCHLD went unseen, or whose
                // status someone else collected, is noticed here.
                let polled = child.as_mut().map(Child::try_wait);
                let gone = match polled {
                    Ok(Ok(Some(status))) => Some(exit_state(status)),
                    Ok(Err(e)) => Some(ProcessState::SpawnFailed { error: format!("lost track of the process: {e}") }),
                    _ => None,
                };
                if let Some(state) = gone {
                    warn!(target_name = %name, state = ?state, "process of {name} ended (seen by the safety poll): {state:?}");
                    kill_leftovers(&name, pid, Duration::from_secs(2)).await;
                    child = Err("not running".into());
                    stuck_since = None;
                    send(spawn, state).await;
                    continue;
                }
                if stuck_for.is_none() {
                    continue;
                }
                let limit = stuck_for.unwrap_or_default();
                match proc_state(pid) {
                    Some(c @ ('T' | 't' | 'D')) => {
                        let (since, _) = *stuck_since.get_or_insert((Instant::now(), c));
                        if !reported_stuck && since.elapsed() >= limit {
                            reported_stuck = true;
                            send(spawn, ProcessState::Stuck { pid, state: c.to_ascii_uppercase(), secs: since.elapsed().as_secs() }).await;
                        }
                    }
                    _ => {
                        if reported_stuck {
                            reported_stuck = false;
                            send(spawn, ProcessState::Running { pid }).await;
                        }
                        stuck_since = None;
                    }
                }
            }
        }
    }
}

fn state_of(child: &Result<Child, String>) -> ProcessState {
    match child {
        Ok(c) => ProcessState::Running {
            pid: c.id().unwrap_or(0),
        },
        Err(e) => ProcessState::SpawnFailed { error: e.clone() },
    }
}

fn exit_state(status: std::process::ExitStatus) -> ProcessState {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ProcessState::Exited { code },
        (None, Some(signal)) => ProcessState::Killed { signal },
        _ => ProcessState::Exited { code: -1 },
    }
}

fn start(name: &str, spec: &ProcessSpec) -> Result<Child, String> {
    let mut command = Command::new(&spec.command[0]);
    command
        .args(&spec.command[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8")
        .envs(&spec.env)
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A session of its own (and so a process group of its own, whose id is
    // its pid): no terminal, and signals to the group reach all of it.
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    if let Some(user) = &spec.user {
        match nix::unistd::User::from_name(user) {
            Ok(Some(u)) => {
                command.uid(u.uid.as_raw());
                command.gid(u.gid.as_raw());
            }
            _ => return Err(format!("no user named {user}")),
        }
    }
    if let Some(group) = &spec.group {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(g)) => {
                command.gid(g.gid.as_raw());
            }
            _ => return Err(format!("no group named {group}")),
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.command[0]))?;
    let pid = child.id().unwrap_or(0);
    info!(
        target_name = name,
        pid,
        "started {name}: {}",
        spec.command.join(" ")
    );
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(name.to_owned(), "stdout", out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(name.to_owned(), "stderr", err));
    }
    Ok(child)
}

/// Each line of the process's output to the journal, with its target.
async fn forward(name: String, stream: &'static str, pipe: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        info!(target_name = %name, stream, "{line}");
    }
}

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, Copy)]
struct ProcInfo {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    state: char,
}

fn read_stat(pid: i32) -> Option<ProcInfo> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcInfo {
        pid,
        ppid,
        pgrp,
        state,
    })
}

fn proc_state(pid: u32) -> Option<char> {
    read_stat(pid as i32).map(|p| p.state)
}

fn all_processes() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_stat)
        .collect()
}

/// Every live process that belongs to the target: its group, and every
/// descendant of its main process (also those that left the group, and
/// orphans re-parented to the watchdog that were in the group).
fn members(main: i32) -> BTreeSet<i32> {
    let procs = all_processes();
    let children: BTreeMap<i32, Vec<i32>> = procs.iter().fold(BTreeMap::new(), |mut map, p| {
        map.entry(p.ppid).or_default().push(p.pid);
        map
    });
    let mut found: BTreeSet<i32> = procs
        .iter()
        .filter(|p| p.pgrp == main)
        .map(|p| p.pid)
        .collect();
    let mut queue: Vec<i32> = found.iter().copied().chain(std::iter::once(main)).collect();
    while let Some(pid) = queue.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if found.insert(*child) {
                queue.push(*child);
            }
        }
    }
    let alive = |pid: &i32| {
        procs
            .iter()
            .any(|p| p.pid == *pid && p.state != 'Z' && p.state != 'X')
    };
    found.into_iter().filter(alive).collect()
}

/// Stops the child: the stop signal and SIGCONT to everything of it, the
/// grace, then SIGKILL; reaps the child.
async fn stop_child(name: &str, spec: &ProcessSpec, child: &mut Child) {
    let Some(pid) = child.id() else { return };
    let main = pid as i32;
    let targets = members(main);
    debug!(
        target_name = name,
        pid,
        processes = targets.len(),
        "stopping {name}"
    );
    let _ = killpg(Pid::from_raw(main), spec.stop_signal);
    let _ = killpg(Pid::from_raw(main), Signal::SIGCONT);
    for p in &targets {
        let _ = kill(Pid::from_raw(*p), spec.stop_signal);
        let _ = kill(Pid::from_raw(*p), Signal::SIGCONT);
    }
    let _ = tokio::time::timeout(spec.stop_timeout, child.wait()).await;
    kill_leftovers(name, pid, spec.stop_timeout.min(Duration::from_secs(2))).await;
    let _ = child.kill().await;
    info!(target_name = name, pid, "stopped {name}");
}

/// Waits up to `grace` for what is left of a target to go, then SIGKILLs
/// it and reaps the orphans that came back to the watchdog.
async fn kill_leftovers(name: &str, pid: u32, grace: Duration) {
    let main = pid as i32;
    let deadline = Instant::now() + grace;
    let mut seen = members(main);
    let mut left = seen.clone();
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = members(main);
        seen.extend(left.iter().copied());
    }
    if !left.is_empty() {
        warn!(
            target_name = name,
            left = left.len(),
            "killing what is left of {name}"
        );
        let _ = killpg(Pid::from_raw(main), Signal::SIGKILL);
        for p in &left {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
    }
    seen.remove(&main);
    reap_orphans(&seen).await;
}

/// Reaps those of `pids` that became zombies re-parented to the watchdog
/// (it is a subreaper). Only these: the watchdog's own children (targets'
/// main processes, hooks) are reaped by Tokio.
async fn reap_orphans(pids: &BTreeSet<i32>) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        let mut waiting = false;
        for p in all_processes()
            .into_iter()
            .filter(|p| pids.contains(&p.pid) && p.ppid == me)
        {
            if p.state == 'Z' {
                let _ = nix::sys::wait::waitpid(
                    Pid::from_raw(p.pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            } else {
                waiting = true;
            }
        }
        if !waiting || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
