//! `serve_with` in-process, with a service the test holds back, to check what only a slow
//! request can show: a drained worker finishes the requests in flight before it returns, `Stop`
//! does not wait for them, and the caller's shutdown future drains too. Real unix sockets and a
//! real control socketpair.

#[path = "support/client.rs"]
mod support;

use std::convert::Infallible;

use bulkhead_proto::{Channel, ManagerToWorker, WorkerToManager};
use bulkhead_worker::{Control, Listen, WorkerEnv};
use bytes::Bytes;
use http_body_util::Full;
use support::{connect, get, recv, TempDir};
use tokio::sync::{mpsc, oneshot};

/// A service that tells the test when a request arrived and answers when the test says so.
#[derive(Clone)]
struct HeldBack {
    arrived: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl HeldBack {
    fn service(
        &self,
    ) -> impl tower::Service<
        http::Request<bulkhead_worker::Body>,
        Response = http::Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
           + Send
           + 'static {
        let arrived = self.arrived.clone();
        tower::service_fn(move |_req| {
            let arrived = arrived.clone();
            async move {
                let (release, released) = oneshot::channel();
                let _ = arrived.send(release);
                let _ = released.await;
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"done"))))
            }
        })
    }
}

struct Running {
    _dir: TempDir,
    socket: std::path::PathBuf,
    manager: support::ManagerChannel,
    arrived: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), bulkhead_worker::WorkerError>>,
}

async fn run(shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<Running> {
    let dir = TempDir::new("serve-with");
    let socket = dir.0.join("w.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket)?;
    let (manager_end, worker_end) = std::os::unix::net::UnixStream::pair()?;
    let (tx, arrived) = mpsc::unbounded_channel();
    let app = HeldBack { arrived: tx }.service();
    let mut env = WorkerEnv::standalone(Listen::Unix(listener));
    env.control = Some(Control::Stream(worker_end));
    let served = tokio::spawn(bulkhead_worker::serve_with(env, app, shutdown));
    let mut manager = Channel::from_std(manager_end)?;
    assert_eq!(recv(&mut manager).await?, WorkerToManager::Ready);
    Ok(Running { _dir: dir, socket, manager, arrived, served })
}

#[tokio::test]
async fn drain_finishes_in_flight_requests() -> anyhow::Result<()> {
    let Running { _dir, socket, mut manager, mut arrived, served } = run(std::future::pending()).await?;
    let mut client = connect(&socket).await?;
    let request = tokio::spawn(async move { get(&mut client, "/slow").await });
    let release = arrived.recv().await.expect("request reached the app");

    manager.send(&ManagerToWorker::Ping { seq: 1 }).await?;
    assert_eq!(recv(&mut manager).await?, WorkerToManager::Pong { seq: 1, requests: 1, in_flight: 1 });
    manager.send(&ManagerToWorker::Drain).await?;
    // Still answering pings while draining, and the request is still in flight.
    manager.send(&ManagerToWorker::Ping { seq: 2 }).await?;
    assert_eq!(recv(&mut manager).await?, WorkerToManager::Pong { seq: 2, requests: 1, in_flight: 1 });
    assert!(!served.is_finished());
    // The listening socket closes once the drain is under way: new connections are refused.
    let mut refused = false;
    for _ in 0..500 {
        if tokio::net::UnixStream::connect(&socket).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "a draining worker stops accepting");

    let _ = release.send(());
    let (status, body) = request.await??;
    assert_eq!((status, &body[..]), (200, &b"done"[..]));
    served.await??;
    Ok(())
}

#[tokio::test]
async fn stop_does_not_wait_for_in_flight_requests() -> anyhow::Result<()> {
    let Running { _dir, socket, mut manager, mut arrived, served } = run(std::future::pending()).await?;
    let mut client = connect(&socket).await?;
    let request = tokio::spawn(async move { get(&mut client, "/slow").await });
    let _release = arrived.recv().await.expect("request reached the app");
    manager.send(&ManagerToWorker::Stop).await?;
    served.await??;
    assert!(request.await?.is_err(), "the stopped worker dropped the in-flight request");
    Ok(())
}

#[tokio::test]
async fn shutdown_future_drains() -> anyhow::Result<()> {
    let (trigger, fired) = oneshot::channel::<()>();
    // `_manager` stays alive: a closed control channel would drain the worker by itself.
    let Running { _dir, socket, manager: _manager, mut arrived, served } = run(async move {
        let _ = fired.await;
    })
    .await?;
    let mut client = connect(&socket).await?;
    let request = tokio::spawn(async move { get(&mut client, "/slow").await });
    let release = arrived.recv().await.expect("request reached the app");
    let _ = trigger.send(());
    let _ = release.send(());
    assert_eq!(request.await??.0, 200);
    served.await??;
    Ok(())
}
