//! Response bodies to a client, as a stack of small layers.
//!
//! At the bottom, [`ResponseBody`] says where the bytes come from: nothing, a small buffer, a
//! file streamed in chunks, or a worker's response streamed through (whose transport gives its
//! own connection back, [`crate::dispatch`]). Each concern that must act when a response ends —
//! or is dropped early because the client went away — is one [`Layered`] wrapper around it with
//! one [`OnEnd`] hook, told how many body bytes went out and whether the body was complete:
//!
//! - the queue-slot lease ([`Hold`] of the request's slot, [`Leased`]): the worker slot is
//!   released when the response ends, not when its head is sent;
//! - the access-log completion ([`AccessLog`], [`Logged`]): one log line with the bytes really
//!   sent, the request's body bytes, the time taken, and `win32-status` 64 if cut short;
//! - the connection's in-flight count, added by [`crate::conn`] on top;
//! - the response cache's tee ([`ResponseBody::Tee`]): a worker body the cache may store is
//!   copied as it streams (up to a limit), and handed to its [`TeeSink`] when it ended whole.
//!
//! Layers are generic (no `Box<dyn>` per layer, no allocation per layer); the access record is
//! boxed once per request because it is large and the body is moved through hyper. Built by the
//! request path ([`crate::request`]) and static files ([`crate::static_files`]); uses only
//! [`crate::dispatch`], [`crate::body`] and [`crate::log`] below it. Never blocks: a hook only
//! counts, releases or queues a log record.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BodyProgress, BoxError};
use crate::dispatch::WorkerBody;
use crate::log::{AccessRecord, LogSender};

/// Bytes read from a file per chunk when streaming.
pub const FILE_CHUNK: usize = 64 * 1024;

/// Where a response's bytes come from.
pub enum ResponseBody {
    Empty,
    Full(Option<Bytes>),
    File(FileChunks),
    Worker(WorkerBody),
    /// A worker body copied for the response cache as it streams.
    Tee(Box<Tee>),
    /// The pieces of a `multipart/byteranges` answer ([`byteranges`]).
    Parts(Box<Parts>),
}

/// A body sent as a sequence of pieces: buffers, and ranges of a file streamed in chunks.
pub struct Parts {
    pieces: std::collections::VecDeque<Piece>,
    remaining: u64,
}

enum Piece {
    Bytes(Bytes),
    File(FileChunks),
}

/// What the parts of a `multipart/byteranges` answer are cut from.
pub enum PartSource {
    /// The whole representation in memory (a small file, a cache entry): parts are slices of it.
    Buffer(Bytes),
    /// An open file: parts are streamed from it as [`ResponseBody::file`] streams.
    File(Arc<std::fs::File>),
}

