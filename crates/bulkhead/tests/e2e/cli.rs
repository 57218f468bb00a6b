//! `bulkhead config check FILE` (DESIGN §5): exit 0 for a good file; exit 1 for a bad one,
//! naming the file, the line and the key of each problem.

use crate::support::TestDir;

/// As the server harness does: run as root in CI, these pools set no `user` (the preflight
/// tests cover that refusal).
fn check(file: &std::path::Path) -> (Option<i32>, String) {
    crate::preflight::config_check(file, true)
}

#[test]
fn config_check_accepts_a_good_file_and_names_file_line_and_key_of_a_bad_one() {
    let dir = TestDir::new("cli");
    dir.mkdir("www");
    let good = dir.write(
        "good.toml",
        format!(
            r#"[server]
state_dir = "state"

[[sites]]
name = "site"
bindings = ["http://127.0.0.1:0"]
routes = [
  {{ path = "/", root = "{}" }},
  {{ path = "/api", pool = "api" }},
]

[pools.api]
command = ["python3", "app.py"]
idle_timeout = "5m"
"#,
            dir.join("www").display()
        ),
    );
    let (code, out) = check(&good);
    assert_eq!(code, Some(0), "config check of a good file: {out}");

    // Line 9 holds the bad value.
    let bad = dir.write(
        "bad.toml",
        r#"[[sites]]
name = "site"
bindings = ["http://127.0.0.1:0"]
routes = [ { path = "/", pool = "api" } ]

[pools.api]
command = ["python3", "app.py"]
processes = 1
idle_timeout = "soon"
"#,
    );
    let (code, out) = check(&bad);
    assert_eq!(code, Some(1), "config check of a bad file: {out}");
    assert!(out.contains("bad.toml:9"), "file:line missing from {out:?}");
    assert!(out.contains("pools.api.idle_timeout"), "key missing from {out:?}");

    // A TOML syntax error (line 3), and an unknown key.
    let broken = dir.write("broken.toml", "[server]\nstate_dir = \"s\"\nlog_dir = [\n");
    let (code, out) = check(&broken);
    assert_eq!(code, Some(1), "config check of a syntax error: {out}");
    assert!(out.contains("broken.toml:"), "file:line missing from {out:?}");

    let unknown = dir.write("unknown.toml", "[pools.api]\ncommand = [\"x\"]\nidel_timeout = \"5m\"\n");
    let (code, out) = check(&unknown);
    assert_eq!(code, Some(1), "config check of an unknown key: {out}");
    assert!(out.contains("unknown.toml:3") && out.contains("idel_timeout"), "file:line and key missing from {out:?}");
}
