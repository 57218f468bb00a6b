//! Static routes: files served by the listener itself (DESIGN §2.4), never by a worker.
//!
//! GET and HEAD only (else 405 with `Allow: GET, HEAD`). The URL path after the route prefix is
//! decoded and checked by [`path`] (traversal, encoded separators, NUL: 404; malformed encoding:
//! 400), then resolved with symlinks and refused unless it stays under the route's canonical
//! root. Directories: without a trailing `/` → 301 to `path/`; with it, the first existing
//! default document, else 403 (substatus 14, IIS's "directory listing denied"; directory
//! browsing is not implemented yet, so `directory_browsing = true` also answers 403.14). Files:
//! a known extension ([`mime`]) or 404 substatus 3, like IIS's 404.3; `ETag`, `Last-Modified`,
//! `If-None-Match` / `If-Modified-Since` → 304; small files read whole, larger ones streamed in
//! chunks. A file whose extension has a handler (`handlers = { ".php" = "pool" }`) goes to that
//! pool instead, whatever the method — the caller dispatches it.
//!
//! All file-system work for one request runs in one `spawn_blocking` call (never on a runtime
//! thread, and one thread hand-off per request, not one per system call); large files then
//! stream through `tokio::fs`. Called by [`crate::request`]; uses only [`crate::routing`] (the
//! route's [`StaticRoot`]) and [`crate::response`] (the body it answers with) below it.

pub mod mime;
pub mod path;

use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use std::io::Read;

use self::path::PathRefusal;
use crate::response::{plain, ResponseBody};
use crate::routing::StaticRoot;

/// Files up to this size are read whole; larger ones are streamed.
pub const READ_WHOLE_MAX: u64 = 256 * 1024;

/// What a static route does with a request.
// Returned once per request and matched at once: boxing the response would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// The answer, and its IIS substatus for the access log.
    Response(Response<ResponseBody>, u16),
    /// The file's extension has a handler: send the request to this pool.
    Handler(Arc<str>),
}

/// A static route's request, as far as this module needs it.
pub struct StaticRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The whole URL path (for redirects).
    pub path: &'a str,
    /// The URL path after the route prefix.
    pub rest: &'a str,
    pub query: Option<&'a str>,
}

/// Serves one request from a static root.
pub async fn serve(root: &Arc<StaticRoot>, req: &StaticRequest<'_>) -> Outcome {
    let rel = match path::relative_path(req.rest) {
        Ok(rel) => rel,
        Err(PathRefusal::MalformedEncoding) => return status(StatusCode::BAD_REQUEST, 0),
        Err(PathRefusal::Forbidden) => return status(StatusCode::NOT_FOUND, 0),
    };
    if let Some(pool) = handler_for(root, &rel) {
        return Outcome::Handler(pool);
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Outcome::Response(resp, 0);
    }
    // Every file-system step of one request in one trip to the blocking pool: each trip is a
    // thread hand-off (two context switches on a busy core), and a static hit used to take six.
    let read_whole = req.method == Method::GET;
    let slash = req.path.ends_with('/');
    let root_for_lookup = Arc::clone(root);
    let found = tokio::task::spawn_blocking(move || find(&root_for_lookup, &rel, slash, read_whole)).await;
    match found.unwrap_or(Found::Missing) {
        Found::Missing => status(StatusCode::NOT_FOUND, 0),
        Found::UnknownType => status(StatusCode::NOT_FOUND, 3),
        Found::Handler(pool) => Outcome::Handler(pool),
        Found::Directory if !req.path.ends_with('/') => {
            let mut location = format!("{}/", req.path);
            if let Some(q) = req.query {
                location.push('?');
                location.push_str(q);
            }
            let mut resp = plain(StatusCode::MOVED_PERMANENTLY);
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Outcome::Response(resp, 0)
        }
        Found::Directory => status(StatusCode::FORBIDDEN, 14),
        Found::File(file) => respond(file, req),
    }
}

/// What the file system said about a request's path.
enum Found {
    Missing,
    /// A file type the MIME map does not know (IIS's 404.3).
    UnknownType,
    /// A default document whose extension has a handler.
    Handler(Arc<str>),
    /// A directory with no default document, or one asked for without its trailing `/`.
    Directory,
    File(FileFound),
}

struct FileFound {
    file: std::fs::File,
    len: u64,
    mtime_secs: u64,
    content_type: &'static str,
    /// The whole content, for a small file asked for with GET.
    whole: Option<Vec<u8>>,
}

