//! A pushed JSON body: stored whole or refused with reasons, never a panic;
//! what is accepted has finite values and non-empty names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvm_watchdog::metrics::ingest::{Format, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    match parse(Format::Json, body, 1_764_600_000_000) {
        Ok(samples) => {
            for s in &samples {
                assert!(!s.key.name.is_empty(), "{s:?}");
                assert!(s.value.is_finite(), "{s:?}");
            }
        }
        Err(reasons) => assert!(!reasons.is_empty()),
    }
});
