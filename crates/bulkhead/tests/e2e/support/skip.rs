//! Visible skips: a test that cannot run here says why through [`skip!`], which records the
//! skip and returns from the test.
//!
//! A skip is one of two kinds ([`Reason`]): `Machine` — what the machine itself cannot give
//! (not root, a kernel without cgroup2 controllers, a fixed port taken by something else) — or
//! `Missing` — a program or package that `.ci/run` installs (python3, chromium). Each skip is
//! printed to stderr as `BULKHEAD-SKIP <kind> <test>: <reason>` and, when the environment
//! names a directory in `BULKHEAD_SKIP_LOG` (as `.ci/run` does), appended as that same line to
//! `<dir>/skips.log`, so `.ci/run` can list every skip and fail on a `missing` one even though
//! cargo hides the output of passing tests. Nothing here decides whether to skip; the tests do.

use std::io::Write;

/// The environment variable naming the directory that collects skip records.
pub const SKIP_LOG_ENV: &str = "BULKHEAD_SKIP_LOG";

/// Why a test did not run.
#[derive(Debug, Clone)]
pub enum Reason {
    /// The machine cannot give it (kernel, privileges, a port held by something else): listed.
    Machine(String),
    /// Something `.ci/run` should have installed is absent: listed, and `.ci/run` fails.
    Missing(String),
}

impl Reason {
    /// `machine` or `missing`: the word `.ci/run` greps.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Machine(_) => "machine",
            Reason::Missing(_) => "missing",
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Reason::Machine(t) | Reason::Missing(t) => t,
        }
    }
}

/// The running test's name (libtest names each test's thread after it), or `fallback`.
pub fn test_name(fallback: &str) -> String {
    std::thread::current().name().filter(|n| *n != "main").unwrap_or(fallback).to_string()
}

/// Records one skip: the marker line on stderr and in `$BULKHEAD_SKIP_LOG/skips.log`.
/// Panics if the log directory is named but cannot be written: a skip must never vanish.
pub fn record(test: &str, reason: &Reason) {
    let line = format!("BULKHEAD-SKIP {} {test}: {}", reason.kind(), reason.text().replace('\n', " "));
    eprintln!("{line}");
    if let Some(dir) = std::env::var_os(SKIP_LOG_ENV) {
        let path = std::path::Path::new(&dir).join("skips.log");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {} to record a skip: {e}", path.display()));
        // One write of one line with O_APPEND: lines of parallel tests do not interleave.
        file.write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("cannot record a skip in {}: {e}", path.display()));
    }
}

/// `skip!(Reason::Missing("python3".into()))`: records the skip and returns from the test.
macro_rules! skip {
    ($reason:expr) => {{
        $crate::support::skip::record(&$crate::support::skip::test_name(module_path!()), &$reason);
        return;
    }};
}
pub(crate) use skip;
