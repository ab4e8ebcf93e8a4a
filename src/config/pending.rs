//! Keys the files accept that do nothing yet.
//!
//! The files already describe the earlier platform's endpoints, so that a site writes its
//! configuration once. Until a feature lands, each of its keys (or tables)
//! that a file sets gets one warning, from `check` and at every start and
//! reload, so that nobody counts on it. [`NOT_IN_EFFECT`] is the one list:
//! a feature removes its entries when it lands.

use super::diag::{Anchor, Diagnostic, KeyPath, Severity, SourceFile, key_shown};

/// Which file a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `watchdog.toml`.
    Daemon,
    /// A policy file.
    Policy,
}

/// A key or table that is accepted but not in effect yet.
#[derive(Debug, Clone, Copy)]
pub struct NotInEffect {
    /// The file it is in.
    pub file: FileKind,
    /// Its path: keys, `*` for every table of a set of named tables
    /// (`[channels.NAME]`), `[]` for every table of an array (`[[rule]]`).
    pub path: &'static [&'static str],
    /// Why it does nothing, for the operator.
    pub why: &'static str,
    /// Only tables whose `kind` is one of these (all when empty).
    pub kinds: &'static [&'static str],
}

/// Every key and table that is accepted but not in effect yet: none in
/// this version (the last, `[platform] legacy-endpoints`, is served now).
pub const NOT_IN_EFFECT: &[NotInEffect] = &[];

/// One warning for each key or table of [`NOT_IN_EFFECT`] that `src` sets.
pub fn warn(src: &SourceFile, file: FileKind, out: &mut Vec<Diagnostic>) {
    warn_of(NOT_IN_EFFECT, src, file, out);
}

/// [`warn`] for the entries given.
fn warn_of(entries: &[NotInEffect], src: &SourceFile, file: FileKind, out: &mut Vec<Diagnostic>) {
    for entry in entries.iter().filter(|e| e.file == file) {
        for path in expand(src, entry.path) {
            if !entry.kinds.is_empty()
                && !src
                    .written(&path.key("kind"))
                    .is_some_and(|k| entry.kinds.contains(&k.trim_matches(['"', '\''])))
            {
                continue;
            }
            let message = format!(
                "{} is accepted but not in effect yet: {}",
                describe(src, entry.path, &path),
                entry.why
            );
            out.push(src.at(&path, Anchor::Key, Severity::Warning, message));
        }
    }
}

/// The paths of `src` that a pattern names.
fn expand(src: &SourceFile, pattern: &[&str]) -> Vec<KeyPath> {
    let mut paths = vec![KeyPath::root()];
    for step in pattern {
        paths = paths
            .into_iter()
            .flat_map(|p| -> Vec<KeyPath> {
                match *step {
                    "*" => src.keys_at(&p).iter().map(|k| p.key(k)).collect(),
                    "[]" => (0..src.items_at(&p)).map(|i| p.index(i)).collect(),
                    key => {
                        let p = p.key(key);
                        if src.has(&p) { vec![p] } else { Vec::new() }
                    }
                }
            })
            .collect();
    }
    paths
}

/// `[channels.ops-email]`, `[[rule]] "disk-filling"`, `[api] dashboard`.
fn describe(src: &SourceFile, pattern: &[&str], path: &KeyPath) -> String {
    match pattern.last() {
        Some(&"[]") => {
            let table = KeyPath(path.0[..path.0.len() - 1].to_vec());
            match src.written(&path.key("name")) {
                Some(name) if name.starts_with(['"', '\'']) => {
                    format!("[[{table}]] {}", super::diag::plain(name))
                }
                _ => format!("[[{table}]]"),
            }
        }
        Some(&"*") => format!("[{path}]"),
        _ if pattern.len() == 1 => format!("[{path}]"),
        _ => {
            let table = KeyPath(path.0[..path.0.len() - 1].to_vec());
            let key = path.last_key().unwrap_or("?");
            format!("[{table}] {}", key_shown(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_not_in_effect_gets_one_located_warning_in_its_own_kind_of_file() {
        let entries = [NotInEffect {
            file: FileKind::Daemon,
            path: &["platform", "future-key"],
            why: "it is for a later version",
            kinds: &[],
        }];
        let text = "[platform]\nbase-url = \"https://x.example\"\nfuture-key = 1\n";
        let src = SourceFile::new("watchdog.toml", text.to_owned());
        let mut out = Vec::new();
        warn_of(&entries, &src, FileKind::Daemon, &mut out);
        let lines: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "watchdog.toml:3:1: warning: [platform] future-key is accepted but not in effect yet: it is for a later version",
            ]
        );
        let mut none = Vec::new();
        warn_of(&entries, &src, FileKind::Policy, &mut none);
        assert!(none.is_empty());
    }
}
