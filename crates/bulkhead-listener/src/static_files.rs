//! Static routes: files served by the listener itself (DESIGN §2.4), never by a worker.
//!
//! GET and HEAD only (else 405 with `Allow: GET, HEAD`). The URL path after the route prefix is
//! decoded and checked by [`path`] (traversal, encoded separators, NUL: 404; malformed encoding:
//! 400); a segment in the route's `hidden_segments` is 404 substatus 8 (IIS's 404.8), before
//! any handler. The path is then resolved with symlinks and refused unless it stays under the
//! route's canonical root (and a symlink into a hidden segment is 404.8 too). `EACCES` anywhere
//! on the way — a file the listener's user cannot read, a directory it cannot search or list —
//! is 403, and [`denied`] names the path and the user in one warning per path.
//!
//! Directories: without a trailing `/` → 301 to `path/`; with it, the first existing default
//! document, else a [`listing`] when `directory_browsing = true`, else 403 substatus 14 (IIS's
//! "directory listing denied"). Files: an extension in the site's MIME map ([`mime`]) or 404 substatus 3 (IIS's
//! 404.3); `ETag` (strong, from mtime and length), `Last-Modified`, `Accept-Ranges: bytes`; the
//! preconditions of [`conditional`] (304 carrying only `ETag`, or 412), then a single byte
//! [`range`] (206 with `Content-Range`, 416 with `bytes */LEN`, `If-Range`; GET only). Small
//! files are read whole (a range is a slice of that buffer); larger ones are streamed in chunks
//! from the range's offset, never read whole. Codings ([`encoding`]): for a compressible type
//! on a route with `compress` or `precompressed`, the client's preferred coding is sent — a
//! fresh `FILE.br`/`FILE.gz` beside the file (served like any file, ranges included), else the
//! file compressed in the same blocking trip when it is 256 B to 256 KiB and the request has no
//! `Range` — with `Content-Encoding`, an `ETag` suffixed `-br`/`-gz`, and `Vary:
//! Accept-Encoding` on every answer for that type. A file whose extension has a handler
//! (`handlers = { ".php" = "pool" }`) goes to that pool instead, whatever the method — the
//! caller dispatches it with the [`Script`] found: the first path segment with a handled
//! extension is the script and what follows it is `PATH_INFO` (`/x.php/extra`), and a default
//! document with a handled extension is a script too (for any method: a form may post to
//! `/`). The script must be a file under the root (symlinks resolved, as for any file): a
//! missing one is this module's 404 and never reaches the pool.
//! An `execute = "cgi"` route's program is found here too ([`program`]), with the same path
//! checks, for the request path to send to the route's host pool.
//!
//! File-system work is done inline first, as nginx does (`find`: resolve, stat, open, and a small
//! file's bytes from the page cache with `preadv2(RWF_NOWAIT)`): for cached directory entries and
//! pages that is microseconds, cheaper than a thread hand-off. When the bytes are not cached, or
//! the answer is a directory listing, the whole lookup runs again in one `spawn_blocking` call, so
//! a cold disk never stalls a runtime thread on a read (metadata of uncached directories is the
//! one wait left inline, as in nginx). Large files stream in positional chunks read the same way
//! ([`ResponseBody::file`]).
//! `respond` then decides the answer from the open file and its metadata alone, so the route's
//! open-file cache ([`crate::open_files`]) stands in for `find`: a `GET`/`HEAD` for a path it
//! holds is answered from the held descriptor, its length, mtime and type (a small file: one
//! `preadv2`), unless the client may get another coding of a negotiated type (then `find`
//! runs, for its precompressed or compressed variant). A file `find` opened and sends as it
//! is, is held for the next request. Measured (wrk -c50, 622-byte file, response cache off,
//! one core): 11.65 → 9.22 µs of listener CPU per request, 84.6k → 107.5k req/s; the system
//! calls per request went from 4 `readlink`, 2 `statx`, `openat`, `preadv2`, `close` to one
//! `preadv2`. Called by
//! [`crate::request`]; uses only [`crate::routing`] (the route's [`StaticRoot`]) and
//! [`crate::response`] (the body it answers with) below it.

pub mod conditional;
pub mod denied;
pub mod encoding;
pub mod listing;
pub mod mime;
pub mod path;
pub mod range;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use self::conditional::{Precondition, Validators};
use self::encoding::{Coding, Preference};
use self::path::PathRefusal;
use self::range::Ranges;
use crate::response::{plain, ResponseBody};
use crate::routing::StaticRoot;

