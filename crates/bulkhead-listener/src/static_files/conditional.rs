//! Conditional requests (RFC 9110 §13) against a file's validators: its strong `ETag` and its
//! `Last-Modified` time.
//!
//! [`evaluate`] runs the preconditions in the order of §13.2.2: `If-Match` (strong comparison,
//! `*`, lists) else `If-Unmodified-Since` → 412 when false; then `If-None-Match` (weak
//! comparison) → 304 for GET/HEAD (412 for other methods), else `If-Modified-Since` (GET and
//! HEAD only, ignored when `If-None-Match` is present) → 304. [`if_range_holds`] is step 5:
//! whether an `If-Range` lets the `Range` apply. An unparsable date is ignored, as the RFC
//! says; an unparsable entity-tag list matches nothing. Pure, no I/O, no allocation; called by
//! [`crate::static_files`].

use std::time::UNIX_EPOCH;

use http::header::{self, HeaderMap, HeaderName};
use http::Method;

/// A file's validators.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// The strong entity-tag, with its quotes: `"5f3c-1a"`.
    pub etag: &'a str,
    /// Last modification, in whole seconds since the epoch (HTTP dates have no finer grain).
    pub modified: u64,
}

/// What the preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the request (ranges may still apply).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// RFC 9110 §13.2.2, steps 1 to 4.
pub fn evaluate(headers: &HeaderMap, method: &Method, v: Validators<'_>) -> Precondition {
    let get_or_head = *method == Method::GET || *method == Method::HEAD;
    if let Some(matched) = tag_match(headers, &header::IF_MATCH, v.etag, Compare::Strong) {
        if !matched {
            return Precondition::Failed;
        }
    } else if let Some(since) = date(headers, &header::IF_UNMODIFIED_SINCE) {
        if v.modified > since {
            return Precondition::Failed;
        }
    }
    if let Some(matched) = tag_match(headers, &header::IF_NONE_MATCH, v.etag, Compare::Weak) {
        if matched {
            return if get_or_head { Precondition::NotModified } else { Precondition::Failed };
        }
    } else if get_or_head {
        if let Some(since) = date(headers, &header::IF_MODIFIED_SINCE) {
            if v.modified <= since {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// RFC 9110 §13.1.5: an `If-Range` holds when its entity-tag is strongly equal to the current
/// one, or its date is exactly the current `Last-Modified`. A weak tag or an unparsable value
/// never holds (the whole representation is sent).
pub fn if_range_holds(value: &str, v: Validators<'_>) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        // Our tag is strong and well formed, so equality is the strong comparison.
        return value == v.etag;
    }
    httpdate::parse_http_date(value).ok().and_then(|d| d.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs())
        == Some(v.modified)
}

#[derive(Clone, Copy)]
enum Compare {
    Strong,
    Weak,
}

/// `None` if `name` is absent; else whether it is `*` or lists a tag equal to `etag`.
fn tag_match(headers: &HeaderMap, name: &HeaderName, etag: &str, how: Compare) -> Option<bool> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut matched = false;
    for value in values {
        let Ok(text) = value.to_str() else { continue };
        if text.trim() == "*" {
            return Some(true);
        }
        scan_tags(text, |weak, tag| {
            matched |= tag == etag && (matches!(how, Compare::Weak) || !weak);
            !matched
        });
    }
    Some(matched)
}

/// Walks a comma-separated entity-tag list, calling `f(weak, "opaque-with-quotes")` for each
/// tag while it returns true. Returns false if the list is malformed (what came before the
/// fault was still seen).
fn scan_tags(mut s: &str, mut f: impl FnMut(bool, &str) -> bool) -> bool {
    loop {
        s = s.trim_start_matches([' ', '\t', ',']);
        if s.is_empty() {
            return true;
        }
        let weak = s.starts_with("W/");
        if weak {
            s = &s[2..];
        }
        if !s.starts_with('"') {
            return false;
        }
        let Some(close) = s[1..].find('"') else { return false };
        let (tag, rest) = s.split_at(close + 2);
        if !f(weak, tag) {
            return true;
        }
        if !(rest.is_empty() || rest.starts_with([' ', '\t', ','])) {
            return false;
        }
        s = rest;
    }
}

/// A date header as seconds since the epoch; `None` when absent, repeated or not an HTTP-date
/// (all of which the RFC says to ignore).
fn date(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let when = httpdate::parse_http_date(first.to_str().ok()?).ok()?;
    Some(when.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::Duration;

    const V: Validators<'static> = Validators { etag: "\"a-1\"", modified: 1_000_000 };

    fn http_date(secs: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn eval(method: Method, pairs: &[(&HeaderName, &str)]) -> Precondition {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        evaluate(&h, &method, V)
    }

    use Precondition::*;

    #[test]
    fn if_none_match_is_weak_and_takes_lists_and_star() {
        let inm = &header::IF_NONE_MATCH;
        assert_eq!(eval(Method::GET, &[]), Proceed);
        assert_eq!(eval(Method::GET, &[(inm, "\"a-1\"")]), NotModified);
        assert_eq!(eval(Method::HEAD, &[(inm, "W/\"a-1\"")]), NotModified, "weak comparison");
        assert_eq!(eval(Method::GET, &[(inm, "\"x\", W/\"a-1\"")]), NotModified);
        assert_eq!(eval(Method::GET, &[(inm, "\"x\""), (inm, "\"a-1\"")]), NotModified, "list over two lines");
        assert_eq!(eval(Method::GET, &[(inm, "*")]), NotModified);
        assert_eq!(eval(Method::GET, &[(inm, "\"b-1\"")]), Proceed);
        assert_eq!(eval(Method::GET, &[(inm, "a-1")]), Proceed, "an unquoted tag is malformed");
        assert_eq!(eval(Method::POST, &[(inm, "\"a-1\"")]), Failed, "not GET/HEAD: 412");
    }

    #[test]
    fn if_modified_since_only_without_if_none_match() {
        let ims = &header::IF_MODIFIED_SINCE;
        let inm = &header::IF_NONE_MATCH;
        assert_eq!(eval(Method::GET, &[(ims, &http_date(V.modified))]), NotModified);
        assert_eq!(eval(Method::GET, &[(ims, &http_date(V.modified + 5))]), NotModified);
        assert_eq!(eval(Method::GET, &[(ims, &http_date(V.modified - 1))]), Proceed);
        assert_eq!(eval(Method::GET, &[(ims, "yesterday")]), Proceed, "an invalid date is ignored");
        let later = http_date(V.modified + 5);
        assert_eq!(eval(Method::GET, &[(inm, "\"b-1\""), (ims, &later)]), Proceed, "If-None-Match wins");
        assert_eq!(eval(Method::POST, &[(ims, &later)]), Proceed, "ignored for POST");
    }

    #[test]
    fn if_match_is_strong_and_comes_first() {
        let im = &header::IF_MATCH;
        let inm = &header::IF_NONE_MATCH;
        assert_eq!(eval(Method::GET, &[(im, "\"a-1\"")]), Proceed);
        assert_eq!(eval(Method::GET, &[(im, "\"x\", \"a-1\"")]), Proceed);
        assert_eq!(eval(Method::GET, &[(im, "*")]), Proceed);
        assert_eq!(eval(Method::GET, &[(im, "W/\"a-1\"")]), Failed, "strong comparison");
        assert_eq!(eval(Method::GET, &[(im, "\"b-1\"")]), Failed);
        assert_eq!(eval(Method::GET, &[(im, "\"b-1\""), (inm, "\"a-1\"")]), Failed, "412 before 304");
        assert_eq!(eval(Method::GET, &[(im, "\"a-1\""), (inm, "\"a-1\"")]), NotModified);
    }

    #[test]
    fn if_unmodified_since_only_without_if_match() {
        let ius = &header::IF_UNMODIFIED_SINCE;
        let im = &header::IF_MATCH;
        assert_eq!(eval(Method::GET, &[(ius, &http_date(V.modified))]), Proceed);
        assert_eq!(eval(Method::GET, &[(ius, &http_date(V.modified - 1))]), Failed);
        assert_eq!(eval(Method::GET, &[(ius, "not a date")]), Proceed, "an invalid date is ignored");
        assert_eq!(eval(Method::GET, &[(im, "\"a-1\""), (ius, &http_date(V.modified - 1))]), Proceed);
    }

    #[test]
    fn if_range_needs_a_strong_tag_or_the_exact_date() {
        assert!(if_range_holds("\"a-1\"", V));
        assert!(!if_range_holds("W/\"a-1\"", V), "weak tags never hold");
        assert!(!if_range_holds("\"b-1\"", V));
        assert!(!if_range_holds("\"a-1\", \"b-1\"", V), "one tag, not a list");
        assert!(if_range_holds(&http_date(V.modified), V));
        assert!(!if_range_holds(&http_date(V.modified + 1), V), "exact match only");
        assert!(!if_range_holds("garbage", V));
    }
}
