//! Finding a pool's program the way `execvp` will in the worker — as the worker's user, with
//! the worker's `PATH` (issue #8 item 3).
//!
//! Called by [`crate::worker`] just before a worker is spawned (so the path handed to `execve`
//! is one the worker's user can run) and by [`crate::preflight`] when a configuration is
//! validated (so a pool that could never start is refused with the reason). Started as root,
//! `command = ["python3", …]` used to resolve on root's `PATH` to a per-user install in root's
//! home (a pyenv shim under `/root`, mode 0700) that user `nobody` cannot execute, and the pool
//! log said only `Permission denied (os error 13)`. Here every candidate on the `PATH` is tried
//! in order, as `execvp` does, and access is *computed for the pool's account* — uid, primary
//! and supplementary groups, search permission on every directory on the way (symbolic links
//! followed as the kernel follows them), the execute bit of the file, and for a `#!` script its
//! interpreter and read permission on the script. When nothing can run, the error names the
//! file, the user and the first thing in the way:
//! `command "python3" resolved to /root/.pyenv/shims/python3, which user "nobody" cannot
//! execute: /root is mode 0700 (owner root, group root)`.
//!
//! It never switches identity or calls `access(2)` (which would answer for the manager, not for
//! the pool's user) and never runs anything. POSIX ACLs and `noexec` mounts are not consulted:
//! the spawn itself still reports those. A path relative to the working directory is checked
//! from that directory (the worker changes into it before it drops privileges).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use bulkhead_config::PoolKind;
use nix::unistd::{Gid, Group, Uid, User};

use crate::identity::Account;

/// The `PATH` a worker gets when neither its pool's `env` nor the manager's environment sets
/// one (what `execvp` assumes, minus the current directory).
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Most symbolic links followed while resolving one path (the kernel's limit).
const MAX_LINKS: u32 = 40;
/// Most nested `#!` interpreters (the kernel's limit).
const MAX_INTERPRETERS: u32 = 4;

/// Why a pool's command cannot be run by its workers' user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A bare name no directory of the `PATH` holds.
    #[error(
        "command {program:?} is not found on the PATH the workers get ({path}); give its absolute path \
         or set env.PATH in the pool"
    )]
    NotFound { program: String, path: String },
    /// A path (with a `/`) that does not lead to a file.
    #[error("command {program:?} does not exist: {why}")]
    Missing { program: String, why: String },
    /// Found, but the workers' user cannot execute it.
    #[error("command {program:?} resolved to {}, which user {user:?} cannot execute: {why}", file.display())]
    Denied { program: String, file: PathBuf, user: String, why: String },
}

/// The pool's program and full argv: a bare `bulkhead` program is this executable; a `host`
/// pool without a command runs `bulkhead worker`. `None` when there is nothing to run.
pub fn command_line(pool: &bulkhead_config::Pool, self_exe: &Path) -> Option<(String, Vec<String>)> {
    let mut command = pool.command.clone();
    if command.is_empty() && pool.kind == PoolKind::Host {
        command = vec!["bulkhead".into(), "worker".into()];
    }
    let program = command.first()?;
    let program = if program == "bulkhead" { self_exe.display().to_string() } else { program.clone() };
    Some((program, command))
}

/// The `PATH` a pool's workers see: the pool's `env.PATH`, else the one they inherit from the
/// manager's environment (`inherited`), else [`DEFAULT_PATH`].
pub fn worker_path<'a>(pool: &'a bulkhead_config::Pool, inherited: Option<&'a OsStr>) -> &'a OsStr {
    pool.env.get("PATH").map(OsStr::new).or(inherited).unwrap_or(OsStr::new(DEFAULT_PATH))
}