/// Files compressed on the fly up to this size are compressed inline (tens of microseconds);
/// larger ones on the blocking pool.
const INLINE_COMPRESS_MAX: u64 = 16 * 1024;

/// Files up to this size are read whole; larger ones are streamed.
pub const READ_WHOLE_MAX: u64 = 256 * 1024;

/// IIS's substatus for a request refused by `hiddenSegments` (404.8).
const HIDDEN: u16 = 8;

/// What a static route does with a request.
// Returned once per request and matched at once: boxing the response would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// The answer, and its IIS substatus for the access log.
    Response(Response<ResponseBody>, u16),
    /// The file's extension has a handler: send the request to this pool, for this script.
    Handler(Arc<str>, Script),
}

/// The script a handler runs, in CGI/1.1's terms (RFC 3875 4.1).
#[derive(Debug, Clone)]
pub struct Script {
    /// The script's file (`SCRIPT_FILENAME`), symlinks resolved.
    pub filename: PathBuf,
    /// The URL path that names the script (`SCRIPT_NAME`), decoded.
    pub name: String,
    /// The decoded URL path after the script (`PATH_INFO`), empty or starting with `/`.
    pub path_info: String,
    /// The route's root (`DOCUMENT_ROOT`), symlinks resolved.
    pub document_root: PathBuf,
}

/// A static route's request, as far as this module needs it.
pub struct StaticRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The whole URL path (for redirects and listings).
    pub path: &'a str,
    /// The URL path after the route prefix.
    pub rest: &'a str,
    pub query: Option<&'a str>,
}

