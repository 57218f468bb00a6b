//! Header rewriting between client and worker (DESIGN §2.6).
//!
//! Towards the worker: hop-by-hop headers are removed (`Connection`, `Keep-Alive`,
//! `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, and every header named in
//! `Connection`), so are the `x-bulkhead-*` headers only the listener sets for the built-in host,
//! `Expect` is dropped (the listener answers `100-continue` itself), and
//! `X-Forwarded-For` (appended), `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Request-Id` are
//! set. A client's own `X-Request-Id` is kept when it is short, visible ASCII; otherwise one is
//! generated from the listener's start time and a counter. An HTTP/2 request is made an
//! HTTP/1.1 one for the worker ([`http2_to_http1`]): `:authority` becomes `Host`, the target
//! origin-form, split `Cookie` fields one line. Towards the client: hop-by-hop headers are
//! removed from the worker's response. Pure functions on header maps; no I/O.
//! A leaf of the crate's layering (imports nothing of the listener); used by [`crate::request`]
//! and [`crate::conn`].

use std::net::IpAddr;

use bulkhead_proto::host;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Uri, Version};

/// Longest client-supplied `X-Request-Id` kept.
const MAX_REQUEST_ID: usize = 128;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in
        [&header::TE, &header::TRAILER, &header::TRANSFER_ENCODING, &header::UPGRADE, &KEEP_ALIVE, &PROXY_CONNECTION]
    {
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
}

/// Where the request came from, for the `X-Forwarded-*` headers.
pub struct Forwarded<'a> {
    /// The client's address as a header value, made once per connection ([`client_ip_value`]).
    pub client_ip: &'a HeaderValue,
    /// `http` or `https`: the scheme of the binding the request arrived on.
    pub proto: &'static str,
    /// A generator for request ids, used when the client sent none (or an unusable one).
    pub request_id: &'a dyn Fn() -> HeaderValue,
}

/// A client address as `X-Forwarded-For` writes it (IPv4-mapped IPv6 as plain IPv4).
pub fn client_ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_canonical().to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Removes every header only the listener may set ([`bulkhead_proto::host`]'s `x-bulkhead-*`,
/// the facts of an `execute` route): a client never names the program the host runs.
pub fn strip_host_headers(headers: &mut HeaderMap) {
    if headers.keys().any(|n| host::is_host_header(n.as_str())) {
        let names: Vec<HeaderName> = headers.keys().filter(|n| host::is_host_header(n.as_str())).cloned().collect();
        for name in names {
            headers.remove(name);
        }
    }
}

/// Rewrites a client's request headers for a worker.
pub fn to_worker(headers: &mut HeaderMap, fwd: &Forwarded<'_>) {
    strip_hop_by_hop(headers);
    strip_host_headers(headers);
    headers.remove(header::EXPECT);
    if headers.contains_key(&X_FORWARDED_FOR) {
        let mut xff = String::new();
        for v in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(v) = v.to_str() {
                if !xff.is_empty() {
                    xff.push_str(", ");
                }
                xff.push_str(v.trim());
            }
        }
        if !xff.is_empty() {
            xff.push_str(", ");
        }
        xff.push_str(fwd.client_ip.to_str().unwrap_or(""));
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
    } else {
        // The common case: no proxy in front; the per-connection value, no formatting.
        headers.insert(X_FORWARDED_FOR.clone(), fwd.client_ip.clone());
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(fwd.proto));
    match headers.get(header::HOST).cloned() {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
    let keep = headers.get(&X_REQUEST_ID).is_some_and(|v| {
        !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    });
    if !keep || headers.get_all(&X_REQUEST_ID).iter().count() > 1 {
        headers.insert(X_REQUEST_ID.clone(), (fwd.request_id)());
    }
}

/// Makes an HTTP/2 request's head one a worker speaking HTTP/1.1 (or the native protocol, which
/// carries HTTP/1.1's fields) understands (RFC 9113 §8.3.1, §8.2.3): `Host` from `:authority`
/// when the client sent none, the target in origin-form (`/path?query`, not
/// `http://host/path`), and the `Cookie` fields HTTP/2 lets a client split joined with `; `.
/// The version becomes HTTP/1.1.
pub fn http2_to_http1(parts: &mut Parts) {
    parts.version = Version::HTTP_11;
    if let Some(authority) = parts.uri.authority() {
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, host);
            }
        }
    }
    if let Some(pq) = parts.uri.path_and_query() {
        if parts.uri.scheme().is_some() {
            parts.uri = Uri::from(pq.clone());
        }
    }
    let mut cookies = parts.headers.get_all(header::COOKIE).iter();
    if let (Some(first), Some(_)) = (cookies.next(), cookies.next()) {
        let mut joined = first.as_bytes().to_vec();
        for c in parts.headers.get_all(header::COOKIE).iter().skip(1) {
            joined.extend_from_slice(b"; ");
            joined.extend_from_slice(c.as_bytes());
        }
        if let Ok(v) = HeaderValue::from_bytes(&joined) {
            parts.headers.insert(header::COOKIE, v);
        }
    }
}

