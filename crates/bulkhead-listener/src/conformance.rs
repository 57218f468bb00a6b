//! HTTP/1.1 message rules hyper leaves to the server (RFC 9110, RFC 9112), checked on every
//! request head before routing, and the HTTPERR reason for each head hyper itself refuses.
//!
//! hyper refuses what it cannot parse (obs-fold, NUL, CR or LF in a field value, a bad method,
//! target or version, differing `Content-Length`s, a transfer coding list that does not end in
//! `chunked`, `Transfer-Encoding` in HTTP/1.0, bad chunk sizes and extensions) and answers 400
//! itself; [`parse_error_reason`] names the HTTPERR reason of each. What hyper accepts but a
//! server must refuse, [`check`] refuses, with 400 and the connection closed (a message whose
//! framing two parsers could read differently must not leave anything behind it on the
//! connection: request smuggling):
//!
//! - HTTP/1.1 without `Host`, more than one `Host`, or a `Host` that is not `uri-host [":"
//!   port]` (RFC 9112 §3.2): reason `Hostname`;
//! - `Transfer-Encoding` with `Content-Length` (RFC 9112 §6.1: "ought to be handled as an
//!   error"), more than one `Transfer-Encoding` field, or any coding but a lone `chunked` —
//!   Bulkhead decodes no other request coding, as nginx (RFC 9112 §6.1 says 501 for an unknown
//!   one; nginx and HTTP.sys answer 400, so does Bulkhead): reason `Header`.
//!
//! HTTP/2 requests are not checked here: the h2 crate refuses connection-specific fields and
//! `:authority` is parsed as a URI authority.
//!
//! Written by hand because no crate checks a request head against these rules without also
//! parsing it; each check is a scan of a few header values, with no allocation. Layering: a leaf,
//! used by [`crate::request`] and [`crate::conn`].

use http::header::{self, HeaderMap};
use http::{Request, Version};

/// Why a request head is refused: its HTTPERR reason (the answer is always 400 with the
/// connection closed).
pub fn check<B>(req: &Request<B>) -> Option<&'static str> {
    if req.version() == Version::HTTP_2 || req.version() == Version::HTTP_3 {
        return None;
    }
    let headers = req.headers();
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() >= Version::HTTP_11 => return Some("Hostname"),
        (Some(_), Some(_)) => return Some("Hostname"),
        (Some(host), None) if !valid_host(host.as_bytes()) => return Some("Hostname"),
        _ => {}
    }
    framing(headers)
}

/// The `Transfer-Encoding` rules of the module doc; `None` when the framing is unambiguous.
fn framing(headers: &HeaderMap) -> Option<&'static str> {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let first = codings.next()?;
    if codings.next().is_some() || headers.contains_key(header::CONTENT_LENGTH) {
        return Some("Header");
    }
    let coding = first.as_bytes().trim_ascii();
    (!coding.eq_ignore_ascii_case(b"chunked")).then_some("Header")
}

/// Whether `value` is `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP-literal in
/// brackets, or a reg-name (unreserved, percent-encoded and sub-delims bytes; an IPv4 address is
/// one), then an optional port of digits. Empty is allowed (RFC 9112 §3.2: a target without an
/// authority may be sent with an empty `Host`).
pub fn valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else { return false };
        let literal = &rest[..end];
        if literal.is_empty() || !literal.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return false;
        }
        match &rest[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&[][..], port),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &[][..]),
        }
    };
    host.iter().all(|&b| reg_name_byte(b)) && port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

/// unreserved / pct-encoded / sub-delims (RFC 3986), byte by byte (`%` is let through; the
/// digits after it are reg-name bytes anyway).
fn reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

/// The HTTPERR reason for a request head hyper refused. hyper's parse errors have no public
/// kind beyond `is_parse*`, so this reads its message (a unit test pins each one, so a hyper
/// upgrade that rewords one fails the build's tests instead of renaming a reason).
pub fn parse_error_reason(e: &hyper::Error) -> &'static str {
    if e.is_parse_too_large() {
        return "RequestLength";
    }
    reason_of_message(&e.to_string())
}

fn reason_of_message(text: &str) -> &'static str {
    if text.contains("method") {
        "Verb"
    } else if text.contains("version") {
        "Version_N/S"
    } else if text.contains("URI too long") {
        "URL_Length"
    } else if text.contains("URI") {
        "URL"
    } else if text.contains("header") || text.contains("content-length") || text.contains("transfer-encoding") {
        "Header"
    } else {
        "BadRequest"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/").version(version);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn host_rules() {
        let ok = |h: &[(&str, &str)]| check(&request(Version::HTTP_11, h));
        assert_eq!(ok(&[("host", "shop.example")]), None);
        assert_eq!(ok(&[]), Some("Hostname"), "HTTP/1.1 needs a Host");
        assert_eq!(check(&request(Version::HTTP_10, &[])), None, "HTTP/1.0 may omit it");
        assert_eq!(ok(&[("host", "a.example"), ("host", "a.example")]), Some("Hostname"));
        for good in ["a.example:8080", "127.0.0.1", "[::1]", "[::1]:443", "", "xn--bcher-kva.example", "a_b.example"] {
            assert!(valid_host(good.as_bytes()), "{good}");
        }
        for bad in ["a b", "a/b", "a@b", "a:b", "a:123456", "[::1", "[::1]x", "[]", "a.example:80:80", "a\\b", "a?b"] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn framing_rules() {
        let t = |h: &[(&str, &str)]| check(&request(Version::HTTP_11, &[&[("host", "h")], h].concat()));
        assert_eq!(t(&[("transfer-encoding", "chunked")]), None);
        assert_eq!(t(&[("transfer-encoding", " Chunked ")]), None);
        assert_eq!(t(&[("content-length", "5")]), None);
        assert_eq!(t(&[("transfer-encoding", "chunked"), ("content-length", "5")]), Some("Header"));
        assert_eq!(t(&[("transfer-encoding", "gzip, chunked")]), Some("Header"));
        assert_eq!(t(&[("transfer-encoding", "gzip"), ("transfer-encoding", "chunked")]), Some("Header"));
        assert_eq!(t(&[("transfer-encoding", "identity")]), Some("Header"));
    }

    /// The reason hyper's own refusal of `head` gets: hyper serves it on an in-memory stream.
    fn reason_for(head: &str) -> &'static str {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            tokio::io::AsyncWriteExt::write_all(&mut client, head.as_bytes()).await.expect("write");
            let service = hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(server), service)
                .await;
            let e = served.expect_err("hyper refuses the head");
            assert!(e.is_parse(), "{head:?}: {e}");
            parse_error_reason(&e)
        })
    }

    #[test]
    fn each_head_hyper_refuses_gets_its_reason() {
        assert_eq!(reason_for("G\\ET / HTTP/1.1\r\nHost: h\r\n\r\n"), "Verb");
        assert_eq!(reason_for("GET / HTTP/1.7\r\nHost: h\r\n\r\n"), "Version_N/S");
        assert_eq!(reason_for("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n"), "URL");
        assert_eq!(reason_for("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), "Header", "obs-fold");
        assert_eq!(reason_for("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"), "Header", "NUL");
        assert_eq!(reason_for("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"), "Header", "bare CR");
        let lengths = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(reason_for(lengths), "Header");
        let te = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert_eq!(reason_for(te), "Header");
        let te10 = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(reason_for(te10), "Header");
        assert_eq!(reason_of_message("something else"), "BadRequest");
    }
}
