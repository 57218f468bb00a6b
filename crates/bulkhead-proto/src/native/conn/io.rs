//! The two tasks of a native connection: [`write_loop`] owns the write half and sends every
//! frame queued when it wakes in one write (the protocol's batching); [`read_loop`] owns the
//! read half, decodes frames and [`route`]s each to its stream under the table's lock, taking
//! the lock once per read, not per frame. Called only by [`super::start`]. A broken rule of the
//! protocol fails the whole connection ([`ConnFault`]); neither loop ever waits on the other.

use std::sync::{Arc, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::server::{IncomingRequest, Responder};
use super::streams::RecvStream;
use super::{new_stream, Event, Outgoing, Shared, StreamError, StreamState, Table};
use crate::native::frame::{decode, encode, ErrorCode, Frame, NativeError};

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
) {
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
                Outgoing::Pair(a, b) => {
                    let _ = encode(&a, &mut out);
                    let _ = encode(&b, &mut out);
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

pub(super) async fn read_loop<R: AsyncRead + Unpin>(mut r: R, mut buf: BytesMut, shared: Arc<Shared>) {
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
