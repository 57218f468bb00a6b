//! Bulkhead's configuration (the "metabase", DESIGN §5): the TOML file operators write, its
//! documented defaults, and its validation into a [`Config`] the other roles act on.
//!
//! - [`raw`]: serde types mirroring the file, each field documented with its default;
//! - [`model`]: the validated, path-resolved configuration;
//! - [`units`]: durations and sizes as written in the file.
//!
//! [`parse`] takes text (the manager reads the file; this crate only touches the filesystem to
//! check that referenced directories exist). A file with any error is refused whole, every
//! error reported.
#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;

pub mod model;
pub mod raw;
pub mod units;
mod validate;

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
pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unzip();
        let message = e.message().trim().to_string();
        ConfigErrors(vec![ConfigError { file: file.into(), line, column, key: String::new(), message }])
    })?;
    let mut checker = validate::Checker { errors: Vec::new(), file, base_dir };
    let config = validate::validate(raw, &mut checker);
    if checker.errors.is_empty() {
        Ok(config)
    } else {
        for e in &mut checker.errors {
            if let Some(offset) = locate(text, &e.key) {
                let (line, col) = line_col(text, offset);
                e.line = Some(line);
                e.column = Some(col);
            }
        }
        Err(ConfigErrors(checker.errors))
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Best-effort position of the last component of a key path (`pools.api.idle_timeout` →
/// the first `idle_timeout =` after `[pools.api]`).
fn locate(text: &str, key: &str) -> Option<usize> {
    let leaf = key.rsplit('.').next()?.split('[').next()?;
    let table = key.split('.').take(2).collect::<Vec<_>>().join(".");
    let start = if key.starts_with("pools.") { text.find(&format!("[{table}]")).unwrap_or(0) } else { 0 };
    let rel = text[start..].find(&format!("{leaf} ")).or_else(|| text[start..].find(&format!("{leaf}=")))?;
    Some(start + rel)
}

#[cfg(test)]
mod tests;
