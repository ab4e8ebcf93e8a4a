//! Idle connections cannot starve the API: with 2,000 connections held
//! open by a client that sends nothing, `/livez` and `/health` still
//! answer, and the daemon drops the idle ones once their time to send a
//! request head is up. The daemon starts under the soft open-file limit
//! systemd gives services by default (1024), as on a machine.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use support::daemon::{TestDaemon, try_http_get};

const IDLE: usize = 2000;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn livez_and_health_answer_under_two_thousand_idle_connections() {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if hard < (IDLE as u64) + 512 {
        assert!(
            std::env::var_os("CI").is_none(),
            "the hard open-file limit {hard} is too low for this test and CI is set"
        );
        eprintln!("notice: hard open-file limit {hard}; skipping");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write(&dir.join("watchdog.toml"), "[log]\noutput = \"stderr\"\n");
    write(
        &dir.join("policies/alpha.toml"),
        "[target]\nname = \"alpha\"\n\n[[probe]]\nkind = \"memory\"\n",
    );
    // The daemon inherits systemd's default soft limit; this test keeps room
    // for its own connections.
    setrlimit(Resource::RLIMIT_NOFILE, 1024.min(soft), hard).unwrap();
    let daemon = TestDaemon::start(dir);
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();

    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        match TcpStream::connect_timeout(&daemon.addr, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {i} of {IDLE}: {e}"),
        }
    }
    // Every one of many checks answers while the idle connections stay open.
    for round in 0..20 {
        for path in ["/livez", "/health"] {
            match try_http_get(daemon.addr, path) {
                Ok((200, _, _)) => {}
                other => {
                    panic!("round {round}: GET {path} with {IDLE} idle connections: {other:?}")
                }
            }
        }
    }

    // A connection that never sends a request head is dropped by the daemon.
    let mut first = idle.swap_remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = first.read(&mut buf);
    assert!(
        matches!(read, Ok(0))
            || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the idle connection was not closed within 60 s"
    );
    eprintln!(
        "an idle connection was closed {:.1} s after the check",
        started.elapsed().as_secs_f64()
    );
    drop(idle);
    assert!(matches!(
        try_http_get(daemon.addr, "/livez"),
        Ok((200, _, _))
    ));
}
