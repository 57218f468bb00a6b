//! The listener's shared state: the current route table, the pools' queues, the log sender, the
//! control sender, the connection count, the shutdown phase and the request-id generator.
//!
//! One [`Shared`] lives for the whole process, behind an `Arc` held by every connection. The
//! route table is an `Arc<Table>` behind a `RwLock` that is only written by a `Configure`; a
//! request clones the `Arc` once and keeps it, so a configuration swap is atomic for every
//! request and in-flight requests finish on the table they started with. Queues persist across
//! configurations (their workers and waiters are not the config's business).
//!
//! Layering: used by everything above the request path's services (control, accept, conn,
//! request); it imports only what it holds — [`crate::routing`], [`crate::queue`],
//! [`crate::log`], [`crate::to_manager`], [`crate::tls`], [`crate::acme_challenge`] and the
//! response [`crate::cache`] (configured, and emptied, each time a table is installed) — and
//! never a module above it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use tokio::sync::{watch, Notify};

use crate::log::LogSender;
use crate::queue::RequestQueue;
use crate::routing::Table;
use crate::to_manager::ControlTx;

/// Where the listener is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// `Shutdown` received: accept nothing new, let in-flight requests finish.
    Graceful,
    /// Grace is over (or the manager died): close every connection now.
    Abort,
}

/// State shared by the control task and every connection.
pub struct Shared {
    table: RwLock<Arc<Table>>,
    pools: RwLock<HashMap<String, Arc<RequestQueue>>>,
    pub log: LogSender,
    pub control: ControlTx,
    connections: AtomicU64,
    /// Open connections per client address, counted only while `max_connections_per_ip` is on.
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    pub connections_closed: Notify,
    phase: watch::Sender<Phase>,
    request_ids: AtomicU64,
    id_prefix: u64,
    /// The https sockets' TLS configurations.
    pub tls: crate::tls::TlsState,
    /// The ACME HTTP-01 challenges answered on http:// bindings.
    pub acme: crate::acme_challenge::AcmeChallenges,
    /// The response cache.
    pub cache: Arc<crate::cache::ResponseCache>,
}

/// Counts one open connection until dropped.
pub struct ConnectionGuard(Arc<Shared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.connections_closed.notify_waiters();
        }
    }
}

/// Counts one connection of a client address until dropped.
pub struct IpGuard(Arc<Shared>, IpAddr);

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut map = self.0.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

impl Shared {
    pub fn new(table: Table, log: LogSender, control: ControlTx) -> Arc<Self> {
        let id_prefix =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64) & 0xffff_ffff_ffff;
        let cache = Arc::new(crate::cache::ResponseCache::default());
        cache.configure((&table.cache).into());
        Arc::new(Shared {
            table: RwLock::new(Arc::new(table)),
            pools: RwLock::new(HashMap::new()),
            log,
            control,
            connections: AtomicU64::new(0),
            per_ip: Mutex::new(HashMap::new()),
            connections_closed: Notify::new(),
            phase: watch::channel(Phase::Running).0,
            request_ids: AtomicU64::new(0),
            id_prefix,
            tls: crate::tls::TlsState::new(),
            acme: crate::acme_challenge::AcmeChallenges::default(),
            cache,
        })
    }

    /// The current route table.
    pub fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_table(&self, table: Table) {
        self.cache.configure((&table.cache).into());
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    /// The queue of a pool.
    pub fn pool(&self, name: &str) -> Option<Arc<RequestQueue>> {
        self.pools.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// Every pool's queue.
    pub fn pools(&self) -> Vec<Arc<RequestQueue>> {
        self.pools.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Replaces the set of pools: keeps queues of pools that stay, creates new ones, and returns
    /// the queues of pools that were removed.
    pub fn set_pools(
        &self,
        wanted: impl Iterator<Item = (String, u32)>,
        timeout: std::time::Duration,
    ) -> Vec<Arc<RequestQueue>> {
        let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::new();
        for (name, queue_length) in wanted {
            let queue = match pools.remove(&name) {
                Some(q) => {
                    q.configure(queue_length, timeout);
                    q
                }
                None => RequestQueue::new(&name, queue_length, timeout, self.control.clone()),
            };
            next.insert(name, queue);
        }
        std::mem::replace(&mut *pools, next).into_values().collect()
    }

    /// The queue of a pool, created (with the given defaults) if the manager speaks of a pool the
    /// configuration does not have.
    pub fn pool_or_create(&self, name: &str, queue_length: u32, timeout: std::time::Duration) -> Arc<RequestQueue> {
        if let Some(q) = self.pool(name) {
            return q;
        }
        let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(name.to_string())
            .or_insert_with(|| RequestQueue::new(name, queue_length, timeout, self.control.clone()))
            .clone()
    }

    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }

    /// Counts a connection from `ip` against `limit` (zero = no limit, nothing counted): the
    /// guard, and whether that address is over the limit with it (the connection then gets one
    /// 503 `ConnLimit`, as past `max_connections`).
    pub fn ip_connection_opened(self: &Arc<Self>, ip: IpAddr, limit: u64) -> (Option<IpGuard>, bool) {
        if limit == 0 {
            return (None, false);
        }
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        *n += 1;
        let over = u64::from(*n) > limit;
        (Some(IpGuard(self.clone(), ip)), over)
    }

    /// Client connections open now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Acquire)
    }

    pub fn phase(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    /// A new request id: the listener's start time and a counter, in hex.
    pub fn next_request_id(&self) -> HeaderValue {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 29];
        let len = hex_id(self.id_prefix, n, &mut buf);
        HeaderValue::from_bytes(&buf[..len]).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

/// Writes `prefix-counter` in lowercase hex into `buf`, returning its length.
fn hex_id(prefix: u64, n: u64, buf: &mut [u8; 29]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut len = 0;
    for i in (0..12).rev() {
        buf[len] = HEX[((prefix >> (i * 4)) & 0xf) as usize];
        len += 1;
    }
    buf[len] = b'-';
    len += 1;
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in (0..digits).rev() {
        buf[len] = HEX[((n >> (i * 4)) & 0xf) as usize];
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_hex_and_distinct() {
        let mut buf = [0u8; 29];
        let n = hex_id(0xabc, 0x1f, &mut buf);
        assert_eq!(&buf[..n], b"000000000abc-1f");
        let n = hex_id(0xabc, 0, &mut buf);
        assert_eq!(&buf[..n], b"000000000abc-0");
        let n = hex_id(u64::MAX, u64::MAX, &mut buf);
        assert_eq!(n, 29);
    }
}
