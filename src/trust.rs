//! Whether a file may be trusted with a secret or run as root: who owns it
//! and who may change it.
//!
//! A **secret file** (`[api] token-file`, `[platform] api-key-file`, a
//! channel's password file) is a regular file owned by root or by the
//! watchdog's own user that neither group nor others may read or write. A
//! **trusted path** (every directory above a hook, up to `/`) is owned the
//! same way and writable by no one else, so that nobody else can swap what
//! it holds. A world-writable directory with the sticky bit (`/tmp`) is
//! trusted for the entries root owns in it: nobody else can rename them.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Creates `path` with mode 0600 if it does not exist, and takes group and
/// other access away if it does (SQLite would create a database 0644, and
/// its `-wal` and `-shm` files copy the database's mode). On failure, the
/// step that failed (`opening`, the words for creating or opening it) and
/// the error.
pub fn private_file(
    path: &Path,
    opening: &'static str,
) -> Result<(), (&'static str, std::io::Error)> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| (opening, e))?;
    let mode = file
        .metadata()
        .map_err(|e| ("read the mode of", e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| ("make private", e))?;
    }
    Ok(())
}

/// Whether a uid may own a trusted file: root, or the watchdog's own user.
fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Checks a secret file: regular, trusted owner, mode `0600` or stricter
/// (no group or other read or write). The message names the file and the
/// command that fixes it.
pub fn secret_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read secret file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("secret file {shown} is not a regular file"));
    }
    if !trusted_owner(meta.uid()) {
        return Err(format!(
            "secret file {shown} is owned by uid {}, not root (fix: chown root:root {shown})",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o066 != 0 {
        return Err(format!(
            "secret file {shown} has mode {mode:04o}: group or others may read or write it (fix: chmod 600 {shown})"
        ));
    }
    Ok(())
}

/// Checks every directory above `file` (after symlinks are resolved), up
/// to `/`: each is owned by a trusted user and writable by no one else, or
/// is sticky and holds the next one owned by a trusted user.
pub fn trusted_parents(file: &Path) -> Result<(), String> {
    let real = std::fs::canonicalize(file)
        .map_err(|e| format!("cannot resolve {}: {e}", file.display()))?;
    let uid = std::fs::metadata(&real)
        .map_err(|e| format!("cannot read {}: {e}", real.display()))?
        .uid();
    match real.parent() {
        Some(dir) => walk(dir, trusted_owner(uid)),
        None => Ok(()),
    }
}

/// Checks a directory (a hooks directory) and every one above it: the
/// directory itself is writable by no one else, sticky or not.
pub fn trusted_dir(dir: &Path) -> Result<(), String> {
    let real =
        std::fs::canonicalize(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    walk(&real, false)
}

/// Walks from `dir` up to `/`. `sticky_ok`: whether the entry below `dir`
/// is owned by a trusted user (then a sticky `dir` cannot lose it).
fn walk(dir: &Path, mut sticky_ok: bool) -> Result<(), String> {
    let mut next = Some(dir);
    while let Some(d) = next {
        let meta = std::fs::metadata(d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        let mode = meta.mode() & 0o7777;
        if !trusted_owner(meta.uid()) {
            return Err(format!(
                "directory {} is owned by uid {}, not root (fix: chown root:root {})",
                d.display(),
                meta.uid(),
                d.display()
            ));
        }
        let sticky = mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !(sticky && sticky_ok) {
            return Err(format!(
                "directory {} has mode {mode:04o}: group or others may write in it and swap what it holds (fix: chmod go-w {})",
                d.display(),
                d.display()
            ));
        }
        sticky_ok = true;
        next = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_secret_file_is_refused_when_others_may_read_or_write_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        chmod(&file, 0o600);
        assert_eq!(secret_file(&file), Ok(()));
        chmod(&file, 0o400);
        assert_eq!(secret_file(&file), Ok(()));
        for mode in [0o640, 0o604, 0o602, 0o620, 0o666] {
            chmod(&file, mode);
            let why = secret_file(&file).unwrap_err();
            assert!(
                why.contains(&format!("mode {mode:04o}")) && why.contains("chmod 600"),
                "{why}"
            );
        }
        assert!(
            secret_file(dir.path())
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(
            secret_file(&dir.path().join("missing"))
                .unwrap_err()
                .contains("cannot read")
        );
    }

    #[test]
    fn a_secret_file_owned_by_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        chmod(&file, 0o600);
        nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let why = secret_file(&file).unwrap_err();
        assert!(why.contains("owned by uid 65534"), "{why}");
    }

    #[test]
    fn a_directory_others_may_write_is_not_trusted_but_a_sticky_one_is_for_roots_entries() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path().join("hooks");
        std::fs::create_dir(&hooks).unwrap();
        let hook = hooks.join("fix");
        std::fs::write(&hook, "#!/bin/sh\n").unwrap();
        chmod(&hooks, 0o755);
        assert_eq!(trusted_parents(&hook), Ok(()));
        chmod(&hooks, 0o777);
        let why = trusted_parents(&hook).unwrap_err();
        assert!(
            why.contains(&format!("directory {}", hooks.display())) && why.contains("0777"),
            "{why}"
        );
        // Sticky, like /tmp: others cannot swap root's entries.
        chmod(&hooks, 0o1777);
        if nix::unistd::geteuid().is_root() {
            assert_eq!(trusted_parents(&hook), Ok(()));
        }
        // A symlink is judged where it leads.
        chmod(&hooks, 0o755);
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let link = open.join("fix");
        std::os::unix::fs::symlink(&hook, &link).unwrap();
        assert_eq!(trusted_parents(&link), Ok(()));
        let real = open.join("real");
        std::fs::write(&real, "#!/bin/sh\n").unwrap();
        let link2 = hooks.join("fix2");
        std::os::unix::fs::symlink(&real, &link2).unwrap();
        assert!(
            trusted_parents(&link2)
                .unwrap_err()
                .contains(&open.display().to_string())
        );
        // A hooks directory is judged itself too, sticky or not.
        assert_eq!(trusted_dir(&hooks), Ok(()));
        chmod(&hooks, 0o1777);
        assert!(trusted_dir(&hooks).unwrap_err().contains("1777"));
    }
}
