//! Static content to nginx's standard (issue 11 item 2): validators and conditional requests
//! (RFC 9110 §13: 304 with only the headers §15.4.5 allows, 412), byte ranges (§14: 206, 416,
//! `If-Range`, malformed and multiple ranges), hidden segments (404.8 in the access log), files
//! the listener's user cannot read (403, named once in the log) and directory listings.
//!
//! Through the real binary with the byte-exact client (so a stray body after a 304 is seen),
//! and curl for a range of a large (streamed) file.

use std::process::Command;
use std::time::Duration;

use crate::support::http::{self, Conn};
use crate::support::skip::{skip, Reason};
use crate::support::{wait_for, Server, TestDir};

/// 1,000 bytes of text: byte i is `b'a' + i % 26`.
fn small_text() -> Vec<u8> {
    (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect()
}

/// 3 MiB (past the listener's read-whole size, so streamed): byte i is `i * 7 % 251`.
fn large_bin() -> Vec<u8> {
    (0..3u32 * 1024 * 1024).map(|i| (i.wrapping_mul(7) % 251) as u8).collect()
}

/// A site "content" on one ephemeral port: `/` over `<dir>/www` with `route_extra` keys, and
/// any `more_routes` after it.
pub(crate) fn content_server(dir: TestDir, route_extra: &str, more_routes: &str) -> Server {
    let www = dir.join("www");
    let config = format!(
        r#"
[[sites]]
name = "content"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", root = "{}"{route_extra} }},{more_routes} ]
"#,
        www.display()
    );
    Server::start(dir, &config)
}

fn files_server() -> Server {
    let dir = TestDir::new("static-content");
    dir.write("www/small.txt", small_text());
    dir.write("www/large.bin", large_bin());
    content_server(dir, "", "")
}

/// One request on its own connection that the server closes afterwards, and whatever bytes
/// followed the response (a 304 or a HEAD must have none).
fn send_checking_rest(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> http::Response {
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    let mut conn = Conn::connect(addr).expect("connect");
    let r = conn.request(method, target, &all, b"").expect("response");
    let rest = conn.read_rest().expect("read to close");
    assert!(
        rest.is_empty(),
        "{method} {target} {headers:?}: {} bytes after the response: {:?}",
        rest.len(),
        String::from_utf8_lossy(&rest)
    );
    r
}

#[test]
fn validators_and_preconditions_follow_rfc_9110() {
    let server = files_server();
    let addr = server.addr();
    let full = http::get(addr, "/small.txt");
    assert_eq!(full.status, 200);
    let etag = full.header("etag").expect("ETag").to_string();
    let modified = full.header("last-modified").expect("Last-Modified").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "a strong tag: {etag}");
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    let earlier = httpdate::fmt_http_date(httpdate::parse_http_date(&modified).unwrap() - Duration::from_secs(60));

    let not_modified: [&[(&str, &str)]; 6] = [
        &[("If-None-Match", &etag)],
        &[("If-None-Match", &weak)],
        &[("If-None-Match", &listed)],
        &[("If-None-Match", "*")],
        &[("If-Modified-Since", &modified)],
        &[("If-Match", &etag), ("If-None-Match", &etag)],
    ];
    for headers in not_modified {
        for method in ["GET", "HEAD"] {
            let r = send_checking_rest(addr, method, "/small.txt", headers);
            assert_eq!(r.status, 304, "{method} {headers:?}");
            assert_eq!(r.header("etag"), Some(etag.as_str()), "a 304 carries the ETag");
            for banned in ["content-type", "content-length", "last-modified", "accept-ranges"] {
                assert_eq!(
                    r.header(banned),
                    None,
                    "{method} {headers:?}: a 304 must not carry {banned}: {:?}",
                    r.headers
                );
            }
        }
    }
    let served: [&[(&str, &str)]; 5] = [
        &[("If-None-Match", "\"other\"")],
        &[("If-Modified-Since", &earlier)],
        &[("If-Modified-Since", "not a date")],
        // If-Modified-Since is ignored when If-None-Match is present (§13.1.3).
        &[("If-None-Match", "\"other\""), ("If-Modified-Since", &modified)],
        &[("If-Match", &etag), ("If-Unmodified-Since", &earlier)],
    ];
    for headers in served {
        let r = http::send(addr, "GET", "/small.txt", headers, b"");
        assert_eq!((r.status, r.body.len()), (200, 1000), "{headers:?}");
    }
    let failed: [&[(&str, &str)]; 4] = [
        &[("If-Match", "\"other\"")],
        &[("If-Match", &weak)], // strong comparison
        &[("If-Unmodified-Since", &earlier)],
        // If-Match is evaluated first: 412 even though If-None-Match would give 304.
        &[("If-Match", "\"other\""), ("If-None-Match", &etag)],
    ];
    for headers in failed {
        let r = http::send(addr, "GET", "/small.txt", headers, b"");
        assert_eq!(r.status, 412, "{headers:?}");
    }
    assert_eq!(http::send(addr, "GET", "/small.txt", &[("If-Match", "*")], b"").status, 200);
}

#[test]
fn byte_ranges_single_suffix_open_unsatisfiable_and_if_range() {
    let server = files_server();
    let addr = server.addr();
    let text = small_text();
    let etag = http::get(addr, "/small.txt").header("etag").expect("ETag").to_string();
    let modified = http::get(addr, "/small.txt").header("last-modified").expect("Last-Modified").to_string();

    let cases: [(&str, usize, usize); 6] = [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, 999),
        ("bytes=-500", 500, 999),
        ("bytes=990-5000", 990, 999),
        ("bytes=0-10, 5-20", 0, 20), // overlapping ranges merged into one
        ("bytes=-5000", 0, 999),
    ];
    for (range, start, end) in cases {
        let r = http::send(addr, "GET", "/small.txt", &[("Range", range)], b"");
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.header("content-range"), Some(format!("bytes {start}-{end}/1000").as_str()), "{range}");
        assert_eq!(r.header("content-length"), Some((end - start + 1).to_string().as_str()), "{range}");
        assert_eq!(r.body, &text[start..=end], "{range}");
        assert_eq!(r.header("etag"), Some(etag.as_str()), "{range}");
    }
    for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let r = http::send(addr, "GET", "/small.txt", &[("Range", range)], b"");
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */1000"), "{range}");
    }
    // Ignored, as RFC 9110 §14.2 says: malformed, other units, HEAD (ranges are defined for GET
    // only).
    for range in ["bytes=5-1", "bytes=abc", "lines=1-2"] {
        let r = http::send(addr, "GET", "/small.txt", &[("Range", range)], b"");
        assert_eq!((r.status, r.body.len()), (200, 1000), "{range}");
        assert_eq!(r.header("content-range"), None, "{range}");
    }
    let r = send_checking_rest(addr, "HEAD", "/small.txt", &[("Range", "bytes=0-9")]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("1000")), "HEAD with Range");

    // If-Range: the range applies only while the validator is current.
    let with =
        |if_range: &str| http::send(addr, "GET", "/small.txt", &[("Range", "bytes=0-9"), ("If-Range", if_range)], b"");
    assert_eq!(with(&etag).status, 206, "If-Range with the current tag");
    assert_eq!(with(&modified).status, 206, "If-Range with the exact Last-Modified");
    for stale in ["\"old\"", &format!("W/{etag}"), "Mon, 01 Jan 2001 00:00:00 GMT", "junk"] {
        let r = with(stale);
        assert_eq!((r.status, r.body.len()), (200, 1000), "If-Range {stale}: the whole file");
    }
    // Preconditions come before ranges.
    let r = http::send(addr, "GET", "/small.txt", &[("Range", "bytes=0-9"), ("If-None-Match", &etag)], b"");
    assert_eq!(r.status, 304);
}

