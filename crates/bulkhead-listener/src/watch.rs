//! Directory watches (inotify) that tell the listener's file caches when what they hold may have
//! changed: the open-file cache ([`crate::open_files`]) and the response cache's static entries
//! ([`crate::cache`]) take a [`Stamp`] of the directories a file was found through, and a hit
//! checks it with a few atomic loads instead of a `stat` (issue 11: "static entries when the
//! file changes (inotify)").
//!
//! **What a stamp covers.** Each watched directory has a generation, bumped by the watch thread
//! on any event in it: an entry created, deleted, renamed in or out, written (`IN_MODIFY`,
//! `IN_CLOSE_WRITE`), or its attributes changed (`IN_ATTRIB`: mode, owner, `touch`), and on the
//! directory itself being deleted or moved. A stamp is the generations of its directories when it
//! was taken; it is fresh while none has moved. A kernel queue overflow (`IN_Q_OVERFLOW`: events
//! were lost) makes every stamp stale. A change anywhere in a directory stales every stamp
//! through it — coarse, but a web root's directories change rarely, and a stale stamp only costs
//! one fresh lookup.
//!
//! **Order.** A caller takes the stamp *before* it looks at the file system (or checks after
//! taking it that what it looked at is still there), so a change between the lookup and the
//! watch is never missed.
//!
//! **Why `rustix`'s inotify and not the `notify` crate** (which the manager uses for its config
//! file): `notify`'s inotify backend always asks for `IN_OPEN`, so every `open` of a served file
//! in a watched directory would wake its thread — one context switch per uncached request. Here
//! the mask is ours: no `IN_OPEN`, no `IN_ACCESS`.
//!
//! **When watching is not possible** — inotify not available, the user's watch limit
//! (`fs.inotify.max_user_watches`) reached, a directory the listener's user cannot read —
//! [`Watches::stamp`] says `None` and the caller does not cache (the limit is warned about once).
//! Watches no stamp holds any more are removed by [`Watches::sweep`].
//!
//! A leaf of the crate's layering: uses nothing of the crate.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// What a watched directory reports: everything that changes what a path in it names or what a
/// file in it holds, and nothing a reader does (no `IN_OPEN`, `IN_ACCESS`, `IN_CLOSE_NOWRITE`).
fn mask() -> WatchFlags {
    WatchFlags::ATTRIB
        | WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::MODIFY
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR
}

/// One watched directory.
pub struct Dir {
    wd: i32,
    /// Bumped on every event in (or of) the directory.
    generation: AtomicU64,
    /// The kernel dropped the watch (the directory was deleted, or its file system unmounted):
    /// the next stamp through this path watches again.
    gone: AtomicBool,
}

/// The generations of the directories a lookup went through, when it began.
#[derive(Clone)]
pub struct Stamp {
    dirs: Box<[(Arc<Dir>, u64)]>,
    overflows: u64,
}

#[derive(Default)]
struct Dirs {
    by_path: HashMap<PathBuf, Arc<Dir>>,
    by_wd: HashMap<i32, Arc<Dir>>,
}

/// The listener's inotify instance and its watched directories.
pub struct Watches {
    fd: OwnedFd,
    dirs: Mutex<Dirs>,
    /// Kernel queue overflows seen: every stamp taken before one is stale.
    overflows: AtomicU64,
    /// The watch limit was reached once (warned about once).
    limit_warned: AtomicBool,
}

