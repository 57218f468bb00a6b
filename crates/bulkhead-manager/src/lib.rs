//! STUB — being written. The supervisor (DESIGN §1, §3).
#![deny(unsafe_code)]

use std::future::Future;
use std::path::PathBuf;

/// What the binary tells the manager at start-up. The manager reads no environment, argv or
/// signals itself.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// The config file, or `None` for the embedded default.
    pub config_path: Option<PathBuf>,
    /// The config text (read by the binary from `config_path`, or the embedded default).
    pub config_text: String,
    /// Anchor for relative paths: the config file's directory, or the working directory.
    pub base_dir: PathBuf,
    /// This very executable: spawned as `bulkhead listener`, and substituted for a pool
    /// command whose program is the bare word `bulkhead`.
    pub self_exe: PathBuf,
}

/// Errors that stop the manager.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("{0}")]
    Config(#[from] bulkhead_config::ConfigErrors),
}

/// Runs the server until `shutdown` resolves, then drains and stops everything.
pub async fn run(options: ManagerOptions, shutdown: impl Future<Output = ()>) -> Result<(), ManagerError> {
    let _ = options;
    shutdown.await;
    Ok(())
}