/// One part of a `multipart/byteranges` answer: its `Content-Type`, `Content-Range` and bytes.
pub(crate) type BytesPart = (Option<String>, String, Vec<u8>);

/// The parts of a `multipart/byteranges` answer: each part's `Content-Type`, `Content-Range`
/// and bytes, read by the boundary its `Content-Type` names; `None` if it is not well formed
/// (RFC 9110 §14.6, RFC 2046 §5.1.1).
pub(crate) fn byteranges_parts(r: &http::Response) -> Option<Vec<BytesPart>> {
    let ct = r.header("content-type")?;
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=")?;
    let delimiter = format!("\r\n--{boundary}");
    let body = &r.body[..];
    let find =
        |from: usize, needle: &[u8]| body[from..].windows(needle.len()).position(|w| w == needle).map(|i| i + from);
    let mut at = find(0, delimiter.as_bytes())?;
    let mut parts = Vec::new();
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--\r\n") {
            return (at + 4 == body.len()).then_some(parts);
        }
        let head_end = find(at, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&body[at + 2..head_end]).ok()?;
        let field = |name: &str| {
            head.split("\r\n").find_map(|l| {
                l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_string())
            })
        };
        let next = find(head_end + 4, delimiter.as_bytes())?;
        parts.push((field("content-type"), field("content-range")?, body[head_end + 4..next].to_vec()));
        at = next;
    }
}

