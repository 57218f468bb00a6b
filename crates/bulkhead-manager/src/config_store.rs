//! The metabase's memory: every applied configuration version, kept under
//! `<state_dir>/history`, and the atomic write-back of a configuration to its file.
//!
//! The supervisor calls [`ConfigStore::record`] each time it applies a configuration (at
//! start-up, on a file change, SIGHUP, `PUT /config` or a rollback); the admin service reads
//! [`ConfigStore::list`] and [`ConfigStore::text`] directly (they only read files) for
//! `bulkhead config history|diff`. [`write_back`] replaces the operator's file atomically
//! (temporary file in the same directory, fsync, rename), so the file stays the truth and a
//! crash never leaves half a config.
//!
//! Layout: `history/v000012.toml` (the text exactly as applied) and `history/v000012.json`
//! (`{"version":12,"applied_at":"2025-…Z","hash":"…","source":"api","note":…}`). Version
//! numbers only grow, across restarts too; the oldest versions beyond `max_history` are
//! removed. It never touches anything outside `history/` except the config file in
//! [`write_back`].

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Why the history or the config file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("no version {0} in the history (see `bulkhead config history`)")]
    NoSuchVersion(u64),
}

/// Who applied a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The file the server started with.
    Start,
    /// The file changed on disk (the watcher).
    File,
    /// SIGHUP.
    Signal,
    /// `PUT /config` or `POST /config/reload` on the admin API.
    Api,
    /// `bulkhead config rollback VERSION`.
    Rollback,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Start => "start",
            Source::File => "file",
            Source::Signal => "signal",
            Source::Api => "api",
            Source::Rollback => "rollback",
        }
    }
}

/// One applied version, as listed by `bulkhead config history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub version: u64,
    /// RFC 3339, UTC.
    pub applied_at: String,
    /// FNV-1a 64 of the text, in hex: equal texts have equal hashes.
    pub hash: String,
    pub source: Source,
    /// E.g. `rollback to version 3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The history directory and its size limit.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    dir: PathBuf,
    max: u32,
}

impl ConfigStore {
    /// The store under `<state_dir>/history` (created on first write).
    pub fn new(state_dir: &Path, max_history: u32) -> ConfigStore {
        ConfigStore { dir: state_dir.join("history"), max: max_history.max(1) }
    }

    pub fn set_max(&mut self, max_history: u32) {
        self.max = max_history.max(1);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves `text` as a new version unless it is exactly the newest one; returns the version
    /// the text now has, and prunes the oldest beyond `max_history`.
    pub fn record(&self, text: &str, source: Source, note: Option<String>) -> Result<Version, StoreError> {
        let hash = hash(text);
        let list = self.list();
        if let Some(last) = list.last() {
            if last.hash == hash && self.text(last.version).is_ok_and(|t| t == text) {
                return Ok(last.clone());
            }
        }
        fs::create_dir_all(&self.dir).map_err(|source| StoreError::Write { path: self.dir.clone(), source })?;
        let number = list.last().map_or(1, |v| v.version + 1);
        let version = Version { version: number, applied_at: rfc3339(SystemTime::now()), hash, source, note };
        write_file(&self.toml_path(number), text.as_bytes())?;
        let meta = serde_json::to_vec_pretty(&version).unwrap_or_default();
        write_file(&self.json_path(number), &meta)?;
        let excess = (list.len() + 1).saturating_sub(self.max as usize);
        for old in list.iter().take(excess) {
            let _ = fs::remove_file(self.toml_path(old.version));
            let _ = fs::remove_file(self.json_path(old.version));
        }
        Ok(version)
    }

    /// Every kept version, oldest first. Unreadable entries are skipped.
    pub fn list(&self) -> Vec<Version> {
        let Ok(entries) = fs::read_dir(&self.dir) else { return Vec::new() };
        let mut out: Vec<Version> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Version>(&b).ok())
            .filter(|v| self.toml_path(v.version).exists())
            .collect();
        out.sort_by_key(|v| v.version);
        out
    }

