//! Old config → new config as the list of [`Change`]s the manager applies (DESIGN §5, "Edit
//! while running"; sozu's `ConfigState::diff`).
//!
//! The manager calls [`diff`] on every accepted edit, and at start-up with
//! [`Config::empty`] as the old config, so starting is the same path as changing. The list is
//! in the order to apply it: settings, then pools and sockets a site may need, then sites,
//! then what no site needs any more. Pure: it compares two values and touches nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::model::*;

/// One thing to do to move the running server from the old config to the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Keys of `[server]` changed (`fields` names them). `restart_needed`: `state_dir`,
    /// `admin_socket`, `admin_listen` or `admin_token` changed — sockets, pid files and history live there, so the running
    /// server keeps the old ones until it is restarted; say so to the operator. `log_dir`
    /// (reopen logs), `listener_user` (restart the listener; the ports stay open) and
    /// `max_history` apply live. Never true when the old config is [`Config::empty`].
    ServerChanged { fields: Vec<&'static str>, restart_needed: bool },
    /// `[limits]` changed: the listener applies the new limits to new requests.
    LimitsChanged,
    /// `[cache]` changed: the listener takes the new limits (it empties its response cache on
    /// every configuration it applies).
    CacheChanged,
    /// `[acme]` changed: the manager re-plans every ACME site's certificate (a new directory
    /// or ca_file starts over; a new `renew_before` moves the next renewal). Not listed at
    /// start-up, where each ACME site is planned anyway.
    AcmeChanged,
    /// A new pool: set up its queue; start workers now if `start = "always"`.
    PoolAdded { name: String },
    /// A pool's settings changed (`fields` names them). `recycle_needed`: something a worker
    /// sees changed (kind, command, protocol, socket, directory, env, user, group), so its
    /// workers are recycled, overlapped. Otherwise the manager and listener apply the change
    /// live (queue length, process count, timeouts, recycling and health settings…).
    PoolChanged { name: String, recycle_needed: bool, fields: Vec<&'static str> },
    /// A listening socket no old binding needed: the manager binds it and hands it to the
    /// listener. `key` is [`Binding::socket_key`]; `scheme` is its bindings' scheme.
    BindingAdded { key: String, addr: SocketAddr, scheme: Scheme },
    /// A new site: the listener adds it to its routing table.
    SiteAdded { name: String },
    /// A site's bindings, routes, TLS, limits or log settings changed: the listener swaps in
    /// its new routing table; requests in flight finish on the old one.
    SiteChanged { name: String },
    /// A site is gone: the listener stops routing to it.
    SiteRemoved { name: String },
    /// No binding needs this socket any more: the listener stops accepting on it and the
    /// manager closes it.
    BindingRemoved { key: String },
    /// A pool is gone (no route names it any more): its workers drain and stop.
    PoolRemoved { name: String },
}

impl Config {
    /// The state before start-up: no server paths, zero limits, no cache, no sites, no pools.
    /// Not a config to serve (`parse("")` gives the defaults); the "old" side of the first
    /// [`diff`], so that every part of the real config shows up as a change.
    pub fn empty() -> Config {
        Config {
            server: Server {
                state_dir: PathBuf::new(),
                log_dir: PathBuf::new(),
                admin_socket: PathBuf::new(),
                listener_user: String::new(),
                max_history: 0,
                admin_listen: None,
                admin_token: String::new(),
            },
            limits: Limits {
                max_connections: 0,
                max_connections_per_ip: 0,
                connection_timeout: Duration::ZERO,
                header_wait_timeout: Duration::ZERO,
                min_bytes_per_sec: 0,
                min_bytes_grace: Duration::ZERO,
                keepalive_park_after: Duration::ZERO,
                max_request_bytes: 0,
                max_field_length: 0,
                max_url_segment_length: 0,
                max_url_segments: 0,
                max_body: 0,
                queue_timeout: Duration::ZERO,
                http2: Http2Limits {
                    max_concurrent_streams: 0,
                    stream_window: 0,
                    connection_window: 0,
                    max_pending_accept_reset_streams: 0,
                    max_local_error_reset_streams: 0,
                },
            },
            acme: Acme { directory: String::new(), ca_file: None, renew_before: Duration::ZERO },
            cache: Cache { enabled: false, max_memory: 0, max_item: 0, scavenge_after: Duration::ZERO },
            sites: Vec::new(),
            pools: BTreeMap::new(),
        }
    }

    /// Whether this is [`Config::empty`]'s server, i.e. nothing is running yet.
    fn is_before_start(&self) -> bool {
        self.server.state_dir.as_os_str().is_empty()
    }
}

/// The changes that turn `old` into `new`, in the order to apply them. Empty when nothing
/// changed.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut changes = Vec::new();
    server(old, new, &mut changes);
    if old.limits != new.limits {
        changes.push(Change::LimitsChanged);
    }
    if old.cache != new.cache {
        changes.push(Change::CacheChanged);
    }
    if old.acme != new.acme && !old.is_before_start() {
        changes.push(Change::AcmeChanged);
    }
    for (name, pool) in &new.pools {
        match old.pools.get(name) {
            None => changes.push(Change::PoolAdded { name: name.clone() }),
            Some(was) if was != pool => changes.push(pool_changed(was, pool)),
            Some(_) => {}
        }
    }
    let (old_sockets, new_sockets) = (sockets(old), sockets(new));
    for (key, (addr, scheme)) in &new_sockets {
        if !old_sockets.contains_key(key) {
            changes.push(Change::BindingAdded { key: key.clone(), addr: *addr, scheme: *scheme });
        }
    }
    let old_sites: BTreeMap<&str, &Site> = old.sites.iter().map(|s| (s.name.as_str(), s)).collect();
    let new_names: BTreeSet<&str> = new.sites.iter().map(|s| s.name.as_str()).collect();
    for site in &new.sites {
        match old_sites.get(site.name.as_str()) {
            None => changes.push(Change::SiteAdded { name: site.name.clone() }),
            Some(was) if *was != site => changes.push(Change::SiteChanged { name: site.name.clone() }),
            Some(_) => {}
        }
    }
    for site in old.sites.iter().filter(|s| !new_names.contains(s.name.as_str())) {
        changes.push(Change::SiteRemoved { name: site.name.clone() });
    }
    for key in old_sockets.keys().filter(|k| !new_sockets.contains_key(*k)) {
        changes.push(Change::BindingRemoved { key: key.clone() });
    }
    for name in old.pools.keys().filter(|n| !new.pools.contains_key(*n)) {
        changes.push(Change::PoolRemoved { name: name.clone() });
    }
    changes
}

