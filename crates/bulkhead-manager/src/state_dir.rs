//! The manager's state directory: sockets, pid files, `bindings.json`, and the lock that makes
//! one manager the owner of a `state_dir`.
//!
//! Called by [`crate::run`] at start-up ([`StateDir::prepare`]) and by the supervisor when the
//! listener is ready or restarted and at shutdown. It only touches files under `state_dir` and
//! `log_dir`; it never removes anything it did not create.
//!
//! Files (the common conventions tests rely on):
//! - `lock`: held with `flock` for the manager's life; a second manager on the same state_dir
//!   is refused.
//! - `bulkhead.pid`, `listener.pid`: decimal pid and a newline.
//! - `bindings.json`: `[{"binding":"http://127.0.0.1:0","address":"127.0.0.1:41234"}, ...]`,
//!   written atomically once the listener is ready.
//! - `sockets/` (0700): one unix socket per worker.
//! - `body-temp/` (0700, the listener's user's): request bodies the listener spools to disk,
//!   as unnamed files (a named leftover `body-*` of a listener killed mid-spool is removed at
//!   start-up).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("another bulkhead manager{pid} is already running with state_dir {path}; stop it first or use another state_dir")]
    Locked { path: PathBuf, pid: String },
}

/// The prepared, locked state directory.
#[derive(Debug)]
pub struct StateDir {
    pub root: PathBuf,
    pub sockets: PathBuf,
    pub body_temp: PathBuf,
    pub log_dir: PathBuf,
    pub pool_logs: PathBuf,
    _lock: Flock<File>,
}

fn create(path: &Path) -> Result<(), StateDirError> {
    fs::create_dir_all(path).map_err(|source| StateDirError::Create { path: path.into(), source })
}

/// Writes `contents` to `path` through a temporary file and a rename, so readers never see a
/// partial file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), StateDirError> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|source| StateDirError::Write { path: path.into(), source })
}

impl StateDir {
    /// Creates the directories, takes the lock, writes `bulkhead.pid` (with `own_pid`) and
    /// removes a stale `bindings.json`.
    pub fn prepare(server: &bulkhead_config::Server, own_pid: u32) -> Result<StateDir, StateDirError> {
        let root = server.state_dir.clone();
        create(&root)?;
        let sockets = root.join("sockets");
        create(&sockets)?;
        fs::set_permissions(&sockets, fs::Permissions::from_mode(0o700))
            .map_err(|source| StateDirError::Create { path: sockets.clone(), source })?;
        let log_dir = server.log_dir.clone();
        create(&log_dir)?;
        let pool_logs = log_dir.join("pools");
        create(&pool_logs)?;

        let lock_path = root.join("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StateDirError::Create { path: lock_path.clone(), source })?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            let pid = fs::read_to_string(root.join("bulkhead.pid"))
                .map(|p| format!(" (pid {})", p.trim()))
                .unwrap_or_default();
            StateDirError::Locked { path: root.clone(), pid }
        })?;
        let body_temp = server.body_temp_dir();
        create(&body_temp)?;
        fs::set_permissions(&body_temp, fs::Permissions::from_mode(0o700))
            .map_err(|source| StateDirError::Create { path: body_temp.clone(), source })?;
        for entry in fs::read_dir(&body_temp).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("body-") {
                let _ = fs::remove_file(entry.path());
            }
        }
        let dir = StateDir { root, sockets, body_temp, log_dir, pool_logs, _lock: lock };
        write_atomic(&dir.root.join("bulkhead.pid"), format!("{own_pid}\n").as_bytes())?;
        let _ = fs::remove_file(dir.bindings_path());
        Ok(dir)
    }

    pub fn bindings_path(&self) -> PathBuf {
        self.root.join("bindings.json")
    }

    /// `<state_dir>/sockets/<pool>.<worker-id>.sock`.
    pub fn worker_socket(&self, pool: &str, worker: bulkhead_proto::WorkerId) -> PathBuf {
        self.sockets.join(format!("{pool}.{worker}.sock"))
    }

    /// The one socket all processes of a `fastcgi` pool share: `<sockets>/<pool>.fcgi.sock`.
    pub fn fastcgi_socket(&self, pool: &str) -> PathBuf {
        self.sockets.join(format!("{pool}.fcgi.sock"))
    }

    /// `<log_dir>/pools/<pool>.log`.
    pub fn pool_log(&self, pool: &str) -> PathBuf {
        self.pool_logs.join(format!("{pool}.log"))
    }

    pub fn write_listener_pid(&self, pid: u32) -> Result<(), StateDirError> {
        write_atomic(&self.root.join("listener.pid"), format!("{pid}\n").as_bytes())
    }

    /// Writes `bindings.json`: one entry per configured binding, in config order.
    pub fn write_bindings(&self, bindings: &[(String, SocketAddr)]) -> Result<(), StateDirError> {
        write_atomic(&self.bindings_path(), bindings_json(bindings).as_bytes())
    }

    /// Removes the files this manager wrote (at shutdown). The lock is released on drop.
    pub fn cleanup(&self) {
        for name in ["bindings.json", "listener.pid", "bulkhead.pid"] {
            let _ = fs::remove_file(self.root.join(name));
        }
    }
}

/// The text of `bindings.json`.
pub fn bindings_json(bindings: &[(String, SocketAddr)]) -> String {
    let entries: Vec<serde_json::Value> = bindings
        .iter()
        .map(|(binding, addr)| serde_json::json!({ "binding": binding, "address": addr.to_string() }))
        .collect();
    serde_json::Value::Array(entries).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(dir: &Path) -> bulkhead_config::Server {
        bulkhead_config::Server {
            state_dir: dir.to_path_buf(),
            log_dir: dir.join("logs"),
            admin_socket: dir.join("admin.sock"),
            listener_user: "nobody".into(),
            max_history: 10,
            admin_listen: None,
            admin_token: String::new(),
        }
    }

    #[test]
    fn bindings_json_format() {
        let b = vec![("http://127.0.0.1:0".to_string(), "127.0.0.1:41234".parse().unwrap())];
        assert_eq!(bindings_json(&b), r#"[{"address":"127.0.0.1:41234","binding":"http://127.0.0.1:0"}]"#);
    }

    #[test]
    fn second_manager_is_refused_and_files_are_written() {
        let dir = std::env::temp_dir().join(format!("bulkhead-state-test-{}", std::process::id()));
        let first = StateDir::prepare(&server(&dir), 4242).unwrap();
        assert_eq!(fs::read_to_string(dir.join("bulkhead.pid")).unwrap(), "4242\n");
        assert!(dir.join("logs/pools").is_dir());
        let mode = fs::metadata(dir.join("sockets")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let err = StateDir::prepare(&server(&dir), 4243).unwrap_err();
        assert!(err.to_string().contains("(pid 4242)"), "{err}");
        first.write_bindings(&[("http://*:80".into(), "0.0.0.0:80".parse().unwrap())]).unwrap();
        assert!(first.bindings_path().exists());
        first.cleanup();
        assert!(!dir.join("bulkhead.pid").exists());
        drop(first);
        fs::remove_dir_all(&dir).unwrap();
    }
}
