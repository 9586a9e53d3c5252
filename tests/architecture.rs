//! The layering rule of `src/` (docs/architecture.md), as a test: a module
//! imports only modules of a lower layer. It reads every `.rs` file under
//! `src/`, finds the crate modules it names (`crate::x`, `use crate::{x, …}`,
//! `super::` from a top-level file, `tilegate::x` from `main.rs`) and fails
//! on any name of a module at the same or a higher layer, and on any
//! top-level module missing from the table below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of the crate, with its layer. A module may import
/// modules of a strictly lower layer only. Keep in step with the picture in
/// docs/architecture.md.
const LAYERS: &[(&str, u8)] = &[
    // Leaves: they import nothing of ours.
    ("clock", 0),
    ("telemetry", 0),
    ("grants", 0),
    // Near-leaves: the metric names and handles, the network toolkit
    // (TLS configs, outbound client, trusted-proxy addresses) and the store.
    ("metrics", 1),
    ("net", 1),
    ("store", 1),
    // The route table and path canonicalisation, then the typed
    // configuration that is validated into them (pure data, no I/O).
    ("routing", 2),
    ("config", 3),
    // The request path's building blocks, bottom-up.
    ("auth", 4),
    ("body", 4),
    ("proxy", 5),
    ("http", 6),
    ("credentials", 6),
    ("issue", 7),
    // Shared state, then the listeners.
    ("state", 8),
    ("server", 9),
    ("admin", 10),
    // Process wiring, then the entry points.
    ("app", 11),
    ("demo", 12),
    ("cli", 13),
];

/// Imports against the rule that the architecture work has not yet moved.
/// The list only shrinks: an entry that no longer happens fails the test
/// too, so it is removed with the change that ends it.
const NOT_YET: &[(&str, &str)] = &[];

/// Modules outside the rule: test and fuzzing harnesses that reach into
/// every layer on purpose (compiled for tests and the fuzz crate only).
const EXEMPT: &[&str] = &["fuzzing"];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments (line and block) and string
/// literals, so a doc link or an error text naming a module is no import.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) && !ident_char_before(b, i)
        {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                j += 1;
                let end: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                while j < b.len() && !b[j..].starts_with(&end) {
                    j += 1;
                }
                i = (j + end.len()).min(b.len());
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('a): skip
            // only the former.
            let rest = &b[i + 1..];
            let len = if rest.first() == Some(&b'\\') {
                rest.iter().skip(1).position(|&c| c == b'\'').map(|p| p + 2)
            } else {
                let ch = src[i + 1..].chars().next();
                ch.and_then(|c| {
                    let n = c.len_utf8();
                    (rest.get(n) == Some(&b'\'')).then_some(n)
                })
            };
            match len {
                Some(n) => {
                    i += n + 2;
                    out.push_str("' '");
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_char_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// The first-level names inside `{…}` at the start of `s` (`{a, b::c,
/// d::{e}}` gives a, b, d).
fn brace_group(s: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut start_of_item = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                start_of_item = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => start_of_item = true,
            c if c.is_whitespace() => {}
            _ if start_of_item && depth == 1 => {
                if let Some(id) = ident_at(&s[i..]) {
                    names.push(id);
                }
                start_of_item = false;
            }
            _ => {}
        }
    }
    names
}

/// The crate modules a file's code names, after `prefix` (`crate::`).
fn named_after<'a>(code: &'a str, prefix: &str) -> BTreeSet<&'a str> {
    let mut found = BTreeSet::new();
    let mut from = 0;
    while let Some(p) = code[from..].find(prefix) {
        let at = from + p;
        from = at + prefix.len();
        if ident_char_before(code.as_bytes(), at) {
            continue;
        }
        let rest = code[from..].trim_start();
        if rest.starts_with('{') {
            found.extend(brace_group(rest));
        } else if let Some(id) = ident_at(rest) {
            found.insert(id);
        }
    }
    found
}

/// The top-level module a file belongs to (`src/auth/keys.rs` → auth),
/// or `None` for the crate roots.
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib" && name != "main").then_some(name)
}

/// Every (importer, imported) pair of top-level modules, with a file that
/// shows it.
fn imports(src: &Path) -> BTreeMap<(String, String), PathBuf> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut edges = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().to_path_buf();
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        let Some(from) = module_of(&rel) else {
            if rel == Path::new("main.rs") {
                for to in named_after(&code, "tilegate::") {
                    edges.entry(("main".to_owned(), to.to_owned())).or_insert(rel.clone());
                }
            }
            continue;
        };
        let mut named = named_after(&code, "crate::");
        // `super::x` from a file directly under src/ names a sibling module.
        if rel.components().count() == 1 {
            named.extend(named_after(&code, "super::"));
        }
        for to in named {
            if to != from && (layer_of(to).is_some() || EXEMPT.contains(&to)) {
                edges.entry((from.clone(), to.to_owned())).or_insert(rel.clone());
            }
        }
    }
    edges
}

fn top_level_modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_owned();
            let name = if p.is_dir() {
                name
            } else {
                name.strip_suffix(".rs")?.to_owned()
            };
            (name != "lib" && name != "main").then_some(name)
        })
        .collect()
}

#[test]
fn every_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let missing: Vec<_> = top_level_modules(&src)
        .into_iter()
        .filter(|m| layer_of(m).is_none() && !EXEMPT.contains(&m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/architecture.rs (and docs/architecture.md): {missing:?}"
    );
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut pending = BTreeSet::new();
    for ((from, to), file) in imports(&src) {
        if from == "main" {
            if to != "cli" {
                broken.push(format!("main.rs names {to} (main only calls cli)"));
            }
            continue;
        }
        if EXEMPT.contains(&from.as_str()) {
            continue;
        }
        if EXEMPT.contains(&to.as_str()) {
            // A harness may be called from tests only.
            let text = std::fs::read_to_string(src.join(&file)).unwrap();
            if !text.contains("#[cfg(test)]") && !text.contains("cfg(any(test") {
                broken.push(format!("{from} → {to} outside tests ({})", file.display()));
            }
            continue;
        }
        let (Some(a), Some(b)) = (layer_of(&from), layer_of(&to)) else {
            continue;
        };
        if b >= a {
            if NOT_YET.contains(&(from.as_str(), to.as_str())) {
                pending.insert((from.clone(), to.clone()));
            } else {
                broken.push(format!(
                    "{from} (layer {a}) → {to} (layer {b}), e.g. src/{}",
                    file.display()
                ));
            }
        }
    }
    for (from, to) in NOT_YET {
        if !pending.contains(&(from.to_string(), to.to_string())) {
            broken.push(format!(
                "{from} → {to} is in NOT_YET but no longer happens: remove it from the list"
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering rule (docs/architecture.md):\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn the_reader_finds_imports_in_every_form() {
    let code = code_only(
        "use crate::{auth::Verifier, store::{Store, Kek}};\n\
         // crate::admin in a comment\n\
         /* crate::cli in a block */\n\
         let s = \"crate::demo in a string\";\n\
         let c = '\"'; let l: &'static str = \"\";\n\
         fn f() -> crate::proxy::Upstream { crate::http::json() }\n\
         pub(crate) fn g() {}\n",
    );
    let named = named_after(&code, "crate::");
    assert_eq!(named, BTreeSet::from(["auth", "http", "proxy", "store"]), "{code}");
    assert_eq!(brace_group("{a, b::c, d::{e, f}, self}"), vec!["a", "b", "d", "self"]);
}
