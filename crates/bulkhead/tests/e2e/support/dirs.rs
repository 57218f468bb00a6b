//! Temporary directories for one test: created fresh under the system temp dir, removed when
//! the test passes, kept (and their path printed) when it fails — or always with
//! `BULKHEAD_E2E_KEEP=1` in the environment — so the logs can be read.
//!
//! Used by every test through [`super::server::Server`]; never touches anything outside its
//! own directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory, removed on drop unless the test is panicking.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `<tmp>/bulkhead-e2e-<label>-<pid>-<n>`, empty.
    pub fn new(label: &str) -> TestDir {
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
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
