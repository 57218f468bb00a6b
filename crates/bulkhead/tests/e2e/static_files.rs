//! Static routes served by the listener itself (issue #2 item 4): files with their MIME type,
//! default documents, the 301 for a directory without its slash, 404, 405, HEAD — and every
//! way out of the root we know of, each of which must be refused without ever returning the
//! content of a file outside the root.

use crate::support::http::{self, Conn};
use std::time::Duration;

use crate::support::{Server, TestDir};

const SECRET: &str = "TOP-SECRET-OUTSIDE-ROOT";
const INDEX: &str = "<!doctype html><h1>home page</h1>\n";

/// A site with one static route over `<dir>/www`, a secret file beside `www`, and symlinks
/// inside `www` pointing out of it and within it.
fn static_server() -> Server {
    let dir = TestDir::new("static");
    dir.write("secret.txt", SECRET);
    dir.write("www/index.html", INDEX);
    dir.write("www/style.css", "body { color: black }\n");
    dir.write("www/data.json", "{\"ok\":true}\n");
    dir.write("www/notes.txt", "plain notes\n");
    dir.write("www/sub/index.html", "<p>sub index</p>\n");
    dir.write("www/sub/page.html", "<p>inner page</p>\n");
    dir.write("www/a/keep.txt", "kept\n");
    dir.write("www/a/..%2f", "literal name with a percent sign\n");
    dir.symlink("../secret.txt", "www/evil.html");
    dir.symlink("..", "www/evil-dir");
    dir.symlink("sub/page.html", "www/good.html");
    let www = dir.join("www");
    let config = format!(
        r#"
[[sites]]
name = "files"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", root = "{}" }} ]
"#,
        www.display()
    );
    Server::start(dir, &config)
}

#[test]
fn files_mime_types_default_documents_and_methods() {
    let server = static_server();
    let addr = server.addr();

    let r = http::get(addr, "/index.html");
    assert_eq!(r.status, 200, "GET /index.html");
    assert_eq!(r.text(), INDEX);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/html"), "{:?}", r.headers);
    assert_eq!(r.header("content-length"), Some(INDEX.len().to_string().as_str()));

    for (path, mime) in [("/style.css", "text/css"), ("/data.json", "application/json"), ("/notes.txt", "text/plain")] {
        let r = http::get(addr, path);
        assert_eq!(r.status, 200, "GET {path}");
        let ct = r.header("content-type").unwrap_or("");
        assert!(ct.starts_with(mime), "GET {path}: Content-Type {ct:?}, expected {mime}");
    }

    let r = http::get(addr, "/index.html?x=1&y=2");
    assert_eq!((r.status, r.text().as_str()), (200, INDEX), "a query string does not change the file");

    let r = http::get(addr, "/");
    assert_eq!((r.status, r.text().as_str()), (200, INDEX), "default document for /");
    let r = http::get(addr, "/sub/");
    assert_eq!((r.status, r.text().as_str()), (200, "<p>sub index</p>\n"), "default document for /sub/");

    let r = http::get(addr, "/sub");
    assert_eq!(r.status, 301, "a directory without its slash is redirected");
    let location = r.header("location").unwrap_or("");
    assert!(location.ends_with("/sub/"), "Location {location:?}");

    let r = http::get(addr, "/missing.html");
    assert_eq!(r.status, 404, "missing file");
    let r = http::get(addr, "/sub/missing/deeper.html");
    assert_eq!(r.status, 404, "missing directory");

    let r = http::send(addr, "POST", "/index.html", &[], b"x=1");
    assert_eq!(r.status, 405, "POST to a static file");
    let allow = r.header("allow").unwrap_or("");
    assert!(allow.contains("GET") && allow.contains("HEAD"), "Allow {allow:?}");
    let r = http::send(addr, "DELETE", "/index.html", &[], b"");
    assert_eq!(r.status, 405, "DELETE to a static file");

    // HEAD: same status and length, no body on the wire (read until the server closes).
    let mut conn = Conn::connect(addr).unwrap();
    let r = conn.request("HEAD", "/index.html", &[("Connection", "close")], b"").unwrap();
    assert_eq!(r.status, 200, "HEAD /index.html");
    assert_eq!(r.header("content-length"), Some(INDEX.len().to_string().as_str()));
    let rest = conn.read_rest().unwrap();
    assert!(rest.is_empty(), "HEAD sent a body: {:?}", String::from_utf8_lossy(&rest));

    // Keep-alive: several requests on one connection.
    let mut conn = Conn::connect(addr).unwrap();
    for _ in 0..5 {
        let r = conn.request("GET", "/notes.txt", &[], b"").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "plain notes\n"));
    }
}

