//! End-to-end tests of the listener in this process: a real `run` on a socketpair playing the
//! manager, a real TCP socket on 127.0.0.1:0 passed by fd, real hyper workers on temp unix
//! sockets, a real HTTP client. Nothing of ours is mocked; only the manager's side of the
//! control channel is played by the test.

use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_proto::{
    Channel, ListenSocket, ListenerToManager, ManagerToListener, PoolRefusal, Protocol, WorkerAddress, WorkerId,
    WorkerInfo,
};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;

type Manager = bulkhead_proto::ChannelSender<ManagerToListener>;

struct Harness {
    dir: PathBuf,
    addr: SocketAddr,
    manager: Manager,
    from_listener: mpsc::UnboundedReceiver<ListenerToManager>,
    listener: tokio::task::JoinHandle<Result<(), bulkhead_listener::ListenerError>>,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bulkhead-listener-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &Path, limits: &str) -> String {
    format!(
        r#"
[server]
state_dir = "{dir}/state"
[limits]
{limits}
[[sites]]
name = "main"
bindings = ["http://127.0.0.1:0"]
routes = [
  {{ path = "/", root = "{dir}/www", handlers = {{ ".php" = "api" }} }},
  {{ path = "/api", pool = "api" }},
  {{ path = "/old", redirect = "/new", status = 301 }},
]
[pools.api]
command = ["unused"]
concurrency = 4
queue_length = 100
"#,
        dir = dir.display()
    )
}

async fn start(name: &str, limits: &str) -> Harness {
    start_with(name, limits, None).await
}

async fn start_with(name: &str, limits: &str, keep_fd: Option<&mut i32>) -> Harness {
    let dir = temp_dir(name);
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("docs")).unwrap();
    std::fs::write(www.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(www.join("docs/index.html"), "docs").unwrap();
    std::fs::write(www.join("style.css"), "body{}").unwrap();
    std::fs::write(www.join("index.php"), "<?php echo 1;").unwrap();
    std::fs::write(www.join("secret.env"), "KEY=1").unwrap();
    std::fs::write(dir.join("outside.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(dir.join("outside.txt"), www.join("link.txt")).unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(www.join("big.bin"), &big).unwrap();

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let fd = tcp.into_raw_fd();
    if let Some(keep) = keep_fd {
        *keep = fd;
    }
    let (ours, theirs) = UnixStream::pair().unwrap();
    let listener = tokio::spawn(bulkhead_listener::run(theirs));
    let channel: Channel<ManagerToListener, ListenerToManager> = Channel::new(ours);
    let (mut manager, mut rx) = channel.into_split();
    let config_path = dir.join("bulkhead.toml");
    manager
        .send(&ManagerToListener::Configure {
            config_toml: config(&dir, limits),
            config_path: Some(config_path),
            base_dir: dir.clone(),
            sockets: vec![ListenSocket { fd, local_addr: addr, bindings: vec!["http://127.0.0.1:0".into()] }],
            certificates: Vec::new(),
        })
        .await
        .unwrap();
    let (tx, from_listener) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(msg)) = rx.recv().await {
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    let mut h = Harness { dir, addr, manager, from_listener, listener };
    assert_eq!(h.next_message().await, ListenerToManager::Ready);
    h
}

impl Harness {
    async fn next_message(&mut self) -> ListenerToManager {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.from_listener.recv())
                .await
                .expect("a message from the listener within 10s")
                .expect("listener channel open");
            if !matches!(msg, ListenerToManager::Activity { .. } | ListenerToManager::Stats { .. }) {
                return msg;
            }
        }
    }

    /// Starts a fake worker and tells the listener about it.
    async fn worker_up(&mut self, id: u64) -> tokio::task::JoinHandle<()> {
        let path = self.dir.join(format!("api.w{id}.sock"));
        let task = fake_worker(&path, id);
        self.manager
            .send(&ManagerToListener::WorkerUp(WorkerInfo {
                pool: "api".into(),
                worker: WorkerId(id),
                pid: std::process::id(),
                address: WorkerAddress::Unix(path),
                protocol: Protocol::Http,
                concurrency: 4,
            }))
            .await
            .unwrap();
        task
    }

    async fn shutdown(mut self) -> PathBuf {
        self.manager.send(&ManagerToListener::Shutdown { grace_ms: 5000 }).await.unwrap();
        while self.next_message().await != ListenerToManager::Drained {}
        tokio::time::timeout(Duration::from_secs(10), self.listener).await.unwrap().unwrap().unwrap();
        self.dir
    }
}

