//! `bulkhead serve [--config FILE]`: reads the config file (or takes the embedded default),
//! turns SIGTERM/SIGINT into the manager's shutdown future, and runs the manager.
//!
//! SIGHUP re-reads and applies the config file (a `Notify` the manager's reload watches;
//! the manager also watches the file itself); SIGUSR1 reopens every log file (for logrotate;
//! another `Notify`). A second
//! SIGTERM/SIGINT during a graceful shutdown exits at once; the children follow through their
//! parent-death signal.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bulkhead_manager::{ManagerError, ManagerOptions};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

use crate::default_config;

/// `BULKHEAD_ALLOW_ROOT_WORKERS=1`: started as root, run pools that set no `user` as root
/// instead of refusing them — for containers and test harnesses where everything is root.
pub const ALLOW_ROOT_WORKERS: &str = "BULKHEAD_ALLOW_ROOT_WORKERS";

/// The directory relative paths in `file` are anchored at.
pub fn config_dir(file: &Path) -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let abs = cwd.join(file);
    Ok(abs.parent().map(Path::to_path_buf).unwrap_or(cwd))
}

pub fn serve(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let (config_path, config_text, base_dir) = match config {
        Some(path) => {
            let abs = cwd.join(&path);
            let text = std::fs::read_to_string(&abs).with_context(|| format!("cannot read {}", path.display()))?;
            let base = config_dir(&abs)?;
            (Some(abs), text, base)
        }
        None => {
            default_config::write_welcome(&cwd)?;
            (None, default_config::TEXT.to_string(), cwd)
        }
    };
    let reload = Arc::new(Notify::new());
    let reopen = Arc::new(Notify::new());
    let options = ManagerOptions {
        config_path,
        config_text,
        base_dir,
        self_exe: std::env::current_exe().context("cannot find this executable's path")?,
        env: std::env::vars_os().collect(),
        // Read while this process is still single-threaded: the `time` crate refuses later.
        local_offset: time::UtcOffset::current_local_offset().ok(),
        allow_root_workers: std::env::var_os(ALLOW_ROOT_WORKERS).is_some_and(|v| v == "1"),
        reload: Some(reload.clone()),
        reopen_logs: Some(reopen.clone()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        tokio::spawn(reload_signal(reload)?);
        tokio::spawn(reopen_signal(reopen)?);
        anyhow::Ok(bulkhead_manager::run(options, shutdown).await)
    })?;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ManagerError::Config(errors)) => {
            eprintln!("bulkhead: refusing to start: the configuration has {} error(s):", errors.0.len());
            for e in &errors.0 {
                eprintln!("{e}");
            }
            Ok(ExitCode::FAILURE)
        }
        // The manager's messages already carry their causes; print them once.
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits the process at once.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received: graceful shutdown (send it again to stop at once)"),
            _ = int.recv() => tracing::info!("SIGINT received: graceful shutdown (press Ctrl-C again to stop at once)"),
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!("second signal: exiting now without waiting for requests");
            std::process::exit(130);
        });
    })
}

/// Notifies `reload` on every SIGHUP: the manager re-reads and applies the config file.
fn reload_signal(reload: Arc<Notify>) -> std::io::Result<impl Future<Output = ()>> {
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received: re-reading the configuration file");
            reload.notify_one();
        }
    })
}

/// Notifies `reopen` on every SIGUSR1: the manager has every log file reopened.
fn reopen_signal(reopen: Arc<Notify>) -> std::io::Result<impl Future<Output = ()>> {
    let mut usr1 = signal(SignalKind::user_defined1())?;
    Ok(async move {
        while usr1.recv().await.is_some() {
            tracing::info!("SIGUSR1 received: reopening the log files");
            reopen.notify_one();
        }
    })
}
