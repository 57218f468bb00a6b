//! The connection engine over an in-memory duplex pipe: both real sides, no mocks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::*;
use crate::native::RequestHead;

fn get(target: &str) -> RequestHead {
    RequestHead {
        method: Bytes::from_static(b"GET"),
        target: Bytes::copy_from_slice(target.as_bytes()),
        headers: vec![],
    }
}

fn ok() -> ResponseHead {
    ResponseHead {
        status: 200,
        headers: vec![(Bytes::from_static(b"content-type"), Bytes::from_static(b"text/plain"))],
    }
}

async fn pair(server_hello: Hello) -> (Client, Server) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(Server::handshake(b, server_hello));
    let client = Client::handshake(a, Hello::default()).await.unwrap();
    (client, server.await.unwrap().unwrap())
}

/// A worker that answers every request with its target and the body it received.
fn echo(mut server: Server) {
    tokio::spawn(async move {
        while let Some(mut req) = server.accept().await {
            tokio::spawn(async move {
                let mut body = Vec::new();
                while let Some(chunk) = req.body.data().await {
                    body.extend_from_slice(&chunk.unwrap());
                }
                let mut send = req.respond.send_response(ok(), false).unwrap();
                send.send_data(Bytes::copy_from_slice(&req.head.target), false).await.unwrap();
                send.send_data(Bytes::from(body), true).await.unwrap();
            });
        }
    });
}

async fn read_all(recv: &mut RecvStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = recv.data().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn many_streams_multiplex_on_one_connection() {
    let (client, server) = pair(Hello::default()).await;
    echo(server);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut send, mut recv) = client.open(get(&format!("/r{i}")), false).unwrap();
            send.send_data(Bytes::from(vec![b'x'; i * 100]), true).await.unwrap();
            let (head, end) = recv.response().await.unwrap();
            assert_eq!((head.status, end), (200, false));
            let body = read_all(&mut recv).await;
            let expected = [format!("/r{i}").into_bytes(), vec![b'x'; i * 100]].concat();
            assert_eq!(body, expected);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(client.open_streams(), 0);
}

#[tokio::test]
async fn a_slow_reader_bounds_what_the_sender_gets_out() {
    let (client, mut server) = pair(Hello::default()).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let sent2 = sent.clone();
    tokio::spawn(async move {
        let req = server.accept().await.unwrap();
        let mut send = req.respond.send_response(ok(), false).unwrap();
        for _ in 0..256 {
            send.send_data(Bytes::from(vec![7u8; 16 * 1024]), false).await.unwrap();
            sent2.fetch_add(16 * 1024, Ordering::SeqCst);
        }
        send.finish().await.unwrap();
    });
    let (_, mut recv) = client.open(get("/big"), true).unwrap();
    recv.response().await.unwrap();
    // Give the sender every chance to run ahead; credit must stop it at the window.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let window = Hello::default().initial_window as usize;
    assert!(sent.load(Ordering::SeqCst) <= window, "sent {} with a window of {window}", sent.load(Ordering::SeqCst));
    assert_eq!(read_all(&mut recv).await.len(), 256 * 16 * 1024);
}

#[tokio::test]
async fn a_stalled_stream_does_not_stall_the_others() {
    let (client, server) = pair(Hello::default()).await;
    let mut server = server;
    tokio::spawn(async move {
        while let Some(req) = server.accept().await {
            tokio::spawn(async move {
                let big = req.head.target.as_ref() == b"/big";
                let mut send = req.respond.send_response(ok(), false).unwrap();
                let n = if big { 4 << 20 } else { 10 };
                let _ = send.send_data(Bytes::from(vec![1u8; n]), true).await;
            });
        }
    });
    let (_, mut stalled) = client.open(get("/big"), true).unwrap();
    stalled.response().await.unwrap();
    for _ in 0..20 {
        let (_, mut recv) = client.open(get("/small"), true).unwrap();
        recv.response().await.unwrap();
        assert_eq!(read_all(&mut recv).await.len(), 10);
    }
    assert_eq!(read_all(&mut stalled).await.len(), 4 << 20);
}

