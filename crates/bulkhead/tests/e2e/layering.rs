//! The module layering inside each crate (DESIGN §7, STYLE "Layout"): no two top-level modules
//! of a crate import each other, directly or round a circle, so each crate reads as layers a
//! newcomer can follow (in the listener: connection → request → {static files, queue, response}
//! → dispatch → transports; in the manager: supervisor → pool state machines → process → event
//! and command leaves).
//!
//! A top-level module is `src/NAME.rs` with everything under `src/NAME/`; an edge is a
//! `crate::NAME` path (or a `use crate::{NAME, …}` group) in another module's non-test code.
//! The test fails naming each cycle. The listener's and the manager's layers are also pinned
//! ([`PINNED`]): each of their modules has a line, and may use only modules on lines below its
//! own, so a new module is given its place on purpose. To see every crate's layering, lowest
//! layer first: `cargo test -p bulkhead --test e2e layering -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top to bottom: a module may use only the modules on lines below its own (DESIGN §7).
const PINNED: [(&str, &[&[&str]]); 2] = [
    (
        "bulkhead-listener",
        &[
            &["control"],
            &["accept"],
            &["conn"],
            &["request"],
            &["state"],
            &["cache"],
            &["static_files", "queue"],
            &["routing"],
            &["response"],
            &["dispatch"],
            &["body"],
            &["log", "proxy", "error", "to_manager", "inherit", "open_files"],
            &["acme_challenge", "bandwidth", "conformance", "stats", "tls", "watch"],
        ],
    ),
    (
        "bulkhead-manager",
        &[
            &["supervisor"],
            &["pool"],
            &["worker"],
            &["admin", "health", "listener_process", "reload", "acme"],
            &["event", "preflight"],
            &["admin_command", "command"],
            &["config_store", "identity", "process"],
            &[
                "cgroup",
                "cpu",
                "event_log",
                "metrics",
                "orphan",
                "pool_output",
                "procfs",
                "rapid_fail",
                "readiness",
                "recycle",
                "sockets",
                "spawn",
                "state_dir",
                "tls",
            ],
        ],
    ),
];

#[test]
fn the_listener_and_the_manager_keep_their_pinned_layers() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut problems = Vec::new();
    for (name, layers) in PINNED {
        let graph = module_graph(&crates.join(name).join("src"));
        assert!(graph.len() >= 10, "{name}: the scan found too few modules: {graph:?}");
        problems.extend(against_layers(&graph, layers).into_iter().map(|p| format!("{name}: {p}")));
    }
    assert!(problems.is_empty(), "modules out of their layer (PINNED in this file):\n{}", problems.join("\n"));
}

/// Every module without a line and every import of a module not on a line below.
fn against_layers(graph: &Graph, layers: &[&[&str]]) -> Vec<String> {
    let rank: BTreeMap<&str, usize> =
        layers.iter().enumerate().flat_map(|(r, line)| line.iter().map(move |m| (*m, r))).collect();
    let mut problems = Vec::new();
    for (module, uses) in graph {
        let Some(&from) = rank.get(module.as_str()) else {
            problems.push(format!("module {module} has no line"));
            continue;
        };
        for used in uses {
            if rank.get(used.as_str()).is_some_and(|&to| to <= from) {
                problems.push(format!("{module} uses {used}, which is not on a line below it"));
            }
        }
    }
    problems
}

#[test]
fn modules_within_each_crate_form_no_cycle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&crates)
        .expect("read crates/")
        .filter_map(|e| e.ok().map(|e| e.path().join("src")))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6, "expected the workspace's crates under {}", crates.display());

    let mut cycles = Vec::new();
    for src in &dirs {
        let name = src.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let graph = module_graph(src);
        let found = strongly_connected(&graph);
        if found.is_empty() {
            println!("{name}: {}", layers(&graph).join(" ← "));
        }
        for c in found {
            cycles.push(format!("{name}: cycle of {} modules: {}", c.len(), c.join(", ")));
        }
    }
    assert!(cycles.is_empty(), "modules that import each other round a circle:\n{}", cycles.join("\n"));
}

