//! `hello`: the smallest Bulkhead worker — answers `Hello, world` (text/plain) to every request.
//!
//! It is the app of the integration tests and of the benchmarks (`bench/`), so it can run three
//! ways, all serving the same response:
//! - `hello` — under Bulkhead: `bulkhead_worker::serve` reads `LISTEN_FDS`/`PORT` and the
//!   control channel from the environment;
//! - `hello --unix PATH` — binds that unix socket itself and serves it through the same SDK
//!   path (no control channel), so nginx can `proxy_pass` to the very same app;
//! - `hello --tcp ADDR` — a bare in-process hyper server on TCP, the "no proxy at all" limit.
//!
//! A path ending in `/1m` answers 1 MiB instead (the benchmarks' large-response case); one
//! ending in `/cached` adds `Cache-Control: public, max-age=3600` (the cached-worker case).
//!
//! `--threads N` (or `WORKER_THREADS=N`) sets the tokio worker threads; the default is one per
//! core. The serving path allocates nothing of its own: a static body, a static header value.

use std::convert::Infallible;
use std::future::Ready;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http_body_util::Full;

const BODY: &[u8] = b"Hello, world\n";
/// The 1 MiB answer to `…/1m`.
static MIB: [u8; 1 << 20] = [b'x'; 1 << 20];

/// The application: one response for every request. A hand-written service (rather than a
/// closure) keeps the response future a plain `Ready`, with no boxing.
#[derive(Clone, Copy)]
struct Hello;

impl<B> tower::Service<http::Request<B>> for Hello {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let body = if path.ends_with("/1m") { &MIB[..] } else { BODY };
        let mut response = hello(body);
        if path.ends_with("/cached") {
            // The benchmarks' cached-worker case: the listener's response cache may keep it.
            response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
        }
        std::future::ready(Ok(response))
    }
}

fn hello(body: &'static [u8]) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from_static(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

enum Mode {
    Bulkhead,
    Unix(String),
    Tcp(String),
}

struct Args {
    mode: Mode,
    threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { mode: Mode::Bulkhead, threads: None };
    if let Ok(value) = std::env::var("WORKER_THREADS") {
        args.threads = Some(value.parse().map_err(|_| format!("WORKER_THREADS={value:?} is not a number"))?);
    }
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--unix" => args.mode = Mode::Unix(value("--unix")?),
            "--tcp" => args.mode = Mode::Tcp(value("--tcp")?),
            "--threads" => {
                let n = value("--threads")?;
                args.threads = Some(n.parse().map_err(|_| format!("--threads {n:?} is not a number"))?);
            }
            "-h" | "--help" => {
                return Err("usage: hello [--unix PATH | --tcp ADDR] [--threads N]".to_string());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn main() {
    if let Err(error) = run() {
        eprintln!("hello: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    // The SDK's own lines (serving on…, draining…) go to stderr, i.e. the pool's log.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).with_target(false).init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build()?;
    runtime.block_on(async move {
        match args.mode {
            Mode::Bulkhead => bulkhead_worker::serve(Hello).await?,
            Mode::Unix(path) => serve_unix(&path).await?,
            Mode::Tcp(address) => bare_hyper(&address).await?,
        }
        Ok(())
    })
}

/// Binds `path` and serves it through the SDK, until Ctrl-C (then drains and removes `path`).
async fn serve_unix(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    let env = bulkhead_worker::WorkerEnv::standalone(bulkhead_worker::Listen::Unix(listener));
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let result = bulkhead_worker::serve_with(env, Hello, ctrl_c).await;
    let _ = std::fs::remove_file(path);
    Ok(result?)
}

/// A bare hyper HTTP/1.1 server on TCP: no SDK, no counters, no proxy — the upper bound.
async fn bare_hyper(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    eprintln!("hello: bare hyper on http://{}", listener.local_addr()?);
    let service = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| {
        let body = if req.uri().path().ends_with("/1m") { &MIB[..] } else { BODY };
        std::future::ready(Ok::<_, Infallible>(hello(body)))
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}
