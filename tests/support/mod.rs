//! Helpers shared by the integration tests. Each test file that needs them
//! declares `mod support;` and uses what it needs, so the rest is unused there.
#![allow(dead_code)]

pub mod daemon;
pub mod receiver;
pub mod systemd;
pub mod webdriver;
