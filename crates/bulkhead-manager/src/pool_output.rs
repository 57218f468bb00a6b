//! A pool's log file (`<log_dir>/pools/<pool>.log`) as its workers' stdout and stderr: the
//! workers write into one pipe per pool, and a copier thread appends what arrives to the file,
//! reopening it at its path when asked ([`PoolOutput::reopen`], SIGUSR1 for logrotate). A
//! worker holding the file itself could never be moved off a rotated file without a restart.
//!
//! Created by the supervisor the first time a pool launches a worker, and given to
//! [`crate::worker::launch`]; a leaf module (no `crate::` imports). The copier never blocks
//! the supervisor: only the worker that writes waits when the pipe is full (as it would on a
//! slow disk with the file itself). It ends when the last write end is closed: this handle and
//! every worker that inherited it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The write end workers inherit, and the switch that makes the copier reopen the file.
#[derive(Debug)]
pub struct PoolOutput {
    write_end: OwnedFd,
    reopen: Arc<AtomicBool>,
}

impl PoolOutput {
    /// Opens (appending) `path` and starts its copier thread.
    pub fn start(path: &Path) -> std::io::Result<PoolOutput> {
        let file = open(path)?;
        let (read_end, write_end) = nix::unistd::pipe().map_err(std::io::Error::from)?;
        let reopen = Arc::new(AtomicBool::new(false));
        let copier = Copier { path: path.to_path_buf(), file, reopen: reopen.clone() };
        let name = format!(
            "bulkhead-pool-log-{}",
            path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned())
        );
        std::thread::Builder::new().name(name).spawn(move || copier.run(File::from(read_end)))?;
        Ok(PoolOutput { write_end, reopen })
    }

    /// The fd a worker gets as its stdout and stderr.
    pub fn write_end(&self) -> BorrowedFd<'_> {
        self.write_end.as_fd()
    }

    /// Appends `text` (whole lines) to the log through the pipe, unless the pipe is full: the
    /// supervisor never waits on it (`poll` first; a pipe that polls writable takes `PIPE_BUF`
    /// bytes at once, so longer text may be cut). Returns whether it was written.
    pub fn write_text(&self, text: &str) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.write_end.as_fd(), PollFlags::POLLOUT)];
        let ready = matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
            && fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLOUT));
        ready && nix::unistd::write(&self.write_end, text.as_bytes()).is_ok()
    }

    /// Output from now on goes to a file opened anew at the path (created if it was moved
    /// away). Takes effect before the next bytes are written; never blocks.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct Copier {
    path: PathBuf,
    file: File,
    reopen: Arc<AtomicBool>,
}

impl Copier {
    fn run(mut self, mut pipe: File) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("pool log {}: reading workers' output: {e}", self.path.display());
                    return;
                }
            };
            if self.reopen.swap(false, Ordering::Relaxed) {
                match open(&self.path) {
                    Ok(f) => self.file = f,
                    Err(e) => tracing::warn!(
                        "cannot reopen pool log {}: {e}; still writing the old file",
                        self.path.display()
                    ),
                }
            }
            // A failed write loses this output only; the workers must keep running.
            if let Err(e) = self.file.write_all(&buf[..n]) {
                tracing::warn!("pool log {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for_content(path: &Path, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(want) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn output_follows_the_path_after_reopen() {
        let dir = std::env::temp_dir().join(format!("bulkhead-pool-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.log");
        let out = PoolOutput::start(&path).unwrap();
        let mut worker = File::from(out.write_end().try_clone_to_owned().unwrap());
        worker.write_all(b"before\n").unwrap();
        assert!(wait_for_content(&path, "before\n").contains("before\n"));
        let moved = dir.join("p.log.1");
        std::fs::rename(&path, &moved).unwrap();
        worker.write_all(b"still old\n").unwrap();
        assert!(wait_for_content(&moved, "still old\n").contains("still old\n"));
        out.reopen();
        worker.write_all(b"after\n").unwrap();
        assert_eq!(wait_for_content(&path, "after\n"), "after\n");
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "before\nstill old\n");
        drop((worker, out));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
