//! What a site sends besides files and workers' answers: its `mime_types` (checked as
//! extensions and media types), its `error_pages` (statuses 400 to 599, each a readable file of
//! at most [`MAX_ERROR_PAGE`] bytes whose extension has a type in the site's map, read into
//! memory here, so every load and reload re-reads them), and a route's response `headers`
//! (token names, none hop-by-hop or framing, values of visible ASCII).
//!
//! Called by [`super::site`] (maps and pages) and [`super::route`] (headers).

use std::io::Read;

use crate::mime::{is_media_type, is_tchar};

use super::*;

/// Headers a route may not set: hop-by-hop ones (RFC 9110 §7.6.1), which end at the next hop
/// and are removed from workers' answers too, and the framing and coding headers the listener
/// computes for each body (a wrong one would corrupt the response).
const REFUSED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
    "content-range",
];

/// `mime_types` → extension (lowercase, no dot) → type, `None` for `""` (removed).
pub(super) fn mime_types(
    c: &mut Checker<'_>,
    key: &str,
    raw: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for (ext, ty) in raw {
        let k = format!("{key}.{}", quote_key(ext));
        let Some(bare) = ext.strip_prefix('.') else {
            c.err(k, format!("{ext:?} is not a file extension; expected one with its dot, like \".webmanifest\""));
            continue;
        };
        if bare.is_empty()
            || bare
                .bytes()
                .any(|b| matches!(b, b'.' | b'/' | b'\\' | 0) || b.is_ascii_whitespace() || b.is_ascii_control())
        {
            c.err(k, format!("{ext:?} is not one file extension; expected a dot and a name without \".\", \"/\" or spaces, like \".log\""));
            continue;
        }
        let ty = if ty.is_empty() {
            None
        } else if is_media_type(ty) {
            Some(ty.clone())
        } else {
            c.err(k, format!("{ty:?} is not a media type; expected type/subtype with optional parameters, like \"text/plain; charset=utf-8\", or \"\" to remove the type"));
            continue;
        };
        if out.insert(bare.to_ascii_lowercase(), ty).is_some() {
            c.err(k, format!("{ext:?} is listed twice (extensions are compared without regard to case)"));
        }
    }
    out
}

/// `error_pages`: each status and file checked, each file read. `site` gives the MIME map.
pub(super) fn error_pages(
    c: &mut Checker<'_>,
    key: &str,
    raw: &BTreeMap<String, String>,
    site: &Site,
) -> BTreeMap<u16, ErrorPage> {
    let mut out = BTreeMap::new();
    for (status, file) in raw {
        let k = format!("{key}.{}", quote_key(status));
        let code = match status.parse::<u16>() {
            Ok(code) if (400..=599).contains(&code) => code,
            _ => {
                c.err(
                    k,
                    format!("{status:?} is not an error status; expected 400 to 599, like 404 = \"errors/404.html\""),
                );
                continue;
            }
        };
        let path = c.path(file);
        let body = match read_page(&path) {
            Ok(body) => body,
            // The listener's copy (checked whole by the manager): a page its user cannot read is
            // left out, and that status gets the plain answer; the manager warned about it.
            Err(_) if c.trusted => continue,
            Err(e) => {
                c.err(k, format!("{} {e}; expected a readable file of at most 1MiB", path.display()));
                continue;
            }
        };
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let Some(content_type) = site.content_type(ext).map(str::to_string) else {
            c.err(&k, format!("{}: the extension {ext:?} has no type in this site's MIME map; name the page .html (or another known type) or add its extension to mime_types", path.display()));
            continue;
        };
        out.insert(code, ErrorPage { path, content_type, body });
    }
    out
}

/// A page's bytes, or the end of a sentence saying why not.
fn read_page(path: &Path) -> Result<bytes::Bytes, String> {
    let file = std::fs::File::open(path).map_err(|e| io_problem(&e))?;
    let meta = file.metadata().map_err(|e| io_problem(&e))?;
    if !meta.is_file() {
        return Err("is not a file".into());
    }
    let mut body = Vec::with_capacity(meta.len().min(MAX_ERROR_PAGE) as usize);
    file.take(MAX_ERROR_PAGE + 1).read_to_end(&mut body).map_err(|e| io_problem(&e))?;
    if body.len() as u64 > MAX_ERROR_PAGE {
        return Err(format!("is larger than {MAX_ERROR_PAGE} bytes (pages are held in memory)"));
    }
    Ok(body.into())
}

/// A route's `headers`, in file order of the table (names sorted as TOML tables are).
pub(super) fn headers(c: &mut Checker<'_>, key: &str, raw: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in raw {
        let k = format!("{key}.{}", quote_key(name));
        let lower = name.to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_tchar) {
            c.err(
                k,
                format!("{name:?} is not a header name; expected letters, digits and `-`, like \"X-Frame-Options\""),
            );
        } else if REFUSED_HEADERS.contains(&lower.as_str()) {
            c.err(
                k,
                format!("{name:?} cannot be set by a route: the listener manages it for each connection and body"),
            );
        } else if !valid_value(value) {
            c.err(k, format!("{value:?} is not a header value; expected visible ASCII characters, spaces and tabs, not starting or ending with a space"));
        } else if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            c.err(k, format!("{name:?} is listed twice (header names are compared without regard to case)"));
        } else {
            out.push((name.clone(), value.clone()));
        }
    }
    out
}

/// RFC 9110 §5.5 `field-value` without obs-text: VCHAR, SP and HTAB, no whitespace at either
/// end; may be empty.
fn valid_value(v: &str) -> bool {
    let edge = |b: Option<&u8>| b.is_none_or(|b| *b != b' ' && *b != b'\t');
    v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        && edge(v.as_bytes().first())
        && edge(v.as_bytes().last())
}
