//! Per-site `max_bandwidth` (issue #10 item 3) with real sockets: two downloads at once from a
//! limited site share its rate (together they cannot beat it: a lower bound on the time, which
//! no slowness of the machine can break) and take turns fairly (when one has finished, the other
//! is well along, not waiting behind it); a site without a limit beside it still serves the file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::http::Conn;
use crate::support::{Server, TestDir};

const SIZE: usize = 400 * 1024;
const RATE: u64 = 200 * 1024;

#[test]
fn a_sites_connections_share_its_bandwidth_fairly() {
    let dir = TestDir::new("bandwidth");
    dir.write("www/big.bin", "x".repeat(SIZE));
    let config = format!(
        r#"
[[sites]]
name = "slow"
bindings = ["http://127.0.0.1:0"]
max_bandwidth = "200KiB/s"
routes = [ {{ path = "/", root = "{www}" }} ]

[[sites]]
name = "free"
bindings = ["http://127.0.0.2:0"]
routes = [ {{ path = "/", root = "{www}" }} ]
"#,
        www = dir.join("www").display()
    );
    let server = Server::start(dir, &config);
    let slow = server.addr_of("http://127.0.0.1:0");
    let progress: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let started = Instant::now();
    let downloads: Vec<_> = progress
        .iter()
        .map(|seen| {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::connect(slow).expect("connect");
                conn.send_raw(b"GET /big.bin HTTP/1.1\r\nHost: slow\r\n\r\n").expect("send");
                conn.read_response_streaming(false, &mut |chunk| {
                    seen.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                })
                .map(|(status, _)| status)
            })
        })
        .collect();
    // Whichever finishes first: the other has most of its body by then (they took turns).
    let mut other_at_first_end = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && other_at_first_end.is_none() {
        let got: Vec<u64> = progress.iter().map(|p| p.load(Ordering::Relaxed)).collect();
        if let Some(done) = got.iter().position(|g| *g == SIZE as u64) {
            other_at_first_end = Some(got[1 - done]);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for d in downloads {
        assert_eq!(d.join().expect("download thread").expect("download"), 200);
    }
    let elapsed = started.elapsed();
    let other = other_at_first_end.expect("a download finished");
    assert!(other >= SIZE as u64 / 2, "when one download ended the other had {other} of {SIZE} bytes: not fair");
    // 800 KiB through 200 KiB/s: at least 4 s less the 100 ms burst.
    let least = Duration::from_secs_f64((2 * SIZE) as f64 / RATE as f64) - Duration::from_millis(300);
    assert!(elapsed >= least, "2 × {SIZE} bytes in {elapsed:?}: faster than max_bandwidth allows");
    // The unlimited site on the same listener serves the same file in one go.
    let free = server.addr_of("http://127.0.0.2:0");
    let r = crate::support::http::get_host(free, "free", "/big.bin");
    assert_eq!((r.status, r.body.len()), (200, SIZE));
}
