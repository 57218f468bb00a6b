//! Orphaning (IIS's "Enable orphaning of worker processes"): a hung worker is left alive, no
//! longer routed, for someone to debug, and `orphan.action` runs with `%pid%`, `%pool%` and
//! `%reason%` replaced — typically a command that takes a core dump or attaches a debugger.
//!
//! Called by the supervisor when a worker of a pool with `orphan.enabled` fails its ping. The
//! action runs as the manager's user (it usually needs to trace the worker), in the pool's
//! directory, with its output appended to the pool's log; it is waited for in the background
//! (at most [`ACTION_LIMIT`], then killed) and never blocks the supervisor. It never signals the
//! orphan itself: the orphan is killed when an operator stops the pool or the server stops.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Longest an orphan action may run before it is killed.
pub const ACTION_LIMIT: Duration = Duration::from_secs(300);

/// `action` with `%pid%`, `%pool%` and `%reason%` replaced in every argument.
pub fn expand(action: &[String], pid: u32, pool: &str, reason: &str) -> Vec<String> {
    action
        .iter()
        .map(|a| a.replace("%pid%", &pid.to_string()).replace("%pool%", pool).replace("%reason%", reason))
        .collect()
}

/// Starts the action; returns what to tell the operator (`ran …` or why it could not start).
pub fn run_action(argv: &[String], directory: &Path, log: &Path) -> String {
    let Some((program, args)) = argv.split_first() else {
        return "no orphan.action is configured".into();
    };
    let output = std::fs::OpenOptions::new().create(true).append(true).open(log);
    let (out, err) = match output.and_then(|f| Ok((f.try_clone()?, f))) {
        Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
        Err(_) => (Stdio::null(), Stdio::null()),
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(directory)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn();
    match child {
        Ok(mut child) => {
            let pid = child.id().unwrap_or_default();
            tokio::spawn(async move {
                // Waiting reaps it; dropping it after the limit kills it (kill_on_drop).
                let _ = tokio::time::timeout(ACTION_LIMIT, child.wait()).await;
            });
            format!("ran orphan.action {argv:?} (pid {pid})")
        }
        Err(e) => format!("could not run orphan.action {argv:?}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_everywhere() {
        let action: Vec<String> = ["gcore", "-o", "/tmp/%pool%-%pid%", "%reason%"].map(String::from).into();
        assert_eq!(
            expand(&action, 4121, "api", "hung"),
            ["gcore", "-o", "/tmp/api-4121", "hung"].map(String::from).to_vec()
        );
    }

    #[tokio::test]
    async fn the_action_runs_with_its_output_in_the_log() {
        let dir = std::env::temp_dir().join(format!("bulkhead-orphan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("pool.log");
        let argv = expand(&["sh".into(), "-c".into(), "echo orphan %pid% in %pool%".into()], 7, "p", "r");
        assert!(run_action(&argv, &dir, &log).starts_with("ran orphan.action"));
        let mut text = String::new();
        for _ in 0..500 {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            if !text.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(text, "orphan 7 in p\n");
        assert!(run_action(&["/no/such/program".into()], &dir, &log).starts_with("could not run"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
