//! `check` on 400 mutated copies of the shipped files: lines deleted or
//! swapped, values of the wrong type, random bytes, truncation, huge
//! numbers, odd Unicode, duplicated keys and tables. Whatever the damage,
//! loading finishes without a panic and every error is located in a file
//! of the case. The mutations are drawn from a fixed seed, so a failure
//! names a case that reproduces.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use rvm_watchdog::config::{self, Level, Sources};

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const VALUES: [&str; 16] = [
    "true",
    "42",
    "-1",
    "3.5",
    "\"text\"",
    "'literal'",
    "[1, \"two\"]",
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
    "99999999999999999999999",
    "-9223372036854775809",
    "1e400",
    "0x7fffffffffffffffffff",
    "inf",
    "nan",
    "\"\"",
];

const ODD: [&str; 10] = [
    "\u{202E}",
    "\\u0000",
    "\u{0}",
    "\u{1F600}",
    "e\u{301}",
    "\u{FEFF}",
    "\u{7}",
    "\r",
    "\u{10FFFF}",
    "\"",
];

/// One mutation of `text`, and what it was.
fn mutate(text: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let line = rng.below(lines.len());
    let join = |lines: &[&[u8]]| lines.concat();
    match rng.below(11) {
        0 => {
            let mut l = lines.clone();
            l.remove(line);
            (join(&l), format!("delete line {}", line + 1))
        }
        1 => {
            let value = *rng.pick(&VALUES);
            let mut out = Vec::new();
            let mut changed = format!("no `=` on line {}", line + 1);
            for (i, l) in lines.iter().enumerate() {
                match l.iter().position(|b| *b == b'=') {
                    Some(eq) if i == line => {
                        out.extend_from_slice(&l[..=eq]);
                        out.extend_from_slice(format!(" {value}\n").as_bytes());
                        changed = format!("line {} = {value}", i + 1);
                    }
                    _ => out.extend_from_slice(l),
                }
            }
            (out, changed)
        }
        2 => {
            let mut out = text.to_vec();
            let at = rng.below(out.len() + 1);
            let n = 1 + rng.below(8);
            for _ in 0..n {
                out.insert(at.min(out.len()), rng.next() as u8);
            }
            (out, format!("{n} random bytes at {at}"))
        }
        3 => {
            let at = rng.below(text.len() + 1);
            (text[..at].to_vec(), format!("truncate at {at}"))
        }
        4 => {
            let odd = *rng.pick(&ODD);
            let mut out = text.to_vec();
            let at = rng.below(out.len() + 1);
            out.splice(at..at, odd.bytes());
            (out, format!("{odd:?} at {at}"))
        }
        5 => {
            let mut l = lines.clone();
            l.insert(line, lines[line]);
            (join(&l), format!("repeat line {}", line + 1))
        }
        6 => {
            let mut out = text.to_vec();
            out.extend_from_slice(b"\n");
            out.extend_from_slice(text);
            (out, "the file twice".into())
        }
        7 => {
            let mut l = lines.clone();
            let other = rng.below(lines.len());
            l.swap(line, other);
            (
                join(&l),
                format!("swap lines {} and {}", line + 1, other + 1),
            )
        }
        8 => {
            // A long string value where a quoted one was.
            let long = format!("\"{}\"", "x".repeat(100_000));
            let mut out = Vec::new();
            let mut done = false;
            for (i, l) in lines.iter().enumerate() {
                if !done && i >= line && l.contains(&b'"') && l.contains(&b'=') {
                    let eq = l.iter().position(|b| *b == b'=').unwrap();
                    out.extend_from_slice(&l[..=eq]);
                    out.extend_from_slice(format!(" {long}\n").as_bytes());
                    done = true;
                } else {
                    out.extend_from_slice(l);
                }
            }
            (out, format!("a long string from line {}", line + 1))
        }
        9 => {
            // Every value of a line's key replaced by a number, as written.
            let number = *rng.pick(&["0", "00", "1_000", "0b101", "0o7", "+5", "1.", ".5"]);
            let mut out = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                match l.iter().position(|b| *b == b'=') {
                    Some(eq) if i == line => {
                        out.extend_from_slice(&l[..=eq]);
                        out.extend_from_slice(format!(" {number}\n").as_bytes());
                    }
                    _ => out.extend_from_slice(l),
                }
            }
            (out, format!("line {} = {number}", line + 1))
        }
        _ => {
            // A header turned into another kind of table.
            let mut out = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                if i == line && l.starts_with(b"[[") {
                    out.extend_from_slice(&l[1..l.len().saturating_sub(2).max(1)]);
                    out.push(b'\n');
                } else if i == line && l.starts_with(b"[") {
                    out.push(b'[');
                    out.extend_from_slice(l.strip_suffix(b"\n").unwrap_or(l));
                    out.extend_from_slice(b"]\n");
                } else {
                    out.extend_from_slice(l);
                }
            }
            (out, format!("header on line {} changed", line + 1))
        }
    }
}

