//! Directory watches (inotify) that tell the listener's file caches when what they hold may have
//! changed: the open-file cache ([`crate::open_files`]) and the response cache's static entries
//! ([`crate::cache`]) take a [`Stamp`] of the directories a file was found through, and a hit
//! checks it with a few atomic loads instead of a `stat` (issue 11: "static entries when the
//! file changes (inotify)").
//!
//! **What a stamp covers.** A lookup of `/srv/www/a/b.html` depends, in each directory on its
//! way, on one name only: `srv` in `/`, `www` in `/srv`, `a` in `/srv/www`, `b.html` in
//! `/srv/www/a`. A stamp holds those (directory, name) pairs ([`dirs_of`]) and the generations
//! they had when it was taken. The watch thread bumps a name's generation on any event naming it
//! in its directory — the entry created, deleted, renamed in or out, written (`IN_MODIFY`,
//! `IN_CLOSE_WRITE`), or its attributes changed (`IN_ATTRIB`: mode, owner, `touch`) — and the
//! directory's own generation when the directory itself is deleted, moved, or changes mode. So a
//! log file written beside the web root, or a file created in `/tmp` above it, leaves the stamp
//! fresh, while a symlink swap of `www` (a deploy) or an edit of `b.html` stales it. A pair may
//! instead stand for the whole directory (a directory's default document, where a new
//! `index.php` would take precedence over the `index.html` served): any event in it stales it.
//! A kernel queue overflow (`IN_Q_OVERFLOW`: events were lost) makes every stamp stale.
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
    /// Bumped on events of the directory itself (deleted, moved, its mode changed, its watch
    /// dropped).
    own: AtomicU64,
    /// The generations of the names stamps depend on, bumped on events naming them.
    names: Mutex<HashMap<std::ffi::OsString, Arc<AtomicU64>>>,
    /// The kernel dropped the watch (the directory was deleted, or its file system unmounted):
    /// the next stamp through this path watches again.
    gone: AtomicBool,
}

/// The generations of the (directory, name) pairs a lookup went through, when it began.
#[derive(Clone)]
pub struct Stamp {
    dirs: Box<[Held]>,
    overflows: u64,
}

/// One pair of a [`Stamp`]: the directory's own generation and its name's, or (for a whole
/// directory, `name: None`) its generation of every event.
#[derive(Clone)]
struct Held {
    dir: Arc<Dir>,
    name: Option<Arc<AtomicU64>>,
    dir_generation: u64,
    name_generation: u64,
}

impl Held {
    fn fresh(&self) -> bool {
        match &self.name {
            None => self.dir.generation.load(Ordering::Acquire) == self.dir_generation,
            Some(name) => {
                self.dir.own.load(Ordering::Acquire) == self.dir_generation
                    && name.load(Ordering::Acquire) == self.name_generation
            }
        }
    }
}

