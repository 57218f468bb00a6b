//! The open-file cache of a static route (nginx's `open_file_cache`, issue 11 item 4): for a URL
//! path the route served as a file, the open descriptor, its length, mtime and content type, so
//! that the next request for it skips path resolution (`realpath`'s `readlink`s), `stat`,
//! `open` and `close` — a small file then costs one `preadv2` from the page cache.
//!
//! **Key**: the URL path after the route prefix, exactly as it came (still percent-encoded): a
//! hit needs no decoding. An entry is made only for a request [`crate::static_files`] answered
//! from a regular file in its own coding (the identity bytes); paths refused before the file
//! system (traversal, hidden segments, handler extensions) never get one, so a hit for the same
//! key is one those checks already passed under the same route table.
//!
//! **Freshness**: each entry holds a [`Stamp`] of the directories the lookup went through
//! ([`crate::watch::dirs_of`]: each directory on the way down with the name taken in it, and the
//! target's directory with its name),
//! taken right after the lookup and checked against the file (same inode, size and mtime as
//! the open descriptor), so a change while it was being made is not missed. A hit whose stamp
//! is stale is dropped and looked up again. Unlike nginx, whose entries live
//! `open_file_cache_valid` (60 s) before a re-`stat`, a changed file is seen as soon as inotify
//! reports it.
//!
//! **Bounds**: at most [`max_open`] descriptors for the whole listener (an eighth of the soft
//! `RLIMIT_NOFILE`, at most 4,096, so connections keep their descriptors); when full, nothing new
//! is added. [`sweeper`] drops every [`SWEEP_EVERY`] the entries gone stale (so a deleted file's
//! descriptor is not held, keeping its disk space) and those not used for [`IDLE_SWEEPS`]
//! sweeps, then the directory watches no entry needs. A new route table starts empty caches
//! (each [`crate::routing::StaticRoot`] owns one).
//!
//! **Handled scripts** (a `handlers` extension, FastCGI's `SCRIPT_FILENAME`) are held the same
//! way without a descriptor: the script's canonical path and the root it is under, keyed by its
//! decoded relative path, under the same kind of stamp, so a PHP request skips the `readlink`s
//! and the `stat` of resolving it (4 and 1 per request for `/tmp/x/www/hello.php`, measured by
//! bench/php's strace). At most [`MAX_SCRIPTS`] per route; swept like the files.
//!
//! Layering: uses [`crate::watch`]; held by [`crate::routing`], used by
//! [`crate::static_files`].

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use http::HeaderValue;

use crate::watch::{Stamp, Watches};

const SHARDS: usize = 8;
/// How often [`sweeper`] runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Sweeps an entry may go unused before it is dropped (60 s, nginx's `inactive` default).
pub const IDLE_SWEEPS: u64 = 12;

/// Resolved scripts held per route, at most.
pub const MAX_SCRIPTS: usize = 4096;

/// A handled script as a static route resolved it: what [`crate::static_files`] would find again.
pub struct HeldScript {
    /// The script's file, symlinks resolved.
    pub filename: std::path::PathBuf,
    /// The canonical root it is under.
    pub document_root: std::path::PathBuf,
    stamp: Stamp,
    /// The sweep count when last used.
    used: AtomicU64,
}

/// A file as a static route serves it.
pub struct OpenFile {
    pub file: Arc<std::fs::File>,
    pub len: u64,
    pub mtime_secs: u64,
    pub content_type: HeaderValue,
    /// The type is compressible and the route negotiates codings (`Vary: Accept-Encoding`).
    pub varies: bool,
    pub stamp: Stamp,
    /// The sweep count when last used.
    used: AtomicU64,
}

impl OpenFile {
    pub fn new(
        file: Arc<std::fs::File>,
        len: u64,
        mtime_secs: u64,
        content_type: HeaderValue,
        varies: bool,
        stamp: Stamp,
    ) -> Self {
        OpenFile { file, len, mtime_secs, content_type, varies, stamp, used: AtomicU64::new(sweeps()) }
    }
}

type Shard = HashMap<Box<str>, Arc<OpenFile>>;

struct Inner {
    shards: [Mutex<Shard>; SHARDS],
    scripts: Mutex<HashMap<Box<str>, Arc<HeldScript>>>,
    hasher: std::collections::hash_map::RandomState,
}

