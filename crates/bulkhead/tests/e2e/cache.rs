//! The response cache (issue 11 item 1) through the real binary: a static file stored on its
//! second request and answered from memory (marked `HIT` in the access log, 304 and 206 from
//! the entry), a changed file seen again, `max_item` respected; a worker's `public, max-age`
//! answer served while its pool is stopped, answers with `private` or `Set-Cookie` and to
//! requests with `Authorization` or `Cookie` never stored, purges by the admin API and the
//! CLI, one fill for concurrent misses, and the counters in `/metrics`.

use std::time::Duration;

use crate::admin::{api, cli};
use crate::support::http::{self, send};
use crate::support::server::{python3_available, python_site};
use crate::support::{wait_for, Server, TestDir};

/// The `x-cache` column of the W3C lines of `site` whose `cs-uri-stem` is `stem`, in order.
fn cache_marks(server: &Server, site: &str, stem: &str) -> Vec<String> {
    let mut marks = Vec::new();
    for text in server.access_logs(site).values() {
        let fields: Vec<&str> =
            text.lines().find_map(|l| l.strip_prefix("#Fields: ")).unwrap_or_default().split(' ').collect();
        let at = |name: &str| fields.iter().position(|f| *f == name);
        let (Some(s), Some(x)) = (at("cs-uri-stem"), at("x-cache")) else { continue };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let values: Vec<&str> = line.split(' ').collect();
            if values.get(s) == Some(&stem) {
                marks.push(values.get(x).unwrap_or(&"").to_string());
            }
        }
    }
    marks
}

/// Waits until the access log has `n` lines for `stem`, and returns their marks.
fn marks_after(server: &Server, stem: &str, n: usize) -> Vec<String> {
    wait_for(&format!("{n} access-log lines for {stem}"), Duration::from_secs(10), || {
        cache_marks(server, "content", stem).len() >= n
    });
    cache_marks(server, "content", stem)
}

#[test]
fn static_file_is_stored_on_its_second_request_and_a_change_is_seen() {
    let dir = TestDir::new("cache-static");
    dir.write("www/a.txt", "first version\n");
    dir.write("www/big.txt", "x".repeat(2000));
    let config = format!(
        r#"
[cache]
max_item = "1KiB"

[[sites]]
name = "content"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", root = "{}" }} ]
"#,
        dir.join("www").display()
    );
    let server = Server::start(dir, &config);
    let addr = server.addr();
    for _ in 0..3 {
        let r = http::get(addr, "/a.txt");
        assert_eq!((r.status, r.text().as_str()), (200, "first version\n"));
    }
    assert_eq!(marks_after(&server, "/a.txt", 3), ["-", "-", "HIT"], "stored on the second GET, hit on the third");

    let full = http::get(addr, "/a.txt");
    let etag = full.header("etag").expect("ETag").to_string();
    assert_eq!(full.header("content-length"), Some("14"));
    let r = send(addr, "GET", "/a.txt", &[("If-None-Match", &etag)], b"");
    assert_eq!(r.status, 304);
    assert!(r.header("content-type").is_none(), "a 304 carries no content metadata: {:?}", r.headers);
    let r = send(addr, "GET", "/a.txt", &[("Range", "bytes=0-4")], b"");
    assert_eq!((r.status, r.text().as_str(), r.header("content-range")), (206, "first", Some("bytes 0-4/14")));
    let r = send(addr, "GET", "/a.txt", &[("Range", "bytes=99-")], b"");
    assert_eq!(r.status, 416);
    let r = send(addr, "HEAD", "/a.txt", &[], b"");
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("14"), 0));
    let r = send(addr, "GET", "/a.txt", &[("Range", "bytes=0-4, 6-12")], b"");
    let parts = crate::static_content::byteranges_parts(&r).expect("a multipart answer");
    let parts: Vec<(&str, &[u8])> = parts.iter().map(|(_, range, bytes)| (range.as_str(), &bytes[..])).collect();
    assert_eq!(parts, [("bytes 0-4/14", &b"first"[..]), ("bytes 6-12/14", &b"version"[..])]);
    assert_eq!(marks_after(&server, "/a.txt", 9)[3..], ["HIT", "HIT", "HIT", "HIT", "HIT", "HIT"]);

    server.dir.write("www/a.txt", "second version, longer\n");
    wait_for("the changed file to be served", Duration::from_secs(10), || {
        http::get(addr, "/a.txt").text() == "second version, longer\n"
    });

    for _ in 0..3 {
        assert_eq!(http::get(addr, "/big.txt").body.len(), 2000);
    }
    assert_eq!(marks_after(&server, "/big.txt", 3), ["-", "-", "-"], "past max_item: never stored");
}