/// The blocking half of [`serve`]: resolve, check the root, pick a default document, open, read.
/// `slash`: the URL ends with `/` (a directory without it is redirected, not served).
fn find(root: &StaticRoot, rel: &Path, slash: bool, read_whole: bool) -> Found {
    let Some(canonical_root) = &root.canonical_root else { return Found::Missing };
    let Some(target) = resolve(canonical_root, &root.root.join(rel)) else { return Found::Missing };
    let Ok(meta) = std::fs::metadata(&target) else { return Found::Missing };
    if meta.is_dir() {
        if !slash {
            return Found::Directory;
        }
        for doc in &root.default_documents {
            let doc_path = Path::new(doc);
            if let Some(pool) = handler_for(root, doc_path) {
                if std::fs::metadata(target.join(doc_path)).is_ok_and(|m| m.is_file()) {
                    return Found::Handler(pool);
                }
                continue;
            }
            if let Some(file) = resolve(canonical_root, &target.join(doc_path)) {
                if std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
                    return open(&file, read_whole);
                }
            }
        }
        return Found::Directory;
    }
    if !meta.is_file() {
        return Found::Missing;
    }
    open(&target, read_whole)
}

fn open(path: &Path, read_whole: bool) -> Found {
    let Some(content_type) = path.extension().and_then(|e| e.to_str()).and_then(mime::content_type) else {
        return Found::UnknownType;
    };
    let Ok(mut file) = std::fs::File::open(path) else { return Found::Missing };
    let Ok(meta) = file.metadata() else { return Found::Missing };
    if !meta.is_file() {
        return Found::Missing;
    }
    let len = meta.len();
    let mtime_secs = meta.modified().unwrap_or(UNIX_EPOCH).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let whole = if read_whole && len <= READ_WHOLE_MAX {
        let mut buf = Vec::with_capacity(len as usize);
        if file.read_to_end(&mut buf).is_err() || buf.len() as u64 != len {
            return Found::Missing;
        }
        Some(buf)
    } else {
        None
    };
    Found::File(FileFound { file, len, mtime_secs, content_type, whole })
}

/// The pool handling this file's extension, if any.
fn handler_for(root: &StaticRoot, rel: &Path) -> Option<Arc<str>> {
    if root.handlers.is_empty() {
        return None;
    }
    let ext = rel.extension()?.to_str()?.to_ascii_lowercase();
    root.handlers.get(&format!(".{ext}")).cloned()
}

/// Canonicalises `path` and checks it stays under `root` (symlinks included).
fn resolve(root: &Path, path: &Path) -> Option<std::path::PathBuf> {
    let canonical = std::fs::canonicalize(path).ok()?;
    canonical.starts_with(root).then_some(canonical)
}

fn respond(found: FileFound, req: &StaticRequest<'_>) -> Outcome {
    let FileFound { file, len, mtime_secs: secs, content_type, whole } = found;
    let etag = format!("\"{secs:x}-{len:x}\"");
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));

    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::CONTENT_TYPE, content_type);
    if not_modified(req.headers, &etag, secs) {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return Outcome::Response(builder.body(ResponseBody::empty()).unwrap_or_else(|_| internal()), 0);
    }
    builder = builder.header(header::CONTENT_LENGTH, len);
    let body = match whole {
        _ if req.method == Method::HEAD => ResponseBody::empty(),
        Some(buf) => ResponseBody::full(buf),
        None => ResponseBody::file(tokio::fs::File::from_std(file), len),
    };
    Outcome::Response(builder.body(body).unwrap_or_else(|_| internal()), 0)
}

/// `If-None-Match` (weak comparison, `*`), else `If-Modified-Since`.
fn not_modified(headers: &HeaderMap, etag: &str, mtime_secs: u64) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        return inm.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag);
    }
    if let Some(ims) = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) {
        if let Ok(ims) = httpdate::parse_http_date(ims) {
            let ims = ims.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            return mtime_secs <= ims;
        }
    }
    false
}

fn status(code: StatusCode, substatus: u16) -> Outcome {
    Outcome::Response(plain(code), substatus)
}

fn internal() -> Response<ResponseBody> {
    plain(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    #[test]
    fn conditional_requests() {
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, "\"a-1\"", 100));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\", W/\"a-1\""));
        assert!(not_modified(&h, "\"a-1\"", 100));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"b-1\""));
        h.insert(header::IF_MODIFIED_SINCE, HeaderValue::from_str(&httpdate::fmt_http_date(at(200))).unwrap());
        assert!(!not_modified(&h, "\"a-1\"", 100), "If-None-Match wins over If-Modified-Since");
        h.remove(header::IF_NONE_MATCH);
        assert!(not_modified(&h, "\"a-1\"", 100));
        assert!(!not_modified(&h, "\"a-1\"", 300));
    }
}
