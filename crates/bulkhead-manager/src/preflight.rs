//! Preflight: the checks on a configuration that need this machine — its users, groups and
//! files — made when the configuration is validated, before anything is applied (issue #8
//! items 1, 3 and 8). A pool that can never start under it is an error in the configuration,
//! as PHP-FPM treats it: `serve` stops at start-up with the message on the terminal, a live
//! reload is refused whole (the running configuration stays), and `bulkhead config check`
//! reports the same thing before start-up.
//!
//! [`validate`] is the one entry point: the config crate's own validation, then [`check`].
//! Called by [`crate::run`] at start-up, by the supervisor's `apply_config` for every reload,
//! and by the binary's `config check`. Per pool it refuses:
//! - started as root, a pool without `user` (unless the binary allows root workers), a
//!   `user` or `group` that does not exist, a `server.listener_user` that does not exist;
//! - a command that is not found on the PATH its workers get, or that their user cannot
//!   execute ([`crate::command`] says which file, which user, and what is in the way);
//! - per https site, a certificate or key that cannot be served ([`crate::tls`]: unreadable,
//!   no PEM certificate or key, a key that does not match, names that miss a binding's host);
//!   an expired certificate is a warning;
//! - `[acme] ca_file` that cannot be read or holds no PEM certificate.
//!
//! Not running as root, `user` and `group` do not apply (workers run as whoever started the
//! server): a value that is set is reported as a warning, never silently dropped. This module
//! only reads (the password database, file metadata, the first bytes of a `#!` script); it
//! never changes anything and never starts a process.

use std::ffi::OsStr;
use std::path::Path;

use bulkhead_config::{Checked, Config, ConfigError, ConfigErrors, Pool};

use crate::command;
use crate::identity::{self, Account};
use crate::ManagerOptions;

/// What the checks need to know about the server that would run the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    /// The server runs as root: pools switch to their `user`, the listener to `listener_user`.
    pub as_root: bool,
    /// Started as root, pools without `user` run as root instead of being refused
    /// ([`ManagerOptions::allow_root_workers`], `BULKHEAD_ALLOW_ROOT_WORKERS=1`).
    pub allow_root_workers: bool,
    /// `PATH` in the environment workers inherit, used when a pool's `env` sets none.
    pub inherited_path: Option<&'a OsStr>,
    /// This executable: a pool command `bulkhead` runs it (exec'd through an fd, so any pool
    /// user reaches it).
    pub self_exe: &'a Path,
}

impl<'a> Host<'a> {
    /// The server `options` describe, as this process runs.
    pub fn of(options: &'a ManagerOptions) -> Host<'a> {
        let inherited_path = options.env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_os_str());
        Host {
            as_root: identity::running_as_root(),
            allow_root_workers: options.allow_root_workers,
            inherited_path,
            self_exe: &options.self_exe,
        }
    }
}

/// What [`check`] found: errors refuse the configuration, warnings are printed and logged.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

/// Validates `text` as `serve` does: [`bulkhead_config::check`], then [`check`] on the result.
/// Any error refuses the whole text; the warnings of both are kept.
pub fn validate(text: &str, file: &str, base_dir: &Path, host: &Host<'_>) -> Result<Checked, ConfigErrors> {
    let mut checked = bulkhead_config::check(text, file, base_dir)?;
    let findings = check(&checked.config, text, file, host);
    if !findings.errors.is_empty() {
        return Err(ConfigErrors(findings.errors));
    }
    checked.warnings.extend(findings.warnings);
    Ok(checked)
}

/// Every machine-dependent check of a valid `config` (whose text is `text`, named `file`).
pub fn check(config: &Config, text: &str, file: &str, host: &Host<'_>) -> Findings {
    let mut out = Findings::default();
    let mut report = |error: bool, path: &[&str], message: String| {
        let e = bulkhead_config::error_at(text, file, path, message);
        if error {
            out.errors.push(e);
        } else {
            out.warnings.push(e);
        }
    };
    let listener_user = config.server.listener_user.as_str();
    if host.as_root && listener_user != "root" {
        if let Err(e) = identity::resolve(listener_user, None) {
            report(true, &["server", "listener_user"], format!("the listener cannot run as its user: {e}"));
        }
    }
    for (name, pool) in &config.pools {
        let who = account(name, pool, host, &mut report);
        if let Some(message) = command_problem(pool, host, &who) {
            report(true, &["pools", name, "command"], format!("pool {name:?}: {message}"));
        }
    }
    if let Some(path) = &config.acme.ca_file {
        if let Some(problem) = ca_file_problem(path) {
            report(
                true,
                &["acme", "ca_file"],
                format!(
                    "{}: {problem}; expected a PEM file of CA certificates to trust for [acme] directory",
                    path.display()
                ),
            );
        }
    }
    for (i, site) in crate::tls::tls_sites(config) {
        match crate::tls::load(i, site) {
            Ok(loaded) => out.warnings.extend(
                loaded
                    .warnings
                    .into_iter()
                    .map(|w| bulkhead_config::error_at_key(text, file, &format!("sites[{i}].tls.cert"), w)),
            ),
            Err(e) => out.errors.push(bulkhead_config::error_at_key(text, file, e.key(), e.to_string())),
        }
    }
    let listener = if host.as_root && listener_user != "root" {
        identity::resolve(listener_user, None).ok().map(|c| Account::from_credentials(listener_user, c))
    } else {
        Some(Account::current())
    };
    if let Some(listener) = &listener {
        static_root_problems(config, listener, &mut |key, message| {
            out.warnings.push(bulkhead_config::error_at_key(text, file, &key, message))
        });
    }
    out
}

