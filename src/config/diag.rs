//! Diagnostics: what `check` and reload report about configuration files.
//!
//! A **diagnostic** is one problem in one file, located by line and column
//! (both 1-based, columns counted in characters) and rendered as
//! `path:line:col: error: message`. Validation collects every diagnostic it
//! can find instead of stopping at the first, so an operator fixes a file in
//! one pass. Warnings never stop a configuration from loading; errors do.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration is usable, but probably not what was meant.
    Warning,
    /// The configuration cannot be used.
    Error,
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the file as a whole.
    pub line: usize,
    /// 1-based column in characters; 0 when the problem concerns the file as a whole.
    pub col: usize,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, naming the bad value and what would be accepted.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        if self.line == 0 {
            write!(f, "{}: {severity}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {severity}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

/// One step of a path into a TOML document: a key of a table or an index
/// into an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A key of a table.
    Key(String),
    /// An index into an array (also an array of tables).
    Index(usize),
}

/// A path into a TOML document, such as `probe[1].interval`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Step>);

impl KeyPath {
    /// The document root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_owned()));
        Self(steps)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        Self(steps)
    }

    /// Builds a path from `serde_ignored`'s view of where an ignored key was.
    pub fn from_ignored(path: &serde_ignored::Path<'_>) -> Self {
        fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Step>) {
            use serde_ignored::Path as P;
            match path {
                P::Root => {}
                P::Seq { parent, index } => {
                    walk(parent, out);
                    out.push(Step::Index(*index));
                }
                P::Map { parent, key } => {
                    walk(parent, out);
                    out.push(Step::Key(key.clone()));
                }
                P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                    walk(parent, out)
                }
            }
        }
        let mut steps = Vec::new();
        walk(path, &mut steps);
        Self(steps)
    }

    /// The last key of the path, if it ends in one.
    pub fn last_key(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        })
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for step in &self.0 {
            match step {
                Step::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Step::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// Where to point at for a path: the key itself (for "unknown key") or its value
/// (for "bad value").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The key's name.
    Key,
    /// The key's value.
    Value,
}

/// The text of one file, so that diagnostics found on the typed
/// configuration can point back into it.
pub struct SourceFile {
    path: PathBuf,
    text: String,
    /// Byte offsets where each line starts.
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps a file's text.
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// The file's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based (line, column) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self.text[start..offset].chars().count() + 1;
        (line + 1, col)
    }

    /// The span of a key or value, or of the nearest enclosing item that
    /// exists. The text is parsed again here: diagnostics are rare and files
    /// small, and the typed configuration stays free of span wrappers.
    pub fn span_of(&self, path: &KeyPath, anchor: Anchor) -> Option<Range<usize>> {
        let tree = DeTable::parse(&self.text).ok()?;
        let mut best = None;
        let mut current: Option<&DeValue<'_>> = None;
        let root = tree.get_ref();
        let steps = &path.0;
        for (i, step) in steps.iter().enumerate() {
            let is_last = i + 1 == steps.len();
            match step {
                Step::Key(k) => {
                    let table = match current {
                        None => root,
                        Some(DeValue::Table(t)) => t,
                        Some(_) => return best,
                    };
                    let Some((key, value)) = table
                        .iter()
                        .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                    else {
                        return best;
                    };
                    best = Some(if is_last && anchor == Anchor::Value {
                        value.span()
                    } else {
                        key.span()
                    });
                    current = Some(value.get_ref());
                }
                Step::Index(idx) => {
                    let Some(DeValue::Array(array)) = current else {
                        return best;
                    };
                    let Some(item) = array.get(*idx) else {
                        return best;
                    };
                    let span: Range<usize> = item.span();
                    if !span.is_empty() {
                        best = Some(span);
                    }
                    current = Some(item.get_ref());
                }
            }
        }
        best
    }

    /// The keys of the table at `path`, in file order, as written.
    pub fn keys_at(&self, path: &KeyPath) -> Vec<String> {
        fn walk(value: &DeValue<'_>, steps: &[Step]) -> Vec<String> {
            match (steps.split_first(), value) {
                (None, DeValue::Table(t)) => {
                    let mut keys: Vec<(usize, String)> = t
                        .iter()
                        .map(|(k, _)| (k.span().start, k.get_ref().to_string()))
                        .collect();
                    keys.sort();
                    keys.into_iter().map(|(_, k)| k).collect()
                }
                (Some((Step::Key(k), rest)), DeValue::Table(t)) => t
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                    .map(|(_, v)| walk(v.get_ref(), rest))
                    .unwrap_or_default(),
                (Some((Step::Index(i), rest)), DeValue::Array(a)) => a
                    .get(*i)
                    .map(|v| walk(v.get_ref(), rest))
                    .unwrap_or_default(),
                _ => Vec::new(),
            }
        }
        match DeTable::parse(&self.text) {
            Ok(tree) => walk(&DeValue::Table(tree.into_inner()), &path.0),
            Err(_) => Vec::new(),
        }
    }

    /// A diagnostic at a byte span of this file (the whole file when `None`).
    pub fn at_span(
        &self,
        span: Option<Range<usize>>,
        severity: Severity,
        message: String,
    ) -> Diagnostic {
        let (line, col) = span.map(|s| self.line_col(s.start)).unwrap_or((0, 0));
        Diagnostic {
            file: self.path.clone(),
            line,
            col,
            severity,
            message,
        }
    }

    /// A diagnostic at a path of this file's document.
    pub fn at(
        &self,
        path: &KeyPath,
        anchor: Anchor,
        severity: Severity,
        message: String,
    ) -> Diagnostic {
        let span = self.span_of(path, anchor);
        self.at_span(span, severity, message)
    }

    /// Parses the text into `T`, reporting every unknown key and the first
    /// type or syntax error as diagnostics. `None` when `T` could not be built.
    pub fn deserialize<T: serde::de::DeserializeOwned>(
        &self,
        out: &mut Vec<Diagnostic>,
        describe_known: impl Fn(&KeyPath) -> Option<String>,
    ) -> Option<T> {
        let deserializer = match toml::de::Deserializer::parse(&self.text) {
            Ok(d) => d,
            Err(e) => {
                out.push(self.at_span(e.span(), Severity::Error, toml_message(&e)));
                return None;
            }
        };
        let mut unknown = Vec::new();
        let result = serde_ignored::deserialize(deserializer, |path| {
            unknown.push(KeyPath::from_ignored(&path));
        });
        for path in &unknown {
            let name = path.last_key().unwrap_or("?");
            let mut message = format!("unknown key `{name}`");
            if path.0.len() > 1 {
                let parent = KeyPath(path.0[..path.0.len() - 1].to_vec());
                message.push_str(&format!(" in `{parent}`"));
            }
            if let Some(hint) = describe_known(path) {
                message.push_str(&format!("; {hint}"));
            }
            out.push(self.at(path, Anchor::Key, Severity::Error, message));
        }
        match result {
            // Unknown keys are already errors; the rest is still checked.
            Ok(value) => Some(value),
            Err(e) => {
                out.push(self.at_span(e.span(), Severity::Error, toml_message(&e)));
                None
            }
        }
    }
}

/// The toml crate's message without its multi-line source excerpt.
fn toml_message(e: &toml::de::Error) -> String {
    e.message().trim().replace('\n', "; ")
}
