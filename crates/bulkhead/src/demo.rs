//! The demo worker (`bulkhead demo-app`, hidden): the application behind the embedded default
//! config's `/demo` route, so a first `bulkhead serve` shows worker isolation at work.
//!
//! `main.rs` calls [`run`] from the hidden `demo-app` subcommand; the manager starts it like any
//! pool worker (`command = ["bulkhead", "demo-app"]`) and it is served by `bulkhead_worker::serve`
//! on the inherited socket. Pages:
//! - `/demo` — this worker's pid, uptime and requests served, and the request's `X-Forwarded-For`
//!   and `X-Request-Id` (added by the listener), with a reload link: reload after a crash or a
//!   recycle and the pid changes;
//! - `/demo/slow?ms=N` — answers after N milliseconds (at most 60 s), to watch queueing and drains;
//! - `/demo/crash` — sends the start of a page, then the process exits with status 1, to watch
//!   the manager restart it while the rest of the server carries on (the response has begun, so
//!   the listener does not replay the request on a second worker);
//! - `/demo/bytes?n=N` — streams N bytes (default 1 MiB) in 64 KiB chunks, never held in memory;
//! - `/demo/echo` — reads the request body (`?slow_ms=N` sleeps N ms per chunk, to show a slow
//!   reader pushing back on the client) and answers how many bytes arrived.
//!
//! Paths are matched with or without the `/demo` prefix, so it works whether or not the route
//! strips it. Every page is `Cache-Control: no-store`: the listener's response cache must never
//! answer for a page whose point is to show which process answered. It must stay dependency-light
//! (only what the binary already links) and never touch Bulkhead's internals — it is an ordinary app.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use bulkhead_listener::static_files::listing::escape;
use bytes::{Buf, Bytes};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

/// What `/demo/bytes` streams, one chunk at a time.
static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// Longest `/demo/slow` wait.
const MAX_SLOW_MS: u64 = 60_000;

/// What the demo pages report about this worker process.
struct Demo {
    /// The pool this worker serves (`BULKHEAD_POOL`), shown on the page.
    pool: String,
    started: Instant,
    served: AtomicU64,
}

/// Serves the demo app as a Bulkhead worker until the manager drains or stops it.
pub fn run() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let pool = std::env::var(bulkhead_proto::env::POOL).unwrap_or_else(|_| "demo".to_string());
    let demo = Arc::new(Demo { pool, started: Instant::now(), served: AtomicU64::new(0) });
    let app = tower::service_fn(move |req| handle(Arc::clone(&demo), req));
    runtime.block_on(bulkhead_worker::serve(app))?;
    Ok(())
}

async fn handle<B>(demo: Arc<Demo>, req: Request<B>) -> Result<Response<DemoBody>, Infallible>
where
    B: http_body::Body + Unpin,
{
    let served = demo.served.fetch_add(1, Ordering::Relaxed) + 1;
    let path = req.uri().path();
    let path = path.strip_prefix("/demo").unwrap_or(path);
    let response = match path {
        "" | "/" | "/index.html" => html(StatusCode::OK, &home_page(&demo, served, &req)),
        "/slow" => {
            let ms = slow_ms(req.uri().query());
            tokio::time::sleep(Duration::from_millis(ms)).await;
            html(StatusCode::OK, &slow_page(ms))
        }
        "/crash" => {
            eprintln!("demo-app pid {}: /demo/crash requested; exiting with status 1", std::process::id());
            let mut response = html(StatusCode::OK, "");
            *response.body_mut() = DemoBody::CrashAfter(Some(Bytes::from_static(b"<p>crashing now...</p>\n")));
            response
        }
        "/bytes" => {
            let n = query_u64(req.uri().query(), "n=").unwrap_or(1 << 20);
            let mut response = Response::new(DemoBody::Repeat { remaining: n });
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        "/echo" => {
            let slow = query_u64(req.uri().query(), "slow_ms=").unwrap_or(0).min(MAX_SLOW_MS);
            let mut body = req.into_body();
            let mut received = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    received += data.remaining() as u64;
                }
                if slow > 0 {
                    tokio::time::sleep(Duration::from_millis(slow)).await;
                }
            }
            let mut response = Response::new(DemoBody::Full(Some(Bytes::from(format!("received {received} bytes\n")))));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        _ => html(StatusCode::NOT_FOUND, &page("Not found", "<p>No such demo page. <a href=\"/demo\">Back</a></p>")),
    };
    Ok(response)
}

