//! Operator wording for what the TOML parser and the deserializer report.
//!
//! Both describe problems in their own terms ("invalid float, expected
//! `nan`", "expected u32", a bare "duplicate key"). Here each becomes what an
//! operator editing the file needs: which key, its value as the file writes
//! it, and what would be accepted.

use std::collections::HashMap;
use std::ops::Range;

use super::diag::{KeyPath, SourceFile, Step, key_shown, plain, quoted};

/// Parser messages about a malformed number.
const NUMBER_PROBLEMS: [&str; 9] = [
    "invalid float",
    "invalid integer",
    "`_` may only go between digits",
    "unexpected leading zero",
    "integers with a radix cannot be signed",
    "radix must be lowercase",
    "redundant numeric sign",
    "redundant integer number prefix",
    "unexpected sign",
];

/// A syntax error, in operator wording.
pub(crate) fn syntax_error(src: &SourceFile, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    let Some(span) = e.span() else {
        return message;
    };
    let text = src.text();
    if message.starts_with("duplicate key") {
        return duplicate(src, span.start);
    }
    let forced = message.starts_with("string values must be quoted");
    if let Some(hint) = unquoted_word(text, span.start, forced) {
        return hint;
    }
    if message.starts_with("invalid basic string") {
        return "the string is not closed: end it with `\"` on the same line".into();
    }
    if message.starts_with("invalid literal string") {
        return "the string is not closed: end it with `'` on the same line".into();
    }
    // "…, expected nothing": the parser's way of saying nothing may follow.
    let message = message
        .strip_suffix(", expected nothing")
        .map(str::to_owned)
        .unwrap_or(message);
    if let Some(problem) = NUMBER_PROBLEMS.iter().find(|p| message.starts_with(**p)) {
        let number = plain(token_around(text, span.start));
        return if problem.starts_with("invalid") {
            format!(
                "invalid number {number}; expected a number like 3, 0.5 or 1e3, or a string in quotes"
            )
        } else {
            format!("invalid number {number}: {problem}")
        };
    }
    if message.contains("`nan`") || message.contains("`inf`") {
        return format!(
            "invalid value {}; expected a number, true or false, or a string in quotes",
            plain(token_around(text, span.start))
        );
    }
    message
}

/// A type error from building the typed configuration, in operator wording:
/// the key, its value as written, and what it must be.
pub(crate) fn type_error(src: &SourceFile, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    let Some(span) = e.span() else {
        return message;
    };
    let written = src.text().get(span.clone()).unwrap_or("").trim();
    let mut path = src.path_of_value(span.start);
    if written.starts_with("[[") {
        // `[[x]]` starts both the list and its first table: the list is meant.
        if let Some(p) = &mut path
            && matches!(p.0.last(), Some(Step::Index(_)))
        {
            p.0.pop();
        }
        // What serde expected then is the first field of the table meant,
        // which would only mislead.
        if let Some(p) = &path {
            let key = p.last_key().map(key_shown);
            return match key {
                Some(key) => format!(
                    "`[[{p}]]` makes `{key}` a list of tables, which it is not; a single table is written `[{p}]`"
                ),
                None => format!("`[[{p}]]` is a list of tables, which does not belong here"),
            };
        }
    }
    let is_table = path.as_ref().is_some_and(|p| src.is_table(p));
    let subject = match &path {
        Some(p) if is_table && written.starts_with('[') => format!("table `[{p}]`"),
        Some(p) => match (p.0.last(), p.last_key()) {
            (Some(Step::Index(_)), Some(key)) => {
                format!("item {} of `{}`", plain(written), key_shown(key))
            }
            (_, Some(key)) => format!("`{}` = {}", key_shown(key), plain(written)),
            _ => plain(written).to_string(),
        },
        None => plain(written).to_string(),
    };
    if let Some((_, expected)) = message.rsplit_once(", expected ") {
        let expected = expected.trim();
        if expected == "a sequence"
            && is_table
            && written.starts_with('[')
            && !written.starts_with("[[")
            && let Some(p) = &path
        {
            return format!("{subject} must be written `[[{p}]]`: the file may hold several");
        }
        let words = expected_words(expected);
        let quoted_scalar = written.starts_with(['"', '\''])
            && (words.starts_with("a whole number")
                || words == "a number"
                || words == "true or false");
        let hint = if quoted_scalar {
            "; write it without quotes"
        } else {
            ""
        };
        return format!("{subject} is not {words}{hint}");
    }
    if message.contains("overflowed") {
        return if is_number(written) {
            format!("{subject} is too large a number")
        } else {
            format!("{subject} is not a valid number")
        };
    }
    format!("{subject}: {message}")
}

