//! Compressed static files (issue 11 item 2): `Accept-Encoding` negotiation with q-values,
//! gzip and brotli made on the fly for small compressible files, precompressed `.br`/`.gz`
//! files chosen when present and fresh, a strong `ETag` per coding with conditionals and 304s
//! per variant, `Vary: Accept-Encoding` on compressible types only, identity for `Range`
//! requests, HEAD with GET's headers, and the `compress`/`precompressed` route keys.
//!
//! Through the real binary: the byte-exact client sees the raw coded body (decoded with
//! python3's `gzip` module and compared with the file), and curl decodes brotli (`--compressed`
//! with its libbrotli).

use std::process::{Command, Stdio};

use crate::static_content::content_server;
use crate::support::http::{self, Response};
use crate::support::skip::{skip, Reason};
use crate::support::{Server, TestDir};

/// About 40 KiB of JavaScript-like text, which compresses well.
fn script() -> Vec<u8> {
    (0..1500u32).flat_map(|i| format!("function f{i}(a) {{ return a + {}; }}\n", i % 17).into_bytes()).collect()
}

/// `data` gunzipped by python3's gzip module; `None` when python3 cannot be run.
fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(data).ok()?;
    let out = child.wait_with_output().ok()?;
    assert!(out.status.success(), "python3 could not gunzip {} bytes", data.len());
    Some(out.stdout)
}

fn get(server: &Server, target: &str, headers: &[(&str, &str)]) -> Response {
    http::send(server.addr(), "GET", target, headers, b"")
}

fn gzip_ae() -> [(&'static str, &'static str); 1] {
    [("Accept-Encoding", "gzip")]
}

/// Checks `r` is `coding` (or identity for `None`) and carries `Vary` when `varies`.
fn assert_coded(r: &Response, coding: Option<&str>, varies: bool, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.header("content-encoding"), coding, "{what}: {:?}", r.headers);
    let vary = r.header("vary").map(str::to_ascii_lowercase);
    assert_eq!(vary.as_deref(), varies.then_some("accept-encoding"), "{what}: {:?}", r.headers);
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()), "{what}: a whole body, sized");
}

fn server_with(files: &[(&str, &[u8])], route_extra: &str, more_routes: &str) -> Server {
    let dir = TestDir::new("compression");
    for (name, data) in files {
        dir.write(&format!("www/{name}"), data);
    }
    content_server(dir, route_extra, more_routes)
}

