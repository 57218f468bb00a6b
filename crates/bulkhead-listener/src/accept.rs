//! Accepting client connections: one loop per listening socket, the whole server's connection
//! limit (`limits.max_connections`) and the per-client-address one
//! (`limits.max_connections_per_ip`, nginx's `limit_conn`): past either, a connection is still
//! served, but only with one 503 `ConnLimit` and no keep-alive — [`crate::conn`] does that.
//!
//! The loop is generic over what it accepts from ([`Listen`]): a plain TCP listener, whose
//! streams go to [`crate::conn::serve`] with their local and peer addresses. On an https socket
//! the stream is wrapped in TLS ([`crate::tls`]) in the connection's own task, so a slow
//! handshake never holds up the loop. Called by [`crate::control`] when a configuration names a socket; uses
//! only [`crate::conn`] and [`crate::state`] below it. Never reads from a connection itself.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use bulkhead_config::Scheme;

use crate::conn::Endpoints;
use crate::state::{ConnectionGuard, IpGuard, Phase, Shared};

/// Something connections are accepted from.
pub trait Listen: Send + 'static {
    /// A client connection's byte stream.
    type Stream: crate::conn::Stream;

    /// The next connection, its local and its peer address.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr, SocketAddr)>> + Send;
}

impl Listen for TcpListener {
    type Stream = TcpStream;

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        Ok((stream, local, peer))
    }
}

/// Accepts connections on one inherited socket (`socket` is its fd, the key for site lookup)
/// until the listener stops accepting or this socket is dropped by a new configuration (`stop`
/// turns true).
pub async fn accept_loop<L: Listen>(shared: Arc<Shared>, listener: L, socket: i32, mut stop: watch::Receiver<bool>) {
    let mut phase = shared.phase();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, local, peer)) => {
                    let shared = shared.clone();
                    tokio::spawn(connection(shared, stream, Endpoints { socket, local, peer, tls: false }));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept on fd {socket}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
            changed = phase.changed() => if changed.is_err() || *phase.borrow() != Phase::Running { break },
        }
    }
}

/// Counts one connection for its whole life and serves it, marked when it is over the limit.
/// On an https socket the TLS handshake comes first, in this task, within the header-wait
/// timeout; a failed handshake is counted and the connection closed. An https socket is never
/// served in plain text, even while it has no certificate.
///
/// Not an `async fn`: an `async fn` keeps its arguments (the stream, the endpoints) in its future
/// for the connection's life beside the copies it hands on; here only the counting guards and
/// the connection's own future are kept.
fn connection<S: crate::conn::Stream>(
    shared: Arc<Shared>,
    stream: S,
    ends: Endpoints,
) -> impl Future<Output = ()> + Send {
    let counted = shared.connection_opened();
    let table = shared.table();
    let (per_ip, ip_over) = shared.ip_connection_opened(ends.peer.ip(), table.limits.max_connections_per_ip);
    let over_limit = ip_over || shared.connections() > table.limits.max_connections;
    let served = if table.scheme_of(ends.socket) != Scheme::Https {
        Either::Left(crate::conn::serve(shared, table, stream, ends, over_limit))
    } else {
        // Boxed: the handshake and a TLS connection's state are several times a plain
        // connection's, and the task of every plain connection would otherwise be sized for them.
        let acceptor = shared.tls.acceptor(ends.socket);
        Either::Right(Box::pin(tls_connection(shared, table, acceptor, stream, ends, over_limit)))
    };
    Held { served, _guards: (counted, per_ip) }
}

pin_project_lite::pin_project! {
    /// A connection's future with the guards that count it: a struct, not an `async` block,
    /// which would hold the future twice (captured, and awaited).
    struct Held<F> {
        #[pin]
        served: F,
        _guards: (ConnectionGuard, Option<IpGuard>),
    }
}

impl<F: Future<Output = ()>> Future for Held<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().served.poll(cx)
    }
}

/// The TLS half of [`connection`]: the handshake within the header-wait timeout, then serve.
async fn tls_connection<S>(
    shared: Arc<Shared>,
    table: Arc<crate::routing::Table>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stream: S,
    mut ends: Endpoints,
    over_limit: bool,
) where
    S: crate::conn::Stream,
{
    let Some(acceptor) = acceptor else {
        // No certificate for this socket yet (an ACME site before its first one): never plain text.
        shared.tls.count_failure();
        return;
    };
    let handshake = tokio::time::timeout(table.limits.header_wait_timeout, acceptor.accept(stream));
    match handshake.await {
        Ok(Ok(stream)) => {
            ends.tls = true;
            crate::conn::serve(shared.clone(), table, stream, ends, over_limit).await;
        }
        Ok(Err(_)) | Err(_) => shared.tls.count_failure(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size3<A, B, C, F: Fn(A, B, C) -> Fut, Fut>(_: F) -> usize {
        std::mem::size_of::<Fut>()
    }
    fn future_size5<A, B, C, D, E, F: Fn(A, B, C, D, E) -> Fut, Fut>(_: F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every idle connection keeps its task: a plain one must not be sized for TLS's state.
    #[test]
    fn a_plain_connection_task_is_not_sized_for_tls() {
        let plain = future_size3(connection::<TcpStream>);
        let serve_plain = future_size5(crate::conn::serve::<TcpStream>);
        let serve_tls = future_size5(crate::conn::serve::<tokio_rustls::server::TlsStream<TcpStream>>);
        assert!(plain < serve_tls, "connection task {plain} B, TLS serve {serve_tls} B");
        assert!(plain <= serve_plain + 512, "connection task {plain} B, plain serve {serve_plain} B");
        eprintln!("connection task {plain} B, plain serve {serve_plain} B, TLS serve {serve_tls} B");
    }
}
