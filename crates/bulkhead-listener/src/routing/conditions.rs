//! A route's `match` conditions, ready for the request path: what [`bulkhead_config::RouteMatch`]
//! says, with header names parsed into [`HeaderName`]s once, when the table is built.
//!
//! Called by [`super::SiteEntry::route`] for each route under the request's path that has
//! conditions; a route without any never gets here, so plain prefix routing costs what it did.
//! Checking never allocates: the host is cut with [`super::host_name`], headers are looked up
//! by their parsed name, and query arguments are decoded into a stack buffer (a heap one only
//! for a name or value past [`STACK_DECODE`] bytes). Conditions are checked cheapest first.

use std::net::IpAddr;

use bulkhead_config::pattern::{PatternSet, SourceSet};
use bulkhead_config::{RouteMatch, Scheme};
use http::header::{HeaderMap, HeaderName};
use http::Method;

/// Longest argument name or value decoded on the stack.
const STACK_DECODE: usize = 256;

/// What the conditions look at in a request; references only, made per request.
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// The `Host` header or the absolute URI's authority, as sent (port and any case allowed).
    pub host: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The raw query string, not decoded.
    pub query: Option<&'a str>,
    /// The client's address.
    pub source: IpAddr,
    /// The scheme of the binding the request arrived on.
    pub scheme: Scheme,
}

/// One route's conditions; every one given must hold.
#[derive(Debug)]
pub struct Conditions {
    scheme: Option<Scheme>,
    method: Option<PatternSet>,
    source: Option<SourceSet>,
    host: Option<PatternSet>,
    headers: Vec<(HeaderName, PatternSet)>,
    arguments: Vec<(Box<[u8]>, PatternSet)>,
    /// A header name the config allowed but `http` refused: the route can never match (logged
    /// when the table is built). Validation accepts only tokens, so this is a safety net.
    never: bool,
}

impl Conditions {
    pub fn new(m: &RouteMatch) -> Conditions {
        let mut never = false;
        let mut headers = Vec::with_capacity(m.headers.len());
        for (name, set) in &m.headers {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) => headers.push((h, set.clone())),
                Err(_) => {
                    tracing::error!(
                        "route condition names header {name:?}, which is not a header name; the route never matches"
                    );
                    never = true;
                }
            }
        }
        Conditions {
            scheme: m.scheme,
            method: m.method.clone(),
            source: m.source.clone(),
            host: m.host.clone(),
            headers,
            arguments: m.arguments.iter().map(|(n, set)| (n.as_bytes().into(), set.clone())).collect(),
            never,
        }
    }

    /// Whether the request meets every condition.
    pub fn hold(&self, r: &RequestFacts<'_>) -> bool {
        !self.never
            && self.scheme.is_none_or(|s| s == r.scheme)
            && self.method.as_ref().is_none_or(|set| set.matches(r.method.as_str().as_bytes()))
            && self.source.as_ref().is_none_or(|set| set.matches(r.source))
            && self.host.as_ref().is_none_or(|set| set.matches(r.host.map_or("", super::host_name).as_bytes()))
            && self.headers.iter().all(|(name, set)| r.headers.get_all(name).iter().any(|v| set.matches(v.as_bytes())))
            && self.arguments.iter().all(|(name, set)| argument_holds(r.query.unwrap_or(""), name, set))
    }
}

/// Whether some `name=value` pair of the query has this (decoded) name and a value that meets
/// `set`. A pair without `=` has the empty value; an argument that is absent fails, even
/// against negations only (Unit: the request must have every argument the condition names).
fn argument_holds(query: &str, name: &[u8], set: &PatternSet) -> bool {
    query.split('&').filter(|pair| !pair.is_empty()).any(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        decoded(n, |n| n == name) && decoded(v, |v| set.matches(v))
    })
}

/// Calls `f` with `raw` form-decoded (`%XX` → the byte, `+` → space); a bad `%` escape stays as
/// written. Allocates only past [`STACK_DECODE`] bytes.
fn decoded<R>(raw: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    let raw = raw.as_bytes();
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return f(raw);
    }
    let mut stack = [0u8; STACK_DECODE];
    let mut heap = Vec::new();
    let mut len = 0;
    let mut push = |b: u8| {
        if len < STACK_DECODE {
            stack[len] = b;
        } else {
            if heap.is_empty() {
                heap.extend_from_slice(&stack);
            }
            heap.push(b);
        }
        len += 1;
    };
    let mut i = 0;
    while i < raw.len() {
        let hex = |at: usize| raw.get(at).and_then(|&b| (b as char).to_digit(16));
        match raw[i] {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(hi), Some(lo)) => {
                    push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => push(b'%'),
            },
            b'+' => push(b' '),
            b => push(b),
        }
        i += 1;
    }
    if len <= STACK_DECODE {
        f(&stack[..len])
    } else {
        f(&heap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_is_form_decoding() {
        let d = |raw: &str| decoded(raw, |b| String::from_utf8_lossy(b).into_owned());
        assert_eq!(d("a+b%20c"), "a b c");
        assert_eq!(d("%2B"), "+", "an escaped plus stays a plus");
        assert_eq!(d("caf%C3%A9"), "café");
        assert_eq!(d("100%"), "100%", "a bad escape stays as written");
        assert_eq!(d("%zz"), "%zz");
        let long = format!("{}%41", "x".repeat(300));
        assert_eq!(d(&long), format!("{}A", "x".repeat(300)), "past the stack buffer");
        let edge = format!("{}%41", "x".repeat(STACK_DECODE - 1));
        assert_eq!(d(&edge), format!("{}A", "x".repeat(STACK_DECODE - 1)));
    }

    #[test]
    fn arguments_match_decoded_names_and_values() {
        let set = PatternSet::new(["strict", "st*ct"], false);
        assert!(argument_holds("a=1&mode=strict", b"mode", &set));
        assert!(argument_holds("mod%65=str+ict", b"mode", &PatternSet::new(["str ict"], false)));
        assert!(!argument_holds("mode=STRICT", b"mode", &set), "arguments are case-sensitive");
        assert!(argument_holds("mode=loose&mode=strict", b"mode", &set), "any occurrence may meet it");
        assert!(!argument_holds("a=1", b"mode", &PatternSet::new(["!full"], false)), "absent fails");
        assert!(argument_holds("mode", b"mode", &PatternSet::new([""], false)), "no `=`: the empty value");
        assert!(!argument_holds("", b"mode", &set));
    }
}
