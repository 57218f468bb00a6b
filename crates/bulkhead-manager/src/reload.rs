//! What makes the manager re-read its config file: the file changing on disk (watched with
//! `notify`; the https sites' certificate and key files are watched the same way, and their
//! change re-reads only the certificates, see `supervisor/certificates.rs`), SIGHUP (the binary turns it into a [`tokio::sync::Notify`] passed in
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
#[error("cannot watch {dir} for changes: {source}")]
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
    let apply = || Event::Admin(Command::Apply { text: None, source: Source::File, note: None, reply: None });
    watch_files(std::slice::from_ref(&file.to_path_buf()), events, apply)
}

/// Watches the certificate and key files of the https sites and sends
/// `CertificatesChanged` after each burst of changes (certbot renames new files into place).
pub(crate) fn watch_certificates(files: &[PathBuf], events: EventSender) -> Result<FileWatch, WatchError> {
    watch_files(files, events, || Event::CertificatesChanged)
}

/// Watches the directories of `files` and sends `make()` after each burst of changes to any
/// of them.
fn watch_files(files: &[PathBuf], events: EventSender, make: fn() -> Event) -> Result<FileWatch, WatchError> {
    let dir_of = |f: &Path| f.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let wanted: Vec<(PathBuf, OsString)> =
        files.iter().map(|f| (dir_of(f), f.file_name().map(|n| n.to_os_string()).unwrap_or_default())).collect();
    let names: Vec<OsString> = wanted.iter().map(|(_, n)| n.clone()).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let handler = move |result: notify::Result<notify::Event>| {
        if let Ok(event) = result {
            let ours = event.paths.iter().any(|p| p.file_name().is_some_and(|n| names.iter().any(|w| w == n)));
            if ours && !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    };
    let first_dir = wanted.first().map(|(d, _)| d.clone()).unwrap_or_default();
    let mut watcher = notify::recommended_watcher(handler).map_err(|source| WatchError { dir: first_dir, source })?;
    let mut dirs: Vec<&PathBuf> = Vec::new();
    for (dir, _) in &wanted {
        if !dirs.contains(&dir) {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError { dir: dir.clone(), source })?;
            dirs.push(dir);
        }
    }
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until the files have been quiet for DEBOUNCE.
            loop {
                tokio::select! {
                    more = rx.recv() => if more.is_none() { return },
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                }
            }
            if events.send(make()).is_err() {
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

/// Turns each notification of `signal` (the binary's SIGUSR1) into [`Event::ReopenLogs`].
pub(crate) fn on_reopen_signal(signal: Arc<Notify>, events: EventSender) -> AbortHandle {
    tokio::spawn(async move {
        loop {
            signal.notified().await;
            if events.send(Event::ReopenLogs).is_err() {
                return;
            }
        }
    })
    .abort_handle()
}