/// One static route's open files.
pub struct OpenFiles(Arc<Inner>);

/// Descriptors held by every cache of the listener.
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// Sweeps run so far: the caches' clock.
static SWEEPS: AtomicU64 = AtomicU64::new(0);

fn sweeps() -> u64 {
    SWEEPS.load(Ordering::Relaxed)
}

/// Every cache alive, for [`sweeper`].
fn registry() -> &'static Mutex<Vec<Weak<Inner>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Weak<Inner>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The most descriptors the caches hold: an eighth of the soft `RLIMIT_NOFILE` (read from
/// `/proc/self/limits`; 1,024 assumed if it cannot be read), at most 4,096.
pub fn max_open() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let soft = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
                let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
                if soft == "unlimited" {
                    Some(usize::MAX)
                } else {
                    soft.parse::<usize>().ok()
                }
            })
            .unwrap_or(1024);
        (soft / 8).min(4096)
    })
}

impl Default for OpenFiles {
    fn default() -> Self {
        let inner = Arc::new(Inner {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            scripts: Mutex::default(),
            hasher: Default::default(),
        });
        let mut reg = lock(registry());
        reg.retain(|w| w.strong_count() > 0);
        reg.push(Arc::downgrade(&inner));
        OpenFiles(inner)
    }
}

impl std::fmt::Debug for OpenFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries: usize = self.0.shards.iter().map(|s| lock(s).len()).sum();
        f.debug_struct("OpenFiles").field("entries", &entries).finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let n: usize = self.shards.iter().map(|s| lock(s).len()).sum();
        OPEN.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Inner {
    fn shard(&self, key: &str) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Drops the stale entries and those unused for [`IDLE_SWEEPS`] sweeps.
    fn sweep(&self, watches: &Watches, now: u64) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            let before = shard.len();
            shard.retain(|_, f| {
                watches.fresh(&f.stamp) && now.saturating_sub(f.used.load(Ordering::Relaxed)) < IDLE_SWEEPS
            });
            OPEN.fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
        lock(&self.scripts)
            .retain(|_, s| watches.fresh(&s.stamp) && now.saturating_sub(s.used.load(Ordering::Relaxed)) < IDLE_SWEEPS);
    }
}

