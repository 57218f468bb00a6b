//! Builds the native code the extension tests load: C fixtures and the C example with `cc
//! -shared -fPIC` against `include/bulkhead_extension.h`, and the Rust example
//! (`examples/extension-rust`) with the same cargo, profile and target directory as the test
//! binary. Shared by the host's loader tests and the e2e tests (included there by `#[path]`).
//!
//! Each library is built once per test binary, into `out_dir` under a name of its own, and
//! reused by every test that asks for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// `crates/bulkhead-host/tests/fixtures/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("crates/bulkhead-host/tests/fixtures").join(name)
}

/// Whether a C compiler (`cc`) runs here.
pub fn have_cc() -> bool {
    Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success())
}

type Built = Arc<OnceLock<Result<PathBuf, String>>>;

fn once(key: String) -> Built {
    static BUILT: OnceLock<Mutex<HashMap<String, Built>>> = OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(map.entry(key).or_default())
}

/// Compiles `source` into `out_dir/<lib_name>` (`-shared -fPIC`, or an executable when
/// `lib_name` has no `.so`), with `-D` `defines`; the error is cc's output.
pub fn cc(source: &Path, out_dir: &Path, lib_name: &str, defines: &[&str]) -> Result<PathBuf, String> {
    let cell = once(format!("cc {} {lib_name} {defines:?}", source.display()));
    cell.get_or_init(|| {
        std::fs::create_dir_all(out_dir).map_err(|e| format!("create {}: {e}", out_dir.display()))?;
        let out = out_dir.join(lib_name);
        let mut cmd = Command::new("cc");
        if lib_name.ends_with(".so") {
            cmd.args(["-shared", "-fPIC"]);
        }
        cmd.args(["-O1", "-Wall", "-Werror", "-std=c11", "-D_DEFAULT_SOURCE"])
            .arg("-I")
            .arg(repo_root().join("include"));
        for d in defines {
            cmd.arg(format!("-D{d}"));
        }
        let result = cmd.arg("-o").arg(&out).arg(source).output().map_err(|e| format!("run cc: {e}"))?;
        if !result.status.success() {
            return Err(format!("cc {}: {}", source.display(), String::from_utf8_lossy(&result.stderr)));
        }
        Ok(out)
    })
    .clone()
}

/// Builds `examples/extension-rust` with the profile and target directory `exe` (a binary of
/// this build) came from — a no-op when `cargo test --workspace` built it already — and returns
/// its `libextension_rust.so`.
pub fn rust_example(exe: &Path) -> Result<PathBuf, String> {
    once("rust example".into())
        .get_or_init(|| {
            let mut dir = exe.parent().ok_or("no directory")?;
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir = dir.parent().ok_or("no profile directory")?;
            }
            let target_dir = dir.parent().ok_or("no target directory")?;
            let profile = match dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev".to_string(),
                Some(other) => other.to_string(),
            };
            let out = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "extension-rust", "--profile", &profile])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(repo_root())
                .output()
                .map_err(|e| format!("run cargo build -p extension-rust: {e}"))?;
            if !out.status.success() {
                return Err(format!("cargo build -p extension-rust: {}", String::from_utf8_lossy(&out.stderr)));
            }
            let lib = dir.join("libextension_rust.so");
            if !lib.is_file() {
                return Err(format!("no {} after building it", lib.display()));
            }
            Ok(lib)
        })
        .clone()
}
