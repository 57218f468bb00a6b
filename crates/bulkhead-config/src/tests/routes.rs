//! Routes beyond prefixes: `match` conditions, `return`, `strip_prefix`, and routes sharing a
//! path (issue 11 item 3). Each refusal is checked by its whole message, position included.

use super::*;

/// A site with these routes, and a pool `api`.
fn site(routes: &str) -> String {
    format!("{SITE}routes = [\n{routes}\n]\n[pools.api]\ncommand = [\"app\"]\n")
}

/// Each route alone in a site gets exactly its expected error; every mismatch is reported.
fn check_each(cases: &[(&str, &str)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(route, expected)| {
            let got = errors(&site(route));
            (got != [*expected]).then(|| format!("{route}\n  got:      {got:?}\n  expected: {expected:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn match_conditions_are_parsed_in_order_of_the_file() {
    let c = ok(&site(
        r#"{ path = "/admin", pool = "api", match = { method = ["GET", "post"], host = "*.Shop.example", headers = { "X-Debug" = ["1", "yes"] }, arguments = { mode = "!full" }, source = ["10.0.0.0/8", "!10.0.0.5", "::1"], scheme = "http" } },
{ path = "/admin", return = 403 },"#,
    ));
    let routes = &c.sites[0].routes;
    assert_eq!(routes.len(), 2);
    let m = routes[0].conditions.as_ref().expect("the first /admin route has the match");
    assert!(m.method.as_ref().expect("method").matches(b"POST"));
    assert!(!m.method.as_ref().expect("method").matches(b"PUT"));
    assert!(m.host.as_ref().expect("host").matches(b"a.shop.EXAMPLE"), "hosts are caseless");
    assert_eq!(m.headers[0].0, "x-debug", "header names are kept lowercase");
    assert!(m.headers[0].1.matches(b"YES"), "header values are caseless, as in Unit");
    assert!(m.arguments[0].1.matches(b"strict") && !m.arguments[0].1.matches(b"full"));
    let source = m.source.as_ref().expect("source");
    assert!(source.matches("10.1.2.3".parse().expect("ip")) && !source.matches("10.0.0.5".parse().expect("ip")));
    assert!(source.matches("::1".parse().expect("ip")));
    assert_eq!(m.scheme, Some(Scheme::Http));
    assert!(routes[1].conditions.is_none(), "file order kept among routes with one path");
    assert_eq!(routes[1].action, RouteAction::Return(ReturnRoute { status: 403, body: None, location: None }));
}

#[test]
fn return_body_location_and_strip_prefix_are_built() {
    let c = ok(&site(
        r#"{ path = "/gone", return = 410, body = "moved out\n" },
{ path = "/old", return = 301, location = "https://new.example/" },
{ path = "/v2/", pool = "api", strip_prefix = true },"#,
    ));
    let by_path = |p: &str| &c.sites[0].routes.iter().find(|r| r.path == p).expect("route").action;
    assert_eq!(
        by_path("/gone"),
        &RouteAction::Return(ReturnRoute { status: 410, body: Some("moved out\n".into()), location: None })
    );
    assert_eq!(
        by_path("/old"),
        &RouteAction::Return(ReturnRoute { status: 301, body: None, location: Some("https://new.example/".into()) })
    );
    match by_path("/v2") {
        RouteAction::Pool(p) => assert!(p.strip_prefix),
        other => panic!("expected a pool route, got {other:?}"),
    }
}

#[test]
fn match_refusals_name_the_key_and_what_is_expected() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{ path = "/", pool = "api", match = { methd = "GET" } }"#,
            "test.toml:5:39: sites[0].routes[0].match.methd: unknown key; did you mean `method`?",
        ),
        (
            r#"{ path = "/", pool = "api", match = {} }"#,
            "test.toml:5:37: sites[0].routes[0].match: is empty, so it would take every request; remove it, or add method, host, headers, arguments, source or scheme",
        ),
        (
            r#"{ path = "/", pool = "api", match = { method = [] } }"#,
            "test.toml:5:48: sites[0].routes[0].match.method: is an empty list, which no request matches; remove the key to take any value, or list patterns",
        ),
        (
            r#"{ path = "/", pool = "api", match = { method = ["GET", "GE T"] } }"#,
            "test.toml:5:56: sites[0].routes[0].match.method[1]: \"GE T\": is not a method; expected a name like \"GET\" or \"POST\", `*` for any run of characters, `!` before it to negate",
        ),
        (
            r#"{ path = "/", pool = "api", match = { method = 1 } }"#,
            "test.toml:5:48: sites[0].routes[0].match.method: expected a pattern string or an array of them, like \"GET\" or [\"GET\", \"HEAD\"], found the integer 1",
        ),
        (
            r#"{ path = "/", pool = "api", match = { host = "shop.example:8080/" } }"#,
            "test.toml:5:46: sites[0].routes[0].match.host: \"shop.example:8080/\": is not a host pattern; expected a name like \"shop.example\" or \"*.shop.example\" (no port, no scheme), `!` before it to negate",
        ),
        (
            r#"{ path = "/", pool = "api", match = { source = ["10.0.0.0/33"] } }"#,
            "test.toml:5:49: sites[0].routes[0].match.source[0]: \"33\" is not a prefix length for 10.0.0.0; expected 0 to 32",
        ),
        (
            r#"{ path = "/", pool = "api", match = { source = "!10.0.0" } }"#,
            "test.toml:5:48: sites[0].routes[0].match.source: \"10.0.0\" is not an IP address; expected an address or block like \"10.0.0.0/8\", \"192.168.1.7\" or \"2001:db8::/32\"",
        ),
        (
            r#"{ path = "/", pool = "api", match = { scheme = "ftp" } }"#,
            "test.toml:5:48: sites[0].routes[0].match.scheme: \"ftp\" is not allowed; expected one of \"http\", \"https\"",
        ),
        (
            r#"{ path = "/", pool = "api", match = { headers = { "X Debug" = "1" } } }"#,
            "test.toml:5:63: sites[0].routes[0].match.headers.\"X Debug\": \"X Debug\": is not a header name; expected letters, digits and `-`, like \"X-Debug\"",
        ),
        (
            r#"{ path = "/", pool = "api", match = { arguments = {} } }"#,
            "test.toml:5:51: sites[0].routes[0].match.arguments: is an empty table; remove it, or name what must be present, like { \"X-Debug\" = \"1\" }",
        ),
    ];
    check_each(cases);
}

#[test]
fn action_refusals_name_the_key_and_what_is_expected() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{ path = "/", return = 1000 }"#,
            "test.toml:5:24: sites[0].routes[0].return: 1000 is not a status a route can answer with; expected 200 to 999 (1xx are interim responses, never the answer to a request)",
        ),
        (
            r#"{ path = "/", return = 101 }"#,
            "test.toml:5:24: sites[0].routes[0].return: 101 is not a status a route can answer with; expected 200 to 999 (1xx are interim responses, never the answer to a request)",
        ),
        (
            r#"{ path = "/", return = 403, location = "/login" }"#,
            "test.toml:5:40: sites[0].routes[0].location: is sent only with a redirect, and return = 403 is not 3xx; use return = 301, 302, 303, 307 or 308, or remove location",
        ),
        (
            r#"{ path = "/", return = 302, location = "/a\nb" }"#,
            "test.toml:5:40: sites[0].routes[0].location: contains a control character (a newline?), which no header can carry",
        ),
        (
            r#"{ path = "/", return = 204, body = "x" }"#,
            "test.toml:5:36: sites[0].routes[0].body: a 204 response never has a body; remove body",
        ),
        (
            r#"{ path = "/", pool = "api", body = "x" }"#,
            "test.toml:5:36: sites[0].routes[0].body: is the body of a `return` answer, and this route has no return; add return = 200 (or another status) or remove body",
        ),
        (
            r#"{ path = "/", redirect = "/b", location = "/c" }"#,
            "test.toml:5:43: sites[0].routes[0].location: goes with a 3xx `return`, and this route has no return; add return = 302 or remove location (a redirect route's target is its `redirect`)",
        ),
        (
            r#"{ path = "/", pool = "api", return = 403 }"#,
            "test.toml:5:1: sites[0].routes[0]: a route needs exactly one of `root` (static files), `pool` (an application), `redirect` or `return` (a fixed answer)",
        ),
        (
            r#"{ path = "/a", redirect = "/b", strip_prefix = true }"#,
            "test.toml:5:48: sites[0].routes[0].strip_prefix: applies only to pool routes (it changes the path the pool is sent); remove it here",
        ),
        (
            r#"{ path = "/a", return = 403, strip_prefix = false }"#,
            "test.toml:5:45: sites[0].routes[0].strip_prefix: applies only to pool routes (it changes the path the pool is sent); remove it here",
        ),
    ];
    check_each(cases);
}