#[test]
fn disjoint_ranges_get_a_multipart_answer_from_a_small_file_a_streamed_one_and_the_cache() {
    let server = files_server();
    let addr = server.addr();
    let text = small_text();
    // The file straight from the route, then (after two whole GETs store it) from the response
    // cache (tests/e2e/cache.rs checks the HIT mark): the same parts.
    for round in 0..2 {
        if round == 1 {
            for _ in 0..2 {
                assert_eq!(http::get(addr, "/small.txt").status, 200);
            }
        }
        let r = http::send(addr, "GET", "/small.txt", &[("Range", "bytes=900-909, 0-9, 5-14, -5")], b"");
        assert_eq!(r.status, 206, "round {round}");
        assert_eq!(r.header("content-range"), None, "a multipart answer has no Content-Range of its own");
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()), "round {round}");
        let parts = byteranges_parts(&r).unwrap_or_else(|| panic!("round {round}: not multipart: {:?}", r.headers));
        let want: [(usize, usize); 3] = [(0, 14), (900, 909), (995, 999)];
        assert_eq!(parts.len(), want.len(), "overlapping ranges merged, parts ascending: round {round}");
        for ((ct, range, bytes), (start, end)) in parts.iter().zip(want) {
            assert_eq!(ct.as_deref(), Some("text/plain; charset=utf-8"), "each part carries the file's type");
            assert_eq!(range, &format!("bytes {start}-{end}/1000"));
            assert!(bytes[..] == text[start..=end], "bytes {start}-{end}");
        }
    }
    let data = large_bin();
    let len = data.len();
    let (a, b) = (1_000_000, len - 100_000);
    let r = http::send(addr, "GET", "/large.bin", &[("Range", &format!("bytes=0-99, {a}-{}, {b}-", a + 199_999))], b"");
    assert_eq!(r.status, 206);
    let parts = byteranges_parts(&r).expect("multipart");
    let want = [(0, 99), (a, a + 199_999), (b, len - 1)];
    assert_eq!(parts.len(), 3);
    for ((ct, range, bytes), (start, end)) in parts.iter().zip(want) {
        assert_eq!(ct.as_deref(), Some("application/octet-stream"));
        assert_eq!(range, &format!("bytes {start}-{end}/{len}"));
        assert!(bytes[..] == data[start..=end], "bytes {start}-{end} streamed from the file");
    }
    // Each unsatisfiable spec is dropped; none left is 416.
    let r = http::send(addr, "GET", "/small.txt", &[("Range", "bytes=0-1, 5000-6000")], b"");
    assert_eq!((r.status, r.header("content-range")), (206, Some("bytes 0-1/1000")));
    let r = http::send(addr, "GET", "/small.txt", &[("Range", "bytes=5000-6000, 7000-")], b"");
    assert_eq!(r.status, 416);
}

