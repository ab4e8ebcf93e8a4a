//! Commands to the core loop: an operator's command on a target, a reload
//! (applied whole or not at all), an observer joining the event stream.

use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use super::boot::{announce_target, announce_token, config_source, identity_view, log_diagnostic};
use super::core::{Core, Perform, Reply};
use super::{now_ms, sd_notify};
use crate::command::{Command, Operation, OperationDone, OperationError, ReloadOutcome};
use crate::config::{self, Config, Level, Loaded};
use crate::event::Event;
use crate::status::{ConfigView, RejectedReload};
use crate::supervisor::perform::Attempt;
use crate::supervisor::runner::Origin;

/// How long a reload may take to read the configuration before it is refused.
const RELOAD_READ_LIMIT: Duration = Duration::from_secs(30);

/// Reloads under way: who waits for the read in progress, who for the next.
pub(super) struct Reloads {
    /// Answered when the read in progress ends; `None`: no read in progress.
    pub reading: Option<Vec<oneshot::Sender<ReloadOutcome>>>,
    /// Answered by the read after it.
    pub queued: Vec<oneshot::Sender<ReloadOutcome>>,
    /// Where a read sends what it found.
    pub done: mpsc::Sender<Result<Loaded, String>>,
}

impl Core {
    /// Carries out a command from the API, a signal or a test.
    pub(super) async fn command(&mut self, command: Command) {
        match command {
            Command::Reload { reply } => self.reload(reply),
            Command::Operate {
                target,
                operation,
                reply,
            } => self.operate(&target, operation, reply),
            Command::Observe { reply } => {
                let _ = reply.send(self.events.slurp_and_subscribe());
            }
            Command::Resume { after, reply } => {
                let _ = reply.send(self.events.resume_after(after));
            }
        }
    }

    fn operate(&mut self, name: &str, operation: Operation, reply: Reply) {
        let Some(target) = self.config.target(name).cloned() else {
            let _ = reply.send(Err(OperationError::UnknownTarget(name.to_owned())));
            return;
        };
        let (action, step) = match operation {
            Operation::Reset => {
                let decisions = self.engine.reset(name, now_ms());
                let detail = format!("{}'s ladder starts over", target.name);
                self.answer_at_once(&target, operation, true, detail, reply);
                self.handle(decisions);
                return;
            }
            Operation::Pause(length) => {
                let now = now_ms();
                let until = length.map(|d| now + d.as_millis() as u64);
                let decisions = self.engine.pause(name, until, now);
                let detail = match length {
                    Some(d) => format!(
                        "{} is paused for {}: watched, not acted on",
                        target.name,
                        humantime::format_duration(d)
                    ),
                    None => format!(
                        "{} is paused until resumed: watched, not acted on",
                        target.name
                    ),
                };
                self.answer_at_once(&target, operation, true, detail, reply);
                self.handle(decisions);
                return;
            }
            Operation::Resume => {
                let (was, decisions) = self.engine.resume(name, now_ms());
                if was {
                    let detail = format!("{} is resumed: its ladder acts again", target.name);
                    self.answer_at_once(&target, operation, true, detail, reply);
                } else {
                    let _ = reply.send(Err(OperationError::NotApplicable(format!(
                        "target \"{}\" is not paused",
                        target.name
                    ))));
                }
                self.handle(decisions);
                return;
            }
            Operation::Restart => {
                // A unit through systemd; a process the watchdog started,
                // through its process task; an adopted one with
                // `may-signal`, by SIGTERM (whoever started it brings it back).
                let action = match &target.kind {
                    config::TargetKind::Unit { .. } | config::TargetKind::Process(_) => {
                        Ok(config::Action::Restart)
                    }
                    config::TargetKind::Adopted(spec) if spec.may_signal => {
                        Ok(config::Action::Kill(nix::sys::signal::Signal::SIGTERM))
                    }
                    config::TargetKind::Adopted(_) => Err(
                        "is adopted without may-signal: the watchdog neither started it nor may signal it",
                    ),
                    config::TargetKind::Probed => Err("has no unit or process to restart"),
                };
                match action {
                    Ok(action) => (action, None),
                    Err(why) => {
                        let _ = reply.send(Err(OperationError::NotApplicable(format!(
                            "target \"{}\" {why}",
                            target.name
                        ))));
                        return;
                    }
                }
            }
            Operation::RunStep(n) => match n.checked_sub(1).and_then(|i| target.ladder.get(i)) {
                Some(step) => (step.action.clone(), Some(n - 1)),
                None => {
                    let _ = reply.send(Err(OperationError::NoSuchStep {
                        target: target.name.clone(),
                        steps: target.ladder.len(),
                        step: n,
                    }));
                    return;
                }
            },
        };
        let attempt = Attempt {
            step: step.unwrap_or(0),
            attempt: 1,
            reason: "asked for by an operator".into(),
            incident: self.incident_of(name).unwrap_or_default(),
        };
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.operators.insert(ticket, reply);
        self.perform(Perform {
            ctx: self.action_context(&target.name),
            unit_state: target.unit().and_then(|u| self.units.get(u)).cloned(),
            target,
            action,
            attempt,
            origin: Origin::Operator {
                command: operation.as_str(),
                step,
                ticket,
            },
        });
    }