#[test]
fn symlinks_inside_the_root_are_served_and_those_leading_out_are_refused() {
    let server = static_server();
    let addr = server.addr();
    let r = http::get(addr, "/good.html");
    assert_eq!((r.status, r.text().as_str()), (200, "<p>inner page</p>\n"), "symlink to a file inside the root");
    // `/evil-dir/www/index.html` resolves back inside the root, so it may be served; these may not.
    for path in ["/evil.html", "/evil-dir/secret.txt", "/evil-dir/bulkhead.toml"] {
        let r = http::get(addr, path);
        assert_refused(path, &r);
    }
}

/// Every request target here tries to leave the root; each must be answered 4xx and none may
/// carry the content of a file outside it.
#[test]
fn every_traversal_attempt_is_refused() {
    let server = static_server();
    let addr = server.addr();
    let attempts = [
        "/../secret.txt",
        "/../etc/passwd",
        "/../../../../../../../../etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2fsecret.txt",
        "/..%2fetc/passwd",
        "/..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd",
        "/%2e%2e%2fsecret.txt",
        "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/a/../../secret.txt",
        "/a/%2e%2e/%2e%2e/secret.txt",
        "/%2fetc/passwd",
        "/%2Fetc%2Fpasswd",
        "//etc/passwd",
        "/a%5c..%5c..%5csecret.txt",
        "/a%5c..%5c..",
        "/a%5C..%5C..%5C..%5C..%5Cetc%5Cpasswd",
        "/a/..%252f..%252fsecret.txt",
        "/a/..%252f",
        "/%252e%252e/secret.txt",
        "/index.html%00.txt",
        "/index.html%00",
        "/%00/../secret.txt",
        "/a/..%00/secret.txt",
        "http://localhost/%2e%2e/secret.txt",
    ];
    let mut failures = Vec::new();
    for target in attempts {
        let r = match http::try_send(addr, "GET", target, &[], b"") {
            Ok(r) => r,
            // A server may drop a request it cannot parse; that is a refusal too.
            Err(e) => {
                eprintln!("{target}: connection error {e} (counted as refused)");
                continue;
            }
        };
        let body = r.text();
        if body.contains(SECRET) || body.contains("root:x:0:0") {
            failures.push(format!("{target}: {} WITH CONTENT OUTSIDE THE ROOT: {:?}", r.status, body));
        } else if target == "/a/..%252f" && r.status == 200 {
            // Decoded once, `..%252f` is the literal name `..%2f`: serving that file is right.
            if body != "literal name with a percent sign\n" {
                failures.push(format!("{target}: 200 with unexpected body {body:?}"));
            }
        } else if !(400..500).contains(&r.status) {
            failures.push(format!("{target}: status {} (expected a 4xx refusal), body {:?}", r.status, body));
        }
    }
    // Raw bytes a client library would never send: a backslash path and a literal NUL.
    let raw_requests: [&[u8]; 3] = [
        b"GET /a\\..\\..\\secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /..\\secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /index.html\0.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ];
    for raw in raw_requests {
        let mut conn = Conn::connect(addr).unwrap();
        conn.send_raw(raw).unwrap();
        if let Ok(r) = conn.read_response(false) {
            if r.text().contains(SECRET) || r.status < 400 {
                failures.push(format!("{:?}: {} {:?}", String::from_utf8_lossy(raw), r.status, r.text()));
            }
        }
    }
    assert!(failures.is_empty(), "traversal not refused:\n{}", failures.join("\n"));
    // The server is still fine afterwards.
    assert_eq!(http::get(addr, "/index.html").status, 200);
}

fn assert_refused(target: &str, r: &http::Response) {
    let body = r.text();
    assert!(!body.contains(SECRET), "{target}: returned the content of a file outside the root");
    assert!((400..500).contains(&r.status), "{target}: status {} (expected 4xx), body {body:?}", r.status);
}

/// The listener's descriptors that name `path` (`/proc/PID/fd`), deleted ones included.
fn open_fds_of(pid: u32, path: &std::path::Path) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let want = path.to_string_lossy().to_string();
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().to_string())
        .filter(|target| target == &want || target.starts_with(&format!("{want} ")))
        .collect()
}

