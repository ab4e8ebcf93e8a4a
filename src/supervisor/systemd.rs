//! The supervisor task: one bus connection, one loop, actions beside it.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zbus::message::Type as MessageType;
use zbus::{Connection, MatchRule, MessageStream, OwnedVariant, Variant};

use super::dbus::{
    self, JobRemovedStream, ManagerProxy, ReloadingStream, SERVICE_INTERFACE, UNIT_INTERFACE,
    UnitNewStream,
};
use super::{
    ActionDone, ActionError, BusStatus, BusTarget, KillWhom, Request, SAFETY_POLL, UnitAccounting,
    UnitAction, UnitChanged, UnitState,
};

/// Method calls without an answer by then fail (systemd's own default).
const METHOD_TIMEOUT: Duration = Duration::from_secs(25);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(super) struct Task {
    pub bus: BusTarget,
    pub watched: BTreeSet<String>,
    pub events: mpsc::Sender<UnitChanged>,
    pub requests: mpsc::Receiver<Request>,
    pub status: watch::Sender<BusStatus>,
    pub shutdown: CancellationToken,
}

/// Why a session ended.
enum Ended {
    Shutdown,
    Lost(String),
}

pub(super) async fn run(mut task: Task) {
    let mut cache: HashMap<String, UnitState> = HashMap::new();
    let mut backoff = BACKOFF_FIRST;
    let mut ever_connected = false;
    let mut warned = false;
    loop {
        let lost = match Session::open(&task.bus).await {
            Ok(session) => {
                backoff = BACKOFF_FIRST;
                warned = false;
                let reconnect = ever_connected;
                task.status.send_modify(|s| {
                    if reconnect {
                        s.reconnects += 1;
                    }
                    s.connected = true;
                    s.since = SystemTime::now();
                });
                info!(
                    bus = %task.bus.describe(),
                    units = task.watched.len(),
                    reconnect,
                    "connected to systemd"
                );
                ever_connected = true;
                match session.serve(&mut task, &mut cache).await {
                    Ended::Shutdown => return,
                    Ended::Lost(why) => why,
                }
            }
            Err(why) => why,
        };
        let was_connected = task.status.borrow().connected;
        task.status.send_modify(|s| {
            if s.connected {
                s.since = SystemTime::now();
            }
            s.connected = false;
            s.last_error = Some(lost.clone());
        });
        // The daemon reports the loss once, as an event, from the status.
        if was_connected || !warned {
            debug!(error = %lost, bus = %task.bus.describe(), "connection to systemd lost");
            warned = true;
        } else {
            debug!(error = %lost, retry_in_ms = backoff.as_millis() as u64, "still not connected to systemd");
        }
        // Wait out the backoff, answering requests meanwhile.
        let until = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = task.shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(until) => break,
                request = task.requests.recv() => match request {
                    None => return,
                    Some(r) => answer_offline(r, &mut task.watched, &cache, &lost),
                },
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn answer_offline(
    request: Request,
    watched: &mut BTreeSet<String>,
    cache: &HashMap<String, UnitState>,
    lost: &str,
) {
    match request {
        Request::Act { reply, .. } => {
            let _ = reply.send(Err(ActionError::BusLost(lost.to_owned())));
        }
        Request::Accounting { reply, .. } => {
            let _ = reply.send(Err(ActionError::BusLost(lost.to_owned())));
        }
        Request::Watch { units } => *watched = units,
        Request::State { unit, reply } => {
            let _ = reply.send(cache.get(&unit).cloned());
        }
    }
}

/// One connection's worth of state.
///
/// The loop never waits on a bus call itself: zbus stops reading the socket
/// while any signal queue is full, so a loop that awaited a reply while
/// signals piled up (a daemon-reload sends hundreds) would deadlock until the
/// method timeout. State reads run as tasks and come back on `reads`.
struct Session {
    conn: Connection,
    manager: ManagerProxy<'static>,
    props: MessageStream,
    unit_new: UnitNewStream,
    reloading: ReloadingStream,
    /// Every job's end, followed once for all actions (a stream per action
    /// would cost a match rule and a name lookup on the bus each time).
    job_removed: JobRemovedStream,
    /// Actions waiting for their job's end, by job path.
    jobs_waiting: HashMap<String, oneshot::Sender<String>>,
    /// Jobs that ended before their action asked: the reply to `StartUnit`
    /// and the `JobRemoved` signal may be handled in either order.
    jobs_ended: JobsEnded,
    jobs_tx: mpsc::UnboundedSender<JobWait>,
    jobs: mpsc::UnboundedReceiver<JobWait>,
    /// Object path → unit name, for the watched units.
    paths: HashMap<String, String>,
    reads_tx: mpsc::UnboundedSender<ReadDone>,
    reads: mpsc::UnboundedReceiver<ReadDone>,
    /// Per unit, the serial of systemd's last message applied to its state:
    /// systemd numbers its messages in the order it sends them, so a read
    /// that answers before a signal was sent never overwrites that signal.
    serials: HashMap<String, u32>,
    /// Units with a read in flight; `true` when another was asked for meanwhile.
    inflight: HashMap<String, bool>,
}

/// An action's request to hear how its job ended.
struct JobWait {
    job: String,
    reply: oneshot::Sender<String>,
}

/// Results of jobs no action has asked about yet, the most recent few.
#[derive(Default)]
struct JobsEnded {
    results: HashMap<String, String>,
    order: std::collections::VecDeque<String>,
}

impl JobsEnded {
    const KEEP: usize = 256;

    fn insert(&mut self, job: String, result: String) {
        if self.order.len() == Self::KEEP
            && let Some(oldest) = self.order.pop_front()
        {
            self.results.remove(&oldest);
        }
        self.order.push_back(job.clone());
        self.results.insert(job, result);
    }

    fn take(&mut self, job: &str) -> Option<String> {
        let result = self.results.remove(job)?;
        self.order.retain(|j| j != job);
        Some(result)
    }
}

/// How a read finds the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadMode {
    /// Load it if systemd has not (at start and when first watched): this
    /// tells a missing unit file (`not-found`) from a unit that is merely idle.
    Load,
    /// Only if loaded. Reading a unit systemd has garbage-collected would
    /// load it again, which systemd announces with `UnitNew`, which would
    /// ask for another read: a loop. An unloaded unit is inactive, as it
    /// was when systemd dropped it, so there is nothing new to read.
    IfLoaded,
}

/// A state read that finished.
struct ReadDone {
    unit: String,
    /// The state and the serial of systemd's first reply.
    /// `None`: not loaded (read with [`ReadMode::IfLoaded`]).
    result: Result<Option<(UnitState, u32)>, zbus::Error>,
    at: Instant,
}

fn is_connection_error(e: &zbus::Error) -> bool {
    matches!(
        e,
        zbus::Error::InputOutput(_) | zbus::Error::Connection(..) | zbus::Error::Handshake(_)
    )
}

impl Session {
    async fn open(bus: &BusTarget) -> Result<Session, String> {
        let builder = match bus {
            BusTarget::System => zbus::connection::Builder::system(),
            BusTarget::Session => zbus::connection::Builder::session(),
            BusTarget::Address(a) => zbus::connection::Builder::address(a.as_str()),
        };
        let conn = builder
            .method_timeout(METHOD_TIMEOUT)
            .build()
            .await
            .map_err(|e| format!("cannot connect to the {}: {e}", bus.describe()))?;
        let fail =
            |what: &str, e: zbus::Error| format!("cannot {what} on the {}: {e}", bus.describe());
        // Streams first, so no change between the subscription and the first read is missed.
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .interface("org.freedesktop.DBus.Properties")
            .member("PropertiesChanged")
            .path_namespace(dbus::UNIT_PATH_PREFIX)
            .build()
            .map_err(|e| fail("build a match rule", e))?;
        let props = MessageStream::for_match_rule(rule, &conn, NonZeroUsize::new(1024))
            .await
            .map_err(|e| fail("watch unit properties", e))?;
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| fail("reach systemd's manager", e))?;
        let unit_new = manager
            .receive_unit_new()
            .await
            .map_err(|e| fail("watch new units", e))?;
        let reloading = manager
            .receive_reloading()
            .await
            .map_err(|e| fail("watch reloads", e))?;
        let job_removed = manager
            .receive_job_removed()
            .await
            .map_err(|e| fail("watch jobs", e))?;
        manager
            .subscribe()
            .await
            .map_err(|e| fail("subscribe to systemd", e))?;
        let (reads_tx, reads) = mpsc::unbounded_channel();
        let (jobs_tx, jobs) = mpsc::unbounded_channel();
        Ok(Session {
            conn,
            manager,
            props,
            unit_new,
            reloading,
            job_removed,
            jobs_waiting: HashMap::new(),
            jobs_ended: JobsEnded::default(),
            jobs_tx,
            jobs,
            paths: HashMap::new(),
            reads_tx,
            reads,
            serials: HashMap::new(),
            inflight: HashMap::new(),
        })
    }

    async fn serve(mut self, task: &mut Task, cache: &mut HashMap<String, UnitState>) -> Ended {
        match self.serve_inner(task, cache).await {
            Ok(()) => Ended::Shutdown,
            Err(ended) => ended,
        }
    }

    async fn serve_inner(
        &mut self,
        task: &mut Task,
        cache: &mut HashMap<String, UnitState>,
    ) -> Result<(), Ended> {
        self.paths = task
            .watched
            .iter()
            .map(|u| (dbus::unit_path(u), u.clone()))
            .collect();
        for unit in &task.watched {
            self.read(unit, ReadMode::Load);
        }
        let mut poll = tokio::time::interval(SAFETY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = task.shutdown.cancelled() => return Ok(()),
                message = self.props.next() => match message {
                    None => return Err(Ended::Lost("the bus closed the connection".into())),
                    Some(Err(e)) if is_connection_error(&e) => return Err(Ended::Lost(e.to_string())),
                    Some(Err(e)) => debug!(error = %e, "ignoring a malformed signal"),
                    Some(Ok(message)) => self.on_properties_changed(task, cache, message).await,
                },
                signal = self.unit_new.next() => match signal {
                    None => return Err(Ended::Lost("the bus closed the connection".into())),
                    Some(signal) => {
                        if let Ok(args) = signal.args()
                            && task.watched.contains(args.id())
                        {
                            debug!(object_systemd_unit = %args.id(), "unit loaded");
                            self.read(args.id(), ReadMode::IfLoaded);
                        }
                    }
                },
                signal = self.reloading.next() => match signal {
                    None => return Err(Ended::Lost("the bus closed the connection".into())),
                    Some(signal) => {
                        if let Ok(args) = signal.args()
                            && !*args.active()
                        {
                            debug!("systemd finished a daemon-reload; re-reading watched units");
                            self.read_all(task);
                        }
                    }
                },
                signal = self.job_removed.next() => match signal {
                    None => return Err(Ended::Lost("the bus closed the connection".into())),
                    Some(signal) => {
                        if let Ok(args) = signal.args() {
                            let job = args.job().to_string();
                            let result = args.result().clone();
                            match self.jobs_waiting.remove(&job) {
                                Some(waiter) => { let _ = waiter.send(result); }
                                None => self.jobs_ended.insert(job, result),
                            }
                        }
                    }
                },
                Some(wait) = self.jobs.recv() => match self.jobs_ended.take(&wait.job) {
                    Some(result) => { let _ = wait.reply.send(result); }
                    None => { self.jobs_waiting.insert(wait.job, wait.reply); }
                },
                Some(done) = self.reads.recv() => self.on_read(task, cache, done).await?,
                request = task.requests.recv() => match request {
                    None => return Ok(()),
                    Some(r) => self.handle(task, cache, r),
                },
                _ = poll.tick() => self.read_all(task),
            }
        }
    }

    /// Reads a unit's state in a task of its own; the result comes back on
    /// `reads`. One read per unit at a time: asking again meanwhile reads
    /// once more after it, so a burst of signals costs two reads, not many.
    fn read(&mut self, unit: &str, mode: ReadMode) {
        if let Some(again) = self.inflight.get_mut(unit) {
            *again = true;
            return;
        }
        self.inflight.insert(unit.to_owned(), false);
        let conn = self.conn.clone();
        let manager = self.manager.clone();
        let tx = self.reads_tx.clone();
        let unit = unit.to_owned();
        tokio::spawn(async move {
            let at = Instant::now();
            let result = read_state(&conn, &manager, &unit, mode).await;
            let _ = tx.send(ReadDone { unit, result, at });
        });
    }

    fn read_all(&mut self, task: &Task) {
        for unit in &task.watched {
            self.read(unit, ReadMode::IfLoaded);
        }
    }

    async fn on_read(
        &mut self,
        task: &mut Task,
        cache: &mut HashMap<String, UnitState>,
        done: ReadDone,
    ) -> Result<(), Ended> {
        if self.inflight.remove(&done.unit) == Some(true) {
            self.read(&done.unit, ReadMode::IfLoaded);
        }
        if !task.watched.contains(&done.unit) {
            return Ok(());
        }
        match done.result {
            Ok(Some((state, serial))) => {
                let last = self.serials.get(&done.unit).copied().unwrap_or(0);
                if serial < last {
                    // A signal sent after this answer was applied already;
                    // keep what signals do not carry (the load state).
                    if let Some(current) = cache.get(&done.unit)
                        && current.load_state != state.load_state
                    {
                        let mut merged = current.clone();
                        merged.load_state = state.load_state;
                        emit(task, cache, merged, done.at).await;
                    }
                    return Ok(());
                }
                self.serials.insert(done.unit, serial);
                emit(task, cache, state, done.at).await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) if is_connection_error(&e) => Err(Ended::Lost(e.to_string())),
            Err(e) => {
                debug!(object_systemd_unit = %done.unit, error = %e, "cannot read the unit's state");
                Ok(())
            }
        }
    }

    fn handle(
        &mut self,
        task: &mut Task,
        cache: &mut HashMap<String, UnitState>,
        request: Request,
    ) {
        match request {
            Request::Act {
                unit,
                action,
                timeout,
                reply,
            } => {
                let conn = self.conn.clone();
                let manager = self.manager.clone();
                let jobs = self.jobs_tx.clone();
                tokio::spawn(async move {
                    let outcome = perform(&conn, &manager, &jobs, &unit, action, timeout).await;
                    let _ = reply.send(outcome);
                });
            }
            Request::Watch { units } => {
                let added: Vec<String> = units.difference(&task.watched).cloned().collect();
                cache.retain(|u, _| units.contains(u));
                task.watched = units;
                self.paths = task
                    .watched
                    .iter()
                    .map(|u| (dbus::unit_path(u), u.clone()))
                    .collect();
                self.serials.retain(|u, _| task.watched.contains(u));
                for unit in added {
                    self.read(&unit, ReadMode::Load);
                }
            }
            Request::State { unit, reply } => {
                let _ = reply.send(cache.get(&unit).cloned());
            }
            Request::Accounting { unit, reply } => {
                let conn = self.conn.clone();
                tokio::spawn(async move {
                    let _ = reply.send(accounting(&conn, &unit).await);
                });
            }
        }
    }

    /// A `PropertiesChanged` signal. systemd tells one change of a unit in
    /// two signals sent back to back, the Service interface's properties
    /// first and the Unit interface's last: the halves already received are
    /// applied together before the state is told, so what is told is a
    /// state systemd reported, not half of one ("inactive/dead" with the
    /// old main pid). The Unit half closes a change; what follows is the next.
    async fn on_properties_changed(
        &mut self,
        task: &mut Task,
        cache: &mut HashMap<String, UnitState>,
        message: zbus::Message,
    ) {
        let mut pending: Vec<Pending> = Vec::new();
        self.absorb(cache, &mut pending, message);
        loop {
            // What is here already; then, while a change still lacks its
            // closing Unit half, that half (it follows at once).
            let next = match self.props.next().now_or_never() {
                Some(next) => next,
                None if pending.iter().any(|p| !p.closed()) => {
                    match tokio::time::timeout(HALF_WAIT, self.props.next()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    }
                }
                None => break,
            };
            match next {
                Some(Ok(message)) => self.absorb(cache, &mut pending, message),
                // A lost connection shows on the stream again (it ends).
                Some(Err(e)) => {
                    debug!(error = %e, "a signal could not be read");
                    break;
                }
                None => break,
            }
        }
        for p in pending {
            emit(task, cache, p.state, p.at).await;
        }
    }

    /// Applies one signal to the unit's pending change: the last one, while
    /// it lacks this interface's half, else a new one.
    fn absorb(
        &mut self,
        cache: &HashMap<String, UnitState>,
        pending: &mut Vec<Pending>,
        message: zbus::Message,
    ) {
        let at = Instant::now();
        let serial = message.primary_header().serial_num().get();
        let header = message.header();
        let Some(path) = header.path() else { return };
        let Some(unit) = self.paths.get(path.as_str()).cloned() else {
            return;
        };
        let body = message.body();
        let Ok((interface, changed, invalidated)) =
            body.deserialize::<(String, HashMap<String, OwnedVariant>, Vec<String>)>()
        else {
            return;
        };
        if interface != UNIT_INTERFACE && interface != SERVICE_INTERFACE {
            return;
        }
        let last = pending.iter().rposition(|p| p.state.unit == unit);
        let slot = match last {
            // systemd sends a change's type-specific half first and the
            // Unit interface's last ("clients may rely on this order"):
            // the Unit half closes a change.
            Some(i) if !pending[i].closed() && !pending[i].interfaces.contains(&interface) => i,
            _ => {
                let state = match last {
                    Some(i) => pending[i].state.clone(),
                    None => cache
                        .get(&unit)
                        .cloned()
                        .unwrap_or_else(|| UnitState::unknown(&unit)),
                };
                pending.push(Pending {
                    state,
                    at,
                    interfaces: Vec::new(),
                });
                pending.len() - 1
            }
        };
        pending[slot].interfaces.push(interface);
        let state = &mut pending[slot].state;
        apply(state, &changed);
        // Signals do not carry LoadState, but a unit that runs is loaded (one
        // added by a daemon-reload was `not-found` when first read).
        if !matches!(state.active_state.as_str(), "" | "inactive") && state.load_state != "loaded" {
            state.load_state = "loaded".into();
        }
        self.serials.insert(unit.clone(), serial);
        if invalidated.iter().any(|p| is_tracked(p)) {
            self.read(&unit, ReadMode::IfLoaded);
        }
    }
}