/// What serde names a type, as the file writes a value of it.
fn expected_words(expected: &str) -> String {
    let whole = |min: &str, max: &str| format!("a whole number from {min} to {max}");
    match expected {
        "u8" => whole("0", "255"),
        "u16" => whole("0", "65535"),
        "u32" => whole("0", "4294967295"),
        "u64" | "usize" => whole("0", "18446744073709551615"),
        "u128" => whole("0", "340282366920938463463374607431768211455"),
        "i8" => whole("-128", "127"),
        "i16" => whole("-32768", "32767"),
        "i32" => whole("-2147483648", "2147483647"),
        "i64" | "isize" => whole("-9223372036854775808", "9223372036854775807"),
        "i128" => whole(
            "-170141183460469231731687303715884105728",
            "170141183460469231731687303715884105727",
        ),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" | "a character" | "a char" => "a string in quotes".into(),
        "a sequence" => "a list in brackets, like [\"a\", \"b\"]".into(),
        "a map" => "a table".into(),
        e if e.starts_with("struct ") => "a table".into(),
        e => e.to_owned(),
    }
}

/// Whether `written` is a TOML number (decimal, hex, octal, binary or float).
fn is_number(written: &str) -> bool {
    let w = written.replace('_', "");
    let unsigned = w.strip_prefix(['+', '-']).unwrap_or(&w);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = unsigned.strip_prefix(prefix) {
            return !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
        }
    }
    unsigned.starts_with(|c: char| c.is_ascii_digit()) && unsigned.parse::<f64>().is_ok()
}

fn delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#' | '[' | '{' | '=')
}

/// The token at `at`: up to the next space or delimiter.
fn token_at(text: &str, at: usize) -> &str {
    let rest = text.get(at..).unwrap_or("");
    let end = rest.find(delimiter).unwrap_or(rest.len());
    &rest[..end]
}