/// A tiny HTTP/1.1 worker: `/api/boom` drops the connection without answering; a POST answers
/// the number of body bytes it read; anything else describes the request.
fn fake_worker(path: &Path, id: u64) -> tokio::task::JoinHandle<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    if req.uri().path() == "/api/slow" {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    if req.uri().path() == "/api/boom" {
                        return Err::<Response<Full<Bytes>>, _>("boom");
                    }
                    let h = req.headers();
                    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
                    let text = if req.method() == http::Method::POST {
                        let mut body = req.into_body();
                        let mut n = 0u64;
                        while let Some(frame) = body.frame().await {
                            n += frame.map_err(|_| "body")?.into_data().map_or(0, |d| d.len() as u64);
                        }
                        format!("w{id} read {n}")
                    } else {
                        format!(
                            "w{id} {} {} xff={} proto={} host={} rid={} conn={}",
                            req.method(),
                            req.uri(),
                            get("x-forwarded-for"),
                            get("x-forwarded-proto"),
                            get("x-forwarded-host"),
                            get("x-request-id"),
                            get("x-hop"),
                        )
                    };
                    Ok(Response::builder()
                        .header("connection", "keep-alive")
                        .body(Full::new(Bytes::from(text)))
                        .unwrap())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn send<B>(addr: SocketAddr, req: Request<B>) -> (StatusCode, HeaderMap, Bytes)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // HTTP/1.1 requires Host (the listener answers 400 without it); hyper's client adds none.
    let mut req = req;
    if !req.headers().contains_key(http::header::HOST) {
        req.headers_mut().insert(http::header::HOST, http::HeaderValue::from_static("localhost"));
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let resp = tokio::time::timeout(Duration::from_secs(20), sender.send_request(req)).await.unwrap().unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, HeaderMap, Bytes) {
    send(addr, Request::get(path).header("host", "localhost").body(Full::new(Bytes::new())).unwrap()).await
}

/// Sends raw bytes and returns the status line (for requests a client library will not send).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_and_redirects() {
    let h = start("static", "").await;
    let a = h.addr;

    let (status, headers, body) = get(a, "/").await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"<h1>home</h1>");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let etag = headers["etag"].clone();
    assert!(headers.contains_key("last-modified"));

    let req = Request::get("/index.html").header("if-none-match", etag).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send(a, req).await.0, 304);

    assert_eq!(get(a, "/style.css").await.1["content-type"], "text/css; charset=utf-8");
    assert_eq!(get(a, "/missing.html").await.0, 404);
    assert_eq!(get(a, "/secret.env").await.0, 404, "unknown extensions are not served");
    assert_eq!(get(a, "/link.txt").await.0, 404, "symlinks out of the root are refused");
    assert_eq!(get(a, "/a%2f..%2fsecret.txt").await.0, 404);
    assert_eq!(get(a, "/bad%zz").await.0, 400);
    assert!(raw(a, b"GET /../outside.txt HTTP/1.1\r\nHost: x\r\n\r\n").await.contains(" 404 "));

    let (status, headers, _) = get(a, "/docs?x=1").await;
    assert_eq!(status, 301);
    assert_eq!(headers["location"], "/docs/?x=1");
    assert_eq!(&get(a, "/docs/").await.2[..], b"docs");

    let post = Request::post("/style.css").body(Full::new(Bytes::from("x"))).unwrap();
    let (status, headers, _) = send(a, post).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, HEAD");

    let (status, headers, body) = get(a, "/big.bin").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], "3145728");
    assert_eq!(body.len(), 3 * 1024 * 1024);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));

    let head = Request::head("/big.bin").body(Full::new(Bytes::new())).unwrap();
    let (status, headers, body) = send(a, head).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert_eq!(headers["content-length"], "3145728");

    let (status, headers, _) = get(a, "/old/page?q=2").await;
    assert_eq!(status, 301);
    assert_eq!(headers["location"], "/new/page?q=2");

    let dir = h.shutdown().await;
    let access = read_logs(&dir.join("state/logs/sites/main"));
    assert!(access.contains("#Fields: date time s-ip cs-method cs-uri-stem"), "{access}");
    assert!(access.contains(" GET /secret.env - "), "{access}");
    assert!(access.contains(" 404 3 0 "), "404.3 for an unknown extension: {access}");
    assert!(access.contains(" GET /big.bin - "), "{access}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_requests_demand_start_queue_and_stream() {
    let mut h = start("pool", "").await;
    let a = h.addr;

    // No worker yet: the request waits and the manager is asked for one.
    let waiting = tokio::spawn(get(a, "/api/hello?x=1"));
    assert_eq!(h.next_message().await, ListenerToManager::DemandStart { pool: "api".into() });
    let w1 = h.worker_up(1).await;
    let (status, _, body) = waiting.await.unwrap();
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body).to_string();
    assert!(body.starts_with("w1 GET /api/hello?x=1 xff=127.0.0.1 proto=http host=localhost rid="), "{body}");
    assert!(!body.contains("rid=-"), "a request id is generated: {body}");

    // Hop-by-hop headers named in Connection are removed; a client's request id is kept.
    let req = Request::get("/api/h")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .header("x-request-id", "abc-123")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let body = send(a, req).await.2;
    let body = String::from_utf8_lossy(&body).to_string();
    assert!(body.contains("rid=abc-123 conn=-"), "{body}");

    // A handler extension on a static route goes to the pool — for a script that exists: a
    // missing one is the static 404.
    let body = get(a, "/index.php").await.2;
    assert!(body.starts_with(b"w1 GET /index.php"), "{body:?}");
    assert_eq!(get(a, "/missing.php").await.0, 404);

    // An 8 MiB chunked upload streams through to the worker.
    let chunks = (0..128).map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![7u8; 64 * 1024]))));
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    let (status, _, body) = send(a, Request::post("/api/upload").body(body).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"w1 read 8388608");

    // Keep-alive to the worker: many requests, all answered.
    for i in 0..20 {
        assert_eq!(get(a, &format!("/api/n{i}")).await.0, 200);
    }

    // The pool goes offline: requests get 503 until it is available again.
    h.manager
        .send(&ManagerToListener::PoolRefused {
            pool: "api".into(),
            refusal: PoolRefusal::AppOffline,
            detail: "test".into(),
        })
        .await
        .unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if get(a, "/api/x").await.0 == 503 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "AppOffline answers 503");
    h.manager.send(&ManagerToListener::PoolAvailable { pool: "api".into() }).await.unwrap();
    let mut back = false;
    for _ in 0..50 {
        if get(a, "/api/x").await.0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "PoolAvailable serves again");

    let dir = h.shutdown().await;
    w1.abort();
    let access = read_logs(&dir.join("state/logs/sites/main"));
    assert!(access.contains(" POST /api/upload - "), "{access}");
    assert!(access.contains(" 503 0 0 "), "{access}");
    let httperr = read_logs(&dir.join("state/logs/HTTPERR"));
    assert!(httperr.contains(" 503 1 AppOffline api"), "{httperr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_request_gets_502_after_two_workers() {
    let mut h = start("poison", "").await;
    let a = h.addr;
    let w1 = h.worker_up(1).await;
    let w2 = h.worker_up(2).await;
    assert_eq!(get(a, "/api/ok").await.0, 200);

    let (status, _, _) = get(a, "/api/boom").await;
    assert_eq!(status, 502);
    let mut unreachable = Vec::new();
    while unreachable.len() < 2 {
        if let ListenerToManager::WorkerUnreachable { worker, .. } = h.next_message().await {
            unreachable.push(worker);
        }
    }
    unreachable.sort();
    assert_eq!(unreachable, vec![WorkerId(1), WorkerId(2)], "the retry went to the other worker");

    // A replacement worker serves the next request (the dead ones get no more).
    let waiting = tokio::spawn(get(a, "/api/after"));
    let w3 = h.worker_up(3).await;
    let (status, _, body) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with(b"w3 "), "{body:?}");

    // A connect failure (worker socket gone) is retried on another worker, unseen by the client.
    w3.abort();
    let _ = std::fs::remove_file(h.dir.join("api.w3.sock"));
    let w4 = h.worker_up(4).await;
    for _ in 0..5 {
        assert_eq!(get(a, "/api/again").await.0, 200);
    }

    let dir = h.shutdown().await;
    for w in [w1, w2, w4] {
        w.abort();
    }
    let httperr = read_logs(&dir.join("state/logs/HTTPERR"));
    assert!(httperr.contains("GET /api/boom - 502 1 Connection_Abandoned_By_AppPool api"), "{httperr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_timeouts() {
    let limits = r#"
connection_timeout = "1s"
header_wait_timeout = "1s"
max_body = "1KiB"
max_url_segments = 4
max_connections = 3
"#;
    let mut h = start("limits", limits).await;
    let a = h.addr;
    let _w = h.worker_up(1).await;

    assert_eq!(get(a, "/a/b/c/d/e").await.0, 414);
    let big = Request::post("/api/up").body(Full::new(Bytes::from(vec![0u8; 2048]))).unwrap();
    assert_eq!(send(a, big).await.0, 413);
    // A chunked body is cut off once it passes max_body.
    let chunks = (0..4).map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![1u8; 512]))));
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    assert_eq!(send(a, Request::post("/api/up").body(body).unwrap()).await.0, 413);
    assert!(raw(a, b"BLAH\r\n\r\n").await.contains(" 400 "));

    // An idle keep-alive connection and a half-sent head are closed by the timers.
    let mut idle = TcpStream::connect(a).await.unwrap();
    let mut slow = TcpStream::connect(a).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "idle connection closed");
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "slow head closed");

    // Past max_connections, a connection gets 503 ConnLimit.
    let held: Vec<TcpStream> = futures_util::future::join_all((0..3).map(|_| TcpStream::connect(a)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(raw(a, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.contains(" 503 "));
    drop(held);

    let dir = h.shutdown().await;
    let httperr = read_logs(&dir.join("state/logs/HTTPERR"));
    for reason in [" URL ", " EntityTooLarge ", "Timer_ConnectionIdle", "Timer_HeaderWait", " ConnLimit "] {
        assert!(httperr.contains(reason), "{reason} in {httperr}");
    }
    // `BLAH` has no method, target and version: hyper's refusal, named by what it could not parse.
    assert!([" Verb ", " Version_N/S ", " BadRequest "].iter().any(|r| httperr.contains(r)), "{httperr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_gone_stops_the_listener() {
    let h = start("gone", "").await;
    let Harness { manager, listener, dir, from_listener, .. } = h;
    drop(manager);
    drop(from_listener);
    // The read half of the control socket is owned by the reader task, which sees EOF only when
    // both halves are gone; dropping the sender closes the write side, which is what the listener
    // reads.
    let done = tokio::time::timeout(Duration::from_secs(10), listener).await;
    assert!(done.is_ok(), "the listener exits when the manager goes away");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// All log files under a directory, concatenated.
fn read_logs(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_swaps_routes_and_shutdown_finishes_in_flight() {
    let mut fd = -1;
    let mut h = start_with("reconf", "", Some(&mut fd)).await;
    let a = h.addr;
    let _w = h.worker_up(1).await;
    assert_eq!(get(a, "/old/x").await.1["location"], "/new/x");
    assert_eq!(get(a, "/api/x").await.0, 200);

    // Activity is reported for the pool that served requests.
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), h.from_listener.recv()).await.unwrap().unwrap();
        if let ListenerToManager::Activity { pool, requests } = msg {
            assert_eq!(pool, "api");
            assert!(requests >= 1);
            break;
        }
    }

    // A new configuration on the same socket: the redirect moves, the pool and its worker stay.
    let text = config(&h.dir, "").replace("redirect = \"/new\"", "redirect = \"/newer\"");
    h.manager
        .send(&ManagerToListener::Configure {
            config_toml: text,
            config_path: Some(h.dir.join("bulkhead.toml")),
            base_dir: h.dir.clone(),
            sockets: vec![ListenSocket { fd, local_addr: a, bindings: vec!["http://127.0.0.1:0".into()] }],
            certificates: Vec::new(),
        })
        .await
        .unwrap();
    let mut moved = false;
    for _ in 0..100 {
        if get(a, "/old/x").await.1["location"] == "/newer/x" {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(moved, "the new route table is in use");
    assert_eq!(get(a, "/api/x").await.0, 200);

    // Shutdown while a request is in flight: it finishes, then Drained.
    let slow = tokio::spawn(get(a, "/api/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dir = h.shutdown().await;
    assert_eq!(slow.await.unwrap().0, 200, "in-flight request finished during the grace period");
    assert!(TcpStream::connect(a).await.is_err(), "no longer accepting");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Per-request state is the request's own: a first request whose body outgrew `max_body` (413,
/// and its connection closed: the rest of its body is never read) must not colour the second, a
/// POST the worker fails (`/api/boom` drops the connection), whose answer depends on its own
/// body's state: a 502 from the failed worker, never the first request's 413; and the access
/// log counts each request's own body bytes. (Streams of one HTTP/2 connection, which share
/// their connection for real, are the e2e test `http2::one_stream_over_max_body_…`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_state_is_per_request_on_a_keep_alive_connection() {
    let mut h = start("per-request", "max_body = \"1KiB\"").await;
    let _w = h.worker_up(1).await;
    let stream = TcpStream::connect(h.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    let conn = tokio::spawn(conn);
    let chunked = |n: usize| {
        let chunks = (0..n).map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![1u8; 512]))));
        StreamBody::new(futures_util::stream::iter(chunks))
    };
    // 1.5 KiB: the third chunk crosses max_body.
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        sender.send_request(Request::post("/api/first").header("host", "x").body(chunked(3)).unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), 413, "1.5 KiB chunked body over max_body = 1KiB");
    assert_eq!(resp.headers()["connection"], "close");
    drop(sender);
    let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
    let (status, _, body) =
        send(h.addr, Request::post("/api/boom").header("host", "x").body(chunked(1)).unwrap()).await;
    assert_eq!(status, 502, "the second request is judged by its own body, not the first's: {body:?}");

    let dir = h.shutdown().await;
    let httperr = read_logs(&dir.join("state/logs/HTTPERR"));
    assert!(httperr.contains("POST /api/first - 413 1 EntityTooLarge api"), "{httperr}");
    assert!(httperr.contains("POST /api/boom - 502 1 Connection_Abandoned_By_AppPool api"), "{httperr}");
    let access = read_logs(&dir.join("state/logs/sites/main"));
    let cs_bytes = |path: &str| -> u64 {
        let line = access.lines().find(|l| l.contains(path)).unwrap_or_else(|| panic!("{path} in {access}"));
        // cs-bytes, before the last field (x-cache).
        line.rsplit(' ').nth(1).unwrap().parse().unwrap()
    };
    let (first, second) = (cs_bytes(" POST /api/first "), cs_bytes(" POST /api/boom "));
    assert!(first > 1024, "the first request read past 1 KiB of body: {first}");
    assert!(second < 1024, "the second request's bytes are its own (512 of body and its head): {second}");
    assert!(second > 512, "{second}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The HTTP/1.1 transport gives each connection back to its worker's pool when the response body
/// has been read to the end (the body does it, nobody above the transport): sequential requests
/// reuse one worker connection (fails if connections are never given back). A response the
/// client abandons half-read leaves the pool usable: the next request is answered whole, on a
/// fresh connection (the half-read one is closed, by hyper as well as by the body's choice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_connections_are_reused_only_when_read_to_the_end() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let mut h = start("reuse", "").await;
    let path = h.dir.join("api.counted.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let worker = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    // 8 MiB for /api/big, far more than the socket buffers hold; a short body else.
                    let body = if req.uri().path() == "/api/big" { vec![b'x'; 8 << 20] } else { b"ok".to_vec() };
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    h.manager
        .send(&ManagerToListener::WorkerUp(WorkerInfo {
            pool: "api".into(),
            worker: WorkerId(9),
            pid: std::process::id(),
            address: WorkerAddress::Unix(path),
            protocol: Protocol::Http,
            concurrency: 4,
        }))
        .await
        .unwrap();

    for i in 0..10 {
        let (status, _, body) = get(h.addr, &format!("/api/seq{i}")).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "ten sequential requests on one worker connection");

    // Read the head of a big response, then go away.
    let mut client = TcpStream::connect(h.addr).await.unwrap();
    client.write_all(b"GET /api/big HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    drop(client);

    // The next request is answered whole, and not on the half-read connection.
    let (status, _, body) = get(h.addr, "/api/after").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a fresh connection after the abandoned response");

    let dir = h.shutdown().await;
    worker.abort();
    std::fs::remove_dir_all(&dir).unwrap();
}
