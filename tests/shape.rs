//! The house's shape, checked (issue 17): no import circle among the
//! crate's modules (every arrow points down), no room (source file) over
//! ROOM_LINES lines before its tests, no function over FN_LINES lines. It
//! reads src/ as text and relies on rustfmt's layout (`cargo fmt --check`
//! runs beside it). The numbers are for people: a room past them has found
//! its seams; split it there rather than raise them.
// Reading the source tree is what this test is for.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A source file may hold at most this many lines before its tests.
const ROOM_LINES: usize = 500;
/// A function may span at most this many lines.
const FN_LINES: usize = 120;

/// Rooms over the limit whose split is pending (issue 17), each with the
/// size it must not pass. Remove a line when its room is split.
const ROOMS_PENDING: &[(&str, usize)] = &[];
/// Functions over the limit whose split is pending: (file, name, lines).
const FNS_PENDING: &[(&str, &str, usize)] = &[];
/// Import circles whose untying is pending: a pair of modules that use
/// each other.
const CIRCLES_PENDING: &[(&str, &str)] = &[];

/// One module's source: its path in the crate (`commands::record`), its
/// file relative to src/, and its lines before its tests.
struct Module {
    name: String,
    file: String,
    code: Vec<String>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read src/") {
        let p = e.expect("read src/").path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `#[cfg(test)]` followed by a `mod` line: where a file's tests begin (an
/// inline module), or a test-only child module (`mod tests;`).
fn test_mod_at(lines: &[String], i: usize) -> Option<&str> {
    let next = lines.get(i + 1)?;
    (lines[i].trim() == "#[cfg(test)]" && next.starts_with("mod ")).then_some(next.as_str())
}

/// Every module of the crate but the test-only ones.
fn modules() -> Vec<Module> {
    let src = src_dir();
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut all = Vec::new();
    let mut test_only = BTreeSet::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let mut parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
        if matches!(parts.last(), Some(&("mod" | "lib" | "main"))) {
            parts.pop();
        }
        let name = parts.join("::");
        let text = fs::read_to_string(&f).expect("read a source file");
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut end = lines.len();
        for i in 0..lines.len() {
            let Some(m) = test_mod_at(&lines, i) else {
                continue;
            };
            if let Some(child) = m.strip_prefix("mod ").and_then(|c| c.strip_suffix(';')) {
                let full = if name.is_empty() {
                    child.to_string()
                } else {
                    format!("{name}::{child}")
                };
                test_only.insert(full);
            } else {
                end = end.min(i);
            }
        }
        let code = lines[..end].to_vec();
        all.push(Module {
            name,
            file: rel,
            code,
        });
    }
    // A test-only module's children are test-only too (src/sim/).
    all.retain(|m| {
        !test_only
            .iter()
            .any(|t| m.name == *t || m.name.starts_with(&format!("{t}::")))
    });
    all
}

#[test]
fn no_room_passes_its_size_before_its_tests() {
    let mut over = Vec::new();
    for m in modules() {
        let n = m.code.len();
        let cap = ROOMS_PENDING
            .iter()
            .find(|(f, _)| *f == m.file)
            .map_or(ROOM_LINES, |(_, c)| *c);
        if n > cap {
            over.push(format!(
                "src/{}: {n} lines before its tests (at most {cap})",
                m.file
            ));
        }
    }
    assert!(
        over.is_empty(),
        "rooms past their size: split them along their seams:\n{}",
        over.join("\n")
    );
}

