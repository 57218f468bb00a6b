//! One native-protocol connection, either side: the stream table, flow-control windows, the
//! reader task and the batching writer task. The listener ([`Client`]) and the worker SDK
//! ([`Server`]) are thin adapters over this; neither sees a frame.
//!
//! Two tasks per connection:
//! - the **writer** owns the write half and an unbounded queue of frames; it takes every frame
//!   queued at the moment it wakes, encodes them into one buffer and sends it with one write
//!   (the batching that makes the protocol fast, `docs/protocol.md` "Writing frames");
//! - the **reader** owns the read half, decodes frames and routes them to the streams.
//!
//! Application-side handles ([`SendStream`], [`RecvStream`]) push frames straight onto the
//! writer's queue, under the stream table's lock so that frame order per stream is the order of
//! the calls. Memory is bounded by the windows: a sender waits for credit, a receiver grants it
//! only as the application consumes data. Reading and writing never wait on each other, so two
//! peers that both have much to send cannot deadlock.
//!
//! Its parts: this file holds the state both tasks and every handle share (the stream table,
//! [`StreamError`]) and the handshake; [`io`] the reader and writer loops and the routing of
//! incoming frames; [`streams`] the body handles [`SendStream`] and [`RecvStream`]; [`client`]
//! the listener's side ([`Client`]); [`server`] the worker's side ([`Server`], [`Responder`]).
//! It never blocks a task on the lock across an await, and never buffers past the windows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use super::frame::{decode, encode, ErrorCode, Frame, Hello};
use super::head::ResponseHead;

mod client;
mod io;
mod server;
mod streams;

pub use client::Client;
pub use server::{CancelWatch, IncomingRequest, Responder, Server};
pub use streams::{RecvStream, SendStream};

/// Why a stream or a connection failed, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The connection closed or failed (`detail` says how). Whether the request may be retried
    /// depends on what the caller had received.
    #[error("native connection lost: {0}")]
    ConnectionLost(String),
    /// The peer refused the stream before starting it (draining, too many streams): retry
    /// elsewhere is safe.
    #[error("stream refused by the worker: {0}")]
    Refused(String),
    /// The peer cancelled the stream.
    #[error("stream cancelled by the peer")]
    Cancelled,
    /// The peer reported an error for the stream.
    #[error("stream failed ({code:?}): {message}")]
    Failed { code: ErrorCode, message: String },
    /// The peer broke the protocol; the connection is closed.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// What a [`RecvStream`] yields.
#[derive(Debug)]
enum Event {
    Response(ResponseHead, bool),
    Data(Bytes, bool),
    Reset(StreamError),
}

/// What the writer task is asked to do.
enum Outgoing {
    Frame(Frame),
    /// A response head and the first piece of its body: one item, so the writer never sends
    /// the head in one write and the body in the next ([`Responder::send_response_with_data`]).
    Pair(Frame, Frame),
    /// Flush what is queued, shut the write side down and stop.
    Close,
}

/// Per-stream state shared with the application handles.
struct StreamCtl {
    /// Wakes a sender waiting for credit, or for the stream's end.
    notify: Notify,
}

struct StreamState {
    events: mpsc::UnboundedSender<Event>,
    ctl: Arc<StreamCtl>,
    /// Bytes we may still send.
    send_credit: u64,
    /// Bytes the peer may still send us.
    recv_window: u64,
    send_open: bool,
    recv_open: bool,
    /// The application dropped the body unread: grant credit back and drop the data.
    discard: bool,
}

struct Table {
    streams: HashMap<u32, StreamState>,
    /// Client: next id to open. Server: highest id seen.
    next_id: u32,
    highest_seen: u32,
    closed: Option<String>,
    draining: bool,
    peer: Hello,
    /// Server only: where new requests go; dropped when the connection fails.
    incoming: Option<mpsc::UnboundedSender<IncomingRequest>>,
}