/// One change of a unit, gathered from its signals.
struct Pending {
    state: UnitState,
    /// When its first signal came.
    at: Instant,
    /// The interfaces whose half it has.
    interfaces: Vec<String>,
}

impl Pending {
    /// Whether it has its closing half, the Unit interface's.
    fn closed(&self) -> bool {
        self.interfaces.iter().any(|f| f == UNIT_INTERFACE)
    }
}

/// How long a change's closing half is waited for once its first half came
/// (systemd sends both back to back; this only bounds a lost one).
const HALF_WAIT: Duration = Duration::from_millis(20);

async fn emit(
    task: &mut Task,
    cache: &mut HashMap<String, UnitState>,
    state: UnitState,
    at: Instant,
) {
    let previous = cache.get(&state.unit).cloned();
    if previous.as_ref() == Some(&state) {
        return;
    }
    cache.insert(state.unit.clone(), state.clone());
    let _ = task
        .events
        .send(UnitChanged {
            state,
            previous,
            at,
        })
        .await;
}

fn is_tracked(property: &str) -> bool {
    matches!(
        property,
        "LoadState"
            | "ActiveState"
            | "SubState"
            | "Result"
            | "MainPID"
            | "NRestarts"
            | "ExecMainCode"
            | "ExecMainStatus"
    )
}

