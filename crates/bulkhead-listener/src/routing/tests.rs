use super::*;
use std::path::Path;

use http::{HeaderMap, Method};

fn config(text: &str) -> Config {
    bulkhead_config::parse(text, "test.toml", Path::new("/")).unwrap()
}

const TWO_SITES: &str = r#"
    [[sites]]
    name = "default"
    bindings = ["http://*:8080"]
    routes = [{ path = "/", redirect = "/x" }]
    [[sites]]
    name = "shop"
    bindings = ["http://shop.example:8080"]
    routes = [{ path = "/", redirect = "/y" }, { path = "/api", pool = "api" }, { path = "/api/v2", pool = "v2" }]
    [pools.api]
    command = ["app"]
    [pools.v2]
    command = ["app"]
"#;

fn table() -> Table {
    let sockets = vec![ListenSocket {
        fd: 7,
        local_addr: "0.0.0.0:8080".parse().unwrap(),
        bindings: vec!["http://*:8080".into(), "http://shop.example:8080".into()],
    }];
    Table::build(&config(TWO_SITES), &sockets, None)
}

#[test]
fn exact_host_beats_wildcard() {
    let t = table();
    assert_eq!(&*t.site_for(7, Some("shop.example")).unwrap().name, "shop");
    assert_eq!(&*t.site_for(7, Some("SHOP.example:8080")).unwrap().name, "shop");
    assert_eq!(&*t.site_for(7, Some("shop.example.")).unwrap().name, "shop");
    assert_eq!(&*t.site_for(7, Some("other.example")).unwrap().name, "default");
    assert_eq!(&*t.site_for(7, None).unwrap().name, "default");
    assert_eq!(&*t.site_for(7, Some("[::1]:8080")).unwrap().name, "default");
}

#[test]
fn unknown_socket_has_no_site() {
    assert!(table().site_for(8, Some("shop.example")).is_none());
}

#[test]
fn name_only_socket_refuses_other_hosts() {
    let sockets = vec![ListenSocket {
        fd: 3,
        local_addr: "0.0.0.0:8080".parse().unwrap(),
        bindings: vec!["http://shop.example:8080".into()],
    }];
    let t = Table::build(&config(TWO_SITES), &sockets, None);
    assert!(t.site_for(3, Some("other.example")).is_none());
    assert!(t.site_for(3, Some("shop.example")).is_some());
}

#[test]
fn longest_prefix_on_segment_boundary() {
    let t = table();
    let shop = t.site_for(7, Some("shop.example")).unwrap();
    let facts = Facts::default();
    let pick = |p: &str| shop.route(p, &facts.get()).map(|(r, rest)| (r.prefix.clone(), rest.to_string()));
    assert_eq!(pick("/api"), Some(("/api".into(), "".into())));
    assert_eq!(pick("/api/x"), Some(("/api".into(), "/x".into())));
    assert_eq!(pick("/apix"), Some(("/".into(), "/apix".into())));
    assert_eq!(pick("/api/v2/z"), Some(("/api/v2".into(), "/z".into())));
    assert_eq!(pick("/api/v22"), Some(("/api".into(), "/v22".into())));
    assert_eq!(pick("/"), Some(("/".into(), "/".into())));
}

#[test]
fn host_name_strips_port_and_dot() {
    assert_eq!(host_name("a.example:80"), "a.example");
    assert_eq!(host_name("a.example"), "a.example");
    assert_eq!(host_name("[::1]:80"), "[::1]");
    assert_eq!(host_name("a.example.:80"), "a.example");
    assert_eq!(host_name("a.example:"), "a.example");
}

#[test]
fn host_with_a_bad_port_gets_no_host_name_site() {
    // Found by fuzz/fuzz_targets/host_routing.rs: the text after the last `:` was cut off
    // whatever it was, so these picked the `shop` site by name.
    let t = table();
    for host in ["shop.example:abc", "shop.example:123456", "shop.example:8080:80", "shop.example: 80"] {
        assert_eq!(&*t.site_for(7, Some(host)).unwrap().name, "default", "{host}");
    }
}

