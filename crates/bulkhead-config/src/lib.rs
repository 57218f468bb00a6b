//! Bulkhead's configuration (the "metabase", DESIGN §5): the TOML file operators write, its
//! documented defaults, and its validation into a [`Config`] the other roles act on.
//!
//! - [`raw`]: serde types mirroring the file, each field documented with its default;
//! - [`model`]: the validated, path-resolved configuration;
//! - [`mime`]: the built-in MIME map and the media-type syntax a site's `mime_types` is held to;
//! - [`units`]: durations and sizes as written in the file;
//! - [`pattern`]: the patterns and address blocks of a route's `match` conditions;
//! - `schema` + `validate`: every check, each error with file:line:column, key path and what
//!   is expected;
//! - [`diff`]: old config → new config as a list of [`Change`]s the manager applies (start-up
//!   is `diff(&Config::empty(), &new)`, so there is one path).
//!
//! [`check`] takes the text of a whole file (the manager reads the file; this crate only
//! touches the filesystem to check that referenced directories and files exist) and returns
//! the config with its warnings; [`parse`] does the same for text that need not define a site.
//! A file with any error is refused whole, every error reported. This crate never reads the
//! environment or argv.
#![forbid(unsafe_code)]

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::DeTable;

use keypath::KeyPath;

mod diff;
mod keypath;
pub mod mime;
pub mod model;
pub mod pattern;
pub mod raw;
mod schema;
pub mod units;
mod validate;

pub use diff::{diff, Change};
pub use model::*;
pub use validate::{absolute, parse_binding};

/// One problem in a config file: where, which key, what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name, or `<embedded default>`.
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path, e.g. `pools.api.idle_timeout` or `sites[0].routes[1].pool`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in a config file; the file is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses and validates config text. `file` names it in errors; `base_dir` anchors relative
/// paths (the config file's directory, or the working directory for the embedded default).
///
/// Unlike [`check`], it takes a file with no site: it is for text already checked whole (the
/// listener's copy of the manager's config) and for tests of one part. Anything that decides
/// whether a file may be served — start-up, reload, `config check` — calls [`check`].
pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    validated(text, file, base_dir, false).map(|c| c.config)
}

/// [`parse`] for text a process that could see the files has checked whole (the manager), by
/// one that may not see them all (the listener, running as `listener_user`): the file-system
/// checks — a static root exists, an extension library is readable — are not repeated, and an
/// error page it cannot read is left out (that status gets the plain answer; the manager's
/// preflight warns about it). Without this, a root under a directory `nobody` cannot search
/// stopped the listener from starting at all.
pub fn parse_trusted(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    validated(text, file, base_dir, true).map(|c| c.config)
}

/// A valid configuration and the warnings about it: things that work but are probably not
/// what the operator meant (an `orphan.action` while orphaning is off), and every key written
/// in the file that this version parses but does not act on yet (none today), each naming its key and position.
/// `bulkhead config check` prints them; the manager logs them at start-up and on each reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub config: Config,
    pub warnings: Vec<ConfigError>,
}

impl Checked {
    /// The warnings, in file order (the same text `bulkhead config check` prints after
    /// `warning: `).
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }
}

/// Validates a whole config file, keeping the warnings: [`parse`], and a file must define at
/// least one site (an empty file, as an editor leaves it for a moment, would otherwise be
/// applied live as "remove every site"). Errors come in the order they appear in the file:
/// TOML syntax errors alone (nothing else can be trusted then), else every unknown key, wrong
/// type and missing key together with every semantic error that does not follow from one of
/// those.
pub fn check(text: &str, file: &str, base_dir: &Path) -> Result<Checked, ConfigErrors> {
    let checked = validated(text, file, base_dir, false);
    let no_site = match &checked {
        Ok(c) => c.config.sites.is_empty(),
        Err(_) => false,
    };
    if !no_site {
        return checked;
    }
    let blank = text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    let what = if blank { "the file is empty" } else { "the file defines no site" };
    Err(ConfigErrors(vec![ConfigError {
        file: file.into(),
        line: None,
        column: None,
        key: "sites".into(),
        message: format!(
            "{what}; a configuration needs at least one [[sites]] table with a name and bindings (name = \"main\", bindings = [\"http://*:8080\"]); a server already running keeps its configuration"
        ),
    }]))
}

