//! Routing (issue #2 item 4, DESIGN §2 step 2): the Host header picks the site among those
//! sharing a socket (an exact name beats `*`, case-insensitively), then the longest path prefix
//! on a segment boundary picks the route (`/api/v2` over `/api`; `/apix` is not under `/api`),
//! and a redirect route answers with its status and target.
//!
//! The static roots hold each probe file both at `root/x` and at `root/<prefix>/x`, so the
//! test does not depend on whether a route strips its prefix when mapping to files.

use std::net::SocketAddr;

use crate::support::http;
use crate::support::{free_port, Server, TestDir};

fn routing_server() -> (Server, SocketAddr, u16) {
    let dir = TestDir::new("routing");
    dir.write("named/which.txt", "named");
    dir.write("root/which.txt", "root");
    dir.write("root/apix.txt", "root-apix");
    dir.write("root/apix/which.txt", "root-apix-dir");
    dir.write("api/which.txt", "api");
    dir.write("api/api/which.txt", "api");
    dir.write("v2/which.txt", "v2");
    dir.write("v2/api/v2/which.txt", "v2");
    let d = dir.path().display().to_string();
    let port = free_port();
    let config = format!(
        r#"
[[sites]]
name = "named"
bindings = ["http://a.test:{port}"]
routes = [ {{ path = "/", root = "{d}/named" }} ]

[[sites]]
name = "any"
bindings = ["http://*:{port}"]
routes = [
  {{ path = "/", root = "{d}/root" }},
  {{ path = "/api", root = "{d}/api" }},
  {{ path = "/api/v2", root = "{d}/v2" }},
  {{ path = "/old", redirect = "/new", status = 301 }},
]
"#
    );
    let server = Server::start(dir, &config);
    let bound = server.addr_of(&format!("http://a.test:{port}"));
    assert_eq!(bound.port(), port, "bindings.json: {:?}", server.bindings());
    assert_eq!(server.addr_of(&format!("http://*:{port}")).port(), port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    (server, addr, port)
}

fn body_of(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let r = http::get_host(addr, host, path);
    (r.status, r.text())
}

#[test]
fn host_header_picks_the_site_and_an_exact_name_beats_the_wildcard() {
    let (_server, addr, port) = routing_server();
    assert_eq!(body_of(addr, "a.test", "/which.txt"), (200, "named".into()), "Host: a.test");
    assert_eq!(body_of(addr, &format!("a.test:{port}"), "/which.txt"), (200, "named".into()), "Host with port");
    assert_eq!(body_of(addr, "A.TEST", "/which.txt"), (200, "named".into()), "host names are case-insensitive");
    assert_eq!(body_of(addr, "other.test", "/which.txt"), (200, "root".into()), "any other host → the * site");
    assert_eq!(body_of(addr, "127.0.0.1", "/which.txt"), (200, "root".into()), "an IP Host → the * site");
    // The named site has no /api route: its "/" route answers, and has no such file.
    assert_eq!(http::get_host(addr, "a.test", "/api/which.txt").status, 404, "routes are per site");
}

#[test]
fn longest_prefix_on_a_segment_boundary_picks_the_route() {
    let (_server, addr, _) = routing_server();
    let h = "localhost";
    assert_eq!(body_of(addr, h, "/which.txt"), (200, "root".into()));
    assert_eq!(body_of(addr, h, "/api/which.txt"), (200, "api".into()), "/api");
    assert_eq!(body_of(addr, h, "/api/v2/which.txt"), (200, "v2".into()), "/api/v2 beats /api");
    assert_eq!(body_of(addr, h, "/apix.txt"), (200, "root-apix".into()), "/apix.txt is not under /api");
    assert_eq!(body_of(addr, h, "/apix/which.txt"), (200, "root-apix-dir".into()), "/apix/ is not under /api");
    assert_eq!(body_of(addr, h, "/api/which.txt?q=1"), (200, "api".into()), "query string ignored for routing");
}

#[test]
fn redirect_route_answers_with_its_status_and_target() {
    let (_server, addr, _) = routing_server();
    let r = http::get(addr, "/old");
    assert_eq!(r.status, 301, "GET /old: {:?}", r.headers);
    let location = r.header("location").unwrap_or("");
    assert!(location.starts_with("/new") || location.contains("://localhost/new"), "Location {location:?}");
    let r = http::get(addr, "/old/page.html");
    assert_eq!(r.status, 301, "GET /old/page.html");
    assert!(r.header("location").unwrap_or("").contains("/new"), "Location {:?}", r.header("location"));
    let r = http::get(addr, "/older.txt");
    assert_ne!(r.status, 301, "/older.txt is not under /old");
}
