//! Is a worker ready? The HTTP probe used for workers that do not say `Ready` on their control
//! channel (any plain HTTP app), and the reachability check behind `WorkerUnreachable`.
//!
//! Called by the supervisor, which runs [`probe_until_ready`] as a task per starting worker and
//! aborts it when the worker says `Ready` first, exits, or runs out of `startup_time_limit`.
//! A probe connects to the worker's socket and sends `GET <path> HTTP/1.1` with
//! `Connection: close`; any reply that starts with an HTTP status line counts as ready (a 404
//! or 500 still proves the app is serving). It never parses more than those first bytes.

use std::io;
use std::time::Duration;

use bulkhead_proto::WorkerAddress;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Pause between two probes of a starting worker.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(75);
/// Longest one probe may take (connect, write, first bytes).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Returns once the worker answers an HTTP request on its socket.
pub async fn probe_until_ready(address: WorkerAddress, path: String) {
    loop {
        if let Ok(Ok(true)) = tokio::time::timeout(PROBE_TIMEOUT, probe_once(&address, &path)).await {
            return;
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// One probe: `Ok(true)` when the reply starts with an HTTP status line.
pub async fn probe_once(address: &WorkerAddress, path: &str) -> io::Result<bool> {
    match address {
        WorkerAddress::Unix(p) => exchange(tokio::net::UnixStream::connect(p).await?, path).await,
        WorkerAddress::Tcp(a) => exchange(tokio::net::TcpStream::connect(a).await?, path).await,
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, path: &str) -> io::Result<bool> {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bulkhead-manager\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        let n = stream.read(&mut head[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let ready = &head[..got] == b"HTTP/";
    if ready {
        // Read the rest of the answer (bounded) before closing: closing on an app still writing
        // its reply made it log a broken pipe on every start (Python's http.server does).
        let mut rest = [0u8; 4096];
        let drain = async {
            let mut total = 0usize;
            while total < 1 << 20 {
                match stream.read(&mut rest).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    }
    Ok(ready)
}

/// `true` when the worker's socket refuses connections (nobody is accepting on it any more),
/// as opposed to being slow or busy.
pub async fn refuses_connections(address: &WorkerAddress) -> bool {
    let result = tokio::time::timeout(PROBE_TIMEOUT, async {
        match address {
            WorkerAddress::Unix(p) => tokio::net::UnixStream::connect(p).await.map(drop),
            WorkerAddress::Tcp(a) => tokio::net::TcpStream::connect(a).await.map(drop),
        }
    })
    .await;
    matches!(result, Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused || e.kind() == io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_reply_is_ready_and_silence_is_not() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = WorkerAddress::Tcp(server.local_addr().unwrap());
        let serve = tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /health HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await.unwrap();
            // Second connection: close without answering.
            let (s, _) = server.accept().await.unwrap();
            drop(s);
        });
        assert!(probe_once(&addr, "/health").await.unwrap());
        // Closed without an answer (possibly with a reset): not ready.
        assert!(!matches!(probe_once(&addr, "/").await, Ok(true)));
        serve.await.unwrap();
        assert!(refuses_connections(&addr).await);
    }
}
