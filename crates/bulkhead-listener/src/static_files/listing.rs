//! Directory listings for routes with `directory_browsing = true` (IIS's directory browsing,
//! nginx's `autoindex`): an HTML page of the directory's entries.
//!
//! Directories first, then files, each sorted by name (bytes); directories end with `/`; each
//! row has the size in bytes (files) and the last-modified time as an HTTP-date. Names are
//! percent-encoded in links and HTML-escaped in text (a name is data, never markup). Not listed:
//! names starting with `.` (dot-files, and so `.git`, `.env`…), the route's other
//! `hidden_segments`, symlinks that resolve outside the route's root or nowhere. At most
//! [`MAX_ENTRIES`] directory entries are read (the first the file system yields, listed or not),
//! and the page says so when there were more.
//!
//! [`rows`] reads the directory (blocking; called in the one blocking trip of
//! [`crate::static_files`]); [`page`] wraps the rows in the page for a URL path (pure).

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::path::is_hidden;

/// Directory entries read for one listing.
pub const MAX_ENTRIES: usize = 10_000;

/// Bytes escaped in a link to an entry: all but RFC 3986's unreserved characters.
const LINK: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The table rows of a listing, ready for [`page`].
pub struct Rows {
    pub html: String,
    /// The directory had more than [`MAX_ENTRIES`] entries.
    pub truncated: bool,
}

struct Entry {
    name: Vec<u8>,
    dir: bool,
    size: u64,
    modified: Option<SystemTime>,
}

/// Reads `dir` (inside `canonical_root`) and renders its rows. Errors are `read_dir`'s (the
/// caller answers `EACCES` with 403).
pub fn rows(dir: &Path, canonical_root: &Path, hidden: &[String]) -> std::io::Result<Rows> {
    let mut read = std::fs::read_dir(dir)?;
    let mut entries = Vec::new();
    for entry in read.by_ref().take(MAX_ENTRIES) {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if name.as_bytes().starts_with(b".") || is_hidden(&name, hidden) {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        let meta = if kind.is_symlink() {
            // As served: only a link that resolves inside the root is shown, with its target's data.
            match std::fs::canonicalize(entry.path()) {
                Ok(target) if target.starts_with(canonical_root) => std::fs::metadata(target).ok(),
                _ => continue,
            }
        } else {
            entry.metadata().ok()
        };
        let dir = meta.as_ref().map_or(kind.is_dir(), |m| m.is_dir());
        if !dir && !meta.as_ref().map_or(kind.is_file(), |m| m.is_file()) {
            continue; // sockets, FIFOs, devices: never served, so never listed
        }
        entries.push(Entry {
            name: name.as_bytes().to_vec(),
            dir,
            size: meta.as_ref().map_or(0, |m| m.len()),
            modified: meta.and_then(|m| m.modified().ok()),
        });
    }
    let truncated = read.next().is_some();
    entries.sort_unstable_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    let mut html = String::with_capacity(entries.len() * 120);
    for e in &entries {
        let href = percent_encode(&e.name, LINK);
        let text = escape(&String::from_utf8_lossy(&e.name));
        let slash = if e.dir { "/" } else { "" };
        let when = e.modified.filter(|t| *t >= UNIX_EPOCH).map(httpdate::fmt_http_date).unwrap_or_default();
        let size = if e.dir { "-".to_string() } else { e.size.to_string() };
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{href}{slash}\">{text}{slash}</a></td><td>{when}</td><td>{size}</td></tr>"
        );
    }
    Ok(Rows { html, truncated })
}

/// The whole page for the directory at `url_path` (as requested, still percent-encoded).
pub fn page(url_path: &str, rows: &Rows) -> String {
    let title = escape(&percent_decode_str(url_path).decode_utf8_lossy());
    let mut page = String::with_capacity(rows.html.len() + 512);
    let _ = write!(
        page,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n<tr><th>Name</th><th>Last modified</th><th>Size</th></tr>\n"
    );
    if url_path != "/" {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    page.push_str(&rows.html);
    page.push_str("</table>\n");
    if rows.truncated {
        let _ = writeln!(page, "<p>Only the first {MAX_ENTRIES} entries of this directory were read.</p>");
    }
    page.push_str("</body></html>\n");
    page
}

/// Text made safe inside HTML elements and attribute values (also used by the demo app's page).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_encoded() {
        let dir = std::env::temp_dir().join(format!("bulkhead-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub dir")).unwrap();
        std::fs::write(dir.join("<b>&\"x\".txt"), "12345").unwrap();
        std::fs::write(dir.join("a.txt"), "1").unwrap();
        std::fs::write(dir.join(".secret"), "x").unwrap();
        std::fs::write(dir.join("bin"), "x").unwrap();
        let canonical = std::fs::canonicalize(&dir).unwrap();
        let rows = rows(&canonical, &canonical, &["bin".to_string()]).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let html = page("/files/a%20b/", &rows);
        assert!(html.contains("<title>Index of /files/a b/</title>"), "{html}");
        assert!(html.contains("<a href=\"sub%20dir/\">sub dir/</a>"), "{html}");
        assert!(html.contains("<a href=\"%3Cb%3E%26%22x%22.txt\">&lt;b&gt;&amp;&quot;x&quot;.txt</a>"), "{html}");
        assert!(html.contains("<td>5</td>"), "{html}");
        assert!(!html.contains("secret") && !html.contains(">bin<"), "dot-files and hidden names: {html}");
        let (sub, lt, a) = (html.find("sub%20dir").unwrap(), html.find("%3Cb").unwrap(), html.find("a.txt").unwrap());
        assert!(sub < lt && lt < a, "directories first, then by name: {html}");
        assert!(!rows.truncated);
    }
}