fn server(old: &Config, new: &Config, changes: &mut Vec<Change>) {
    let (o, n) = (&old.server, &new.server);
    let restart = [
        ("state_dir", o.state_dir != n.state_dir),
        ("admin_socket", o.admin_socket != n.admin_socket),
        ("admin_listen", o.admin_listen != n.admin_listen),
        ("admin_token", o.admin_token != n.admin_token),
    ];
    let live = [
        ("log_dir", o.log_dir != n.log_dir),
        ("listener_user", o.listener_user != n.listener_user),
        ("max_history", o.max_history != n.max_history),
    ];
    let fields: Vec<&'static str> = restart.iter().chain(&live).filter(|(_, d)| *d).map(|(f, _)| *f).collect();
    if fields.is_empty() {
        return;
    }
    let restart_needed = !old.is_before_start() && restart.iter().any(|(_, d)| *d);
    changes.push(Change::ServerChanged { fields, restart_needed });
}

fn pool_changed(o: &Pool, n: &Pool) -> Change {
    let worker_sees = [
        ("kind", o.kind != n.kind),
        ("command", o.command != n.command),
        ("protocol", o.protocol != n.protocol),
        ("socket", o.socket != n.socket),
        ("directory", o.directory != n.directory),
        ("env", o.env != n.env),
        ("user", o.user != n.user),
        ("group", o.group != n.group),
    ];
    let live = [
        ("start", o.start != n.start),
        ("processes", o.processes != n.processes),
        ("concurrency", o.concurrency != n.concurrency),
        ("queue_length", o.queue_length != n.queue_length),
        ("idle_timeout", o.idle_timeout != n.idle_timeout),
        ("startup_time_limit", o.startup_time_limit != n.startup_time_limit),
        ("response_timeout", o.response_timeout != n.response_timeout),
        ("request_buffering", o.request_buffering != n.request_buffering),
        ("shutdown_time_limit", o.shutdown_time_limit != n.shutdown_time_limit),
        ("recycle", o.recycle != n.recycle),
        ("health", o.health != n.health),
        ("rapid_fail", o.rapid_fail != n.rapid_fail),
        ("orphan", o.orphan != n.orphan),
        ("cpu", o.cpu != n.cpu),
        ("limits", o.limits != n.limits),
        ("connect", o.connect != n.connect),
    ];
    let mut fields: Vec<&'static str> = worker_sees.iter().chain(&live).filter(|(_, d)| *d).map(|(f, _)| *f).collect();
    let mut recycle_needed = worker_sees.iter().any(|(_, d)| *d);
    if fields.is_empty() {
        // A field this list does not know yet: recycling is always safe.
        fields.push("other");
        recycle_needed = true;
    }
    Change::PoolChanged { name: n.name.clone(), recycle_needed, fields }
}

/// Every listening socket a config needs, by [`Binding::socket_key`].
fn sockets(config: &Config) -> BTreeMap<String, (SocketAddr, Scheme)> {
    let mut out = BTreeMap::new();
    for b in config.sites.iter().flat_map(|s| &s.bindings) {
        out.entry(b.socket_key()).or_insert((b.listen_addr(), b.scheme));
    }
    out
}

#[cfg(test)]
mod tests;
