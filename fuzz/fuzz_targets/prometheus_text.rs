//! Prometheus text, pushed or scraped: samples or located errors, never a
//! panic; both ways in (ingest and the text parser) agree on refusing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvm_watchdog::metrics::ingest::{Format, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = 1_764_600_000_000;
    let direct = rvm_watchdog::metrics::text::parse(text, now);
    let pushed = parse(Format::Text, text, now);
    if let Ok(samples) = &direct {
        for s in samples {
            assert!(!s.key.name.is_empty(), "{s:?}");
        }
    }
    if direct.is_err() {
        assert!(pushed.is_err(), "the text parser refused what ingest took");
    }
});
