//! The operator's commands — from the admin service, the config-file watch and SIGHUP — to the
//! supervisor, and the supervisor's [`Reply`] (an HTTP status and a body).
//!
//! A leaf module: it names the messages and depends on no other part of the manager except
//! [`crate::config_store::Source`] (where a configuration came from). Senders are
//! [`crate::admin`] and [`crate::reload`]; the only receiver is the supervisor
//! (`supervisor/admin_ops.rs`), which answers each command at once on its oneshot. It must
//! never hold state or do I/O.

use tokio::sync::oneshot;

use crate::config_store::Source;

/// What the admin service asks the supervisor.
pub(crate) enum Command {
    /// `GET /status` (and `/pools`).
    Status(oneshot::Sender<Reply>),
    /// `GET /events`.
    Events { limit: usize, reply: oneshot::Sender<Reply> },
    /// `GET /metrics`.
    Metrics(oneshot::Sender<Reply>),
    /// `GET /config`.
    GetConfig(oneshot::Sender<Reply>),
    /// Apply `text` (or, when `None`, the file as it is on disk now). `PUT /config` writes the
    /// text back to the file first; the watcher and SIGHUP have no reply channel.
    Apply { text: Option<String>, source: Source, note: Option<String>, reply: Option<oneshot::Sender<Reply>> },
    /// `PUT /config?dry_run=1`: validate only.
    Validate { text: String, reply: oneshot::Sender<Reply> },
    /// `POST /config/rollback/N`.
    Rollback { version: u64, reply: oneshot::Sender<Reply> },
    /// `POST /pools/NAME/ACTION`.
    Pool { name: String, action: PoolAction, reply: oneshot::Sender<Reply> },
    /// `POST /listener/restart`: hand over to a new listener process.
    ListenerRestart(oneshot::Sender<Reply>),
    /// `POST /cache/purge`: drop the listener's cached answers of `site` (all when `None`) under
    /// `prefix` (all paths when `None`).
    CachePurge { site: Option<String>, prefix: Option<String>, reply: oneshot::Sender<Reply> },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Status(_) => "Status",
            Command::Events { .. } => "Events",
            Command::Metrics(_) => "Metrics",
            Command::GetConfig(_) => "GetConfig",
            Command::Apply { .. } => "Apply",
            Command::Validate { .. } => "Validate",
            Command::Rollback { .. } => "Rollback",
            Command::Pool { .. } => "Pool",
            Command::ListenerRestart(_) => "ListenerRestart",
            Command::CachePurge { .. } => "CachePurge",
        })
    }
}

/// An operator's command for one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolAction {
    Start,
    Stop,
    Recycle,
}

impl PoolAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolAction::Start => "start",
            PoolAction::Stop => "stop",
            PoolAction::Recycle => "recycle",
        }
    }
}

/// The supervisor's answer: an HTTP status and a body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: ReplyBody,
}

#[derive(Debug, Clone)]
pub enum ReplyBody {
    Json(serde_json::Value),
    Text { content_type: &'static str, text: String },
}

impl Reply {
    pub fn json(status: u16, value: serde_json::Value) -> Reply {
        Reply { status, body: ReplyBody::Json(value) }
    }

    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, serde_json::json!({ "error": message.into() }))
    }

    pub fn text(content_type: &'static str, text: String) -> Reply {
        Reply { status: 200, body: ReplyBody::Text { content_type, text } }
    }
}
