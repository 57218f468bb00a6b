//! Binding the public listening sockets (DESIGN §1: the manager binds, the listener serves).
//!
//! Called once by [`crate::run`] at start-up. One socket per distinct `Binding::listen_addr()`
//! — bindings that share an address share a socket — except that a port-0 binding always gets
//! its own socket (each such binding string means "some free port"). Sockets are bound with
//! `SO_REUSEADDR` and a backlog of 1024, close-on-exec in the manager; the spawner hands them
//! to the listener at fds 4, 5, …. The manager keeps them open for its whole life so a
//! restarted listener finds the same ports.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;

use bulkhead_config::Config;

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
    pub local_addr: SocketAddr,
    /// Binding texts as written in the config.
    pub bindings: Vec<String>,
}

/// Every public socket, plus each configured binding's real address (for `bindings.json`).
#[derive(Debug)]
pub struct PublicSockets {
    pub sockets: Vec<PublicSocket>,
    pub bindings: Vec<(String, SocketAddr)>,
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

/// Binds every socket of the plan. Must run inside a tokio runtime.
pub fn bind(config: &Config) -> Result<PublicSockets, BindError> {
    let mut sockets = Vec::new();
    for (addr, bindings) in plan(config) {
        let err = |source| BindError::Bind { addr, bindings: bindings.join(", "), source };
        let socket = bind_one(addr).map_err(err)?;
        let local_addr = socket.local_addr().map_err(err)?;
        sockets.push(PublicSocket { socket, local_addr, bindings });
    }
    let mut bindings = Vec::new();
    for site in &config.sites {
        for b in &site.bindings {
            if let Some(s) = sockets.iter().find(|s| s.bindings.contains(&b.text)) {
                bindings.push((b.text.clone(), s.local_addr));
            }
        }
    }
    Ok(PublicSockets { sockets, bindings })
}

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

    #[tokio::test]
    async fn binds_port_zero_to_a_real_port() {
        let c = config(r#"["http://127.0.0.1:0"]"#);
        let s = bind(&c).unwrap();
        assert_eq!(s.sockets.len(), 1);
        assert_ne!(s.bindings[0].1.port(), 0);
        assert_eq!(s.bindings[0].0, "http://127.0.0.1:0");
    }
}