/// Each top-level module and the sibling modules its non-test code names.
fn module_graph(src: &Path) -> Graph {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    collect(src, src, &mut files);
    let mut graph: Graph = files.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (module, paths) in &files {
        for path in paths {
            let text = fs::read_to_string(path).unwrap_or_default();
            for target in crate_references(&strip_tests_and_comments(&text)) {
                if files.contains_key(&target) && &target != module {
                    graph.get_mut(module).expect("known module").insert(target);
                }
            }
        }
    }
    graph
}

fn collect(src: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<PathBuf>>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(src, &path, out);
            continue;
        }
        let Ok(rel) = path.strip_prefix(src) else { continue };
        let file = rel.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if !file.ends_with(".rs") || file == "tests.rs" || rel == Path::new("lib.rs") || rel == Path::new("main.rs") {
            continue;
        }
        let top = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
        let top = top.unwrap_or_default().trim_end_matches(".rs").to_string();
        if top != "tests" {
            out.entry(top).or_default().push(path);
        }
    }
}

/// Drops `#[cfg(test)] mod x { … }` blocks (brace-matched) and `//` comments.
fn strip_tests_and_comments(text: &str) -> String {
    let without_comments: String =
        text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut out = String::new();
    let mut rest = without_comments.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_inline_mod =
            trimmed.starts_with("mod ") && trimmed.find('{').is_some_and(|b| !trimmed[..b].contains(';'));
        if !is_inline_mod {
            rest = after;
            continue;
        }
        let open = after.find('{').expect("checked above");
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, ch) in after[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The first path segment after every `crate::`, including each member of `crate::{a, b::c}`.
fn crate_references(text: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1usize;
            let mut start_of_item = true;
            let mut ident = String::new();
            for ch in group.chars() {
                if start_of_item && !ident.is_empty() && !(ch.is_alphanumeric() || ch == '_') {
                    refs.push(std::mem::take(&mut ident));
                    start_of_item = false;
                }
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => start_of_item = true,
                    c if start_of_item && (c.is_alphanumeric() || c == '_') => ident.push(c),
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            let ident: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            refs.push(ident);
        }
        rest = after;
    }
    refs
}

/// Tarjan's strongly connected components with more than one module, each sorted.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in &self.graph[v] {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

/// The modules grouped by depth (a module's layer is one above the highest module it uses),
/// lowest layer first; modules of one layer joined by `|`.
fn layers(graph: &Graph) -> Vec<String> {
    fn depth<'g>(graph: &'g Graph, m: &'g str, memo: &mut BTreeMap<&'g str, usize>) -> usize {
        if let Some(d) = memo.get(m) {
            return *d;
        }
        memo.insert(m, 0);
        let d = graph[m].iter().map(|w| depth(graph, w, memo) + 1).max().unwrap_or(0);
        memo.insert(m, d);
        d
    }
    let mut memo = BTreeMap::new();
    let mut by_depth: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for m in graph.keys() {
        by_depth.entry(depth(graph, m, &mut memo)).or_default().push(m);
    }
    by_depth.into_values().map(|ms| ms.join(" | ")).collect()
}

#[test]
fn the_reference_scanner_sees_groups_paths_and_skips_tests() {
    let text = "use crate::{a::X, b, c::{d, e}};\nfn f() { crate::g::h(); } // crate::comment\n\
                #[cfg(test)]\nmod tests { use crate::t; }\n#[cfg(test)]\nmod more;\nuse crate::z;";
    let refs = crate_references(&strip_tests_and_comments(text));
    assert_eq!(refs, ["a", "b", "c", "g", "z"]);
    let mut graph = Graph::new();
    graph.insert("x".into(), ["y".to_string()].into());
    graph.insert("y".into(), ["x".to_string()].into());
    graph.insert("z".into(), ["x".to_string()].into());
    assert_eq!(strongly_connected(&graph), vec![vec!["x".to_string(), "y".to_string()]]);
    let layers: &[&[&str]] = &[&["z"], &["x", "w"], &["y"]];
    assert_eq!(against_layers(&graph, layers), ["y uses x, which is not on a line below it"]);
    graph.insert("v".into(), BTreeSet::new());
    graph.get_mut("y").expect("y").clear();
    assert_eq!(against_layers(&graph, layers), ["module v has no line"]);
}
