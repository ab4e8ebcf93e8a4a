//! Diagnostics: what `check` and reload report about configuration files.
//!
//! A **diagnostic** is one problem in one file, located by line and column
//! (both 1-based, columns counted in characters) and rendered as
//! `path:line:col: error: message`. Validation collects every diagnostic it
//! can find instead of stopping at the first, so an operator fixes a file in
//! one pass. Warnings never stop a configuration from loading; errors do.
//!
//! A value a diagnostic echoes is **shown**, never copied raw: control
//! characters and characters that reorder or hide text (U+202E and the
//! like) are escaped as a TOML string would write them, and a long value is
//! cut, with its length. A terminal or a journal viewer then displays
//! exactly what the file holds.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::wording;

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
        // Messages show values escaped already; this catches what slipped
        // through, and odd file names.
        let file = self.file.display().to_string();
        let file = escape_unsafe(&file);
        let message = escape_unsafe(&self.message);
        if self.line == 0 {
            write!(f, "{file}: {severity}: {message}")
        } else {
            write!(
                f,
                "{file}:{}:{}: {severity}: {message}",
                self.line, self.col
            )
        }
    }
}

/// One step of a path into a TOML document: a key of a table or an index
/// into an array.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// A key of a table.
    Key(String),
    /// An index into an array (also an array of tables).
    Index(usize),
}

/// A path into a TOML document, such as `probe[1].interval`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
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
                    write!(f, "{}", key_shown(k))?;
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

// ---------------------------------------------------------------------------
// Showing values
// ---------------------------------------------------------------------------

/// Values longer than this many characters are cut when shown.
const SHOWN_CHARS: usize = 60;
/// How many characters of a cut value are kept.
const CUT_TO_CHARS: usize = 40;

/// Characters that would hide or reorder text on a terminal: controls, and
/// the invisible and direction-changing marks (U+200B–U+200F, U+202A–U+202E,
/// U+2066–U+2069 and kin).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
        c => out.push_str(&format!("\\U{:08X}", c as u32)),
    }
}

/// `text` with every unsafe character escaped as `\uXXXX` (or `\n`, `\t`, `\r`).
pub fn escape_unsafe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A value as a message shows it; see [`quoted`] and [`plain`].
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a> {
    text: &'a str,
    quotes: bool,
}

/// A string value as a TOML file writes it: in quotes, with `"`, `\` and
/// unsafe characters escaped, cut after 60 characters:
/// `"aaaa…" (1048576 bytes)`.
pub fn quoted(text: &str) -> Shown<'_> {
    Shown { text, quotes: true }
}

/// Text from a file (a number as written, a key) shown without quotes:
/// unsafe characters escaped, cut like [`quoted`].
pub fn plain(text: &str) -> Shown<'_> {
    Shown {
        text,
        quotes: false,
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let long = self.text.chars().nth(SHOWN_CHARS).is_some();
        let keep = if long { CUT_TO_CHARS } else { SHOWN_CHARS };
        let mut out = String::new();
        if self.quotes {
            out.push('"');
        }
        for c in self.text.chars().take(keep) {
            match c {
                '"' | '\\' if self.quotes => {
                    out.push('\\');
                    out.push(c);
                }
                c if is_unsafe(c) => push_escaped(&mut out, c),
                c => out.push(c),
            }
        }
        if long {
            out.push('…');
        }
        if self.quotes {
            out.push('"');
        }
        if long {
            out.push_str(&format!(" ({} bytes)", self.text.len()));
        }
        f.write_str(&out)
    }
}

/// A key as a file writes it: bare when it can be, else quoted.
pub fn key_shown(key: &str) -> Shown<'_> {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if bare { plain(key) } else { quoted(key) }
}

// ---------------------------------------------------------------------------
// Source files
// ---------------------------------------------------------------------------

/// Where one key and its value are in the text, and what the value holds.
#[derive(Debug)]
struct Node {
    key: Range<usize>,
    value: Range<usize>,
    kids: Kids,
}

#[derive(Debug)]
enum Kids {
    Leaf,
    /// Entries sorted by name, and their positions in file order.
    Table {
        by_name: Vec<(Box<str>, Node)>,
        in_file_order: Vec<u32>,
    },
    Array(Vec<Node>),
}

impl Node {
    fn build(key: Range<usize>, value: &Spanned<DeValue<'_>>) -> Self {
        let kids = match value.get_ref() {
            DeValue::Table(t) => Self::table(t),
            DeValue::Array(a) => Kids::Array(
                a.iter()
                    .map(|item| Node::build(item.span(), item))
                    .collect(),
            ),
            _ => Kids::Leaf,
        };
        Self {
            key,
            value: value.span(),
            kids,
        }
    }

    fn table(t: &DeTable<'_>) -> Kids {
        let mut by_name: Vec<(Box<str>, Node)> = t
            .iter()
            .map(|(k, v)| (Box::from(k.get_ref().as_ref()), Node::build(k.span(), v)))
            .collect();
        by_name.sort_by(|a, b| a.0.cmp(&b.0));
        let mut in_file_order: Vec<u32> = (0..by_name.len() as u32).collect();
        in_file_order.sort_by_key(|&i| by_name[i as usize].1.key.start);
        Kids::Table {
            by_name,
            in_file_order,
        }
    }

    fn get(&self, key: &str) -> Option<&Node> {
        match &self.kids {
            Kids::Table { by_name, .. } => by_name
                .binary_search_by(|(name, _)| name.as_ref().cmp(key))
                .ok()
                .map(|i| &by_name[i].1),
            _ => None,
        }
    }