#[test]
fn ranges_of_a_streamed_file_start_at_their_offset() {
    let server = files_server();
    let addr = server.addr();
    let data = large_bin();
    let len = data.len();
    let start = 2 * 1024 * 1024 + 12_345;
    let r = http::send(addr, "GET", "/large.bin", &[("Range", &format!("bytes={start}-{}", start + 99_999))], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(format!("bytes {start}-{}/{len}", start + 99_999).as_str()));
    assert!(r.body == data[start..start + 100_000], "the bytes at the offset");
    let r = http::send(addr, "GET", "/large.bin", &[("Range", "bytes=-70000")], b"");
    assert_eq!(r.status, 206);
    assert!(r.body == data[len - 70_000..], "the last 70,000 bytes");

    // curl resuming a download (-C): the rest of the file from where its partial copy ends.
    let out = server.dir.write("partial.bin", &data[..1_000_000]);
    let result = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-C", "-", "-o"])
        .arg(&out)
        .arg(format!("http://{addr}/large.bin"))
        .output();
    let Ok(result) = result else { skip!(Reason::Missing("curl".into())) };
    assert!(result.status.success(), "curl -C -: {}", String::from_utf8_lossy(&result.stderr));
    assert!(std::fs::read(&out).expect("curl's file") == data, "curl resumed to the whole file");
}

/// The W3C access-log `sc-status` and `sc-substatus` of the first request for `stem`, once
/// written (fields found by name in the `#Fields:` line). The site must be named "content".
pub(crate) fn logged_status(server: &Server, stem: &str) -> Option<(String, String)> {
    let text: String = server.access_logs("content").into_values().collect();
    let names: Vec<&str> = text.lines().find_map(|l| l.strip_prefix("#Fields: "))?.split(' ').collect();
    let at = |name: &str| names.iter().position(|n| *n == name);
    let (stem_at, status_at, sub_at) = (at("cs-uri-stem")?, at("sc-status")?, at("sc-substatus")?);
    let line = text.lines().filter(|l| !l.starts_with('#')).find(|l| l.split(' ').nth(stem_at) == Some(stem))?;
    let fields: Vec<&str> = line.split(' ').collect();
    Some((fields.get(status_at)?.to_string(), fields.get(sub_at)?.to_string()))
}

