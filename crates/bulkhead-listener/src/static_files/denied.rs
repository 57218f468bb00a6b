//! The warning for a file or directory the listener's user may not read (`EACCES`): answered
//! 403, and logged once per path, naming the path and the user, so an operator who started as
//! root and meets `listener_user = "nobody"` sees why at once instead of a silent 404.
//!
//! The set of paths already named is process-wide (it survives reloads) and bounded by
//! [`MAX_PATHS`]; past it, one more warning says further paths are not named. Called from the
//! blocking half of [`crate::static_files`] only (it takes a mutex), never on a runtime thread.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Distinct paths named in warnings; a bound, so a crawler cannot grow the set without limit.
pub const MAX_PATHS: usize = 1024;

static WARNED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static FULL: AtomicBool = AtomicBool::new(false);

/// Logs, once per path, that the listener's user may not read `path`.
pub fn warn_once(path: &Path) {
    {
        let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
        if warned.contains(path) {
            return;
        }
        if warned.len() >= MAX_PATHS {
            if !FULL.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "static files: {MAX_PATHS} paths the listener's user {} may not read were named already; further ones answer 403 without a warning",
                    user()
                );
            }
            return;
        }
        warned.insert(path.to_path_buf());
    }
    tracing::warn!(
        "static file {}: permission denied for the listener's user {}; answering 403 (make it readable by that user, or its directories searchable, or change server.listener_user)",
        path.display(),
        user()
    );
}

/// The process's effective user as `name (uid N)`, read once from `/proc/self/status` and
/// `/etc/passwd` (no `unsafe` call to `geteuid` in this crate).
fn user() -> &'static str {
    static USER: OnceLock<String> = OnceLock::new();
    USER.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .map(str::to_string);
        let Some(uid) = uid else { return "(unknown user)".into() };
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let name = passwd.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_string())
        });
        match name {
            Some(name) => format!("{name:?} (uid {uid})"),
            None => format!("uid {uid}"),
        }
    })
}
