//! The TCP admin endpoint's token check: `Authorization: Bearer TOKEN`, or the dashboard's
//! cookie `bulkhead_token=TOKEN` (set by `POST /login` or `GET /?token=TOKEN`).
//!
//! Called by [`super::routes`] for every request on the TCP endpoint; the unix socket needs no
//! token (its mode 0600 already limits it to the owner). Comparison takes the same time
//! whatever the first differing byte, so the token cannot be guessed by timing.

use http::HeaderMap;

/// The cookie holding the token.
pub const COOKIE: &str = "bulkhead_token";

/// Whether the request carries `token` in its Authorization header or cookie.
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .any(|t| same(t.trim(), token));
    bearer || cookie(headers).is_some_and(|t| same(&t, token))
}

/// The value of our cookie, if sent.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| percent_decode(v))
}

/// Constant-time equality (for equal lengths; the length itself is not secret).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Set-Cookie` value that stores `token` for the dashboard.
pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", percent_encode(token))
}

/// Decodes `%XX` escapes and `+` (form encoding); malformed escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// RFC 3986's unreserved characters stay; everything else is escaped.
const ESCAPED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ESCAPED).to_string()
}

/// The value of `name` in a query string or form body (`a=1&b=2`), decoded.
pub fn form_value(query: &str, name: &str) -> Option<String> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| percent_decode(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_cookie_are_accepted() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "secret-token-123"));
        h.insert(http::header::AUTHORIZATION, "Bearer secret-token-123".parse().unwrap());
        assert!(authorized(&h, "secret-token-123"));
        assert!(!authorized(&h, "secret-token-124"));
        let mut c = HeaderMap::new();
        c.insert(http::header::COOKIE, "a=b; bulkhead_token=s%20t".parse().unwrap());
        assert!(authorized(&c, "s t"));
    }

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(form_value("x=1&token=a%2Bb+c", "token").as_deref(), Some("a+b c"));
        assert_eq!(form_value("x=1", "token"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