/// Serves one request from a static root.
pub async fn serve(root: &Arc<StaticRoot>, req: &StaticRequest<'_>) -> Outcome {
    let get_or_head = req.method == Method::GET || req.method == Method::HEAD;
    let mut want = Want {
        get: req.method == Method::GET,
        ranged: req.method == Method::GET && req.headers.contains_key(header::RANGE),
        codings: if get_or_head && (root.compress || root.precompressed) {
            encoding::negotiate(req.headers)
        } else {
            Preference::default()
        },
        inline: true,
    };
    // The open-file cache first: a path it holds passed the checks below when it was looked up,
    // under this same route table. It holds the identity bytes, so a request that may get
    // another coding looks again.
    if get_or_head {
        if let Some(held) = root.files.get(req.rest) {
            if !held.varies || want.codings.is_empty() {
                let found = FileFound {
                    file: held.file.clone(),
                    len: held.len,
                    mtime_secs: held.mtime_secs,
                    tag_len: held.len,
                    content_type: held.content_type.clone(),
                    whole: None,
                    coding: None,
                    varies: held.varies,
                    path: None,
                };
                if let Found::File(found) = read_whole_if(found, want) {
                    return respond(found, req);
                }
                // Not in the page cache (or the read failed): the lookup below, on the
                // blocking pool.
            }
        }
    }
    let rel = match path::relative_path(req.rest) {
        Ok(rel) => rel,
        Err(PathRefusal::MalformedEncoding) => return status(StatusCode::BAD_REQUEST, 0),
        Err(PathRefusal::Forbidden) => return status(StatusCode::NOT_FOUND, 0),
    };
    // Before handlers, as IIS's request filtering runs before its handlers: `/.git/x.php` never
    // reaches a pool.
    if path::has_hidden_segment(&rel, &root.hidden_segments) {
        return status(StatusCode::NOT_FOUND, HIDDEN);
    }
    if let Some((pool, script, path_info)) = handled_script(root, &rel) {
        return match script_file(root, &script) {
            Ok((filename, document_root)) => {
                let name = script_name(req.path, req.rest, &script);
                Outcome::Handler(pool, Script { filename, name, path_info, document_root })
            }
            Err(found) => refused(found),
        };
    }
    let slash = req.path.ends_with('/');
    if !get_or_head {
        // A directory whose default document is a handled script takes any method too
        // (a form posting to `/` with `index.php`).
        if slash && !root.handlers.is_empty() {
            let want = Want { get: false, ranged: false, codings: Preference::default(), inline: true };
            if let Found::Handler(pool, filename, doc) = find(root, &rel, slash, want) {
                return handled_document(root, req, pool, filename, doc);
            }
        }
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Outcome::Response(resp, 0);
    }
    // Inline first, as nginx does: resolving and opening a path whose directory entries and
    // inodes are cached takes microseconds, and a small file's bytes come from the page cache
    // with `RWF_NOWAIT`. What would wait for the disk (a file not in the page cache), or may take
    // long (a directory listing, compressing a larger file), is done again, all of it, in one
    // trip to the blocking pool.
    let found = match find(root, &rel, slash, want) {
        Found::Blocking => {
            let root_for_lookup = Arc::clone(root);
            want.inline = false;
            let rel_for_lookup = rel.clone();
            let found = tokio::task::spawn_blocking(move || find(&root_for_lookup, &rel_for_lookup, slash, want)).await;
            found.unwrap_or(Found::Missing)
        }
        found => found,
    };
    if let Found::File(file) = &found {
        hold(root, req.rest, &rel, slash, file);
    }
    match found {
        found @ (Found::Missing | Found::UnknownType | Found::Hidden | Found::Denied) => refused(found),
        Found::Handler(pool, filename, doc) => handled_document(root, req, pool, filename, doc),
        Found::Directory if !slash => {
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
        Found::Listing(rows) => listing_response(req, &rows),
        Found::Blocking => internal(),
        Found::File(file) => respond(file, req),
    }
}

/// The program an `execute = "cgi"` route runs for a request (RFC 3875 4.1): the path after the
/// prefix is decoded and checked as for a static file (traversal and encoded separators 404,
/// malformed `%` 400, a hidden segment 404.8), then walked from the root one segment at a time;
/// the first segment that is a regular file (symlinks resolved, staying under the root) is the
/// program, and the segments after it are `PATH_INFO` (`/cgi-bin/env.sh/a/b` runs `env.sh` with
/// `/a/b`). A missing segment → 404; a path that names only directories (the root itself
/// included) → 403 substatus 14 — a program directory has no default document and no listing;
/// `EACCES` on the way → 403, the path named once in the log. Any method: a program decides
/// what it answers. The file's mode is not judged here: the host runs it, and answers 403 for
/// one it may not execute.
pub fn program(root: &StaticRoot, path: &str, rest: &str) -> Result<Script, (StatusCode, u16)> {
    let refusal = |found: Found| match refused(found) {
        Outcome::Response(resp, substatus) => (resp.status(), substatus),
        Outcome::Handler(..) => (StatusCode::INTERNAL_SERVER_ERROR, 0),
    };
    let rel = match path::relative_path(rest) {
        Ok(rel) => rel,
        Err(PathRefusal::MalformedEncoding) => return Err((StatusCode::BAD_REQUEST, 0)),
        Err(PathRefusal::Forbidden) => return Err((StatusCode::NOT_FOUND, 0)),
    };
    if path::has_hidden_segment(&rel, &root.hidden_segments) {
        return Err((StatusCode::NOT_FOUND, HIDDEN));
    }
    let Some(canonical_root) = &root.canonical_root else {
        return Err(refusal(if root.root_denied { denied_at(&root.root) } else { Found::Missing }));
    };
    let mut script = PathBuf::new();
    let mut parts = rel.components();
    for part in parts.by_ref() {
        script.push(part);
        let requested = root.root.join(&script);
        let file = match resolve(canonical_root, &requested) {
            Ok(file) => file,
            Err(Unresolved::Denied) => return Err(refusal(denied_at(&requested))),
            Err(Unresolved::Missing) => return Err((StatusCode::NOT_FOUND, 0)),
        };
        let inside = file.strip_prefix(canonical_root).unwrap_or(Path::new(""));
        if path::has_hidden_segment(inside, &root.hidden_segments) {
            return Err((StatusCode::NOT_FOUND, HIDDEN));
        }
        match std::fs::metadata(&file) {
            Ok(m) if m.is_file() => {
                let mut path_info = String::new();
                for rest in parts {
                    path_info.push('/');
                    path_info.push_str(&rest.as_os_str().to_string_lossy());
                }
                let name = script_name(path, rest, &script);
                return Ok(Script { filename: file, name, path_info, document_root: canonical_root.clone() });
            }
            Ok(m) if m.is_dir() => {}
            Err(e) if is_denied(&e) => return Err(refusal(denied_at(&file))),
            _ => return Err((StatusCode::NOT_FOUND, 0)),
        }
    }
    Err((StatusCode::FORBIDDEN, 14))
}

/// The file a path after the route prefix names (for the response cache's revalidation), or
/// `None` for a path [`serve`] refuses.
pub fn file_path(root: &StaticRoot, rest: &str) -> Option<PathBuf> {
    let rel = path::relative_path(rest).ok()?;
    Some(root.root.join(rel))
}

/// What the file system said about a request's path.
enum Found {
    Missing,
    /// A file type the MIME map does not know (IIS's 404.3).
    UnknownType,
    /// The path resolved (through a symlink) to one of the route's hidden segments (404.8).
    Hidden,
    /// The listener's user may not read the file or search a directory on the way (403; the
    /// path is logged once by [`denied`]).
    Denied,
    /// A default document whose extension has a handler: the pool, the file, its name.
    Handler(Arc<str>, PathBuf, String),
    /// A directory with no default document, or one asked for without its trailing `/`.
    Directory,
    /// A directory with no default document on a route with `directory_browsing`.
    Listing(listing::Rows),
    File(FileFound),
    /// Looked up inline, the answer needs the disk or a directory read: look again on the
    /// blocking pool.
    Blocking,
}

/// What the request asks of a file, as far as the blocking half needs it.
#[derive(Clone, Copy)]
struct Want {
    /// GET (else HEAD): a small file's content is read.
    get: bool,
    /// A GET with `Range`: never compressed on the fly (identity, so the range applies).
    ranged: bool,
    /// The codings the client accepts, best first (empty when the route neither compresses
    /// nor looks for precompressed files).
    codings: Preference,
    /// On a runtime thread: nothing may wait for the disk or take long; [`find`] gives up with
    /// [`Found::Blocking`] instead.
    inline: bool,
}

struct FileFound {
    /// The file whose bytes are sent: the requested one, or its precompressed variant.
    file: Arc<std::fs::File>,
    /// Length of the representation sent (after on-the-fly compression).
    len: u64,
    mtime_secs: u64,
    /// The length the `ETag` is made from: the file's (the identity file's, when compressed
    /// on the fly).
    tag_len: u64,
    content_type: HeaderValue,
    /// The whole content, for a small file asked for with GET, or compressed on the fly.
    whole: Option<Bytes>,
    /// The content coding of what is sent.
    coding: Option<Coding>,
    /// The type is compressible and the route negotiates codings: `Vary: Accept-Encoding`.
    varies: bool,
    /// The path opened (canonical), when looked up now (`None` from the open-file cache).
    path: Option<PathBuf>,
}

/// Why a path was not resolved under the root.
enum Unresolved {
    /// Missing, a dangling symlink, or outside the root.
    Missing,
    /// `EACCES` on the way.
    Denied,
}

/// The blocking half of [`serve`]: resolve, check the root, pick a default document (or list
/// the directory), open, read. `slash`: the URL ends with `/` (a directory without it is
/// redirected, not served).
fn find(root: &StaticRoot, rel: &Path, slash: bool, want: Want) -> Found {
    let Some(canonical_root) = &root.canonical_root else {
        return if root.root_denied { denied_at(&root.root) } else { Found::Missing };
    };
    let requested = root.root.join(rel);
    let target = match resolve(canonical_root, &requested) {
        Ok(target) => target,
        Err(Unresolved::Denied) => return denied_at(&requested),
        Err(Unresolved::Missing) => return Found::Missing,
    };
    let inside = target.strip_prefix(canonical_root).unwrap_or(Path::new(""));
    if path::has_hidden_segment(inside, &root.hidden_segments) {
        return Found::Hidden;
    }
    let meta = match std::fs::metadata(&target) {
        Ok(meta) => meta,
        Err(e) if is_denied(&e) => return denied_at(&target),
        Err(_) => return Found::Missing,
    };
    if meta.is_dir() {
        return if slash { directory(root, canonical_root, &target, want) } else { Found::Directory };
    }
    if !meta.is_file() {
        return Found::Missing;
    }
    open(root, canonical_root, &target, want)
}

/// A directory asked for with its `/`: the first default document, else a listing when the
/// route browses, else [`Found::Directory`] (403.14).
fn directory(root: &StaticRoot, canonical_root: &Path, dir: &Path, want: Want) -> Found {
    for doc in &root.default_documents {
        let doc_path = dir.join(doc);
        if let Some(pool) = handler_for(root, Path::new(doc)) {
            match resolve(canonical_root, &doc_path) {
                Ok(file) if std::fs::metadata(&file).is_ok_and(|m| m.is_file()) => {
                    return Found::Handler(pool, file, doc.clone())
                }
                Err(Unresolved::Denied) => return denied_at(dir),
                _ => continue,
            }
        }
        match resolve(canonical_root, &doc_path) {
            Ok(file) if std::fs::metadata(&file).is_ok_and(|m| m.is_file()) => {
                return open(root, canonical_root, &file, want)
            }
            Err(Unresolved::Denied) => return denied_at(dir),
            _ => {}
        }
    }
    if !root.directory_browsing {
        return Found::Directory;
    }
    if want.inline {
        return Found::Blocking;
    }
    match listing::rows(dir, canonical_root, &root.hidden_segments) {
        Ok(rows) => Found::Listing(rows),
        Err(e) if is_denied(&e) => denied_at(dir),
        Err(_) => Found::Missing,
    }
}

/// Opens a file to serve, and picks what of it is sent: for a compressible type, the client's
/// preferred coding — its precompressed file when there is one, else compressed here when the
/// file is small enough — else the file itself.
fn open(root: &StaticRoot, canonical_root: &Path, path: &Path, want: Want) -> Found {
    let Some(content_type) = mime::content_type(&root.mime, path) else {
        return Found::UnknownType;
    };
    let (file, len, mtime_secs) = match open_file(path) {
        Ok(opened) => opened,
        Err(Unresolved::Denied) => return denied_at(path),
        Err(Unresolved::Missing) => return Found::Missing,
    };
    let varies = (root.compress || root.precompressed) && content_type.to_str().is_ok_and(encoding::compressible);
    let mut found = FileFound {
        file: Arc::new(file),
        len,
        mtime_secs,
        tag_len: len,
        content_type,
        whole: None,
        coding: None,
        varies,
        path: Some(path.to_path_buf()),
    };
    if varies {
        for coding in want.codings.iter() {
            if root.precompressed {
                if let Some(variant) = precompressed(root, canonical_root, path, coding, mtime_secs) {
                    let (file, len, mtime_secs) = variant;
                    (found.file, found.len, found.mtime_secs) = (Arc::new(file), len, mtime_secs);
                    found.tag_len = found.len;
                    found.coding = Some(coding);
                    return read_whole_if(found, want);
                }
            }
            if root.compress && !want.ranged && (encoding::MIN_COMPRESS..=READ_WHOLE_MAX).contains(&len) {
                if want.inline && len > INLINE_COMPRESS_MAX {
                    // Compressing takes long enough to hold up the runtime thread's other
                    // connections: on the blocking pool.
                    return Found::Blocking;
                }
                let data = match crate::response::read_whole(&found.file, len as usize, want.inline) {
                    Ok(Some(data)) => data,
                    Ok(None) => return Found::Blocking,
                    Err(_) => return Found::Missing,
                };
                match encoding::encode(coding, &data) {
                    Some(packed) if (packed.len() as u64) < len => {
                        found.len = packed.len() as u64;
                        found.whole = Some(Bytes::from(packed));
                        found.coding = Some(coding);
                    }
                    // No smaller (or the encoder failed): the file as it is.
                    _ => found.whole = want.get.then_some(data),
                }
                return Found::File(found);
            }
        }
    }
    read_whole_if(found, want)
}

/// Reads a small file's content when the request is a GET (inline: from the page cache only,
/// else [`Found::Blocking`]).
fn read_whole_if(mut found: FileFound, want: Want) -> Found {
    if want.get && found.len <= READ_WHOLE_MAX {
        match crate::response::read_whole(&found.file, found.len as usize, want.inline) {
            Ok(Some(bytes)) => found.whole = Some(bytes),
            Ok(None) => return Found::Blocking,
            Err(_) => return Found::Missing,
        }
    }
    Found::File(found)
}

/// A regular file opened for reading: the file, its length and its mtime in whole seconds.
fn open_file(path: &Path) -> Result<(std::fs::File, u64, u64), Unresolved> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if is_denied(&e) => return Err(Unresolved::Denied),
        Err(_) => return Err(Unresolved::Missing),
    };
    let meta = file.metadata().map_err(|_| Unresolved::Missing)?;
    if !meta.is_file() {
        return Err(Unresolved::Missing);
    }
    let mtime_secs = meta.modified().unwrap_or(UNIX_EPOCH).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok((file, meta.len(), mtime_secs))
}

