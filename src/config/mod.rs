//! Configuration: `watchdog.toml` for the daemon and one policy file per
//! target, read, validated and turned into one [`Config`].
//!
//! Loading never stops at the first problem: every file is read, every
//! problem becomes a [`Diagnostic`] with `file:line:col`, and a
//! configuration is produced only when there are no errors. A reload uses
//! the same path, so it applies all or nothing.
//!
//! Without any file the daemon runs on an embedded default: the shipped
//! `watchdog.toml` and the `host` policy, which watch the machine itself.

pub mod diag;
pub mod model;
pub mod pending;
pub mod raw;
pub mod validate;
pub mod value;
mod wording;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Severity as Level, SourceFile};
pub use model::*;

use diag::KeyPath;
use raw::{RawConfig, RawPolicy, fields_of};
use value::did_you_mean;

/// Where the daemon's file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rvm-watchdog/watchdog.toml";

/// The shipped `watchdog.toml`, used when no file exists.
pub const EMBEDDED_CONFIG: &str = include_str!("../../packaging/watchdog.toml");
/// The policies used when no policies directory exists.
pub const EMBEDDED_POLICIES: [(&str, &str); 1] =
    [("host.toml", include_str!("../../policies/host.toml"))];
/// How embedded files are named in diagnostics.
pub const EMBEDDED_PREFIX: &str = "<embedded>";