/// Finds `program` as `execvp` would in a worker running as `who` in directory `cwd` with
/// `path` as its `PATH`: a name with a `/` is taken as it is (relative to `cwd`); a bare name is
/// looked up in each `PATH` directory in turn, skipping candidates that do not exist or that
/// `who` cannot execute. Returns the path to hand to `execve`.
pub fn resolve(program: &str, path: &OsStr, cwd: &Path, who: &Account) -> Result<PathBuf, CommandError> {
    if program.contains('/') {
        return match executable(Path::new(program), cwd, who, 0) {
            Ok(_) => Ok(PathBuf::from(program)),
            Err(Problem::Missing(why)) => Err(CommandError::Missing { program: program.into(), why }),
            Err(Problem::Denied(why)) => {
                let file = cwd.join(program);
                Err(CommandError::Denied { program: program.into(), file, user: who.name.clone(), why })
            }
        };
    }
    let mut denied = None;
    for dir in std::env::split_paths(path) {
        let candidate = dir.join(program);
        match executable(&candidate, cwd, who, 0) {
            Ok(_) => return Ok(candidate),
            Err(Problem::Missing(_)) => {}
            Err(Problem::Denied(why)) => {
                denied.get_or_insert((candidate, why));
            }
        }
    }
    Err(match denied {
        Some((file, why)) => CommandError::Denied { program: program.into(), file, user: who.name.clone(), why },
        None => CommandError::NotFound { program: program.into(), path: path.to_string_lossy().into_owned() },
    })
}

/// What stops a path from being run.
#[derive(Debug)]
enum Problem {
    /// Nothing there (`execvp` moves on to the next `PATH` directory).
    Missing(String),
    /// Something there that `who` may not run.
    Denied(String),
}

impl Problem {
    fn map(self, f: impl FnOnce(String) -> String) -> Problem {
        match self {
            Problem::Missing(why) | Problem::Denied(why) => Problem::Denied(f(why)),
        }
    }
}

/// Checks that `who` can execute `path` (relative paths from `cwd`); returns the real file.
fn executable(path: &Path, cwd: &Path, who: &Account, depth: u32) -> Result<PathBuf, Problem> {
    let real = walk(path, cwd, who)?;
    let meta = fs::metadata(&real).map_err(|e| Problem::Missing(format!("cannot inspect {}: {e}", real.display())))?;
    if meta.is_dir() {
        return Err(Problem::Denied(format!("{} is a directory", real.display())));
    }
    if !meta.is_file() {
        return Err(Problem::Denied(format!("{} is not a regular file", real.display())));
    }
    if !allows(&meta, who, Access::Execute) {
        return Err(Problem::Denied(format!(
            "{} is mode {}, which gives this user no execute permission",
            real.display(),
            describe(&meta)
        )));
    }
    if let Some(interpreter) = interpreter(&real) {
        if !allows(&meta, who, Access::Read) {
            return Err(Problem::Denied(format!(
                "{} is a #! script its interpreter must read, and is mode {}, which gives this user no read permission",
                real.display(),
                describe(&meta)
            )));
        }
        if depth >= MAX_INTERPRETERS {
            return Err(Problem::Denied(format!("{}: too many nested #! interpreters", real.display())));
        }
        executable(&interpreter, Path::new("/"), who, depth + 1).map_err(|p| {
            p.map(|why| format!("its interpreter {} (from its #! line) cannot run: {why}", interpreter.display()))
        })?;
    }
    Ok(real)
}

/// One step of a path walk.
enum Step {
    Root,
    Up,
    Name(OsString),
}

fn steps(path: &Path) -> VecDeque<Step> {
    path.components()
        .filter_map(|c| match c {
            Component::RootDir | Component::Prefix(_) => Some(Step::Root),
            Component::ParentDir => Some(Step::Up),
            Component::CurDir => None,
            Component::Normal(name) => Some(Step::Name(name.to_os_string())),
        })
        .collect()
}

/// Walks `path` component by component as the kernel does for `who`: search permission on each
/// directory looked into, symbolic links followed. Returns the path with every link resolved.
fn walk(path: &Path, cwd: &Path, who: &Account) -> Result<PathBuf, Problem> {
    let mut current = if path.is_absolute() { PathBuf::from("/") } else { cwd.to_path_buf() };
    let mut todo = steps(path);
    let mut links = 0;
    while let Some(step) = todo.pop_front() {
        let name = match step {
            Step::Root => {
                current = PathBuf::from("/");
                continue;
            }
            Step::Up => {
                current.pop();
                continue;
            }
            Step::Name(name) => name,
        };
        searchable(&current, who)?;
        let next = current.join(&name);
        let meta = match fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Problem::Missing(format!("{} does not exist", next.display())));
            }
            Err(e) => return Err(Problem::Missing(format!("cannot inspect {}: {e}", next.display()))),
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(Problem::Denied(format!("{}: too many levels of symbolic links", path.display())));
            }
            let target = fs::read_link(&next)
                .map_err(|e| Problem::Missing(format!("cannot read the link {}: {e}", next.display())))?;
            let mut expanded = steps(&target);
            expanded.extend(todo.drain(..));
            todo = expanded;
            continue;
        }
        current = next;
    }
    Ok(current)
}

