//! A running CGI program and its process group: spawned as the leader of a group of its own,
//! killed with the whole group (SIGKILL) when its [`Running`] guard is dropped before the
//! program was reaped — the time limit passed, the client went away, the host stops.
//!
//! Why a group: a shell script's children (`sleep`, a pipeline) are in its group, so one
//! `killpg` ends them all; killing only the script would leave them running. Why only before
//! reaping: until the leader is reaped its pid (a zombie at worst) cannot be reused, so the
//! group id still names this program's group. A program that exits normally is reaped and its
//! group is not touched (a child it left in the background is its business, as under Apache).
//!
//! If the host itself dies (`kill -9`, a crash), each program gets SIGKILL from the kernel:
//! `PR_SET_PDEATHSIG`, set between fork and exec — the one `unsafe` of this crate. It is tied
//! to the thread that spawned it, which is a runtime worker thread living as long as the host.
//! Children a program started itself are not covered by it (the signal is not inherited); the
//! time limit and a stop of the host reach them through the group.

use std::io;
use std::path::Path;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::task::AbortHandle;

/// A spawned program: its child handle and the tasks feeding it.
pub struct Running {
    pub child: Child,
    pgid: Pid,
    reaped: bool,
    /// The task writing the request body to its stdin, stopped with it.
    pub stdin_task: Option<AbortHandle>,
}

impl Running {
    /// Spawns `cmd` (its stdio already chosen) as the leader of a new process group, with
    /// SIGKILL as its parent-death signal.
    pub fn spawn(mut cmd: Command) -> io::Result<Running> {
        let host = std::process::id() as libc::pid_t;
        cmd.process_group(0);
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (prctl, getppid, raise); it touches no memory shared
        // with the parent and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The host died between fork and prctl: the signal was never going to come.
                if libc::getppid() != host {
                    libc::raise(libc::SIGKILL);
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        Ok(Running { child, pgid: Pid::from_raw(pid), reaped: false, stdin_task: None })
    }

    /// The group's id (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// Waits for the program to exit until `deadline`; `None` if it did not (the guard then
    /// kills its group when dropped).
    pub async fn reap(&mut self, deadline: tokio::time::Instant, program: &Path) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout_at(deadline, self.child.wait()).await.ok()?;
        self.reaped = true;
        match status {
            Ok(status) => Some(status),
            Err(e) => {
                tracing::warn!("CGI {}: cannot wait for it: {e}", program.display());
                None
            }
        }
    }

    /// Kills the whole group now (SIGKILL), unless the leader was reaped already.
    pub fn kill_group(&mut self) {
        if !self.reaped && self.pgid.as_raw() > 0 {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_group();
        if let Some(task) = self.stdin_task.take() {
            task.abort();
        }
        // tokio reaps a dropped child in the background.
    }
}
