//! Hard limits per pool with cgroup v2 (issue #4 item 8): `limits = { memory, cpu, pids }`
//! become `memory.max`, `cpu.max` and `pids.max` of `<cgroupfs>/bulkhead/<pool>`, and every
//! worker of the pool is moved into that cgroup right after it is spawned.
//!
//! Called by the supervisor: [`Cgroups::detect`] once at start-up, [`Cgroups::prepare_pool`]
//! when a pool first starts a worker, [`Cgroups::add`] after each spawn and
//! [`Cgroups::remove_all`] at shutdown. Where cgroup v2 is not mounted or not writable (no
//! root, cgroup v1, a container without delegation) `detect` says why once and everything runs
//! without cgroups; a failure for one pool is reported and that pool runs without limits. It
//! never touches a cgroup outside `<cgroupfs>/bulkhead`.

use std::fs;
use std::path::{Path, PathBuf};

/// Where cgroup v2 is normally mounted.
pub const CGROUP_FS: &str = "/sys/fs/cgroup";
/// `cpu.max` period in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Bulkhead's cgroup subtree.
#[derive(Debug, Clone)]
pub struct Cgroups {
    root: PathBuf,
}

impl Cgroups {
    /// Creates `<fs>/bulkhead` and enables the memory, cpu and pids controllers for it and its
    /// children; `Err` says why cgroups cannot be used.
    pub fn detect(fs: &Path) -> Result<Cgroups, String> {
        let controllers = fs::read_to_string(fs.join("cgroup.controllers"))
            .map_err(|_| format!("cgroup v2 is not mounted at {}", fs.display()))?;
        let root = fs.join("bulkhead");
        fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let wanted: Vec<&str> =
            ["memory", "cpu", "pids"].into_iter().filter(|c| controllers.split_whitespace().any(|x| x == *c)).collect();
        let enable = wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
        for dir in [fs, root.as_path()] {
            let file = dir.join("cgroup.subtree_control");
            fs::write(&file, &enable).map_err(|e| format!("cannot enable {enable} in {}: {e}", file.display()))?;
        }
        Ok(Cgroups { root })
    }

    /// Creates (or updates) the pool's cgroup with its limits; returns its directory.
    pub fn prepare_pool(&self, pool: &str, limits: Option<&bulkhead_config::CgroupLimits>) -> Result<PathBuf, String> {
        let dir = self.root.join(pool);
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let l =
            limits.cloned().unwrap_or(bulkhead_config::CgroupLimits { memory: None, cpu_percent: None, pids: None });
        let memory = l.memory.map_or("max".to_string(), |m| m.to_string());
        let cpu = match l.cpu_percent {
            Some(p) => format!("{} {CPU_PERIOD_US}", u64::from(p) * CPU_PERIOD_US / 100),
            None => format!("max {CPU_PERIOD_US}"),
        };
        let pids = l.pids.map_or("max".to_string(), |p| p.to_string());
        for (file, value) in [("memory.max", memory), ("cpu.max", cpu), ("pids.max", pids)] {
            let path = dir.join(file);
            fs::write(&path, &value).map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))?;
        }
        Ok(dir)
    }

    /// Moves a process into a pool's cgroup.
    pub fn add(dir: &Path, pid: i32) -> Result<(), String> {
        let path = dir.join("cgroup.procs");
        fs::write(&path, pid.to_string()).map_err(|e| format!("cannot move pid {pid} into {}: {e}", dir.display()))
    }

    /// Removes the pools' (empty) cgroups and Bulkhead's own; errors are ignored (a cgroup
    /// with a process left in it stays).
    pub fn remove_all(&self) {
        if let Ok(entries) = fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
        let _ = fs::remove_dir(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_cgroup_v2_is_explained() {
        let e = Cgroups::detect(Path::new("/nonexistent-cgroupfs")).unwrap_err();
        assert!(e.contains("cgroup v2 is not mounted"), "{e}");
    }

    /// On a directory laid out like a cgroup v2 root (plain files: the kernel's side is not
    /// simulated), the limits are written in the kernel's formats.
    #[test]
    fn limits_are_written_in_cgroup_formats() {
        let fsdir = std::env::temp_dir().join(format!("bulkhead-cgroup-{}", std::process::id()));
        let _ = fs::remove_dir_all(&fsdir);
        fs::create_dir_all(&fsdir).unwrap();
        fs::write(fsdir.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        let cg = Cgroups::detect(&fsdir).unwrap();
        assert_eq!(fs::read_to_string(fsdir.join("cgroup.subtree_control")).unwrap(), "+memory +cpu +pids");
        let limits = bulkhead_config::CgroupLimits { memory: Some(1 << 30), cpu_percent: Some(150), pids: Some(256) };
        let dir = cg.prepare_pool("api", Some(&limits)).unwrap();
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(
            (read("memory.max"), read("cpu.max"), read("pids.max")),
            ("1073741824".into(), "150000 100000".into(), "256".into())
        );
        let dir = cg.prepare_pool("web", None).unwrap();
        assert_eq!(fs::read_to_string(dir.join("cpu.max")).unwrap(), "max 100000");
        Cgroups::add(&dir, 42).unwrap();
        assert_eq!(fs::read_to_string(dir.join("cgroup.procs")).unwrap(), "42");
        fs::remove_dir_all(&fsdir).unwrap();
    }
}