/// `path` (canonical) + `.br` / `.gz`, when it is a readable regular file under the root, outside the
/// hidden segments, and not older than the file it stands for (a stale variant would serve old
/// content: it is skipped, as if absent).
fn precompressed(
    root: &StaticRoot,
    canonical_root: &Path,
    path: &Path,
    coding: Coding,
    original_mtime: u64,
) -> Option<(std::fs::File, u64, u64)> {
    let mut name = path.as_os_str().to_owned();
    name.push(coding.suffix());
    let variant = PathBuf::from(name);
    // `path` is canonical, so a variant that is no symlink lies in its (checked) directory: one
    // `lstat`, which is all a missing variant — the common case — costs. A symlink is resolved
    // and checked as a requested path is.
    let target = match std::fs::symlink_metadata(&variant).ok()? {
        meta if meta.file_type().is_symlink() => resolve(canonical_root, &variant).ok()?,
        _ => variant,
    };
    let inside = target.strip_prefix(canonical_root).unwrap_or(Path::new(""));
    if path::has_hidden_segment(inside, &root.hidden_segments) {
        return None;
    }
    let (file, len, mtime) = open_file(&target).ok()?;
    (mtime >= original_mtime).then_some((file, len, mtime))
}

/// Keeps a file just looked up in the route's open-file cache, when what is sent is the file
/// itself (not a precompressed variant, nor bytes compressed here). The directories are stamped
/// after the lookup, so the file is checked again after the stamp: the path must still name the
/// inode that was opened, with the same size and mtime (else a change in between could be
/// missed, and the entry is not made).
fn hold(root: &StaticRoot, key: &str, rel: &Path, slash: bool, found: &FileFound) {
    use std::os::unix::fs::MetadataExt;
    let (None, Some(path)) = (found.coding, &found.path) else { return };
    let Some(watches) = crate::watch::Watches::get() else { return };
    if crate::open_files::held() >= crate::open_files::max_open() {
        return;
    }
    // A directory's default document: any name in its directory may change which one it is.
    let requested = root.root.join(rel);
    let mut dirs = crate::watch::dirs_of(&root.root, &requested, path, slash);
    // A negotiated type: the response cache keeps its coded variants under this stamp too, so
    // the precompressed siblings a lookup would use are names it depends on.
    if found.varies {
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            for ext in [".gz", ".br"] {
                let mut sibling = name.to_os_string();
                sibling.push(ext);
                dirs.push((parent.to_path_buf(), Some(sibling)));
            }
        }
    }
    let Some(stamp) = watches.stamp(dirs.iter().map(|(d, n)| (d.as_path(), n.as_deref()))) else { return };
    let same = |m: &std::fs::Metadata, o: &std::fs::Metadata| {
        m.dev() == o.dev()
            && m.ino() == o.ino()
            && m.size() == o.size()
            && m.mtime_nsec() == o.mtime_nsec()
            && m.mtime() == o.mtime()
    };
    let Ok(opened) = found.file.metadata() else { return };
    let still = std::fs::metadata(path).is_ok_and(|m| same(&m, &opened))
        && (slash || std::fs::metadata(&requested).is_ok_and(|m| same(&m, &opened)));
    if !still {
        return;
    }
    root.files.insert(
        key,
        crate::open_files::OpenFile::new(
            found.file.clone(),
            found.tag_len,
            found.mtime_secs,
            found.content_type.clone(),
            found.varies,
            stamp,
        ),
    );
}

