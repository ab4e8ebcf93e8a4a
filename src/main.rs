//! `rvm-watchdog`: parse the command line, set up logging, run, map the
//! outcome to an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use rvm_watchdog::cli::{Cli, Command};

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
        Command::Run(args) => match rvm_watchdog::daemon::main(args.sources()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rvm-watchdog: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