#[test]
fn hidden_segments_are_404_8_and_the_list_can_be_replaced() {
    let dir = TestDir::new("static-hidden");
    for f in ["www/.git/config", "www/.git/notes.txt", "www/.env", "www/sub/.htaccess", "www/.well-known/security.txt"]
    {
        dir.write(f, "not for the public\n");
    }
    dir.write("www/private/plan.txt", "private plan\n");
    dir.write("www/index.html", "<p>home</p>\n");
    dir.symlink(".git", "www/innocent");
    let replaced = format!(
        "\n  {{ path = \"/other\", root = \"{}\", hidden_segments = [\"private\"] }}",
        dir.join("www").display()
    );
    let server = content_server(dir, "", &replaced);
    let addr = server.addr();
    for target in [
        "/.git/config",
        "/.git/notes.txt",
        "/.env",
        "/sub/.htaccess",
        "/.GIT/notes.txt",
        "/%2egit/notes.txt",
        "/innocent/notes.txt",
    ] {
        let r = http::get(addr, target);
        assert_eq!(r.status, 404, "{target}");
        assert!(!r.text().contains("not for the public"), "{target}");
    }
    assert_eq!(http::get(addr, "/.well-known/security.txt").status, 200, "other dot-directories are served");
    assert_eq!(http::get(addr, "/private/plan.txt").status, 200, "not in the default list");
    assert_eq!(http::get(addr, "/other/private/plan.txt").status, 404, "in the replacing list");
    let r = http::get(addr, "/other/.git/notes.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "not for the public\n"), "the list replaces the default");

    let mut seen = None;
    wait_for("the access-log lines", Duration::from_secs(15), || {
        seen = logged_status(&server, "/.env").zip(logged_status(&server, "/other/private/plan.txt"));
        seen.is_some()
    });
    let (env, private) = seen.expect("lines");
    assert_eq!(env, ("404".into(), "8".into()), "IIS's 404.8 for a hidden segment");
    assert_eq!(private, ("404".into(), "8".into()));
}

#[test]
fn directory_listings_when_browsing_is_on_and_403_14_when_off() {
    let dir = TestDir::new("static-listing");
    dir.write("www/files/b.txt", "12345");
    dir.write("www/files/a&b<c>.txt", "x");
    dir.write("www/files/space name.txt", "xy");
    dir.write("www/files/.hidden", "secret");
    dir.write("www/files/.git/config", "secret");
    dir.write("www/files/zdir/inner.txt", "in");
    dir.write("www/files/withindex/index.html", "<p>an index</p>\n");
    let off = format!("\n  {{ path = \"/off\", root = \"{}\" }}", dir.join("www").display());
    let server = content_server(dir, ", directory_browsing = true", &off);
    let addr = server.addr();

    let r = http::get(addr, "/files/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.contains("<title>Index of /files/</title>"), "{page}");
    assert!(page.contains("<a href=\"../\">../</a>"), "{page}");
    assert!(page.contains("<a href=\"a%26b%3Cc%3E.txt\">a&amp;b&lt;c&gt;.txt</a>"), "escaped and encoded: {page}");
    assert!(page.contains("<a href=\"space%20name.txt\">space name.txt</a>"), "{page}");
    assert!(page.contains("<a href=\"zdir/\">zdir/</a>"), "directories end with /: {page}");
    assert!(page.contains("<td>5</td>"), "sizes: {page}");
    assert!(!page.contains("hidden") && !page.contains(".git"), "dot-files are not listed: {page}");
    let order: Vec<usize> = ["withindex/", "zdir/", "a%26b", "b.txt", "space%20name"]
        .iter()
        .map(|n| page.find(&format!("href=\"{n}")).unwrap_or_else(|| panic!("{n} missing: {page}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "directories first, then each sorted by name: {page}");

    let head = send_checking_rest(addr, "HEAD", "/files/", &[]);
    assert_eq!((head.status, head.header("content-length")), (200, Some(page.len().to_string().as_str())));
    let linked = http::get(addr, "/files/space%20name.txt");
    assert_eq!((linked.status, linked.text().as_str()), (200, "xy"), "a listed link is served");
    assert_eq!(http::get(addr, "/files/zdir").status, 301, "no slash: redirected as before");
    assert_eq!(http::get(addr, "/files/withindex/").text(), "<p>an index</p>\n", "a default document wins");

    assert_eq!(http::get(addr, "/off/files/").status, 403, "browsing off");
    let mut seen = None;
    wait_for("the access-log line", Duration::from_secs(15), || {
        seen = logged_status(&server, "/off/files/");
        seen.is_some()
    });
    assert_eq!(seen, Some(("403".into(), "14".into())));
}

/// Root only: the listener runs as `nobody` (the default `listener_user`); a file it cannot
/// read and a directory it cannot enter answer 403, and each path is named once in the log.
#[test]
fn unreadable_files_and_directories_answer_403_and_are_named_once() {
    if let Some(why) = crate::preflight::not_root_with_nobody() {
        skip!(why);
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("static-denied");
    let secret = dir.write("www/secret.txt", "root only\n");
    dir.write("www/private/index.html", "<p>private</p>\n");
    dir.write("www/private/a.txt", "private a\n");
    dir.write("www/open.txt", "open\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    std::fs::set_permissions(dir.join("www/private"), std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    let server = content_server(dir, ", directory_browsing = true", "");
    let addr = server.addr();

    for target in ["/secret.txt", "/secret.txt", "/private/", "/private/a.txt", "/private/a.txt"] {
        let r = http::get(addr, target);
        assert_eq!(r.status, 403, "{target}: {}", r.text());
        assert!(!r.text().contains("private") && !r.text().contains("root only"), "{target}");
    }
    assert_eq!(http::get(addr, "/open.txt").status, 200, "a readable file beside them");
    let secret_path = server.dir.join("www/secret.txt").display().to_string();
    let warning = |path: &str| format!("static file {path}: permission denied for the listener's user \"nobody\"");
    wait_for("the permission warnings", Duration::from_secs(15), || {
        let out = server.output();
        out.contains(&warning(&secret_path)) && out.contains("www/private")
    });
    // Once more after the warnings were seen, then a new unreadable path as a marker: the log
    // is one stream, so a second line for secret.txt would come before the marker's.
    assert_eq!(http::get(addr, "/secret.txt").status, 403);
    let late = server.dir.write("www/late.txt", "late\n");
    std::fs::set_permissions(&late, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    assert_eq!(http::get(addr, "/late.txt").status, 403);
    let late_path = late.display().to_string();
    wait_for("the marker's warning", Duration::from_secs(15), || server.output().contains(&warning(&late_path)));
    let out = server.output();
    assert_eq!(out.matches(&warning(&secret_path)).count(), 1, "named once:\n{out}");
    let private_lines = out.lines().filter(|l| l.contains("permission denied") && l.contains("www/private")).count();
    assert_eq!(private_lines, 2, "the directory and the file in it, each named once:\n{out}");
}

/// Started as root, the listener runs as `nobody`: a root `nobody` cannot reach is warned about
/// (`config check` and start-up), and served as 403 with the path named once — where it used to
/// stop the listener from starting (it re-checked the root's existence as `nobody`).
#[test]
fn a_root_the_listeners_user_cannot_reach_is_warned_about_and_answers_403() {
    if let Some(why) = crate::preflight::not_root_with_nobody() {
        skip!(why);
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("static-root-denied");
    dir.write("locked/www/index.html", "locked away\n");
    dir.write("locked/404.html", "<p>lost</p>\n");
    let locked = dir.join("locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    let config = format!(
        r#"
[[sites]]
name = "content"
bindings = ["http://127.0.0.1:0"]
error_pages = {{ 404 = "{}" }}
routes = [ {{ path = "/", root = "{}" }} ]
"#,
        dir.join("locked/404.html").display(),
        dir.join("locked/www").display()
    );
    // `config check` names the route, the listener's user and what is in the way.
    let file = dir.write("check.toml", &config);
    let (code, text) = crate::preflight::config_check(&file, false);
    assert_eq!(code, Some(0), "a warning, not a refusal:\n{text}");
    let why =
        format!("user \"nobody\" cannot reach {}: {} is mode 0700", dir.join("locked/www").display(), locked.display());
    assert!(text.contains("check.toml:6:") && text.contains("sites[0].routes[0].root"), "the route is named:\n{text}");
    assert!(text.contains(&why), "the user and the directory in the way:\n{text}");
    assert!(text.contains("the listener cannot read this page"), "the error page too:\n{text}");
    // The listener (as nobody) starts on that configuration: it does not repeat root's checks.
    // Served anyway: 403, never a silent 404, and the root named once in the log.
    let server = Server::start(dir, &config);
    for target in ["/", "/index.html", "/index.html"] {
        let r = http::get(server.addr(), target);
        assert_eq!(r.status, 403, "{target}: {}", r.text());
    }
    let root = server.dir.join("locked/www").display().to_string();
    let warning = format!("static file {root}: permission denied for the listener's user \"nobody\"");
    wait_for("the root's permission warning", Duration::from_secs(15), || server.output().contains(&warning));
    assert_eq!(server.output().matches(&warning).count(), 1, "named once:\n{}", server.output());
}
