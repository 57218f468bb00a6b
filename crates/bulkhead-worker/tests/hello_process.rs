//! Runs the `hello` example as a real worker process, the way the manager does: a listening unix
//! socket inherited at fd 3 (`LISTEN_FDS=1`, `LISTEN_PID` set by a `sh -c 'exec'` so it is the
//! child's own pid) and a control socketpair at fd 4 (`BULKHEAD_CONTROL_FD=4`).
//!
//! The example binary is built by `cargo test -p bulkhead-worker` (cargo builds examples for
//! tests); run `cargo build -p bulkhead-worker --example hello` first if you select only this test.

#[path = "support/client.rs"]
mod support;

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bulkhead_proto::native::conn::Client;
use bulkhead_proto::native::{Hello, RequestHead};
use bulkhead_proto::{Channel, ManagerToWorker, WorkerToManager};
use bytes::Bytes;
use support::{connect, get, recv, ManagerChannel, TempDir};

/// The `hello` example next to this test binary (`target/<profile>/examples/hello`).
fn hello_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let hello = profile_dir.join("examples").join("hello");
    assert!(hello.exists(), "{} is missing: run `cargo build -p bulkhead-worker --example hello`", hello.display());
    hello
}

/// A worker child process, killed by pid if the test ends before it exits.
struct Worker(Child);

impl Worker {
    /// Waits (at most 20 s) for the process to exit.
    fn wait(&mut self) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(Instant::now() < deadline, "worker {} did not exit within 20s", self.0.id());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `hello` with `listener` at fd 3 and `control` at fd 4.
fn spawn_hello(listener: &UnixListener, control: &UnixStream, protocol: &str) -> anyhow::Result<Worker> {
    let (listen_fd, control_fd) = (listener.as_raw_fd(), control.as_raw_fd());
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\""])
        .arg(hello_exe())
        .env("LISTEN_FDS", "1")
        .env("BULKHEAD_CONTROL_FD", "4")
        .env("BULKHEAD_POOL", "test")
        .env("WORKER_THREADS", "2")
        .env_remove("PORT")
        .env("BULKHEAD_PROTOCOL", protocol)
        .stdin(Stdio::null());
    // SAFETY: between fork and exec the closure only calls fcntl, dup2 and close, which are
    // async-signal-safe, on fds that stay open in the parent for the whole call.
    unsafe {
        command.pre_exec(move || {
            // Move both out of the way first, in case either already sits at 3 or 4.
            let listen = libc::fcntl(listen_fd, libc::F_DUPFD, 10);
            let control = libc::fcntl(control_fd, libc::F_DUPFD, 10);
            if listen < 0 || control < 0 || libc::dup2(listen, 3) < 0 || libc::dup2(control, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(listen);
            libc::close(control);
            Ok(())
        });
    }
    Ok(Worker(command.spawn()?))
}

struct Setup {
    _dir: TempDir,
    socket: PathBuf,
    worker: Worker,
    manager: ManagerChannel,
}

async fn start() -> anyhow::Result<Setup> {
    start_with("http").await
}

async fn start_with(protocol: &str) -> anyhow::Result<Setup> {
    let dir = TempDir::new("hello");
    let socket = dir.0.join("test.w1.sock");
    let listener = UnixListener::bind(&socket)?;
    let (manager_end, worker_end) = UnixStream::pair()?;
    let worker = spawn_hello(&listener, &worker_end, protocol)?;
    drop((listener, worker_end));
    let manager = Channel::from_std(manager_end)?;
    Ok(Setup { _dir: dir, socket, worker, manager })
}

#[tokio::test]
async fn ready_serve_pong_drain() -> anyhow::Result<()> {
    let Setup { _dir, socket, mut worker, mut manager } = start().await?;
    assert_eq!(recv(&mut manager).await?, WorkerToManager::Ready);

    let mut client = connect(&socket).await?;
    let (status, body) = get(&mut client, "/anything").await?;
    assert_eq!((status, &body[..]), (200, &b"Hello, world\n"[..]));
    // Same keep-alive connection, second request.
    let (status, _) = get(&mut client, "/again").await?;
    assert_eq!(status, 200);

    manager.send(&ManagerToWorker::Ping { seq: 5 }).await?;
    assert_eq!(recv(&mut manager).await?, WorkerToManager::Pong { seq: 5, requests: 2, in_flight: 0 });

    // Drain with an idle keep-alive connection still open: the worker closes it and exits 0.
    manager.send(&ManagerToWorker::Drain).await?;
    let status = tokio::task::spawn_blocking(move || worker.wait()).await??;
    assert!(status.success(), "worker exited with {status}");
    assert!(client.ready().await.is_err(), "the drained worker closed the keep-alive connection");
    Ok(())
}

#[tokio::test]
async fn stop_exits_and_closed_channel_drains() -> anyhow::Result<()> {
    let Setup { _dir, mut worker, mut manager, .. } = start().await?;
    assert_eq!(recv(&mut manager).await?, WorkerToManager::Ready);
    manager.send(&ManagerToWorker::Stop).await?;
    let status = tokio::task::spawn_blocking(move || worker.wait()).await??;
    assert!(status.success(), "worker exited with {status}");

    // A manager that dies (its end of the channel closes) makes the worker drain and exit 0.
    let Setup { _dir, mut worker, mut manager, .. } = start().await?;
    assert_eq!(recv(&mut manager).await?, WorkerToManager::Ready);
    drop(manager);
    let status = tokio::task::spawn_blocking(move || worker.wait()).await??;
    assert!(status.success(), "worker exited with {status}");
    Ok(())
}

#[tokio::test]
async fn native_protocol_multiplexes_and_drains() -> anyhow::Result<()> {
    let Setup { _dir, socket, mut worker, mut manager } = start_with("native").await?;
    assert_eq!(recv(&mut manager).await?, WorkerToManager::Ready);

    let stream = tokio::net::UnixStream::connect(&socket).await?;
    let client = Client::handshake(stream, Hello::default()).await?;
    let mut pending = Vec::new();
    for i in 0..50 {
        let head = RequestHead {
            method: Bytes::from_static(b"GET"),
            target: Bytes::from(format!("/n{i}")),
            headers: vec![(Bytes::from_static(b"host"), Bytes::from_static(b"test"))],
        };
        pending.push(client.open(head, true)?);
    }
    for (_send, mut recv_stream) in pending {
        let (head, end) = recv_stream.response().await?;
        assert_eq!((head.status, end), (200, false));
        let mut body = Vec::new();
        while let Some(chunk) = recv_stream.data().await {
            body.extend_from_slice(&chunk?);
        }
        assert_eq!(body, b"Hello, world\n");
    }
    // A stream's task counts its request done just after its last frame is queued, so the
    // count may lag the client by a moment: ask until it settles (bounded).
    let mut pong = None;
    for seq in 1..=50 {
        manager.send(&ManagerToWorker::Ping { seq }).await?;
        let answer = recv(&mut manager).await?;
        if answer == (WorkerToManager::Pong { seq, requests: 50, in_flight: 0 }) {
            pong = Some(answer);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(pong.is_some(), "the worker never reported 50 requests and none in flight");

    // Drain: the worker says GOAWAY, closes the connection and exits 0.
    manager.send(&ManagerToWorker::Drain).await?;
    let status = tokio::task::spawn_blocking(move || worker.wait()).await??;
    assert!(status.success(), "worker exited with {status}");
    assert!(client.is_unusable(), "the drained worker closed the native connection");
    Ok(())
}