#[test]
fn gzip_and_brotli_are_negotiated_by_q_value_with_their_own_etags() {
    let js = script();
    let png: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
    let tiny = b"short text under the minimum size\n".to_vec();
    let large: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 3) as u8).collect();
    let files: [(&str, &[u8]); 4] = [("app.js", &js), ("logo.png", &png), ("tiny.txt", &tiny), ("large.txt", &large)];
    let server = server_with(&files, "", "");

    let plain = get(&server, "/app.js", &[]);
    assert_coded(&plain, None, true, "no Accept-Encoding");
    assert!(plain.body == js);
    let identity_tag = plain.header("etag").expect("ETag").to_string();

    let gz = get(&server, "/app.js", &gzip_ae());
    assert_coded(&gz, Some("gzip"), true, "gzip");
    assert!(gz.body.len() < js.len() / 3, "compressed: {} of {} bytes", gz.body.len(), js.len());
    let Some(decoded) = gunzip(&gz.body) else { skip!(Reason::Missing("python3".into())) };
    assert!(decoded == js, "gunzipped, the file");
    assert_eq!(gz.header("content-type"), Some("text/javascript; charset=utf-8"), "the file's type");
    let gz_tag = gz.header("etag").expect("ETag").to_string();
    assert!(gz_tag.starts_with('"') && gz_tag.ends_with("-gz\""), "a strong tag of its own: {gz_tag}");
    assert_ne!(gz_tag, identity_tag);

    // curl decodes brotli itself; -i shows the head it got.
    let url = format!("http://{}/app.js", server.addr());
    let br = http::curl(&["--compressed", "-H", "Accept-Encoding: br", &url]);
    assert_eq!((br.status, br.header("content-encoding")), (200, Some("br")), "{:?}", br.headers);
    assert!(br.body == js, "curl's brotli decoding gives the file");
    let br_tag = br.header("etag").expect("ETag").to_string();
    assert!(br_tag.ends_with("-br\"") && br_tag != gz_tag, "{br_tag}");
    let curl_default = http::curl(&["--compressed", &url]);
    assert_eq!(curl_default.header("content-encoding"), Some("br"), "curl's list: br first at equal q");

    let by_q: [(&str, Option<&str>); 8] = [
        ("gzip, deflate, br", Some("br")),
        ("br;q=0.5, gzip", Some("gzip")),
        ("br;q=0, gzip", Some("gzip")),
        ("gzip;q=0", None),
        ("br;q=0, gzip;q=0, *;q=1", None),
        ("identity;q=0", None),
        ("*", Some("br")),
        ("deflate, zstd", None),
    ];
    for (accept, coding) in by_q {
        let r = get(&server, "/app.js", &[("Accept-Encoding", accept)]);
        assert_coded(&r, coding, true, accept);
        if coding.is_none() {
            assert!(r.body == js, "{accept}: the file itself");
        }
    }

    // HEAD: GET's headers, no body.
    let head = http::send(server.addr(), "HEAD", "/app.js", &gzip_ae(), b"");
    assert_eq!(head.status, 200);
    for name in ["content-encoding", "content-length", "etag", "vary", "content-type", "last-modified"] {
        assert_eq!(head.header(name), gz.header(name), "HEAD's {name}");
    }
    assert!(head.body.is_empty());

    // Never compressed: a PNG (no Vary either), a file under 256 bytes, one past 256 KiB.
    assert_coded(&get(&server, "/logo.png", &gzip_ae()), None, false, "an image");
    let tiny_r = get(&server, "/tiny.txt", &gzip_ae());
    assert_coded(&tiny_r, None, true, "under the minimum");
    assert!(tiny_r.body == tiny);
    let large_r = get(&server, "/large.txt", &gzip_ae());
    assert_coded(&large_r, None, true, "past the on-the-fly bound");
    assert!(large_r.body == large);
}