fn is_denied(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied
}

fn denied_at(path: &Path) -> Found {
    denied::warn_once(path);
    Found::Denied
}

/// The first segment of `rel` whose extension has a handler: its pool, the script's relative
/// path, and the rest as `PATH_INFO` (`x.php/a/b` → `x.php`, `/a/b`).
fn handled_script(root: &StaticRoot, rel: &Path) -> Option<(Arc<str>, PathBuf, String)> {
    if root.handlers.is_empty() {
        return None;
    }
    let mut script = PathBuf::new();
    let mut parts = rel.components();
    for part in parts.by_ref() {
        script.push(part);
        if let Some(pool) = handler_for(root, Path::new(part.as_os_str())) {
            let mut path_info = String::new();
            for rest in parts {
                path_info.push('/');
                path_info.push_str(&rest.as_os_str().to_string_lossy());
            }
            return Some((pool, script, path_info));
        }
    }
    None
}

/// [`find_script`] through the route's held scripts: a script resolved before, whose
/// directories have not changed since, costs no system call. A new one is held when inotify
/// watches its way down (the stamp is taken after the lookup, and the path must still resolve
/// to the same file after it, else a change in between could be missed).
#[allow(clippy::result_large_err)]
fn script_file(root: &StaticRoot, script: &Path) -> Result<(PathBuf, PathBuf), Found> {
    let key = script.to_str();
    if let Some(held) = key.and_then(|k| root.files.script(k)) {
        return Ok((held.filename.clone(), held.document_root.clone()));
    }
    let (filename, document_root) = find_script(root, script)?;
    if let (Some(key), Some(watches)) = (key, crate::watch::Watches::get()) {
        let requested = root.root.join(script);
        let dirs = crate::watch::dirs_of(&root.root, &requested, &filename, false);
        let stamp = watches.stamp(dirs.iter().map(|(d, n)| (d.as_path(), n.as_deref())));
        if let Some(stamp) = stamp {
            if find_script(root, script).is_ok_and(|(again, _)| again == filename) {
                root.files.insert_script(key, filename.clone(), document_root.clone(), stamp);
            }
        }
    }
    Ok((filename, document_root))
}

