//! A CGI program's environment (RFC 3875 4.1), made from the request and its route's facts.
//!
//! Clean: nothing is inherited from the host's own environment but `PATH` (so neither
//! `BULKHEAD_*`, `LISTEN_*` nor the pool's `env` reach the program). Set: `GATEWAY_INTERFACE`
//! (`CGI/1.1`), `SERVER_SOFTWARE`, `SERVER_PROTOCOL`, `SERVER_NAME` (the `Host` without its port,
//! else the local address), `SERVER_ADDR`, `SERVER_PORT`, `REQUEST_METHOD`, `REQUEST_URI`,
//! `REQUEST_SCHEME`, `QUERY_STRING` (always, maybe empty), `SCRIPT_NAME`, `SCRIPT_FILENAME`,
//! `DOCUMENT_ROOT`, `PATH_INFO` and `PATH_TRANSLATED` (the root + `PATH_INFO`) when there is a
//! path after the program, `CONTENT_TYPE` and `CONTENT_LENGTH` when the request has them,
//! `REMOTE_ADDR`, `REMOTE_PORT`, `HTTPS=on` over TLS, and `HTTP_*` for each request header
//! (values of a repeated one joined with `, `, `; ` for `Cookie`) — the same variables the
//! listener's FastCGI transport sends PHP, less `REDIRECT_STATUS`. Never `HTTP_PROXY` (httpoxy),
//! `HTTP_CONTENT_TYPE`/`HTTP_CONTENT_LENGTH`, the listener's `x-bulkhead-*` facts, nor a header
//! whose name has a character other than letters, digits and `-` (`X_Forwarded_For` would become
//! the same variable as `X-Forwarded-For`; Apache drops them too). A leaf: pure, no I/O.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use bulkhead_proto::host;
use http::header::{self, HeaderMap};
use http::request::Parts;
use http::Version;

use crate::facts::RouteFacts;

/// The environment of one program run, as `(name, value)` pairs.
pub fn build(parts: &Parts, facts: &RouteFacts, path: &OsString) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::with_capacity(40);
    let mut set = |name: &str, value: &[u8]| env.push((OsString::from(name), OsString::from_vec(value.to_vec())));
    set("PATH", path.as_bytes());
    set("GATEWAY_INTERFACE", b"CGI/1.1");
    set("SERVER_SOFTWARE", concat!("bulkhead/", env!("CARGO_PKG_VERSION")).as_bytes());
    let protocol: &[u8] = match parts.version {
        Version::HTTP_10 => b"HTTP/1.0",
        _ => b"HTTP/1.1",
    };
    set("SERVER_PROTOCOL", protocol);
    set("REQUEST_METHOD", parts.method.as_str().as_bytes());
    let uri = &parts.uri;
    set("REQUEST_URI", uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()).as_bytes());
    set("QUERY_STRING", uri.query().unwrap_or("").as_bytes());
    if let Some(p) = &facts.program {
        set("SCRIPT_NAME", &p.name);
        set("SCRIPT_FILENAME", p.filename.as_os_str().as_bytes());
        set("DOCUMENT_ROOT", p.document_root.as_os_str().as_bytes());
        if !p.path_info.is_empty() {
            set("PATH_INFO", &p.path_info);
            set("PATH_TRANSLATED", &[p.document_root.as_os_str().as_bytes(), &p.path_info].concat());
        }
    }
    for (name, h) in [("CONTENT_TYPE", header::CONTENT_TYPE), ("CONTENT_LENGTH", header::CONTENT_LENGTH)] {
        if let Some(v) = parts.headers.get(h) {
            set(name, v.as_bytes());
        }
    }
    set("REMOTE_ADDR", facts.remote.0.as_bytes());
    set("REMOTE_PORT", facts.remote.1.as_bytes());
    set("SERVER_ADDR", facts.local.0.as_bytes());
    set("SERVER_PORT", facts.local.1.as_bytes());
    match parts.headers.get(header::HOST) {
        Some(h) => set("SERVER_NAME", server_name(h.as_bytes())),
        None => set("SERVER_NAME", facts.local.0.as_bytes()),
    }
    // The listener always sets X-Forwarded-Proto (a client's own is replaced).
    let https = parts.headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes() == b"https");
    set("REQUEST_SCHEME", if https { b"https" } else { b"http" });
    if https {
        set("HTTPS", b"on");
    }
    http_variables(&mut env, &parts.headers);
    env
}

