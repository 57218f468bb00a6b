//! Request bodies on their way to a worker: [`RequestBody`] — nothing (replays, bodiless
//! requests), the client's body streamed through, or the client's body read whole beforehand
//! ([`RequestBody::spool`]). The client's body is cut off past `limits.max_body`, when the
//! client stalls longer than `limits.connection_timeout`, and when it arrives slower than
//! `limits.min_bytes_per_sec` once it has had `limits.min_bytes_grace` (IIS's
//! `MinBytesPerSecond`). The rate counts only the time the listener was waiting for the client
//! (a worker slow to take the body is not the client's fault): the bytes read must stay at or
//! above `min_bytes_per_sec` × that time.
//!
//! Spooling (pool key `request_buffering`, on by default; nginx's `proxy_request_buffering`):
//! the whole body is read before the request takes a worker slot, so a thousand slow uploads
//! hold no worker. Up to [`SPOOL_MEMORY`] stays in memory; a larger body goes to an unnamed
//! temporary file (`O_TMPFILE`, or created and unlinked at once where the filesystem lacks it)
//! in `<state_dir>/body-temp/`, which the manager creates for the listener's user, and is read
//! back from it when sent. The file is gone when the body is dropped; nothing is left on disk
//! by a crash.
//!
//! What happened to one request's body — bytes read, and why it stopped early ([`BodyFault`]) —
//! is kept in that request's own [`BodyProgress`], shared by the body (which may be polled in a
//! transport's task) and the request path (which answers 413/408/400 rather than 502, and logs
//! `cs-bytes`). It is per request, never per connection, so concurrent requests on one
//! connection (HTTP/2 streams) cannot overwrite each other's. Only a request that has a body
//! gets one (one allocation); a bodiless request reads as zero bytes, no fault.
//!
//! The bottom of the request path's layering: imports nothing of the listener. Called by
//! [`crate::request`] (which builds the body) and the transports in [`crate::dispatch`] (which
//! send it). Streaming bodies pass every chunk on as it comes.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Error type of the listener's bodies, both directions.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body stopped early (left for the request path to choose 413 vs 408 vs 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BodyFault {
    None = 0,
    /// More than `limits.max_body` bytes.
    TooLarge = 1,
    /// No byte for `limits.connection_timeout`.
    Stalled = 2,
    /// The client's side failed (reset, malformed chunking).
    Client = 3,
    /// Slower than `limits.min_bytes_per_sec` after `limits.min_bytes_grace`.
    TooSlow = 4,
}

/// Bytes of a spooled body kept in memory; past this it goes to a temporary file. nginx's
/// `client_body_buffer_size` is 16 KiB; 64 KiB keeps typical form and JSON posts off the disk
/// while 10,000 such bodies in flight stay under 640 MiB.
pub const SPOOL_MEMORY: usize = 64 * 1024;

/// Piece size when a spooled body is read back from its file.
const SPOOL_READ: usize = 64 * 1024;

/// One request's body: bytes read so far and the fault that stopped it, if any.
#[derive(Debug, Default)]
pub struct BodyProgress {
    bytes: AtomicU64,
    fault: AtomicU8,
}

impl BodyProgress {
    /// Body bytes read from the client so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Why the body stopped early ([`BodyFault::None`] if it did not).
    pub fn fault(&self) -> BodyFault {
        match self.fault.load(Ordering::Relaxed) {
            1 => BodyFault::TooLarge,
            2 => BodyFault::Stalled,
            3 => BodyFault::Client,
            4 => BodyFault::TooSlow,
            _ => BodyFault::None,
        }
    }

    fn set_fault(&self, fault: BodyFault) {
        self.fault.store(fault as u8, Ordering::Relaxed);
    }
}

/// A request body on its way to a worker.
pub enum RequestBody {
    Empty,
    Client(ClientBody),
    Spooled(Spooled),
}

/// How the client's body is watched: `max` bytes at most, `stall` without a byte, and
/// `min_rate` bytes a second (zero = off) once `grace` of waiting has passed.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max: u64,
    pub stall: Duration,
    pub min_rate: u64,
    pub grace: Duration,
}

