use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(http::header::HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn lookup(path: &str) -> Lookup<'_> {
    Lookup { site: 1, host: "Shop.Example", path, query: None, accept_encoding: None, ranged: false }
}

fn cache(max_memory: u64, max_item: u64) -> ResponseCache {
    let c = ResponseCache::default();
    c.configure(Limits { enabled: true, max_memory, max_item, scavenge_after: Duration::from_secs(120) });
    c
}

fn worker_origin(secs: u64) -> Origin {
    let now = Instant::now();
    Origin::Worker { stored: now, expires: now + Duration::from_secs(secs) }
}

#[test]
fn worker_rules_need_public_and_a_lifetime_and_forbid_the_rest() {
    let ok = StatusCode::OK;
    assert_eq!(
        worker_lifetime(ok, &headers(&[("cache-control", "public, max-age=60")])),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        worker_lifetime(ok, &headers(&[("cache-control", "public, max-age=60, s-maxage=5")])),
        Some(Duration::from_secs(5)),
        "s-maxage wins"
    );
    assert_eq!(worker_lifetime(ok, &headers(&[("cache-control", "max-age=60")])), None, "not public");
    assert_eq!(worker_lifetime(ok, &headers(&[("cache-control", "public")])), None, "no lifetime");
    assert_eq!(worker_lifetime(ok, &headers(&[("cache-control", "public, max-age=0")])), None);
    for forbid in ["private", "no-store", "no-cache"] {
        let cc = format!("public, max-age=60, {forbid}");
        assert_eq!(worker_lifetime(ok, &headers(&[("cache-control", &cc)])), None, "{forbid}");
    }
    let public = ("cache-control", "public, max-age=60");
    assert_eq!(worker_lifetime(ok, &headers(&[public, ("set-cookie", "a=b")])), None);
    assert_eq!(worker_lifetime(ok, &headers(&[public, ("vary", "Cookie")])), None);
    assert_eq!(worker_lifetime(ok, &headers(&[public, ("vary", "accept-encoding, User-Agent")])), None);
    assert!(worker_lifetime(ok, &headers(&[public, ("vary", "Accept-Encoding")])).is_some());
    assert_eq!(worker_lifetime(StatusCode::NOT_FOUND, &headers(&[public])), None);
    assert_eq!(worker_lifetime(ok, &headers(&[("cache-control", "public, max-age=abc")])), None);
}

#[test]
fn request_rules() {
    let auth = headers(&[("authorization", "Basic x")]);
    let cookie = headers(&[("cookie", "a=b")]);
    assert!(request_may_hit(&Method::GET, &HeaderMap::new()));
    assert!(request_may_hit(&Method::HEAD, &cookie), "a cookie may be answered from the cache");
    assert!(!request_may_hit(&Method::GET, &auth));
    assert!(!request_may_hit(&Method::POST, &HeaderMap::new()));
    assert!(request_may_store(&Method::GET, &HeaderMap::new()));
    assert!(!request_may_store(&Method::GET, &cookie));
    assert!(!request_may_store(&Method::GET, &auth));
    assert!(!request_may_store(&Method::HEAD, &HeaderMap::new()), "only a GET fills");
}

#[test]
fn static_admission_is_the_second_request() {
    let c = cache(1 << 20, 1 << 16);
    assert!(!c.static_admits(&lookup("/a")));
    assert!(!c.static_admits(&lookup("/b")));
    assert!(c.static_admits(&lookup("/a")));
    assert!(!c.static_admits(&lookup("/a")), "counting starts again after a store");
}

#[test]
fn lookup_matches_host_without_case_and_the_query_and_variant() {
    let c = cache(1 << 20, 1 << 16);
    let h = headers(&[("etag", "\"1\""), ("vary", "Accept-Encoding")]);
    let gzip = HeaderValue::from_static("gzip");
    let key = Lookup { accept_encoding: Some(&gzip), ..lookup("/a") };
    assert!(c.store(&key, h, Bytes::from_static(b"gz"), worker_origin(60)));
    let mut l = Lookup { host: "shop.example", ..key };
    assert!(c.lookup(&l).is_some());
    l.accept_encoding = None;
    assert!(c.lookup(&l).is_none(), "another Accept-Encoding is another variant");
    assert!(c.lookup(&Lookup { query: Some("x"), ..key }).is_none());
    assert!(c.lookup(&Lookup { site: 2, ..key }).is_none());
    let v = c.counters();
    assert_eq!((v.hits, v.misses, v.stores, v.entries), (1, 3, 1, 1));
}

