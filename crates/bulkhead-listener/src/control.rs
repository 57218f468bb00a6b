//! The manager's control channel, seen from the listener: applying `Configure`, worker and pool
//! news, `Shutdown`; sending `Ready`, `DemandStart`, `WorkerUnreachable`, `Activity`, `Drained`.
//!
//! Messages to the manager go through one writer task fed by an unbounded channel
//! ([`ControlTx`](crate::to_manager::ControlTx)), so the request path can say `DemandStart` or
//! `WorkerUnreachable` without awaiting socket writes (these are rare: once per pool or per
//! worker). `Activity` is sent by a ticker at most once a second per pool, and only for pools
//! that dispatched requests.
//!
//! A `Configure` is applied whole (its certificates installed in [`crate::tls`] first; a
//! `Certificates` message swaps only those, for new connections): the new route table is built off the runtime threads and
//! swapped in (in-flight requests finish on the old one), pools are added/kept/removed (a
//! removed pool's waiting requests get 503 `AppShutdown`), log settings are passed to the log
//! writer, and listening sockets are started or stopped to match. Never touches a request.
//!
//! Sockets bound while the listener runs arrive as `AddSockets`: their fds are read from the
//! manager's fd channel (`bulkhead_proto::fdpass`) and kept by address; a `Configure` names
//! sockets by address first (its fd numbers only count for sockets inherited at start), so the
//! listener is never restarted for a new binding. The ticker also sends `Stats` once a second
//! (requests by site and status, durations, queue depths) for the manager's admin API.
//!
//! Layering: the top of the crate under [`crate::run`]; it starts [`crate::accept`] loops and
//! feeds [`crate::state`], [`crate::queue`] and [`crate::log`], and is imported by nothing but
//! `lib.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_config::Config;
use bulkhead_proto::{
    ChannelReceiver, ListenSocket, ListenerToManager, ManagerToListener, PoolRefusal, SiteCertificate,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dispatch::Worker;
use crate::error::ListenerError;
use crate::log::LogConfig;
use crate::routing::Table;
use crate::state::{Phase, Shared};

/// How the control loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// `Shutdown` was received and carried out.
    Shutdown,
    /// The manager closed the channel (it died): stop now.
    ManagerGone,
}

/// The listener's side of the control channel.
pub struct Control {
    shared: Arc<Shared>,
    /// Inherited sockets being accepted on: fd → (stop signal, accept task).
    sockets: HashMap<i32, (watch::Sender<bool>, JoinHandle<()>)>,
    /// The fd of every listening socket this process holds, by its address.
    held: HashMap<SocketAddr, i32>,
    /// The manager's fd channel, once an `AddSockets` named it.
    fd_channel: Option<Arc<std::os::unix::net::UnixStream>>,
    /// The configuration and sockets in force, for a `Certificates` message.
    current: Option<(Arc<Config>, Vec<ListenSocket>)>,
}

/// Parses a configuration the manager sent (already validated there, as root when it runs as
/// root: the file-system checks are not repeated as the listener's user).
pub fn parse_config(
    text: &str,
    path: Option<&std::path::Path>,
    base_dir: &std::path::Path,
) -> Result<Config, ListenerError> {
    let file = path.map_or_else(|| "<embedded default>".to_string(), |p| p.display().to_string());
    let base = path.and_then(|p| p.parent()).filter(|p| !p.as_os_str().is_empty()).unwrap_or(base_dir);
    Ok(bulkhead_config::parse_trusted(text, &file, base)?)
}

/// Builds a route table off the runtime threads (it canonicalises static roots).
pub async fn build_table(config: Arc<Config>, sockets: Vec<ListenSocket>, old: Option<Arc<Table>>) -> Table {
    let cfg = config.clone();
    let socks = sockets.clone();
    let old2 = old.clone();
    match tokio::task::spawn_blocking(move || Table::build(&cfg, &socks, old2.as_deref())).await {
        Ok(table) => table,
        Err(_) => Table::build(&config, &sockets, old.as_deref()),
    }
}

impl Control {
    pub fn new(shared: Arc<Shared>) -> Self {
        Control { shared, sockets: HashMap::new(), held: HashMap::new(), fd_channel: None, current: None }
    }

