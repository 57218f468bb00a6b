//! A CGI program's header block (RFC 3875 6.2-6.3) → the response head.
//!
//! The block ends at the first empty line (`\n\n` or `\r\n\r\n`); it is parsed with `httparse`'s
//! header parser, as the listener's FastCGI transport parses PHP's. `Status: NNN reason` gives
//! the status; without it, a `Location` makes a **302** — a local path (`Location: /other`) as
//! well as an absolute URL: a local redirect (6.2.2) is sent to the client as a redirect, never
//! re-dispatched inside the server (nginx and the FastCGI transport do the same); else 200. A
//! block with no header line at all, a line that is not `Name: value`, a bad status, or one
//! longer than [`MAX_HEAD`] is malformed: the caller answers 502 and names the program in the
//! log. Pure: bytes in, a head out; fed bytes by the unit tests below.

use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};

/// The longest header block accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Header lines of a CGI response, at most.
const MAX_LINES: usize = 100;

/// Parses the header block at the start of `bytes`: the head and the block's length, `None` if
/// the block is not whole yet.
pub fn parse(bytes: &[u8]) -> Result<Option<(Response<()>, usize)>, String> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_LINES];
    let (used, lines) = match httparse::parse_headers(bytes, &mut lines) {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) if bytes.len() > MAX_HEAD => {
            return Err(format!("no end of its header block within {MAX_HEAD} bytes"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("a malformed CGI header block ({e}); it starts {:?}", preview(bytes))),
    };
    if used > MAX_HEAD {
        return Err(format!("a header block longer than {MAX_HEAD} bytes"));
    }
    if lines.is_empty() {
        return Err(format!(
            "no CGI header before the empty line (expected Content-Type:, Location: or Status:); output starts {:?}",
            preview(bytes)
        ));
    }
    let mut resp = Response::new(());
    let mut status = None;
    for line in lines.iter() {
        if line.name.eq_ignore_ascii_case("status") {
            let code = line.value.get(..3).and_then(|c| StatusCode::from_bytes(c).ok());
            let ok = code.is_some() && (line.value.len() == 3 || line.value[3] == b' ');
            match code {
                Some(code) if ok => status = Some(code),
                _ => return Err(format!("a bad Status line {:?}", String::from_utf8_lossy(line.value))),
            }
            continue;
        }
        let name =
            HeaderName::from_bytes(line.name.as_bytes()).map_err(|_| format!("a bad header name {:?}", line.name))?;
        let value =
            HeaderValue::from_bytes(line.value).map_err(|_| format!("a bad value of header {:?}", line.name))?;
        resp.headers_mut().append(name, value);
    }
    *resp.status_mut() = match status {
        Some(code) => code,
        None if resp.headers().contains_key(header::LOCATION) => StatusCode::FOUND,
        None => StatusCode::OK,
    };
    Ok(Some((resp, used)))
}

/// The start of a program's output, for a log line.
fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> (Response<()>, usize) {
        parse(text.as_bytes()).expect("parses").expect("whole")
    }

    #[test]
    fn status_location_and_headers() {
        let (r, used) = head("Content-Type: text/plain\nX-A: 1\n\nbody");
        assert_eq!((r.status(), used), (StatusCode::OK, 33));
        assert_eq!(r.headers()["x-a"], "1");
        let (r, _) = head("Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(!r.headers().contains_key("status"));
        assert_eq!(head("Location: https://example.com/\n\n").0.status(), StatusCode::FOUND);
        assert_eq!(head("Location: /local\n\n").0.status(), StatusCode::FOUND);
        assert_eq!(head("Status: 301\nLocation: /x\n\n").0.status(), StatusCode::MOVED_PERMANENTLY);
    }

    #[test]
    fn partial_and_malformed_blocks() {
        assert!(parse(b"Content-Type: text/plain\n").unwrap().is_none());
        assert!(parse(b"this is not a header\n\n").is_err());
        assert!(parse(b"\n\nhello").is_err(), "no header at all");
        assert!(parse(b"Status: abc\n\n").is_err());
        assert!(parse(b"Status: 2000\n\n").is_err());
        let long = format!("X: {}", "a".repeat(MAX_HEAD + 1));
        assert!(parse(long.as_bytes()).is_err());
    }
}
