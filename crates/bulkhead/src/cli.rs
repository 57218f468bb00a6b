//! The command line (DESIGN §5 — a contract): `bulkhead serve [--config FILE]`,
//! `bulkhead config check FILE`, `bulkhead config history|diff|rollback`, `bulkhead status`,
//! `bulkhead pools`, `bulkhead pool start|stop|recycle NAME`; client commands take `--config
//! FILE` (to find the admin socket) and `--json`. Hidden: `listener`, `demo-app`, `worker`,
//! which the manager runs itself.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "A web and application server with isolated, self-healing application pools"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by the client commands.
#[derive(Debug, Args)]
pub struct ClientOptions {
    /// The server's config file (to find its admin socket); default ./bulkhead-state/admin.sock.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The admin socket itself (instead of finding it through --config).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the manager), with FILE or the embedded default config.
    Serve {
        /// The config file; without it, a demo site on http://127.0.0.1:8080.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check, list, compare or roll back configurations.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show the server's sites, pools and workers.
    Status {
        #[command(flatten)]
        client: ClientOptions,
    },
    /// List the application pools.
    Pools {
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Start, stop or recycle an application pool.
    Pool {
        #[command(subcommand)]
        action: PoolAction,
    },
    /// The front end: `bulkhead listener restart` hands over to a new listener process with no
    /// connection refused. (With no subcommand it is the front-end process itself, which only
    /// the manager starts.)
    Listener {
        #[command(subcommand)]
        action: Option<ListenerAction>,
    },
    /// The listener's response cache: `bulkhead cache purge [--site S] [--prefix P]`.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// The demo application behind the default config's /demo.
    #[command(name = "demo-app", hide = true)]
    DemoApp,
    /// The built-in worker host.
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE: print every error as file:line:col: key: message; exit 0 or 1.
    Check {
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the applied configuration versions.
    History {
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Show what changed between two versions (default: the previous and the running one).
    Diff {
        from: Option<String>,
        to: Option<String>,
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Write an earlier version back to the config file and apply it.
    Rollback {
        version: String,
        #[command(flatten)]
        client: ClientOptions,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListenerAction {
    /// Start a new listener on the same sockets and workers; the old one finishes its
    /// requests, closes its keep-alive connections gracefully and exits.
    Restart {
        #[command(flatten)]
        client: ClientOptions,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Drop cached answers: of one site (default: every site), under one path prefix
    /// (default: every path).
    Purge {
        #[arg(long, value_name = "SITE")]
        site: Option<String>,
        /// A URL path prefix, starting with `/`.
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        #[command(flatten)]
        client: ClientOptions,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolAction {
    /// Start a stopped or disabled pool.
    Start {
        name: String,
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Stop a pool (its requests get 503 until it is started).
    Stop {
        name: String,
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Replace a pool's workers without losing a request.
    Recycle {
        name: String,
        #[command(flatten)]
        client: ClientOptions,
    },
}
