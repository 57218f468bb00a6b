//! Slow clients (issue #10 item 2) on real sockets: a request body trickled slower than
//! `min_bytes_per_sec` is cut off with 408 `Timer_MinBytesPerSecond`; a client that stops
//! reading its response is cut off the same way; slow uploads to a pool are spooled by the
//! listener, so they hold no worker slot and a normal request to the same pool is served while
//! they trickle (nginx's `proxy_request_buffering`), and a body too large for memory is spooled
//! to an unnamed file under `state_dir/body-temp` and reaches the worker intact.
//! Bounds are on counts and on the server's own timers (`min_bytes_grace`), never on speed.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::http::{self, Conn};
use crate::support::server::{python3_available, python_site};
use crate::support::{poll, wait_for, Server, TestDir};

/// The HTTPERR data lines with `reason`.
fn httperr_with(server: &Server, reason: &str) -> Vec<String> {
    server.httperr_log().lines().filter(|l| !l.starts_with('#') && l.contains(reason)).map(str::to_string).collect()
}

#[test]
fn a_trickled_body_is_cut_off_with_408_once_its_grace_is_over() {
    if !python3_available() {
        return;
    }
    let limits = "[limits]\nmin_bytes_per_sec = 1000\nmin_bytes_grace = \"1s\"\n";
    let server = Server::start(TestDir::new("slow-body"), &python_site(limits, ""));
    let addr = server.addr();
    // A body at full speed passes.
    let r = http::send(addr, "POST", "/echo", &[], &vec![b'a'; 100_000]);
    assert_eq!((r.status, r.body.len()), (200, 100_000));
    // 10 bytes every 100 ms is 100 B/s, a tenth of the minimum: cut off after the grace, with
    // most of the declared body never sent. Bounded: at most 60 s of trickling.
    let mut conn = Conn::connect(addr).expect("connect");
    conn.send_raw(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n").expect("head");
    let mut stream = conn.stream().try_clone().expect("clone");
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(60) && sent < 100_000 {
        if stream.write_all(&[b'b'; 10]).is_err() {
            break;
        }
        sent += 10;
        // The pace of the slow client itself, not a wait for the server.
        std::thread::sleep(Duration::from_millis(100));
        if !httperr_with(&server, "Timer_MinBytesPerSecond").is_empty() {
            break;
        }
    }
    let r = conn.read_response(false).expect("an answer to the slow body");
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(r.closes(), "the connection of a cut-off body must close");
    assert!(sent < 100_000, "the whole body went through at 100 B/s");
    wait_for("HTTPERR Timer_MinBytesPerSecond", Duration::from_secs(10), || {
        !httperr_with(&server, "Timer_MinBytesPerSecond").is_empty()
    });
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    if !python3_available() {
        return;
    }
    let limits = "[limits]\nmin_bytes_per_sec = 100000\nmin_bytes_grace = \"1s\"\nheader_wait_timeout = \"2s\"\n";
    let server = Server::start(TestDir::new("slow-reader"), &python_site(limits, ""));
    let addr = server.addr();
    // 64 MiB: far more than the socket buffers on both sides hold, so the listener's writes
    // block while the client reads nothing.
    let mut conn = Conn::connect(addr).expect("connect");
    conn.send_raw(b"GET /bytes?n=67108864 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    wait_for("HTTPERR Timer_MinBytesPerSecond", Duration::from_secs(30), || {
        !httperr_with(&server, "Timer_MinBytesPerSecond").is_empty()
    });
    // What the kernel had buffered arrives, then the connection ends short of the body.
    conn.stream().set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let got = conn.read_rest().map(|b| b.len()).unwrap_or(0);
    assert!(got < 64 * 1024 * 1024, "the whole response was delivered to a client that did not read");
    // A reader that keeps up is never cut off.
    let r = http::get(addr, "/bytes?n=8388608");
    assert_eq!((r.status, r.body.len()), (200, 8_388_608));
}

#[test]
fn slow_uploads_hold_no_worker_and_large_bodies_spool_to_a_file() {
    if !python3_available() {
        return;
    }
    // One worker taking one request at a time, and a short queue wait: without spooling, the
    // first slow upload holds the only slot and the GET below waits out queue_timeout (503).
    let limits = "[limits]\nqueue_timeout = \"3s\"\nmax_body = \"64MiB\"\n";
    let server = Server::start(TestDir::new("spool"), &python_site(limits, "concurrency = 1\nprocesses = 1"));
    let addr = server.addr();
    assert_eq!(http::get(addr, "/pid").status, 200, "the worker is up");
    // Five uploads that have sent their head and half of their body, and wait.
    let mut uploads: Vec<Conn> = (0..5)
        .map(|i| {
            let mut c = Conn::connect(addr).expect("connect");
            c.send_raw(format!("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\nup{i}_").as_bytes())
                .expect("head and half a body");
            c
        })
        .collect();
    // The pool still answers at once: the bodies are in the listener, not in the worker's slot.
    for _ in 0..3 {
        let r = http::get(addr, "/pid");
        assert_eq!(r.status, 200, "a GET behind slow uploads: {}", r.text());
    }
    // The uploads finish and each reaches the worker whole.
    for (i, c) in uploads.iter_mut().enumerate() {
        c.send_raw(b"done").expect("rest of the body");
        let r = c.read_response(false).expect("upload answered");
        assert_eq!((r.status, r.text()), (200, format!("up{i}_done")));
    }
    // A body larger than the listener keeps in memory goes through a file and arrives intact;
    // the file has no name, so body-temp holds nothing afterwards.
    let body: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let r = http::send(addr, "POST", "/echo", &[("Transfer-Encoding", "chunked")], &chunked(&body));
    assert_eq!(r.status, 200);
    assert!(r.body == body, "a spooled 3 MiB body came back different ({} bytes)", r.body.len());
    let temp = server.state_dir.join("body-temp");
    let left = poll(Duration::from_secs(5), || std::fs::read_dir(&temp).map(|d| d.count() == 0).unwrap_or(false));
    assert!(left, "files left in {}", temp.display());
}

/// `body` in 64 KiB chunks.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1024);
    for piece in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