    /// Makes `certificates` the ones new TLS connections get on `config`'s https sockets;
    /// on error the previous ones stay.
    pub fn install_tls(&mut self, config: &Arc<Config>, sockets: &[ListenSocket], certificates: &[SiteCertificate]) {
        match self.shared.tls.install(config, sockets, certificates) {
            Ok(()) => {
                if !certificates.is_empty() {
                    tracing::info!("TLS: {} certificate(s) installed for new connections", certificates.len());
                }
            }
            Err(e) => tracing::error!("TLS certificates refused, keeping the previous ones: {e}"),
        }
        self.current = Some((config.clone(), sockets.to_vec()));
    }

    /// The manager's socket list with each fd replaced by the one this process holds for that
    /// address; sockets neither held nor inherited (`fd < 0`) are left out, with an error.
    pub fn resolve(&self, sockets: &[ListenSocket]) -> Vec<ListenSocket> {
        let mut out = Vec::with_capacity(sockets.len());
        for s in sockets {
            let fd = self.held.get(&s.local_addr).copied().unwrap_or(s.fd);
            if fd < 0 {
                tracing::error!("no socket received for {} ({}); not serving it", s.local_addr, s.bindings.join(", "));
                continue;
            }
            out.push(ListenSocket { fd, ..s.clone() });
        }
        out
    }

    /// Reads `sockets.len()` fds from the manager's fd channel (adopting the channel at
    /// `fd_channel` the first time) and keeps them by address until a `Configure` uses them.
    /// `PurgeCache`: drops the matching entries of the response cache (a site the current
    /// table does not know has none).
    fn purge_cache(&self, site: Option<String>, prefix: Option<String>) {
        let id = match &site {
            None => None,
            Some(name) => match self.shared.table().sites.iter().find(|s| &*s.name == name.as_str()) {
                Some(s) => Some(s.id),
                None => {
                    tracing::info!("cache purge: no site {name:?} here; nothing dropped");
                    return;
                }
            },
        };
        let dropped = self.shared.cache.purge(id, prefix.as_deref());
        tracing::info!("cache purge (site {site:?}, prefix {prefix:?}): {dropped} entries dropped");
    }

