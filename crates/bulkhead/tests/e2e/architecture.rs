//! The dependency direction of DESIGN §7, read from `cargo metadata`: the listener, manager and
//! worker/host crates never depend on each other; proto and the extension SDK depend on nothing
//! of ours; config only on proto; the built-in host only on proto, the worker SDK and the
//! extension SDK. Fails naming every forbidden edge.

use std::path::Path;
use std::process::Command;

/// What each of our library crates may depend on (any dependency kind).
const ALLOWED: [(&str, &[&str]); 7] = [
    ("bulkhead-proto", &[]),
    ("bulkhead-config", &["bulkhead-proto"]),
    ("bulkhead-listener", &["bulkhead-proto", "bulkhead-config"]),
    ("bulkhead-manager", &["bulkhead-proto", "bulkhead-config"]),
    ("bulkhead-worker", &["bulkhead-proto"]),
    // The built-in host worker; the extension SDK is its C ABI's one Rust definition (DESIGN §7:
    // "extensions and their C ABI and Rust SDK"), which extension libraries also build on.
    ("bulkhead-host", &["bulkhead-proto", "bulkhead-worker", "bulkhead-extension"]),
    ("bulkhead-extension", &[]),
];

#[test]
fn role_crates_meet_only_through_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");

    let mut seen = Vec::new();
    let mut forbidden = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| *n == name) else { continue };
        seen.push(name);
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let dep = d["name"].as_str().unwrap_or_default();
            if dep.starts_with("bulkhead") && !allowed.contains(&dep) {
                let kind = d["kind"].as_str().unwrap_or("normal");
                forbidden.push(format!("{name} → {dep} ({kind})"));
            }
        }
    }
    for (name, _) in ALLOWED {
        assert!(seen.contains(&name), "crate {name} is missing from the workspace");
    }
    assert!(forbidden.is_empty(), "forbidden dependency edges (DESIGN §7):\n{}", forbidden.join("\n"));
}