#[test]
fn conditionals_and_ranges_per_variant() {
    let js = script();
    let server = server_with(&[("app.js", &js)], "", "");
    let identity_tag = get(&server, "/app.js", &[]).header("etag").expect("ETag").to_string();
    let gz_tag = get(&server, "/app.js", &gzip_ae()).header("etag").expect("ETag").to_string();
    let gzip = ("Accept-Encoding", "gzip");

    let r = get(&server, "/app.js", &[gzip, ("If-None-Match", &gz_tag)]);
    assert_eq!(r.status, 304, "the gzip variant's tag, asked for gzip");
    assert_eq!(r.header("etag"), Some(gz_tag.as_str()));
    assert_eq!(r.header("vary").map(str::to_ascii_lowercase).as_deref(), Some("accept-encoding"), "{:?}", r.headers);
    for banned in ["content-encoding", "content-type", "content-length"] {
        assert_eq!(r.header(banned), None, "a 304 carries no {banned}: {:?}", r.headers);
    }
    assert!(r.body.is_empty());
    let r = get(&server, "/app.js", &[("If-None-Match", &gz_tag)]);
    assert_eq!((r.status, r.header("etag")), (200, Some(identity_tag.as_str())), "another variant: sent whole");
    let r = get(&server, "/app.js", &[gzip, ("If-None-Match", &identity_tag)]);
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")), "the identity tag does not match gzip");

    assert_eq!(get(&server, "/app.js", &[gzip, ("If-Match", &identity_tag)]).status, 412, "strong: per variant");
    assert_eq!(get(&server, "/app.js", &[gzip, ("If-Match", &gz_tag)]).status, 200);

    // A range of a file compressed on the fly: the identity bytes (the range applies to them).
    let r = get(&server, "/app.js", &[gzip, ("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None, "{:?}", r.headers);
    assert_eq!(r.header("etag"), Some(identity_tag.as_str()));
    assert!(r.body == js[100..200]);
    let r = get(&server, "/app.js", &[gzip, ("Range", "bytes=100-199"), ("If-Range", &gz_tag)]);
    assert_eq!((r.status, r.header("content-encoding")), (200, None), "If-Range of another variant: the whole file");
    assert!(r.body == js);
}

#[test]
fn precompressed_files_are_served_when_fresh_and_the_keys_turn_coding_off() {
    let css: Vec<u8> = (0..800u32).flat_map(|i| format!(".c{i} {{ color: red; }}\n").into_bytes()).collect();
    // The variants' bytes are markers, not real codings: the listener sends them as they are,
    // so seeing them proves the file was chosen (a client would decode real ones).
    let br_file = b"precompressed brotli bytes of style.css".to_vec();
    let gz_file = b"precompressed gzip bytes of style.css, with a range to ask for".to_vec();
    let files: [(&str, &[u8]); 7] = [
        ("style.css", &css),
        ("style.css.br", &br_file),
        ("style.css.gz", &gz_file),
        ("stale.css", &css),
        ("stale.css.gz", &gz_file),
        ("out.css", &css),
        ("linked.css", &css),
    ];
    let dir = TestDir::new("precompressed");
    for (name, data) in files {
        dir.write(&format!("www/{name}"), data);
    }
    // Symlinked variants: one leading out of the root (never sent), one inside it (sent).
    dir.write("outside.gz", b"outside the root");
    dir.symlink("../outside.gz", "www/out.css.gz");
    dir.symlink("style.css.gz", "www/linked.css.gz");
    // stale.css.gz is a day older than stale.css: it no longer stands for it.
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    let stale = std::fs::File::options().write(true).open(dir.join("www/stale.css.gz")).expect("open");
    stale.set_modified(day_ago).expect("set mtime");
    let www = dir.join("www");
    let more = format!(
        "\n  {{ path = \"/fly\", root = \"{0}\", precompressed = false }},\n  {{ path = \"/off\", root = \"{0}\", compress = false, precompressed = false }}",
        www.display()
    );
    let server = content_server(dir, "", &more);

    let br = get(&server, "/style.css", &[("Accept-Encoding", "gzip, br")]);
    assert_coded(&br, Some("br"), true, "the .br file");
    assert!(br.body == br_file, "the .br file's bytes: {:?}", br.text());
    assert_eq!(br.header("content-type"), Some("text/css; charset=utf-8"), "the original's type");
    assert!(br.header("etag").is_some_and(|t| t.ends_with("-br\"")), "{:?}", br.headers);
    let gz = get(&server, "/style.css", &gzip_ae());
    assert_coded(&gz, Some("gzip"), true, "the .gz file");
    assert!(gz.body == gz_file);
    let gz_tag = gz.header("etag").expect("ETag").to_string();
    assert_eq!(get(&server, "/style.css", &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_tag)]).status, 304);

    // A precompressed file honours ranges: they are ranges of its bytes.
    let r = get(&server, "/style.css", &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-13")]);
    assert_eq!((r.status, r.header("content-encoding")), (206, Some("gzip")), "{:?}", r.headers);
    assert_eq!(r.header("content-range"), Some(format!("bytes 0-13/{}", gz_file.len()).as_str()));
    assert!(r.body == gz_file[..14]);

    let r = get(&server, "/linked.css", &gzip_ae());
    assert!(r.body == gz_file, "a variant symlinked inside the root is used");
    let r = get(&server, "/out.css", &gzip_ae());
    assert_coded(&r, Some("gzip"), true, "a variant symlinked out of the root: compressed on the fly instead");
    assert!(r.body != b"outside the root", "nothing from outside the root");

    let r = get(&server, "/stale.css", &gzip_ae());
    assert_coded(&r, Some("gzip"), true, "a stale .gz: compressed on the fly instead");
    let Some(decoded) = gunzip(&r.body) else { skip!(Reason::Missing("python3".into())) };
    assert!(decoded == css, "from the current file, not the stale variant");

    let r = get(&server, "/fly/style.css", &[("Accept-Encoding", "br")]);
    assert_coded(&r, Some("br"), true, "precompressed = false");
    assert!(r.body != br_file, "the .br file is not used");
    let url = format!("http://{}/fly/style.css", server.addr());
    assert!(http::curl(&["--compressed", "-H", "Accept-Encoding: br", &url]).body == css, "made here, decoded by curl");

    let r = get(&server, "/off/style.css", &[("Accept-Encoding", "gzip, br")]);
    assert_coded(&r, None, false, "compress = false, precompressed = false: nothing varies");
    assert!(r.body == css);
}
