//! Temporary directories for one test: created fresh under the system temp dir, removed when
//! the test passes, kept (and their path printed) when it fails — or always with
//! `BULKHEAD_E2E_KEEP=1` in the environment — so the logs can be read; a failed test's panic
//! message is written there as `FAILURE.txt`.
//!
//! Used by every test through [`super::server::Server`]; never touches anything outside its
//! own directory.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::thread::ThreadId;

/// The panic message of each failing test thread, so a kept dir can say why it was kept.
static PANICS: Mutex<Option<HashMap<ThreadId, String>>> = Mutex::new(None);

/// Chains a hook that records each panic's message and place before the default report.
fn record_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(mut map) = PANICS.lock() {
                map.get_or_insert_with(HashMap::new).insert(std::thread::current().id(), info.to_string());
            }
            default(info);
        }));
    });
}

/// A fresh directory, removed on drop unless the test is panicking.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `<tmp>/bulkhead-e2e-<label>-<pid>-<n>`, empty.
    pub fn new(label: &str) -> TestDir {
        record_panics();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("bulkhead-e2e-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create test dir");
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/rel`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&p, contents).expect("write test file");
        p
    }

    /// Creates a directory (and parents) and returns its path.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path.join(rel);
        fs::create_dir_all(&p).expect("create dir");
        p
    }

    /// Makes a symlink at `rel` pointing at `target` (as written, relative or absolute).
    pub fn symlink(&self, target: &str, rel: &str) -> PathBuf {
        let p = self.path.join(rel);
        std::os::unix::fs::symlink(target, &p).expect("create symlink");
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("BULKHEAD_E2E_KEEP").is_some() {
            let why = PANICS.lock().ok().and_then(|m| m.as_ref()?.get(&std::thread::current().id()).cloned());
            if let Some(why) = why {
                let _ = fs::write(self.path.join("FAILURE.txt"), why);
            }
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