/// A `multipart/byteranges` answer (RFC 9110 §14.6) of `ranges` (disjoint, ascending, inclusive,
/// within `len`) of a representation of `len` bytes of type `content_type`: the value for its
/// `Content-Type` (with the boundary), its exact length, and the body. Each part carries the
/// representation's `Content-Type` and its `Content-Range`, as nginx's do.
///
/// The boundary is 20 random hex digits after `bulkhead-`; a representation that contained the
/// delimiter line by chance would need to guess 64 random bits.
pub fn byteranges(
    source: PartSource,
    ranges: &[(u64, u64)],
    len: u64,
    content_type: Option<&HeaderValue>,
) -> (HeaderValue, u64, ResponseBody) {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let boundary = format!("bulkhead-{random:020x}");
    let mut pieces = std::collections::VecDeque::with_capacity(ranges.len() * 2 + 1);
    let mut total = 0u64;
    let push = |pieces: &mut std::collections::VecDeque<Piece>, total: &mut u64, b: Bytes| {
        *total += b.len() as u64;
        pieces.push_back(Piece::Bytes(b));
    };
    for &(start, end) in ranges {
        let mut head = format!("\r\n--{boundary}\r\n");
        if let Some(t) = content_type.and_then(|t| t.to_str().ok()) {
            head.push_str("Content-Type: ");
            head.push_str(t);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Range: bytes {start}-{end}/{len}\r\n\r\n"));
        push(&mut pieces, &mut total, Bytes::from(head));
        let count = end - start + 1;
        match &source {
            PartSource::Buffer(buf) => push(&mut pieces, &mut total, buf.slice(start as usize..=end as usize)),
            PartSource::File(file) => {
                total += count;
                pieces.push_back(Piece::File(FileChunks {
                    file: file.clone(),
                    offset: start,
                    remaining: count,
                    pending: None,
                }));
            }
        }
    }
    push(&mut pieces, &mut total, Bytes::from(format!("\r\n--{boundary}--\r\n")));
    let value = HeaderValue::try_from(format!("multipart/byteranges; boundary={boundary}"))
        .unwrap_or(HeaderValue::from_static("multipart/byteranges"));
    (value, total, ResponseBody::Parts(Box::new(Parts { pieces, remaining: total })))
}

impl Parts {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(piece) = self.pieces.front_mut() else { return Poll::Ready(None) };
            let polled = match piece {
                Piece::Bytes(b) => Some(Ok(std::mem::take(b))),
                Piece::File(f) => std::task::ready!(f.poll_chunk(cx)),
            };
            match polled {
                Some(Ok(bytes)) => {
                    if matches!(piece, Piece::Bytes(_)) {
                        self.pieces.pop_front();
                    }
                    self.remaining = self.remaining.saturating_sub(bytes.len() as u64);
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(BoxError::from(e)))),
                None => {
                    self.pieces.pop_front();
                }
            }
        }
    }
}

/// Where a [`Tee`]'s copy goes when the body ended whole within its limit.
pub type TeeSink = Box<dyn FnOnce(Bytes) + Send>;

/// A worker body passed through and copied, up to `limit` bytes (past it, the copy is dropped
/// and the body only passed through).
pub struct Tee {
    inner: WorkerBody,
    copy: BytesMut,
    limit: usize,
    sink: Option<TeeSink>,
}

impl Tee {
    pub fn new(inner: WorkerBody, limit: usize, sink: TeeSink) -> Self {
        Tee { inner, copy: BytesMut::new(), limit, sink: Some(sink) }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(data) if self.sink.is_some() && self.copy.len() + data.len() <= self.limit => {
                    self.copy.extend_from_slice(data);
                    // The last frame of a body of known length: stored before its bytes go
                    // out, so a client's next request already finds it.
                    if self.inner.is_end_stream() {
                        self.finish();
                    }
                }
                // Past the limit, or trailers (not stored): no copy.
                _ => self.abandon(),
            },
            Poll::Ready(Some(Err(_))) => self.abandon(),
            Poll::Ready(None) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    /// Not to be stored after all: the copy so far is let go at once, not held until the body
    /// ends (up to `max_item` bytes of every such answer still streaming).
    fn abandon(&mut self) {
        self.sink = None;
        self.copy = BytesMut::new();
    }

    fn finish(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink(std::mem::take(&mut self.copy).freeze());
        }
    }
}

/// A file read in chunks of [`FILE_CHUNK`] bytes, `remaining` bytes in all from `offset`.
///
/// Each chunk is first read inline with `preadv2(RWF_NOWAIT)`, which the kernel answers from the
/// page cache or refuses with `EAGAIN` rather than wait for the disk: a page-cached file (the
/// usual case) costs no thread hand-off, as in nginx, and a response streaming to a slow client
/// takes no blocking-pool thread that other requests queue behind. A chunk that is not cached is
/// read on the blocking pool (`pread`), so a cold disk never stalls a runtime thread.
pub struct FileChunks {
    file: Arc<std::fs::File>,
    offset: u64,
    remaining: u64,
    /// A chunk being read on the blocking pool.
    pending: Option<tokio::task::JoinHandle<std::io::Result<Bytes>>>,
}

