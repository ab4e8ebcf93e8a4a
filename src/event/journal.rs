//! The journald record of each event: a line for people and the fields
//! operators filter on (`TARGET_NAME=`, `OBJECT_SYSTEMD_UNIT=`, `INCIDENT=`,
//! `STEP=`, `ACTION=`, `EVENT_KIND=`). Only [`super::Events::emit`] calls this.

use std::time::Duration;

use tracing::{error, info, warn};

use super::{ActionResult, Event, Trouble};
use crate::probe::ProbeHealth;
use crate::recovery::{Decision, Health};
use crate::store::BootEnd;

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

fn human_ms(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64))
}

/// Writes the record of one event.
pub fn write(event: &Event) {
    let kind = event.kind();
    match event {
        Event::UnitChanged { target, state } => match state.failure() {
            Some(why) => warn!(
                object_systemd_unit = %state.unit,
                target_name = target.as_deref(),
                active_state = %state.active_state,
                sub_state = %state.sub_state,
                result = %state.result,
                n_restarts = state.n_restarts,
                event_kind = kind,
                "unit {} failed: {why}",
                state.unit
            ),
            None => info!(
                object_systemd_unit = %state.unit,
                target_name = target.as_deref(),
                active_state = %state.active_state,
                sub_state = %state.sub_state,
                main_pid = state.main_pid,
                event_kind = kind,
                "unit {} is {}",
                state.unit,
                state.summary()
            ),
        },
        Event::ProbeChanged {
            target,
            unit,
            probe,
            health,
            output,
            ..
        } => match health {
            ProbeHealth::Failing => warn!(
                target_name = %target,
                object_systemd_unit = unit.as_deref(),
                probe = %probe,
                event_kind = kind,
                "probe {target}/{probe} is failing: {output}"
            ),
            _ => info!(
                target_name = %target,
                object_systemd_unit = unit.as_deref(),
                probe = %probe,
                event_kind = kind,
                "probe {target}/{probe} is passing: {output}"
            ),
        },
        Event::HealthChanged {
            target,
            unit,
            from,
            to,
        } => info!(
            target_name = %target,
            object_systemd_unit = unit.as_deref(),
            from = health_word(from),
            to = health_word(to),
            event_kind = kind,
            "{target}'s health: {} → {}",
            health_word(from),
            describe(to)
        ),
        Event::IncidentOpened {
            target,
            unit,
            id,
            reason,
            root_cause,
        } => warn!(
            target_name = %target,
            object_systemd_unit = unit.as_deref(),
            incident = %id,
            reason = %reason,
            root_cause = root_cause.as_deref(),
            event_kind = kind,
            "{target} is failing: {reason}{}",
            root_cause
                .as_ref()
                .map(|r| format!(" (root cause: {r}, which it depends on)"))
                .unwrap_or_default()
        ),
        Event::IncidentClosed {
            target,
            unit,
            id,
            lasted,
        } => info!(
            target_name = %target,
            object_systemd_unit = unit.as_deref(),
            incident = %id,
            lasted_ms = lasted.as_millis() as u64,
            event_kind = kind,
            "{target} is healthy again after {}",
            human(*lasted)
        ),
        Event::Decided {
            target,
            unit,
            incident,
            systemd,
            ladder,
            reset_after,
            decision,
        } => decided(
            Where {
                name: target,
                unit: unit.as_deref(),
                incident: incident.as_deref(),
            },
            *systemd,
            ladder,
            *reset_after,
            decision,
        ),
        Event::ActionStarted {
            target,
            unit,
            step,
            attempt,
            action,
            observe: true,
            ..
        } => info!(
            target_name = %target,
            object_systemd_unit = unit.as_deref(),
            step = step + 1,
            attempt,
            action,
            observe = true,
            event_kind = kind,
            "observe mode: would {action} {target} (step {}, attempt {attempt}); doing nothing",
            step + 1
        ),
        Event::ActionStarted {
            target,
            unit,
            incident,
            step,
            attempt,
            action,
            reason,
            ..
        } => info!(
            target_name = %target,
            object_systemd_unit = unit.as_deref(),
            incident = incident.as_deref(),
            step = step + 1,
            attempt,
            action,
            event_kind = kind,
            "{action} of {target} started (step {}, attempt {attempt}): {reason}",
            step + 1
        ),
        Event::ActionFinished {
            target,
            unit,
            incident,
            step,
            attempt,
            action,
            result,
            detail,
            took,
            ..
        } => {
            let took_ms = took.as_millis() as u64;
            match result {
                ActionResult::Failed => warn!(
                    target_name = %target,
                    object_systemd_unit = unit.as_deref(),
                    incident = incident.as_deref(),
                    step = step + 1,
                    attempt,
                    action,
                    result = "failed",
                    took_ms,
                    event_kind = kind,
                    "{action} of {target} failed: {detail}"
                ),
                _ => info!(
                    target_name = %target,
                    object_systemd_unit = unit.as_deref(),
                    incident = incident.as_deref(),
                    step = step + 1,
                    attempt,
                    action,
                    result = result.as_str(),
                    took_ms,
                    event_kind = kind,
                    "{action} of {target}: {detail}"
                ),
            }
        }
        Event::OperatorCommand {
            target,
            unit,
            command,
            action,
            ok,
            detail,
            took,
            ..
        } => {
            let what = action.unwrap_or(command);
            let took_ms = took.as_millis() as u64;
            if *ok {
                info!(target_name = %target, object_systemd_unit = unit.as_deref(), command, action = *action, operator = true, result = "ok", took_ms, event_kind = kind, "operator {what} of {target}: {detail}");
            } else {
                warn!(target_name = %target, object_systemd_unit = unit.as_deref(), command, action = *action, operator = true, result = "failed", took_ms, event_kind = kind, "operator {what} of {target} failed: {detail}");
            }
        }
        Event::ReloadApplied {
            generation,
            targets,
            added,
            removed,
            changed,
        } => info!(
            generation,
            targets,
            added = ?added,
            removed = ?removed,
            changed = ?changed,
            event_kind = kind,
            "reload applied"
        ),
        Event::ReloadRefused {
            generation,
            problems,
        } => error!(
            errors = problems.len(),
            generation,
            event_kind = kind,
            "reload refused: the configuration has {} error(s); running configuration kept",
            problems.len()
        ),
        Event::SafeModeEntered { reason } => error!(
            reason = %reason,
            event_kind = kind,
            "entering safe mode: {reason}; no more automatic reboots, probing, recovery and alerts go on"
        ),
        Event::BusLost { bus, error } => warn!(
            bus = %bus,
            error = %error,
            event_kind = kind,
            "not connected to systemd; retrying with backoff"
        ),
        Event::BusRegained { bus, reconnects } => info!(
            bus = %bus,
            reconnects,
            event_kind = kind,
            "connected to systemd again on the {bus} (reconnect {reconnects})"
        ),
        Event::BootReport { boot_id, previous } => match previous.as_ref().map(|p| (p, &p.ended)) {
            None => info!(boot_id = %boot_id, event_kind = kind, "first boot recorded"),
            Some((p, BootEnd::WatchdogReboot { target, reason, .. })) => warn!(
                boot_id = %boot_id,
                previous_boot = %p.boot_id,
                target_name = target.as_deref(),
                reason = %reason,
                event_kind = kind,
                "the previous boot ended with a reboot by the watchdog: {reason}"
            ),
            Some((p, BootEnd::CleanShutdown { .. })) => info!(
                boot_id = %boot_id,
                previous_boot = %p.boot_id,
                event_kind = kind,
                "the previous boot ended with a clean shutdown"
            ),
            Some((p, BootEnd::Unexpected)) => warn!(
                boot_id = %boot_id,
                previous_boot = %p.boot_id,
                event_kind = kind,
                "the previous boot ended unexpectedly (power loss, crash, or a reboot the watchdog did not see)"
            ),
        },
        Event::Trouble(t) => match t {
            Trouble::StoreUnwritable {
                failed,
                dropped,
                error,
            } => error!(
                trouble = "store-unwritable",
                failed,
                dropped,
                error = %error,
                event_kind = kind,
                "the state store is not taking writes ({failed} failed, {dropped} dropped): {error}"
            ),
            Trouble::QueueFull { queue, lost } => error!(
                trouble = "queue-full",
                queue,
                lost,
                event_kind = kind,
                "the {queue} fell behind by more than {} events; the oldest are being dropped",
                super::BACKLOG
            ),
            Trouble::QueueCaughtUp { queue, lost } => warn!(
                trouble = "queue-caught-up",
                queue,
                lost,
                event_kind = kind,
                "the {queue} caught up; it lost {lost} event(s) while behind"
            ),
        },
    }
}

