//! A tegrastats line: any text parses to a sample or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        if let Ok(sample) = rvm_watchdog::probe::tegrastats::parse(line) {
            // What it read is a measurement, not garbage.
            let _ = format!("{sample:?}");
        }
    }
});
