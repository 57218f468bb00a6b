//! Path safety for static routes: from the raw URL path after the route prefix to a relative
//! file-system path that cannot leave the route's root.
//!
//! Refused outright (the caller answers 404, or 400 for malformed percent-encoding): `..`
//! segments (also as `%2e%2e`), encoded `/` or `\` (`%2f`, `%5c`), NUL, backslashes. The caller
//! still canonicalises the result and checks it stays under the canonical root, which catches
//! symlinks pointing out. [`has_hidden_segment`] says whether a path names one of a route's
//! `hidden_segments` (answered 404.8). Pure, no I/O; called by [`crate::static_files`].

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why a URL path cannot name a file under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// A `%` not followed by two hex digits: 400.
    MalformedEncoding,
    /// A segment that tries to escape or smuggle a separator: 404.
    Forbidden,
}

/// The relative path named by `rest` (the URL path after the route prefix, still
/// percent-encoded, without the query).
pub fn relative_path(rest: &str) -> Result<PathBuf, PathRefusal> {
    let mut out = PathBuf::new();
    let mut decoded = Vec::new();
    for raw in rest.split('/') {
        if raw.is_empty() {
            continue;
        }
        decode_segment(raw, &mut decoded)?;
        if decoded == b"." {
            continue;
        }
        if decoded == b".." || decoded.iter().any(|&b| b == 0 || b == b'/' || b == b'\\') {
            return Err(PathRefusal::Forbidden);
        }
        out.push(OsStr::from_bytes(&decoded));
    }
    Ok(out)
}

/// Whether any segment of `rel` (a decoded relative path) is one of `hidden`, ignoring ASCII
/// case (a case-insensitive file system would serve `.GIT/config` as `.git/config`).
pub fn has_hidden_segment(rel: &Path, hidden: &[String]) -> bool {
    !hidden.is_empty()
        && rel.components().any(|c| match c {
            Component::Normal(seg) => is_hidden(seg, hidden),
            _ => false,
        })
}

/// Whether one file name is one of `hidden`, ignoring ASCII case.
pub fn is_hidden(name: &OsStr, hidden: &[String]) -> bool {
    hidden.iter().any(|h| h.as_bytes().eq_ignore_ascii_case(name.as_bytes()))
}

/// Percent-decodes one segment into `out` (cleared first).
fn decode_segment(raw: &str, out: &mut Vec<u8>) -> Result<(), PathRefusal> {
    out.clear();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(PathRefusal::MalformedEncoding),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        assert_eq!(relative_path("/a/b.html"), Ok(PathBuf::from("a/b.html")));
        assert_eq!(relative_path(""), Ok(PathBuf::new()));
        assert_eq!(relative_path("/"), Ok(PathBuf::new()));
        assert_eq!(relative_path("//a//./b"), Ok(PathBuf::from("a/b")));
        assert_eq!(relative_path("/hello%20world.txt"), Ok(PathBuf::from("hello world.txt")));
        assert_eq!(relative_path("/caf%C3%A9"), Ok(PathBuf::from("café")));
    }

    #[test]
    fn traversal_refused() {
        for bad in ["/../etc/passwd", "/a/../../b", "/%2e%2e/x", "/%2E%2E/x", "/.%2e/x"] {
            assert_eq!(relative_path(bad), Err(PathRefusal::Forbidden), "{bad}");
        }
    }

    #[test]
    fn smuggled_separators_refused() {
        for bad in ["/a%2fb", "/a%2F..%2Fb", "/a%5cb", "/a\\b", "/a%00b"] {
            assert_eq!(relative_path(bad), Err(PathRefusal::Forbidden), "{bad}");
        }
    }

    #[test]
    fn hidden_segments_match_whole_segments_in_any_case() {
        let hidden: Vec<String> = [".git", ".env"].iter().map(|s| s.to_string()).collect();
        let rel = |p: &str| relative_path(p).unwrap();
        for yes in ["/.git/config", "/a/.git", "/%2egit/HEAD", "/.GIT/config", "/x/.Env"] {
            assert!(has_hidden_segment(&rel(yes), &hidden), "{yes}");
        }
        for no in ["/git/config", "/.gitignore", "/a.git", "/.env.local", "/.well-known/x"] {
            assert!(!has_hidden_segment(&rel(no), &hidden), "{no}");
        }
        assert!(!has_hidden_segment(&rel("/.git/config"), &[]), "an empty list hides nothing");
    }

    #[test]
    fn malformed_encoding_is_400() {
        for bad in ["/a%", "/a%2", "/a%zz", "/%g0"] {
            assert_eq!(relative_path(bad), Err(PathRefusal::MalformedEncoding), "{bad}");
        }
    }
}