    /// A command done on the loop itself (no action to wait for): emitted and answered.
    fn answer_at_once(
        &mut self,
        target: &config::Target,
        operation: Operation,
        ok: bool,
        detail: String,
        reply: Reply,
    ) {
        self.emit(Event::OperatorCommand {
            target: target.name.clone(),
            unit: target.unit().map(str::to_owned),
            command: operation.as_str(),
            step: None,
            action: None,
            ok,
            detail: detail.clone(),
            took: Duration::ZERO,
        });
        let _ = reply.send(Ok(OperationDone {
            ok,
            detail,
            took: Duration::ZERO,
        }));
    }

    /// Starts reading the configuration off the loop; the answer goes to
    /// `reply` once [`Core::on_loaded`] has it. A reload asked for while
    /// one reads waits for the next read, so it sees the files as they are.
    fn reload(&mut self, reply: oneshot::Sender<ReloadOutcome>) {
        match &mut self.reloads.reading {
            Some(_) => self.reloads.queued.push(reply),
            None => {
                self.reloads.reading = Some(vec![reply]);
                self.start_load();
            }
        }
    }

    fn start_load(&self) {
        let sources = self.sources.clone();
        let done = self.reloads.done.clone();
        tokio::spawn(async move {
            let load = tokio::task::spawn_blocking(move || config::load(&sources));
            let result = match tokio::time::timeout(RELOAD_READ_LIMIT, load).await {
                Ok(Ok(loaded)) => Ok(loaded),
                Ok(Err(e)) => Err(format!("internal error: the loader failed: {e}")),
                Err(_) => Err(format!(
                    "the configuration could not be read within {}s",
                    RELOAD_READ_LIMIT.as_secs()
                )),
            };
            let _ = done.send(result).await;
        });
    }

    /// A read the loop started has finished: apply it or refuse it, answer
    /// who asked, and start the next read if a reload is waiting for it.
    pub(super) fn on_loaded(&mut self, result: Result<Loaded, String>) {
        let outcome = match result {
            Ok(loaded) => self.reload_with(&loaded),
            Err(problem) => {
                error!("reload failed: {problem}; running configuration kept");
                self.refuse_reload(vec![problem])
            }
        };
        sd_notify::status(&self.status_line());
        for reply in self.reloads.reading.take().unwrap_or_default() {
            let _ = reply.send(outcome.clone());
        }
        if !self.reloads.queued.is_empty() {
            self.reloads.reading = Some(std::mem::take(&mut self.reloads.queued));
            self.start_load();
        }
    }

