//! rvm-watchdog: the supervisor and self-healing watchdog for reverse
//! vending machines.
//!
//! The daemon is this library's [`daemon::run`]; `main` only parses the
//! command line. Words used throughout: a **target** is a thing kept alive,
//! a **probe** one check of it, a **policy** the file that describes a
//! target, its probes, its recovery **ladder** and its alerting.

pub mod alert;
pub mod api;
pub mod cli;
pub mod command;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod event;
pub mod hook;
pub mod logging;
pub mod metrics;
pub mod platform;
pub mod probe;
pub mod process;
pub mod recovery;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod trust;
