//! Who each process runs as (DESIGN §1, issue #4 item 8): pool workers as their pool's
//! `user`/`group`, the listener as `server.listener_user` — both only when the manager runs as
//! root; otherwise everything simply runs as the user who started the server.
//!
//! Called by the supervisor when it starts the listener and each pool's workers, and by
//! [`crate::worker`] for credentials. Like IIS, which never ran application pools as SYSTEM by
//! default, a manager running as root **refuses to run a pool as root** unless the pool says
//! `user = "root"` ([`check_pool`]). The listener's worker sockets and log directories are
//! handed to the listener's user ([`ListenerIdentity`]) so it can reach and write them after it
//! drops its privileges. Switching happens in the forked child before `exec`
//! ([`crate::spawn`]); this module only resolves names and changes file ownership.
//! [`Account`] names who a pool's workers run as, for the access checks of [`crate::command`];
//! [`crate::preflight`] runs [`check_pool`] and the name lookups when a config is validated,
//! so a pool that could never start is refused before it is applied.

use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User};

use crate::spawn::Credentials;

/// Whether the manager runs as root (effective uid 0).
pub fn running_as_root() -> bool {
    Uid::effective().is_root()
}

/// Resolves `user` (and `group`, else the user's primary group) to ids with the user's
/// supplementary groups.
pub fn resolve(user: &str, group: Option<&str>) -> Result<Credentials, String> {
    let u = User::from_name(user)
        .map_err(|e| format!("cannot look up user {user:?}: {e}"))?
        .ok_or_else(|| format!("user {user:?} does not exist"))?;
    let gid = match group {
        Some(name) => resolve_group(name)?,
        None => u.gid,
    };
    let groups = std::ffi::CString::new(u.name.clone())
        .ok()
        .and_then(|n| nix::unistd::getgrouplist(&n, gid).ok())
        .unwrap_or_else(|| vec![gid]);
    Ok(Credentials { uid: u.uid.as_raw(), gid: gid.as_raw(), groups: groups.into_iter().map(|g| g.as_raw()).collect() })
}

/// Resolves a group name.
pub fn resolve_group(name: &str) -> Result<Gid, String> {
    Ok(Group::from_name(name)
        .map_err(|e| format!("cannot look up group {name:?}: {e}"))?
        .ok_or_else(|| format!("group {name:?} does not exist"))?
        .gid)
}

/// The credentials of a pool's workers: `None` when the manager is not root (they run as its
/// user). As root, a pool without `user` is refused unless `allow_root` (see [`check_pool`]);
/// with `allow_root` it runs as root, with only `group` as root in that group.
pub fn pool_credentials(pool: &bulkhead_config::Pool, allow_root: bool) -> Result<Option<Credentials>, String> {
    if !running_as_root() {
        return Ok(None);
    }
    check_pool(pool, true, allow_root)?;
    match (&pool.user, &pool.group) {
        (Some(user), group) => resolve(user, group.as_deref()).map(Some),
        (None, Some(group)) => Ok(Some(Credentials { uid: 0, gid: resolve_group(group)?.as_raw(), groups: vec![] })),
        (None, None) => Ok(None),
    }
}

/// Refuses a pool that would run as root without saying so: the message names the key to set.
/// A pool that `connect`s to a FastCGI server it does not run starts no process, so it runs
/// nothing as anyone (its `user` is warned about at validation, never required).
pub fn check_pool(pool: &bulkhead_config::Pool, as_root: bool, allow_root: bool) -> Result<(), String> {
    if as_root && pool.user.is_none() && !allow_root && pool.connect.is_none() {
        let name = &pool.name;
        return Err(format!(
            "pool {name:?}: refusing to run its workers as root: set user = \"<an unprivileged user>\" in \
             [pools.{name}] (or user = \"root\" to run them as root on purpose)"
        ));
    }
    Ok(())
}

/// Who a pool's workers run as, by name and ids: what [`crate::command`] computes file access
/// for (a manager running as root checks as the pool's user, never with its own rights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user name as the operator wrote it (or as the password database has it).
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Supplementary groups.
    pub groups: Vec<libc::gid_t>,
}

impl Account {
    /// Root: may search every directory and run every file with an execute bit.
    pub fn root() -> Account {
        Account { name: "root".into(), uid: 0, gid: 0, groups: Vec::new() }
    }

    /// This process's own identity: a manager not running as root runs every worker as itself.
    pub fn current() -> Account {
        let (uid, gid) = (Uid::effective(), Gid::effective());
        let name = User::from_uid(uid).ok().flatten().map_or_else(|| format!("uid {uid}"), |u| u.name);
        let groups = nix::unistd::getgroups().unwrap_or_default().into_iter().map(|g| g.as_raw()).collect();
        Account { name, uid: uid.as_raw(), gid: gid.as_raw(), groups }
    }

