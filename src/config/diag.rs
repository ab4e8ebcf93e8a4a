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
use std::cell::RefCell;
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

/// A byte span of a file, kept small: an index holds one per key and value.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(r: Range<usize>) -> Self {
        let cap = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            start: cap(r.start),
            end: cap(r.end),
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Where one key and its value are in the text, and what the value holds.
#[derive(Debug)]
struct Node {
    key: Span,
    value: Span,
    kids: Kids,
}

/// A key of a table: its name is read from the text when written bare.
#[derive(Debug)]
struct Entry {
    /// `None`: the name is the key's text.
    name: Option<Box<str>>,
    node: Node,
}

/// Tables with more keys than this get a sorted index for lookups.
const LINEAR_LOOKUP: usize = 8;

#[derive(Debug)]
enum Kids {
    Leaf,
    /// Entries in file order, and (for larger tables) their positions
    /// sorted by name.
    Table(Box<[Entry]>, Box<[u32]>),
    Array(Box<[Node]>),
}

impl Entry {
    fn name<'t>(&'t self, text: &'t str) -> &'t str {
        match &self.name {
            Some(n) => n,
            None => text.get(self.node.key.range()).unwrap_or(""),
        }
    }
}

impl Node {
    fn build(text: &str, key: Range<usize>, value: &Spanned<DeValue<'_>>) -> Self {
        let kids = match value.get_ref() {
            DeValue::Table(t) => Self::table(text, t),
            DeValue::Array(a) => Kids::Array(
                a.iter()
                    .map(|item| Node::build(text, item.span(), item))
                    .collect(),
            ),
            _ => Kids::Leaf,
        };
        Self {
            key: Span::of(key),
            value: Span::of(value.span()),
            kids,
        }
    }

    fn table(text: &str, t: &DeTable<'_>) -> Kids {
        let mut entries: Vec<Entry> = t
            .iter()
            .map(|(k, v)| {
                let name: &str = k.get_ref().as_ref();
                let bare = text.get(k.span()) == Some(name);
                Entry {
                    name: (!bare).then(|| Box::from(name)),
                    node: Node::build(text, k.span(), v),
                }
            })
            .collect();
        entries.sort_by_key(|e| e.node.key.start);
        let mut by_name: Vec<u32> = Vec::new();
        if entries.len() > LINEAR_LOOKUP {
            by_name = (0..entries.len() as u32).collect();
            by_name.sort_by(|&a, &b| {
                entries[a as usize]
                    .name(text)
                    .cmp(entries[b as usize].name(text))
            });
        }
        Kids::Table(entries.into_boxed_slice(), by_name.into_boxed_slice())
    }

    fn get(&self, text: &str, key: &str) -> Option<&Node> {
        let Kids::Table(entries, by_name) = &self.kids else {
            return None;
        };
        if by_name.is_empty() {
            return entries
                .iter()
                .find(|e| e.name(text) == key)
                .map(|e| &e.node);
        }
        by_name
            .binary_search_by(|&i| entries[i as usize].name(text).cmp(key))
            .ok()
            .map(|i| &entries[by_name[i] as usize].node)
    }

    fn item(&self, index: usize) -> Option<&Node> {
        match &self.kids {
            Kids::Array(items) => items.get(index),
            _ => None,
        }
    }

