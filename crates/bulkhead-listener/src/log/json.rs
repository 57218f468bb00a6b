//! The JSON access log: one object per line (JSON Lines), no header, with W3C's fields under
//! these names (absent values are `null`):
//!
//! `time` (ISO 8601 UTC, `2023-11-14T22:13:20Z`, when the response finished), `site`, `s_ip`,
//! `s_port`, `c_ip`, `method`, `uri_stem`, `uri_query`, `version`, `user_agent`, `referer`,
//! `status`, `substatus`, `win32_status`, `time_taken_ms`, `sc_bytes`, `cs_bytes`, `cache` (`"HIT"`
//! for an answer from the response cache, else `null`).
//!
//! Strings are escaped by hand (RFC 8259: `"`, `\` and every control character; bytes that are
//! not UTF-8 become U+FFFD), so no field can end its string or split the line.
//!
//! Called only by the writer thread in [`crate::log`]; pure formatting, no I/O.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::{version_name, AccessRecord};

/// JSON files have no directives.
pub fn header(_: OffsetDateTime) -> String {
    String::new()
}

/// Appends one line (with its newline).
pub fn write_line(r: &AccessRecord, out: &mut String) {
    let t = OffsetDateTime::from(r.when);
    let _ = write!(
        out,
        "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z\",\"site\":",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    push_string(out, r.site.as_bytes());
    let _ = write!(
        out,
        ",\"s_ip\":\"{}\",\"s_port\":{},\"c_ip\":\"{}\",\"method\":",
        r.server.ip().to_canonical(),
        r.server.port(),
        r.client.ip().to_canonical()
    );
    push_string(out, r.method.as_str().as_bytes());
    out.push_str(",\"uri_stem\":");
    push_string(out, r.uri.path().as_bytes());
    out.push_str(",\"uri_query\":");
    push_optional(out, r.uri.query().map(str::as_bytes));
    let _ = write!(out, ",\"version\":\"{}\",\"user_agent\":", version_name(r.version));
    push_optional(out, r.user_agent.as_ref().map(|v| v.as_bytes()));
    out.push_str(",\"referer\":");
    push_optional(out, r.referer.as_ref().map(|v| v.as_bytes()));
    let _ = writeln!(
        out,
        ",\"status\":{},\"substatus\":{},\"win32_status\":{},\"time_taken_ms\":{},\"sc_bytes\":{},\"cs_bytes\":{},\"cache\":{}}}",
        r.status,
        r.substatus,
        r.win32_status,
        r.time_taken.as_millis(),
        r.sc_bytes,
        r.cs_bytes,
        if r.cache_hit { "\"HIT\"" } else { "null" }
    );
}

fn push_optional(out: &mut String, value: Option<&[u8]>) {
    match value {
        Some(v) => push_string(out, v),
        None => out.push_str("null"),
    }
}

/// A JSON string, quotes included.
fn push_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        if !chunk.invalid().is_empty() {
            out.push('\u{fffd}');
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method, Version};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    fn record() -> AccessRecord {
        AccessRecord {
            site: Arc::from("shop"),
            when: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            server: "[::1]:8443".parse().unwrap(),
            client: "127.0.0.1:50000".parse().unwrap(),
            method: Method::POST,
            uri: "/api/items?x=1".parse().unwrap(),
            version: Version::HTTP_2,
            user_agent: Some(HeaderValue::from_static("curl/8.0")),
            referer: None,
            status: 201,
            substatus: 0,
            win32_status: 0,
            time_taken: Duration::from_micros(12_900),
            sc_bytes: 120,
            cs_bytes: 4096,
            cache_hit: false,
        }
    }

    #[test]
    fn line_has_every_field() {
        let mut s = String::new();
        write_line(&record(), &mut s);
        assert_eq!(
            s,
            "{\"time\":\"2023-11-14T22:13:20Z\",\"site\":\"shop\",\"s_ip\":\"::1\",\"s_port\":8443,\"c_ip\":\"127.0.0.1\",\
             \"method\":\"POST\",\"uri_stem\":\"/api/items\",\"uri_query\":\"x=1\",\"version\":\"HTTP/2\",\
             \"user_agent\":\"curl/8.0\",\"referer\":null,\"status\":201,\"substatus\":0,\"win32_status\":0,\
             \"time_taken_ms\":12,\"sc_bytes\":120,\"cs_bytes\":4096,\"cache\":null}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["uri_query"], "x=1");
    }

    #[test]
    fn quotes_tabs_and_bad_utf8_in_headers_are_escaped() {
        let mut r = record();
        r.user_agent = Some(HeaderValue::from_bytes(b"a \"q\" \\ \t\xffz").unwrap());
        r.referer = Some(HeaderValue::from_static("http://x/\"}"));
        r.uri = "/p?%22=1".parse().unwrap();
        let mut s = String::new();
        write_line(&r, &mut s);
        assert_eq!(s.matches('\n').count(), 1, "{s}");
        assert!(s.contains("\"user_agent\":\"a \\\"q\\\" \\\\ \\t\u{fffd}z\""), "{s}");
        let v: serde_json::Value = serde_json::from_str(&s).expect("one valid JSON object");
        assert_eq!(v["user_agent"], "a \"q\" \\ \t\u{fffd}z");
        assert_eq!(v["referer"], "http://x/\"}");
        assert_eq!(v["uri_query"], "%22=1");
    }

    #[test]
    fn every_control_character_is_escaped() {
        // Header values cannot hold them (hyper refuses such requests), but a string must never
        // depend on that.
        let all: Vec<u8> = (0u8..0x20).chain([0x7f, b'"', b'\\']).collect();
        let mut s = String::new();
        push_string(&mut s, &all);
        assert!(s.bytes().all(|b| b >= 0x20 && b != 0x7f), "{s:?}");
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back.as_bytes(), &all[..]);
    }
}
