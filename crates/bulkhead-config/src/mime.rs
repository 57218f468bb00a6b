//! The built-in MIME map (file extension → `Content-Type`) and the syntax checks for a site's
//! `mime_types`, which adds to, overrides or removes entries of it.
//!
//! Like IIS's static file handler, a file whose extension is not in the map is **not served**
//! (404, substatus 3 in the access log — IIS's 404.3), so a stray `.env`, `.bak` or `.sqlite` in a
//! content directory never leaks. Here so that validation can give a site's `error_pages` their
//! type and the listener's static files use the same table; pure, no I/O.

/// The built-in content type for a file extension (without the dot, any case), or `None` when
/// the type is unknown and the file must not be served.
pub fn builtin(ext: &str) -> Option<&'static str> {
    let mut lower = [0u8; 11];
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

/// A character of an HTTP token (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// RFC 9110 §8.3.1 `media-type = type "/" subtype parameters`, each parameter
/// `; name=value` with a token name and a token or quoted-string value.
pub fn is_media_type(text: &str) -> bool {
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim_end_matches([' ', '\t']);
    let Some((ty, sub)) = essence.split_once('/') else { return false };
    if !is_token(ty) || !is_token(sub) {
        return false;
    }
    parts.all(|p| {
        let Some((name, value)) = p.trim_matches([' ', '\t']).split_once('=') else { return false };
        is_token(name) && (is_token(value) || is_quoted_string(value))
    })
}

fn is_quoted_string(v: &str) -> bool {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else { return false };
    let mut escaped = false;
    for b in inner.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return false,
            b'\t' | b' '..=b'~' => {}
            _ => return false,
        }
    }
    !escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_types() {
        assert_eq!(builtin("html"), Some("text/html; charset=utf-8"));
        assert_eq!(builtin("HTML"), Some("text/html; charset=utf-8"));
        assert_eq!(builtin("woff2"), Some("font/woff2"));
        assert_eq!(builtin("wasm"), Some("application/wasm"));
        assert_eq!(builtin("webmanifest"), Some("application/manifest+json"));
    }

    #[test]
    fn unknown_types_are_refused() {
        assert_eq!(builtin("env"), None);
        assert_eq!(builtin("bak"), None);
        assert_eq!(builtin(""), None);
        assert_eq!(builtin("averyveryverylongextension"), None);
    }

    #[test]
    fn media_type_syntax() {
        for ok in ["text/plain", "application/manifest+json", "text/html; charset=utf-8", "a/b;x=\"y z\""] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in ["", "text", "text/", "/plain", "text/plain;", "text/pl ain", "text/plain; charset", "a/b;x=\"y"] {
            assert!(!is_media_type(bad), "{bad}");
        }
    }
}
