//! The worker's side of a native connection: [`Server`] answers the handshake and yields each
//! [`IncomingRequest`], whose [`Responder`] sends the response head (then a [`SendStream`] the
//! body) or fails the stream; [`CancelWatch`] tells the application when the listener cancels.
//! Used by the worker SDK (`bulkhead-worker`). A responder dropped without answering fails its
//! stream with an application error, so the listener never waits on a request nobody serves.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::streams::{RecvStream, SendStream};
use super::{read_hello, start, write_hello, Shared, StreamCtl, StreamError};
use crate::native::frame::{ErrorCode, Frame, Hello, VERSION};
use crate::native::head::{RequestHead, ResponseHead};

/// A request that arrived at a worker.
pub struct IncomingRequest {
    pub head: RequestHead,
    pub body: RecvStream,
    pub respond: Responder,
}

/// Sends the response for one [`IncomingRequest`].
pub struct Responder {
    pub(super) stream: u32,
    pub(super) shared: Arc<Shared>,
    pub(super) ctl: Arc<StreamCtl>,
    pub(super) sent: bool,
}

/// The worker's side of one connection; yields requests.
pub struct Server {
    pub(super) shared: Arc<Shared>,
    pub(super) incoming: mpsc::UnboundedReceiver<IncomingRequest>,
}

impl Server {
    /// Waits for the listener's HELLO, answers with ours (version at most the listener's), and
    /// starts the connection's tasks.
    pub async fn handshake<IO>(mut io: IO, local: Hello) -> Result<Server, StreamError>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (peer, rest) = read_hello(&mut io, &local).await?;
        let chosen = Hello { version: peer.version.min(VERSION).min(local.version), ..local };
        write_hello(&mut io, chosen).await?;
        let (shared, incoming) = start(io, rest, chosen, peer, true);
        let incoming = incoming.ok_or_else(|| StreamError::Protocol("server without an accept queue".into()))?;
        Ok(Server { shared, incoming })
    }

    /// The next request; `None` once the connection is closed.
    pub async fn accept(&mut self) -> Option<IncomingRequest> {
        self.incoming.recv().await
    }

    /// Starts draining: refuses new streams and tells the listener which ones will be served.
    pub fn go_away(&self) {
        let mut t = self.shared.lock();
        t.draining = true;
        self.shared.send(Frame::GoAway { last_stream: t.highest_seen });
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.shared.lock().streams.len()
    }

    /// Flushes what is queued and closes the connection; open streams fail.
    pub fn close(&self, reason: &str) {
        self.shared.fail(reason.to_string());
    }
}

impl Responder {
    /// Sends the response head; `end` when there is no body. Fails when the listener has
    /// cancelled the stream or the head exceeds the listener's `max_head`.
    pub fn send_response(mut self, head: ResponseHead, end: bool) -> Result<SendStream, StreamError> {
        let mut t = self.shared.lock();
        if head.encoded_len() > t.peer.max_head as usize {
            return Err(StreamError::Failed {
                code: ErrorCode::Application,
                message: format!("response head of {} bytes exceeds the listener's max_head", head.encoded_len()),
            });
        }
        let Some(s) = t.streams.get_mut(&self.stream) else {
            self.sent = true;
            return Err(StreamError::Cancelled);
        };
        self.shared.send(Frame::Response { stream: self.stream, head, end_stream: end });
        if end {
            s.send_open = false;
            Shared::maybe_remove(&mut t, self.stream);
        }
        self.sent = true;
        drop(t);
        Ok(SendStream { stream: self.stream, shared: self.shared.clone(), ctl: self.ctl.clone(), ended: end })
    }

    /// Sends the response head together with the first piece of its body (as much of `data` as
    /// the stream's credit and the listener's `max_frame` allow; `end` when `data` is the whole
    /// body), queued as one item so both leave in the same write. A worker killed right after
    /// has then delivered its head with that body, never a head whose body is lost — which the
    /// listener, having passed the head on to the client, could only answer by cutting the
    /// response short. Returns the body stream and what of `data` did not fit yet.
    pub fn send_response_with_data(
        mut self,
        head: ResponseHead,
        mut data: Bytes,
        end: bool,
    ) -> Result<(SendStream, Bytes), StreamError> {
        let mut t = self.shared.lock();
        if head.encoded_len() > t.peer.max_head as usize {
            return Err(StreamError::Failed {
                code: ErrorCode::Application,
                message: format!("response head of {} bytes exceeds the listener's max_head", head.encoded_len()),
            });
        }
        let max_frame = t.peer.max_frame as u64;
        self.sent = true;
        let Some(s) = t.streams.get_mut(&self.stream) else {
            return Err(StreamError::Cancelled);
        };
        let room = s.send_credit.min(max_frame) as usize;
        let chunk = data.split_to(room.min(data.len()));
        s.send_credit -= chunk.len() as u64;
        let last = end && data.is_empty();
        self.shared.send_pair(
            Frame::Response { stream: self.stream, head, end_stream: false },
            Frame::Data { stream: self.stream, data: chunk, end_stream: last },
        );
        if last {
            s.send_open = false;
            Shared::maybe_remove(&mut t, self.stream);
        }
        drop(t);
        let send = SendStream { stream: self.stream, shared: self.shared.clone(), ctl: self.ctl.clone(), ended: last };
        Ok((send, data))
    }

    /// A handle that tells when the listener cancels this stream, usable after the responder
    /// has been consumed by [`send_response`](Self::send_response).
    pub fn cancel_watch(&self) -> CancelWatch {
        CancelWatch { stream: self.stream, shared: self.shared.clone(), ctl: self.ctl.clone() }
    }

    /// Resolves when the listener cancels the stream or the connection is lost: the
    /// application's work for it should be dropped.
    pub async fn cancelled(&self) {
        self.cancel_watch().cancelled().await
    }

    /// Fails the stream with an application error instead of a response.
    pub fn fail(mut self, message: &str) {
        self.sent = true;
        let mut t = self.shared.lock();
        if t.streams.remove(&self.stream).is_some() {
            self.shared.send(Frame::Error {
                stream: self.stream,
                code: ErrorCode::Application,
                message: Bytes::copy_from_slice(message.as_bytes()),
            });
        }
    }
}

/// Tells when a stream has been cancelled by the peer or lost with its connection.
pub struct CancelWatch {
    pub(super) stream: u32,
    pub(super) shared: Arc<Shared>,
    pub(super) ctl: Arc<StreamCtl>,
}

impl CancelWatch {
    /// Resolves once the stream is gone: cancelled, failed, or finished in both directions.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.ctl.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.shared.lock().streams.contains_key(&self.stream) {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.sent {
            let mut t = self.shared.lock();
            if t.streams.remove(&self.stream).is_some() {
                self.shared.send(Frame::Error {
                    stream: self.stream,
                    code: ErrorCode::Application,
                    message: Bytes::from_static(b"the application produced no response"),
                });
            }
        }
    }
}
