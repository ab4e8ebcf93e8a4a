//! The control API is always guarded: the daemon makes a token when none
//! is configured, says where, and the local CLI finds it; a token file
//! named by a reload takes effect, or the reload is refused with the reason;
//! a world-writable token file is refused by `check`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use support::daemon::{TestDaemon, binary, try_http_post};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn secret(path: &Path, text: &str, mode: u32) {
    write(path, text);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn setup(dir: &Path, extra: &str) -> TestDaemon {
    write(
        &dir.join("watchdog.toml"),
        &format!("[log]\noutput = \"stderr\"\n{extra}"),
    );
    write(
        &dir.join("policies/alpha.toml"),
        "[target]\nname = \"alpha\"\n\n[[probe]]\nkind = \"memory\"\n",
    );
    TestDaemon::start(dir)
}

#[test]
fn without_a_token_file_the_daemon_makes_one_says_where_and_the_cli_uses_it() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let mut daemon = setup(dir, "");
    let token_file = dir.join("state/api.token");
    let line = daemon.wait_for_line("no [api] token-file", Duration::from_secs(10));
    assert!(line.contains(&token_file.display().to_string()), "{line}");
    let meta = std::fs::metadata(&token_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        nix::unistd::geteuid().as_raw()
    );

    // On loopback, with no token-file: still guarded.
    for path in ["/api/v1/reload", "/api/v1/targets/alpha/reset"] {
        let (code, _, body) = try_http_post(daemon.addr, path, None).unwrap();
        assert_eq!(code, 401, "POST {path}: {body}");
        let (code, _, body) = try_http_post(daemon.addr, path, Some("guess")).unwrap();
        assert_eq!(code, 401, "POST {path}: {body}");
    }
    let (code, text) = daemon.cli(dir, &["reload"]);
    assert_eq!(code, Some(0), "{text}");

    // A second start keeps the token.
    let first = daemon.token(dir);
    drop(daemon);
    let daemon = TestDaemon::start(dir);
    assert_eq!(daemon.token(dir), first);
    let (code, _, body) = try_http_post(daemon.addr, "/api/v1/reload", Some(&first)).unwrap();
    assert_eq!(code, 200, "{body}");
}

#[test]
fn a_token_file_a_reload_adds_takes_effect_and_an_unusable_one_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let daemon = setup(dir, "");
    let generated = daemon.token(dir);

    // The operator adds a token file and reloads.
    let token_file = dir.join("etc/api.token");
    secret(&token_file, "n3w-t0ken\n", 0o600);
    write(
        &dir.join("watchdog.toml"),
        &format!(
            "[log]\noutput = \"stderr\"\n\n[api]\ntoken-file = \"{}\"\n",
            token_file.display()
        ),
    );
    let (code, _, body) = try_http_post(daemon.addr, "/api/v1/reload", Some(&generated)).unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = try_http_post(daemon.addr, "/api/v1/reload", Some(&generated)).unwrap();
    assert_eq!(code, 401, "the old token still works: {body}");
    let (code, _, body) = try_http_post(daemon.addr, "/api/v1/reload", Some("n3w-t0ken")).unwrap();
    assert_eq!(code, 200, "{body}");
    // The CLI follows the configuration to the new file.
    let (code, text) = daemon.cli(dir, &["reload"]);
    assert_eq!(code, Some(0), "{text}");

    // A token file others may write: the reload is refused, naming it, and
    // the token in force stays.
    let open = dir.join("etc/open.token");
    secret(&open, "anyone\n", 0o666);
    write(
        &dir.join("watchdog.toml"),
        &format!(
            "[log]\noutput = \"stderr\"\n\n[api]\ntoken-file = \"{}\"\n",
            open.display()
        ),
    );
    let (code, _, body) = try_http_post(daemon.addr, "/api/v1/reload", Some("n3w-t0ken")).unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(&open.display().to_string()) && body.contains("mode 0666"),
        "{body}"
    );
    let (code, _, body) = try_http_post(daemon.addr, "/api/v1/reload", Some("anyone")).unwrap();
    assert_eq!(code, 401, "{body}");
}

#[test]
fn check_refuses_a_token_file_others_may_write_or_that_another_user_owns() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let token = dir.join("api.token");
    write(
        &dir.join("watchdog.toml"),
        &format!("[api]\ntoken-file = \"{}\"\n", token.display()),
    );
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    let check = || {
        let out = binary()
            .arg("check")
            .arg("--config")
            .arg(dir.join("watchdog.toml"))
            .arg("--policies")
            .arg(dir.join("policies"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    secret(&token, "s3cret\n", 0o600);
    let (code, text) = check();
    assert_eq!(code, Some(0), "{text}");
    // Judged on write bits too, not only read bits.
    for mode in [0o602, 0o620, 0o666] {
        secret(&token, "s3cret\n", mode);
        let (code, text) = check();
        assert_eq!(code, Some(1), "mode {mode:o}: {text}");
        assert!(
            text.contains("watchdog.toml:2:") && text.contains(&format!("mode {mode:04o}")),
            "{text}"
        );
    }
    if nix::unistd::geteuid().is_root() {
        secret(&token, "s3cret\n", 0o600);
        nix::unistd::chown(&token, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let (code, text) = check();
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains("owned by uid 65534"), "{text}");
    }
}
