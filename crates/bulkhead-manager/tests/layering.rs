//! The manager's modules form a layering, not a knot (issue 8 item 5; DESIGN §7): reads the
//! crate's own sources, takes each top-level module (`src/NAME.rs` with `src/NAME/…`) as a
//! node and every `crate::NAME` in another module's non-test code as an edge, and fails on any
//! cycle. It also pins the direction DESIGN §7 names: nothing imports the supervisor, and the
//! message modules (`event`, `admin_command`) and the supervised-process type (`process`) never
//! reach up into the modules that use them. The same check anyone can run by hand:
//! `python3 /work/shared/tools/module-cycles.py crates/bulkhead-manager/src`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without `#[cfg(test)] mod NAME { … }` blocks and `//` comments.
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let block = after.find('{').filter(|b| after[..*b].contains("mod ") && !after[..*b].contains(';'));
        match block {
            Some(open) => {
                let mut depth = 0;
                let mut end = after.len();
                for (i, c) in after[open..].char_indices() {
                    match c {
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
            None => {
                out.push_str("#[cfg(test)]");
                rest = &after["#[cfg(test)]".len()..];
            }
        }
    }
    out.push_str(rest);
    out.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Module → the modules its non-test code names as `crate::NAME` (or inside `use crate::{…}`).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |path: &Path| -> Option<String> {
        let rel = path.strip_prefix(&src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        let is_test = rel.file_name().is_some_and(|f| f == "tests.rs") || name == "tests";
        (name != "lib" && !is_test).then(|| name.to_string())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &files {
        let Some(from) = module_of(file) else { continue };
        let code = non_test_code(&std::fs::read_to_string(file).expect("read source"));
        let mut names: Vec<String> = Vec::new();
        for (i, _) in code.match_indices("crate::") {
            let tail = &code[i + "crate::".len()..];
            if let Some(group) = tail.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                names
                    .extend(group.split(',').filter_map(|p| p.trim().split("::").next()).map(|s| s.trim().to_string()));
            } else {
                names.push(tail.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
        }
        for to in names {
            if to != from && modules.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// Every module reachable from `start`.
fn reachable(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start.to_string()];
    while let Some(m) = stack.pop() {
        for next in edges.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn the_manager_modules_have_no_cycle() {
    let edges = graph();
    assert!(edges.contains_key("supervisor") && edges.contains_key("pool"), "the scan found the modules: {edges:?}");
    let cycles: Vec<String> = edges
        .keys()
        .filter(|m| reachable(&edges, m).contains(*m))
        .map(|m| {
            let back: Vec<&String> = edges[m].iter().filter(|n| reachable(&edges, n).contains(m)).collect();
            format!("{m} ↔ {back:?}")
        })
        .collect();
    assert!(cycles.is_empty(), "module cycles in bulkhead-manager:\n{}", cycles.join("\n"));
}

#[test]
fn nothing_imports_the_supervisor_and_the_leaves_stay_leaves() {
    let edges = graph();
    let users: Vec<&String> = edges.iter().filter(|(_, to)| to.contains("supervisor")).map(|(m, _)| m).collect();
    assert!(users.is_empty(), "modules importing the supervisor: {users:?}");
    let above = ["supervisor", "admin", "pool", "worker", "health", "reload", "listener_process"];
    for leaf in ["event", "admin_command", "process"] {
        let reach = reachable(&edges, leaf);
        let up: Vec<&&str> = above.iter().filter(|m| reach.contains(**m)).collect();
        assert!(up.is_empty(), "{leaf} reaches up into {up:?} (it uses {:?})", edges.get(leaf));
    }
}

/// The scanner itself: a cycle written into a fake module graph is found, test code is not
/// counted.
#[test]
fn the_scan_sees_imports_and_skips_test_code() {
    let code = "use crate::{pool::Pool, event};\nfn f() { crate::worker::x(); } // crate::admin\n\
                #[cfg(test)]\nmod tests {\n    use crate::supervisor;\n    fn g() { if true { } }\n}\nuse crate::cpu;";
    let kept = non_test_code(code);
    assert!(kept.contains("crate::worker") && kept.contains("crate::cpu"), "{kept}");
    assert!(!kept.contains("supervisor") && !kept.contains("admin"), "{kept}");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("a".into());
    assert!(reachable(&edges, "a").contains("a"));
}
