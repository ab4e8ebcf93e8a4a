//! Recovery hooks: executable files that a policy names by file name.
//!
//! Hooks run as root, so only files an attacker could not have written are
//! accepted: a regular file, owned by root, executable, and neither group-
//! nor world-writable. Hooks come from directories only — never from an API
//! call or alert text. The search path is `[daemon] hooks-dirs`; the first
//! directory holding the name wins, so a site hook overrides a shipped one.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a hook cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The name has a path separator or is otherwise not a plain file name.
    #[error("hook name \"{0}\" must be a plain file name, without '/'")]
    BadName(String),
    /// No directory of the search path holds it.
    #[error("hook \"{name}\" not found in {searched}")]
    NotFound {
        /// Hook name.
        name: String,
        /// The directories searched, for the message.
        searched: String,
    },
    /// The file is there but unsafe or unusable.
    #[error("hook {path} is refused: {why}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Finds `name` in `dirs` and checks that it is safe to run as root.
pub fn resolve(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, HookError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(HookError::BadName(name.to_owned()));
    }
    for dir in dirs {
        let path = dir.join(name);
        if path.symlink_metadata().is_ok() {
            check_file(&path)?;
            return Ok(path);
        }
    }
    let searched = if dirs.is_empty() {
        "no hooks directory (set [daemon] hooks-dirs)".to_owned()
    } else {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(HookError::NotFound {
        name: name.to_owned(),
        searched,
    })
}

/// Checks that an existing hook file is safe to run as root.
pub fn check_file(path: &Path) -> Result<(), HookError> {
    let refused = |why: String| HookError::Refused {
        path: path.to_owned(),
        why,
    };
    // Follow a symlink, but judge the file it points to.
    let meta = std::fs::metadata(path).map_err(|e| refused(format!("cannot read it ({e})")))?;
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    let mode = meta.permissions().mode();
    if meta.uid() != 0 {
        return Err(refused(format!(
            "owned by uid {}, not root (hooks run as root)",
            meta.uid()
        )));
    }
    if mode & 0o022 != 0 {
        return Err(refused(format!(
            "mode {:04o} lets group or others write it (fix: chmod go-w {})",
            mode & 0o7777,
            path.display()
        )));
    }
    if mode & 0o100 == 0 {
        return Err(refused(format!(
            "not executable (mode {:04o}; fix: chmod 755 {})",
            mode & 0o7777,
            path.display()
        )));
    }
    Ok(())
}