#[test]
fn connection_counters_survive_rebuild() {
    let t1 = table();
    t1.sites[1].connections.store(5, std::sync::atomic::Ordering::Relaxed);
    let t2 = Table::build(&config(TWO_SITES), &[], Some(&t1));
    assert_eq!(t2.sites[1].connections.load(std::sync::atomic::Ordering::Relaxed), 5);
}

/// The parts of a request the conditions read, owned, for building [`RequestFacts`].
struct Facts {
    method: Method,
    host: Option<&'static str>,
    headers: HeaderMap,
    query: Option<&'static str>,
    source: std::net::IpAddr,
    scheme: Scheme,
}

impl Default for Facts {
    fn default() -> Facts {
        Facts {
            method: Method::GET,
            host: Some("shop.example"),
            headers: HeaderMap::new(),
            query: None,
            source: "192.0.2.1".parse().unwrap(),
            scheme: Scheme::Http,
        }
    }
}

impl Facts {
    fn get(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: &self.method,
            host: self.host,
            headers: &self.headers,
            query: self.query,
            source: self.source,
            scheme: self.scheme,
        }
    }
}

const CONDITIONAL: &str = r#"
    [[sites]]
    name = "s"
    bindings = ["http://*:8080", "https://*:8443"]
    tls = { cert = "/dev/null", key = "/dev/null" }
    routes = [
      { path = "/", redirect = "/root" },
      { path = "/admin", redirect = "/internal", match = { source = ["10.0.0.0/8", "!10.0.0.5", "fd00::/8"], method = ["GET", "POST"] } },
      { path = "/admin", redirect = "/tls", match = { scheme = "https" } },
      { path = "/admin/api", redirect = "/api", match = { headers = { "X-Key" = ["k-*", "!k-revoked"] } } },
      { path = "/admin/api", redirect = "/api-args", match = { arguments = { v = "2*" } } },
      { path = "/admin", return = 403 },
      { path = "/shop", redirect = "/shop-host", match = { host = ["*.Shop.example", "!old.shop.example"] } },
      { path = "/shop", redirect = "/not-get", match = { method = "!GET" } },
    ]
"#;

/// The `redirect` target of the route the request gets (the routes' names), or `return` status.
fn answer(site: &SiteEntry, path: &str, f: &Facts) -> String {
    match site.route(path, &f.get()).map(|(r, _)| &r.action) {
        Some(Action::Redirect { to, .. }) => to.clone(),
        Some(Action::Return(fixed)) => fixed.status.as_u16().to_string(),
        Some(other) => format!("{other:?}"),
        None => "none".into(),
    }
}

fn conditional_site() -> SiteEntry {
    let mut t = Table::build(&config(CONDITIONAL), &[], None);
    t.sites.remove(0)
}

#[test]
fn first_route_whose_conditions_hold_wins_among_the_longest_prefix() {
    let site = conditional_site();
    let mut f = Facts::default();
    assert_eq!(answer(&site, "/admin/x", &f), "403", "no condition holds: the unconditional /admin route");
    f.source = "10.1.2.3".parse().unwrap();
    assert_eq!(answer(&site, "/admin/x", &f), "/internal");
    f.scheme = Scheme::Https;
    assert_eq!(answer(&site, "/admin/x", &f), "/internal", "both hold: the first in the file wins");
    f.source = "10.0.0.5".parse().unwrap();
    assert_eq!(answer(&site, "/admin/x", &f), "/tls", "a negated address is excluded from its block");
    f.scheme = Scheme::Http;
    f.method = Method::PUT;
    f.source = "fd00::7".parse().unwrap();
    assert_eq!(answer(&site, "/admin", &f), "403", "a method outside the list");
    f.method = Method::POST;
    assert_eq!(answer(&site, "/admin", &f), "/internal", "an IPv6 block");
    f.source = "::ffff:10.9.9.9".parse().unwrap();
    assert_eq!(answer(&site, "/admin", &f), "/internal", "an IPv4-mapped client in an IPv4 block");
}