/// A `Host` value without its port (`[::1]:80` → `[::1]`).
pub fn server_name(host: &[u8]) -> &[u8] {
    match host.iter().rposition(|b| *b == b':') {
        Some(i) if !host[i..].contains(&b']') => &host[..i],
        _ => host,
    }
}

/// `HTTP_*` for the request's headers (see the module's doc for which).
fn http_variables(env: &mut Vec<(OsString, OsString)>, headers: &HeaderMap) {
    for key in headers.keys() {
        let n = key.as_str();
        if key == header::CONTENT_TYPE
            || key == header::CONTENT_LENGTH
            || n == "proxy"
            || host::is_host_header(n)
            || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            continue;
        }
        let name: String =
            "HTTP_".chars().chain(n.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() })).collect();
        let sep: &[u8] = if key == header::COOKIE { b"; " } else { b", " };
        let mut value = Vec::new();
        for (i, v) in headers.get_all(key).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(sep);
            }
            value.extend_from_slice(v.as_bytes());
        }
        env.push((OsString::from(name), OsString::from_vec(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Execute, Program};
    use std::path::PathBuf;
    use std::time::Duration;

    fn var<'a>(env: &'a [(OsString, OsString)], name: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.to_str())
    }

    #[test]
    fn variables_from_the_request_and_the_route() {
        let req = http::Request::post("/cgi-bin/env.sh/a/b?x=1&y=2")
            .header("host", "shop.example:8080")
            .header("content-type", "text/plain")
            .header("content-length", "5")
            .header("proxy", "http://evil/")
            .header("x-bulkhead-execute", "cgi")
            .header("x-forwarded-proto", "https")
            .header("x_underscore", "no")
            .header("accept", "a")
            .header("accept", "b")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let facts = RouteFacts {
            execute: Execute::Cgi,
            program: Some(Program {
                filename: PathBuf::from("/srv/cgi/env.sh"),
                name: b"/cgi-bin/env.sh".to_vec(),
                path_info: b"/a/b".to_vec(),
                document_root: PathBuf::from("/srv/cgi"),
            }),
            timeout: Duration::from_secs(1),
            remote: ("192.0.2.7".into(), "50000".into()),
            local: ("127.0.0.1".into(), "8080".into()),
            library: None,
            filters: Vec::new(),
        };
        let env = build(&parts, &facts, &OsString::from("/usr/bin:/bin"));
        for (name, value) in [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", "POST"),
            ("QUERY_STRING", "x=1&y=2"),
            ("SCRIPT_NAME", "/cgi-bin/env.sh"),
            ("SCRIPT_FILENAME", "/srv/cgi/env.sh"),
            ("PATH_INFO", "/a/b"),
            ("PATH_TRANSLATED", "/srv/cgi/a/b"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "5"),
            ("REMOTE_ADDR", "192.0.2.7"),
            ("REMOTE_PORT", "50000"),
            ("SERVER_NAME", "shop.example"),
            ("SERVER_PORT", "8080"),
            ("HTTPS", "on"),
            ("HTTP_ACCEPT", "a, b"),
            ("PATH", "/usr/bin:/bin"),
        ] {
            assert_eq!(var(&env, name), Some(value), "{name}");
        }
        for absent in ["HTTP_PROXY", "HTTP_CONTENT_TYPE", "HTTP_X_BULKHEAD_EXECUTE", "HTTP_X_UNDERSCORE"] {
            assert_eq!(var(&env, absent), None, "{absent}");
        }
        assert_eq!(server_name(b"[::1]:80"), b"[::1]");
        assert_eq!(server_name(b"[::1]"), b"[::1]");
    }
}