/// One directory a lookup depends on, and the name in it that matters (`None`: every name).
pub type DirName = (PathBuf, Option<std::ffi::OsString>);

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
            match event.file_name().map(|n| OsStr::from_bytes(n.to_bytes())) {
                // An event of an entry: only the stamps that depend on that name.
                Some(name) if !name.is_empty() => {
                    if let Some(g) = dir.names.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
                        g.fetch_add(1, Ordering::AcqRel);
                    }
                }
                _ => {
                    dir.own.fetch_add(1, Ordering::AcqRel);
                }
            }
            if flags.contains(ReadFlags::IGNORED) {
                dir.gone.store(true, Ordering::Release);
                dirs.by_wd.remove(&event.wd());
            }
        }
    }

    /// A stamp of `dirs` (absolute paths of directories, each with the name in it that matters,
    /// or `None` for all of them), watching those not yet watched; `None` if one cannot be
    /// watched.
    pub fn stamp<'a>(&self, dirs: impl IntoIterator<Item = (&'a Path, Option<&'a OsStr>)>) -> Option<Stamp> {
        let overflows = self.overflows.load(Ordering::Acquire);
        if overflows == u64::MAX {
            return None;
        }
        let mut held: Vec<Held> = Vec::new();
        let mut map = lock(&self.dirs);
        for (path, name) in dirs {
            let dir = match map.by_path.get(path) {
                Some(dir) if !dir.gone.load(Ordering::Acquire) => dir.clone(),
                _ => {
                    let dir = self.add(&mut map, path)?;
                    map.by_path.insert(path.to_path_buf(), dir.clone());
                    dir
                }
            };
            let name = name.map(|name| {
                let mut names = dir.names.lock().unwrap_or_else(|e| e.into_inner());
                names.entry(name.to_os_string()).or_default().clone()
            });
            let same = |h: &Held| {
                Arc::ptr_eq(&h.dir, &dir)
                    && match (&h.name, &name) {
                        (None, None) => true,
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        _ => false,
                    }
            };
            if !held.iter().any(same) {
                let dir_generation = if name.is_some() {
                    dir.own.load(Ordering::Acquire)
                } else {
                    dir.generation.load(Ordering::Acquire)
                };
                let name_generation = name.as_ref().map_or(0, |g| g.load(Ordering::Acquire));
                held.push(Held { dir, name, dir_generation, name_generation });
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
                        Arc::new(Dir {
                            wd,
                            generation: AtomicU64::new(0),
                            own: AtomicU64::new(0),
                            names: Mutex::default(),
                            gone: AtomicBool::new(false),
                        })
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
        self.overflows.load(Ordering::Acquire) == stamp.overflows && stamp.dirs.iter().all(Held::fresh)
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
        for dir in by_path.values() {
            // Names no stamp holds any more.
            dir.names.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, g| Arc::strong_count(g) > 1);
        }
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

/// The (directory, name) pairs a file found at `requested` (under the configured `root`, as
/// given) and resolved to `target` (canonical) depends on: from `/` down to `requested`, each
/// directory with the name of the next step (as named: a symlinked directory is watched where it
/// leads, and the symlink itself is a name in the directory above it), and `target`'s parent with
/// its name (where a symlinked file's content lives). With `whole_last`, `requested` is a
/// directory whose default document was served, and every name in it matters.
pub fn dirs_of(root: &Path, requested: &Path, target: &Path, whole_last: bool) -> Vec<DirName> {
    let mut dirs: Vec<DirName> = Vec::new();
    let mut push = |p: &Path, name: Option<&OsStr>| {
        let pair = (p.to_path_buf(), name.map(OsStr::to_os_string));
        if p.as_os_str().as_bytes().first() == Some(&b'/') && !dirs.contains(&pair) {
            dirs.push(pair);
        }
    };
    // The way to `requested`: the root's own path, then the path inside it.
    let inside = requested.strip_prefix(root).unwrap_or(Path::new(""));
    let mut dir = PathBuf::new();
    for part in root.iter().chain(inside.iter()) {
        if !dir.as_os_str().is_empty() {
            push(&dir, Some(part));
        }
        dir.push(part);
    }
    if whole_last {
        push(&dir, None);
    }
    if let (Some(parent), Some(name)) = (target.parent(), target.file_name()) {
        push(parent, Some(name));
    }
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
        type Change = (&'static str, fn(&Path));
        let changes: [Change; 4] = [
            ("write", |d| std::fs::write(d.join("a.txt"), "b").unwrap()),
            ("create", |d| std::fs::write(d.join("new.txt"), "n").unwrap()),
            ("rename", |d| std::fs::rename(d.join("old.txt"), d.join("n2.txt")).unwrap()),
            ("chmod", |d| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(d.join("a.txt"), std::fs::Permissions::from_mode(0o600)).unwrap()
            }),
        ];
        for (what, change) in changes {
            // A directory of its own for each change, its files written before the first stamp
            // adds its watch: no event of an earlier change can arrive late and stale this one
            // (a create's close-write could, in one shared directory).
            let dir = TempDir::new("watch");
            std::fs::write(dir.path().join("a.txt"), "a").unwrap();
            std::fs::write(dir.path().join("old.txt"), "o").unwrap();
            let s = w.stamp([(dir.path(), None)]).expect("watch");
            // Reading and opening are not changes: the stamp holds through them.
            let _ = std::fs::read(dir.path().join("a.txt")).unwrap();
            assert!(w.fresh(&s), "{what}: fresh after a read");
            change(dir.path());
            assert!(until_stale(w, &s), "{what}: the stamp never went stale");
        }
    }

    #[test]
    fn swept_watches_are_removed_and_a_deleted_directory_is_watched_again_when_recreated() {
        let w = Watches::get().expect("inotify");
        let base = TempDir::new("watch");
        let dir = base.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let s = w.stamp([(dir.as_path(), None)]).expect("watch");
        std::fs::remove_dir(&dir).unwrap();
        assert!(until_stale(w, &s), "deleting the directory stales the stamp");
        std::fs::create_dir(&dir).unwrap();
        let again = w.stamp([(dir.as_path(), None)]).expect("watched again");
        std::fs::write(dir.join("x"), "x").unwrap();
        assert!(until_stale(w, &again), "the new directory is watched");
        w.sweep();
        assert!(w.is_watched(&dir), "a watch a stamp holds is kept");
        drop((s, again));
        w.sweep();
        assert!(!w.is_watched(&dir), "sweeping removed the watch no stamp holds");
    }

    #[test]
    fn a_named_stamp_ignores_other_names_but_not_its_own_nor_its_directory_going() {
        let w = Watches::get().expect("inotify");
        let base = TempDir::new("watch-named");
        let www = base.path().join("www");
        std::fs::create_dir(&www).unwrap();
        std::fs::write(www.join("a.txt"), "a").unwrap();
        let take = || {
            let pairs = dirs_of(&www, &www.join("a.txt"), &www.join("a.txt"), false);
            w.stamp(pairs.iter().map(|(d, n)| (d.as_path(), n.as_deref()))).expect("watch")
        };
        let s = take();
        // Beside the root and inside it, under other names: not a change of this file.
        std::fs::write(base.path().join("access.log"), "GET /a.txt").unwrap();
        std::fs::write(www.join("other.txt"), "o").unwrap();
        // A change the watch thread reports after those (events come in order): once the
        // whole-directory stamp has seen it, the named one has seen the unrelated ones too.
        let whole = w.stamp([(www.as_path(), None)]).expect("watch");
        std::fs::write(www.join("later.txt"), "l").unwrap();
        assert!(until_stale(w, &whole), "the whole-directory stamp sees any name");
        assert!(w.fresh(&s), "other names beside and under the root leave the stamp fresh");
        std::fs::write(www.join("a.txt"), "b").unwrap();
        assert!(until_stale(w, &s), "a write of the file stales it");
        let s = take();
        std::fs::rename(&www, base.path().join("www.old")).unwrap();
        assert!(until_stale(w, &s), "renaming the root away (a deploy's swap) stales it");
    }

    #[test]
    fn dirs_of_covers_the_way_down_with_its_names_and_the_target() {
        let name = |n: &str| Some(std::ffi::OsString::from(n));
        let d = dirs_of(Path::new("/srv/www"), Path::new("/srv/www/a/b/c.html"), Path::new("/srv/other/c.html"), false);
        let want: Vec<DirName> = vec![
            (PathBuf::from("/"), name("srv")),
            (PathBuf::from("/srv"), name("www")),
            (PathBuf::from("/srv/www"), name("a")),
            (PathBuf::from("/srv/www/a"), name("b")),
            (PathBuf::from("/srv/www/a/b"), name("c.html")),
            (PathBuf::from("/srv/other"), name("c.html")),
        ];
        assert_eq!(d, want);
        let d = dirs_of(Path::new("/srv/www"), Path::new("/srv/www/docs"), Path::new("/srv/www/docs/index.html"), true);
        let want: Vec<DirName> = vec![
            (PathBuf::from("/"), name("srv")),
            (PathBuf::from("/srv"), name("www")),
            (PathBuf::from("/srv/www"), name("docs")),
            (PathBuf::from("/srv/www/docs"), None),
            (PathBuf::from("/srv/www/docs"), name("index.html")),
        ];
        assert_eq!(d, want, "a default document: every name in its directory");
    }
}