#[tokio::test]
async fn dropping_the_response_cancels_the_work_in_the_worker() {
    let (client, mut server) = pair(Hello::default()).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let req = server.accept().await.unwrap();
        req.respond.cancelled().await;
        let _ = tx.send(());
    });
    let (_, recv) = client.open(get("/slow"), true).unwrap();
    drop(recv);
    rx.await.expect("the worker saw the cancel");
}

#[tokio::test]
async fn a_request_the_application_drops_fails_as_an_application_error() {
    let (client, mut server) = pair(Hello::default()).await;
    let (_, mut recv) = client.open(get("/x"), true).unwrap();
    let req = server.accept().await.unwrap();
    drop(req);
    drop(server);
    // The application dropped the request: the worker reports it failed.
    assert!(matches!(recv.response().await, Err(StreamError::Failed { code: ErrorCode::Application, .. })));
}

#[tokio::test]
async fn a_dead_worker_fails_open_streams_with_connection_lost() {
    let (a, mut b) = tokio::io::duplex(4096);
    let mut hello = BytesMut::new();
    encode(&Frame::Hello(Hello::default()), &mut hello).unwrap();
    let worker = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let _ = tokio::io::AsyncReadExt::read(&mut b, &mut buf).await;
        b.write_all(&hello).await.unwrap();
        let _ = tokio::io::AsyncReadExt::read(&mut b, &mut buf).await;
        // The process dies: its socket closes with the request unanswered.
    });
    let client = Client::handshake(a, Hello::default()).await.unwrap();
    let (_, mut recv) = client.open(get("/"), true).unwrap();
    worker.await.unwrap();
    assert!(matches!(recv.response().await, Err(StreamError::ConnectionLost(_))));
    assert!(matches!(client.open(get("/"), true), Err(StreamError::ConnectionLost(_))));
}

#[tokio::test]
async fn garbage_from_the_worker_closes_the_connection() {
    let (a, mut b) = tokio::io::duplex(4096);
    let mut hello = BytesMut::new();
    encode(&Frame::Hello(Hello::default()), &mut hello).unwrap();
    let server = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let _ = tokio::io::AsyncReadExt::read(&mut b, &mut buf).await;
        b.write_all(&hello).await.unwrap();
        b.write_all(&[0, 0, 0, 1, 0x6f, 0, 0, 0, 0, 1, 0]).await.unwrap();
        b
    });
    let client = Client::handshake(a, Hello::default()).await.unwrap();
    let (_, mut recv) = client.open(get("/"), true).unwrap();
    let err = recv.response().await.unwrap_err();
    assert!(matches!(err, StreamError::ConnectionLost(ref m) if m.contains("unknown frame type")), "{err:?}");
    assert!(client.is_unusable());
    drop(server);
}

#[tokio::test]
async fn max_streams_and_go_away_refuse_without_sending() {
    let (client, server) = pair(Hello { max_streams: 2, ..Hello::default() }).await;
    let _a = client.open(get("/a"), true).unwrap();
    let _b = client.open(get("/b"), true).unwrap();
    assert!(matches!(client.open(get("/c"), true), Err(StreamError::Refused(_))));
    server.go_away();
    drop(_a);
    // Wait until the GOAWAY has been read.
    for _ in 0..100 {
        if client.is_unusable() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(client.open(get("/d"), true), Err(StreamError::Refused(_))));
}