fn health_word(h: &Health) -> &'static str {
    match h {
        Health::Unknown => "unknown",
        Health::Stopped => "stopped",
        Health::Healthy => "healthy",
        Health::Failing { .. } => "failing",
    }
}

fn describe(h: &Health) -> String {
    match h {
        Health::Failing { reason, .. } => format!("failing ({reason})"),
        other => health_word(other).to_owned(),
    }
}

/// Which target a decision is about.
struct Where<'a> {
    name: &'a str,
    unit: Option<&'a str>,
    incident: Option<&'a str>,
}

/// One record per ladder decision, with the ladder's fields.
fn decided(
    at: Where<'_>,
    systemd: Option<(u32, u32)>,
    ladder: &[&'static str],
    reset_after: Duration,
    decision: &Decision,
) {
    let Where {
        name,
        unit,
        incident,
    } = at;
    let kind = "decision";
    let action_of = |step: usize| ladder.get(step).copied().unwrap_or("-");
    match decision {
        Decision::Act {
            step,
            attempt,
            action,
            reason,
            rescue,
        } => warn!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = step + 1,
            attempt,
            action = action.as_str(),
            reason = %reason,
            rescue = *rescue,
            n_restarts = systemd.map(|s| s.0),
            start_limit_burst = systemd.map(|s| s.1),
            event_kind = kind,
            "recovering {name}: {} (step {}, attempt {attempt}) because {reason}{}",
            action.as_str(),
            step + 1,
            // Set for a start-limit rescue only.
            systemd
                .map(|(n, limit)| format!("; systemd's NRestarts={n}, StartLimitBurst={limit}"))
                .unwrap_or_default()
        ),
        Decision::Scheduled {
            step,
            attempt,
            delay,
        } => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = step + 1,
            attempt,
            action = action_of(*step),
            delay_ms = delay.as_millis() as u64,
            event_kind = kind,
            "{name}: {} (step {}, attempt {attempt}) in {}",
            action_of(*step),
            step + 1,
            human_ms(*delay)
        ),
        Decision::SystemdRestartCounted { step, attempt } => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = step + 1,
            attempt,
            event_kind = kind,
            "systemd restarted {name} itself; counted as attempt {attempt} of step {}",
            step + 1
        ),
        Decision::Held { by } => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            held_by = %by,
            event_kind = kind,
            "holding {name}'s recovery: it depends on {by}, which is being healed first"
        ),
        Decision::Released => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            event_kind = kind,
            "{name}'s recovery resumes: its dependencies are healthy"
        ),
        Decision::Escalated { from, to } => warn!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = to + 1,
            event_kind = kind,
            "{name}: step {} ({}) used up its attempts; escalating to step {} ({})",
            from + 1,
            action_of(*from),
            to + 1,
            action_of(*to)
        ),
        Decision::Recovered { step } => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            step = step + 1,
            event_kind = "recovered",
            "{name} recovered after step {} ({})",
            step + 1,
            action_of(*step)
        ),
        Decision::LadderReset => info!(
            target_name = name,
            object_systemd_unit = unit,
            event_kind = "ladder-reset",
            "{name} has been healthy for {}; its ladder starts over",
            humantime::format_duration(reset_after)
        ),
        Decision::PauseEnded => info!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            event_kind = kind,
            "{name}'s pause ended; recovery acts again"
        ),
        Decision::GaveUp { reason } => error!(
            target_name = name,
            object_systemd_unit = unit,
            incident,
            reason = %reason,
            event_kind = "gave-up",
            "gave up on {name}: {reason}; probing goes on, no more actions until an operator resets it"
        ),
        // Events of their own; never wrapped in `Decided`.
        Decision::IncidentOpened { .. } | Decision::IncidentClosed { .. } => {}
    }
}
