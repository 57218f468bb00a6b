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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use super::frame::{decode, encode, ErrorCode, Frame, Hello, NativeError, VERSION};
use super::head::{RequestHead, ResponseHead};

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
    tokio::spawn(write_loop(write, wrx, shared.clone()));
    tokio::spawn(read_loop(read, rbuf, shared.clone()));
    (shared, irx)
}

async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::UnboundedReceiver<Outgoing>, shared: Arc<Shared>) {
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut closing = false;
    while let Some(first) = rx.recv().await {
        // Let every other task that is ready run first, so the frames they queue in this tick
        // leave in this write. Without it tokio runs a freshly woken task next (its LIFO slot),
        // and the writer would send one frame per write — no batching at all.
        tokio::task::yield_now().await;
        let mut next = Some(first);
        // Take everything queued right now: one write for all of it.
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                // Only a head with a field over 65535 bytes can fail to encode; heads are checked
                // against the peer's `max_head` (far smaller) before they are queued.
                Outgoing::Frame(f) => {
                    let _ = encode(&f, &mut out);
                }
                Outgoing::Close => closing = true,
            }
            if out.len() >= 256 * 1024 {
                break;
            }
        }
        if let Err(e) = w.write_all(&out).await {
            shared.fail(format!("write failed: {e}"));
            break;
        }
        out.clear();
        if closing && rx.is_empty() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(mut r: R, mut buf: BytesMut, shared: Arc<Shared>) {
    let reason = loop {
        match process(&mut buf, &shared) {
            Ok(()) => {}
            Err(e) => {
                let msg = e.to_string();
                shared.send(Frame::Error { stream: 0, code: ErrorCode::Protocol, message: Bytes::from(msg.clone()) });
                break format!("protocol error from peer: {msg}");
            }
        }
        if buf.capacity() - buf.len() < 8192 {
            buf.reserve(64 * 1024);
        }
        match r.read_buf(&mut buf).await {
            Ok(0) => break "peer closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break format!("read failed: {e}"),
        }
    };
    shared.fail(reason);
}

/// Decodes and routes every whole frame in `buf`.
fn process(buf: &mut BytesMut, shared: &Arc<Shared>) -> Result<(), ConnFault> {
    let mut table: Option<MutexGuard<'_, Table>> = None;
    while let Some(frame) = decode(buf, &shared.local)? {
        let t = table.get_or_insert_with(|| shared.lock());
        route(frame, t, shared)?;
    }
    Ok(())
}

