//! The HTTPERR log in IIS's format: one line per request or connection the listener refused
//! before any worker saw it (limits, timeouts, queue full, pool offline, no site), with the
//! reason word an IIS operator knows (`QueueFull`, `Timer_ConnectionIdle`, `ConnLimit`, ...).
//!
//! Called only by the writer thread in [`crate::log`]; pure formatting, no I/O.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::{push_date_time, push_field, version_name, HttpErrRecord};

/// The `#Fields:` directive, as IIS's HTTPERR log.
pub const FIELDS: &str =
    "date time c-ip c-port s-ip s-port cs-version cs-method cs-uri streamid sc-status s-siteid s-reason s-queuename";

/// `httperr_YYMMDD` (UTC; the file is `httperr_YYMMDD.log`).
pub fn period(t: OffsetDateTime) -> String {
    format!("httperr_{:02}{:02}{:02}", t.year().rem_euclid(100), t.month() as u8, t.day())
}

/// The directives written at the top of a file.
pub fn header(t: OffsetDateTime) -> String {
    let mut s = format!("#Software: Bulkhead {}\n#Version: 1.0\n#Date: ", env!("CARGO_PKG_VERSION"));
    push_date_time(&mut s, t);
    let _ = write!(s, "\n#Fields: {FIELDS}\n");
    s
}

/// Appends one line (with its newline).
pub fn write_line(r: &HttpErrRecord, out: &mut String) {
    push_date_time(out, OffsetDateTime::from(r.when));
    let _ = write!(
        out,
        " {} {} {} {} ",
        r.client.ip().to_canonical(),
        r.client.port(),
        r.server.ip().to_canonical(),
        r.server.port()
    );
    out.push_str(r.version.map_or("-", version_name));
    out.push(' ');
    push_field(out, r.method.as_ref().map_or(&b""[..], |m| m.as_str().as_bytes()));
    out.push(' ');
    match &r.uri {
        Some(uri) => push_field(out, uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()).as_bytes()),
        None => out.push('-'),
    }
    out.push_str(" - ");
    match r.status {
        Some(s) => {
            let _ = write!(out, "{s}");
        }
        None => out.push('-'),
    }
    out.push(' ');
    match r.site_id {
        Some(id) => {
            let _ = write!(out, "{id}");
        }
        None => out.push('-'),
    }
    let _ = write!(out, " {} ", r.reason);
    push_field(out, r.queue.as_deref().unwrap_or("").as_bytes());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Version};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    #[test]
    fn queue_full_line() {
        let r = HttpErrRecord {
            when: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            client: "127.0.0.1:50000".parse().unwrap(),
            server: "127.0.0.1:8080".parse().unwrap(),
            version: Some(Version::HTTP_11),
            method: Some(Method::GET),
            uri: Some("/api/x?y=1".parse().unwrap()),
            status: Some(503),
            site_id: Some(2),
            reason: "QueueFull",
            queue: Some(Arc::from("api")),
        };
        let mut s = String::new();
        write_line(&r, &mut s);
        assert_eq!(
            s,
            "2023-11-14 22:13:20 127.0.0.1 50000 127.0.0.1 8080 HTTP/1.1 GET /api/x?y=1 - 503 2 QueueFull api\n"
        );
    }

    #[test]
    fn connection_level_line() {
        let r = HttpErrRecord {
            when: SystemTime::UNIX_EPOCH,
            client: "127.0.0.1:1".parse().unwrap(),
            server: "127.0.0.1:2".parse().unwrap(),
            version: None,
            method: None,
            uri: None,
            status: None,
            site_id: None,
            reason: "Timer_ConnectionIdle",
            queue: None,
        };
        let mut s = String::new();
        write_line(&r, &mut s);
        assert_eq!(s, "1970-01-01 00:00:00 127.0.0.1 1 127.0.0.1 2 - - - - - - Timer_ConnectionIdle -\n");
        assert!(header(OffsetDateTime::UNIX_EPOCH).contains(FIELDS));
    }
}
