//! `rvm-watchdog`: parse the command line, set up logging, run, map the
//! outcome to an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use rvm_watchdog::cli::{Cli, Command, alerts};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("rvm-watchdog {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check(args) => {
            match rvm_watchdog::cli::check(&args, &mut std::io::stdout().lock()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("rvm-watchdog: cannot write the report: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Restart(args) => api_call(
            &args.api,
            &format!("/api/v1/targets/{}/restart", args.target),
        ),
        Command::Reset(args) => {
            api_call(&args.api, &format!("/api/v1/targets/{}/reset", args.target))
        }
        Command::Step(args) => api_call(
            &args.api,
            &format!("/api/v1/targets/{}/steps/{}", args.target, args.step),
        ),
        Command::Pause(args) => api_call(&args.api, &args.path()),
        Command::Resume(args) => api_call(
            &args.api,
            &format!("/api/v1/targets/{}/resume", args.target),
        ),
        Command::Reload(args) => api_call(&args, "/api/v1/reload"),
        Command::Probe(args) => {
            match rvm_watchdog::cli::probe(&args, &mut std::io::stdout().lock()) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("rvm-watchdog: {e}");
                    ExitCode::from(3)
                }
            }
        }
        Command::TestChannel(args) => {
            match rvm_watchdog::cli::channel::test_channel(&args, &mut std::io::stdout().lock()) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("rvm-watchdog: {e}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Completions(args) => {
            rvm_watchdog::cli::docs::completions(&args, &mut out());
            ExitCode::SUCCESS
        }
        Command::Manpage(args) => match rvm_watchdog::cli::docs::manpage(&args, &mut out()) {
            Ok(written) => {
                for path in written {
                    println!("wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvm-watchdog: cannot write the man pages: {e}");
                ExitCode::from(1)
            }
        },
        Command::Status(args) => {
            use std::io::IsTerminal as _;
            let tty = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            match rvm_watchdog::cli::status::status(&args, tty, &mut out()) {
                Ok(Some(true)) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("rvm-watchdog: cannot write the answer: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Query(args) => {
            use std::io::IsTerminal as _;
            let tty = std::io::stdout().is_terminal();
            match rvm_watchdog::cli::query(&args, tty, &mut std::io::stdout().lock()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("rvm-watchdog: cannot write the answer: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Alerts(args) => done(alerts::list(&args, &mut out())),
        Command::Alert(args) => done(alerts::one(&args, &mut out())),
        Command::Ack(args) => done(alerts::ack(&args, &mut out())),
        Command::Unack(args) => done(alerts::unack(&args, &mut out())),
        Command::Silence(args) => done(alerts::silence(&args, &mut out())),
        Command::Silences(args) => done(alerts::silences(&args, &mut out())),
        Command::Unsilence(args) => done(alerts::unsilence(&args, &mut out())),
        Command::Maintenance(args) => done(alerts::maintenance(&args, &mut out())),
        Command::Incidents(args) => done(alerts::incidents(&args, &mut out())),
        Command::Notifications(args) => done(alerts::notifications(&args, &mut out())),
        Command::Events(args) => done(rvm_watchdog::cli::events::events(&args, &mut out())),
        Command::Run(args) => match rvm_watchdog::daemon::main(args.sources()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rvm-watchdog: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

/// Exit code 0 when the daemon answered as asked, 1 otherwise.
fn done(result: std::io::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rvm-watchdog: cannot write the answer: {e}");
            ExitCode::from(1)
        }
    }
}

fn api_call(args: &rvm_watchdog::cli::ApiArgs, path: &str) -> ExitCode {
    match rvm_watchdog::cli::call(args, path, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rvm-watchdog: cannot write the answer: {e}");
            ExitCode::from(1)
        }
    }
}