impl ResponseBody {
    pub fn empty() -> Self {
        ResponseBody::Empty
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(bytes.into()))
    }

    /// Streams `len` bytes of an open file from `offset`.
    pub fn file(file: Arc<std::fs::File>, offset: u64, len: u64) -> Self {
        ResponseBody::File(FileChunks { file, offset, remaining: len, pending: None })
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::File(f) => f.poll_chunk(cx).map(|r| r.map(|r| r.map(Frame::data).map_err(BoxError::from))),
            ResponseBody::Worker(incoming) => Pin::new(incoming).poll_frame(cx),
            ResponseBody::Tee(tee) => tee.poll(cx),
            ResponseBody::Parts(parts) => parts.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Full(b) => b.is_none(),
            ResponseBody::File(f) => f.remaining == 0,
            ResponseBody::Worker(incoming) => incoming.is_end_stream(),
            // Polled to its end, so the copy is handed over.
            ResponseBody::Tee(_) => false,
            ResponseBody::Parts(parts) => parts.pieces.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty => SizeHint::with_exact(0),
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::File(f) => SizeHint::with_exact(f.remaining),
            ResponseBody::Worker(incoming) => incoming.size_hint(),
            ResponseBody::Tee(tee) => tee.inner.size_hint(),
            ResponseBody::Parts(parts) => SizeHint::with_exact(parts.remaining),
        }
    }
}

impl FileChunks {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        let chunk = if let Some(pending) = &mut self.pending {
            let done = std::task::ready!(std::future::Future::poll(Pin::new(pending), cx));
            self.pending = None;
            done.unwrap_or_else(|e| Err(std::io::Error::other(e)))
        } else {
            if self.remaining == 0 {
                return Poll::Ready(None);
            }
            let want = FILE_CHUNK.min(usize::try_from(self.remaining).unwrap_or(FILE_CHUNK));
            match read_chunk(&self.file, self.offset, want, rustix::io::ReadWriteFlags::NOWAIT) {
                Err(e) if needs_disk(&e) => {
                    // Not in the page cache (or a file system without RWF_NOWAIT): off the runtime.
                    let (file, offset) = (self.file.clone(), self.offset);
                    let read = move || read_chunk(&file, offset, want, rustix::io::ReadWriteFlags::empty());
                    self.pending = Some(tokio::task::spawn_blocking(read));
                    return self.poll_chunk(cx);
                }
                read => read,
            }
        };
        Poll::Ready(Some(chunk.and_then(|bytes| {
            if bytes.is_empty() {
                // The file shrank under us: end the body short (the client sees a truncated
                // response, which its Content-Length check reports).
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being sent"));
            }
            self.offset += bytes.len() as u64;
            self.remaining -= bytes.len() as u64;
            Ok(bytes)
        })))
    }
}

/// All `len` bytes of a small file from its start. `inline`: on a runtime thread, so only from
/// the page cache — `None` if that would wait for the disk. `UnexpectedEof` if the file is
/// shorter than `len` (it shrank since its metadata was read).
pub fn read_whole(file: &std::fs::File, len: usize, inline: bool) -> std::io::Result<Option<Bytes>> {
    let flags = if inline { rustix::io::ReadWriteFlags::NOWAIT } else { rustix::io::ReadWriteFlags::empty() };
    let first = match read_chunk(file, 0, len, flags) {
        Err(e) if inline && needs_disk(&e) => return Ok(None),
        r => r?,
    };
    if first.len() == len {
        return Ok(Some(first));
    }
    // A short read (part of it cached, or a file shrinking): the rest, then check the length.
    let mut buf = BytesMut::with_capacity(len);
    buf.extend_from_slice(&first);
    while buf.len() < len {
        let more = match read_chunk(file, buf.len() as u64, len - buf.len(), flags) {
            Err(e) if inline && needs_disk(&e) => return Ok(None),
            r => r?,
        };
        if more.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being read"));
        }
        buf.extend_from_slice(&more);
    }
    Ok(Some(buf.freeze()))
}

