//! The `bulkhead` executable: the command line, and the thin glue between the operating system
//! (argv, environment, signals, inherited fds) and the role crates.
//!
//! One binary plays every role, chosen by subcommand:
//! - `serve` runs the manager ([`bulkhead_manager::run`]), which re-executes this same binary as
//!   the hidden `listener`, for `command = ["bulkhead", …]` pools as workers (`demo-app`), and
//!   for `kind = "host"` pools as the built-in host (`worker`, [`bulkhead_host::serve`]);
//! - `config check` validates a file; the admin commands (`status`, `pools`, `pool …`,
//!   `config history|diff|rollback`) are clients of the running manager's admin API
//!   ([`client`]).
//!
//! Nothing here makes decisions the libraries should make: it parses argv, installs the log
//! subscriber, turns signals into a shutdown future and fds into sockets, and calls a crate.
#![deny(unsafe_code)]

mod child;
mod cli;
mod client;
mod config_cmd;
mod default_config;
mod demo;
mod serve;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{CacheAction, Cli, Command, ConfigCommand, ListenerAction, PoolAction};

/// mimalloc instead of glibc's allocator: a profile of the listener under load showed an eighth
/// of its CPU in glibc's malloc and free (hyper, header maps and the native protocol allocate
/// small objects per request). Every Bulkhead process — manager, listener, demo worker — uses it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve { .. } | Command::Listener { action: None } | Command::DemoApp | Command::Worker
    ) {
        die_quietly_on_a_closed_pipe();
    }
    install_logging();
    let result = match cli.command {
        Command::Serve { config } => serve::serve(config),
        Command::Config { command: ConfigCommand::Check { file, json } } => config_cmd::check(&file, json),
        Command::Config { command: ConfigCommand::History { client } } => client::history(&client),
        Command::Config { command: ConfigCommand::Diff { from, to, client } } => {
            client::diff(&client, from.as_deref(), to.as_deref())
        }
        Command::Config { command: ConfigCommand::Rollback { version, client } } => client::rollback(&client, &version),
        Command::Status { client } => client::status(&client),
        Command::Pools { client } => client::pools(&client),
        Command::Pool { action } => match action {
            PoolAction::Start { name, client } => client::pool(&client, &name, "start"),
            PoolAction::Stop { name, client } => client::pool(&client, &name, "stop"),
            PoolAction::Recycle { name, client } => client::pool(&client, &name, "recycle"),
        },
        Command::Cache { action: CacheAction::Purge { site, prefix, client } } => {
            client::cache_purge(&client, site, prefix)
        }
        Command::Listener { action: None } => child::listener(),
        Command::Listener { action: Some(ListenerAction::Restart { client }) } => client::listener_restart(&client),
        Command::DemoApp => demo::run().map(|()| ExitCode::SUCCESS),
        Command::Worker => child::worker(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bulkhead: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The CLI's commands print to a terminal or a pipe (`bulkhead status | head`). Rust starts
/// every program with SIGPIPE ignored, so a reader that stops early made `println!` panic
/// ("failed printing to stdout: Broken pipe", with a backtrace); with the default action
/// restored, a closed pipe ends the command quietly, as it ends `ls` or `cat` (exit status
/// 128 + 13). Never for `serve`, the listener or a worker: they write to client and worker
/// sockets, where a peer that went away must be an error to handle, not the end of the process.
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: called at the top of `main`, before this process starts a thread; SIG_DFL is a
    // valid disposition for SIGPIPE and no handler of ours is replaced.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Compact human lines on stderr (colour only on a terminal); `RUST_LOG` filters (default
/// `info`).
fn install_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .compact()
        .try_init();
}
