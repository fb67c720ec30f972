//! The core's modules import only downward: panic catching (`catch`) <-
//! `stack_context` <- `callback` <- `future`, and the protocol layer
//! (`http`, `httputil`) never imports `web`. Checked on the source text, so a
//! new import that makes a cycle fails here, naming the line.

use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `crate::` modules a file's code (not its comments) names.
fn crate_refs(path: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut refs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            refs.push((n + 1, name));
            rest = &rest[at + 7..];
        }
    }
    refs
}

/// Every `.rs` file under `dir` (or `dir` itself).
fn files(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    if !dir.exists() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

#[test]
fn catch_stack_context_callback_future_import_only_downward() {
    // Each module, and the ones above it that it must not name.
    let order = ["catch", "stack_context", "callback", "future"];
    let mut wrong = Vec::new();
    for (i, module) in order.iter().enumerate() {
        let path = src().join(format!("{module}.rs"));
        for (line, name) in crate_refs(&path) {
            if order[i + 1..].contains(&name.as_str()) || (name == "ioloop" || name == "gen") {
                wrong.push(format!("src/{module}.rs:{line} names crate::{name}"));
            }
        }
    }
    assert!(wrong.is_empty(), "upward imports:\n{}", wrong.join("\n"));
}

#[test]
fn the_protocol_layer_does_not_import_web() {
    let mut wrong = Vec::new();
    for path in files(&src().join("http"))
        .into_iter()
        .chain(files(&src().join("http.rs")))
        .chain(files(&src().join("httputil.rs")))
        .chain(files(&src().join("httputil")))
    {
        for (line, name) in crate_refs(&path) {
            if name == "web" || name == "websocket" {
                wrong.push(format!("{}:{line} names crate::{name}", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "upward imports:\n{}", wrong.join("\n"));
}
