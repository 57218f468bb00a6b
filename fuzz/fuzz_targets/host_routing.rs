//! The listener's host check and route table on arbitrary (socket, host, path):
//! `conformance::valid_host` never panics; on a fixed multi-site `routing::Table` (host names,
//! a `*` default, an IP binding, a socket with host names only, nested route prefixes),
//! `site_for` and `route` never panic; the site chosen for a host is the one a plain reference
//! model picks (port, one trailing dot and case ignored); a host `valid_host` refuses never
//! gets a host-name site, only what a request without a host gets; and the route chosen is the
//! longest prefix of the site that matches the path on a segment boundary.
//!
//! Input: byte 0 picks the socket (fds 6 to 10; 6 and 10 serve nothing), then the host up to
//! the first `\n` (absent if there is none), then the path.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use bulkhead_listener::conformance::valid_host;
use bulkhead_listener::routing::{prefix_match, RequestFacts, SiteEntry, Table};
use bulkhead_proto::ListenSocket;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[[sites]]
name = "default"
bindings = ["http://*:8080"]
routes = [{ path = "/", redirect = "/x" }, { path = "/api", pool = "api" }]
[[sites]]
name = "shop"
bindings = ["http://shop.example:8080", "http://www.shop.example:8080"]
routes = [{ path = "/", redirect = "/y" }, { path = "/api", pool = "api" }, { path = "/api/v2", pool = "v2" }, { path = "/a/b/c", pool = "v2" }]
[[sites]]
name = "blog"
bindings = ["http://blog.example:8080", "http://127.0.0.1:8081", "http://blog.example:8082"]
routes = [{ path = "/a", pool = "api" }, { path = "/a/b", pool = "v2" }, { path = "/a/b/c", pool = "api" }, { path = "/%41", pool = "api" }]
[[sites]]
name = "only"
bindings = ["http://only.example:8082", "http://xn--caf-dma.example:8082", "http://1.2.3:8082"]
routes = [{ path = "/", redirect = "/z" }]
[pools.api]
command = ["app"]
[pools.v2]
command = ["app"]
"#;

/// A socket fd, the host names bound there (lowercase) with their site names, and the site for
/// any other host.
type SocketModel = (i32, &'static [(&'static str, &'static str)], Option<&'static str>);

const SOCKETS: &[SocketModel] = &[
    (7, &[("shop.example", "shop"), ("www.shop.example", "shop"), ("blog.example", "blog")], Some("default")),
    (8, &[], Some("blog")),
    (
        9,
        &[("blog.example", "blog"), ("only.example", "only"), ("xn--caf-dma.example", "only"), ("1.2.3", "only")],
        None,
    ),
];

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let config = bulkhead_config::parse(CONFIG, "fuzz.toml", Path::new("/")).expect("the fixed config is valid");
        let socket = |fd, addr: &str, bindings: &[&str]| ListenSocket {
            fd,
            local_addr: addr.parse().expect("a socket address"),
            bindings: bindings.iter().map(|b| b.to_string()).collect(),
        };
        let sockets = vec![
            socket(
                7,
                "0.0.0.0:8080",
                &[
                    "http://*:8080",
                    "http://shop.example:8080",
                    "http://www.shop.example:8080",
                    "http://blog.example:8080",
                ],
            ),
            socket(8, "127.0.0.1:8081", &["http://127.0.0.1:8081"]),
            socket(
                9,
                "0.0.0.0:8082",
                &[
                    "http://blog.example:8082",
                    "http://only.example:8082",
                    "http://xn--caf-dma.example:8082",
                    "http://1.2.3:8082",
                ],
            ),
        ];
        Table::build(&config, &sockets, None)
    })
}

/// The reference model: the site name for (socket, host).
fn expected(fd: i32, host: Option<&str>) -> Option<&'static str> {
    let (_, names, any) = SOCKETS.iter().find(|(f, _, _)| *f == fd)?;
    let Some(host) = host.filter(|h| valid_host(h.as_bytes())) else { return *any };
    // valid_host: a bracketed literal, or a reg-name then an optional `:digits`.
    let name = if host.starts_with('[') { host } else { host.split(':').next().unwrap_or(host) };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    names.iter().find(|(n, _)| *n == name).map(|(_, site)| *site).or(*any)
}

fn check_route(site: &SiteEntry, path: &str) {
    // These sites have no `match` conditions, so the facts beyond the path are never read.
    let headers = http::HeaderMap::new();
    let facts = RequestFacts {
        method: &http::Method::GET,
        host: None,
        headers: &headers,
        query: None,
        source: std::net::Ipv4Addr::LOCALHOST.into(),
        scheme: bulkhead_config::Scheme::Http,
    };
    let Some((route, rest)) = site.route(path, &facts) else {
        assert!(site.routes.iter().all(|r| prefix_match(&r.prefix, path).is_none()), "{path:?}: a route matches");
        return;
    };
    assert_eq!(prefix_match(&route.prefix, path), Some(rest));
    assert!(path.ends_with(rest), "{path:?}: rest {rest:?}");
    if route.prefix != "/" {
        let after = path.strip_prefix(route.prefix.as_str()).expect("the prefix starts the path");
        assert!(after.is_empty() || after.starts_with('/'), "{path:?} matched {:?} mid-segment", route.prefix);
        assert_eq!(after, rest);
    } else if path.starts_with('/') {
        assert_eq!(rest, path);
    }
    let longer =
        site.routes.iter().find(|r| r.prefix.len() > route.prefix.len() && prefix_match(&r.prefix, path).is_some());
    assert!(longer.is_none(), "{path:?}: {:?} chosen over the longer {:?}", route.prefix, longer.map(|r| &r.prefix));
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let fd = 6 + i32::from(sel % 5);
    let (host, path) = match rest.iter().position(|&b| b == b'\n') {
        Some(nl) => (Some(&rest[..nl]), &rest[nl + 1..]),
        None => (None, rest),
    };
    if let Some(h) = host {
        let _ = valid_host(h);
    }
    let host = match host.map(std::str::from_utf8) {
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => return,
        None => None,
    };
    let Ok(path) = std::str::from_utf8(path) else { return };
    let t = table();
    let site = t.site_for(fd, host);
    let want = expected(fd, host);
    assert_eq!(site.map(|s| &*s.name), want, "socket {fd}, host {host:?}");
    if let Some(h) = host.filter(|h| !valid_host(h.as_bytes())) {
        let bare = t.site_for(fd, None).map(|s| s.id);
        assert_eq!(site.map(|s| s.id), bare, "socket {fd}: the invalid host {h:?} picked a host-name site");
    }
    if let Some(site) = site {
        check_route(site, path);
    }
    for s in &t.sites {
        check_route(s, path);
    }
});
