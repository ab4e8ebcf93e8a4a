//! The command line: every subcommand lives here.
//!
//! Exit codes: 0 all well, 1 problems found (invalid configuration, a
//! failed start), 2 usage error (clap's own).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Bus, Sources};

/// Supervisor and self-healing watchdog for reverse vending machines.
#[derive(Debug, Parser)]
#[command(name = "rvm-watchdog", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (in the foreground; systemd runs it as rvm-watchdog.service).
    Run(RunArgs),
    /// Validate watchdog.toml and every policy, printing each problem as file:line:col.
    Check(FileArgs),
    /// Print the version.
    Version,
}

/// Which files to read.
#[derive(Debug, Clone, clap::Args)]
pub struct FileArgs {
    /// The daemon's configuration file [default: /etc/rvm-watchdog/watchdog.toml if it
    /// exists, else the embedded default].
    #[arg(long, value_name = "FILE", env = "RVM_WATCHDOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of policy files [default: `[daemon] policies-dir`, else
    /// /etc/rvm-watchdog/policies if it exists, else the embedded host policy].
    #[arg(long, value_name = "DIR", env = "RVM_WATCHDOG_POLICIES")]
    pub policies: Option<PathBuf>,
}

/// Options of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Files to read.
    #[command(flatten)]
    pub files: FileArgs,
    /// Directory for persisted state [default: `[daemon] state-dir`].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Address and port of the HTTP API [default: `[api] listen`, 127.0.0.1:9184].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Which D-Bus systemd is on [default: `[daemon] bus`, system].
    #[arg(long, value_enum)]
    pub bus: Option<BusArg>,
    /// Lowest level logged [default: `[log] level`, info].
    #[arg(long, value_enum)]
    pub log_level: Option<LevelArg>,
}

/// `--bus`
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BusArg {
    /// The system bus.
    System,
    /// The session bus (a user manager).
    User,
}

/// `--log-level`
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LevelArg {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation.
    Info,
    /// Decisions in detail.
    Debug,
    /// Everything.
    Trace,
}

impl RunArgs {
    /// The sources this run reads, with its overrides.
    pub fn sources(&self) -> Sources {
        Sources {
            config_file: self.files.config.clone(),
            policies_dir: self.files.policies.clone(),
            state_dir: self.state_dir.clone(),
            listen: self.listen,
            bus: self.bus.map(|b| match b {
                BusArg::System => Bus::System,
                BusArg::User => Bus::User,
            }),
            log_level: self.log_level.map(|l| match l {
                LevelArg::Error => tracing::Level::ERROR,
                LevelArg::Warn => tracing::Level::WARN,
                LevelArg::Info => tracing::Level::INFO,
                LevelArg::Debug => tracing::Level::DEBUG,
                LevelArg::Trace => tracing::Level::TRACE,
            }),
        }
    }
}

impl FileArgs {
    /// The sources `check` reads.
    pub fn sources(&self) -> Sources {
        Sources {
            config_file: self.config.clone(),
            policies_dir: self.policies.clone(),
            ..Sources::default()
        }
    }
}

/// `rvm-watchdog check`: prints `Checking '<file>' SUCCESS|FAILED` for each
/// file, then every problem, then a summary. Returns true when there are no errors.
pub fn check(args: &FileArgs, out: &mut impl std::io::Write) -> std::io::Result<bool> {
    let loaded = config::load(&args.sources());
    for file in &loaded.files {
        let verdict = if file.ok { "SUCCESS" } else { "FAILED" };
        writeln!(out, "Checking '{}' {verdict}", file.path.display())?;
    }
    for d in &loaded.diagnostics {
        writeln!(out, "{d}")?;
    }
    let errors = loaded.error_count();
    let warnings = loaded.diagnostics.len() - errors;
    match &loaded.config {
        Some(c) => writeln!(
            out,
            "configuration is valid: {} target{}, {warnings} warning{}",
            c.targets.len(),
            plural(c.targets.len()),
            plural(warnings)
        )?,
        None => writeln!(
            out,
            "configuration is invalid: {errors} error{}, {warnings} warning{}",
            plural(errors),
            plural(warnings)
        )?,
    }
    Ok(loaded.config.is_some())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
