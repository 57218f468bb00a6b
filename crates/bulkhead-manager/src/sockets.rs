//! The public listening sockets (DESIGN §1: the manager binds, the listener serves), opened
//! and closed as a configuration's change records say.
//!
//! Used by the supervisor's one apply path (`supervisor/metabase.rs`), at start-up (the diff
//! from `Config::empty()`, where every socket is a `BindingAdded`) and on each live reload
//! alike: [`PublicSockets::open`] binds what the `BindingAdded` records need — nothing
//! changes if one cannot be bound, so the config is refused whole — and
//! [`PublicSockets::commit`] keeps what the new config still needs and hands back the sockets
//! of its `BindingRemoved` records to close. One socket per distinct `Binding::socket_key()`
//! — bindings that share an address share a socket — except that a port-0 binding always gets
//! its own socket (each such binding string means "some free port"; the diff names their
//! shared key once, so those are matched by binding text). Sockets are bound with
//! `SO_REUSEADDR` and a backlog of [`BACKLOG`], close-on-exec in the manager; the spawner
//! hands them to the listener at fds 4, 5, …. The manager keeps them open while a binding
//! needs them, so a restarted listener finds the same ports. Never binds anything the
//! config does not name.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;

use bulkhead_config::{Change, Config};

/// Backlog of every public socket.
pub const BACKLOG: u32 = 1024;

/// Why a public socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {addr} (for {bindings}): {source}")]
    Bind { addr: SocketAddr, bindings: String, source: io::Error },
}

/// One bound listening socket and the bindings it serves.
#[derive(Debug)]
pub struct PublicSocket {
    pub socket: std::net::TcpListener,
    /// The address its bindings name (`Binding::socket_key`, the key of the diff's
    /// `BindingAdded`/`BindingRemoved` records): `local_addr` but for port 0.
    pub key: String,
    pub local_addr: SocketAddr,
    /// Binding texts as written in the config.
    pub bindings: Vec<String>,
}

/// Every public socket, plus each configured binding's real address (for `bindings.json`).
#[derive(Debug, Default)]
pub struct PublicSockets {
    pub sockets: Vec<PublicSocket>,
    pub bindings: Vec<(String, SocketAddr)>,
}

impl PublicSockets {
    /// Binds the sockets `config` needs for the `BindingAdded` records among `changes` (and
    /// any port-0 binding not yet served: see the module doc). Changes nothing here; on error
    /// the already bound new sockets are dropped (closed) and the running set stays as it was.
    pub fn open(&self, changes: &[Change], config: &Config) -> Result<Vec<PublicSocket>, BindError> {
        let added: Vec<&str> = changes
            .iter()
            .filter_map(|c| if let Change::BindingAdded { key, .. } = c { Some(key.as_str()) } else { None })
            .collect();
        let mut opened = Vec::new();
        for (addr, bindings) in plan(config) {
            let wanted = added.contains(&addr.to_string().as_str()) || addr.port() == 0;
            if !wanted || self.sockets.iter().any(|s| serves(s, addr, &bindings)) {
                continue;
            }
            let err = |source| BindError::Bind { addr, bindings: bindings.join(", "), source };
            let socket = bind_one(addr).map_err(err)?;
            let local_addr = socket.local_addr().map_err(err)?;
            opened.push(PublicSocket { socket, key: addr.to_string(), local_addr, bindings });
        }
        Ok(opened)
    }

    /// Makes `config` the running one: the sockets of the `BindingRemoved` records among
    /// `changes` — and a port-0 socket whose binding text is gone while others share its key —
    /// are handed back for the caller to close once the listener has let go of them; the rest
    /// take `config`'s binding texts; `opened` joins them.
    pub fn commit(&mut self, changes: &[Change], config: &Config, opened: Vec<PublicSocket>) -> Vec<PublicSocket> {
        let removed: Vec<&str> = changes
            .iter()
            .filter_map(|c| if let Change::BindingRemoved { key } = c { Some(key.as_str()) } else { None })
            .collect();
        let plan = plan(config);
        let (mut kept, closed): (Vec<PublicSocket>, Vec<PublicSocket>) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|s| !removed.contains(&s.key.as_str()) && plan.iter().any(|(addr, b)| serves(s, *addr, b)));
        for s in &mut kept {
            if let Some((_, bindings)) = plan.iter().find(|(addr, b)| serves(s, *addr, b)) {
                s.bindings = bindings.clone();
            }
        }
        kept.extend(opened);
        self.sockets = kept;
        self.bindings = binding_addresses(config, &self.sockets);
        closed
    }
}

