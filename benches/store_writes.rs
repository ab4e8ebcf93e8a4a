//! What the event log costs the flash: 200 events appended 5 ms apart (a
//! ladder's burst) through the store thread, one transaction each and in
//! batches, counted as the bytes the process sent to storage
//! (`/proc/self/io` `write_bytes`, after a `sync`). Run with
//! `cargo bench --bench store_writes`.

use std::time::{Duration, SystemTime};

use rvm_watchdog::store::{NewEvent, Store, StoreThread};

const EVENTS: u64 = 200;

fn written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("read /proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/self/io")
}

fn sync() {
    let _ = std::process::Command::new("sync").status();
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    for batched in [false, true] {
        // On disk (not tmpfs), where write_bytes counts.
        let dir = tempfile::tempdir_in("/var/tmp").expect("a directory under /var/tmp");
        let thread = StoreThread::spawn(Store::open(dir.path()).expect("open the store"));
        rt.block_on(thread.query_committed(|_| Ok(())))
            .expect("the store answers");
        sync();
        let before = written();
        for i in 0..EVENTS {
            let job = move |s: &Store| {
                s.append_event(&NewEvent::new(
                    SystemTime::now(),
                    "decision",
                    format!("crashloop: attempt {i} of the ladder, restart in 2s"),
                ))
                .map(drop)
            };
            if batched {
                thread.write_batched("append to the event log", job);
            } else {
                thread.write("append to the event log", job);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // A committed query commits what is open.
        rt.block_on(thread.query_committed(|_| Ok(())))
            .expect("the store answers");
        sync();
        let bytes = written() - before;
        println!(
            "{}: {EVENTS} events, {bytes} bytes written, {} bytes an event",
            if batched {
                "batched"
            } else {
                "one transaction each"
            },
            bytes / EVENTS
        );
    }
}
