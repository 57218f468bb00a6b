//! The worker's side of the control channel to the manager (DESIGN §4): say `Ready`, answer
//! `Ping` with the worker's counters, and turn `Drain`, `Stop` and a closed channel into
//! [`ControlEvent`]s for the server loop.
//!
//! Called by the server: [`announce_ready`] once the socket is accepting, then [`spawn`] runs
//! the reader task for the rest of the worker's life. It never touches connections itself —
//! it only reports what the manager asked — and it keeps answering pings while the worker drains,
//! so the manager can watch the in-flight count fall.

use std::sync::Arc;

use bulkhead_proto::{Channel, ManagerToWorker, WorkerToManager};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::counters::Counters;
use crate::env::Control;
use crate::{inherit, WorkerError};

/// The worker's end of the control channel.
pub(crate) type WorkerChannel = Channel<WorkerToManager, ManagerToWorker>;

/// What the manager asked the server loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlEvent {
    /// Stop accepting, finish in-flight requests, return.
    Drain,
    /// Return now.
    Stop,
    /// The channel closed or broke: the manager is gone, so drain and exit.
    Closed,
}

/// Opens the control channel described by `control`; needs a tokio runtime.
pub(crate) fn open(control: Control) -> Result<WorkerChannel, WorkerError> {
    let (fd, stream) = match control {
        Control::InheritedFd(fd) => (fd, inherit::control(fd)?),
        Control::Stream(stream) => (-1, stream),
    };
    Channel::from_std(stream).map_err(|source| WorkerError::InheritedFd { fd, role: "control channel", source })
}

/// Tells the manager this worker accepts requests.
pub(crate) async fn announce_ready(channel: &mut WorkerChannel) -> Result<(), WorkerError> {
    channel.send(&WorkerToManager::Ready).await?;
    Ok(())
}

/// Runs the control channel until it closes, reporting requests to `events`.
pub(crate) fn spawn(
    channel: WorkerChannel,
    counters: Arc<Counters>,
    events: mpsc::Sender<ControlEvent>,
    name: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let event = run(channel, &counters, &events, &name).await;
        let _ = events.send(event).await;
    })
}

/// Answers pings and forwards `Drain`/`Stop` until the channel ends; returns the final event.
async fn run(
    mut channel: WorkerChannel,
    counters: &Counters,
    events: &mpsc::Sender<ControlEvent>,
    name: &str,
) -> ControlEvent {
    loop {
        let message = match channel.recv().await {
            Ok(Some(message)) => message,
            Ok(None) => {
                tracing::warn!("{name}: control channel closed by the manager; draining and exiting");
                return ControlEvent::Closed;
            }
            Err(error) => {
                tracing::warn!("{name}: control channel broke ({error}); draining and exiting");
                return ControlEvent::Closed;
            }
        };
        match message {
            ManagerToWorker::Ping { seq } => {
                let pong =
                    WorkerToManager::Pong { seq, requests: counters.requests(), in_flight: counters.in_flight() };
                if let Err(error) = channel.send(&pong).await {
                    tracing::warn!("{name}: cannot answer ping on the control channel ({error}); draining and exiting");
                    return ControlEvent::Closed;
                }
            }
            ManagerToWorker::Drain => {
                tracing::info!(
                    "{name}: manager asked to drain; finishing {} in-flight request(s)",
                    counters.in_flight()
                );
                if events.send(ControlEvent::Drain).await.is_err() {
                    return ControlEvent::Drain;
                }
            }
            ManagerToWorker::Stop => {
                tracing::info!("{name}: manager asked to stop");
                return ControlEvent::Stop;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixStream;

    #[tokio::test]
    async fn ping_drain_stop() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut manager: Channel<ManagerToWorker, WorkerToManager> = Channel::new(a);
        let counters = Arc::new(Counters::default());
        let (tx, mut rx) = mpsc::channel(4);
        let task = spawn(Channel::new(b), counters, tx, "worker".into());
        manager.send(&ManagerToWorker::Ping { seq: 9 }).await.unwrap();
        let pong = manager.recv().await.unwrap();
        assert_eq!(pong, Some(WorkerToManager::Pong { seq: 9, requests: 0, in_flight: 0 }));
        manager.send(&ManagerToWorker::Drain).await.unwrap();
        assert_eq!(rx.recv().await, Some(ControlEvent::Drain));
        manager.send(&ManagerToWorker::Stop).await.unwrap();
        assert_eq!(rx.recv().await, Some(ControlEvent::Stop));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn closed_channel_means_drain() {
        let (a, b) = UnixStream::pair().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let task = spawn(Channel::new(b), Arc::new(Counters::default()), tx, "worker".into());
        drop(a);
        assert_eq!(rx.recv().await, Some(ControlEvent::Closed));
        task.await.unwrap();
    }
}