/// The whole token `at` is in.
fn token_around(text: &str, at: usize) -> &str {
    let Some(before) = text.get(..at) else {
        return "";
    };
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| delimiter(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    token_at(text, start)
}

/// "strings need quotes" for a bare word where a value belongs (`forced`:
/// the parser said so, whatever the word).
fn unquoted_word(text: &str, at: usize, forced: bool) -> Option<String> {
    let word = token_at(text, at);
    let first = word.chars().next()?;
    if !forced && (!first.is_alphabetic() || matches!(word, "true" | "false" | "inf" | "nan")) {
        return None;
    }
    let line_start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let before = text.get(line_start..at)?.trim_end();
    if !(before.ends_with('=') || before.ends_with('[') || before.ends_with(',')) {
        return None;
    }
    if matches!(
        word.to_ascii_lowercase().as_str(),
        "yes" | "no" | "on" | "off" | "true" | "false"
    ) {
        return Some(format!(
            "{} is not a value: write true or false, in lowercase, without quotes",
            plain(word)
        ));
    }
    let key = before
        .strip_suffix('=')
        .and_then(|b| b.rsplit(['{', ',']).next())
        .map(str::trim)
        .filter(|k| !k.is_empty() && !k.contains(['[', ']', '=', '"', '\'']));
    Some(match key {
        // `key = some words`: the rest of the line is the value meant.
        Some(k) if before.ends_with('=') && !before.contains('{') => {
            let rest = text.get(at..).unwrap_or("");
            let line = rest.split('\n').next().unwrap_or("");
            let value = line.split(" #").next().unwrap_or(line).trim();
            format!("strings need quotes: {} = {}", plain(k), quoted(value))
        }
        Some(k) => format!("strings need quotes: {} = {}", plain(k), quoted(word)),
        None => format!("strings need quotes: {}", quoted(word)),
    })
}

/// "defined twice", naming the key or table and where it was first defined.
fn duplicate(src: &SourceFile, at: usize) -> String {
    match first_definition(src.text(), at) {
        Some(d) => {
            let (line, _) = src.line_col(d.first);
            let what = if d.table {
                format!("table `[{}]`", d.path)
            } else {
                format!("`{}`", d.path)
            };
            format!(
                "{what} is defined twice; first at {}:{line}",
                src.path().display()
            )
        }
        None => format!("`{}` is defined twice", plain(key_text(src.text(), at))),
    }
}

/// The key written at `at`, quotes and all.
fn key_text(text: &str, at: usize) -> &str {
    let rest = text.get(at..).unwrap_or("");
    match rest.as_bytes().first() {
        Some(q @ (b'"' | b'\'')) => match rest[1..].find(*q as char) {
            Some(end) => &rest[..end + 2],
            None => token_at(text, at),
        },
        _ => token_at(text, at),
    }
}

/// Where a key or table defined again was defined first.
struct FirstDefinition {
    path: KeyPath,
    first: usize,
    table: bool,
}

/// Scans the file's structure (headers, keys, inline tables and arrays,
/// strings skipped) up to the key at `dup`, and finds where the same path
/// was defined before. `None` when the scan cannot tell.
fn first_definition(text: &str, dup: usize) -> Option<FirstDefinition> {
    let mut scan = Scan {
        b: text.as_bytes(),
        pos: 0,
        dup,
        defs: HashMap::new(),
        arrays: HashMap::new(),
        done: false,
        found: None,
    };
    let mut current: Vec<Step> = Vec::new();
    while !scan.done {
        scan.blank();
        if scan.pos >= scan.b.len() || scan.pos > dup {
            break;
        }
        let before = scan.pos;
        if scan.b[scan.pos] == b'[' {
            if let Some(path) = scan.header() {
                current = path;
            }
        } else {
            scan.key_value(&current);
        }
        // Whatever was not understood on this line is skipped.
        if !scan.done {
            scan.skip_rest_of_line(before);
        }
    }
    scan.found
}

struct Scan<'t> {
    b: &'t [u8],
    pos: usize,
    dup: usize,
    /// Where each path was first defined.
    defs: HashMap<Vec<Step>, usize>,
    /// How many tables each array of tables has so far.
    arrays: HashMap<Vec<Step>, usize>,
    done: bool,
    found: Option<FirstDefinition>,
}