/// The client's body, limited and watched for stalls and slowness.
pub struct ClientBody {
    incoming: Incoming,
    read: u64,
    limits: BodyLimits,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// While waiting for the client: since when, and the fault the armed timer means.
    waiting: Option<(Instant, BodyFault)>,
    /// Time spent waiting for the client so far (the rate's denominator).
    waited: Duration,
    progress: Arc<BodyProgress>,
}

/// A body read whole before it was sent: in memory, or in an unnamed temporary file — or, when
/// no file could be made, its first pieces and the rest of the client's body behind them.
pub enum Spooled {
    Memory(VecDeque<Bytes>),
    File { file: tokio::fs::File, left: u64, buf: Vec<u8> },
    Streaming { head: VecDeque<Bytes>, rest: Box<RequestBody> },
}

impl RequestBody {
    /// The client's body under `limits`. Returns the body and its progress (for the request
    /// path and the access log).
    pub fn client(incoming: Incoming, limits: BodyLimits) -> (Self, Arc<BodyProgress>) {
        let progress = Arc::new(BodyProgress::default());
        let body = ClientBody {
            incoming,
            read: 0,
            limits,
            timer: None,
            waiting: None,
            waited: Duration::ZERO,
            progress: progress.clone(),
        };
        (RequestBody::Client(body), progress)
    }

    /// Reads this (client) body whole, into memory up to [`SPOOL_MEMORY`] and then into an
    /// unnamed file in `dir`; returns the spooled body and its length. Fails as the client body
    /// does (its [`BodyProgress`] says why), or with the file's I/O error once the file was made.
    /// When no file can be made in `dir` at all, nothing is lost: the pieces read so far and the
    /// rest of the body stream to the worker as they come (length `None`), and the error is
    /// logged.
    pub async fn spool(mut self, dir: &Path) -> Result<(RequestBody, Option<u64>), BoxError> {
        let mut memory: VecDeque<Bytes> = VecDeque::new();
        let mut in_memory = 0usize;
        let mut file: Option<tokio::fs::File> = None;
        let mut len = 0u64;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut self).poll_frame(cx)).await {
            let Ok(data) = frame?.into_data() else { continue };
            len += data.len() as u64;
            if let Some(f) = file.as_mut() {
                tokio::io::AsyncWriteExt::write_all(f, &data).await?;
                continue;
            }
            in_memory += data.len();
            memory.push_back(data);
            if in_memory > SPOOL_MEMORY {
                let mut f = match temp_file(dir).await {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!("{e}; streaming this request body to the worker instead");
                        return Ok((
                            RequestBody::Spooled(Spooled::Streaming { head: memory, rest: Box::new(self) }),
                            None,
                        ));
                    }
                };
                for piece in memory.drain(..) {
                    tokio::io::AsyncWriteExt::write_all(&mut f, &piece).await?;
                }
                file = Some(f);
            }
        }
        let spooled = match file {
            None => Spooled::Memory(memory),
            Some(mut f) => {
                tokio::io::AsyncWriteExt::flush(&mut f).await?;
                tokio::io::AsyncSeekExt::seek(&mut f, io::SeekFrom::Start(0)).await?;
                Spooled::File { file: f, left: len, buf: Vec::new() }
            }
        };
        Ok((RequestBody::Spooled(spooled), Some(len)))
    }
}

/// An unnamed temporary file in `dir`, mode 0600.
async fn temp_file(dir: &Path) -> io::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    match options.clone().custom_flags(libc::O_TMPFILE).open(dir).await {
        Ok(f) => Ok(f),
        // Filesystems without O_TMPFILE: a file of our own, unlinked at once.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)) => {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let name = format!("body-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            let path = dir.join(name);
            let f = options.create_new(true).open(&path).await?;
            tokio::fs::remove_file(&path).await?;
            Ok(f)
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("cannot make a temporary file in {}: {e}", dir.display()))),
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Client(body) => body.poll(cx),
            RequestBody::Spooled(body) => body.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Client(b) => b.incoming.is_end_stream(),
            RequestBody::Spooled(Spooled::Memory(m)) => m.is_empty(),
            RequestBody::Spooled(Spooled::File { left, .. }) => *left == 0,
            RequestBody::Spooled(Spooled::Streaming { head, rest }) => head.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Client(b) => b.incoming.size_hint(),
            RequestBody::Spooled(Spooled::Memory(m)) => SizeHint::with_exact(m.iter().map(|b| b.len() as u64).sum()),
            RequestBody::Spooled(Spooled::File { left, .. }) => SizeHint::with_exact(*left),
            RequestBody::Spooled(Spooled::Streaming { .. }) => SizeHint::new(),
        }
    }
}