/// What to load, and command-line values that override the files.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config`: must exist. `None`: [`DEFAULT_CONFIG_PATH`] if it exists, else the embedded default.
    pub config_file: Option<PathBuf>,
    /// `--policies`: must exist. `None`: `[daemon] policies-dir`, else the default directory if it exists, else the embedded policies.
    pub policies_dir: Option<PathBuf>,
    /// `--state-dir`
    pub state_dir: Option<PathBuf>,
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--bus`
    pub bus: Option<Bus>,
    /// `--log-level`
    pub log_level: Option<tracing::Level>,
}

/// The verdict on one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// The file.
    pub path: PathBuf,
    /// No errors in it.
    pub ok: bool,
}

/// The result of loading: the configuration if there were no errors, the
/// files read, and every problem found.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `Some` exactly when there are no errors.
    pub config: Option<Config>,
    /// Every file read, in order: the daemon's file first, then policies by name.
    pub files: Vec<FileCheck>,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// How many errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Level::Error)
            .count()
    }
}

/// Loads and validates everything.
pub fn load(sources: &Sources) -> Loaded {
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();

    // The daemon's file.
    let config_path = match &sources.config_file {
        Some(path) => Some(path.clone()),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => Some(PathBuf::from(DEFAULT_CONFIG_PATH)),
        None => None,
    };
    let config_src = match &config_path {
        Some(path) => read(path, &mut diagnostics),
        None => Some(SourceFile::new(
            format!("{EMBEDDED_PREFIX}/watchdog.toml"),
            EMBEDDED_CONFIG.to_owned(),
        )),
    };
    let mut config = None;
    let mut policies_dir_set = false;
    match &config_src {
        Some(src) => {
            let before = diagnostics.len();
            if let Some(raw) = src.deserialize::<RawConfig>(&mut diagnostics, describe_config_key) {
                pending::warn(src, pending::FileKind::Daemon, &mut diagnostics);
                policies_dir_set = raw.daemon.policies_dir.is_some();
                config = Some(validate::config(src, raw, &mut diagnostics));
            }
            files.push(FileCheck {
                path: src.path().to_owned(),
                ok: !has_errors(&diagnostics[before..]),
            });
        }
        None => files.push(FileCheck {
            path: config_path.clone().unwrap_or_default(),
            ok: false,
        }),
    }

    // Command-line overrides, before policies are read (hooks dirs and the
    // like do not change, but the state dir and bus may).
    if let Some(c) = &mut config {
        if let Some(dir) = &sources.state_dir {
            c.daemon.state_dir = dir.clone();
        }
        if let Some(listen) = sources.listen {
            c.api.listen = listen;
        }
        if let Some(bus) = sources.bus {
            c.daemon.bus = bus;
        }
        if let Some(level) = sources.log_level {
            c.log.level = level;
        }
    }

    // The policies.
    let default_dir = config
        .as_ref()
        .and_then(|c| c.daemon.policies_dir.clone())
        .unwrap_or_else(|| PathBuf::from(validate::DEFAULT_POLICIES_DIR));
    let policy_dir = match &sources.policies_dir {
        Some(dir) => Some(dir.clone()),
        // Named in the file: it must exist.
        None if policies_dir_set => Some(default_dir),
        None if default_dir.is_dir() => Some(default_dir),
        None => None,
    };
    let mut unread_policies = Vec::new();
    let policy_srcs: Vec<SourceFile> = match &policy_dir {
        Some(dir) => read_dir(dir, &mut diagnostics, &mut unread_policies),
        None => EMBEDDED_POLICIES
            .iter()
            .map(|(name, text)| {
                SourceFile::new(
                    format!("{EMBEDDED_PREFIX}/policies/{name}"),
                    (*text).to_owned(),
                )
            })
            .collect(),
    };
    if let Some(c) = &mut config {
        c.daemon.policies_dir = policy_dir.clone();
    }

    let mut targets = Vec::new();
    let mut declared = Vec::new();
    let mut unreadable = Vec::new();
    let mut policy_checks = Vec::new();
    let mut disabled_targets = Vec::new();
    for src in &policy_srcs {
        let before = diagnostics.len();
        match src.deserialize::<RawPolicy>(&mut diagnostics, describe_policy_key) {
            Some(raw) => {
                pending::warn(src, pending::FileKind::Policy, &mut diagnostics);
                if let Some(t) = &raw.target
                    && let Some(name) = &t.name
                {
                    declared.push(validate::Declared {
                        name: name.clone(),
                        enabled: t.enabled != Some(false),
                        src,
                    });
                }
                let disabled = raw
                    .target
                    .as_ref()
                    .filter(|t| t.enabled == Some(false))
                    .and_then(|t| t.name.clone());
                let mark = diagnostics.len();
                if let Some(c) = &config
                    && let Some(target) = validate::policy(src, raw, c, &mut diagnostics)
                {
                    targets.push((target, src));
                }
                if let Some(name) = disabled {
                    disabled_targets.push(DisabledTarget {
                        name,
                        source: src.path().to_owned(),
                        to_enable: demote_disabled(&mut diagnostics[mark..]),
                    });
                }
                src.release_index();
            }
            None => unreadable.push(src.path()),
        }
        policy_checks.push(before..diagnostics.len());
    }
    let before_cross = diagnostics.len();
    validate::cross_check(&targets, &declared, &unreadable, &mut diagnostics);
    if let (Some(c), Some(src)) = (&config, &config_src) {
        validate::dashboard_targets(src, c, &declared, &mut diagnostics);
    }
    let crossed_files: HashSet<PathBuf> = diagnostics[before_cross..]
        .iter()
        .filter(|d| d.severity == Level::Error)
        .map(|d| d.file.clone())
        .collect();
    for (src, range) in policy_srcs.iter().zip(policy_checks) {
        let own = has_errors(&diagnostics[range]);
        let crossed = crossed_files.contains(src.path());
        files.push(FileCheck {
            path: src.path().to_owned(),
            ok: !own && !crossed,
        });
    }

    for path in unread_policies {
        files.push(FileCheck { path, ok: false });
    }
    files[1..].sort_by(|a, b| a.path.cmp(&b.path));

    // Keep diagnostics in file order: the cross-file ones join their file.
    let order: HashMap<&Path, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_path(), i))
        .collect();
    diagnostics.sort_by_cached_key(|d| {
        (
            order.get(d.file.as_path()).copied().unwrap_or(usize::MAX),
            d.line,
            d.col,
        )
    });

    let config = match config {
        Some(mut c) if !has_errors(&diagnostics) => {
            c.targets = targets.into_iter().map(|(t, _)| t).collect();
            c.targets.sort_by(|a, b| a.name.cmp(&b.name));
            disabled_targets.sort_by(|a, b| a.name.cmp(&b.name));
            c.disabled = disabled_targets;
            Some(c)
        }
        _ => None,
    };
    Loaded {
        config,
        files,
        diagnostics,
    }
}

/// What ends a disabled policy's problem.
const DISABLED_NOTE: &str =
    " (not in effect while the target is disabled; fix it before setting enabled = true)";

/// Whether a warning counts against `/health`'s configuration check: a
/// disabled policy's problems do not (they are listed under
/// `disabledTargets` instead), so a fresh install waiting for its site's
/// facts is not reported degraded.
pub fn counts_for_health(d: &Diagnostic) -> bool {
    d.severity == Level::Warning && !d.message.ends_with(DISABLED_NOTE)
}

/// A disabled policy's errors become warnings that say so: the file is not
/// in effect, so it cannot break the targets that are. Returns the errors'
/// messages, what to fix before enabling it.
fn demote_disabled(diagnostics: &mut [Diagnostic]) -> Vec<String> {
    let mut to_enable = Vec::new();
    for d in diagnostics
        .iter_mut()
        .filter(|d| d.severity == Level::Error)
    {
        to_enable.push(d.message.clone());
        d.severity = Level::Warning;
        d.message = format!("{}{DISABLED_NOTE}", d.message);
    }
    to_enable
}

fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Level::Error)
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        file: path.to_owned(),
        line: 0,
        col: 0,
        severity: Level::Error,
        message: format!("cannot {what}: {e}"),
    }
}

/// The largest configuration file read: real ones hold a few KiB, and a
/// file past this is a mistake (a log, an image) that would only cost memory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn read(path: &Path, out: &mut Vec<Diagnostic>) -> Option<SourceFile> {
    let bytes = match read_regular(path) {
        Ok(bytes) => bytes,
        Err(message) => {
            out.push(Diagnostic {
                file: path.to_owned(),
                line: 0,
                col: 0,
                severity: Level::Error,
                message,
            });
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(SourceFile::new(path, text)),
        Err(e) => {
            let src = SourceFile::new(path, String::from_utf8_lossy(e.as_bytes()).into_owned());
            let at = e.utf8_error().valid_up_to();
            let byte = e.as_bytes()[at];
            out.push(src.at_span(
                Some(at..at),
                Level::Error,
                format!("file is not valid UTF-8 (byte 0x{byte:02x}); save it as UTF-8"),
            ));
            None
        }
    }
}

/// The bytes of a configuration file, which must be a regular file (a link
/// to one is fine) of at most [`MAX_FILE_BYTES`]. Nothing here waits: a
/// FIFO or a device is refused from its metadata, and the file is opened
/// without blocking and checked again once open, in case it was swapped.
fn read_regular(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let cannot = |e: std::io::Error| format!("cannot read file: {e}");
    let meta = std::fs::metadata(path).map_err(cannot)?;
    regular_and_small(&meta)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    regular_and_small(&meta)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        // It grew while being read.
        return Err(too_large(&format!("more than {MAX_FILE_BYTES}")));
    }
    Ok(bytes)
}

fn regular_and_small(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a plain file")
    };
    if let Some(what) = what {
        return Err(format!(
            "cannot read file: it is {what}, not a regular file"
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(&meta.len().to_string()));
    }
    Ok(())
}

fn too_large(size: &str) -> String {
    format!(
        "file is too large: {size} bytes; a configuration file may hold at most {MAX_FILE_BYTES} bytes (1 MiB)"
    )
}

/// Reads every `*.toml` file of a directory, sorted by name. Files that
/// cannot be read are reported and listed in `unread`.
fn read_dir(dir: &Path, out: &mut Vec<Diagnostic>, unread: &mut Vec<PathBuf>) -> Vec<SourceFile> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.push(io_error(dir, "read policies directory", &e));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        match read(&path, out) {
            Some(src) => files.push(src),
            None => unread.push(path),
        }
    }
    files
}

/// "expected one of …" / "did you mean …" for an unknown key, from the
/// struct the key's table deserializes into.
fn suggest(path: &KeyPath, fields: &[&str]) -> Option<String> {
    let name = path.last_key()?;
    match did_you_mean(name, fields.iter().copied()) {
        Some(s) => Some(format!("did you mean `{s}`?")),
        None => Some(format!(
            "expected one of {}",
            fields
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn table_of(path: &KeyPath) -> Vec<&str> {
    path.0[..path.0.len().saturating_sub(1)]
        .iter()
        .filter_map(|s| match s {
            diag::Step::Key(k) => Some(k.as_str()),
            diag::Step::Index(_) => None,
        })
        .collect()
}

fn describe_config_key(path: &KeyPath) -> Option<String> {
    let table = table_of(path);
    let fields = match table.as_slice() {
        [] => fields_of::<RawConfig>(),
        ["daemon"] => fields_of::<raw::RawDaemon>(),
        ["log"] => fields_of::<raw::RawLog>(),
        ["api"] => fields_of::<raw::RawApi>(),
        ["identity"] => fields_of::<raw::RawIdentity>(),
        ["platform"] => fields_of::<raw::RawPlatform>(),
        ["metrics"] => fields_of::<raw::RawMetrics>(),
        ["metrics", "scrape"] => fields_of::<raw::RawScrape>(),
        ["metrics", "kpi"] => fields_of::<raw::RawKpi>(),
        ["reboot"] => fields_of::<raw::RawReboot>(),
        ["alerts"] => fields_of::<raw::RawAlerts>(),
        ["channels", _] => fields_of::<raw::RawChannel>(),
        ["escalation", _] => fields_of::<raw::RawEscalation>(),
        ["escalation", _, "levels"] => fields_of::<raw::RawEscalationLevel>(),
        ["rule"] => fields_of::<raw::RawRule>(),
        ["rule", "predict"] => fields_of::<raw::RawPredict>(),
        ["dashboard"] => fields_of::<raw::RawDashboard>(),
        _ => return None,
    };
    suggest(path, fields)
}

fn describe_policy_key(path: &KeyPath) -> Option<String> {
    let table = table_of(path);
    let fields = match table.as_slice() {
        [] => fields_of::<RawPolicy>(),
        ["target"] => fields_of::<raw::RawTarget>(),
        ["target", "process"] => fields_of::<raw::RawProcess>(),
        ["target", "adopt"] => fields_of::<raw::RawAdopt>(),
        ["probe"] => fields_of::<raw::RawProbe>(),
        ["recovery"] => fields_of::<raw::RawStep>(),
        ["recovery", "backoff"] => fields_of::<raw::RawBackoff>(),
        ["alert"] => fields_of::<raw::RawAlert>(),
        _ => return None,
    };
    suggest(path, fields)
}