fn as_text(v: &Variant<'_>) -> Option<String> {
    match v {
        Variant::Str(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn as_u64(v: &Variant<'_>) -> Option<u64> {
    match v {
        Variant::U8(n) => Some(u64::from(*n)),
        Variant::U16(n) => Some(u64::from(*n)),
        Variant::U32(n) => Some(u64::from(*n)),
        Variant::U64(n) => Some(*n),
        Variant::I32(n) => u64::try_from(*n).ok(),
        Variant::I64(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

fn as_i32(v: &Variant<'_>) -> Option<i32> {
    match v {
        Variant::I32(n) => Some(*n),
        Variant::U32(n) => i32::try_from(*n).ok(),
        _ => None,
    }
}

fn apply(state: &mut UnitState, props: &HashMap<String, OwnedVariant>) {
    for (name, value) in props {
        let v: &Variant<'_> = value;
        match name.as_str() {
            "LoadState" => state.load_state = as_text(v).unwrap_or_default(),
            "ActiveState" => state.active_state = as_text(v).unwrap_or_default(),
            "SubState" => state.sub_state = as_text(v).unwrap_or_default(),
            "Result" => state.result = as_text(v).unwrap_or_default(),
            "MainPID" => {
                state.main_pid = as_u64(v).and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
            }
            "NRestarts" => {
                state.n_restarts = as_u64(v).and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
            }
            "ExecMainCode" => state.exec_main_code = as_i32(v).unwrap_or(0),
            "ExecMainStatus" => state.exec_main_status = as_i32(v).unwrap_or(0),
            "StartLimitBurst" => {
                state.start_limit_burst = as_u64(v).and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
            }
            _ => {}
        }
    }
}

/// `GetAll` of one interface of a unit, with the reply's serial. `Ok(None)`
/// when systemd answers with an error (an interface this unit type lacks);
/// `Err` when the connection failed.
async fn get_all(
    conn: &Connection,
    path: &str,
    interface: &str,
) -> Result<Option<(HashMap<String, OwnedVariant>, u32)>, zbus::Error> {
    let reply = conn
        .call_method(
            Some(dbus::SYSTEMD),
            path,
            Some("org.freedesktop.DBus.Properties"),
            "GetAll",
            &(interface,),
        )
        .await;
    match reply {
        Ok(message) => {
            let serial = message.primary_header().serial_num().get();
            Ok(message
                .body()
                .deserialize::<HashMap<String, OwnedVariant>>()
                .ok()
                .map(|props| (props, serial)))
        }
        Err(e) if is_connection_error(&e) => Err(e),
        Err(e) => {
            debug!(path, interface, error = %e, "cannot read properties");
            Ok(None)
        }
    }
}

/// Reads a unit's state now, with the serial of systemd's first answer.
/// `Ok(None)` when `mode` is [`ReadMode::IfLoaded`] and the unit is not
/// loaded. A unit loaded without a unit file reads as `not-found`.
async fn read_state(
    conn: &Connection,
    manager: &ManagerProxy<'static>,
    unit: &str,
    mode: ReadMode,
) -> Result<Option<(UnitState, u32)>, zbus::Error> {
    let found = match mode {
        ReadMode::Load => manager.load_unit(unit).await,
        ReadMode::IfLoaded => manager.get_unit(unit).await,
    };
    let path = match found {
        Ok(path) => path.to_string(),
        Err(e) if is_connection_error(&e) => return Err(e),
        Err(zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
        {
            return Ok(None);
        }
        // An invalid name and the like: read what the object path gives.
        Err(_) => dbus::unit_path(unit),
    };
    let mut state = UnitState::unknown(unit);
    let mut serial = 0;
    if let Some((props, s)) = get_all(conn, &path, UNIT_INTERFACE).await? {
        apply(&mut state, &props);
        serial = s;
    }
    if unit.ends_with(".service")
        && let Some((props, _)) = get_all(conn, &path, SERVICE_INTERFACE).await?
    {
        apply(&mut state, &props);
    }
    if state.load_state.is_empty() {
        state.load_state = "not-found".into();
    }
    Ok(Some((state, serial)))
}

async fn accounting(conn: &Connection, unit: &str) -> Result<UnitAccounting, ActionError> {
    let path = dbus::unit_path(unit);
    let (props, _) = get_all(conn, &path, SERVICE_INTERFACE)
        .await
        .map_err(|e| classify(unit, e))?
        .ok_or_else(|| ActionError::NoSuchUnit(unit.to_owned()))?;
    // systemd answers u64::MAX for "not accounted".
    let read = |name: &str| {
        props
            .get(name)
            .and_then(|v| as_u64(v))
            .filter(|n| *n != u64::MAX)
    };
    Ok(UnitAccounting {
        memory_bytes: read("MemoryCurrent"),
        cpu_nanos: read("CPUUsageNSec"),
        tasks: read("TasksCurrent"),
        n_restarts: read("NRestarts")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
    })
}

fn classify(unit: &str, e: zbus::Error) -> ActionError {
    if is_connection_error(&e) {
        return ActionError::BusLost(e.to_string());
    }
    match &e {
        zbus::Error::MethodError(name, message, _) => {
            let message = message.clone().unwrap_or_default();
            match name.as_str() {
                "org.freedesktop.systemd1.NoSuchUnit" | "org.freedesktop.systemd1.LoadFailed" => {
                    ActionError::NoSuchUnit(unit.to_owned())
                }
                "org.freedesktop.DBus.Error.AccessDenied"
                | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => {
                    ActionError::AccessDenied(message)
                }
                other => ActionError::Refused(format!("{other}: {message}")),
            }
        }
        zbus::Error::FDO(fdo) => match fdo.as_ref() {
            zbus::fdo::Error::AccessDenied(m)
            | zbus::fdo::Error::InteractiveAuthorizationRequired(m) => {
                ActionError::AccessDenied(m.clone())
            }
            zbus::fdo::Error::NoReply(_) | zbus::fdo::Error::TimedOut(_) => {
                ActionError::Timeout(METHOD_TIMEOUT)
            }
            zbus::fdo::Error::ServiceUnknown(m) | zbus::fdo::Error::Disconnected(m) => {
                ActionError::BusLost(m.clone())
            }
            _ => ActionError::Refused(e.to_string()),
        },
        _ => ActionError::Refused(e.to_string()),
    }
}

async fn within<T>(
    deadline: tokio::time::Instant,
    limit: Duration,
    future: impl Future<Output = T>,
) -> Result<T, ActionError> {
    tokio::time::timeout_at(deadline, future)
        .await
        .map_err(|_| ActionError::Timeout(limit))
}

/// Performs one action; jobs are followed to their `JobRemoved`.
async fn perform(
    conn: &Connection,
    manager: &ManagerProxy<'static>,
    jobs: &mpsc::UnboundedSender<JobWait>,
    unit: &str,
    action: UnitAction,
    limit: Duration,
) -> Result<ActionDone, ActionError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    debug!(
        object_systemd_unit = unit,
        action = action.as_str(),
        "asking systemd"
    );
    let outcome = match action {
        UnitAction::Start | UnitAction::Stop | UnitAction::Restart => {
            let job = match action {
                UnitAction::Start => {
                    within(deadline, limit, manager.start_unit(unit, "replace")).await?
                }
                UnitAction::Stop => {
                    within(deadline, limit, manager.stop_unit(unit, "replace")).await?
                }
                _ => within(deadline, limit, manager.restart_unit(unit, "replace")).await?,
            }
            .map_err(|e| classify(unit, e))?;
            let (reply, ended) = oneshot::channel();
            let lost = || ActionError::BusLost("the connection was lost while the job ran".into());
            jobs.send(JobWait {
                job: job.to_string(),
                reply,
            })
            .map_err(|_| lost())?;
            let result = within(deadline, limit, ended).await?.map_err(|_| lost())?;
            if result == "done" {
                Ok(ActionDone {
                    job_result: Some(result),
                    took: started.elapsed(),
                })
            } else {
                let detail = match read_state(conn, manager, unit, ReadMode::IfLoaded).await {
                    Ok(Some((s, _))) if !s.result.is_empty() && s.result != "success" => {
                        format!(" (unit result {})", s.result)
                    }
                    _ => String::new(),
                };
                Err(ActionError::JobFailed {
                    unit: unit.to_owned(),
                    action: action.as_str(),
                    result,
                    detail,
                })
            }
        }
        UnitAction::Reboot => within(
            deadline,
            limit,
            manager.start_unit(unit, "replace-irreversibly"),
        )
        .await?
        .map_err(|e| classify(unit, e))
        .map(|_| ActionDone {
            job_result: None,
            took: started.elapsed(),
        }),
        UnitAction::ResetFailed => within(deadline, limit, manager.reset_failed_unit(unit))
            .await?
            .map_err(|e| classify(unit, e))
            .map(|()| ActionDone {
                job_result: None,
                took: started.elapsed(),
            }),
        UnitAction::Kill { whom, signal } => {
            let whom = match whom {
                KillWhom::Main => "main",
                KillWhom::All => "all",
            };
            within(deadline, limit, manager.kill_unit(unit, whom, signal))
                .await?
                .map_err(|e| classify(unit, e))
                .map(|()| ActionDone {
                    job_result: None,
                    took: started.elapsed(),
                })
        }
    };
    match &outcome {
        Ok(done) => info!(
            object_systemd_unit = unit,
            action = action.as_str(),
            took_ms = done.took.as_millis() as u64,
            "{} of {unit} done",
            action.as_str()
        ),
        Err(e) => warn!(
            object_systemd_unit = unit,
            action = action.as_str(),
            error_kind = e.kind(),
            "{} of {unit} failed: {e}",
            action.as_str()
        ),
    }
    outcome
}