    fn item(&self, index: usize) -> Option<&Node> {
        match &self.kids {
            Kids::Array(items) => items.get(index),
            _ => None,
        }
    }

    /// The path of the deepest value that starts at `offset`.
    fn find_value(&self, offset: usize, here: &mut Vec<Step>, best: &mut Option<Vec<Step>>) {
        if self.value.start == offset && !here.is_empty() {
            *best = Some(here.clone());
        }
        match &self.kids {
            Kids::Leaf => {}
            Kids::Table { by_name, .. } => {
                for (name, node) in by_name {
                    here.push(Step::Key(name.to_string()));
                    node.find_value(offset, here, best);
                    here.pop();
                }
            }
            Kids::Array(items) => {
                for (i, node) in items.iter().enumerate() {
                    here.push(Step::Index(i));
                    node.find_value(offset, here, best);
                    here.pop();
                }
            }
        }
    }
}

/// The text of one file, so that diagnostics found on the typed
/// configuration can point back into it.
///
/// The text is parsed once; the keys, values and their spans are kept in an
/// index that every diagnostic and key listing reads, so checking a file
/// takes time in proportion to its size however many problems it has.
pub struct SourceFile {
    path: PathBuf,
    text: String,
    /// Byte offsets where each line starts.
    line_starts: Vec<usize>,
    /// The document's keys and spans, built on first use.
    index: OnceCell<Node>,
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
            index: OnceCell::new(),
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
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self.text[start..offset].chars().count() + 1;
        (line + 1, col)
    }

    /// The index, parsing the text if that was not done yet. A file with
    /// syntax errors is indexed as far as the parser could recover.
    fn index(&self) -> &Node {
        self.index.get_or_init(|| {
            let (tree, _) = DeTable::parse_recoverable(&self.text);
            Self::index_of(&tree)
        })
    }

    fn index_of(tree: &Spanned<DeTable<'_>>) -> Node {
        Node {
            key: 0..0,
            value: tree.span(),
            kids: Node::table(tree.get_ref()),
        }
    }

    /// The node at exactly `path`.
    fn node(&self, path: &KeyPath) -> Option<&Node> {
        let mut node = self.index();
        for step in &path.0 {
            node = match step {
                Step::Key(k) => node.get(k)?,
                Step::Index(i) => node.item(*i)?,
            };
        }
        Some(node)
    }

    /// The span of a key or value, or of the nearest enclosing item that
    /// exists.
    pub fn span_of(&self, path: &KeyPath, anchor: Anchor) -> Option<Range<usize>> {
        let mut best = None;
        let mut node = self.index();
        let steps = &path.0;
        for (i, step) in steps.iter().enumerate() {
            let is_last = i + 1 == steps.len();
            match step {
                Step::Key(k) => {
                    let Some(next) = node.get(k) else {
                        return best;
                    };
                    best = Some(if is_last && anchor == Anchor::Value {
                        next.value.clone()
                    } else {
                        next.key.clone()
                    });
                    node = next;
                }
                Step::Index(idx) => {
                    let Some(next) = node.item(*idx) else {
                        return best;
                    };
                    if !next.value.is_empty() {
                        best = Some(next.value.clone());
                    }
                    node = next;
                }
            }
        }
        best
    }

    /// The keys of the table at `path`, in file order, as written.
    pub fn keys_at(&self, path: &KeyPath) -> Vec<String> {
        match self.node(path).map(|n| &n.kids) {
            Some(Kids::Table {
                by_name,
                in_file_order,
            }) => in_file_order
                .iter()
                .map(|&i| by_name[i as usize].0.to_string())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the document has a key at `path`.
    pub fn has(&self, path: &KeyPath) -> bool {
        self.node(path).is_some()
    }

    /// Whether the value at `path` is a table.
    pub fn is_table(&self, path: &KeyPath) -> bool {
        self.node(path)
            .is_some_and(|n| matches!(n.kids, Kids::Table { .. }))
    }

    /// How many items the array at `path` holds (0 when it is not an array).
    pub fn items_at(&self, path: &KeyPath) -> usize {
        match self.node(path).map(|n| &n.kids) {
            Some(Kids::Array(items)) => items.len(),
            _ => 0,
        }
    }

    /// The value at `path` exactly as the file writes it (a number keeps
    /// its digits, a string its quotes), when the path exists.
    pub fn written(&self, path: &KeyPath) -> Option<&str> {
        let span = self.node(path)?.value.clone();
        self.text.get(span)
    }

    /// The path of the value that starts at `offset`, the deepest if several do.
    pub fn path_of_value(&self, offset: usize) -> Option<KeyPath> {
        let mut best = None;
        self.index().find_value(offset, &mut Vec::new(), &mut best);
        best.map(KeyPath)
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
        // One parse serves the index and the typed value.
        let (tree, errors) = DeTable::parse_recoverable(&self.text);
        let _ = self.index.set(Self::index_of(&tree));
        if let Some(e) = errors.first() {
            let message = wording::syntax_error(self, e);
            out.push(self.at_span(e.span(), Severity::Error, message));
            return None;
        }
        let deserializer = toml::de::Deserializer::from(tree);
        let mut unknown = Vec::new();
        let result = serde_ignored::deserialize(deserializer, |path| {
            unknown.push(KeyPath::from_ignored(&path));
        });
        for path in &unknown {
            let name = path.last_key().unwrap_or("?");
            let mut message = format!("unknown key `{}`", key_shown(name));
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
                let message = wording::type_error(self, &e);
                out.push(self.at_span(e.span(), Severity::Error, message));
                None
            }
        }
    }
}
