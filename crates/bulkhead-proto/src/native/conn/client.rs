//! The listener's side of a native connection ([`Client`]): the handshake as the connecting
//! side, and opening request streams. Used by the listener's native dispatcher; it never waits
//! for credit or a worker's answer itself — the [`SendStream`] and [`RecvStream`] it returns do.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::streams::{RecvStream, SendStream};
use super::{new_stream, read_hello, start, write_hello, Shared, StreamError};
use crate::native::frame::{ErrorCode, Frame, Hello};
use crate::native::head::RequestHead;

/// The listener's side of one connection to a worker.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    /// Sends our HELLO, waits for the worker's, and starts the connection's tasks. The caller
    /// bounds the wait with a timeout.
    pub async fn handshake<IO>(mut io: IO, local: Hello) -> Result<Client, StreamError>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        write_hello(&mut io, local).await?;
        let (peer, rest) = read_hello(&mut io, &local).await?;
        if peer.version > local.version {
            return Err(StreamError::Protocol(format!("worker chose version {} above ours", peer.version)));
        }
        let (shared, _) = start(io, rest, local, peer, false);
        Ok(Client { shared })
    }

    /// Opens a stream with a request head. `end_stream` when there is no body. Fails without
    /// sending anything when the connection is closed, draining, or at the worker's
    /// `max_streams` — all safe to retry on another connection.
    pub fn open(&self, head: RequestHead, end_stream: bool) -> Result<(SendStream, RecvStream), StreamError> {
        let mut t = self.shared.lock();
        if let Some(reason) = &t.closed {
            return Err(StreamError::ConnectionLost(reason.clone()));
        }
        if t.draining {
            return Err(StreamError::Refused("the worker is draining".into()));
        }
        if t.streams.len() >= t.peer.max_streams as usize {
            return Err(StreamError::Refused(format!("{} streams open, the worker's maximum", t.streams.len())));
        }
        if head.encoded_len() > t.peer.max_head as usize {
            return Err(StreamError::Failed {
                code: ErrorCode::Protocol,
                message: format!("request head of {} bytes exceeds the worker's max_head", head.encoded_len()),
            });
        }
        let id = t.next_id;
        if id == u32::MAX {
            t.draining = true;
            return Err(StreamError::Refused("stream ids exhausted on this connection".into()));
        }
        t.next_id += 1;
        let (mut state, rx, ctl) = new_stream(&self.shared.local, &t.peer);
        state.send_open = !end_stream;
        t.streams.insert(id, state);
        self.shared.send(Frame::Request { stream: id, head, end_stream });
        drop(t);
        let send = SendStream { stream: id, shared: self.shared.clone(), ctl, ended: end_stream };
        Ok((send, RecvStream { stream: id, rx, shared: self.shared.clone(), unacked: 0, ended: false }))
    }

    /// Whether new streams can no longer be opened here (closed or draining).
    pub fn is_unusable(&self) -> bool {
        let t = self.shared.lock();
        t.closed.is_some() || t.draining
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.shared.lock().streams.len()
    }

    /// The worker's announced limits.
    pub fn peer(&self) -> Hello {
        self.shared.lock().peer
    }

    /// Closes the connection; open streams fail with `ConnectionLost`.
    pub fn close(&self, reason: &str) {
        self.shared.fail(reason.to_string());
    }
}
