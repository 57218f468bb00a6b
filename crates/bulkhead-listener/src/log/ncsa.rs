//! NCSA combined log format, as Apache's `combined` writes it:
//! `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`, no header lines, one line per
//! request. `%t` is when the response finished, in UTC (`+0000`). One field follows, as nginx's
//! `$upstream_cache_status` often does: `HIT` for an answer from the response cache, else `-`.
//!
//! Called only by the writer thread in [`crate::log`]; pure formatting, no I/O.

use std::fmt::Write as _;

use http::Version;
use time::OffsetDateTime;

use super::AccessRecord;

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// NCSA files have no directives.
pub fn header(_: OffsetDateTime) -> String {
    String::new()
}

/// Appends one line (with its newline).
pub fn write_line(r: &AccessRecord, out: &mut String) {
    let t = OffsetDateTime::from(r.when);
    let _ = write!(
        out,
        "{} - - [{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000] \"",
        r.client.ip().to_canonical(),
        t.day(),
        MONTHS[t.month() as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    );
    push_quoted(out, r.method.as_str().as_bytes());
    out.push(' ');
    push_quoted(out, r.uri.path_and_query().map_or(r.uri.path(), |pq| pq.as_str()).as_bytes());
    out.push(' ');
    out.push_str(version_name(r.version));
    let _ = write!(out, "\" {} ", r.status);
    if r.sc_bytes == 0 {
        out.push('-');
    } else {
        let _ = write!(out, "{}", r.sc_bytes);
    }
    out.push_str(" \"");
    push_header(out, r.referer.as_ref().map(|v| v.as_bytes()));
    out.push_str("\" \"");
    push_header(out, r.user_agent.as_ref().map(|v| v.as_bytes()));
    out.push_str(if r.cache_hit { "\" HIT\n" } else { "\" -\n" });
}

/// The protocol as Apache writes it in `%r` (`HTTP/2.0`, not IIS's `HTTP/2`), so that
/// parsers written for Apache logs take it.
fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/3.0",
    }
}

/// A header inside quotes: `-` when absent.
fn push_header(out: &mut String, value: Option<&[u8]>) {
    match value {
        Some(v) if !v.is_empty() => push_quoted(out, v),
        _ => out.push('-'),
    }
}

/// Escapes as Apache's `ap_escape_logitem`: `"` and `\` get a backslash, control characters
/// and every byte outside printable ASCII become `\xhh` (`\n`, `\r`, `\t` by name), so a value
/// can neither end its quotes nor split the line.
fn push_quoted(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    fn record() -> AccessRecord {
        AccessRecord {
            site: Arc::from("shop"),
            when: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            server: "127.0.0.1:8080".parse().unwrap(),
            client: "[::ffff:10.0.0.9]:50000".parse().unwrap(),
            method: Method::GET,
            uri: "/a/b?c=1&d=2".parse().unwrap(),
            version: Version::HTTP_11,
            user_agent: Some(HeaderValue::from_static("curl/8.0 (x86_64 linux)")),
            referer: None,
            status: 200,
            substatus: 0,
            win32_status: 0,
            time_taken: Duration::from_millis(4),
            sc_bytes: 1234,
            cs_bytes: 80,
            cache_hit: false,
        }
    }

    #[test]
    fn line_matches_apache_combined() {
        let mut s = String::new();
        write_line(&record(), &mut s);
        assert_eq!(
            s,
            "10.0.0.9 - - [14/Nov/2023:22:13:20 +0000] \"GET /a/b?c=1&d=2 HTTP/1.1\" 200 1234 \"-\" \"curl/8.0 (x86_64 linux)\" -\n"
        );
    }

    #[test]
    fn quotes_and_control_characters_are_escaped_and_empty_bodies_are_a_dash() {
        let mut r = record();
        r.version = Version::HTTP_2;
        r.sc_bytes = 0;
        r.status = 304;
        r.user_agent = Some(HeaderValue::from_bytes(b"a \"quoted\" \\ agent\t\xff").unwrap());
        r.referer = Some(HeaderValue::from_static("http://x.example/\"p\""));
        let mut s = String::new();
        write_line(&r, &mut s);
        assert_eq!(
            s,
            "10.0.0.9 - - [14/Nov/2023:22:13:20 +0000] \"GET /a/b?c=1&d=2 HTTP/2.0\" 304 - \
             \"http://x.example/\\\"p\\\"\" \"a \\\"quoted\\\" \\\\ agent\\t\\xff\" -\n"
        );
        assert_eq!(s.matches('\n').count(), 1);
        s.clear();
        push_quoted(&mut s, b"\x00\x1b\x7f\r\n");
        assert_eq!(s, "\\x00\\x1b\\x7f\\r\\n");
    }
}
