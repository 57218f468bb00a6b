//! Native extensions and filters through a real `bulkhead serve` (issue 12 item 3): routes with
//! `execute = "extension"` in `kind = "host"` pools, served by the built-in host worker
//! (`bulkhead worker`) that loads each library once and calls it through the C ABI of
//! `include/bulkhead_extension.h`. The libraries are real: the C example and fixtures compiled
//! with `cc -shared -fPIC`, the Rust example built by cargo (`examples/extension-rust`).
//!
//! What is proved: both examples answer through the listener (one host worker, one pid); a Rust
//! panic is a 500 and the same worker answers the next request; a C handler that writes through
//! NULL kills only its worker — that request gets 502 (a GET is retried once on the replacement,
//! which dies too: a poison request), the manager starts a new worker (a new pid) that answers
//! the next request, and another pool on the same server answers throughout; a library built
//! for another ABI version is refused with its path and both versions in the pool's log (500,
//! and the host's other routes still answer); filters run in their configured order around the
//! handler (request headers the handler sees, a 401 from an authenticate filter, response
//! headers, the log and end hooks in order).

#[path = "../../../bulkhead-host/tests/support/native.rs"]
mod native;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::http::{self, Response};
use crate::support::server::bulkhead_exe;
use crate::support::skip::{skip, Reason};
use crate::support::{procs, wait_for, Server, TestDir};

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-extensions-{}", std::process::id()))
}

fn c_library(source: &Path, name: &str, defines: &[&str]) -> PathBuf {
    native::cc(source, &out_dir(), name, defines).unwrap_or_else(|e| panic!("{e}"))
}

fn fixture(name: &str) -> PathBuf {
    c_library(&native::fixture(&format!("{name}.c")), &format!("lib{name}.so"), &[])
}

fn c_example() -> PathBuf {
    c_library(&native::repo_root().join("examples/extension-c/hello.c"), "libhello.so", &[])
}

fn rust_example() -> PathBuf {
    native::rust_example(Path::new(bulkhead_exe())).unwrap_or_else(|e| panic!("{e}"))
}

/// The `pid=N` a fixture or example puts in its answer.
fn pid_of(r: &Response) -> u32 {
    let text = r.text();
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"))
}

/// A site "ext" with `routes`, and `pools` (TOML tables) after it.
fn site(routes: &str, pools: &str) -> String {
    format!("[[sites]]\nname = \"ext\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [\n{routes}\n]\n\n{pools}")
}

const HOST_POOL: &str = "[pools.host]\nkind = \"host\"\n";

fn route(path: &str, library: &Path, extra: &str) -> String {
    format!(
        "  {{ path = {path:?}, pool = \"host\", execute = \"extension\", library = {:?}{extra} }},",
        library.display().to_string()
    )
}

#[test]
fn the_c_and_rust_examples_answer_through_one_host_worker() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let (c, rust) = (c_example(), rust_example());
    let routes = [route("/c", &c, ""), route("/rust", &rust, "")].join("\n");
    let server = Server::start(TestDir::new("ext-examples"), &site(&routes, HOST_POOL));
    let addr = server.addr();

    let r = http::get(addr, "/c/report?x=1");
    assert_eq!(r.status, 200, "{}", r.text());
    let pid = pid_of(&r);
    assert_eq!(r.text(), format!("hello from a C extension pid={pid} path=/c/report\n"));
    assert_eq!(r.header("x-extension"), Some("c"));
    assert!(server.worker_pids().contains(&pid), "the answer came from a worker of this server");

    let r = http::get(addr, "/rust/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("hello from a Rust extension pid={pid} path=/rust/\n"), "the same host worker");
    assert_eq!(r.header("x-extension"), Some("rust"));

    let r = http::send(addr, "POST", "/rust/echo", &[("Content-Type", "text/csv")], b"a,b\n1,2\n");
    assert_eq!((r.status, r.text().as_str(), r.header("content-type")), (200, "a,b\n1,2\n", Some("text/csv")));
}

#[test]
fn a_panic_is_a_500_and_the_worker_serves_on() {
    let rust = rust_example();
    let server = Server::start(TestDir::new("ext-panic"), &site(&route("/rust", &rust, ""), HOST_POOL));
    let addr = server.addr();
    let before = http::get(addr, "/rust/");
    assert_eq!(before.status, 200, "{}", before.text());
    let r = http::get(addr, "/rust/panic");
    assert_eq!(r.status, 500, "{}", r.text());
    let after = http::get(addr, "/rust/");
    assert_eq!(after.status, 200, "{}", after.text());
    assert_eq!(pid_of(&after), pid_of(&before), "the panic cost no worker");
    wait_for("the panic's message in the pool log", Duration::from_secs(10), || {
        server.pool_log("host").contains("this handler panics on purpose")
    });
}

