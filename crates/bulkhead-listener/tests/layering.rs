//! The listener's module layering (DESIGN §7, issue 8 item 5), checked from its source: every
//! top-level module has a line in [`LAYERS`], and a module may import (`crate::NAME`, outside its
//! tests) only modules on lines below its own — not beside it, not above — so there can be no
//! cycle either (checked too). A new module must be given a rank
//! here, which is the moment to decide where it sits. The same graph as
//! `shared/tools/module-cycles.py`, with the direction on top; reads files only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top to bottom, as in the diagram of `lib.rs`; a module may use only the lines below its own.
const LAYERS: &[&[&str]] = &[
    &["control"],
    &["accept"],
    &["conn"],
    &["request"],
    &["state"],
    &["static_files", "queue"],
    &["routing"],
    &["response"],
    &["dispatch"],
    &["body"],
    &["log", "proxy", "error", "to_manager", "inherit"],
    &["stats", "tls"],
];

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn listener_modules_form_a_layering() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    let problems = check(&graph, LAYERS);
    assert!(problems.is_empty(), "the listener's layering is broken:\n{}", problems.join("\n"));
    // The walk found the crate (guards against checking an empty graph).
    assert!(graph.len() >= 15 && graph["request"].contains("queue"), "{graph:?}");
}

#[test]
fn the_check_sees_upward_edges_cycles_and_unranked_modules() {
    let layers: &[&[&str]] = &[&["a"], &["b", "c"], &["d"]];
    let g = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for m in ["a", "b", "c", "d"] {
            g.entry(m.to_string()).or_default();
        }
        for (from, to) in edges {
            g.entry(from.to_string()).or_default().insert(to.to_string());
        }
        g
    };
    assert!(check(&g(&[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]), layers).is_empty());
    assert_eq!(check(&g(&[("d", "a")]), layers), vec!["d imports a, not on a line below it"]);
    assert_eq!(check(&g(&[("b", "c")]), layers), vec!["b imports c, not on a line below it"]);
    assert_eq!(
        find_cycle(&g(&[("a", "d"), ("d", "b"), ("b", "a")])),
        Some(["a", "d", "b", "a"].map(String::from).into())
    );
    assert_eq!(find_cycle(&g(&[("a", "b"), ("a", "d"), ("b", "d")])), None);
    assert_eq!(check(&g(&[("e", "d")]), layers), vec!["module e has no layer in LAYERS"]);
    let text = "use crate::{body::X, log};\nfn f() { crate::queue::g(); } // crate::conn\n\
                #[cfg(test)]\nmod tests { use crate::accept; }";
    assert_eq!(imports(text), ["body", "log", "queue"].map(String::from).into());
}

/// Each top-level module (`src/NAME.rs` and `src/NAME/…`) → the modules it imports.
fn graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut files = vec![src.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = path.strip_prefix(src).unwrap();
        let name = rel.to_str().unwrap();
        if !name.ends_with(".rs") || name == "lib.rs" || rel.file_name().unwrap() == "tests.rs" {
            continue;
        }
        let top = name.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        let found = imports(&std::fs::read_to_string(&path).unwrap());
        graph.entry(top.clone()).or_default().extend(found.into_iter().filter(|m| *m != top));
    }
    graph
}

/// The modules named as `crate::NAME` (or in a `crate::{…}` group) in code that is neither a
/// comment nor a `#[cfg(test)] mod`.
fn imports(text: &str) -> BTreeSet<String> {
    let code = strip_tests(text);
    let code: String = code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|item| ident(item.trim())).filter(|s| !s.is_empty()));
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// The text without its `#[cfg(test)] mod NAME { … }` blocks.
fn strip_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let Some(open) = after.strip_prefix("mod ").and_then(|m| m.find(['{', ';']).map(|i| (m, i))) else {
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
            continue;
        };
        out.push_str(&rest[..at]);
        let (m, i) = open;
        if m.as_bytes()[i] == b';' {
            rest = &m[i + 1..];
            continue;
        }
        let mut depth = 0;
        let mut end = m.len();
        for (j, c) in m[i..].char_indices() {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            if depth == 0 {
                end = i + j + 1;
                break;
            }
        }
        rest = &m[end..];
    }
    out.push_str(rest);
    out
}

/// Every edge that goes up a layer, every module without a layer, and every cycle.
fn check(graph: &Graph, layers: &[&[&str]]) -> Vec<String> {
    let rank: BTreeMap<&str, usize> =
        layers.iter().enumerate().flat_map(|(r, line)| line.iter().map(move |m| (*m, r))).collect();
    let mut problems = Vec::new();
    for (module, deps) in graph {
        let Some(&from) = rank.get(module.as_str()) else {
            problems.push(format!("module {module} has no layer in LAYERS"));
            continue;
        };
        for dep in deps {
            match rank.get(dep.as_str()) {
                Some(&to) if to <= from => problems.push(format!("{module} imports {dep}, not on a line below it")),
                _ => {}
            }
        }
    }
    if let Some(cycle) = find_cycle(graph) {
        problems.push(format!("cycle: {}", cycle.join(" → ")));
    }
    problems
}

/// One cycle of the graph, if it has any (depth-first search).
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit<'g>(
        graph: &'g Graph,
        node: &'g str,
        path: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(graph, dep, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}
