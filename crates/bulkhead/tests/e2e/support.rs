//! The harness shared by every end-to-end test: temp dirs ([`dirs`]), the real server process
//! ([`server`]), a byte-exact HTTP/1.1 client ([`http`]), `/proc` helpers ([`procs`]) and
//! visible skips ([`skip`]).
//!
//! Nothing here mocks a part of Bulkhead: tests run the binary Cargo built
//! (`CARGO_BIN_EXE_bulkhead`) with real sockets on loopback and real worker processes.
#![allow(dead_code)]

pub mod dirs;
pub mod http;
pub mod procs;
pub mod server;
pub mod skip;

use std::time::{Duration, Instant};

pub use dirs::TestDir;
pub use server::Server;

/// Calls `f` every 20 ms until it returns true or `limit` passes; returns the last answer.
pub fn poll(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Like [`poll`] but panics with `what` when the time runs out.
pub fn wait_for(what: &str, limit: Duration, f: impl FnMut() -> bool) {
    assert!(poll(limit, f), "timed out after {limit:?} waiting for {what}");
}

/// A TCP port that was free on all IPv4 addresses a moment ago — for configs that need two
/// bindings sharing one socket (a host-name binding listens on every address).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}
