//! A site's `mime_types` and `error_pages`, a route's response `headers` (issue 11 item 2):
//! what each becomes, and each refusal by its whole message, position included.

use super::*;

/// A directory under /tmp with error pages in it, removed with the value.
struct Pages(PathBuf);

impl Pages {
    fn new(tag: &str) -> Pages {
        let dir = PathBuf::from(format!("/tmp/bulkhead-config-pages-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(dir.join("errors")).expect("mkdir");
        std::fs::write(dir.join("errors/404.html"), "<h1>gone</h1>").expect("write");
        std::fs::write(dir.join("errors/busy.log"), "busy").expect("write");
        std::fs::write(dir.join("errors/odd.xyz"), "odd").expect("write");
        std::fs::write(dir.join("errors/big.html"), vec![b'x'; MAX_ERROR_PAGE as usize + 1]).expect("write");
        Pages(dir)
    }

    fn parse(&self, text: &str) -> Result<Config, Vec<String>> {
        parse(text, "test.toml", &self.0).map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn mime_types_add_override_and_remove() {
    let c = ok(&format!(
        "{SITE}mime_types = {{ \".LOG\" = \"text/x-log; charset=\\\"utf-8\\\"\", \".cfg\" = \"text/plain\", \".png\" = \"\" }}\n"
    ));
    let s = &c.sites[0];
    assert_eq!(s.content_type("log"), Some("text/x-log; charset=\"utf-8\""));
    assert_eq!(s.content_type("CFG"), Some("text/plain"));
    assert_eq!(s.content_type("png"), None, "removed");
    assert_eq!(s.content_type("css"), Some("text/css; charset=utf-8"), "built-in kept");
    assert_eq!(s.content_type("env"), None, "unknown stays unknown");
}

#[test]
fn mime_types_refusals() {
    let e = errors(&format!(
        "{SITE}mime_types = {{ log = \"text/plain\", \".a/b\" = \"text/plain\", \".tar.gz\" = \"application/gzip\", \".x\" = \"text\", \".y\" = \"text/plain; q\" }}\n"
    ));
    assert_eq!(
        e,
        [
            "test.toml:4:22: sites[0].mime_types.log: \"log\" is not a file extension; expected one with its dot, like \".webmanifest\"",
            "test.toml:4:45: sites[0].mime_types.\".a/b\": \".a/b\" is not one file extension; expected a dot and a name without \".\", \"/\" or spaces, like \".log\"",
            "test.toml:4:71: sites[0].mime_types.\".tar.gz\": \".tar.gz\" is not one file extension; expected a dot and a name without \".\", \"/\" or spaces, like \".log\"",
            "test.toml:4:98: sites[0].mime_types.\".x\": \"text\" is not a media type; expected type/subtype with optional parameters, like \"text/plain; charset=utf-8\", or \"\" to remove the type",
            "test.toml:4:113: sites[0].mime_types.\".y\": \"text/plain; q\" is not a media type; expected type/subtype with optional parameters, like \"text/plain; charset=utf-8\", or \"\" to remove the type",
        ]
    );
    let twice = one_error(&format!("{SITE}mime_types = {{ \".Log\" = \"text/plain\", \".log\" = \"text/x-log\" }}\n"));
    assert!(twice.contains("sites[0].mime_types.\".log\": \".log\" is listed twice"), "{twice}");
}

#[test]
fn error_pages_are_read_with_their_type() {
    let pages = Pages::new("ok");
    let c = pages
        .parse(&format!("{SITE}mime_types = {{ \".log\" = \"text/x-log\" }}\nerror_pages = {{ 404 = \"errors/404.html\", 503 = \"errors/busy.log\" }}\n"))
        .expect("valid");
    let p = &c.sites[0].error_pages;
    assert_eq!(p.len(), 2);
    assert_eq!(p[&404].body, "<h1>gone</h1>".as_bytes());
    assert_eq!(p[&404].content_type, "text/html; charset=utf-8");
    assert_eq!(p[&404].path, pages.0.join("errors/404.html"));
    assert_eq!(p[&503].content_type, "text/x-log", "the site's own map");
}

#[test]
fn error_pages_refusals() {
    let pages = Pages::new("bad");
    let cases = [
        (
            "200 = \"errors/404.html\"",
            "\"200\" is not an error status; expected 400 to 599, like 404 = \"errors/404.html\"",
        ),
        ("600 = \"errors/404.html\"", "\"600\" is not an error status"),
        ("oops = \"errors/404.html\"", "\"oops\" is not an error status"),
        ("404 = \"errors/none.html\"", "errors/none.html does not exist; expected a readable file of at most 1MiB"),
        ("404 = \"errors\"", "errors is not a file; expected a readable file"),
        ("404 = \"errors/big.html\"", "errors/big.html is larger than 1048576 bytes (pages are held in memory)"),
        ("404 = \"errors/odd.xyz\"", "errors/odd.xyz: the extension \"xyz\" has no type in this site's MIME map"),
    ];
    for (entry, expected) in cases {
        let e = pages.parse(&format!("{SITE}error_pages = {{ {entry} }}\n")).expect_err(entry);
        assert_eq!(e.len(), 1, "{entry}: {e:?}");
        assert!(e[0].starts_with("test.toml:4:2"), "{entry}: {}", e[0]);
        assert!(e[0].contains(": sites[0].error_pages."), "{entry}: {}", e[0]);
        assert!(e[0].contains(expected), "{entry}: {}\n  expected: {expected}", e[0]);
    }
}

#[test]
fn route_headers_are_kept_in_order_of_their_names() {
    let c = ok(&format!(
        "{SITE}routes = [{{ path = \"/\", redirect = \"/x\", headers = {{ \"X-Frame-Options\" = \"DENY\", \"Cache-Control\" = \"max-age=60\", \"X-Empty\" = \"\" }} }}]\n"
    ));
    let h = &c.sites[0].routes[0].headers;
    let want = [("Cache-Control", "max-age=60"), ("X-Empty", ""), ("X-Frame-Options", "DENY")];
    assert_eq!(h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect::<Vec<_>>(), want);
}

#[test]
fn route_headers_refusals() {
    let cases = [
        ("\"Bad Name\" = \"1\"", "\"Bad Name\" is not a header name"),
        ("\"\" = \"1\"", "\"\" is not a header name"),
        ("Connection = \"close\"", "\"Connection\" cannot be set by a route"),
        ("\"transfer-encoding\" = \"chunked\"", "\"transfer-encoding\" cannot be set by a route"),
        ("\"Content-Length\" = \"4\"", "\"Content-Length\" cannot be set by a route"),
        ("Upgrade = \"h2c\"", "\"Upgrade\" cannot be set by a route"),
        ("\"X-A\" = \"a\\nb\"", "\"a\\nb\" is not a header value"),
        ("\"X-A\" = \" padded\"", "\" padded\" is not a header value"),
        ("\"X-A\" = \"caf\u{e9}\"", "is not a header value; expected visible ASCII"),
        ("\"X-A\" = \"1\", \"x-a\" = \"2\"", "\"x-a\" is listed twice"),
    ];
    for (entry, expected) in cases {
        let e = errors(&format!("{SITE}routes = [{{ path = \"/\", redirect = \"/x\", headers = {{ {entry} }} }}]\n"));
        assert_eq!(e.len(), 1, "{entry}: {e:?}");
        assert!(e[0].starts_with("test.toml:4:"), "{entry}: {}", e[0]);
        assert!(e[0].contains("sites[0].routes[0].headers."), "{entry}: {}", e[0]);
        assert!(e[0].contains(expected), "{entry}: {}\n  expected: {expected}", e[0]);
    }
}

#[test]
fn a_changed_page_header_or_type_changes_the_site() {
    let pages = Pages::new("diff");
    let text = |header: &str| {
        format!("{SITE}error_pages = {{ 404 = \"errors/404.html\" }}\nroutes = [{{ path = \"/\", redirect = \"/x\", headers = {{ \"X-A\" = \"{header}\" }} }}]\n")
    };
    let old = pages.parse(&text("1")).expect("valid");
    assert_eq!(diff(&old, &pages.parse(&text("1")).expect("valid")), []);
    let new = pages.parse(&text("2")).expect("valid");
    assert_eq!(diff(&old, &new), [Change::SiteChanged { name: "s".into() }]);
    std::fs::write(pages.0.join("errors/404.html"), "new page").expect("write");
    let reread = pages.parse(&text("1")).expect("valid");
    assert_eq!(diff(&old, &reread), [Change::SiteChanged { name: "s".into() }], "the page is re-read on load");
}