/// A handled script's file and the root it is under (canonical), or why it is refused.
// The `Err` is only ever a refusal (a small variant), matched at once: boxing it would add an
// allocation to every refused script for a size only `Found::File` has.
#[allow(clippy::result_large_err)]
fn find_script(root: &StaticRoot, script: &Path) -> Result<(PathBuf, PathBuf), Found> {
    let Some(canonical_root) = &root.canonical_root else {
        return Err(if root.root_denied { denied_at(&root.root) } else { Found::Missing });
    };
    let requested = root.root.join(script);
    let file = match resolve(canonical_root, &requested) {
        Ok(file) => file,
        Err(Unresolved::Denied) => return Err(denied_at(&requested)),
        Err(Unresolved::Missing) => return Err(Found::Missing),
    };
    let inside = file.strip_prefix(canonical_root).unwrap_or(Path::new(""));
    if path::has_hidden_segment(inside, &root.hidden_segments) {
        return Err(Found::Hidden);
    }
    match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => Ok((file, canonical_root.clone())),
        Err(e) if is_denied(&e) => Err(denied_at(&file)),
        _ => Err(Found::Missing),
    }
}

/// `SCRIPT_NAME`: the route's prefix as the client sent it, then the script's decoded path.
fn script_name(path: &str, rest: &str, script: &Path) -> String {
    let prefix = path.strip_suffix(rest).unwrap_or("").trim_end_matches('/');
    format!("{prefix}/{}", script.to_string_lossy())
}