#[test]
fn when_no_route_of_the_longest_prefix_holds_the_shorter_prefix_is_tried() {
    let site = conditional_site();
    let mut f = Facts { source: "10.1.2.3".parse().unwrap(), ..Facts::default() };
    assert_eq!(answer(&site, "/admin/api/x", &f), "/internal", "neither /admin/api route holds: /admin's do");
    f.headers.insert("x-key", "K-123".parse().unwrap());
    assert_eq!(answer(&site, "/admin/api/x", &f), "/api", "header values are caseless");
    f.headers.insert("x-key", "k-revoked".parse().unwrap());
    assert_eq!(answer(&site, "/admin/api/x", &f), "/internal", "a negated header value");
    f.headers.append("x-key", "k-9".parse().unwrap());
    assert_eq!(answer(&site, "/admin/api/x", &f), "/api", "any one field of a repeated header may meet it");
    f.headers.clear();
    f.query = Some("a=1&v=2.1");
    assert_eq!(answer(&site, "/admin/api", &f), "/api-args");
    f.query = Some("v=%32%2E0");
    assert_eq!(answer(&site, "/admin/api", &f), "/api-args", "arguments are decoded");
    f.query = Some("v=1");
    assert_eq!(answer(&site, "/admin/api", &f), "/internal");
    assert_eq!(answer(&site, "/adminx", &f), "/root", "prefixes still end on a segment boundary");
}

#[test]
fn host_patterns_are_caseless_without_port_and_negations_exclude() {
    let site = conditional_site();
    let mut f = Facts::default();
    for (host, expected) in [
        (Some("a.shop.example"), "/shop-host"),
        (Some("A.SHOP.Example:8080"), "/shop-host"),
        (Some("a.shop.example."), "/shop-host"),
        (Some("old.shop.example"), "/root"),
        (Some("shop.example"), "/root"),
        (None, "/root"),
    ] {
        f.host = host;
        assert_eq!(answer(&site, "/shop/x", &f), expected, "{host:?}");
    }
    f.host = None;
    f.method = Method::DELETE;
    assert_eq!(answer(&site, "/shop", &f), "/not-get", "a list of negations only: anything but them");
}

#[test]
fn a_site_without_conditions_routes_by_prefix_alone() {
    let t = table();
    let shop = t.site_for(7, Some("shop.example")).unwrap();
    assert!(!shop.conditional);
    assert!(conditional_site().conditional);
}

#[test]
fn return_and_strip_prefix_are_built_into_the_table() {
    let t = Table::build(
        &config(
            r#"
    [[sites]]
    name = "s"
    bindings = ["http://*:8080"]
    routes = [
      { path = "/gone", return = 410, body = "gone\n" },
      { path = "/old", return = 301, location = "https://new.example/" },
      { path = "/v2", pool = "api", strip_prefix = true },
    ]
    [pools.api]
    command = ["app"]
"#,
        ),
        &[],
        None,
    );
    let f = Facts::default();
    let action = |p: &str| &t.sites[0].route(p, &f.get()).unwrap().0.action;
    match action("/gone") {
        Action::Return(fixed) => {
            assert_eq!((fixed.status.as_u16(), fixed.body.as_deref()), (410, Some(&b"gone\n"[..])));
            assert!(fixed.location.is_none());
        }
        other => panic!("{other:?}"),
    }
    match action("/old/x") {
        Action::Return(fixed) => assert_eq!(fixed.location.as_ref().unwrap(), "https://new.example/"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(action("/v2/a"), Action::Pool { strip_prefix: true, .. }));
}