fn home_page<B>(demo: &Demo, served: u64, req: &Request<B>) -> String {
    let header = |name: &str| {
        req.headers().get(name).map(|v| escape(&String::from_utf8_lossy(v.as_bytes()))).unwrap_or_else(|| "—".into())
    };
    let body = format!(
        "<p>This page was made by a worker process of the <b>{pool}</b> pool, not by the listener.</p>\n\
         <table>\n\
         <tr><th>worker pid</th><td>{pid}</td></tr>\n\
         <tr><th>uptime</th><td>{uptime}</td></tr>\n\
         <tr><th>requests served by this process</th><td>{served}</td></tr>\n\
         <tr><th>X-Forwarded-For</th><td>{xff}</td></tr>\n\
         <tr><th>X-Request-Id</th><td>{rid}</td></tr>\n\
         </table>\n\
         <p><a href=\"/demo\">Reload</a> — the count goes up; the pid stays until the worker is recycled.</p>\n\
         <p><a href=\"/demo/slow?ms=2000\">A slow request</a> (2 s) · \
         <a href=\"/demo/crash\">Crash this worker</a>, then reload: the manager has started a new one \
         (a new pid) and the rest of the server never noticed.</p>\n",
        pool = escape(&demo.pool),
        pid = std::process::id(),
        uptime = format_uptime(demo.started.elapsed()),
        xff = header("x-forwarded-for"),
        rid = header("x-request-id"),
    );
    page("Bulkhead demo worker", &body)
}

fn slow_page(ms: u64) -> String {
    let body = format!(
        "<p>Worker pid {} answered after {ms} ms.</p>\n<p><a href=\"/demo\">Back</a></p>\n",
        std::process::id()
    );
    page("Slow request", &body)
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}\
         th{{text-align:left;padding-right:1em}}</style></head>\n\
         <body><h1>{title}</h1>\n{body}</body></html>\n"
    )
}

fn html(status: StatusCode, body: &str) -> Response<DemoBody> {
    let mut response = Response::new(DemoBody::Full(Some(Bytes::from(body.to_owned()))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The `ms` query parameter, clamped to [`MAX_SLOW_MS`]; 0 when absent or not a number.
fn slow_ms(query: Option<&str>) -> u64 {
    query_u64(query, "ms=").map_or(0, |ms| ms.min(MAX_SLOW_MS))
}

/// A numeric query parameter (`key` includes the `=`).
fn query_u64(query: Option<&str>, key: &str) -> Option<u64> {
    query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix(key)).and_then(|v| v.parse().ok())
}

/// The demo's response bodies.
pub enum DemoBody {
    Full(Option<Bytes>),
    /// `remaining` bytes of [`CHUNK`], streamed.
    Repeat {
        remaining: u64,
    },
    /// Sends these bytes, then ends the process on the next poll.
    CrashAfter(Option<Bytes>),
}

impl http_body::Body for DemoBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(match &mut *self {
            DemoBody::Full(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            DemoBody::Repeat { remaining: 0 } => None,
            DemoBody::Repeat { remaining } => {
                let n = (*remaining).min(CHUNK.len() as u64) as usize;
                *remaining -= n as u64;
                Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n]))))
            }
            DemoBody::CrashAfter(first) => match first.take() {
                Some(b) => Some(Ok(Frame::data(b))),
                None => std::process::exit(1),
            },
        })
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, DemoBody::Full(None) | DemoBody::Repeat { remaining: 0 })
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DemoBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            DemoBody::Repeat { remaining } => SizeHint::with_exact(*remaining),
            DemoBody::CrashAfter(_) => SizeHint::default(),
        }
    }
}

fn format_uptime(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, s) => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn demo() -> Arc<Demo> {
        Arc::new(Demo { pool: "demo".into(), started: Instant::now(), served: AtomicU64::new(0) })
    }

    fn get(uri: &str) -> Request<http_body_util::Empty<Bytes>> {
        Request::get(uri).body(http_body_util::Empty::new()).unwrap()
    }

    async fn body(response: Response<DemoBody>) -> String {
        let bytes = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn home_page_shows_pid_count_and_escaped_headers() {
        let demo = demo();
        let req = Request::get("/demo")
            .header("x-forwarded-for", "<script>")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let _ = handle(Arc::clone(&demo), get("/demo/")).await;
        let response = handle(demo, req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        let text = body(response).await;
        assert!(text.contains(&std::process::id().to_string()));
        assert!(text.contains("<td>2</td>"), "second request counted: {text}");
        assert!(text.contains("&lt;script&gt;") && !text.contains("<script>"));
    }

    #[tokio::test]
    async fn unknown_page_is_404_and_slow_is_bounded() {
        let response = handle(demo(), get("/demo/nope")).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(slow_ms(Some("ms=250")), 250);
        assert_eq!(slow_ms(Some("a=1&ms=999999")), MAX_SLOW_MS);
        assert_eq!(slow_ms(Some("ms=x")), 0);
        assert_eq!(slow_ms(None), 0);
    }

    #[tokio::test]
    async fn bytes_streams_exactly_n() {
        let response = handle(demo(), get("/demo/bytes?n=200000")).await.unwrap();
        assert_eq!(http_body::Body::size_hint(response.body()).exact(), Some(200_000));
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 200_000);
    }

    #[test]
    fn uptime_reads_naturally() {
        assert_eq!(format_uptime(Duration::from_secs(5)), "5s");
        assert_eq!(format_uptime(Duration::from_secs(125)), "2m 5s");
        assert_eq!(format_uptime(Duration::from_secs(3725)), "1h 2m 5s");
    }
}