/// Static roots, `execute = "cgi"` roots (and error pages) the listener's account cannot serve from (a warning each: the file system may
/// change without the configuration; until it does, the listener answers 403 there and names the
/// path once in its log). Started as root, the listener runs as `listener_user`, and a root
/// under a home directory of mode 0700 is the usual way to meet this.
fn static_root_problems(config: &Config, listener: &Account, report: &mut impl FnMut(String, String)) {
    for (i, site) in config.sites.iter().enumerate() {
        for (status, page) in &site.error_pages {
            if let Some(problem) = command::file_problem(&page.path, listener) {
                report(
                    format!("sites[{i}].error_pages.{status}"),
                    format!("the listener cannot read this page ({problem}); status {status} gets the plain answer"),
                );
            }
        }
        for (j, route) in site.routes.iter().enumerate() {
            // An execute = "cgi" route's programs are found by the listener too (it resolves
            // them under the root before the host runs one).
            let (root, listing) = match &route.action {
                bulkhead_config::RouteAction::Static(s) => (&s.root, s.directory_browsing),
                bulkhead_config::RouteAction::Pool(p) => match (&p.root, p.execute) {
                    (Some(root), Some(bulkhead_config::Execute::Cgi)) => (root, false),
                    _ => continue,
                },
                _ => continue,
            };
            if let Some(problem) = command::directory_problem(root, listener, listing) {
                report(
                    format!("sites[{i}].routes[{j}].root"),
                    format!("the listener cannot serve this route's files ({problem}); requests to it will get 403"),
                );
            }
        }
    }
}

/// Why `[acme] ca_file` cannot serve as extra roots, if it cannot.
fn ca_file_problem(path: &Path) -> Option<String> {
    use rustls_pki_types::pem::PemObject;
    let pem = match std::fs::read(path) {
        Ok(p) => p,
        Err(e) => return Some(format!("cannot be read ({e})")),
    };
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem).filter(Result::is_ok).count();
    (certs == 0).then(|| "holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")".to_string())
}

/// The account `pool`'s workers would run as, reporting what stands in the way. When it
/// cannot be known (a user that does not exist), root's: the command is then still checked
/// for existence.
fn account(name: &str, pool: &Pool, host: &Host<'_>, report: &mut impl FnMut(bool, &[&str], String)) -> Account {
    if !host.as_root {
        let me = Account::current();
        for (key, value) in [("user", &pool.user), ("group", &pool.group)] {
            let Some(value) = value.as_ref().filter(|v| !(key == "user" && **v == me.name)) else { continue };
            let exists = if key == "user" {
                identity::resolve(value, None).map(drop)
            } else {
                identity::resolve_group(value).map(drop)
            };
            let state = exists.err().map_or(String::new(), |e| format!(" ({e})"));
            report(
                false,
                &["pools", name, key],
                format!(
                    "pool {name:?}: {key} = {value:?}{state} applies only when the server starts as root; \
                     its workers run as {:?}, the user running the server",
                    me.name
                ),
            );
        }
        return me;
    }
    if let Err(e) = identity::check_pool(pool, true, host.allow_root_workers) {
        report(true, &["pools", name], e);
    }
    let mut group_ok = true;
    if let Some(group) = &pool.group {
        if let Err(e) = identity::resolve_group(group) {
            report(true, &["pools", name, "group"], format!("pool {name:?}: its workers cannot run: {e}"));
            group_ok = false;
        }
    }
    let Some(user) = &pool.user else { return Account::root() };
    match identity::resolve(user, pool.group.as_deref().filter(|_| group_ok)) {
        Ok(c) if group_ok => Account::from_credentials(user, c),
        Ok(_) => Account::root(),
        Err(e) => {
            report(true, &["pools", name, "user"], format!("pool {name:?}: its workers cannot run: {e}"));
            Account::root()
        }
    }
}

/// Why `who` could not run `pool`'s command, if it could not.
fn command_problem(pool: &Pool, host: &Host<'_>, who: &Account) -> Option<String> {
    let (program, _) = command::command_line(pool, host.self_exe)?;
    if Path::new(&program) == host.self_exe {
        return None;
    }
    let path = command::worker_path(pool, host.inherited_path);
    command::resolve(&program, path, &pool.directory, who).err().map(|e| e.to_string())
}

#[cfg(test)]
mod tests;