/// Groups the configured bindings into sockets: `(listen address, binding texts)`, in config
/// order.
pub fn plan(config: &Config) -> Vec<(SocketAddr, Vec<String>)> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, (SocketAddr, Vec<String>)> = BTreeMap::new();
    for site in &config.sites {
        for b in &site.bindings {
            let key = if b.port == 0 { format!("{}#{}", b.socket_key(), b.text) } else { b.socket_key() };
            let entry = groups.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                (b.listen_addr(), Vec::new())
            });
            if !entry.1.contains(&b.text) {
                entry.1.push(b.text.clone());
            }
        }
    }
    order.into_iter().filter_map(|k| groups.remove(&k)).collect()
}

/// Whether open socket `s` is the one the plan entry `(addr, bindings)` needs: the same
/// address, or for port 0 (any free port) the same IP and one of the same binding texts.
fn serves(s: &PublicSocket, addr: SocketAddr, bindings: &[String]) -> bool {
    if addr.port() == 0 {
        s.local_addr.ip() == addr.ip() && s.bindings.iter().any(|b| bindings.contains(b))
    } else {
        s.local_addr == addr
    }
}

/// Each configured binding's real address, in config order (for `bindings.json`).
fn binding_addresses(config: &Config, open: &[PublicSocket]) -> Vec<(String, SocketAddr)> {
    let mut out = Vec::new();
    for b in config.sites.iter().flat_map(|s| &s.bindings) {
        if let Some(s) = open.iter().find(|s| s.bindings.contains(&b.text)) {
            if !out.iter().any(|(t, _)| t == &b.text) {
                out.push((b.text.clone(), s.local_addr));
            }
        }
    }
    out
}

/// Binds one public socket (`SO_REUSEADDR`, backlog [`BACKLOG`]). Must run inside a tokio
/// runtime.
fn bind_one(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bindings: &str) -> Config {
        let text = format!("[[sites]]\nname = \"s\"\nbindings = {bindings}\nroutes = []\n");
        bulkhead_config::parse(&text, "t.toml", std::path::Path::new("/tmp")).unwrap()
    }

    #[test]
    fn shared_addresses_share_a_socket_but_port_zero_does_not() {
        let c = config(r#"["http://*:8080", "http://shop.example:8080", "http://127.0.0.1:0", "http://[::1]:0"]"#);
        let p = plan(&c);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].1, vec!["http://*:8080".to_string(), "http://shop.example:8080".to_string()]);
        assert_eq!(p[1].1, vec!["http://127.0.0.1:0".to_string()]);
    }

    /// Start-up: every socket comes from the diff from the empty config.
    fn start(c: &Config) -> PublicSockets {
        let mut s = PublicSockets::default();
        let changes = bulkhead_config::diff(&Config::empty(), c);
        let opened = s.open(&changes, c).unwrap();
        assert!(s.commit(&changes, c, opened).is_empty());
        s
    }

    #[tokio::test]
    async fn binds_port_zero_to_a_real_port() {
        let c = config(r#"["http://127.0.0.1:0"]"#);
        let s = start(&c);
        assert_eq!(s.sockets.len(), 1);
        assert_ne!(s.bindings[0].1.port(), 0);
        assert_eq!(s.bindings[0].0, "http://127.0.0.1:0");
    }

    /// A reload keeps the sockets still needed (same port), opens the added ones and hands
    /// back the removed ones; a socket that cannot be bound changes nothing.
    #[tokio::test]
    async fn a_reload_opens_and_closes_by_the_change_records() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = probe.local_addr().unwrap().port();
        drop(probe);
        let old = config(&format!(r#"["http://127.0.0.1:{taken}", "http://127.0.0.1:0"]"#));
        let mut s = start(&old);
        let kept = s.bindings.clone();
        let new = config(r#"["http://127.0.0.1:0"]"#);
        let changes = bulkhead_config::diff(&old, &new);
        assert!(changes.iter().any(|c| matches!(c, Change::BindingRemoved { .. })), "{changes:?}");
        let opened = s.open(&changes, &new).unwrap();
        assert!(opened.is_empty(), "the port-0 binding keeps its socket");
        let closed = s.commit(&changes, &new, opened);
        assert_eq!(closed.iter().map(|c| c.local_addr.port()).collect::<Vec<_>>(), [taken]);
        assert_eq!(s.bindings, kept[1..]);

        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let clash = config(&format!(r#"["http://127.0.0.1:0", "http://127.0.0.1:{port}"]"#));
        let err = s.open(&bulkhead_config::diff(&new, &clash), &clash).unwrap_err();
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
        assert_eq!(s.sockets.len(), 1);
    }
}