fn lock(m: &Mutex<Dirs>) -> MutexGuard<'_, Dirs> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Watches {
    /// The process's watches, started on first use (an inotify instance and its reader thread);
    /// `None` when inotify cannot be had (logged once): nothing is cached then.
    pub fn get() -> Option<&'static Arc<Watches>> {
        static WATCHES: OnceLock<Option<Arc<Watches>>> = OnceLock::new();
        WATCHES
            .get_or_init(|| match Watches::start() {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(
                    "inotify is not available ({e}): static files are not kept open and static answers are not cached"
                );
                    None
                }
            })
            .as_ref()
    }

    fn start() -> std::io::Result<Arc<Watches>> {
        let fd = inotify::init(CreateFlags::CLOEXEC)?;
        let watches = Arc::new(Watches {
            fd,
            dirs: Mutex::default(),
            overflows: AtomicU64::new(0),
            limit_warned: AtomicBool::new(false),
        });
        let reader = watches.clone();
        std::thread::Builder::new().name("bulkhead-watch".into()).spawn(move || reader.read_events())?;
        Ok(watches)
    }

    /// The watch thread: blocking reads of the inotify descriptor, each event bumping its
    /// directory's generation.
    fn read_events(&self) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(self.fd.as_fd(), &mut buf);
        loop {
            let event = match reader.next() {
                Ok(event) => event,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    // Without events every stamp would stay fresh for ever: make them all stale,
                    // and every later one too (a stamp is never fresh past an overflow count of
                    // u64::MAX).
                    tracing::error!("inotify read failed ({e}): file caches stop trusting their entries");
                    self.overflows.store(u64::MAX, Ordering::Release);
                    return;
                }
            };
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                self.overflows.fetch_add(1, Ordering::AcqRel);
                continue;
            }
            let mut dirs = lock(&self.dirs);
            let Some(dir) = dirs.by_wd.get(&event.wd()).cloned() else { continue };
            dir.generation.fetch_add(1, Ordering::AcqRel);
            if flags.contains(ReadFlags::IGNORED) {
                dir.gone.store(true, Ordering::Release);
                dirs.by_wd.remove(&event.wd());
            }
        }
    }

    /// A stamp of `dirs` (absolute paths of directories), watching those not yet watched;
    /// `None` if one cannot be watched.
    pub fn stamp<'a>(&self, dirs: impl IntoIterator<Item = &'a Path>) -> Option<Stamp> {
        let overflows = self.overflows.load(Ordering::Acquire);
        if overflows == u64::MAX {
            return None;
        }
        let mut held: Vec<(Arc<Dir>, u64)> = Vec::new();
        let mut map = lock(&self.dirs);
        for path in dirs {
            let dir = match map.by_path.get(path) {
                Some(dir) if !dir.gone.load(Ordering::Acquire) => dir.clone(),
                _ => {
                    let dir = self.add(&mut map, path)?;
                    map.by_path.insert(path.to_path_buf(), dir.clone());
                    dir
                }
            };
            if !held.iter().any(|(d, _)| Arc::ptr_eq(d, &dir)) {
                let generation = dir.generation.load(Ordering::Acquire);
                held.push((dir, generation));
            }
        }
        Some(Stamp { dirs: held.into_boxed_slice(), overflows })
    }

    /// Watches `path` (the kernel gives the same descriptor for a directory reached by two
    /// paths, so they share one [`Dir`]).
    fn add(&self, map: &mut Dirs, path: &Path) -> Option<Arc<Dir>> {
        match inotify::add_watch(&self.fd, path, mask()) {
            Ok(wd) => Some(
                map.by_wd
                    .entry(wd)
                    .or_insert_with(|| {
                        Arc::new(Dir { wd, generation: AtomicU64::new(0), gone: AtomicBool::new(false) })
                    })
                    .clone(),
            ),
            Err(rustix::io::Errno::NOSPC) => {
                if !self.limit_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the inotify watch limit is reached (fs.inotify.max_user_watches): files under {} and other new directories are not cached; raise the limit with sysctl",
                        path.display()
                    );
                }
                None
            }
            Err(_) => None,
        }
    }

    /// No directory of `stamp` changed since it was taken.
    pub fn fresh(&self, stamp: &Stamp) -> bool {
        self.overflows.load(Ordering::Acquire) == stamp.overflows
            && stamp.dirs.iter().all(|(dir, generation)| dir.generation.load(Ordering::Acquire) == *generation)
    }

    /// Removes the watches no stamp holds (their `Dir` is held only by the maps).
    pub fn sweep(&self) {
        let mut map = lock(&self.dirs);
        let Dirs { by_path, by_wd } = &mut *map;
        let mut paths: HashMap<*const Dir, usize> = HashMap::new();
        for dir in by_path.values() {
            *paths.entry(Arc::as_ptr(dir)).or_default() += 1;
        }
        by_path.retain(|_, dir| {
            let listed = usize::from(by_wd.get(&dir.wd).is_some_and(|d| Arc::ptr_eq(d, dir)));
            let in_maps = paths.get(&Arc::as_ptr(dir)).copied().unwrap_or(0) + listed;
            Arc::strong_count(dir) > in_maps
        });
        by_wd.retain(|wd, dir| {
            let keep = by_path.values().any(|d| Arc::ptr_eq(d, dir));
            if !keep && !dir.gone.load(Ordering::Acquire) {
                let _ = inotify::remove_watch(&self.fd, *wd);
            }
            keep
        });
    }

    /// Whether `path` is watched now.
    pub fn is_watched(&self, path: &Path) -> bool {
        lock(&self.dirs).by_path.get(path).is_some_and(|d| !d.gone.load(Ordering::Acquire))
    }
}

