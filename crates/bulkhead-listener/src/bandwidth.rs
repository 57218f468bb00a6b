//! Per-site `max_bandwidth`: one [`Bucket`] per site, shared by all of the site's responses, and
//! the [`Throttled`] body layer that paces each response through it.
//!
//! The bucket is a virtual clock (the generic cell rate algorithm): sending `n` bytes moves the
//! site's "next free time" on by `n / rate`; a piece whose slot lies more than [`BURST`] ahead
//! of now waits until then. Pieces are at most [`QUANTUM`] bytes and each response reserves one
//! piece at a time, so responses that want more than their share take turns in the order they
//! asked: fair between connections, with no queue or task of its own. A site without a limit
//! has no bucket, and its responses pass through with one branch.
//!
//! Request bodies are not paced (a slow upload is `min_bytes_per_sec`'s business). Written by
//! hand: the body layer needs a reservation it can sleep on inside `poll_frame`, which the rate
//! limiting crates (built around async `acquire` calls or per-key maps) do not offer without a
//! boxed future per piece. A leaf: used by [`crate::request`] and [`crate::routing`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Largest piece a paced response sends at once.
pub const QUANTUM: usize = 16 * 1024;

/// How far ahead of its rate a site may send (a burst after a quiet moment).
pub const BURST: Duration = Duration::from_millis(100);

/// One site's bandwidth: `rate` bytes a second.
#[derive(Debug)]
pub struct Bucket {
    rate: u64,
    /// When the bytes reserved so far will have been sent at `rate`.
    next_free: Mutex<Instant>,
}

impl Bucket {
    pub fn new(rate: u64) -> Self {
        Bucket { rate: rate.max(1), next_free: Mutex::new(Instant::now()) }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Reserves `n` bytes; returns when they may be sent (`None`: now).
    fn reserve(&self, n: usize) -> Option<Instant> {
        let now = Instant::now();
        let mut next = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        // Time not used while the site was quiet is not saved up beyond the burst.
        let start = (*next).max(now.checked_sub(BURST).unwrap_or(now));
        *next = start + Duration::from_secs_f64(n as f64 / self.rate as f64);
        let at = *next - BURST;
        (at > now).then_some(at)
    }
}

/// A response body paced by its site's bucket (`None`: not paced).
pub struct Throttled<B> {
    inner: B,
    bucket: Option<Arc<Bucket>>,
    /// The rest of a data frame larger than [`QUANTUM`], not yet reserved.
    rest: Bytes,
    /// A reserved piece waiting for its time.
    waiting: Option<(Bytes, Pin<Box<tokio::time::Sleep>>)>,
}

impl<B> Throttled<B> {
    pub fn new(inner: B, bucket: Option<Arc<Bucket>>) -> Self {
        Throttled { inner, bucket, rest: Bytes::new(), waiting: None }
    }
}

impl<B> Body for Throttled<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let Some(bucket) = &this.bucket else { return Pin::new(&mut this.inner).poll_frame(cx) };
        if let Some((_, sleep)) = &mut this.waiting {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if let Some((piece, _)) = this.waiting.take() {
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
        }
        if this.rest.is_empty() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.rest = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
        let piece = this.rest.split_to(this.rest.len().min(QUANTUM));
        match bucket.reserve(piece.len()) {
            None => Poll::Ready(Some(Ok(Frame::data(piece)))),
            Some(at) => {
                let mut sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Ok(Frame::data(piece))));
                }
                this.waiting = Some((piece, sleep));
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let held = (self.rest.len() + self.waiting.as_ref().map_or(0, |(p, _)| p.len())) as u64;
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_move_the_clock_by_size_over_rate_and_allow_a_burst() {
        let bucket = Bucket::new(100_000); // 100 kB/s: 16 KiB takes ~164 ms
                                           // Within the burst: now.
        assert_eq!(bucket.reserve(5_000), None);
        // The next pieces wait, each later than the one before.
        let a = bucket.reserve(QUANTUM).expect("past the burst");
        let b = bucket.reserve(QUANTUM).expect("later still");
        assert!(b > a);
        let gap = b - a;
        assert!(gap >= Duration::from_millis(160) && gap <= Duration::from_millis(170), "{gap:?}");
    }

    #[tokio::test]
    async fn a_paced_body_sends_everything_in_quanta() {
        let body = http_body_util::Full::new(Bytes::from(vec![7u8; 5 * QUANTUM + 10]));
        let mut paced = Throttled::new(body, Some(Arc::new(Bucket::new(1_000_000))));
        let mut sizes = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut paced).poll_frame(cx)).await {
            sizes.push(frame.expect("frame").into_data().expect("data").len());
        }
        assert_eq!(sizes, [QUANTUM, QUANTUM, QUANTUM, QUANTUM, QUANTUM, 10]);
    }
}
