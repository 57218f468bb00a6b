//! The body handles of one stream, either side: [`SendStream`] sends a request body (client) or
//! a response body (server), waiting for the peer's credit; [`RecvStream`] yields a response
//! (client) or a request body (server) and grants credit back as the application consumes it.
//! Created by [`super::Client::open`], the reader's routing of a REQUEST, and
//! [`super::Responder::send_response`]. Dropping a handle early cancels (or, for a worker's
//! unread request body, discards) the rest; it never holds the table's lock across an await.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Event, Shared, StreamCtl, StreamError};
use crate::native::frame::Frame;
use crate::native::head::ResponseHead;

/// A request body being sent, or a response body being sent: waits for credit.
pub struct SendStream {
    pub(super) stream: u32,
    pub(super) shared: Arc<Shared>,
    pub(super) ctl: Arc<StreamCtl>,
    pub(super) ended: bool,
}

/// A response (client side) or request body (server side) being received.
pub struct RecvStream {
    pub(super) stream: u32,
    pub(super) rx: mpsc::UnboundedReceiver<Event>,
    pub(super) shared: Arc<Shared>,
    /// Consumed but not yet granted back to the peer.
    pub(super) unacked: u64,
    pub(super) ended: bool,
}

impl SendStream {
    /// Sends body bytes, waiting for credit as needed; `end` on the last call. Fails when the
    /// stream or connection is gone.
    pub async fn send_data(&mut self, mut data: Bytes, end: bool) -> Result<(), StreamError> {
        if self.ended {
            return Err(StreamError::Protocol("data after the end of the stream".into()));
        }
        loop {
            let notified = self.ctl.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut t = self.shared.lock();
                if let Some(reason) = &t.closed {
                    return Err(StreamError::ConnectionLost(reason.clone()));
                }
                let max_frame = t.peer.max_frame as u64;
                let Some(s) = t.streams.get_mut(&self.stream) else {
                    return Err(StreamError::Cancelled);
                };
                let room = s.send_credit.min(max_frame) as usize;
                if room > 0 || data.is_empty() {
                    let chunk = data.split_to(room.min(data.len()));
                    s.send_credit -= chunk.len() as u64;
                    let last = end && data.is_empty();
                    if !chunk.is_empty() || last {
                        self.shared.send(Frame::Data { stream: self.stream, data: chunk, end_stream: last });
                    }
                    if last {
                        s.send_open = false;
                        self.ended = true;
                        Shared::maybe_remove(&mut t, self.stream);
                    }
                    if data.is_empty() {
                        return Ok(());
                    }
                    continue;
                }
            }
            notified.await;
        }
    }

    /// Ends the stream with no more data.
    pub async fn finish(&mut self) -> Result<(), StreamError> {
        self.send_data(Bytes::new(), true).await
    }

    /// The stream id (for logs).
    pub fn id(&self) -> u32 {
        self.stream
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        if !self.ended {
            // Abandoned mid-body (client gone, application failed): tell the peer.
            let mut t = self.shared.lock();
            if t.streams.remove(&self.stream).is_some() {
                self.shared.send(Frame::Cancel { stream: self.stream });
            }
        }
    }
}

impl RecvStream {
    /// Client side: waits for the response head. `bool` is true when there is no body.
    pub async fn response(&mut self) -> Result<(ResponseHead, bool), StreamError> {
        match self.rx.recv().await {
            Some(Event::Response(head, end)) => {
                self.ended = end;
                Ok((head, end))
            }
            Some(Event::Reset(e)) => {
                self.ended = true;
                Err(e)
            }
            Some(Event::Data(..)) => Err(StreamError::Protocol("DATA before RESPONSE".into())),
            None => Err(StreamError::ConnectionLost("connection closed".into())),
        }
    }

    /// Polls the next body chunk; `None` at the end of the body.
    pub fn poll_data(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, StreamError>>> {
        use std::task::Poll;
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let event = match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(e) => e,
            };
            match event {
                Some(Event::Data(data, end)) => {
                    self.ended = end;
                    self.consumed(data.len());
                    if data.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Some(Event::Reset(e)) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Event::Response(..)) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(StreamError::Protocol("second RESPONSE on a stream".into()))));
                }
                None => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(StreamError::ConnectionLost("connection closed".into()))));
                }
            }
        }
    }

    /// The next body chunk; `None` at the end of the body.
    pub async fn data(&mut self) -> Option<Result<Bytes, StreamError>> {
        std::future::poll_fn(|cx| self.poll_data(cx)).await
    }

    /// Whether the whole body has been received.
    pub fn is_end(&self) -> bool {
        self.ended
    }

    /// Grants credit back once half the initial window has been consumed.
    fn consumed(&mut self, n: usize) {
        self.unacked += n as u64;
        if self.ended || self.unacked < (self.shared.local.initial_window as u64 / 2).max(1) {
            return;
        }
        let mut t = self.shared.lock();
        if let Some(s) = t.streams.get_mut(&self.stream) {
            s.recv_window += self.unacked;
            self.shared.send(Frame::Window { stream: self.stream, increment: self.unacked as u32 });
        }
        self.unacked = 0;
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let mut t = self.shared.lock();
        if self.shared.server {
            // The application stopped reading the request body; keep the response going and
            // let the rest of the body flow into the void.
            if let Some(s) = t.streams.get_mut(&self.stream) {
                s.discard = true;
                let owed = self.unacked
                    + (self.shared.local.initial_window as u64
                        - s.recv_window.min(self.shared.local.initial_window as u64));
                if owed > 0 && s.recv_open {
                    s.recv_window += owed;
                    self.shared.send(Frame::Window { stream: self.stream, increment: owed as u32 });
                }
            }
        } else if t.streams.remove(&self.stream).is_some() {
            // The client went away: cancel the request in the worker.
            self.shared.send(Frame::Cancel { stream: self.stream });
        }
    }
}