/// The directories a file found at `requested` (under the configured `root`, as given) and
/// resolved to `target` (canonical) depends on: every directory from `/` down to `root`, every
/// one from `root` down to `requested`'s parent (as named: a symlinked directory is watched where
/// it leads, and the symlink itself is an entry of the directory above it), and `target`'s
/// parent (where a symlinked file's content lives).
pub fn dirs_of(root: &Path, requested: &Path, target: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut push = |p: &Path| {
        if !p.as_os_str().is_empty() && !dirs.iter().any(|d| d == p) {
            dirs.push(p.to_path_buf());
        }
    };
    for a in root.ancestors().collect::<Vec<_>>().into_iter().rev() {
        push(a);
    }
    if let Ok(inside) = requested.strip_prefix(root) {
        let mut dir = root.to_path_buf();
        let parts: Vec<&OsStr> = inside.iter().collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            dir.push(part);
            push(&dir);
        }
    }
    if let Some(parent) = target.parent() {
        push(parent);
    }
    dirs.retain(|d| d.as_os_str().as_bytes().first() == Some(&b'/'));
    dirs
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A directory under the system's temp dir, removed when dropped.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(name: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("bulkhead-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Waits (bounded) for the watch thread to have seen a change.
    fn until_stale(w: &Watches, s: &Stamp) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if !w.fresh(s) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_stamp_goes_stale_on_a_write_a_create_a_rename_and_a_chmod_but_not_on_a_read() {
        let w = Watches::get().expect("inotify");
        let dir = TempDir::new("watch");
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "a").unwrap();
        type Change<'a> = (&'static str, Box<dyn Fn() + 'a>);
        let changes: [Change<'_>; 4] = [
            ("write", Box::new(|| std::fs::write(&file, "b").unwrap())),
            ("create", Box::new(|| std::fs::write(dir.path().join("new.txt"), "n").unwrap())),
            ("rename", Box::new(|| std::fs::rename(dir.path().join("new.txt"), dir.path().join("n2.txt")).unwrap())),
            (
                "chmod",
                Box::new(|| {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap()
                }),
            ),
        ];
        for (what, change) in changes {
            let s = w.stamp([dir.path()]).expect("watch");
            // Reading and opening are not changes: the stamp holds through them.
            let _ = std::fs::read(&file).unwrap();
            assert!(w.fresh(&s), "{what}: fresh after a read");
            change();
            assert!(until_stale(w, &s), "{what}: the stamp never went stale");
        }
    }

    #[test]
    fn swept_watches_are_removed_and_a_deleted_directory_is_watched_again_when_recreated() {
        let w = Watches::get().expect("inotify");
        let base = TempDir::new("watch");
        let dir = base.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let s = w.stamp([dir.as_path()]).expect("watch");
        std::fs::remove_dir(&dir).unwrap();
        assert!(until_stale(w, &s), "deleting the directory stales the stamp");
        std::fs::create_dir(&dir).unwrap();
        let again = w.stamp([dir.as_path()]).expect("watched again");
        std::fs::write(dir.join("x"), "x").unwrap();
        assert!(until_stale(w, &again), "the new directory is watched");
        w.sweep();
        assert!(w.is_watched(&dir), "a watch a stamp holds is kept");
        drop((s, again));
        w.sweep();
        assert!(!w.is_watched(&dir), "sweeping removed the watch no stamp holds");
    }

    #[test]
    fn dirs_of_covers_the_root_s_ancestors_the_way_down_and_the_target() {
        let d = dirs_of(Path::new("/srv/www"), Path::new("/srv/www/a/b/c.html"), Path::new("/srv/other/c.html"));
        let want: Vec<PathBuf> =
            ["/", "/srv", "/srv/www", "/srv/www/a", "/srv/www/a/b", "/srv/other"].iter().map(PathBuf::from).collect();
        assert_eq!(d, want);
    }
}
