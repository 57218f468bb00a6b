//! A static route's URL path (after the route prefix, still percent-encoded) to a relative
//! file-system path: `bulkhead_listener::static_files::path::relative_path`. Never a panic, and
//! whatever it returns stays under the root: relative, only normal components (no `..`, no
//! root, no `.`), no NUL or `\`, and joined to a root it still starts with that root. Encoding
//! each returned component again and parsing that gives the same path.
#![no_main]

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use bulkhead_listener::static_files::path::relative_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rest) = std::str::from_utf8(data) else { return };
    let Ok(rel) = relative_path(rest) else { return };
    assert!(rel.is_relative(), "{rest:?} → {rel:?}");
    for c in rel.components() {
        let Component::Normal(name) = c else { panic!("{rest:?} → {rel:?}: component {c:?}") };
        let bytes = name.as_bytes();
        assert!(bytes != b".." && bytes != b".", "{rest:?} → {rel:?}");
        assert!(!bytes.iter().any(|&b| b == 0 || b == b'\\' || b == b'/'), "{rest:?} → {rel:?}");
    }
    assert!(!rel.as_os_str().as_bytes().contains(&0));
    let root = Path::new("/srv/root");
    let joined = root.join(&rel);
    assert!(joined.starts_with(root), "{rest:?} → {joined:?}");
    // Lexically normalised, the join still has the root's components first (no `..` climbs).
    let mut depth = 0usize;
    for c in joined.components().skip(root.components().count()) {
        match c {
            Component::Normal(_) => depth += 1,
            other => panic!("{rest:?} → {joined:?}: {other:?} at depth {depth}"),
        }
    }
    // Round trip: every component percent-encoded byte by byte parses back to the same path.
    let mut encoded = String::new();
    for c in rel.components() {
        encoded.push('/');
        for b in c.as_os_str().as_bytes() {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    assert_eq!(relative_path(&encoded).as_ref(), Ok(&rel), "{rest:?} re-encoded as {encoded:?}");
});