impl ClientBody {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some((since, _)) = self.waiting.take() {
                    self.waited += since.elapsed();
                }
                if let Some(data) = frame.data_ref() {
                    self.read += data.len() as u64;
                    self.progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if self.read > self.limits.max {
                        self.progress.set_fault(BodyFault::TooLarge);
                        return Poll::Ready(Some(Err("request body exceeds limits.max_body".into())));
                    }
                }
                if self.too_slow() {
                    self.progress.set_fault(BodyFault::TooSlow);
                    return Poll::Ready(Some(Err("request body slower than limits.min_bytes_per_sec".into())));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.progress.set_fault(BodyFault::Client);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if self.waiting.is_none() {
                    // Arm the timer for whichever comes first: a stall, or the moment the
                    // rate would fall below the minimum if nothing more came.
                    let now = Instant::now();
                    let (after, fault) = match self.slow_after() {
                        Some(slow) if slow < self.limits.stall => (slow, BodyFault::TooSlow),
                        _ => (self.limits.stall, BodyFault::Stalled),
                    };
                    let deadline = tokio::time::Instant::from_std(now + after);
                    match self.timer.as_mut() {
                        Some(timer) => timer.as_mut().reset(deadline),
                        None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    self.waiting = Some((now, fault));
                }
                let fired = self.timer.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready());
                match self.waiting {
                    Some((_, BodyFault::TooSlow)) if fired => {
                        self.progress.set_fault(BodyFault::TooSlow);
                        Poll::Ready(Some(Err("request body slower than limits.min_bytes_per_sec".into())))
                    }
                    _ if fired => {
                        self.progress.set_fault(BodyFault::Stalled);
                        Poll::Ready(Some(Err("client stalled sending the request body".into())))
                    }
                    _ => Poll::Pending,
                }
            }
        }
    }

    /// Past the grace, fewer bytes than the minimum rate over the time spent waiting.
    fn too_slow(&self) -> bool {
        let BodyLimits { min_rate, grace, .. } = self.limits;
        min_rate > 0 && self.waited >= grace && (self.read as f64) < min_rate as f64 * self.waited.as_secs_f64()
    }

    /// From now, how much more waiting with no byte makes the body too slow (`None`: the rate
    /// is off).
    fn slow_after(&self) -> Option<Duration> {
        let BodyLimits { min_rate, grace, .. } = self.limits;
        if min_rate == 0 {
            return None;
        }
        let allowed = grace.max(Duration::from_secs_f64(self.read as f64 / min_rate as f64));
        Some(allowed.saturating_sub(self.waited))
    }
}

impl Spooled {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self {
            Spooled::Memory(pieces) => Poll::Ready(pieces.pop_front().map(|b| Ok(Frame::data(b)))),
            Spooled::Streaming { head, rest } => match head.pop_front() {
                Some(piece) => Poll::Ready(Some(Ok(Frame::data(piece)))),
                None => Pin::new(&mut **rest).poll_frame(cx),
            },
            Spooled::File { left: 0, .. } => Poll::Ready(None),
            Spooled::File { file, left, buf } => {
                let want = (*left).min(SPOOL_READ as u64) as usize;
                buf.resize(want, 0);
                let mut read_buf = tokio::io::ReadBuf::new(&mut buf[..want]);
                match tokio::io::AsyncRead::poll_read(Pin::new(file), cx, &mut read_buf) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
                    Poll::Ready(Ok(())) if read_buf.filled().is_empty() => {
                        Poll::Ready(Some(Err("spooled request body file ended early".into())))
                    }
                    Poll::Ready(Ok(())) => {
                        let piece = Bytes::copy_from_slice(read_buf.filled());
                        *left -= piece.len() as u64;
                        Poll::Ready(Some(Ok(Frame::data(piece))))
                    }
                }
            }
        }
    }
}