fn validated(text: &str, file: &str, base_dir: &Path, trusted: bool) -> Result<Checked, ConfigErrors> {
    let at = |span: Option<Range<usize>>, key: String, message: String| {
        let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
        ConfigError { file: file.into(), line, column, key, message }
    };
    let (mut doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(sorted(syntax.into_iter().map(|e| at(e.span(), String::new(), syntax_message(&e))).collect()));
    }
    let problems = schema::check(&mut doc);
    let mut errors: Vec<ConfigError> =
        problems.iter().map(|p| at(Some(p.span.clone()), p.path.to_string(), p.message.clone())).collect();
    let raw = match raw::RawConfig::deserialize(toml::de::Deserializer::from(doc.clone())) {
        Ok(raw) => raw,
        Err(e) => {
            errors.push(at(e.span(), String::new(), e.message().trim().to_string()));
            return Err(sorted(errors));
        }
    };
    let mut checker = validate::Checker::new(base_dir, trusted);
    let config = validate::validate(raw, &mut checker);
    let tree = doc.get_ref();
    let locate = |e: validate::Found| {
        let path = KeyPath::parse(&e.key);
        (at(keypath::locate(tree, &path), e.key, e.message), path)
    };
    for (e, path) in checker.errors.into_iter().map(locate) {
        if !problems.iter().any(|p| p.path.overlaps(&path)) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        let warnings = checker
            .warnings
            .into_iter()
            .filter(|w| !w.only_if_written || keypath::exists(tree, &KeyPath::parse(&w.key)))
            .map(|w| locate(w).0)
            .collect();
        let warnings = sorted(warnings).0;
        Ok(Checked { config, warnings })
    } else {
        Err(sorted(errors))
    }
}

/// Where a server started with this text keeps its state and admin socket, read leniently:
/// `[server] state_dir` and `admin_socket` when they are written as strings, whatever else in
/// the file is wrong (a syntax error elsewhere, an unknown key, no site), else their defaults,
/// resolved as [`check`] resolves them. For the CLI, which must still find a running server
/// while its file does not validate. Returns `(state_dir, admin_socket)`.
pub fn server_paths_leniently(text: &str, base_dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (doc, _) = DeTable::parse_recoverable(text);
    let server = doc.get_ref().get("server").and_then(|v| v.get_ref().as_table());
    let string = |key: &str, default: &str| {
        let value = server.and_then(|t| t.get(key)).and_then(|v| v.get_ref().as_str());
        value.filter(|v| !v.is_empty()).unwrap_or(default).to_string()
    };
    let defaults = raw::RawServer::default();
    let state_dir = absolute(base_dir, &string("state_dir", &defaults.state_dir));
    let admin_socket = absolute(&state_dir, &string("admin_socket", &defaults.admin_socket));
    (state_dir, admin_socket)
}

/// A [`ConfigError`] about the key `path` (e.g. `["pools", "api", "command"]`) of a valid
/// `text`, located the way this crate locates its own errors (the deepest part of the path the
/// file spells out). For checks made outside this crate, on facts this crate does not read:
/// the manager's preflight (users, groups, commands as the pool's user).
pub fn error_at(text: &str, file: &str, path: &[&str], message: String) -> ConfigError {
    let path = KeyPath(path.iter().map(|k| keypath::Seg::Key((*k).to_string())).collect());
    let span = DeTable::parse(text).ok().and_then(|doc| keypath::locate(doc.get_ref(), &path));
    let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
    ConfigError { file: file.into(), line, column, key: path.to_string(), message }
}

/// [`error_at`] for a key written as this crate writes keys in its messages, with indices:
/// `sites[0].tls.cert` (the manager's TLS checks).
pub fn error_at_key(text: &str, file: &str, key: &str, message: String) -> ConfigError {
    let path = KeyPath::parse(key);
    let span = DeTable::parse(text).ok().and_then(|doc| keypath::locate(doc.get_ref(), &path));
    let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
    ConfigError { file: file.into(), line, column, key: path.to_string(), message }
}

/// toml's message for a syntax error, with what to do where it is terse.
fn syntax_message(e: &toml::de::Error) -> String {
    match e.message().trim() {
        "duplicate key" => "duplicate key: it is already defined above; each key and [table] may appear once".into(),
        other => other.to_string(),
    }
}

/// Errors in file order; any without a position last.
fn sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
    ConfigErrors(errors)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
