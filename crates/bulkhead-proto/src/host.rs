//! What the listener tells the built-in host (`kind = "host"`, `bulkhead worker`) about a
//! request, besides the request itself: the route's facts, in request headers.
//!
//! The listener resolves an `execute` route's program under the route's `root` (it owns path
//! checks: traversal, hidden segments, symlinks leaving the root) and sends the host what CGI/1.1
//! needs and a worker cannot learn from an HTTP request: the program's file, `SCRIPT_NAME`,
//! `PATH_INFO`, the route's root, the execute kind, the time limit, and the connection's
//! addresses; for an extension, its library and filters (the host loads what the route names). Headers rather than a new frame of the native protocol: the native codec stays
//! the one `docs/protocol.md` specifies, and a host request is still an ordinary HTTP request.
//!
//! Every name starts with [`PREFIX`] (`x-bulkhead-`). The listener removes every header with that
//! prefix from every client request before it adds its own ([`is_host_header`]), so a client can
//! never set them — on any route, to any pool. Paths are sent percent-encoded ([`encode`]): a file
//! name may hold bytes no header value can carry (a decoded `%0A` in the URL becomes a newline
//! in `PATH_INFO`), and [`decode`] gives back the exact bytes.
//!
//! Used by `bulkhead-listener` (writes) and `bulkhead-host` (reads). No policy here.

/// The prefix of every header of this module; stripped from client requests.
pub const PREFIX: &str = "x-bulkhead-";

/// The execute kind of the route: [`EXECUTE_CGI`] or [`EXECUTE_EXTENSION`].
pub const EXECUTE: &str = "x-bulkhead-execute";
/// The program's file, absolute, symlinks resolved (CGI's `SCRIPT_FILENAME`); percent-encoded.
pub const SCRIPT_FILENAME: &str = "x-bulkhead-script-filename";
/// The URL path naming the program (`SCRIPT_NAME`), decoded then percent-encoded.
pub const SCRIPT_NAME: &str = "x-bulkhead-script-name";
/// The decoded URL path after the program (`PATH_INFO`), empty or starting with `/`;
/// percent-encoded. Absent when empty.
pub const PATH_INFO: &str = "x-bulkhead-path-info";
/// The route's `root`, symlinks resolved (`DOCUMENT_ROOT`); percent-encoded.
pub const DOCUMENT_ROOT: &str = "x-bulkhead-document-root";
/// The program's time limit in whole milliseconds (the route's `cgi_timeout`).
pub const TIMEOUT_MS: &str = "x-bulkhead-timeout-ms";
/// `execute = "extension"`: the route's `library`, absolute; percent-encoded.
pub const LIBRARY: &str = "x-bulkhead-library";
/// `execute = "extension"`: one of the route's `filters`, absolute; percent-encoded. One header
/// per filter, in the route's order (the order their hooks run); absent when there are none.
pub const FILTER: &str = "x-bulkhead-filter";
/// The client's address and port (`REMOTE_ADDR`, `REMOTE_PORT`): `IP PORT`.
pub const REMOTE: &str = "x-bulkhead-remote";
/// The address and port the client connected to (`SERVER_ADDR`, `SERVER_PORT`): `IP PORT`.
pub const LOCAL: &str = "x-bulkhead-local";

/// The value of [`EXECUTE`] for `execute = "cgi"` routes.
pub const EXECUTE_CGI: &str = "cgi";
/// The value of [`EXECUTE`] for `execute = "extension"` routes.
pub const EXECUTE_EXTENSION: &str = "extension";

/// Every header of this module.
pub const ALL: [&str; 10] =
    [EXECUTE, SCRIPT_FILENAME, SCRIPT_NAME, PATH_INFO, DOCUMENT_ROOT, TIMEOUT_MS, LIBRARY, FILTER, REMOTE, LOCAL];

/// A header name (lowercase, as `http` keeps them) that only the listener may set.
pub fn is_host_header(name: &str) -> bool {
    name.len() >= PREFIX.len() && name.as_bytes()[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
}

/// `bytes` with every byte outside visible ASCII, and `%` itself, written `%XX`: always a valid
/// header value.
pub fn encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

/// The bytes [`encode`] wrote; `None` for a malformed `%` escape.
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            let hi = hex(*text.get(i + 1)?)?;
            let lo = hex(*text.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_any_bytes_as_a_header_value() {
        let all: Vec<u8> = (0..=255).collect();
        let text = encode(&all);
        assert!(text.bytes().all(|b| b.is_ascii_graphic()), "{text}");
        assert_eq!(decode(text.as_bytes()).as_deref(), Some(&all[..]));
        assert_eq!(encode(b"/cgi-bin/a b%.sh"), "/cgi-bin/a%20b%25.sh");
        assert_eq!(decode(b"%4"), None);
        assert_eq!(decode(b"%zz"), None);
    }

    #[test]
    fn the_prefix_is_matched_without_case() {
        assert!(ALL.iter().all(|h| is_host_header(h)));
        assert!(is_host_header("X-Bulkhead-Script-Filename"));
        assert!(!is_host_header("x-bulkhead"));
        assert!(!is_host_header("x-forwarded-for"));
    }
}