    /// The path of the deepest value that starts at `offset`.
    fn find_value(
        &self,
        text: &str,
        offset: usize,
        here: &mut Vec<Step>,
        best: &mut Option<Vec<Step>>,
    ) {
        if self.value.start as usize == offset && !here.is_empty() {
            *best = Some(here.clone());
        }
        match &self.kids {
            Kids::Leaf => {}
            Kids::Table(entries, _) => {
                for e in entries {
                    here.push(Step::Key(e.name(text).to_owned()));
                    e.node.find_value(text, offset, here, best);
                    here.pop();
                }
            }
            Kids::Array(items) => {
                for (i, node) in items.iter().enumerate() {
                    here.push(Step::Index(i));
                    node.find_value(text, offset, here, best);
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
/// Loading frees a policy's index once the policy is validated.
pub struct SourceFile {
    path: PathBuf,
    text: String,
    /// Byte offsets where each line starts.
    line_starts: Vec<usize>,
    /// The document's keys and spans, built on first use; released by
    /// [`SourceFile::release_index`] and then built again if needed.
    index: RefCell<Option<Node>>,
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
            index: RefCell::new(None),
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

    /// Runs `f` on the index, parsing the text if that was not done yet.
    /// A file with syntax errors is indexed as far as the parser could recover.
    fn with_index<R>(&self, f: impl FnOnce(&Node) -> R) -> R {
        let mut slot = self.index.borrow_mut();
        let index = slot.get_or_insert_with(|| {
            let (tree, _) = DeTable::parse_recoverable(&self.text);
            Self::index_of(&self.text, &tree)
        });
        f(index)
    }

    /// Frees the index. Once a file is validated few diagnostics remain to
    /// be placed in it (those of the cross-file checks), and with many
    /// large files the indexes together would take more memory than the
    /// configuration; a later diagnostic parses the file again.
    pub fn release_index(&self) {
        self.index.borrow_mut().take();
    }

    fn index_of(text: &str, tree: &Spanned<DeTable<'_>>) -> Node {
        Node {
            key: Span::of(0..0),
            value: Span::of(tree.span()),
            kids: Node::table(text, tree.get_ref()),
        }
    }

    /// Runs `f` on the node at exactly `path`, if there is one.
    fn with_node<R>(&self, path: &KeyPath, f: impl FnOnce(&Node) -> R) -> Option<R> {
        self.with_index(|root| {
            let mut node = root;
            for step in &path.0 {
                node = match step {
                    Step::Key(k) => node.get(&self.text, k)?,
                    Step::Index(i) => node.item(*i)?,
                };
            }
            Some(f(node))
        })
    }

    /// The span of a key or value, or of the nearest enclosing item that
    /// exists.
    pub fn span_of(&self, path: &KeyPath, anchor: Anchor) -> Option<Range<usize>> {
        self.with_index(|root| self.span_in(root, path, anchor))
    }

    fn span_in(&self, root: &Node, path: &KeyPath, anchor: Anchor) -> Option<Range<usize>> {
        let mut best = None;
        let mut node = root;
        let steps = &path.0;
        for (i, step) in steps.iter().enumerate() {
            let is_last = i + 1 == steps.len();
            match step {
                Step::Key(k) => {
                    let Some(next) = node.get(&self.text, k) else {
                        return best;
                    };
                    best = Some(if is_last && anchor == Anchor::Value {
                        next.value.range()
                    } else {
                        next.key.range()
                    });
                    node = next;
                }
                Step::Index(idx) => {
                    let Some(next) = node.item(*idx) else {
                        return best;
                    };
                    if next.value.start < next.value.end {
                        best = Some(next.value.range());
                    }
                    node = next;
                }
            }
        }
        best
    }

    /// The keys of the table at `path`, in file order, as written.
    pub fn keys_at(&self, path: &KeyPath) -> Vec<String> {
        self.with_node(path, |n| match &n.kids {
            Kids::Table(entries, _) => entries
                .iter()
                .map(|e| e.name(&self.text).to_owned())
                .collect(),
            _ => Vec::new(),
        })
        .unwrap_or_default()
    }

    /// Whether the document has a key at `path`.
    pub fn has(&self, path: &KeyPath) -> bool {
        self.with_node(path, |_| ()).is_some()
    }

    /// Whether the value at `path` is a table.
    pub fn is_table(&self, path: &KeyPath) -> bool {
        self.with_node(path, |n| matches!(n.kids, Kids::Table(..)))
            .unwrap_or(false)
    }

    /// How many items the array at `path` holds (0 when it is not an array).
    pub fn items_at(&self, path: &KeyPath) -> usize {
        self.with_node(path, |n| match &n.kids {
            Kids::Array(items) => items.len(),
            _ => 0,
        })
        .unwrap_or(0)
    }

    /// The value at `path` exactly as the file writes it (a number keeps
    /// its digits, a string its quotes), when the path exists.
    pub fn written(&self, path: &KeyPath) -> Option<&str> {
        let span = self.with_node(path, |n| n.value.range())?;
        self.text.get(span)
    }

    /// The path of the value that starts at `offset`, the deepest if several do.
    pub fn path_of_value(&self, offset: usize) -> Option<KeyPath> {
        let mut best = None;
        self.with_index(|root| root.find_value(&self.text, offset, &mut Vec::new(), &mut best));
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
        *self.index.borrow_mut() = Some(Self::index_of(&self.text, &tree));
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
