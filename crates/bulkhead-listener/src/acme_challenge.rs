//! The ACME HTTP-01 challenges the listener answers (RFC 8555 §8.3): the manager's ACME
//! client places an order, hands the listener each challenge's token and key authorization
//! (`AcmeChallenges`, the whole current set), and the CA fetches
//! `http://NAME/.well-known/acme-challenge/TOKEN` from a plain-HTTP binding.
//!
//! Called by [`crate::control`] (replace the set) and by the request path (look a path up:
//! one prefix check, then one pointer load and a map lookup, no lock). Holds no keys: a key
//! authorization is public by design (token + account-key thumbprint). Must never answer on an
//! https connection or for a token not in the current set (that falls through to routing).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

/// The path prefix HTTP-01 uses.
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// The current challenges: token → key authorization.
#[derive(Default)]
pub struct AcmeChallenges {
    tokens: ArcSwap<HashMap<String, Bytes>>,
}

impl AcmeChallenges {
    /// Makes `tokens` the whole set answered from now on.
    pub fn replace(&self, tokens: Vec<(String, String)>) {
        let map: HashMap<String, Bytes> = tokens.into_iter().map(|(t, k)| (t, Bytes::from(k))).collect();
        self.tokens.store(Arc::new(map));
    }

    /// The key authorization to answer for `path`, if it asks for a current token.
    pub fn answer(&self, path: &str) -> Option<Bytes> {
        let token = path.strip_prefix(PREFIX)?;
        self.tokens.load().get(token).cloned()
    }

    /// Whether no challenge is being answered.
    pub fn is_empty(&self) -> bool {
        self.tokens.load().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_current_tokens_under_the_prefix() {
        let c = AcmeChallenges::default();
        assert_eq!(c.answer("/.well-known/acme-challenge/abc"), None);
        c.replace(vec![("abc".into(), "abc.thumb".into())]);
        assert_eq!(c.answer("/.well-known/acme-challenge/abc").as_deref(), Some(&b"abc.thumb"[..]));
        assert_eq!(c.answer("/.well-known/acme-challenge/abd"), None);
        assert_eq!(c.answer("/abc"), None);
        assert_eq!(c.answer("/.well-known/acme-challenge/"), None);
        c.replace(Vec::new());
        assert_eq!((c.answer("/.well-known/acme-challenge/abc"), c.is_empty()), (None, true));
    }
}
