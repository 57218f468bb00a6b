//! Every control message between Bulkhead's processes.
//!
//! Directions are separate types so a [`Channel`](crate::Channel) can only send what its side
//! is allowed to say:
//! - [`ManagerToListener`] / [`ListenerToManager`] on the listener's control channel (fd 3 of
//!   the hidden `bulkhead listener` process);
//! - [`ManagerToWorker`] / [`WorkerToManager`] on a worker's optional control channel (the fd
//!   named by `BULKHEAD_CONTROL_FD`).
//!
//! Messages are plain data; what they cause is decided by the receiving role.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The manager's id for one worker process; unique for the life of the manager, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub u64);

impl WorkerId {
    /// The id the listener gives a pool's FastCGI server that Bulkhead does not run (`connect`);
    /// the manager's ids count up from 1.
    pub const EXTERNAL: WorkerId = WorkerId(u64::MAX);
}

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            WorkerId::EXTERNAL => f.write_str("external"),
            WorkerId(id) => write!(f, "w{id}"),
        }
    }
}

/// The protocol a pool's workers speak on their socket (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive: any application.
    #[default]
    Http,
    /// Bulkhead's multiplexed native protocol (`docs/protocol.md`).
    Native,
    /// FastCGI (`kind = "fastcgi"` pools: php-cgi, php-fpm); never set by the `protocol` key.
    Fastcgi,
}

impl Protocol {
    /// The value of `BULKHEAD_PROTOCOL` for this protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Native => "native",
            Protocol::Fastcgi => "fastcgi",
        }
    }
}

/// Where the listener reaches a worker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerAddress {
    /// A unix stream socket created by the manager (`socket = "inherit"`).
    Unix(PathBuf),
    /// A loopback TCP port (`socket = "port"`).
    Tcp(SocketAddr),
}

/// A listening socket the listener inherited, and the bindings it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenSocket {
    /// The fd number in the listener process.
    pub fd: i32,
    /// The address actually bound (the real port when the config said port 0).
    pub local_addr: SocketAddr,
    /// The binding keys (`http://127.0.0.1:8080` as written in the config) this socket serves.
    pub bindings: Vec<String>,
}

/// One https site's certificate, as the manager read and checked it (a chain of a few KiB;
/// well under the channel's frame limit).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCertificate {
    /// The site's name.
    pub site: String,
    /// The DNS names the leaf certificate covers (lowercase; `*.example.com` for a wildcard),
    /// by which the listener chooses it from the client's SNI.
    pub names: Vec<String>,
    /// The certificate chain, PEM, leaf first.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl std::fmt::Debug for SiteCertificate {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteCertificate").field("site", &self.site).field("names", &self.names).finish_non_exhaustive()
    }
}

/// A worker that is ready to take requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub pool: String,
    pub worker: WorkerId,
    pub pid: u32,
    pub address: WorkerAddress,
    pub protocol: Protocol,
    /// Requests the listener may have in flight on this worker at once.
    pub concurrency: u32,
}

/// Why a pool cannot take requests right now; each is also the HTTPERR reason of the 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolRefusal {
    /// Rapid-fail protection took the pool offline.
    AppOffline,
    /// An operator stopped the pool.
    Disabled,
    /// The pool's worker could not be started (missing binary, exited before ready, timed out).
    AppStartFailed,
    /// The server is shutting down or the pool was removed.
    AppShutdown,
}

impl PoolRefusal {
    /// The reason word written to the HTTPERR log.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolRefusal::AppOffline => "AppOffline",
            PoolRefusal::Disabled => "Disabled",
            PoolRefusal::AppStartFailed => "AppStartFailed",
            PoolRefusal::AppShutdown => "AppShutdown",
        }
    }
}

/// Manager → listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ManagerToListener {
    /// The whole configuration to serve. The first message the listener gets; later ones
    /// replace sites and routes atomically. `config_toml` has already been validated by the
    /// manager; `config_path` anchors its relative paths (`None` for the embedded default,
    /// whose relative paths are relative to `base_dir`).
    /// `certificates` are the https sites' certificates, read and checked by the manager (the
    /// listener never reads key files).
    Configure {
        config_toml: String,
        config_path: Option<PathBuf>,
        base_dir: PathBuf,
        sockets: Vec<ListenSocket>,
        #[serde(default)]
        certificates: Vec<SiteCertificate>,
    },
    /// The certificate files changed on disk and still validate: serve these to new TLS
    /// connections from now on (open connections keep theirs).
    Certificates { certificates: Vec<SiteCertificate> },
    /// The ACME HTTP-01 challenges to answer now, as `(token, key_authorization)`: the whole
    /// current set (an empty one clears it). On http:// bindings, `GET` or `HEAD
    /// /.well-known/acme-challenge/TOKEN` for a token in the set is answered 200 `text/plain`
    /// with its key authorization, before `redirect_http` and the site's routes.
    AcmeChallenges { tokens: Vec<(String, String)> },
    /// A worker is ready: add it to its pool's dispatch set.
    WorkerUp(WorkerInfo),
    /// Send no new requests to this worker; let in-flight ones finish (recycle, shutdown).
    WorkerDraining { pool: String, worker: WorkerId },
    /// This worker is gone (exited, killed, hung): forget it; its in-flight requests fail.
    WorkerGone { pool: String, worker: WorkerId, reason: String },
    /// The pool can take no requests: answer its queued and new requests 503 `refusal` until a
    /// `WorkerUp` or `PoolAvailable` arrives. `AppStartFailed` fails only what is queued now;
    /// the next request demand-starts again.
    PoolRefused { pool: String, refusal: PoolRefusal, detail: String },
    /// The pool may take requests again (an operator started it).
    PoolAvailable { pool: String },
    /// Stop accepting; finish in-flight requests within `grace_ms`; then send `Drained` and exit.
    Shutdown { grace_ms: u64 },
    /// Listening sockets bound while the listener runs (a config added bindings). Their fds were
    /// written, in this order, on the fd channel the listener inherited at `fd_channel` (one fd
    /// per `SCM_RIGHTS` message, see `fdpass`) before this message was sent. The `fd` fields are
    /// `-1`: the listener keeps each received fd under its `local_addr`, and a later `Configure`
    /// naming a socket whose fd is `-1` means the one received for that address.
    AddSockets { fd_channel: i32, sockets: Vec<ListenSocket> },
    /// Close and reopen every access and HTTPERR log file (SIGUSR1 to the manager: logrotate
    /// moved them away); lines from now on go to files at the configured paths.
    ReopenLogs,
    /// Drop response-cache entries: of the site named `site` (every site when `None`) whose
    /// path starts with `prefix` (every path when `None`). `POST /cache/purge`.
    PurgeCache { site: Option<String>, prefix: Option<String> },
}

