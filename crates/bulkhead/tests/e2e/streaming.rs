//! Bodies stream both ways through the listener (issue #2 item 4): 100 MiB uploaded to the
//! worker (which counts it) and 100 MiB downloaded from it (which generates it), with the
//! listener's peak resident memory (`VmHWM`) staying far below the body size. A bound on
//! memory, not on time.

use std::io::Write;

use crate::support::http::{self, Conn};
use crate::support::server::{python3_available, python_site};
use crate::support::{procs, Server, TestDir};

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 100 * MIB;
/// The listener's peak RSS must stay under this after both transfers.
const LISTENER_PEAK_LIMIT_KIB: u64 = 60 * 1024;

#[test]
fn hundred_mib_each_way_through_a_worker_with_small_listener_memory() {
    if !python3_available() {
        return;
    }
    let config = python_site("[limits]\nmax_body = \"1GiB\"\n", "");
    let server = Server::start(TestDir::new("stream"), &config);
    let addr = server.addr();
    let listener = server.listener_pid();
    let before = procs::vm_hwm_kib(listener).unwrap_or(0);

    // Upload with Content-Length, written in 64 KiB pieces.
    let mut conn = Conn::connect(addr).unwrap();
    let head = format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {SIZE}\r\n\r\n");
    conn.send_raw(head.as_bytes()).unwrap();
    let block = vec![b'u'; 64 * 1024];
    let mut sent = 0u64;
    let mut stream = conn.stream().try_clone().unwrap();
    while sent < SIZE {
        if let Err(e) = stream.write_all(&block) {
            let answer = conn.read_response(false).map(|r| (r.status, r.text()));
            panic!("upload cut off after {sent} bytes: {e}; the server said {answer:?}");
        }
        sent += block.len() as u64;
    }
    let r = conn.read_response(false).unwrap();
    assert_eq!((r.status, r.text()), (200, format!("received {SIZE}")), "100 MiB upload");

    // Chunked upload (no Content-Length): also streamed, also counted.
    let chunked_size = 8 * MIB;
    let mut conn = Conn::connect(addr).unwrap();
    conn.send_raw(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let mut stream = conn.stream().try_clone().unwrap();
    for _ in 0..chunked_size / block.len() as u64 {
        stream.write_all(format!("{:x}\r\n", block.len()).as_bytes()).unwrap();
        stream.write_all(&block).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let r = conn.read_response(false).unwrap();
    assert_eq!((r.status, r.text()), (200, format!("received {chunked_size}")), "chunked upload");

    // Download, counted as it arrives.
    let mut conn = Conn::connect(addr).unwrap();
    conn.send_raw(format!("GET /bytes?n={SIZE} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
    let mut received = 0u64;
    let mut wrong = 0u64;
    let (status, _) = conn
        .read_response_streaming(false, &mut |chunk| {
            received += chunk.len() as u64;
            wrong += chunk.iter().filter(|b| **b != b'x').count() as u64;
        })
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!((received, wrong), (SIZE, 0), "100 MiB download");
    // The connection is still usable afterwards.
    let r = conn.request("GET", "/pid", &[], b"").unwrap();
    assert_eq!(r.status, 200);

    let peak = procs::vm_hwm_kib(listener).expect("listener VmHWM");
    eprintln!("listener VmHWM: {before} KiB before, {peak} KiB after 2×100 MiB");
    assert!(
        peak < LISTENER_PEAK_LIMIT_KIB,
        "listener peak RSS {peak} KiB ≥ {LISTENER_PEAK_LIMIT_KIB} KiB: bodies are being buffered"
    );
    let _ = http::get(addr, "/");
}