#[test]
fn worker_public_answer_is_cached_and_served_while_its_pool_is_stopped() {
    if !python3_available() {
        return;
    }
    let server = Server::start(TestDir::new("cache-worker"), &python_site("", ""));
    let addr = server.addr();
    let public = "/cc?cc=public,max-age%3D60";
    let first = http::get(addr, public);
    assert_eq!(first.status, 200);
    assert!(first.text().starts_with("cc pid="), "{}", first.text());
    let again = http::get(addr, public);
    assert_eq!(again.text(), first.text(), "the second answer is the stored first");
    assert!(again.header("age").is_some(), "a worker entry's hit carries Age");

    // Each of these is answered by the worker every time: its counter moves.
    let cookie = ("Cookie", "session=1");
    let never: [(&str, &[(&str, &str)]); 4] = [
        ("/cc?cc=private,max-age%3D60", &[]),
        ("/cc?cc=public,max-age%3D60&cookie=1", &[]),
        ("/cc?cc=public,max-age%3D60&auth=1", &[("Authorization", "Basic YTpi")]),
        ("/cc?cc=public,max-age%3D60&cookie-request=1", &[cookie]),
    ];
    for (target, headers) in never {
        let a = send(addr, "GET", target, headers, b"").text();
        let b = send(addr, "GET", target, headers, b"").text();
        assert_ne!(a, b, "{target} {headers:?}: answered from the cache");
    }

    purge_via_api_and_cli(&server, public, &first.text());
    concurrent_misses_make_one_fill(&server);

    assert_eq!(api(&server, "POST", "/pools/py/stop", None).0, 200);
    wait_for("the pool to refuse uncached requests", Duration::from_secs(10), || {
        http::get(addr, "/cc?cc=no-store").status == 503
    });
    let stopped = http::get(addr, public);
    assert_eq!((stopped.status, stopped.text()), (200, first.text()), "served from the cache with the pool stopped");

    // Hits, stores and misses counted (the listener reports once a second).
    let value =
        |m: &str, name: &str| -> u64 { m.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0) };
    let file = server.config_path.clone().expect("config path");
    let file = file.to_str().expect("utf-8 path");
    let out = cli(&["cache", "purge", "--site", "app", "--config", file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the purged entry to be gone (503: the pool is stopped)", Duration::from_secs(10), || {
        http::get(addr, public).status == 503
    });

    wait_for("cache counters in /metrics", Duration::from_secs(10), || {
        let (_, m) = api(&server, "GET", "/metrics", None);
        let m = m.as_str().unwrap_or_default().to_string();
        value(&m, "bulkhead_cache_events_total{event=\"hit\"}") >= 2
            && value(&m, "bulkhead_cache_events_total{event=\"store\"}") >= 1
            && value(&m, "bulkhead_cache_events_total{event=\"miss\"}") >= 1
            && m.contains("bulkhead_cache_entries ")
            && m.contains("bulkhead_cache_memory_bytes ")
            && value(&m, "bulkhead_cache_hit_bytes_total") >= 2 * first.body.len() as u64
    });
}

/// `POST /cache/purge` and `bulkhead cache purge` drop what they name and nothing else: `public`
/// (whose stored answer is `stored`) outlives a purge of another prefix. Purges reach the
/// listener in order, so once the second one has acted, the first has too.
fn purge_via_api_and_cli(server: &Server, public: &str, stored: &str) {
    let addr = server.addr();
    let other = "/ccb?cc=public,max-age%3D60";
    let b1 = http::get(addr, other).text();
    assert_eq!(http::get(addr, other).text(), b1, "stored");

    let file = server.config_path.clone().expect("config path");
    let file = file.to_str().expect("utf-8 path");
    let out = cli(&["cache", "purge", "--prefix", "/nothing", "--config", file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, answer) = api(server, "POST", "/cache/purge", Some(r#"{"site": "app", "prefix": "/ccb"}"#));
    assert_eq!(code, 200, "{answer}");
    wait_for("the purged answer to come from the worker again", Duration::from_secs(10), || {
        http::get(addr, other).text() != b1
    });
    assert_eq!(http::get(addr, public).text(), stored, "outside the purged prefix: still stored");

    for (body, want) in [
        (r#"{"prefix": "ccb"}"#, 400),
        (r#"{"site": 3}"#, 400),
        (r#"{"path": "/"}"#, 400),
        ("[1]", 400),
        (r#"{"site": "nope"}"#, 404),
    ] {
        let (code, answer) = api(server, "POST", "/cache/purge", Some(body));
        assert_eq!(code, want, "{body}: {answer}");
    }
    let out = cli(&["cache", "purge", "--site", "nope", "--config", file]);
    assert_eq!(out.status.code(), Some(1), "an unknown site is refused");
}

/// Four requests at once for a key nobody has stored, whose answer takes 300 ms: one goes to
/// the worker, the others wait for its answer to be stored and get the same bytes.
fn concurrent_misses_make_one_fill(server: &Server) {
    let addr = server.addr();
    let slow = "/ccslow?cc=public,max-age%3D60&ms=300";
    let bodies: Vec<String> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4).map(|_| s.spawn(move || http::get(addr, slow).text())).collect();
        threads.into_iter().map(|t| t.join().expect("client thread")).collect()
    });
    assert!(bodies[0].starts_with("cc pid="), "{bodies:?}");
    assert!(bodies.iter().all(|b| *b == bodies[0]), "one fill, not a stampede: {bodies:?}");
}