fn bare(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Spaces, newlines and comments.
    fn blank(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn skip_rest_of_line(&mut self, started: usize) {
        if self.pos == started {
            self.pos += 1;
        }
        self.spaces();
        if self.peek() == Some(b'#') || self.peek() == Some(b'\n') {
            return;
        }
        while !matches!(self.peek(), None | Some(b'\n')) {
            self.pos += 1;
        }
    }

    /// Records a definition of `path` at `span`; at the duplicate, looks up
    /// the first one and stops. Returns whether the scan stops.
    fn define(&mut self, path: &[Step], span: Range<usize>, table: bool) -> bool {
        if span.start <= self.dup && self.dup < span.end.max(span.start + 1) {
            self.found = self.defs.get(path).map(|&first| FirstDefinition {
                path: KeyPath(path.to_vec()),
                first,
                table,
            });
            self.done = true;
            return true;
        }
        self.defs.entry(path.to_vec()).or_insert(span.start);
        false
    }

    fn key(&mut self) -> Option<(String, Range<usize>)> {
        let start = self.pos;
        match self.peek()? {
            q @ (b'"' | b'\'') => {
                self.pos += 1;
                let from = self.pos;
                loop {
                    match self.peek()? {
                        b'\\' if q == b'"' => self.pos += 2,
                        b'\n' => return None,
                        c if c == q => break,
                        _ => self.pos += 1,
                    }
                }
                let raw = String::from_utf8_lossy(self.b.get(from..self.pos)?).into_owned();
                self.pos += 1;
                let key = if q == b'"' { unescape(&raw) } else { raw };
                Some((key, start..self.pos))
            }
            c if bare(c) => {
                while self.peek().is_some_and(bare) {
                    self.pos += 1;
                }
                let key = String::from_utf8_lossy(&self.b[start..self.pos]).into_owned();
                Some((key, start..self.pos))
            }
            _ => None,
        }
    }

    fn dotted(&mut self) -> Option<Vec<(String, Range<usize>)>> {
        let mut keys = vec![self.key()?];
        loop {
            self.spaces();
            if self.peek() != Some(b'.') {
                return Some(keys);
            }
            self.pos += 1;
            self.spaces();
            keys.push(self.key()?);
        }
    }

    /// `[a.b]` or `[[a.b]]`: the path of the table it opens.
    fn header(&mut self) -> Option<Vec<Step>> {
        let array = self.b[self.pos..].starts_with(b"[[");
        self.pos += if array { 2 } else { 1 };
        self.spaces();
        let keys = self.dotted()?;
        let mut path = Vec::new();
        let count = keys.len();
        for (i, (key, span)) in keys.into_iter().enumerate() {
            path.push(Step::Key(key));
            if i + 1 < count {
                if span.start <= self.dup && self.dup < span.end {
                    self.define(&path, span, true);
                    return None;
                }
                if let Some(n) = self.arrays.get(&path) {
                    path.push(Step::Index(n.saturating_sub(1)));
                }
            } else if array {
                if self.define(&path, span, true) {
                    return None;
                }
                let n = self.arrays.entry(path.clone()).or_insert(0);
                *n += 1;
                path.push(Step::Index(*n - 1));
            } else if self.define(&path, span, true) {
                return None;
            }
        }
        Some(path)
    }

    /// `a.b = value`, under `base`.
    fn key_value(&mut self, base: &[Step]) {
        let Some(keys) = self.dotted() else {
            return;
        };
        self.spaces();
        if self.peek() != Some(b'=') {
            return;
        }
        self.pos += 1;
        self.spaces();
        let mut path = base.to_vec();
        for (key, span) in keys {
            path.push(Step::Key(key));
            if self.define(&path, span, false) {
                return;
            }
        }
        self.value(&path);
    }

    fn value(&mut self, path: &[Step]) {
        match self.peek() {
            None => {}
            Some(b'"' | b'\'') => self.string(),
            Some(b'[') => {
                self.pos += 1;
                let mut index = 0;
                while !self.done {
                    self.blank();
                    let before = self.pos;
                    match self.peek() {
                        None => return,
                        Some(b']') => {
                            self.pos += 1;
                            return;
                        }
                        Some(b',') => self.pos += 1,
                        Some(_) => {
                            let mut item = path.to_vec();
                            item.push(Step::Index(index));
                            index += 1;
                            self.value(&item);
                        }
                    }
                    if self.pos == before {
                        return;
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                while !self.done {
                    self.spaces();
                    let before = self.pos;
                    match self.peek() {
                        None | Some(b'\n') => return,
                        Some(b'}') => {
                            self.pos += 1;
                            return;
                        }
                        Some(b',') => self.pos += 1,
                        Some(_) => self.key_value(path),
                    }
                    if self.pos == before {
                        return;
                    }
                }
            }
            Some(_) => {
                while !matches!(
                    self.peek(),
                    None | Some(b' ' | b'\t' | b'\r' | b'\n' | b',' | b']' | b'}' | b'#')
                ) {
                    self.pos += 1;
                }
            }
        }
    }

    fn string(&mut self) {
        let q = self.b[self.pos];
        let triple = [q, q, q];
        if self.b[self.pos..].starts_with(&triple) {
            self.pos += 3;
            while self.pos < self.b.len() {
                if q == b'"' && self.b[self.pos] == b'\\' {
                    self.pos += 2;
                } else if self.b[self.pos..].starts_with(&triple) {
                    self.pos += 3;
                    // Up to two quotes may end the content.
                    for _ in 0..2 {
                        if self.peek() == Some(q) {
                            self.pos += 1;
                        }
                    }
                    return;
                } else {
                    self.pos += 1;
                }
            }
        } else {
            self.pos += 1;
            while let Some(c) = self.peek() {
                match c {
                    b'\\' if q == b'"' => self.pos += 2,
                    b'\n' => return,
                    c if c == q => {
                        self.pos += 1;
                        return;
                    }
                    _ => self.pos += 1,
                }
            }
        }
    }
}

/// A basic string's escapes resolved, as the parser resolves them in keys.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| {
            let digits: String = chars.take(n).collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .and_then(char::from_u32)
        };
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('e') => out.push('\u{1b}'),
            Some('x') => out.extend(hex(&mut chars, 2)),
            Some('u') => out.extend(hex(&mut chars, 4)),
            Some('U') => out.extend(hex(&mut chars, 8)),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(text: &str, dup: &str) -> Option<(String, usize, bool)> {
        let at = text.rfind(dup).unwrap();
        first_definition(text, at).map(|d| {
            let line = text[..d.first].matches('\n').count() + 1;
            (d.path.to_string(), line, d.table)
        })
    }

    #[test]
    fn duplicates_are_traced_to_their_first_definition() {
        let doc = "[target]\nname = \"a\"\nname = \"b\"\n";
        assert_eq!(first(doc, "name"), Some(("target.name".into(), 2, false)));
        let doc = "# [target]\n[target]\nname = \"a\"\ns = '''\n[target]\n'''\n\n[target]\n";
        assert_eq!(first(doc, "target"), Some(("target".into(), 2, true)));
        let doc = "[[probe]]\nname = \"a\"\n[[probe]]\nkind = \"x\"\nkind = \"y\"\n";
        assert_eq!(first(doc, "kind"), Some(("probe[1].kind".into(), 4, false)));
        let doc = "[[recovery]]\nbackoff = { initial = \"1s\", initial = \"2s\" }\n";
        assert_eq!(
            first(doc, "initial"),
            Some(("recovery[0].backoff.initial".into(), 2, false))
        );
        let doc = "target.name = \"a\"\n\"target\".\"name\" = \"b\"\n";
        assert_eq!(
            first(doc, "\"name\""),
            Some(("target.name".into(), 1, false))
        );
    }

    #[test]
    fn bare_words_get_quotes() {
        let doc = "[log]\nlevel = info\n";
        let at = doc.find("info").unwrap();
        assert_eq!(
            unquoted_word(doc, at, false).unwrap(),
            "strings need quotes: level = \"info\""
        );
        let doc = "units = [nvargus.service]\n";
        let at = doc.find("nvargus").unwrap();
        assert_eq!(
            unquoted_word(doc, at, false).unwrap(),
            "strings need quotes: \"nvargus.service\""
        );
        assert!(unquoted_word("x = 12\n", 4, false).is_none());
        let doc = "name = nvargus daemon  # the camera\n";
        assert_eq!(
            unquoted_word(doc, 7, false).unwrap(),
            "strings need quotes: name = \"nvargus daemon\""
        );
    }
}
