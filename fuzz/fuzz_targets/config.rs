//! watchdog.toml and a policy file, the input split at its first NUL:
//! loading never panics, and a configuration comes back exactly when no
//! error was found. Files are written under /dev/shm when it is there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvm_watchdog::config::{self, Level, Sources};

fuzz_target!(|data: &[u8]| {
    let (config_text, policy_text) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let dir = tempfile::tempdir_in(base).unwrap();
    std::fs::write(dir.path().join("watchdog.toml"), config_text).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.toml"), policy_text).unwrap();
    let loaded = config::load(&Sources {
        config_file: Some(dir.path().join("watchdog.toml")),
        policies_dir: Some(dir.path().join("policies")),
        ..Sources::default()
    });
    let errors = loaded
        .diagnostics
        .iter()
        .any(|d| d.severity == Level::Error);
    assert_eq!(loaded.config.is_some(), !errors, "{:?}", loaded.diagnostics);
    for d in &loaded.diagnostics {
        // Every problem is located in a file this load read.
        assert!(d.file.starts_with(dir.path()), "{d}");
    }
});