struct Shipped {
    root: PathBuf,
    files: Vec<(PathBuf, Vec<u8>)>,
}

fn shipped() -> Shipped {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![(
        PathBuf::from("watchdog.toml"),
        std::fs::read(root.join("packaging/watchdog.toml")).unwrap(),
    )];
    let mut policies: Vec<PathBuf> = std::fs::read_dir(root.join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    policies.sort();
    for p in policies {
        files.push((
            Path::new("policies").join(p.file_name().unwrap()),
            std::fs::read(&p).unwrap(),
        ));
    }
    Shipped {
        root: root.to_owned(),
        files,
    }
}

/// Writes the shipped files into `dir`, with a hooks directory and platform
/// that the shipped policies load against.
fn lay_out(dir: &Path, shipped: &Shipped) {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    for (name, text) in &shipped.files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut config = shipped.files[0].1.clone();
    config.extend_from_slice(b"\n[platform]\nbase-url = \"https://myrvm.example/api/v1\"\n");
    let config = String::from_utf8(config).unwrap().replace(
        "hooks-dirs = [\"/etc/rvm-watchdog/hooks\", \"/usr/share/rvm-watchdog/hooks\"]",
        &format!(
            "hooks-dirs = [\"{}\"]",
            shipped.root.join("hooks").display()
        ),
    );
    std::fs::write(dir.join("watchdog.toml"), config).unwrap();
}

fn sources(dir: &Path) -> Sources {
    Sources {
        config_file: Some(dir.join("watchdog.toml")),
        policies_dir: Some(dir.join("policies")),
        ..Sources::default()
    }
}

/// Whole-file problems have no line.
fn whole_file(message: &str) -> bool {
    message.starts_with("cannot read") || message.starts_with("file is too large")
}

#[test]
fn mutated_shipped_files_never_panic_and_every_error_is_located() {
    const CASES: usize = 400;
    let shipped = shipped();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    lay_out(dir, &shipped);
    // The files as laid out are the baseline the mutations start from.
    let baseline: Vec<(PathBuf, Vec<u8>)> = shipped
        .files
        .iter()
        .map(|(name, _)| (name.clone(), std::fs::read(dir.join(name)).unwrap()))
        .collect();

    let mut rng = Rng(0x5EED_CAFE_F00D_1234);
    let mut failing = 0;
    let mut sampled = Vec::new();
    for case in 0..CASES {
        let (name, text) = &baseline[rng.below(baseline.len())];
        let (mutated, what) = mutate(text, &mut rng);
        let path = dir.join(name);
        std::fs::write(&path, &mutated).unwrap();
        let label = format!("case {case}: {} {what}", name.display());

        let loaded = catch_unwind(AssertUnwindSafe(|| config::load(&sources(dir))))
            .unwrap_or_else(|_| panic!("{label}: loading panicked"));
        let lines_of = |file: &Path| -> usize {
            std::fs::read(file)
                .map(|t| t.split(|b| *b == b'\n').count())
                .unwrap_or(0)
        };
        for d in &loaded.diagnostics {
            let shown = d.to_string();
            assert!(
                !shown.contains(|c: char| c.is_control() || c == '\u{202E}'),
                "{label}: raw control character in {shown:?}"
            );
            if d.severity != Level::Error {
                continue;
            }
            assert!(
                d.file.starts_with(dir),
                "{label}: error outside the case's files: {shown}"
            );
            if whole_file(&d.message) {
                assert_eq!(d.line, 0, "{label}: {shown}");
                continue;
            }
            assert!(d.line >= 1 && d.col >= 1, "{label}: not located: {shown}");
            assert!(
                d.line <= lines_of(&d.file),
                "{label}: line {} past the end of {}: {shown}",
                d.line,
                d.file.display()
            );
        }
        if loaded.config.is_none() {
            failing += 1;
        }
        if case % 40 == 0 {
            sampled.push((label, mutated.clone(), name.clone()));
        }
        std::fs::write(&path, text).unwrap();
    }
    // Most mutations break something; some are harmless (a comment line).
    assert!(
        failing > CASES / 2,
        "{failing} of {CASES} cases failed to load"
    );

    // A sample through the binary: exit 0 or 1, never a crash.
    for (label, mutated, name) in sampled {
        let path = dir.join(&name);
        std::fs::write(&path, &mutated).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_rvm-watchdog"))
            .arg("check")
            .arg("--config")
            .arg(dir.join("watchdog.toml"))
            .arg("--policies")
            .arg(dir.join("policies"))
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{label}: exit {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let restored = baseline.iter().find(|(n, _)| *n == name).unwrap();
        std::fs::write(&path, &restored.1).unwrap();
    }
}
