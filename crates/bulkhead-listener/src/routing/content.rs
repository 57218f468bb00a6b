//! A site's content settings, ready for the request path: its MIME map (`mime_types` over the
//! built-in map) with each type a prebuilt `HeaderValue`, its custom error pages, and a route's
//! response `headers` as `HeaderName`/`HeaderValue` pairs.
//!
//! Built by [`super::Table::build`] from a validated site (whose checks mean no conversion here
//! fails in practice; one that does is logged and left out). Lookups never allocate: a lookup
//! clones a `HeaderValue` (a static string, or shared bytes) and an error page's body is shared
//! `Bytes`. Used by [`crate::static_files`] (types) and [`crate::request`] (pages, headers).

use std::collections::HashMap;
use std::sync::Arc;

use bulkhead_config::Site;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

/// A site's MIME map: its `mime_types` first, then the built-in one.
#[derive(Debug, Default)]
pub struct MimeMap {
    /// Lowercase extension without the dot → type, `None` = removed (404.3).
    site: HashMap<Box<str>, Option<HeaderValue>>,
}

/// Extensions up to this length are lowercased on the stack for a site-map lookup.
const SHORT_EXT: usize = 32;

impl MimeMap {
    pub fn new(site: &Site) -> MimeMap {
        let site = site
            .mime_types
            .iter()
            .filter_map(|(ext, ty)| {
                let value = match ty.as_deref().map(HeaderValue::from_str) {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err(_)) => {
                        tracing::error!("mime_types: {ty:?} for .{ext} is not a header value; left out");
                        return None;
                    }
                };
                Some((Box::from(ext.as_str()), value))
            })
            .collect();
        MimeMap { site }
    }

    /// The `Content-Type` for a file extension (without the dot, any case), or `None` when the
    /// file must not be served (404.3).
    pub fn content_type(&self, ext: &str) -> Option<HeaderValue> {
        if !self.site.is_empty() {
            let mut buf = [0u8; SHORT_EXT];
            let found = if ext.len() <= SHORT_EXT && !ext.bytes().any(|b| b.is_ascii_uppercase()) {
                self.site.get(ext)
            } else if ext.len() <= SHORT_EXT {
                for (d, s) in buf.iter_mut().zip(ext.bytes()) {
                    *d = s.to_ascii_lowercase();
                }
                std::str::from_utf8(&buf[..ext.len()]).ok().and_then(|lower| self.site.get(lower))
            } else {
                self.site.get(ext.to_ascii_lowercase().as_str())
            };
            if let Some(ty) = found {
                return ty.clone();
            }
        }
        bulkhead_config::mime::builtin(ext).map(HeaderValue::from_static)
    }
}

/// One custom error page, ready to send.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub body: Bytes,
    pub content_type: HeaderValue,
}

/// A site's `error_pages` by status.
pub fn error_pages(site: &Site) -> HashMap<u16, ErrorPage> {
    site.error_pages
        .iter()
        .filter_map(|(status, page)| match HeaderValue::from_str(&page.content_type) {
            Ok(content_type) => Some((*status, ErrorPage { body: page.body.clone(), content_type })),
            Err(_) => {
                tracing::error!(
                    "error page {}: type {:?} is not a header value; left out",
                    page.path.display(),
                    page.content_type
                );
                None
            }
        })
        .collect()
}

/// A route's response `headers`; `None` when it has none (the request path then does nothing).
pub fn response_headers(headers: &[(String, String)]) -> Option<Arc<[(HeaderName, HeaderValue)]>> {
    if headers.is_empty() {
        return None;
    }
    let parsed: Vec<(HeaderName, HeaderValue)> = headers
        .iter()
        .filter_map(|(name, value)| match (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            (Ok(n), Ok(v)) => Some((n, v)),
            _ => {
                tracing::error!("route header {name:?}: {value:?} is not a valid header; left out");
                None
            }
        })
        .collect();
    Some(parsed.into())
}