#[test]
fn max_item_and_max_memory_bound_the_cache_least_recent_first() {
    let c = cache(3000, 1000);
    assert!(!c.store(&lookup("/big"), HeaderMap::new(), Bytes::from(vec![0; 1001]), worker_origin(60)));
    for p in ["/1", "/2", "/3"] {
        assert!(c.store(&lookup(p), HeaderMap::new(), Bytes::from(vec![0; 800]), worker_origin(60)));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(c.lookup(&lookup("/1")).is_some(), "hit: now the most recent");
    assert!(c.store(&lookup("/4"), HeaderMap::new(), Bytes::from(vec![0; 800]), worker_origin(60)));
    assert!(c.counters().memory <= 3000);
    assert!(c.lookup(&lookup("/2")).is_none(), "the least recently hit went first");
    assert!(c.lookup(&lookup("/1")).is_some());
    assert!(c.counters().evictions >= 1);
}

#[test]
fn expired_entries_miss_and_purge_by_site_and_prefix() {
    let c = cache(1 << 20, 1 << 16);
    c.store(&lookup("/old"), HeaderMap::new(), Bytes::from_static(b"x"), worker_origin(0));
    assert!(c.lookup(&lookup("/old")).is_none(), "lifetime over");
    c.store(&lookup("/a/1"), HeaderMap::new(), Bytes::from_static(b"x"), worker_origin(60));
    c.store(&lookup("/b/1"), HeaderMap::new(), Bytes::from_static(b"x"), worker_origin(60));
    c.store(&Lookup { site: 2, ..lookup("/a/2") }, HeaderMap::new(), Bytes::from_static(b"x"), worker_origin(60));
    assert_eq!(c.purge(Some(1), Some("/a")), 1);
    assert!(c.lookup(&lookup("/b/1")).is_some());
    assert_eq!(c.purge(None, None), 2);
    assert_eq!(c.counters().memory, 0);
}

#[test]
fn hits_answer_conditionals_and_ranges() {
    let c = cache(1 << 20, 1 << 16);
    let h = headers(&[
        ("etag", "\"t\""),
        ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ("content-type", "text/plain"),
    ]);
    c.store(&lookup("/f"), h, Bytes::from_static(b"0123456789"), worker_origin(60));
    let e = c.lookup(&lookup("/f")).unwrap();
    let r = e.answer(&Method::GET, &headers(&[("if-none-match", "\"t\"")]));
    assert_eq!(r.status(), 304);
    assert!(r.headers().get("content-type").is_none() && r.headers().get("etag").is_some());
    let r = e.answer(&Method::GET, &headers(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")]));
    assert_eq!(r.status(), 304);
    let r = e.answer(&Method::GET, &headers(&[("range", "bytes=2-4")]));
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(r.headers()["content-length"], "3");
    assert_eq!(e.answer(&Method::GET, &headers(&[("range", "bytes=20-")])).status(), 416);
    let r = e.answer(&Method::HEAD, &HeaderMap::new());
    assert_eq!((r.status(), &r.headers()["content-length"]), (StatusCode::OK, &HeaderValue::from(10)));
    assert!(r.headers().get("age").is_some(), "worker entries carry Age");
}

#[test]
fn a_static_coded_variant_leaves_ranges_to_the_origin() {
    let c = cache(1 << 20, 1 << 16);
    let h = headers(&[("content-encoding", "gzip"), ("etag", "\"t-gz\"")]);
    let origin = Origin::Static {
        path: "/nonexistent/for/this/test".into(),
        stamp: FileStamp { mtime_ns: 0, size: 0, ino: 0 },
        checked_ms: AtomicU64::new(u64::MAX / 2),
        watch: None,
    };
    c.store(&lookup("/app.js"), h, Bytes::from_static(b"gz"), origin);
    assert!(c.lookup(&Lookup { ranged: true, ..lookup("/app.js") }).is_none());
    assert!(c.lookup(&lookup("/app.js")).is_some(), "checked_ms in the future: not revalidated");
}
