//! The built-in MIME map: file extension → `Content-Type`.
//!
//! Like IIS's static file handler, a file whose extension is not in the map is **not served**
//! (404, substatus 3 in the access log — IIS's 404.3), so a stray `.env`, `.bak` or `.sqlite` in a
//! content directory never leaks. Called by [`crate::static_files`]; pure, no I/O.

/// The content type for a file extension (without the dot, any case), or `None` when the type is
/// unknown and the file must not be served.
pub fn content_type(ext: &str) -> Option<&'static str> {
    let mut lower = [0u8; 8];
    if ext.len() > lower.len() {
        return None;
    }
    for (d, s) in lower.iter_mut().zip(ext.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    let ext = std::str::from_utf8(&lower[..ext.len()]).ok()?;
    Some(match ext {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "text" | "log" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "xml" => "application/xml",
        "rss" => "application/rss+xml",
        "atom" => "application/atom+xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "bmp" => "image/bmp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "webmanifest" => "application/manifest+json",
        "bin" => "application/octet-stream",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_types() {
        assert_eq!(content_type("html"), Some("text/html; charset=utf-8"));
        assert_eq!(content_type("HTML"), Some("text/html; charset=utf-8"));
        assert_eq!(content_type("woff2"), Some("font/woff2"));
        assert_eq!(content_type("wasm"), Some("application/wasm"));
        assert_eq!(content_type("mp4"), Some("video/mp4"));
        assert_eq!(content_type("svg"), Some("image/svg+xml"));
    }

    #[test]
    fn unknown_types_are_refused() {
        assert_eq!(content_type("env"), None);
        assert_eq!(content_type("bak"), None);
        assert_eq!(content_type(""), None);
        assert_eq!(content_type("averyveryverylongextension"), None);
    }
}