    /// The text of one version.
    pub fn text(&self, version: u64) -> Result<String, StoreError> {
        let path = self.toml_path(version);
        fs::read_to_string(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => StoreError::NoSuchVersion(version),
            _ => StoreError::Read { path, source },
        })
    }

    fn toml_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("v{version:06}.toml"))
    }

    fn json_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("v{version:06}.json"))
    }
}

/// Replaces `path` with `text` atomically: a temporary file beside it (same permissions as
/// the old file), fsync, rename, fsync of the directory. Readers see the old or the new file,
/// never a mix; the watcher sees one rename.
pub fn write_back(path: &Path, text: &str) -> Result<(), StoreError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{name}.bulkhead-{}.tmp", std::process::id()));
    let err = |source| StoreError::Write { path: path.to_path_buf(), source };
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        if let Ok(meta) = fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::state_dir::write_atomic(path, bytes).map_err(|e| match e {
        crate::state_dir::StateDirError::Write { path, source }
        | crate::state_dir::StateDirError::Create { path, source } => StoreError::Write { path, source },
        other => StoreError::Write { path: path.to_path_buf(), source: io::Error::other(other.to_string()) },
    })
}

/// FNV-1a 64 of `text`, as 16 hex digits: stable across versions of Rust, unlike `DefaultHasher`.
pub fn hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `2025-01-31T12:34:56Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let odt = time::OffsetDateTime::from(t);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    odt.format(&f).unwrap_or_default()
}

/// A line diff of two texts in unified style (`-` old, `+` new, ` ` both), with `context` lines
/// of context around each change; empty when they are equal. Quadratic, so inputs are capped.
pub fn line_diff(old: &str, new: &str, context: usize) -> String {
    const CAP: usize = 4000;
    let a: Vec<&str> = old.lines().take(CAP).collect();
    let b: Vec<&str> = new.lines().take(CAP).collect();
    // LCS table, suffix form.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, (k, _))| *k != ' ').map(|(n, _)| n).collect();
    let mut out = String::new();
    let mut last_printed: Option<usize> = None;
    for (n, (kind, line)) in ops.iter().enumerate() {
        let near = changed.iter().any(|c| c.abs_diff(n) <= context);
        if !near {
            continue;
        }
        if last_printed.is_some_and(|l| l + 1 < n) || (last_printed.is_none() && n > 0) {
            out.push_str("@@\n");
        }
        out.push(*kind);
        out.push_str(line);
        out.push('\n');
        last_printed = Some(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(label: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bulkhead-store-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn records_versions_skips_repeats_and_prunes() {
        let dir = temp("record");
        let store = ConfigStore::new(&dir, 2);
        assert_eq!(store.record("a = 1\n", Source::Start, None).unwrap().version, 1);
        assert_eq!(store.record("a = 1\n", Source::File, None).unwrap().version, 1);
        assert_eq!(store.record("a = 2\n", Source::Api, None).unwrap().version, 2);
        let v3 = store.record("a = 3\n", Source::Rollback, Some("rollback to version 1".into())).unwrap();
        assert_eq!(v3.version, 3);
        let list = store.list();
        assert_eq!(list.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(list[1].source, Source::Rollback);
        assert_eq!(store.text(2).unwrap(), "a = 2\n");
        assert!(matches!(store.text(1), Err(StoreError::NoSuchVersion(1))));
        // Numbers keep growing across a new store on the same directory (a restart).
        let again = ConfigStore::new(&dir, 2);
        assert_eq!(again.record("a = 4\n", Source::Start, None).unwrap().version, 4);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_back_replaces_the_file_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("writeback");
        let file = dir.join("bulkhead.toml");
        fs::write(&file, "old\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        write_back(&file, "new\n").unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "new\n");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_diff_shows_changes_with_context() {
        let d = line_diff("a\nb\nc\nd\ne\n", "a\nb\nC\nd\ne\n", 1);
        assert_eq!(d, "@@\n b\n-c\n+C\n d\n");
        assert_eq!(line_diff("x\n", "x\n", 3), "");
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(hash(""), "cbf29ce484222325");
        assert_ne!(hash("a"), hash("b"));
    }
}