/// A function's name and length, for every `fn` with a body in `code`
/// (rustfmt closes a body with `}` at the indent of its `fn`).
fn functions(code: &[String]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, line) in code.iter().enumerate() {
        let t = line.trim_start();
        let Some(at) = t.find("fn ") else { continue };
        let before = &t[..at];
        let qualifiers = before.split_whitespace().all(|w| {
            w.starts_with("pub") || matches!(w, "const" | "async" | "unsafe" | "extern" | "\"C\"")
        });
        if !qualifiers || t.starts_with("//") {
            continue;
        }
        let name: String = t[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let indent = &line[..line.len() - t.len()];
        // A declaration without a body ends its signature with `;`.
        let sig_end = code[i..]
            .iter()
            .position(|l| l.contains('{') || l.trim_end().ends_with(';'));
        match sig_end.map(|k| &code[i + k]) {
            Some(l) if !l.contains('{') => continue,
            None => continue,
            _ => {}
        }
        if t.trim_end().ends_with('}') {
            out.push((name, 1));
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(k) = code[i + 1..].iter().position(|l| *l == close) {
            out.push((name, k + 2));
        }
    }
    out
}

#[test]
fn no_function_passes_its_length() {
    let mut over = Vec::new();
    for m in modules() {
        for (name, n) in functions(&m.code) {
            let cap = FNS_PENDING
                .iter()
                .find(|(f, fun, _)| *f == m.file && *fun == name)
                .map_or(FN_LINES, |(_, _, c)| *c);
            if n > cap {
                over.push(format!(
                    "src/{}: fn {name} spans {n} lines (at most {cap})",
                    m.file
                ));
            }
        }
    }
    assert!(
        over.is_empty(),
        "functions past their length: split them into named pieces:\n{}",
        over.join("\n")
    );
}

/// The paths a module names: `use crate::a::{b, c::d};`, `crate::a::f()`
/// and `super::x` inline, as full paths from the crate root.
fn named_paths(m: &Module) -> Vec<String> {
    let parent = match m.name.rsplit_once("::") {
        Some((p, _)) => p.to_string(),
        None => String::new(),
    };
    let text: String = m
        .code
        .iter()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    for (root, prefix) in [("crate::", String::new()), ("super::", parent)] {
        let mut rest = text.as_str();
        while let Some(at) = rest.find(root) {
            let is_word = rest[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + root.len()..];
            if is_word {
                continue;
            }
            for p in expand(rest) {
                out.push(if prefix.is_empty() {
                    p
                } else {
                    format!("{prefix}::{p}")
                });
            }
        }
    }
    out
}

/// The paths of a use tree at the start of `s`: `a::{b, c::{d}}` gives
/// `a::b` and `a::c::d`; a plain path gives itself.
fn expand(s: &str) -> Vec<String> {
    let head: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let head = head.trim_end_matches(':').to_string();
    let after = &s[head.len()..].trim_start_matches(':');
    if !after.starts_with('{') {
        return vec![head];
    }
    let mut depth = 0;
    let mut body = String::new();
    for c in after.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        body.push(c);
        if depth == 0 {
            break;
        }
    }
    let inner = &body[1..body.len().saturating_sub(1)];
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    let mut out = Vec::new();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        for e in expand(p) {
            out.push(if head.is_empty() {
                e
            } else {
                format!("{head}::{e}")
            });
        }
    }
    out
}

/// Which modules each module uses (its own descendants aside: a module
/// declares its children, and they may use it).
fn arrows() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let names: BTreeSet<String> = mods.iter().map(|m| m.name.clone()).collect();
    let mut g = BTreeMap::new();
    for m in &mods {
        let mut to = BTreeSet::new();
        for p in named_paths(m) {
            let parts: Vec<&str> = p.split("::").collect();
            let Some(target) = (1..=parts.len())
                .rev()
                .map(|k| parts[..k].join("::"))
                .find(|n| names.contains(n))
            else {
                continue;
            };
            if target != m.name && !target.starts_with(&format!("{}::", m.name)) {
                to.insert(target);
            }
        }
        g.insert(m.name.clone(), to);
    }
    g
}

fn reaches(g: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(n) = todo.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n.clone()) {
            todo.extend(g.get(&n).into_iter().flatten().cloned());
        }
    }
    false
}

#[test]
fn every_arrow_points_down() {
    let g = arrows();
    // The reader must see arrows at all, or this test could not fail.
    assert!(
        g["plan"].contains("model"),
        "the import reader found no arrows"
    );
    let mut circles = Vec::new();
    let pending = |a: &str, b: &str| {
        CIRCLES_PENDING
            .iter()
            .any(|(x, y)| (*x == a && *y == b) || (*x == b && *y == a))
    };
    let mut g = g;
    for (from, tos) in g.iter_mut() {
        tos.retain(|to| !pending(from, to));
    }
    for (from, tos) in &g {
        for to in tos {
            if reaches(&g, to, from) {
                circles.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "imports in a circle: move the shared types down (into model or a small module of their own):\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_reader_sees_use_trees_and_inline_paths() {
    assert_eq!(expand("a::{b, c::{d, e}};"), ["a::b", "a::c::d", "a::c::e"]);
    assert_eq!(expand("model::Snapshot) -> x"), ["model::Snapshot"]);
    let m = Module {
        name: "commands::record".into(),
        file: String::new(),
        code: vec![
            "use super::Ctx;".into(),
            "use crate::{metrics::Observed, model::{Snapshot, Units}};".into(),
            "    let r = crate::roads::Roads::of(s); // crate::plan".into(),
        ],
    };
    assert_eq!(
        named_paths(&m),
        [
            "metrics::Observed",
            "model::Snapshot",
            "model::Units",
            "roads::Roads::of",
            "commands::Ctx"
        ]
    );
    let code: Vec<String> = [
        "pub(crate) fn f(",
        "    x: u32,",
        ") -> u32 {",
        "    x",
        "}",
        "fn g() {}",
        "    fn h(&self);",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        functions(&code),
        [("f".to_string(), 5), ("g".to_string(), 1)]
    );
}