/// The open-file cache (issue 11 item 4), with the response cache off so that every answer
/// comes from the file system or from a held descriptor: a file served once is held open, and
/// every way the file can change is seen — written in place, replaced by a rename, deleted (its
/// descriptor then let go), and a symlink re-pointed out of the root, which never serves what
/// it points at.
#[test]
fn files_kept_open_follow_every_change_and_are_let_go_when_deleted() {
    let dir = TestDir::new("open-files");
    dir.write("secret.txt", SECRET);
    dir.write("www/a.txt", "version one\n");
    dir.write("www/sub/inside.txt", "inside the root\n");
    dir.symlink("sub/inside.txt", "www/link.txt");
    let www = dir.join("www");
    let config = format!(
        r#"
[cache]
enabled = false

[[sites]]
name = "files"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", root = "{}" }} ]
"#,
        www.display()
    );
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let listener = server.listener_pid();
    let a = std::fs::canonicalize(www.join("a.txt")).unwrap();
    let text = |path: &str| {
        let r = http::get(addr, path);
        (r.status, r.text())
    };

    assert_eq!(text("/a.txt"), (200, "version one\n".to_string()));
    assert_eq!(open_fds_of(listener, &a).len(), 1, "the served file is held open");
    assert_eq!(text("/a.txt"), (200, "version one\n".to_string()), "served from the held descriptor");
    assert_eq!(open_fds_of(listener, &a).len(), 1, "and not opened again");

    // Written in place: the same inode, a new length.
    std::fs::write(&a, "version two, longer\n").unwrap();
    crate::support::wait_for("the rewritten file", Duration::from_secs(10), || {
        text("/a.txt") == (200, "version two, longer\n".to_string())
    });
    let r = http::get(addr, "/a.txt");
    assert_eq!(r.header("content-length"), Some("20"), "the length is the new file's");

    // Replaced by a rename, as deployments do.
    std::fs::write(www.join(".a.txt.new"), "version three\n").unwrap();
    std::fs::rename(www.join(".a.txt.new"), &a).unwrap();
    crate::support::wait_for("the renamed-over file", Duration::from_secs(10), || {
        text("/a.txt") == (200, "version three\n".to_string())
    });

    // Deleted: 404, and the descriptor of the deleted file is closed (by the sweeper).
    std::fs::remove_file(&a).unwrap();
    crate::support::wait_for("the deleted file's 404", Duration::from_secs(10), || text("/a.txt").0 == 404);
    crate::support::wait_for("the deleted file's descriptor to be closed", Duration::from_secs(30), || {
        open_fds_of(listener, &a).is_empty()
    });

    // A symlink re-pointed out of the root: the secret is never served, whatever the timing.
    assert_eq!(text("/link.txt"), (200, "inside the root\n".to_string()));
    std::fs::remove_file(www.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", www.join("link.txt")).unwrap();
    crate::support::wait_for("the re-pointed symlink's 404", Duration::from_secs(10), || {
        let (status, body) = text("/link.txt");
        assert!(!body.contains(SECRET), "served the file outside the root");
        status == 404
    });
}
