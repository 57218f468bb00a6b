//! An `execute` route's facts, as the listener sent them in the [`bulkhead_proto::host`] headers:
//! which kind of program, which file, `SCRIPT_NAME` and `PATH_INFO`, the time limit, the
//! connection's addresses; for an extension, its library and filters.
//!
//! A request without them did not come from an `execute` route of the listener (nothing else
//! reaches a host pool's socket, mode 0600); it is refused by [`crate::dispatch`] with 500. A
//! leaf: no other module of the crate is used.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use bulkhead_proto::host;
use http::HeaderMap;

/// The execute kinds the host knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execute {
    /// `execute = "cgi"`: the route's file is a CGI program.
    Cgi,
    /// `execute = "extension"`: a native extension library.
    Extension,
}

/// The program a route resolved (CGI/1.1's script variables, RFC 3875 4.1).
#[derive(Debug, Clone)]
pub struct Program {
    /// `SCRIPT_FILENAME`: absolute, symlinks resolved, under the route's root.
    pub filename: PathBuf,
    /// `SCRIPT_NAME`: the URL path that names it, decoded.
    pub name: Vec<u8>,
    /// `PATH_INFO`: the decoded URL path after it; empty or starting with `/`.
    pub path_info: Vec<u8>,
    /// `DOCUMENT_ROOT`: the route's root, symlinks resolved.
    pub document_root: PathBuf,
}

/// Everything the listener said about a request's route.
#[derive(Debug, Clone)]
pub struct RouteFacts {
    pub execute: Execute,
    /// The route's program (`execute = "cgi"`).
    pub program: Option<Program>,
    /// The route's time limit for one program run (`cgi_timeout`).
    pub timeout: Duration,
    /// The client's address and port, as text.
    pub remote: (String, String),
    /// The address and port the client connected to, as text.
    pub local: (String, String),
    /// `execute = "extension"`: the route's `library`.
    pub library: Option<PathBuf>,
    /// `execute = "extension"`: the route's `filters`, in their order.
    pub filters: Vec<PathBuf>,
}

impl RouteFacts {
    /// Reads the facts from a request's headers; `Err` names what is missing or malformed.
    pub fn from_headers(headers: &HeaderMap) -> Result<RouteFacts, String> {
        let execute = match text(headers, host::EXECUTE)? {
            host::EXECUTE_CGI => Execute::Cgi,
            host::EXECUTE_EXTENSION => Execute::Extension,
            other => return Err(format!("{}: unknown execute kind {other:?}", host::EXECUTE)),
        };
        let timeout = text(headers, host::TIMEOUT_MS)?
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{} is not a number of milliseconds", host::TIMEOUT_MS))?;
        let program = match bytes(headers, host::SCRIPT_FILENAME)? {
            None => None,
            Some(filename) => Some(Program {
                filename: path(filename),
                name: bytes(headers, host::SCRIPT_NAME)?.unwrap_or_default(),
                path_info: bytes(headers, host::PATH_INFO)?.unwrap_or_default(),
                document_root: path(bytes(headers, host::DOCUMENT_ROOT)?.unwrap_or_default()),
            }),
        };
        let mut filters = Vec::new();
        for value in headers.get_all(host::FILTER) {
            let bytes =
                host::decode(value.as_bytes()).ok_or_else(|| format!("{} is not percent-encoded", host::FILTER))?;
            filters.push(path(bytes));
        }
        Ok(RouteFacts {
            execute,
            program,
            timeout,
            remote: pair(headers, host::REMOTE)?,
            local: pair(headers, host::LOCAL)?,
            library: bytes(headers, host::LIBRARY)?.map(path),
            filters,
        })
    }
}

/// A header that must be there, as text.
fn text<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, String> {
    headers
        .get(name)
        .ok_or_else(|| format!("no {name} header (the request did not come from an execute route)"))?
        .to_str()
        .map_err(|_| format!("{name} is not text"))
}

/// An `IP PORT` header.
fn pair(headers: &HeaderMap, name: &str) -> Result<(String, String), String> {
    let v = text(headers, name)?;
    let (ip, port) = v.split_once(' ').ok_or_else(|| format!("{name} is not \"IP PORT\""))?;
    Ok((ip.to_string(), port.to_string()))
}

/// A percent-encoded header's bytes, if the header is there.
fn bytes(headers: &HeaderMap, name: &str) -> Result<Option<Vec<u8>>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => host::decode(v.as_bytes()).map(Some).ok_or_else(|| format!("{name} is not percent-encoded")),
    }
}

fn path(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}