/// Upper bounds, in seconds, of the request-duration histogram buckets of [`SiteStats`] (the
/// last, implicit bucket is +Inf).
pub const DURATION_BUCKETS: [f64; 11] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Requests one site answered since the previous `Stats` report.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SiteStats {
    pub site: String,
    /// `(status, count)`, one entry per status code seen.
    pub responses: Vec<(u16, u64)>,
    /// Counts per [`DURATION_BUCKETS`] bucket (not cumulative), plus one for +Inf.
    pub duration_buckets: Vec<u64>,
    /// Sum of the durations, in microseconds.
    pub duration_sum_us: u64,
}

/// One pool's queue as the listener sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolStats {
    pub pool: String,
    /// Requests waiting for a worker.
    pub queue_depth: u64,
    /// Requests dispatched to workers and not finished.
    pub in_flight: u64,
}

/// The response cache's counters since the previous report (`memory` and `entries`: now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub stores: u64,
    /// Entries dropped for room (`max_memory`), idleness (`scavenge_after`) or expiry.
    pub evictions: u64,
    /// Body bytes answered from the cache.
    pub hit_bytes: u64,
    /// Bytes the cache holds now.
    pub memory: u64,
    /// Entries the cache holds now.
    pub entries: u64,
}

/// Listener → manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ListenerToManager {
    /// Configured and accepting.
    Ready,
    /// A request is waiting for a pool that has no ready worker (demand start). Sent once per
    /// pool until a worker comes up or the pool is refused.
    DemandStart { pool: String },
    /// The listener could not reach this worker (connect refused, reset before any byte).
    WorkerUnreachable { pool: String, worker: WorkerId, error: String },
    /// Requests were dispatched since the last report; lets the manager track idle time and
    /// request-count recycling without touching the request path. Sent at most once a second.
    Activity { pool: String, requests: u64 },
    /// Every in-flight request finished (answer to `Shutdown`).
    Drained,
    /// Answer to `WorkerDraining`: the listener sends this worker nothing more, and every
    /// request it had sent there has been answered (or failed), so the worker may be told to
    /// stop without a request racing its stop. Sent once per `WorkerDraining`, at once if
    /// nothing was in flight (or the worker was not known).
    WorkerDrained { pool: String, worker: WorkerId },
    /// Lines a FastCGI responder wrote to `FCGI_STDERR` (PHP's warnings and `error_log`), for
    /// the pool's log: they arrive on the listener's connection, not on the worker's stderr.
    WorkerStderr { pool: String, worker: WorkerId, lines: Vec<String> },
    /// Periodic (about once a second) request statistics for the admin API and `/metrics`:
    /// `sites` are deltas since the previous report (the manager adds them up, so a restarted
    /// listener loses at most one report); `pools` are current values.
    /// `tls_handshake_failures` and `log_lines_dropped` (access and HTTPERR lines the log
    /// writer could not take or write) are deltas too, and so are `cache`'s counters.
    Stats {
        sites: Vec<SiteStats>,
        pools: Vec<PoolStats>,
        #[serde(default)]
        tls_handshake_failures: u64,
        #[serde(default)]
        log_lines_dropped: u64,
        #[serde(default)]
        cache: CacheStats,
    },
}

/// Manager → worker (control channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ManagerToWorker {
    /// Health check; answer with `Pong` carrying the same `seq`.
    Ping { seq: u64 },
    /// Stop accepting new connections, finish in-flight requests, then exit 0.
    Drain,
    /// Exit now (after at most a brief grace).
    Stop,
}

/// Worker → manager (control channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerToManager {
    /// The worker accepts requests on its socket.
    Ready,
    /// Answer to `Ping`, with the worker's own counters.
    Pong { seq: u64, requests: u64, in_flight: u64 },
    /// The application asks to be recycled (e.g. it knows it leaks).
    RequestRecycle { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_read_as_in_the_logs() {
        assert_eq!(WorkerId(3).to_string(), "w3");
        assert_eq!(WorkerId::EXTERNAL.to_string(), "external");
    }
}
