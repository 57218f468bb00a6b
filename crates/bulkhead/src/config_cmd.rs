//! `bulkhead config check FILE [--json]`: validate a file the way `serve` would, print every
//! problem as `file:line:col: key: message` (or JSON), exit 0 when valid and 1 when not.
//! Besides the file's own rules it runs the manager's preflight as `serve` would on this
//! machine, as this user: a command not found on the pool's PATH or that the pool's user
//! cannot execute, a user or group that does not exist, a pool that would run as root.
//! It reads only the file, the directories and programs it references and the password
//! database; it never contacts a server.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use bulkhead_config::ConfigError;

fn json_error(e: &ConfigError) -> serde_json::Value {
    serde_json::json!({ "file": e.file, "line": e.line, "column": e.column, "key": e.key, "message": e.message })
}

pub fn check(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let base_dir = crate::serve::config_dir(file)?;
    let name = file.display().to_string();
    // What serve would refuse on this machine too: users, groups, commands as the pool's user.
    let self_exe = std::env::current_exe().context("cannot find this executable's path")?;
    let inherited_path = std::env::var_os("PATH");
    let host = bulkhead_manager::preflight::Host {
        as_root: bulkhead_manager::identity::running_as_root(),
        allow_root_workers: std::env::var_os(crate::serve::ALLOW_ROOT_WORKERS).is_some_and(|v| v == "1"),
        inherited_path: inherited_path.as_deref(),
        self_exe: &self_exe,
    };
    let (ok, errors, warnings) = match bulkhead_manager::preflight::validate(&text, &name, &base_dir, &host) {
        Ok(checked) => (true, Vec::new(), checked.warnings),
        Err(errors) => (false, errors.0, Vec::new()),
    };
    if json {
        let out = serde_json::json!({
            "file": name,
            "valid": ok,
            "errors": errors.iter().map(json_error).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(json_error).collect::<Vec<_>>(),
        });
        println!("{out:#}");
    } else {
        for e in &errors {
            println!("{e}");
        }
        for w in &warnings {
            println!("warning: {w}");
        }
        if ok {
            println!("{name}: valid");
        } else {
            println!("{name}: {} error{}", errors.len(), if errors.len() == 1 { "" } else { "s" });
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
