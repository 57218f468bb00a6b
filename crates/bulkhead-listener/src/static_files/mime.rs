//! The MIME map of static files: the site's [`MimeMap`] (its `mime_types` over the built-in
//! map of [`bulkhead_config::mime`]).
//!
//! Like IIS's static file handler, a file whose extension is not in the map is **not served**
//! (404, substatus 3 in the access log — IIS's 404.3), so a stray `.env`, `.bak` or `.sqlite` in a
//! content directory never leaks. Called by [`crate::static_files`]; pure, no I/O.

use std::path::Path;

use http::HeaderValue;

use crate::routing::MimeMap;

/// The content type for a file by its extension, or `None` when the type is unknown and the file
/// must not be served.
pub fn content_type(map: &MimeMap, path: &Path) -> Option<HeaderValue> {
    path.extension().and_then(|e| e.to_str()).and_then(|ext| map.content_type(ext))
}