#[tokio::test]
async fn an_upload_the_worker_ignores_still_completes() {
    let (client, mut server) = pair(Hello::default()).await;
    tokio::spawn(async move {
        let req = server.accept().await.unwrap();
        drop(req.body);
        let mut send = req.respond.send_response(ok(), false).unwrap();
        send.send_data(Bytes::from_static(b"ignored"), true).await.unwrap();
        // Keep the connection alive while the upload finishes.
        let _server = server;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let (mut send, mut recv) = client.open(get("/upload"), false).unwrap();
    let upload = tokio::spawn(async move {
        for _ in 0..64 {
            send.send_data(Bytes::from(vec![0u8; 64 * 1024]), false).await.unwrap();
        }
        send.finish().await.unwrap();
    });
    recv.response().await.unwrap();
    assert_eq!(read_all(&mut recv).await, b"ignored");
    upload.await.unwrap();
}

/// The worker's end of a pipe that dies right after its `writes`-th write — its write side
/// shut, what it queued afterwards never sent — as a process killed at that instant would.
struct DiesAfter {
    inner: tokio::io::DuplexStream,
    writes: usize,
}

impl tokio::io::AsyncRead for DiesAfter {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for DiesAfter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        if self.writes == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        let written = std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_write(cx, buf));
        if written.is_ok() {
            self.writes -= 1;
            if self.writes == 0 {
                let _ = std::pin::Pin::new(&mut self.inner).poll_shutdown(cx);
            }
        }
        Poll::Ready(written)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A client and a worker that dies after its HELLO and one more write; the request it got.
async fn dying_pair() -> (Client, RecvStream, IncomingRequest) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(Server::handshake(DiesAfter { inner: b, writes: 2 }, Hello::default()));
    let client = Client::handshake(a, Hello::default()).await.unwrap();
    let mut server = server.await.unwrap().unwrap();
    let (_, recv) = client.open(get("/"), true).unwrap();
    let req = server.accept().await.unwrap();
    tokio::spawn(async move { while server.accept().await.is_some() {} });
    (client, recv, req)
}

#[tokio::test]
async fn a_head_sent_with_its_body_arrives_whole_though_the_worker_dies_after_that_write() {
    let (_client, mut recv, req) = dying_pair().await;
    let (send, rest) =
        req.respond.send_response_with_data(ok(), Bytes::from_static(b"the whole answer"), true).unwrap();
    assert!(rest.is_empty());
    // Whatever the responding task does next, the head and its body went out together.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    drop(send);
    let (head, end) = recv.response().await.unwrap();
    assert_eq!((head.status, end), (200, false));
    assert_eq!(read_all(&mut recv).await, b"the whole answer");
}

#[tokio::test]
async fn a_head_sent_alone_loses_its_body_when_the_worker_dies_after_that_write() {
    // Why `send_response_with_data` exists: the head and its body as two items can leave in two
    // writes (here the responder yields in between; on a loaded multi-threaded worker the writer
    // can simply run in between), and a kill between them leaves the listener a head whose body
    // never comes.
    let (_client, mut recv, req) = dying_pair().await;
    let mut send = req.respond.send_response(ok(), false).unwrap();
    // Let the writer (which itself yields once before draining its queue) send the head.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    let _ = send.send_data(Bytes::from_static(b"the whole answer"), true).await;
    assert_eq!(recv.response().await.unwrap().0.status, 200);
    assert!(matches!(recv.data().await, Some(Err(StreamError::ConnectionLost(_)))));
}

#[tokio::test]
async fn a_first_piece_beyond_the_credit_is_handed_back() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(Server::handshake(b, Hello::default()));
    let client = Client::handshake(a, Hello { initial_window: 4, ..Hello::default() }).await.unwrap();
    let mut server = server.await.unwrap().unwrap();
    let (_, mut recv) = client.open(get("/"), true).unwrap();
    let req = server.accept().await.unwrap();
    let (mut send, rest) = req.respond.send_response_with_data(ok(), Bytes::from_static(b"abcdefgh"), true).unwrap();
    assert_eq!(&rest[..], b"efgh", "only the credit's worth went with the head");
    let rest_sent = tokio::spawn(async move { send.send_data(rest, true).await });
    assert_eq!(recv.response().await.unwrap().0.status, 200);
    assert_eq!(read_all(&mut recv).await, b"abcdefgh");
    rest_sent.await.unwrap().unwrap();
}