/// An `RWF_NOWAIT` read was refused: the bytes are not in the page cache (or the file system
/// cannot say), so reading them would wait for the disk.
fn needs_disk(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

/// Up to `want` bytes of `file` at `offset` (fewer if only part is cached under `RWF_NOWAIT`).
fn read_chunk(
    file: &std::fs::File,
    offset: u64,
    want: usize,
    flags: rustix::io::ReadWriteFlags,
) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(want);
    let n = loop {
        match rustix::io::preadv2(file, &mut [std::io::IoSliceMut::new(&mut buf)], offset, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?,
        }
    };
    buf.truncate(n);
    Ok(buf.freeze())
}

/// A short plain-text answer with the status's reason as its body.
pub fn plain(code: StatusCode) -> Response<ResponseBody> {
    let text = code.canonical_reason().unwrap_or("Error");
    let mut resp = Response::new(ResponseBody::full(format!("{} {text}\n", code.as_u16())));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// How a response body ended, as told to each layer's hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// Body bytes that went out.
    pub sent: u64,
    /// The body was sent whole (false: the client went away or the response was aborted).
    pub complete: bool,
}

/// What one layer does when the response ends or is dropped; runs exactly once.
pub trait OnEnd: Send {
    fn on_end(self, end: End);
}

impl<T: OnEnd> OnEnd for Option<T> {
    fn on_end(self, end: End) {
        if let Some(hook) = self {
            hook.on_end(end);
        }
    }
}

impl<T: OnEnd> OnEnd for Box<T> {
    fn on_end(self, end: End) {
        (*self).on_end(end);
    }
}

/// One layer: passes `inner`'s frames through, counting data bytes, and runs its hook once
/// when the body is dropped (after its end, or early).
pub struct Layered<B: Body, H: OnEnd> {
    inner: B,
    sent: u64,
    ended: bool,
    hook: Option<H>,
}

impl<B: Body, H: OnEnd> Layered<B, H> {
    pub fn new(inner: B, hook: H) -> Self {
        Layered { inner, sent: 0, ended: false, hook: Some(hook) }
    }
}

impl<B, H> Body for Layered<B, H>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
    H: OnEnd + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.ended = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body, H: OnEnd> Drop for Layered<B, H> {
    fn drop(&mut self) {
        if let Some(hook) = self.hook.take() {
            let complete = self.ended || self.inner.is_end_stream();
            hook.on_end(End { sent: self.sent, complete });
        }
    }
}

/// A value held until the response ends, then dropped: the queue-slot lease (the slot is
/// released by its own `Drop`).
pub struct Hold<T>(pub T);

impl<T: Send> OnEnd for Hold<T> {
    fn on_end(self, _: End) {}
}

/// A response body holding a `T` (the request's queue slot) until it ends; `None` for answers
/// no worker made.
pub type Leased<T> = Layered<ResponseBody, Option<Hold<T>>>;

/// A response body that writes the request's access-log line when it ends.
pub type Logged<B> = Layered<B, Option<Box<AccessLog>>>;

/// The access-log completion: the record filled in by the request path, finished and queued
/// when the response ends.
pub struct AccessLog {
    pub log: LogSender,
    pub record: AccessRecord,
    pub started: Instant,
    /// Estimated size of the response head.
    pub head_bytes: u64,
    /// Estimated size of the request head.
    pub request_head_bytes: u64,
    /// The request's body, if it had one sent to a worker.
    pub body: Option<Arc<BodyProgress>>,
}