    /// The account `pool`'s workers get with `credentials` (from [`pool_credentials`]; `None`
    /// means they keep the manager's own identity).
    pub fn of_worker(pool: &bulkhead_config::Pool, credentials: Option<&Credentials>) -> Account {
        match credentials {
            Some(c) => Account {
                name: pool.user.clone().unwrap_or_else(|| "root".into()),
                uid: c.uid,
                gid: c.gid,
                groups: c.groups.clone(),
            },
            None => Account::current(),
        }
    }

    /// The account from resolved credentials of user `name`.
    pub fn from_credentials(name: &str, c: Credentials) -> Account {
        Account { name: name.to_string(), uid: c.uid, gid: c.gid, groups: c.groups }
    }
}

/// The user the listener runs as, and what it must be able to reach.
#[derive(Debug, Clone)]
pub struct ListenerIdentity {
    pub user: String,
    pub credentials: Credentials,
}

impl ListenerIdentity {
    /// `Some` when the manager is root and `listener_user` is not root.
    pub fn for_server(listener_user: &str) -> Result<Option<ListenerIdentity>, String> {
        if !running_as_root() || listener_user == "root" {
            return Ok(None);
        }
        let credentials = resolve(listener_user, None).map_err(|e| format!("server.listener_user: {e}"))?;
        Ok(Some(ListenerIdentity { user: listener_user.to_string(), credentials }))
    }

    /// Gives the listener what it needs after dropping privileges: the sockets directory (to
    /// reach worker sockets), the directory it spools request bodies to, and the log directory
    /// with its `sites/` and `HTTPERR/` trees (to write access and error logs). Pool logs stay
    /// the manager's.
    pub fn prepare_dirs(&self, sockets: &Path, body_temp: &Path, log_dir: &Path) -> Result<(), String> {
        self.chown(sockets)?;
        self.chown(body_temp)?;
        self.chown(log_dir)?;
        for sub in ["sites", "HTTPERR"] {
            let dir = log_dir.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            self.chown_tree(&dir)?;
        }
        Ok(())
    }

    /// Hands a worker socket file to the listener's user (it stays mode 0600).
    pub fn chown(&self, path: &Path) -> Result<(), String> {
        let (uid, gid) = (Some(Uid::from_raw(self.credentials.uid)), Some(Gid::from_raw(self.credentials.gid)));
        nix::unistd::chown(path, uid, gid)
            .map_err(|e| format!("cannot give {} to the listener user {:?}: {e}", path.display(), self.user))
    }

    fn chown_tree(&self, dir: &Path) -> Result<(), String> {
        self.chown(dir)?;
        for entry in std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => self.chown_tree(&path)?,
                Ok(t) if t.is_file() => self.chown(&path)?,
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(user: Option<&str>) -> bulkhead_config::Pool {
        let text = "[pools.api]\ncommand = [\"x\"]\n";
        let mut p = bulkhead_config::parse(text, "t", Path::new("/")).unwrap().pools.remove("api").unwrap();
        p.user = user.map(str::to_string);
        p
    }

    #[test]
    fn root_without_user_is_refused_with_the_key_to_set() {
        let e = check_pool(&pool(None), true, false).unwrap_err();
        assert!(e.contains("refusing to run its workers as root") && e.contains("[pools.api]"), "{e}");
        assert!(check_pool(&pool(Some("root")), true, false).is_ok());
        assert!(check_pool(&pool(Some("www-data")), true, false).is_ok());
        assert!(check_pool(&pool(None), false, false).is_ok(), "not root: runs as whoever started it");
        assert!(check_pool(&pool(None), true, true).is_ok(), "explicitly allowed by the binary");
    }

    #[test]
    fn a_pool_that_connects_to_a_server_it_does_not_run_needs_no_user() {
        let text = "[pools.php]\nkind = \"fastcgi\"\nconnect = \"/run/php/fpm.sock\"\n";
        let p = bulkhead_config::parse(text, "t", Path::new("/")).unwrap().pools.remove("php").unwrap();
        assert!(check_pool(&p, true, false).is_ok(), "it starts no process as root");
    }

    #[test]
    fn users_resolve_with_their_groups() {
        let root = resolve("root", None).unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(resolve("no-such-user-bulkhead", None).unwrap_err().contains("does not exist"));
        assert!(resolve("root", Some("no-such-group-bulkhead")).unwrap_err().contains("does not exist"));
    }
}
