//! `bulkhead config check FILE [--json]`: validate a file the way `serve` would, print every
//! problem as `file:line:col: key: message` (or JSON), exit 0 when valid and 1 when not.
//! It reads only the file and the directories it references; it never contacts a server.

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
    let (ok, errors, warnings) = match bulkhead_config::check(&text, &name, &base_dir) {
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