    fn reload_with(&mut self, loaded: &Loaded) -> ReloadOutcome {
        for d in &loaded.diagnostics {
            log_diagnostic(d);
        }
        // The token the new configuration names must be usable, or the
        // API would run on without the guard it asks for.
        let access = loaded
            .config
            .as_ref()
            .map(|new| crate::api::Access::for_config(&new.api, &self.config.daemon.state_dir));
        match (&loaded.config, access) {
            (Some(new), Some(Ok(access))) => {
                if new.metrics != self.config.metrics {
                    let m = Box::new(new.metrics.clone());
                    let _ = self
                        .followers
                        .metrics
                        .try_send(crate::metrics::recorder::Request::Reconfigure(m));
                }
                let _ = self.followers.alerts.requests.try_send(
                    crate::alert::task::Request::Reconfigure(Box::new(new.clone())),
                );
                self.apply(new.clone(), loaded);
                if *self.access.borrow() != access {
                    announce_token(&access);
                    self.access.send_replace(access);
                }
                ReloadOutcome::Applied {
                    generation: self.generation,
                    targets: self.config.targets.len(),
                }
            }
            (_, Some(Err(why))) => {
                error!("reload refused: {why}");
                self.refuse_reload(vec![why])
            }
            _ => {
                let problems: Vec<String> = loaded
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == Level::Error)
                    .map(ToString::to_string)
                    .collect();
                self.refuse_reload(problems)
            }
        }
    }

    /// Keeps the running configuration and says why.
    fn refuse_reload(&mut self, problems: Vec<String>) -> ReloadOutcome {
        // Observers see the refusal before the log says so.
        self.snapshot.send_modify(|s| {
            s.rejected_reload = Some(RejectedReload {
                at: SystemTime::now(),
                errors: problems.len(),
                problems: problems.iter().take(5).cloned().collect(),
            })
        });
        self.emit(Event::ReloadRefused {
            generation: self.generation,
            problems: problems.clone(),
        });
        ReloadOutcome::Refused { problems }
    }

    fn apply(&mut self, new: Config, loaded: &Loaded) {
        if new.api.listen != self.config.api.listen {
            warn!(
                old = %self.config.api.listen,
                new = %new.api.listen,
                "the API listen address changes only at restart"
            );
        }
        if new.daemon.state_dir != self.config.daemon.state_dir {
            warn!("the state directory changes only at restart");
        }
        if new.channels != self.config.channels {
            warn!(
                "the channels ([channels.*]) change only at restart: delivery goes on over the ones it started with"
            );
        }
        if let Some(log) = &self.log
            && new.log.level != self.config.log.level
        {
            log.set_level(new.log.level);
        }
        let names =
            |c: &Config| -> Vec<String> { c.targets.iter().map(|t| t.name.clone()).collect() };
        let (old_names, new_names) = (names(&self.config), names(&new));
        let added: Vec<String> = new_names
            .iter()
            .filter(|n| !old_names.contains(n))
            .cloned()
            .collect();
        let removed: Vec<String> = old_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .cloned()
            .collect();
        let changed: Vec<String> = new
            .targets
            .iter()
            .filter(|t| self.config.target(&t.name).is_some_and(|old| old != *t))
            .map(|t| t.name.clone())
            .collect();
        self.generation += 1;
        let warnings = loaded
            .diagnostics
            .iter()
            .filter(|d| crate::config::counts_for_health(d))
            .count();
        let view = ConfigView::new(&new, self.generation, warnings, config_source(loaded));
        let identity = identity_view(&new);
        // Observers see the new configuration before the log says it applied.
        self.snapshot.send_modify(|s| {
            s.config = view;
            s.identity = identity;
            s.rejected_reload = None;
            s.last_actions.retain(|t, _| new_names.contains(t));
        });
        self.emit(Event::ReloadApplied {
            generation: self.generation,
            targets: new.targets.len(),
            added: added.clone(),
            removed,
            changed: changed.clone(),
        });
        for t in new.targets.iter().filter(|t| added.contains(&t.name)) {
            announce_target(t);
        }
        let units = new.watched_units();
        self.engine.reconfigure(&new);
        // A changed process target starts again on its new policy.
        for name in &changed {
            if let Some(handle) = self.processes.remove(name) {
                handle.stop();
            }
        }
        self.config = new;
        self.start_processes();
        self.start_probes();
        match &self.supervisor {
            Some(supervisor) => {
                let supervisor = supervisor.clone();
                self.snapshot.send_modify(|s| {
                    s.units.retain(|u, _| units.contains(u));
                    s.accounting.retain(|u, _| units.contains(u));
                });
                tokio::spawn(async move { supervisor.watch(units).await });
            }
            None => self.start_supervisor_if_needed(),
        }
    }
}