/// A directory's default document that a handler runs.
fn handled_document(
    root: &StaticRoot,
    req: &StaticRequest<'_>,
    pool: Arc<str>,
    filename: PathBuf,
    doc: String,
) -> Outcome {
    let document_root = root.canonical_root.clone().unwrap_or_else(|| root.root.clone());
    let name = format!("{}{doc}", req.path);
    Outcome::Handler(pool, Script { filename, name, path_info: String::new(), document_root })
}

/// The answer for a path that was not found, is hidden, or may not be read.
fn refused(found: Found) -> Outcome {
    match found {
        Found::UnknownType => status(StatusCode::NOT_FOUND, 3),
        Found::Hidden => status(StatusCode::NOT_FOUND, HIDDEN),
        Found::Denied => status(StatusCode::FORBIDDEN, 0),
        _ => status(StatusCode::NOT_FOUND, 0),
    }
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
fn resolve(root: &Path, path: &Path) -> Result<PathBuf, Unresolved> {
    match std::fs::canonicalize(path) {
        Ok(canonical) if canonical.starts_with(root) => Ok(canonical),
        Ok(_) => Err(Unresolved::Missing),
        Err(e) if is_denied(&e) => Err(Unresolved::Denied),
        Err(_) => Err(Unresolved::Missing),
    }
}

/// A file's answer, with `Vary: Accept-Encoding` whatever it is when the file's type is
/// negotiated (a 304 and a 412 depend on the variant's validators too).
fn respond(found: FileFound, req: &StaticRequest<'_>) -> Outcome {
    let varies = found.varies;
    let mut outcome = answer(found, req);
    if let (true, Outcome::Response(resp, _)) = (varies, &mut outcome) {
        resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    outcome
}

/// Preconditions (304/412), then the range (206/416) or the whole representation (200).
fn answer(found: FileFound, req: &StaticRequest<'_>) -> Outcome {
    let FileFound { file, len, mtime_secs: secs, tag_len, content_type, whole, coding, varies: _, path: _ } = found;
    let suffix = coding.map_or("", Coding::etag_suffix);
    let Ok(etag) = HeaderValue::try_from(format!("\"{secs:x}-{tag_len:x}{suffix}\"")) else { return internal() };
    let v = Validators { etag: etag.to_str().unwrap_or_default(), modified: secs };
    match conditional::evaluate(req.headers, req.method, v) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            // RFC 9110 §15.4.5: the validator, and no content metadata (Content-Type,
            // Content-Length). Last-Modified is left out too: the ETag is there (its SHOULD NOT).
            let mut resp = Response::new(ResponseBody::empty());
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            resp.headers_mut().insert(header::ETAG, etag);
            return Outcome::Response(resp, 0);
        }
        Precondition::Failed => return status(StatusCode::PRECONDITION_FAILED, 0),
    }
    let ranges = match req.headers.get(header::RANGE) {
        // RFC 9110 §14.2: GET is the only method ranges are defined for.
        Some(range) if *req.method == Method::GET => {
            let applies = req
                .headers
                .get(header::IF_RANGE)
                .is_none_or(|ir| ir.to_str().is_ok_and(|ir| conditional::if_range_holds(ir, v)));
            match range.to_str() {
                Ok(range) if applies => range::parse(range, len),
                _ => Ranges::Whole,
            }
        }
        _ => Ranges::Whole,
    };
    let (mut resp, start, count) = match ranges {
        Ranges::Whole => (Response::new(ResponseBody::empty()), 0, len),
        Ranges::Many(parts) => {
            let source = match whole {
                Some(buf) => crate::response::PartSource::Buffer(buf),
                None => crate::response::PartSource::File(file),
            };
            let (multipart, total, body) = crate::response::byteranges(source, &parts, len, Some(&content_type));
            let mut resp = Response::new(body);
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));
            let headers = resp.headers_mut();
            headers.insert(header::ETAG, etag);
            if let Ok(v) = HeaderValue::try_from(last_modified) {
                headers.insert(header::LAST_MODIFIED, v);
            }
            headers.insert(header::CONTENT_TYPE, multipart);
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            if let Some(coding) = coding {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
            }
            return Outcome::Response(resp, 0);
        }
        Ranges::One { start, end } => {
            let mut resp = Response::new(ResponseBody::empty());
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::try_from(format!("bytes {start}-{end}/{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            (resp, start, end - start + 1)
        }
        Ranges::Unsatisfiable => {
            let mut resp = plain(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = HeaderValue::try_from(format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            resp.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Outcome::Response(resp, 0);
        }
    };
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));
    let headers = resp.headers_mut();
    headers.insert(header::ETAG, etag);
    if let Ok(v) = HeaderValue::try_from(last_modified) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if let Some(coding) = coding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    }
    *resp.body_mut() = match whole {
        _ if *req.method == Method::HEAD => ResponseBody::empty(),
        Some(buf) if count == len => ResponseBody::full(buf),
        Some(buf) => ResponseBody::full(buf.slice(start as usize..(start + count) as usize)),
        None => {
            // Positional reads from `start` (no shared file offset: an open-file cache may share
            // the descriptor).
            ResponseBody::file(file, start, count)
        }
    };
    Outcome::Response(resp, 0)
}

/// A listing page (GET) or its head (HEAD).
fn listing_response(req: &StaticRequest<'_>, rows: &listing::Rows) -> Outcome {
    let page = listing::page(req.path, rows);
    let len = page.len();
    let body = if *req.method == Method::HEAD { ResponseBody::empty() } else { ResponseBody::full(page) };
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Outcome::Response(resp, 0)
}

fn status(code: StatusCode, substatus: u16) -> Outcome {
    Outcome::Response(plain(code), substatus)
}

fn internal() -> Outcome {
    status(StatusCode::INTERNAL_SERVER_ERROR, 0)
}
