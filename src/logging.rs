//! Logging: structured `tracing` events to journald when its socket answers,
//! readable text on stderr otherwise.
//!
//! Field names become journald fields without a prefix (`TARGET_NAME=`,
//! `ACTION=`, `INCIDENT=`), and an event about a systemd unit carries
//! `object_systemd_unit`, so `journalctl -u camera.service` shows what the
//! watchdog did to it. Priorities follow syslog: info is 6 and debug 7, so
//! `journalctl -p info` hides debug lines (tracing-journald's default maps
//! info to 5 and debug to 6). The level can change at reload.

use tracing::level_filters::LevelFilter;
use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, reload};

use crate::config::LogOutput;

/// Changes the level of the installed logger.
#[derive(Clone)]
pub struct LogHandle {
    level: reload::Handle<LevelFilter, Registry>,
    /// Where lines go: `"journald"` or `"stderr"`.
    pub destination: &'static str,
}

impl LogHandle {
    /// Sets the lowest level logged.
    pub fn set_level(&self, level: tracing::Level) {
        // Fails only when the subscriber is gone, at exit.
        let _ = self.level.modify(|f| *f = LevelFilter::from_level(level));
    }
}

/// The priority mapping journald readers expect.
pub fn priorities() -> PriorityMappings {
    PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// Installs the global logger. `Auto` uses journald when its socket answers.
/// Returns a handle to change the level later. Safe to call once per process;
/// a second call leaves the first logger in place.
pub fn init(level: tracing::Level, output: LogOutput) -> LogHandle {
    let (filter, handle) = reload::Layer::new(LevelFilter::from_level(level));
    let journald = match output {
        LogOutput::Stderr => None,
        LogOutput::Auto | LogOutput::Journald => match tracing_journald::layer() {
            Ok(layer) => Some(
                layer
                    .with_field_prefix(None)
                    .with_priority_mappings(priorities())
                    .with_syslog_identifier("rvm-watchdog".into()),
            ),
            Err(e) => {
                if output == LogOutput::Journald {
                    eprintln!("rvm-watchdog: journald is not reachable ({e}); logging to stderr");
                }
                None
            }
        },
    };
    let destination = if journald.is_some() {
        "journald"
    } else {
        "stderr"
    };
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(false)
            .boxed()
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .try_init();
    LogHandle {
        level: handle,
        destination,
    }
}
