//! The extension loader against real libraries (issue 12 item 3): C fixtures and the C example
//! compiled with `cc -shared -fPIC` against `include/bulkhead_extension.h`, and the Rust example
//! built by cargo, each loaded with `dlopen` and called through [`extension::serve`] as the host
//! worker calls it — no mock of any part. What is proved here: the header and the Rust ABI types
//! agree byte for byte; both examples answer; a Rust panic is a 500 and the library keeps
//! serving; a wrong ABI version, a library that is not an extension, one that refuses its
//! handshake, a missing file and a relative path are refused with the path and the reason;
//! filters run in their order (request headers, authenticate, response headers, log, end);
//! small responses are whole with Content-Length, big ones stream; a failure before the head
//! is the host's 500, after it the body is cut. (A segfault, which must kill only its worker,
//! needs a worker process: the e2e test `extensions::` proves it through `bulkhead serve`.)
//!
//! Without a C compiler the C tests skip visibly (`.ci/run` installs gcc).

#[allow(dead_code)]
mod support {
    pub mod native;
    #[path = "../../../bulkhead/tests/e2e/support/skip.rs"]
    pub mod skip;
}

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bulkhead_extension::abi;
use bulkhead_host::extension::{self, Extensions, LoadError, Target};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::native;
use support::skip::{skip, Reason};

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("extension-tests-{}", std::process::id()))
}

/// The filter fixtures write their log and end hooks here.
fn filter_log() -> PathBuf {
    out_dir().join("filters.log")
}

fn c_lib(source: &Path, name: &str, defines: &[&str]) -> PathBuf {
    native::cc(source, &out_dir(), name, defines).unwrap_or_else(|e| panic!("{e}"))
}

fn fixture(name: &str) -> PathBuf {
    let stem = name.trim_end_matches(".c");
    c_lib(&native::fixture(name), &format!("lib{stem}.so"), &[])
}

fn filter(name: &str) -> PathBuf {
    let log = format!("LOG_FILE=\"{}\"", filter_log().display());
    c_lib(&native::fixture("filter.c"), &format!("libfilter_{name}.so"), &[&format!("NAME=\"{name}\""), &log])
}

fn rust_example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    native::rust_example(&exe).unwrap_or_else(|e| panic!("{e}"))
}

/// One `Extensions` for the whole test binary, as one worker process has.
fn extensions() -> Arc<Extensions> {
    static EXT: OnceLock<Arc<Extensions>> = OnceLock::new();
    Arc::clone(EXT.get_or_init(|| Arc::new(Extensions::new())))
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Result<Vec<u8>, String>,
    whole: Option<usize>,
}