#[test]
fn a_segfault_kills_only_its_worker_which_is_replaced() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let (crash, hello) = (fixture("crash"), c_example());
    let routes = format!(
        "{}\n  {{ path = \"/other\", pool = \"other\", execute = \"extension\", library = {:?} }},",
        route("/ext", &crash, ""),
        hello.display().to_string()
    );
    let pools = format!("{HOST_POOL}\n[pools.other]\nkind = \"host\"\n");
    let server = Server::start(TestDir::new("ext-segv"), &site(&routes, &pools));
    let addr = server.addr();

    let r = http::get(addr, "/ext/ok");
    assert_eq!(r.status, 200, "{}", r.text());
    let first = pid_of(&r);
    let other = http::get(addr, "/other/");
    assert_eq!(other.status, 200, "{}", other.text());
    let other_pid = pid_of(&other);

    let r = http::get(addr, "/ext/crash");
    assert_eq!(r.status, 502, "the request that segfaulted its worker (and, retried, the next one): {}", r.text());
    wait_for("the crashed worker to be gone", Duration::from_secs(10), || !procs::alive(first));

    let other = http::get(addr, "/other/");
    assert_eq!((other.status, pid_of(&other)), (200, other_pid), "the other pool's worker is untouched");
    let r = http::get(addr, "/ext/ok");
    assert_eq!(r.status, 200, "a new worker answers: {}", r.text());
    let replacement = pid_of(&r);
    assert_ne!(replacement, first);
    assert!(server.worker_pids().contains(&replacement));
    let log = server.pool_log("host");
    assert!(log.contains("SIGSEGV"), "the pool log names the signal: {log}");
}

#[test]
fn a_library_for_another_abi_is_refused_with_its_path() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let (wrong, hello) = (fixture("wrong_abi"), c_example());
    let routes = [route("/wrong", &wrong, ""), route("/hello", &hello, "")].join("\n");
    let server = Server::start(TestDir::new("ext-abi"), &site(&routes, HOST_POOL));
    let addr = server.addr();
    let r = http::get(addr, "/wrong/");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(!r.text().contains("must never run"));
    let path = wrong.display().to_string();
    wait_for("the refusal in the pool log", Duration::from_secs(10), || {
        let log = server.pool_log("host");
        log.contains(&path) && log.contains("ABI 2.0") && log.contains("ABI 1.0")
    });
    let r = http::get(addr, "/hello/");
    assert_eq!(r.status, 200, "the host's other libraries still serve: {}", r.text());
}

#[test]
fn filters_run_in_their_order_around_the_handler() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let filter = |name: &str| {
        c_library(&native::fixture("filter.c"), &format!("libfilter_{name}.so"), &[&format!("NAME=\"{name}\"")])
    };
    let (a, b, echo) = (filter("a"), filter("b"), fixture("echo"));
    let filters = format!(", filters = [{:?}, {:?}]", a.display().to_string(), b.display().to_string());
    let dir = TestDir::new("ext-filters");
    let log_file = dir.join("filters.log");
    let pools = format!("{HOST_POOL}env = {{ BULKHEAD_TEST_FILTER_LOG = {:?} }}\n", log_file.display().to_string());
    let server = Server::start(dir, &site(&route("/f", &echo, &filters), &pools));
    let addr = server.addr();

    // A client's own x-bulkhead-* header is stripped by the listener; the listener's (the
    // library, the filters) are removed by the host: the extension sees none.
    let forged = [("X-User", "alice"), ("X-Bulkhead-Library", "/tmp/evil.so")];
    let r = http::send(addr, "POST", "/f/order?q=1", &forged, b"hello");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for line in [
        "method=POST",
        "path=/f/order",
        "query=q=1",
        "user=alice",
        "x-filters=a,b",
        "bulkhead-headers=0",
        "content_length=5",
        "body=hello",
    ] {
        assert!(text.lines().any(|l| l == line), "the handler saw {line:?}: {text}");
    }
    assert_eq!(r.header("x-filters"), Some("a,b"), "response_headers ran a then b");

    let r = http::send(addr, "GET", "/f/denied", &[("X-Deny", "b")], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "denied by b\n"));
    assert_eq!(r.header("x-filters"), Some("a,b"));

    let lines = |path: &str| -> Vec<String> {
        std::fs::read_to_string(&log_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.ends_with(&format!(" {path}")))
            .map(str::to_string)
            .collect()
    };
    wait_for("both requests' log and end hooks", Duration::from_secs(10), || lines("/f/denied").len() == 4);
    let len = text.len();
    assert_eq!(
        lines("/f/order"),
        [
            format!("a log 200 {len} ok /f/order"),
            format!("b log 200 {len} ok /f/order"),
            "a end /f/order".into(),
            "b end /f/order".into()
        ]
    );
    assert_eq!(
        lines("/f/denied"),
        ["a log 401 12 ok /f/denied", "b log 401 12 ok /f/denied", "a end /f/denied", "b end /f/denied"]
    );
}

#[test]
fn the_examples_serve_from_their_own_configs() {
    if !native::have_cc() {
        skip!(Reason::Missing("cc (gcc)".into()));
    }
    let examples = native::repo_root().join("examples");
    for (name, library, built) in [
        ("extension-c", "\"libhello.so\"", c_example()),
        ("extension-rust", "\"../../target/release/libextension_rust.so\"", rust_example()),
    ] {
        let text = std::fs::read_to_string(examples.join(name).join("bulkhead.toml")).expect("the example's config");
        let config = text
            .replace("127.0.0.1:8080", "127.0.0.1:0")
            .replace(&format!("library = {library}"), &format!("library = {:?}", built.display().to_string()));
        assert!(!config.contains(library), "examples/{name}/bulkhead.toml changed shape; update this test");
        let server = Server::start(TestDir::new(&format!("ext-{name}")), &config);
        let r = http::get(server.addr(), "/hello/there");
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert!(r.text().ends_with("path=/hello/there\n"), "{name}: {}", r.text());
    }
}
