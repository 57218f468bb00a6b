//! Looking at and signalling real processes through `/proc` and `kill(2)`.
//!
//! The tests learn the manager's, listener's and workers' pids from the state dir, from
//! `/proc/<pid>/stat` parent links, or from what a worker says about itself; a pid is always
//! remembered with its start time ([`ProcId`]) so a late kill can never hit a recycled pid.
//! Nothing here signals a process it was not given by pid.
//!
//! [`reap_survivors`] and [`fail_on_survivors`] make a process that outlives its test a failure
//! of that test: the harness waits (bounded) for what it started to exit, kills what is left,
//! and panics naming each survivor's pid and command line.

use std::fs;
use std::time::Duration;

/// `/proc/<pid>/stat` fields after the command name: (state, ppid, starttime).
fn stat(pid: u32) -> Option<(char, u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); ppid is field 4; starttime is field 22.
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, ppid, start))
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _, _)) if state != 'Z' && state != 'X')
}

/// Every process whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Some((state, ppid, _)) = stat(child) {
            if ppid == pid && state != 'Z' {
                out.push(child);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Every live descendant of `pid` (children, their children, …).
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            if !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            let args = b.strip_suffix(&[0]).unwrap_or(&b);
            args.split(|c| *c == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect::<Vec<_>>().join(" ")
        })
        .unwrap_or_default()
}

/// Peak resident set size (`VmHWM`) of `pid` in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident set size (`VmRSS`) of `pid` in KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sends `sig` to `pid`; false if it failed (no such process).
pub fn signal(pid: u32, sig: i32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with a positive pid has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// A pid pinned to one process by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId {
    pub pid: u32,
    start: u64,
}

impl ProcId {
    /// Pins a live pid; `None` if it is already gone.
    pub fn of(pid: u32) -> Option<ProcId> {
        stat(pid).map(|(_, _, start)| ProcId { pid, start })
    }

    /// Whether this very process still runs (not a zombie, not a recycled pid).
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, _, start)) if start == self.start && state != 'Z' && state != 'X')
    }

    /// Signals it if it is still the same process.
    pub fn signal(&self, sig: i32) -> bool {
        self.alive() && signal(self.pid, sig)
    }

    /// Waits (bounded) for it to be gone; true if it went.
    pub fn wait_gone(&self, limit: Duration) -> bool {
        super::poll(limit, || !self.alive())
    }
}

/// A process that outlived its test: its pid and command line (read before it was killed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survivor {
    pub pid: u32,
    pub cmdline: String,
}

/// Waits up to `limit` for every one of `ids` to be gone (a stopped server's children may take
/// a moment to exit after it), then SIGKILLs each one still running and returns them.
pub fn reap_survivors(ids: &[ProcId], limit: Duration) -> Vec<Survivor> {
    super::poll(limit, || ids.iter().all(|p| !p.alive()));
    let mut out = Vec::new();
    for p in ids {
        if p.alive() {
            out.push(Survivor { pid: p.pid, cmdline: cmdline(p.pid) });
            p.signal(libc::SIGKILL);
        }
    }
    out
}

/// Panics with `what` and every survivor's pid and command line, unless there is none or the
/// thread is already panicking (the test has failed already; the survivors are only printed).
pub fn fail_on_survivors(what: &str, survivors: &[Survivor]) {
    if survivors.is_empty() {
        return;
    }
    let list: Vec<String> = survivors.iter().map(|s| format!("pid {} `{}`", s.pid, s.cmdline)).collect();
    let message = format!("processes outlived {what} (killed now): {}", list.join(", "));
    if std::thread::panicking() {
        eprintln!("{message}");
    } else {
        panic!("{message}");
    }
}