impl OpenFiles {
    /// The entry for `key`, if one is held and its directories did not change (a stale one is
    /// dropped).
    pub fn get(&self, key: &str) -> Option<Arc<OpenFile>> {
        let watches = Watches::get()?;
        let shard = self.0.shard(key);
        let mut map = lock(shard);
        let entry = map.get(key)?;
        if !watches.fresh(&entry.stamp) {
            map.remove(key);
            OPEN.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        entry.used.store(sweeps(), Ordering::Relaxed);
        Some(entry.clone())
    }

    /// Holds `file` for `key`, unless the listener holds [`max_open`] descriptors already.
    pub fn insert(&self, key: &str, file: OpenFile) {
        if OPEN.load(Ordering::Relaxed) >= max_open() {
            return;
        }
        let mut map = lock(self.0.shard(key));
        if map.insert(key.into(), Arc::new(file)).is_none() {
            OPEN.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl OpenFiles {
    /// The script held for `key` (its decoded relative path), if its directories did not
    /// change (a stale one is dropped).
    pub fn script(&self, key: &str) -> Option<Arc<HeldScript>> {
        let watches = Watches::get()?;
        let mut map = lock(&self.0.scripts);
        let held = map.get(key)?;
        if !watches.fresh(&held.stamp) {
            map.remove(key);
            return None;
        }
        held.used.store(sweeps(), Ordering::Relaxed);
        Some(held.clone())
    }

    /// Holds a resolved script, unless [`MAX_SCRIPTS`] are held already.
    pub fn insert_script(
        &self,
        key: &str,
        filename: std::path::PathBuf,
        document_root: std::path::PathBuf,
        stamp: Stamp,
    ) {
        let mut map = lock(&self.0.scripts);
        if map.len() >= MAX_SCRIPTS && !map.contains_key(key) {
            return;
        }
        let used = AtomicU64::new(sweeps());
        map.insert(key.into(), Arc::new(HeldScript { filename, document_root, stamp, used }));
    }
}

/// Descriptors held by the listener's caches now.
pub fn held() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// Sweeps every cache, then the watches, every [`SWEEP_EVERY`]; one task for the listener.
pub async fn sweeper() {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        sweep_all();
    }
}

/// One sweep of every cache, and of the watches no entry (nor a response cache entry) needs.
pub fn sweep_all() {
    let now = SWEEPS.fetch_add(1, Ordering::Relaxed) + 1;
    let Some(watches) = Watches::get() else { return };
    let caches: Vec<Arc<Inner>> = {
        let mut reg = lock(registry());
        reg.retain(|w| w.strong_count() > 0);
        reg.iter().filter_map(Weak::upgrade).collect()
    };
    for cache in caches {
        cache.sweep(watches, now);
    }
    watches.sweep();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::tests::TempDir;

    fn entry(dir: &std::path::Path, name: &str) -> OpenFile {
        let path = dir.join(name);
        std::fs::write(&path, "x").unwrap();
        let stamp = Watches::get().expect("inotify").stamp([(dir, Some(std::ffi::OsStr::new(name)))]).expect("watch");
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        OpenFile::new(file, 1, 0, HeaderValue::from_static("text/plain"), false, stamp)
    }

    #[test]
    fn an_entry_is_served_until_its_directory_changes() {
        let dir = TempDir::new("open-files");
        let files = OpenFiles::default();
        files.insert("/a.txt", entry(dir.path(), "a.txt"));
        assert!(files.get("/a.txt").is_some(), "held");
        assert!(files.get("/b.txt").is_none(), "another key");
        std::fs::write(dir.path().join("a.txt"), "changed").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while files.get("/a.txt").is_some() {
            assert!(std::time::Instant::now() < deadline, "the change was never seen");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn sweeps_drop_entries_left_unused_and_their_descriptors() {
        let dir = TempDir::new("open-files");
        let files = OpenFiles::default();
        files.insert("/a.txt", entry(dir.path(), "a.txt"));
        let weak = Arc::downgrade(&files.get("/a.txt").expect("held").file);
        for _ in 0..IDLE_SWEEPS {
            sweep_all();
        }
        assert!(files.get("/a.txt").is_none(), "dropped after {IDLE_SWEEPS} sweeps unused");
        assert!(weak.upgrade().is_none(), "its descriptor is closed");
    }

    #[test]
    fn a_held_script_is_given_until_its_name_changes_and_is_swept_when_unused() {
        let dir = TempDir::new("open-files-scripts");
        let script = dir.path().join("x.php");
        std::fs::write(&script, "<?php").unwrap();
        let stamp = || {
            Watches::get().expect("inotify").stamp([(dir.path(), Some(std::ffi::OsStr::new("x.php")))]).expect("watch")
        };
        let files = OpenFiles::default();
        files.insert_script("x.php", script.clone(), dir.path().to_path_buf(), stamp());
        let held = files.script("x.php").expect("held");
        assert_eq!((held.filename.as_path(), held.document_root.as_path()), (script.as_path(), dir.path()));
        assert!(files.script("y.php").is_none(), "another key");
        // Another name in the directory changes nothing; the script's own name does.
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        std::fs::rename(&script, dir.path().join("moved.php")).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while files.script("x.php").is_some() {
            assert!(std::time::Instant::now() < deadline, "the rename was never seen");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(&script, "<?php").unwrap();
        files.insert_script("x.php", script.clone(), dir.path().to_path_buf(), stamp());
        for _ in 0..IDLE_SWEEPS {
            sweep_all();
        }
        assert!(files.script("x.php").is_none(), "dropped after {IDLE_SWEEPS} sweeps unused");
    }

    #[test]
    fn held_scripts_are_bounded() {
        let dir = TempDir::new("open-files-bound");
        let stamp = Watches::get().expect("inotify").stamp([(dir.path(), None)]).expect("watch");
        let files = OpenFiles::default();
        for i in 0..=MAX_SCRIPTS {
            files.insert_script(
                &format!("{i}.php"),
                dir.path().join(format!("{i}.php")),
                dir.path().into(),
                stamp.clone(),
            );
        }
        // Other tests' sweeps may drop entries meanwhile (they sweep every cache): only fewer.
        assert!(lock(&files.0.scripts).len() <= MAX_SCRIPTS, "more than {MAX_SCRIPTS} held");
    }
}