impl OnEnd for AccessLog {
    fn on_end(self, end: End) {
        let AccessLog { log, mut record, started, head_bytes, request_head_bytes, body } = self;
        record.when = SystemTime::now();
        record.time_taken = started.elapsed();
        record.sc_bytes = head_bytes + end.sent;
        record.cs_bytes = request_head_bytes + body.map_or(0, |b| b.bytes());
        record.win32_status = if end.complete { 0 } else { 64 };
        log.access(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file not in the page cache: the inline `RWF_NOWAIT` read is refused (the kernel does
    /// not wait for the disk), and the body still streams every byte, through the blocking pool.
    #[test]
    fn a_file_not_in_the_page_cache_is_read_off_the_runtime_and_streams_whole() {
        use http_body_util::BodyExt;
        // Beside the test binary, on the build's disk (a tmpfs /tmp keeps every page in memory).
        let exe = std::env::current_exe().unwrap();
        let path = exe.with_file_name(format!(".bulkhead-nowait-{}", std::process::id()));
        let data: Vec<u8> = (0..3 * FILE_CHUNK + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        file.sync_all().unwrap();
        // A refused `RWF_NOWAIT` read may start the kernel's readahead, which can bring the
        // pages back before the next check: each check evicts them first, and may try again
        // (a few times at most) in case readahead won that race.
        let evict = || rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let refused = (0..10).any(|_| {
            evict();
            let cold = read_chunk(&file, 0, FILE_CHUNK, rustix::io::ReadWriteFlags::NOWAIT);
            cold.err().is_some_and(|e| {
                e.kind() == std::io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EOPNOTSUPP)
            })
        });
        assert!(refused, "evicted pages are not read inline");
        let gave_up = (0..10).any(|_| {
            evict();
            read_whole(&file, data.len(), true).unwrap().is_none()
        });
        assert!(gave_up, "a small file's inline read gives up too");
        evict();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let body = ResponseBody::file(Arc::new(file), 5, data.len() as u64 - 5);
        let got = rt.block_on(body.collect()).unwrap().to_bytes();
        assert_eq!(&got[..], &data[5..]);
        // Read once, the file is in the page cache: whole, inline.
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(read_whole(&file, data.len(), true).unwrap().as_deref(), Some(&data[..]));
        std::fs::remove_file(&path).unwrap();
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    /// Records the `End` it was given, and the order hooks ran in.
    struct Probe(&'static str, Arc<Mutex<Vec<(&'static str, End)>>>);

    impl OnEnd for Probe {
        fn on_end(self, end: End) {
            self.1.lock().unwrap().push((self.0, end));
        }
    }

    async fn drain<B: Body<Data = Bytes, Error = BoxError> + Unpin>(body: &mut B) -> u64 {
        let mut n = 0;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
            n += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
        }
        n
    }

    #[tokio::test]
    async fn every_layer_runs_once_with_the_bytes_sent() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let inner = Layered::new(ResponseBody::full("hello"), Probe("inner", seen.clone()));
        let mut outer = Layered::new(inner, Probe("outer", seen.clone()));
        assert_eq!(drain(&mut outer).await, 5);
        drop(outer);
        let seen = seen.lock().unwrap();
        let whole = End { sent: 5, complete: true };
        assert_eq!(*seen, vec![("outer", whole), ("inner", whole)]);
    }

    #[tokio::test]
    async fn a_body_dropped_early_is_reported_incomplete() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let body = Layered::new(ResponseBody::full("hello"), Probe("only", seen.clone()));
        drop(body);
        assert_eq!(*seen.lock().unwrap(), vec![("only", End { sent: 0, complete: false })]);
    }

    #[tokio::test]
    async fn a_held_value_lives_until_the_body_ends() {
        struct Counted(Arc<AtomicU64>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let mut body: Leased<Counted> = Layered::new(ResponseBody::full("x"), Some(Hold(Counted(dropped.clone()))));
        drain(&mut body).await;
        assert_eq!(dropped.load(Ordering::Relaxed), 0, "held while the body is alive");
        drop(body);
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
    }
}