/// A fault that closes the connection.
#[derive(Debug, thiserror::Error)]
enum ConnFault {
    #[error(transparent)]
    Decode(#[from] NativeError),
    #[error("{0}")]
    Rule(String),
}

fn route(frame: Frame, t: &mut Table, shared: &Arc<Shared>) -> Result<(), ConnFault> {
    let server = shared.server;
    match frame {
        Frame::Hello(_) => return Err(ConnFault::Rule("HELLO after the handshake".into())),
        Frame::Ping { opaque } => shared.send(Frame::Pong { opaque }),
        Frame::Pong { .. } => {}
        Frame::GoAway { .. } => {
            if server {
                return Err(ConnFault::Rule("GOAWAY from the listener".into()));
            }
            t.draining = true;
        }
        Frame::Request { stream, head, end_stream } => {
            if !server {
                return Err(ConnFault::Rule("REQUEST sent to the listener".into()));
            }
            if stream <= t.highest_seen {
                return Err(ConnFault::Rule(format!("stream id {stream} not above {}", t.highest_seen)));
            }
            t.highest_seen = stream;
            if t.draining || t.streams.len() >= shared.local.max_streams as usize {
                shared.send(Frame::Error { stream, code: ErrorCode::Refused, message: Bytes::from_static(b"busy") });
                return Ok(());
            }
            let (mut state, rx, ctl) = new_stream(&shared.local, &t.peer);
            state.recv_open = !end_stream;
            t.streams.insert(stream, state);
            let request = IncomingRequest {
                head,
                body: RecvStream { stream, rx, shared: shared.clone(), unacked: 0, ended: end_stream },
                respond: Responder { stream, shared: shared.clone(), ctl, sent: false },
            };
            if let Some(incoming) = &t.incoming {
                let _ = incoming.send(request);
            }
        }
        Frame::Response { stream, head, end_stream } => {
            if server {
                return Err(ConnFault::Rule("RESPONSE sent to the worker".into()));
            }
            if let Some(s) = live(t, stream)? {
                let _ = s.events.send(Event::Response(head, end_stream));
                if end_stream {
                    s.recv_open = false;
                    Shared::maybe_remove(t, stream);
                }
            }
        }
        Frame::Data { stream, data, end_stream } => {
            if let Some(s) = live(t, stream)? {
                let len = data.len() as u64;
                if len > s.recv_window {
                    return Err(ConnFault::Rule(format!(
                        "stream {stream}: {len} bytes sent with {} of window",
                        s.recv_window
                    )));
                }
                if !s.recv_open {
                    return Err(ConnFault::Rule(format!("stream {stream}: DATA after END_STREAM")));
                }
                if s.discard {
                    if len > 0 && !end_stream {
                        shared.send(Frame::Window { stream, increment: len as u32 });
                    }
                } else {
                    s.recv_window -= len;
                    let _ = s.events.send(Event::Data(data, end_stream));
                }
                if end_stream {
                    s.recv_open = false;
                    Shared::maybe_remove(t, stream);
                }
            }
        }
        Frame::Window { stream, increment } => {
            if let Some(s) = live(t, stream)? {
                s.send_credit = s.send_credit.saturating_add(increment as u64);
                s.ctl.notify.notify_waiters();
            }
        }
        Frame::Cancel { stream } => reset(t, stream, StreamError::Cancelled)?,
        Frame::Error { stream: 0, code, message } => {
            return Err(ConnFault::Rule(format!(
                "peer failed the connection ({code:?}): {}",
                String::from_utf8_lossy(&message)
            )))
        }
        Frame::Error { stream, code, message } => {
            let message = String::from_utf8_lossy(&message).into_owned();
            let err = if code == ErrorCode::Refused {
                StreamError::Refused(message)
            } else {
                StreamError::Failed { code, message }
            };
            reset(t, stream, err)?;
        }
    }
    Ok(())
}

/// The state of an open stream; `None` for one already closed (late frames are dropped);
/// an error for an id that was never opened.
fn live(t: &mut Table, stream: u32) -> Result<Option<&mut StreamState>, ConnFault> {
    let opened = if t.next_id > 1 { stream < t.next_id } else { stream <= t.highest_seen };
    match t.streams.get_mut(&stream) {
        Some(s) => Ok(Some(s)),
        None if opened => Ok(None),
        None => Err(ConnFault::Rule(format!("frame for stream {stream}, which was never opened"))),
    }
}

fn reset(t: &mut Table, stream: u32, err: StreamError) -> Result<(), ConnFault> {
    if live(t, stream)?.is_some() {
        if let Some(s) = t.streams.remove(&stream) {
            let _ = s.events.send(Event::Reset(err.clone()));
            s.ctl.notify.notify_waiters();
        }
    }
    Ok(())
}

/// The listener's side of one connection to a worker.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

/// A request body being sent, or a response body being sent: waits for credit.
pub struct SendStream {
    stream: u32,
    shared: Arc<Shared>,
    ctl: Arc<StreamCtl>,
    ended: bool,
}

/// A response (client side) or request body (server side) being received.
pub struct RecvStream {
    stream: u32,
    rx: mpsc::UnboundedReceiver<Event>,
    shared: Arc<Shared>,
    /// Consumed but not yet granted back to the peer.
    unacked: u64,
    ended: bool,
}

/// A request that arrived at a worker.
pub struct IncomingRequest {
    pub head: RequestHead,
    pub body: RecvStream,
    pub respond: Responder,
}

/// Sends the response for one [`IncomingRequest`].
pub struct Responder {
    stream: u32,
    shared: Arc<Shared>,
    ctl: Arc<StreamCtl>,
    sent: bool,
}

/// The worker's side of one connection; yields requests.
pub struct Server {
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedReceiver<IncomingRequest>,
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
    stream: u32,
    shared: Arc<Shared>,
    ctl: Arc<StreamCtl>,
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

#[cfg(test)]
mod tests;