struct Shared {
    table: Mutex<Table>,
    writer: mpsc::UnboundedSender<Outgoing>,
    local: Hello,
    server: bool,
    closed_flag: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, frame: Frame) {
        // The writer only goes away with the connection; frames for a dead connection are moot.
        let _ = self.writer.send(Outgoing::Frame(frame));
    }

    /// Queues two frames that must leave in the same write.
    fn send_pair(&self, first: Frame, second: Frame) {
        let _ = self.writer.send(Outgoing::Pair(first, second));
    }

    /// Fails the whole connection: every open stream is reset, waiting senders woken.
    fn fail(&self, reason: String) {
        let mut t = self.lock();
        if t.closed.is_none() {
            t.closed = Some(reason.clone());
        }
        self.closed_flag.store(true, Ordering::Release);
        t.incoming = None;
        let _ = self.writer.send(Outgoing::Close);
        for (_, s) in t.streams.drain() {
            let _ = s.events.send(Event::Reset(StreamError::ConnectionLost(reason.clone())));
            s.ctl.notify.notify_waiters();
        }
    }

    fn maybe_remove(t: &mut Table, id: u32) {
        if t.streams.get(&id).is_some_and(|s| !s.send_open && !s.recv_open) {
            t.streams.remove(&id);
        }
    }
}

fn new_stream(local: &Hello, peer: &Hello) -> (StreamState, mpsc::UnboundedReceiver<Event>, Arc<StreamCtl>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let ctl = Arc::new(StreamCtl { notify: Notify::new() });
    let state = StreamState {
        events: tx,
        ctl: ctl.clone(),
        send_credit: peer.initial_window as u64,
        recv_window: local.initial_window as u64,
        send_open: true,
        recv_open: true,
        discard: false,
    };
    (state, rx, ctl)
}

/// Starts the reader and writer tasks on `io` after the handshake has set `peer`.
fn start<IO>(
    io: IO,
    rbuf: BytesMut,
    local: Hello,
    peer: Hello,
    server: bool,
) -> (Arc<Shared>, Option<mpsc::UnboundedReceiver<IncomingRequest>>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (wtx, wrx) = mpsc::unbounded_channel();
    let (itx, irx) = if server {
        let (a, b) = mpsc::unbounded_channel();
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let shared = Arc::new(Shared {
        table: Mutex::new(Table {
            streams: HashMap::new(),
            next_id: 1,
            highest_seen: 0,
            closed: None,
            draining: false,
            peer,
            incoming: itx,
        }),
        writer: wtx,
        local,
        server,
        closed_flag: AtomicBool::new(false),
    });
    tokio::spawn(io::write_loop(write, wrx, shared.clone()));
    tokio::spawn(io::read_loop(read, rbuf, shared.clone()));
    (shared, irx)
}

async fn write_hello<IO: AsyncWrite + Unpin>(io: &mut IO, hello: Hello) -> Result<(), StreamError> {
    let mut out = BytesMut::new();
    encode(&Frame::Hello(hello), &mut out).map_err(|e| StreamError::Protocol(e.to_string()))?;
    io.write_all(&out).await.map_err(|e| StreamError::ConnectionLost(format!("sending HELLO: {e}")))
}

/// Reads the peer's HELLO; returns it with whatever bytes followed it.
async fn read_hello<IO: AsyncRead + Unpin>(io: &mut IO, local: &Hello) -> Result<(Hello, BytesMut), StreamError> {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        match decode(&mut buf, local) {
            Ok(Some(Frame::Hello(h))) => {
                if h.version == 0 || h.max_frame == 0 || h.max_head == 0 {
                    return Err(StreamError::Protocol(format!("unusable HELLO {h:?}")));
                }
                return Ok((h, buf));
            }
            Ok(Some(other)) => return Err(StreamError::Protocol(format!("expected HELLO, got {other:?}"))),
            Ok(None) => {}
            Err(e) => return Err(StreamError::Protocol(e.to_string())),
        }
        match io.read_buf(&mut buf).await {
            Ok(0) => return Err(StreamError::ConnectionLost("closed during the handshake".into())),
            Ok(_) => {}
            Err(e) => return Err(StreamError::ConnectionLost(format!("reading HELLO: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests;