impl Answer {
    fn text(&self) -> String {
        match &self.body {
            Ok(b) => String::from_utf8_lossy(b).into_owned(),
            Err(e) => format!("<body failed: {e}>"),
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

async fn call(target: Target, request: http::Request<Full<Bytes>>) -> Answer {
    let response = extension::serve(extensions(), target, request).await;
    let (parts, body) = response.into_parts();
    let whole = body.whole_len();
    let body = body.collect().await.map(|c| c.to_bytes().to_vec()).map_err(|e| e.to_string());
    Answer { status: parts.status.as_u16(), headers: parts.headers, body, whole }
}

fn get(uri: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(uri).body(Full::default()).expect("a request")
}

fn target(library: PathBuf, filters: Vec<PathBuf>) -> Target {
    Target { library, filters, remote_addr: "10.1.2.3".into() }
}

#[test]
fn the_header_and_the_rust_abi_agree() {
    use std::mem::{offset_of, size_of};
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let exe = c_lib(&native::fixture("layout.c"), "layout", &[]);
    let out = std::process::Command::new(&exe).output().expect("run the layout program");
    assert!(out.status.success());
    let c = String::from_utf8_lossy(&out.stdout).into_owned();
    let rust = [
        ("bh_str", size_of::<abi::bh_str>()),
        ("bh_header", size_of::<abi::bh_header>()),
        ("bh_request", size_of::<abi::bh_request>()),
        ("bh_response", size_of::<abi::bh_response>()),
        ("bh_log", size_of::<abi::bh_log>()),
        ("bh_request.method", offset_of!(abi::bh_request, method)),
        ("bh_request.user", offset_of!(abi::bh_request, user)),
        ("bh_request.headers", offset_of!(abi::bh_request, headers)),
        ("bh_request.content_length", offset_of!(abi::bh_request, content_length)),
        ("bh_request.read_body", offset_of!(abi::bh_request, read_body)),
        ("bh_request.set_user", offset_of!(abi::bh_request, set_user)),
        ("bh_response.status", offset_of!(abi::bh_response, status)),
        ("bh_response.head_sent", offset_of!(abi::bh_response, head_sent)),
        ("bh_response.headers", offset_of!(abi::bh_response, headers)),
        ("bh_response.set_status", offset_of!(abi::bh_response, set_status)),
        ("bh_response.flush", offset_of!(abi::bh_response, flush)),
        ("bh_log.status", offset_of!(abi::bh_log, status)),
        ("bh_log.body_bytes", offset_of!(abi::bh_log, body_bytes)),
        ("bh_log.duration_us", offset_of!(abi::bh_log, duration_us)),
        ("bh_log.outcome", offset_of!(abi::bh_log, outcome)),
    ]
    .map(|(k, v)| format!("{k} {v}"));
    let constants = [
        format!("BH_ABI_VERSION {}", abi::ABI_VERSION),
        format!("BH_OK {}", abi::BH_OK),
        format!("BH_FINISHED {}", abi::BH_FINISHED),
        format!("BH_ERROR {}", abi::BH_ERROR),
        format!("BH_BUFFERED_BODY {}", abi::BUFFERED_BODY),
    ];
    let expected: Vec<String> = rust.into_iter().chain(constants).collect();
    assert_eq!(c.lines().collect::<Vec<_>>(), expected, "C layout (left) vs Rust (right)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_answers() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let lib = c_lib(&native::repo_root().join("examples/extension-c/hello.c"), "libhello.so", &[]);
    let a = call(target(lib, vec![]), get("/hello/there?x=1")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.text(), format!("hello from a C extension pid={} path=/hello/there\n", std::process::id()));
    assert_eq!(a.header("x-extension"), "c", "its response_headers filter ran");
    assert_eq!(a.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(a.header("content-length"), a.text().len().to_string(), "a small response is sent whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_example_answers_echoes_and_survives_its_panic() {
    let lib = rust_example();
    let t = || target(lib.clone(), vec![]);
    let a = call(t(), get("/r/")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.text(), format!("hello from a Rust extension pid={} path=/r/\n", std::process::id()));
    assert_eq!(a.header("x-extension"), "rust");

    let post = http::Request::post("/r/echo")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
        .expect("a request");
    let a = call(t(), post).await;
    assert_eq!((a.status, a.text().as_str()), (200, "{\"n\":1}"));
    assert_eq!(a.header("content-type"), "application/json");
    assert_eq!(a.header("x-request-filter"), "ran", "the handler saw what the request_headers filter set");

    let a = call(t(), get("/r/panic")).await;
    assert_eq!(a.status, 500, "a panic caught by the SDK is the host's 500: {}", a.text());
    assert_eq!(a.header("x-extension"), "rust", "the 500 passed the response_headers filter too");
    let a = call(t(), get("/r/after")).await;
    assert_eq!(a.status, 200, "the library serves on after a panic: {}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libraries_that_cannot_serve_are_refused_with_the_path_and_the_reason() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let wrong = fixture("wrong_abi.c");
    let e = extension::Library::load(&wrong).expect_err("ABI 2.0 is refused");
    assert!(matches!(e, LoadError::WrongAbi { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&wrong.display().to_string()) && text.contains("ABI 2.0") && text.contains("ABI 1.0"),
        "{text}"
    );
    // Through serve: a 500, and the handler never ran.
    let a = call(target(wrong, vec![]), get("/w")).await;
    assert_eq!(a.status, 500);
    assert!(!a.text().contains("must never run"));

    let plain = c_lib(&native::fixture("not_an_extension.c"), "libplain.so", &[]);
    let e = extension::Library::load(&plain).expect_err("no handshake symbol");
    assert!(
        matches!(e, LoadError::NotAnExtension { .. }) && e.to_string().contains(&plain.display().to_string()),
        "{e}"
    );

    let refuses = fixture("refuses.c");
    let e = extension::Library::load(&refuses).expect_err("its handshake returns 0");
    assert!(matches!(e, LoadError::RefusedByLibrary { .. }), "{e}");

    let missing = out_dir().join("no-such-library.so");
    let e = extension::Library::load(&missing).expect_err("no file");
    assert!(matches!(e, LoadError::Open { .. }) && e.to_string().contains("no-such-library.so"), "{e}");

    let e = extension::Library::load(Path::new("libc.so.6")).expect_err("a bare name");
    assert!(matches!(e, LoadError::NotAbsolute { .. }), "{e}");

    // A filters-only library cannot be a route's library.
    let a = call(target(filter("a"), vec![]), get("/f")).await;
    assert_eq!(a.status, 500);
    let e = extensions().get(&filter("a")).map(|l| l.has_handler());
    assert!(matches!(e, Ok(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_run_in_their_order_around_the_handler() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let (a, b, echo) = (filter("a"), filter("b"), fixture("echo.c"));
    let t = || target(echo.clone(), vec![a.clone(), b.clone()]);

    let request = http::Request::post("/filters/order?q=1")
        .header("x-user", "alice")
        .header("content-length", "5")
        .body(Full::new(Bytes::from_static(b"hello")))
        .expect("a request");
    let r = call(t(), request).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for line in [
        "method=POST",
        "path=/filters/order",
        "query=q=1",
        "user=alice",
        "x-filters=a,b",
        "content_length=5",
        "body=hello",
    ] {
        assert!(text.lines().any(|l| l == line), "the handler saw {line:?}: {text}");
    }
    assert_eq!(r.header("x-filters"), "a,b", "response_headers ran a then b");

    // b answers 401 itself at authenticate: the handler does not run, response filters still do.
    let denied = http::Request::get("/filters/denied").header("x-deny", "b").body(Full::default()).expect("a request");
    let r = call(t(), denied).await;
    assert_eq!((r.status, r.text().as_str()), (401, "denied by b\n"));
    assert_eq!(r.header("www-authenticate"), "Basic realm=\"test\"");
    assert_eq!(r.header("x-filters"), "a,b");

    // log then end, each in the filters' order, once per request: they run after the response
    // was handed over, on the thread that served it, so wait (bounded) for each request's four
    // lines (the first request's thread may still be on its way to them when the second's are
    // written: seen once under the whole suite's load).
    let lines = |path: &str| -> Vec<String> {
        let log = std::fs::read_to_string(filter_log()).unwrap_or_default();
        log.lines().filter(|l| l.ends_with(&format!(" {path}"))).map(str::to_string).collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (lines("/filters/order").len() < 4 || lines("/filters/denied").len() < 4)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let len = text.len();
    assert_eq!(
        lines("/filters/order"),
        [
            format!("a log 200 {len} ok /filters/order"),
            format!("b log 200 {len} ok /filters/order"),
            "a end /filters/order".into(),
            "b end /filters/order".into()
        ]
    );
    assert_eq!(
        lines("/filters/denied"),
        [
            "a log 401 12 ok /filters/denied",
            "b log 401 12 ok /filters/denied",
            "a end /filters/denied",
            "b end /filters/denied"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_responses_stream_and_failures_are_500_or_a_cut() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let echo = fixture("echo.c");
    let t = || target(echo.clone(), vec![]);

    let r = call(t(), get("/e?big=1000")).await;
    assert_eq!((r.status, r.whole, r.header("content-length")), (200, Some(1000), "1000"));

    let size = 3 * abi::BUFFERED_BODY + 17;
    let r = call(t(), get(&format!("/e?big={size}"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.whole, None, "past BH_BUFFERED_BODY the body streams");
    assert_eq!(r.header("content-length"), "");
    assert_eq!(r.body.as_ref().map(Vec::len), Ok(size));

    let r = call(t(), get("/e?fail")).await;
    assert_eq!(r.status, 500, "a failure before the head: the host's 500");
    assert_eq!(r.text(), "500 Internal Server Error\n", "what was buffered is dropped");

    let r = call(t(), get("/e?fail-late")).await;
    assert_eq!(r.status, 200, "the head went out before the failure");
    assert!(r.body.is_err(), "the body is cut, not ended: {:?}", r.body.as_ref().map(Vec::len));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_extension_threads_wait_their_turn_and_all_finish() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let echo = fixture("echo.c");
    // Three times as many blocking calls as the process has extension threads.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let calls = 3 * extension::THREADS_PER_CPU * cpus;
    let tasks: Vec<_> =
        (0..calls).map(|_| tokio::spawn(call(target(echo.clone(), vec![]), get("/e?sleep=50")))).collect();
    for task in tasks {
        let r = task.await.expect("a call");
        assert_eq!((r.status, r.text().as_str()), (200, "slept\n"));
    }
}
