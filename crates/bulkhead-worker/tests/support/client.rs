//! Helpers shared by the worker SDK's integration tests: a temp dir, an HTTP/1.1 client over a
//! unix socket, and a manager-side control channel. Real sockets only; nothing here is mocked.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use bulkhead_proto::{Channel, ManagerToWorker, WorkerToManager};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

pub type ManagerChannel = Channel<ManagerToWorker, WorkerToManager>;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bulkhead-worker-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An HTTP/1.1 client connection over a unix socket; the connection task runs in the background.
pub async fn connect(path: &std::path::Path) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::UnixStream::connect(path).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends `GET path` on `sender` and returns the status and body.
pub async fn get(sender: &mut SendRequest<Empty<Bytes>>, path: &str) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let request = http::Request::get(path).header("host", "worker").body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Waits for the next message from the worker; fails after 20 s so a broken worker cannot hang
/// the test run.
pub async fn recv(channel: &mut ManagerChannel) -> anyhow::Result<WorkerToManager> {
    let message = tokio::time::timeout(std::time::Duration::from_secs(20), channel.recv()).await??;
    message.ok_or_else(|| anyhow::anyhow!("worker closed the control channel"))
}