#[test]
fn a_route_hidden_behind_an_earlier_one_with_the_same_path_is_refused() {
    let e = one_error(&site(
        r#"{ path = "/admin", return = 403 },
{ path = "/admin/", pool = "api", match = { source = "10.0.0.0/8" } },"#,
    ));
    assert_eq!(
        e,
        "test.toml:6:10: sites[0].routes[1].path: route \"/admin\" can never be used: routes[0] has the same path and has no match, so it takes every request first; give routes[0] a match, or put this route before it"
    );
    let e = one_error(&site(
        r#"{ path = "/a", pool = "api", match = { method = "GET" } },
{ path = "/a", return = 405, match = { method = "GET" } },"#,
    ));
    assert!(
        e.contains(
            "routes[1].path: route \"/a\" can never be used: routes[0] has the same path and has the same match"
        ),
        "{e}"
    );
    // Different conditions, or the unconditional route last: both reachable.
    ok(&site(
        r#"{ path = "/a", pool = "api", match = { method = "GET" } },
{ path = "/a", pool = "api", match = { method = "POST" } },
{ path = "/a", return = 405 },"#,
    ));
}

#[test]
fn probable_mistakes_are_warned_about() {
    let w = warnings(&site(
        r#"{ path = "/old", return = 301 },
{ path = "/", pool = "api", strip_prefix = true },
{ path = "/s", pool = "api", match = { scheme = "https", source = "10.0.0.1/8" } },"#,
    ));
    assert_eq!(
        w,
        [
            "test.toml:5:27: sites[0].routes[0].return: return = 301 without location: clients get a redirect that names no target; add location = \"/new\"",
            "test.toml:6:44: sites[0].routes[1].strip_prefix: has no effect on the route for \"/\": the path starts with \"/\" either way",
            "test.toml:7:49: sites[0].routes[2].match.scheme: this site has no https binding, so no request meets scheme = \"https\" and the route is never used",
            "test.toml:7:67: sites[0].routes[2].match.source: \"10.0.0.1/8\" has address bits set past its prefix length; they are ignored",
        ]
    );
}

#[test]
fn a_changed_match_return_or_strip_prefix_changes_the_site() {
    let base = site(r#"{ path = "/a", pool = "api", match = { method = "GET" } },"#);
    let old = ok(&base);
    for edit in [
        site(r#"{ path = "/a", pool = "api", match = { method = "POST" } },"#),
        site(r#"{ path = "/a", pool = "api", match = { method = "GET" }, strip_prefix = true },"#),
        site(r#"{ path = "/a", return = 403, match = { method = "GET" } },"#),
    ] {
        let changes = diff(&old, &ok(&edit));
        assert_eq!(changes, [Change::SiteChanged { name: "s".into() }], "{edit}");
    }
    assert!(diff(&old, &ok(&base)).is_empty());
}
