//! A typed, framed channel over a unix stream socket: each side can send only its own message
//! type (`Tx`) and receive only the peer's (`Rx`).
//!
//! Used for manager ↔ listener and manager ↔ worker control traffic. The stream is usually one
//! end of a socketpair inherited by the child. Halves can be split so a reader task and any
//! number of writers (behind the caller's own mutex or task) can run at once.

use std::io;
use std::marker::PhantomData;

use bytes::BytesMut;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use crate::frame::{self, FrameError, DEFAULT_MAX_FRAME};

/// An error on a control channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("control channel i/o: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("control channel closed by the peer in the middle of a message")]
    Truncated,
}

/// Both directions of a control channel.
pub struct Channel<Tx, Rx> {
    tx: ChannelSender<Tx>,
    rx: ChannelReceiver<Rx>,
}

/// The sending half: encodes `Tx` messages.
pub struct ChannelSender<Tx> {
    stream: OwnedWriteHalf,
    buf: BytesMut,
    max: usize,
    _tx: PhantomData<fn(Tx)>,
}

/// The receiving half: decodes `Rx` messages.
pub struct ChannelReceiver<Rx> {
    stream: OwnedReadHalf,
    buf: BytesMut,
    max: usize,
    _rx: PhantomData<fn() -> Rx>,
}

impl<Tx: Serialize, Rx: DeserializeOwned> Channel<Tx, Rx> {
    /// Wraps a connected tokio unix stream.
    pub fn new(stream: UnixStream) -> Self {
        let (r, w) = stream.into_split();
        Channel {
            tx: ChannelSender { stream: w, buf: BytesMut::new(), max: DEFAULT_MAX_FRAME, _tx: PhantomData },
            rx: ChannelReceiver { stream: r, buf: BytesMut::new(), max: DEFAULT_MAX_FRAME, _rx: PhantomData },
        }
    }

    /// Wraps a std unix stream (e.g. rebuilt from an inherited fd); must be called inside a
    /// tokio runtime.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self::new(UnixStream::from_std(stream)?))
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &Tx) -> Result<(), ChannelError> {
        self.tx.send(msg).await
    }

    /// Receives one message; `Ok(None)` when the peer closed the channel cleanly.
    pub async fn recv(&mut self) -> Result<Option<Rx>, ChannelError> {
        self.rx.recv().await
    }

    /// Splits into independently owned halves.
    pub fn into_split(self) -> (ChannelSender<Tx>, ChannelReceiver<Rx>) {
        (self.tx, self.rx)
    }
}

impl<Tx: Serialize> ChannelSender<Tx> {
    /// Sends one message.
    pub async fn send(&mut self, msg: &Tx) -> Result<(), ChannelError> {
        self.buf.clear();
        frame::encode(msg, self.max, &mut self.buf)?;
        self.stream.write_all(&self.buf).await?;
        Ok(())
    }
}

impl<Rx: DeserializeOwned> ChannelReceiver<Rx> {
    /// Receives one message; `Ok(None)` when the peer closed the channel cleanly.
    pub async fn recv(&mut self) -> Result<Option<Rx>, ChannelError> {
        loop {
            if let Some(msg) = frame::decode(&mut self.buf, self.max)? {
                return Ok(Some(msg));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(4096);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(ChannelError::Truncated) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{ManagerToWorker, WorkerToManager};

    #[tokio::test]
    async fn messages_cross_a_socketpair() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut manager: Channel<ManagerToWorker, WorkerToManager> = Channel::new(a);
        let mut worker: Channel<WorkerToManager, ManagerToWorker> = Channel::new(b);
        manager.send(&ManagerToWorker::Ping { seq: 1 }).await.unwrap();
        assert_eq!(worker.recv().await.unwrap(), Some(ManagerToWorker::Ping { seq: 1 }));
        worker.send(&WorkerToManager::Pong { seq: 1, requests: 0, in_flight: 0 }).await.unwrap();
        assert!(matches!(manager.recv().await.unwrap(), Some(WorkerToManager::Pong { seq: 1, .. })));
        drop(worker);
        assert_eq!(manager.recv().await.unwrap(), None);
    }
}
