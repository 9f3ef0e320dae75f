//! The crate's layering (ARCHITECTURE.md, "Layers"): every `crate::` path in `src/` points from a
//! module to one in a lower layer, and the file-level modules form no cycle. Reads the sources,
//! so a new arrow against the rule fails here rather than in a review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top to bottom. A module may use modules of lower layers only; modules sharing a layer are
/// independent of each other. Keep in step with ARCHITECTURE.md.
const LAYERS: &[&[&str]] = &[
    &["editor"],
    &["plugin"],
    &["project"],
    &["offline"],
    &["worker"],
    &["playback"],
    &["params"],
    &["remote"],
    &["listen"],
    &["weights", "spectral"],
    &["io"],
    &["activation"],
    &["llm"],
    &["music", "synth", "loudness", "status", "rng"],
];

/// The plugin shell sits above every layer.
const SHELL: &[&str] = &["lib", "clap_export", "vst3_export"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/playback/player.rs` → `["playback", "player"]`; `mod.rs` is its folder.
fn module_path(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The source without comments (doc links may point anywhere) and without string contents.
fn code_of(source: &str) -> String {
    let mut code = String::with_capacity(source.len());
    for line in source.lines() {
        let mut in_string = false;
        let mut previous = ' ';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_string && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && previous != '\\' {
                in_string = !in_string;
            } else if !in_string {
                kept.push(c);
            }
            previous = c;
            i += 1;
        }
        code.push_str(&kept);
        code.push('\n');
    }
    code
}

/// Every `crate::a::b` path in `code`, as `["a", "b"]` (up to two segments), with grouped
/// imports (`crate::a::{b, c::d}`, `crate::{a, b}`) expanded.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        paths.extend(expand(rest, Vec::new()));
    }
    paths
}

fn expand(text: &str, prefix: Vec<String>) -> Vec<Vec<String>> {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 1;
        let mut end = group.len();
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        return split_top_level(&group[..end])
            .into_iter()
            .flat_map(|item| expand(item, prefix.clone()))
            .collect();
    }
    let ident: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() || ident == "self" {
        return vec![prefix];
    }
    let mut path = prefix;
    path.push(ident.clone());
    let after = &text[ident.len()..];
    match after.strip_prefix("::") {
        Some(next) if path.len() < 2 => expand(next, path),
        _ => vec![path],
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// The file-level modules and the file-level modules each one names.
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .filter(|f| !f.starts_with(src().join("bin")))
        .map(|f| module_path(f))
        .collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        if file.starts_with(src().join("bin")) {
            continue;
        }
        let from = module_path(file);
        let source = std::fs::read_to_string(file).expect("readable source");
        let mut targets = BTreeSet::new();
        for path in crate_paths(&code_of(&source)) {
            // The longest prefix that is a file-level module.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|candidate| modules.contains(candidate));
            if let Some(target) = target
                && target != from
            {
                targets.insert(target);
            }
        }
        edges.insert(from, targets);
    }
    edges
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

#[test]
fn every_arrow_points_down_the_layers() {
    let mut wrong = Vec::new();
    for (from, targets) in graph() {
        let top = from.first().map_or("lib", String::as_str);
        if SHELL.contains(&top) {
            continue;
        }
        let Some(from_layer) = layer_of(top) else {
            wrong.push(format!(
                "`{top}` is in no layer: add it to LAYERS and ARCHITECTURE.md"
            ));
            continue;
        };
        for target in targets {
            let target_top = target[0].as_str();
            if target_top == top {
                continue;
            }
            match layer_of(target_top) {
                Some(layer) if layer > from_layer => {}
                _ => wrong.push(format!("{} → {}", from.join("::"), target.join("::"))),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let edges = graph();
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                0 => visit(next, edges, state, stack, cycles),
                1 => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|n| n.join("::")).collect();
                    cycle.push(next.join("::"));
                    cycles.push(cycle.join(" → "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
    }
    let (mut state, mut stack, mut cycles) = (BTreeMap::new(), Vec::new(), Vec::new());
    for node in edges.keys() {
        if !state.contains_key(node) {
            visit(node, &edges, &mut state, &mut stack, &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_architecture_document_names_every_layer() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    for module in LAYERS.iter().flat_map(|layer| layer.iter()) {
        assert!(
            doc.contains(&format!("`{module}/`")) || doc.contains(&format!("`{module}.rs`")),
            "ARCHITECTURE.md does not describe `{module}`"
        );
    }
}

#[test]
fn the_path_reader_sees_grouped_imports() {
    let code = code_of("use crate::{a::b, c::{d, e::f}};\nlet x = crate::g::h(1); // crate::no\n");
    let paths = crate_paths(&code);
    let flat: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(flat, ["a::b", "c::d", "c::e", "g::h"]);
}
