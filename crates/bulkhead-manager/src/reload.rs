//! What makes the manager re-read its config file: the file changing on disk (watched with
//! `notify`), SIGHUP (the binary turns it into a [`tokio::sync::Notify`] passed in
//! `ManagerOptions::reload`) — and, through the admin API, `PUT /config` and
//! `POST /config/reload` (see [`crate::admin`]).
//!
//! Every trigger ends as one supervisor event `Admin(Command::Apply { .. })`; the supervisor
//! reads the file, validates, diffs and applies (or refuses, keeping the running config) —
//! one path for all of them. This module only decides *when*.
//!
//! The watch is on the file's *directory*, not the file: editors that save by writing a new
//! file and renaming it over the old one (vim, most IDEs, `write_back` itself) replace the
//! inode, and a watch on the old inode would go quiet. Events naming the file are debounced
//! ([`DEBOUNCE`]): a burst of writes becomes one reload, taken after the burst is over, so a
//! half-written file is rarely seen (and if it is, it is refused and the next event retries).
//! Library code: it reads no signals and no environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use crate::admin_command::Command;
use crate::config_store::Source;
use crate::event::{Event, EventSender};

/// Quiet time after the last change before the file is read.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Why the config file cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {dir} for changes to the config file: {source}")]
pub struct WatchError {
    dir: PathBuf,
    source: notify::Error,
}

/// A running file watch; dropping it stops watching.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    task: AbortHandle,
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `file` and sends `Apply { source: File }` after each burst of changes.
pub(crate) fn watch_file(file: &Path, events: EventSender) -> Result<FileWatch, WatchError> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let name: OsString = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let handler = move |result: notify::Result<notify::Event>| {
        if let Ok(event) = result {
            let ours = event.paths.iter().any(|p| p.file_name() == Some(name.as_os_str()));
            if ours && !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    };
    let err = |source| WatchError { dir: dir.clone(), source };
    let mut watcher = notify::recommended_watcher(handler).map_err(err)?;
    watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(err)?;
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until the file has been quiet for DEBOUNCE.
            loop {
                tokio::select! {
                    more = rx.recv() => if more.is_none() { return },
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                }
            }
            let apply = Command::Apply { text: None, source: Source::File, note: None, reply: None };
            if events.send(Event::Admin(apply)).is_err() {
                return;
            }
        }
    });
    Ok(FileWatch { _watcher: watcher, task: task.abort_handle() })
}

/// Turns each notification of `signal` (the binary's SIGHUP) into `Apply { source: Signal }`.
pub(crate) fn on_signal(signal: Arc<Notify>, events: EventSender) -> AbortHandle {
    tokio::spawn(async move {
        loop {
            signal.notified().await;
            let apply = Command::Apply { text: None, source: Source::Signal, note: None, reply: None };
            if events.send(Event::Admin(apply)).is_err() {
                return;
            }
        }
    })
    .abort_handle()
}
