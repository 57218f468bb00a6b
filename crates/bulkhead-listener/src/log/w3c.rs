//! W3C extended log format, as IIS writes it: directives (`#Software`, `#Version`, `#Date`,
//! `#Fields`) at the top of each file, then one space-separated line per request, UTC.
//!
//! Called only by the writer thread in [`crate::log`]; pure formatting, no I/O.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::{push_date_time, push_field, push_ip, push_num, version_name, AccessRecord};

/// The `#Fields:` directive: IIS's default field set, plus `cs-version` (where IIS puts it, after
/// `c-ip`), the byte counts, and `x-cache`: `HIT` for an answer from the response cache, else `-`.
pub const FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs-version \
                          cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken sc-bytes cs-bytes x-cache";

/// The directives written at the top of a file.
pub fn header(t: OffsetDateTime) -> String {
    let mut s = format!("#Software: Bulkhead {}\n#Version: 1.0\n#Date: ", env!("CARGO_PKG_VERSION"));
    push_date_time(&mut s, t);
    let _ = write!(s, "\n#Fields: {FIELDS}\n");
    s
}

/// Appends one line (with its newline).
pub fn write_line(r: &AccessRecord, out: &mut String) {
    push_date_time(out, OffsetDateTime::from(r.when));
    out.push(' ');
    push_ip(out, r.server.ip());
    out.push(' ');
    push_field(out, r.method.as_str().as_bytes());
    out.push(' ');
    push_field(out, r.uri.path().as_bytes());
    out.push(' ');
    push_field(out, r.uri.query().unwrap_or("").as_bytes());
    out.push(' ');
    push_num(out, r.server.port());
    out.push_str(" - ");
    push_ip(out, r.client.ip());
    out.push(' ');
    out.push_str(version_name(r.version));
    out.push(' ');
    push_field(out, r.user_agent.as_ref().map_or(&b""[..], |v| v.as_bytes()));
    out.push(' ');
    push_field(out, r.referer.as_ref().map_or(&b""[..], |v| v.as_bytes()));
    for n in [u64::from(r.status), u64::from(r.substatus), u64::from(r.win32_status)] {
        out.push(' ');
        push_num(out, n);
    }
    out.push(' ');
    push_num(out, r.time_taken.as_millis());
    for n in [r.sc_bytes, r.cs_bytes] {
        out.push(' ');
        push_num(out, n);
    }
    out.push_str(if r.cache_hit { " HIT\n" } else { " -\n" });
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
            method: Method::POST,
            uri: "/api/items".parse().unwrap(),
            version: http::Version::HTTP_2,
            user_agent: Some(HeaderValue::from_static("curl/8.0 (x86_64 linux)")),
            referer: Some(HeaderValue::from_static("http://a.example/p q")),
            status: 503,
            substatus: 0,
            win32_status: 64,
            time_taken: Duration::from_micros(12_900),
            sc_bytes: 120,
            cs_bytes: 4096,
            cache_hit: false,
        }
    }

    #[test]
    fn line_matches_iis() {
        let mut s = String::new();
        write_line(&record(), &mut s);
        assert_eq!(
            s,
            "2023-11-14 22:13:20 127.0.0.1 POST /api/items - 8080 - 10.0.0.9 HTTP/2 curl/8.0+(x86_64+linux) \
             http://a.example/p+q 503 0 64 12 120 4096 -\n"
        );
    }

    #[test]
    fn header_directives() {
        let t = OffsetDateTime::from(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let h = header(t);
        assert!(h.starts_with("#Software: Bulkhead "));
        assert!(h.contains("#Version: 1.0\n#Date: 2023-11-14 22:13:20\n#Fields: date time s-ip cs-method"));
        assert!(h.ends_with("sc-bytes cs-bytes x-cache\n"));
    }
}