/// Rewrites a worker's response headers for the client.
pub fn to_client(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    static CLIENT: HeaderValue = HeaderValue::from_static("10.1.2.3");

    fn forwarded(f: &dyn Fn() -> HeaderValue) -> Forwarded<'_> {
        Forwarded { client_ip: &CLIENT, proto: "http", request_id: f }
    }

    #[test]
    fn hop_by_hop_removed_both_ways() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("proxy-connection", HeaderValue::from_static("close"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        to_client(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn forwarded_headers_added() {
        let id = || HeaderValue::from_static("gen-1");
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("shop.example:8080"));
        h.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        to_worker(&mut h, &forwarded(&id));
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example:8080");
        assert_eq!(h["x-request-id"], "gen-1");
        assert!(!h.contains_key(header::EXPECT));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let id = || HeaderValue::from_static("gen-1");
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2, 3.3.3.3"));
        h.insert("x-request-id", HeaderValue::from_static("client-id-42"));
        to_worker(&mut h, &forwarded(&id));
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3");
        assert_eq!(h["x-request-id"], "client-id-42");
    }

    #[test]
    fn bad_request_id_replaced() {
        let id = || HeaderValue::from_static("gen-2");
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        to_worker(&mut h, &forwarded(&id));
        assert_eq!(h["x-request-id"], "gen-2");
        let long = "a".repeat(200);
        h.insert("x-request-id", HeaderValue::from_str(&long).unwrap());
        to_worker(&mut h, &forwarded(&id));
        assert_eq!(h["x-request-id"], "gen-2");
    }

    #[test]
    fn http2_request_becomes_http1() {
        let req = http::Request::get("http://shop.example:8080/a/b?x=1")
            .version(Version::HTTP_2)
            .header(header::COOKIE, "a=1")
            .header(header::COOKIE, "b=2")
            .body(())
            .unwrap();
        let (mut parts, ()) = req.into_parts();
        http2_to_http1(&mut parts);
        assert_eq!(parts.version, Version::HTTP_11);
        assert_eq!(parts.uri, "/a/b?x=1");
        assert_eq!(parts.headers[header::HOST], "shop.example:8080");
        assert_eq!(parts.headers.get_all(header::COOKIE).iter().collect::<Vec<_>>(), ["a=1; b=2"]);
        // A Host the client sent itself is kept; an origin-form target is left alone.
        let req = http::Request::get("/p").version(Version::HTTP_2).header(header::HOST, "h.example").body(()).unwrap();
        let (mut parts, ()) = req.into_parts();
        http2_to_http1(&mut parts);
        assert_eq!(parts.uri, "/p");
        assert_eq!(parts.headers[header::HOST], "h.example");
    }

    #[test]
    fn ipv4_mapped_client_is_written_as_ipv4() {
        let id = || HeaderValue::from_static("g");
        let mut h = HeaderMap::new();
        let ip = client_ip_value("::ffff:127.0.0.1".parse().unwrap());
        let f = Forwarded { client_ip: &ip, proto: "https", request_id: &id };
        to_worker(&mut h, &f);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