    async fn receive_sockets(&mut self, fd_channel: i32, sockets: Vec<ListenSocket>) {
        if self.fd_channel.is_none() {
            match crate::inherit::unix_stream(fd_channel) {
                Ok(s) => self.fd_channel = Some(Arc::new(s)),
                Err(e) => {
                    tracing::error!("cannot use the manager's fd channel (fd {fd_channel}): {e}");
                    return;
                }
            }
        }
        let Some(channel) = self.fd_channel.clone() else { return };
        let count = sockets.len();
        let received = tokio::task::spawn_blocking(move || {
            (0..count).map(|_| bulkhead_proto::fdpass::recv_fd(&channel, Duration::from_secs(5))).collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (socket, fd) in sockets.iter().zip(received) {
            match fd {
                Ok(fd) => {
                    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
                    tracing::info!("received listening socket {} ({})", socket.local_addr, socket.bindings.join(", "));
                    self.held.insert(socket.local_addr, raw);
                }
                Err(e) => tracing::error!("cannot receive the socket for {}: {e}", socket.local_addr),
            }
        }
    }

    /// Applies pools and sockets of a configuration whose table is already in place.
    pub fn apply(&mut self, config: &Config, sockets: &[ListenSocket]) {
        let timeout = config.limits.queue_timeout;
        let removed = self.shared.set_pools(config.pools.values().map(|p| (p.name.clone(), p.queue_length)), timeout);
        for pool in config.pools.values() {
            if let Some(queue) = self.shared.pool(&pool.name) {
                queue.set_response_timeout(pool.response_timeout);
                queue.set_request_buffering(pool.request_buffering);
                queue.set_fastcgi(pool.kind == bulkhead_config::PoolKind::Fastcgi);
                // A FastCGI server Bulkhead does not run: routed to from here, never announced.
                match &pool.connect {
                    Some(address) => {
                        queue.set_external(Worker::external(address.clone(), pool.concurrency, queue.fastcgi_share()))
                    }
                    None => queue.worker_gone(bulkhead_proto::WorkerId::EXTERNAL),
                }
            }
        }
        for queue in removed {
            tracing::info!("pool {:?} removed from the configuration; refusing its waiting requests", &**queue.pool());
            queue.refuse(PoolRefusal::AppShutdown);
        }
        self.shared.log.configure(LogConfig::from_config(config));
        let wanted: HashMap<i32, &ListenSocket> = sockets.iter().map(|s| (s.fd, s)).collect();
        self.sockets.retain(|fd, (stop, _)| {
            let keep = wanted.contains_key(fd);
            if !keep {
                tracing::info!("listening socket fd {fd} no longer configured; no longer accepting on it");
                let _ = stop.send(true);
            }
            keep
        });
        let running = &self.sockets;
        self.held.retain(|addr, fd| running.contains_key(fd) || sockets.iter().any(|s| s.local_addr == *addr));
        for socket in sockets {
            if self.sockets.contains_key(&socket.fd) {
                continue;
            }
            match crate::inherit::tcp_listener(socket.fd) {
                Ok(listener) => {
                    let (stop, stopped) = watch::channel(false);
                    let task =
                        tokio::spawn(crate::accept::accept_loop(self.shared.clone(), listener, socket.fd, stopped));
                    self.sockets.insert(socket.fd, (stop, task));
                    self.held.insert(socket.local_addr, socket.fd);
                }
                Err(e) => tracing::error!(
                    "cannot use inherited socket fd {} ({}, {}): {e}",
                    socket.fd,
                    socket.local_addr,
                    socket.bindings.join(", ")
                ),
            }
        }
    }

    /// Serves control messages until `Shutdown` or the channel closes.
    pub async fn serve(&mut self, mut rx: ChannelReceiver<ManagerToListener>) -> Result<Ending, ListenerError> {
        loop {
            let msg = match rx.recv().await {
                Ok(Some(msg)) => msg,
                Ok(None) => return Ok(Ending::ManagerGone),
                Err(e) => {
                    tracing::error!("listener control channel: {e}; stopping");
                    return Ok(Ending::ManagerGone);
                }
            };
            match msg {
                ManagerToListener::Configure { config_toml, config_path, base_dir, sockets, certificates } => {
                    match parse_config(&config_toml, config_path.as_deref(), &base_dir) {
                        Ok(config) => {
                            let sockets = self.resolve(&sockets);
                            let config = Arc::new(config);
                            let table = build_table(config.clone(), sockets.clone(), Some(self.shared.table())).await;
                            self.install_tls(&config, &sockets, &certificates);
                            self.shared.set_table(table);
                            self.apply(&config, &sockets);
                            tracing::info!(
                                "configuration applied ({} sites, {} pools)",
                                config.sites.len(),
                                config.pools.len()
                            );
                        }
                        Err(e) => tracing::error!("new configuration refused, keeping the running one: {e}"),
                    }
                }
                ManagerToListener::Certificates { certificates } => {
                    if let Some((config, sockets)) = self.current.clone() {
                        self.install_tls(&config, &sockets, &certificates);
                    }
                }
                ManagerToListener::AcmeChallenges { tokens } => {
                    tracing::info!("ACME: answering {} HTTP-01 challenge(s)", tokens.len());
                    self.shared.acme.replace(tokens);
                }
                ManagerToListener::WorkerUp(info) => {
                    let timeout = self.shared.table().limits.queue_timeout;
                    let queue = self.shared.pool_or_create(&info.pool, 1000, timeout);
                    tracing::debug!(
                        "pool {:?}: worker {} (pid {}) up at {:?}",
                        info.pool,
                        info.worker,
                        info.pid,
                        info.address
                    );
                    queue.worker_up(Worker::new(&info, queue.fastcgi_share()));
                }
                ManagerToListener::WorkerDraining { pool, worker } => match self.shared.pool(&pool) {
                    Some(q) => q.worker_draining(worker),
                    // A pool removed by the configuration applied just before: nothing more is
                    // sent to its workers, so the manager may stop this one now.
                    None => {
                        let _ = self.shared.control.send(ListenerToManager::WorkerDrained { pool, worker });
                    }
                },
                ManagerToListener::WorkerGone { pool, worker, reason } => {
                    tracing::debug!("pool {pool:?}: worker {worker} gone: {reason}");
                    if let Some(q) = self.shared.pool(&pool) {
                        q.worker_gone(worker);
                    }
                }
                ManagerToListener::PoolRefused { pool, refusal, detail } => {
                    tracing::info!("pool {pool:?} refused ({}): {detail}", refusal.as_str());
                    if let Some(q) = self.shared.pool(&pool) {
                        q.refuse(refusal);
                    }
                }
                ManagerToListener::PoolAvailable { pool } => {
                    if let Some(q) = self.shared.pool(&pool) {
                        q.available();
                    }
                }
                ManagerToListener::AddSockets { fd_channel, sockets } => {
                    self.receive_sockets(fd_channel, sockets).await;
                }
                ManagerToListener::PurgeCache { site, prefix } => self.purge_cache(site, prefix),
                ManagerToListener::ReopenLogs => {
                    tracing::info!("reopening the access and HTTPERR logs");
                    self.shared.log.reopen();
                }
                ManagerToListener::Shutdown { grace_ms } => {
                    self.shutdown(Duration::from_millis(grace_ms)).await;
                    return Ok(Ending::Shutdown);
                }
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish within `grace`, then refuses what is
    /// still queued (503 `AppShutdown`) and closes what is left.
    async fn shutdown(&mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.shared.set_phase(Phase::Graceful);
        for (_, (stop, _)) in self.sockets.drain() {
            let _ = stop.send(true);
        }
        if !self.wait_for_connections(deadline).await {
            for queue in self.shared.pools() {
                queue.refuse(PoolRefusal::AppShutdown);
            }
            // Let the 503s just produced reach their clients.
            self.wait_for_connections(tokio::time::Instant::now() + Duration::from_millis(500)).await;
            self.shared.set_phase(Phase::Abort);
        }
        for queue in self.shared.pools() {
            queue.refuse(PoolRefusal::AppShutdown);
        }
    }

    /// Waits until no client connection is open, or the deadline; true if none is left.
    async fn wait_for_connections(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let closed = self.shared.connections_closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.shared.connections() == 0 {
                return true;
            }
            tokio::select! {
                _ = closed => {}
                _ = tokio::time::sleep_until(deadline) => return self.shared.connections() == 0,
            }
        }
    }

    /// Stops everything at once (the manager is gone).
    pub fn abort(&mut self) {
        self.shared.set_phase(Phase::Abort);
        for (_, (stop, task)) in self.sockets.drain() {
            let _ = stop.send(true);
            task.abort();
        }
        for queue in self.shared.pools() {
            queue.refuse(PoolRefusal::AppShutdown);
        }
    }
}

/// Sends `Activity` for every pool that dispatched requests, and `Stats` (request counts by
/// site, queue depths), once a second, until the control sender closes.
pub async fn activity_ticker(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut dropped_reported = 0;
    let mut cache_reported = bulkhead_proto::CacheStats::default();
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for queue in shared.pools() {
            let requests = queue.take_dispatched();
            if requests > 0 {
                let msg = ListenerToManager::Activity { pool: queue.pool().to_string(), requests };
                if shared.control.send(msg).is_err() {
                    return;
                }
            }
        }
        let sites = shared.log.stats().take();
        let pools: Vec<bulkhead_proto::PoolStats> = shared
            .pools()
            .iter()
            .map(|q| bulkhead_proto::PoolStats {
                pool: q.pool().to_string(),
                queue_depth: q.waiting() as u64,
                in_flight: q.in_flight() as u64,
            })
            .collect();
        let tls_handshake_failures = shared.tls.take_failures();
        let dropped = shared.log.dropped();
        let log_lines_dropped = dropped.saturating_sub(dropped_reported);
        dropped_reported = dropped;
        let now = shared.cache.counters();
        let cache = bulkhead_proto::CacheStats {
            hits: now.hits - cache_reported.hits,
            misses: now.misses - cache_reported.misses,
            stores: now.stores - cache_reported.stores,
            evictions: now.evictions - cache_reported.evictions,
            hit_bytes: now.hit_bytes - cache_reported.hit_bytes,
            memory: now.memory,
            entries: now.entries,
        };
        let cache_news = now != cache_reported;
        cache_reported = now;
        let news =
            !sites.is_empty() || !pools.is_empty() || tls_handshake_failures > 0 || log_lines_dropped > 0 || cache_news;
        if news
            && shared
                .control
                .send(ListenerToManager::Stats { sites, pools, tls_handshake_failures, log_lines_dropped, cache })
                .is_err()
        {
            return;
        }
    }
}