/// Why `who` could not serve files from directory `dir` (search every directory on the way,
/// and `dir` itself; read it too when `list`, for directory listings), if it could not. A
/// missing directory is not reported here (the configuration's own check names it).
pub fn directory_problem(dir: &Path, who: &Account, list: bool) -> Option<String> {
    let problem = match walk(dir, Path::new("/"), who) {
        Ok(resolved) => match searchable(&resolved, who) {
            Err(problem) => problem,
            Ok(()) => {
                let meta = fs::metadata(&resolved).ok()?;
                if !list || allows(&meta, who, Access::Read) {
                    return None;
                }
                Problem::Denied(format!("{} is mode {} (no read for listings)", resolved.display(), describe(&meta)))
            }
        },
        Err(problem) => problem,
    };
    match problem {
        Problem::Denied(why) => Some(format!("user {:?} cannot reach {}: {why}", who.name, dir.display())),
        Problem::Missing(_) => None,
    }
}

/// Why `who` could not read `file` (search every directory on the way, read the file), if it
/// could not. A missing file is not reported here.
pub fn file_problem(file: &Path, who: &Account) -> Option<String> {
    match walk(file, Path::new("/"), who) {
        Ok(resolved) => {
            let meta = fs::metadata(&resolved).ok()?;
            (!allows(&meta, who, Access::Read))
                .then(|| format!("user {:?} cannot read {}: it is mode {}", who.name, file.display(), describe(&meta)))
        }
        Err(Problem::Denied(why)) => Some(format!("user {:?} cannot reach {}: {why}", who.name, file.display())),
        Err(Problem::Missing(_)) => None,
    }
}

/// `who` may look up names in directory `dir`.
fn searchable(dir: &Path, who: &Account) -> Result<(), Problem> {
    let meta = fs::metadata(dir).map_err(|e| Problem::Missing(format!("cannot inspect {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(Problem::Missing(format!("{} is not a directory", dir.display())));
    }
    if !allows(&meta, who, Access::Execute) {
        return Err(Problem::Denied(format!("{} is mode {}", dir.display(), describe(&meta))));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Access {
    Read = 4,
    Execute = 1,
}

/// The classic permission check for `who`: root reads everything, searches every directory and
/// executes a file with any execute bit; anyone else gets the owner, else group, else other
/// bits (only the first class that matches counts, as in the kernel).
fn allows(meta: &Metadata, who: &Account, access: Access) -> bool {
    let mode = meta.permissions().mode();
    if who.uid == 0 {
        return match access {
            Access::Read => true,
            Access::Execute => meta.is_dir() || mode & 0o111 != 0,
        };
    }
    let shift = if meta.uid() == who.uid {
        6
    } else if meta.gid() == who.gid || who.groups.contains(&meta.gid()) {
        3
    } else {
        0
    };
    (mode >> shift) & access as u32 != 0
}

/// `0700 (owner root, group root)`.
fn describe(meta: &Metadata) -> String {
    let owner = User::from_uid(Uid::from_raw(meta.uid())).ok().flatten().map_or(meta.uid().to_string(), |u| u.name);
    let group = Group::from_gid(Gid::from_raw(meta.gid())).ok().flatten().map_or(meta.gid().to_string(), |g| g.name);
    format!("{:04o} (owner {owner}, group {group})", meta.permissions().mode() & 0o7777)
}

/// The interpreter named by a `#!` line, when `file` starts with one (read with the manager's
/// rights; only the first line matters).
fn interpreter(file: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = fs::File::open(file).and_then(|mut f| f.read(&mut head)).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let interpreter = text.split_whitespace().next()?;
    Some(PathBuf::from(interpreter))
}

#[cfg(test)]
mod tests;
