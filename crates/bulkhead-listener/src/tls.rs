//! TLS for https bindings: one rustls [`ServerConfig`] per https listening socket, built from
//! the certificates the manager read and sent (the listener never opens a key file), swapped
//! whole when a configuration or a certificate changes — new connections take the new one,
//! open connections keep the one they shook hands with, nothing is closed or restarted.
//!
//! Settings: TLS 1.2 and 1.3 only, rustls's default (safe) cipher suites on the `ring`
//! provider, session resumption by tickets and by a server-side session cache (both kept
//! across swaps), ALPN [`ALPN`]. Certificate choice by SNI among the sites bound on that
//! socket: a certificate naming the exact host beats a wildcard (`*.example.com`) one; a client
//! without SNI, or naming no certificate's host, gets the socket's default certificate — the
//! first https site bound on that socket, in config order.
//!
//! Called by [`crate::control`] (install) and [`crate::accept`] (per connection: one pointer
//! load and a map lookup, no lock). A failed or timed-out handshake is counted
//! ([`TlsState::take_failures`], sent in `Stats`), never logged per attempt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bulkhead_config::{Config, Scheme};
use bulkhead_proto::{ListenSocket, SiteCertificate};
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The application protocols offered by ALPN: exactly what [`crate::conn`] serves, `h2` first (a
/// client offering both gets HTTP/2, as nginx and Caddy choose).
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Sessions remembered for resumption without tickets.
const SESSION_CACHE: usize = 4096;

/// Why the certificates cannot be installed (the manager checked them, so this means a bug or
/// a message from another version).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("site {site:?}: {what}")]
    Certificate { site: String, what: String },
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS configurations in force, by listening socket fd.
pub struct TlsState {
    by_socket: ArcSwap<HashMap<i32, TlsAcceptor>>,
    failures: AtomicU64,
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Option<Arc<dyn ProducesTickets>>,
}

impl Default for TlsState {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsState {
    pub fn new() -> Self {
        let tickets = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| tracing::warn!("TLS session tickets unavailable ({e}); the session cache still resumes"))
            .ok();
        TlsState {
            by_socket: ArcSwap::from_pointee(HashMap::new()),
            failures: AtomicU64::new(0),
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE),
            tickets,
        }
    }

    /// The acceptor for connections on `socket`, if it is an https socket with certificates.
    pub fn acceptor(&self, socket: i32) -> Option<TlsAcceptor> {
        self.by_socket.load().get(&socket).cloned()
    }

    pub fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed handshakes since the previous call.
    pub fn take_failures(&self) -> u64 {
        self.failures.swap(0, Ordering::Relaxed)
    }

    /// Builds a configuration for each https socket of `config` from `certificates` and makes
    /// it the one new connections use. On error nothing changes.
    pub fn install(
        &self,
        config: &Config,
        sockets: &[ListenSocket],
        certificates: &[SiteCertificate],
    ) -> Result<(), TlsSetupError> {
        let mut keys: HashMap<&str, (Arc<CertifiedKey>, &[String])> = HashMap::new();
        for c in certificates {
            keys.insert(c.site.as_str(), (Arc::new(certified_key(c)?), &c.names));
        }
        let mut by_socket = HashMap::new();
        for socket in sockets {
            let mut resolver = SniResolver::default();
            for site in &config.sites {
                let https =
                    site.bindings.iter().any(|b| b.scheme == Scheme::Https && socket.bindings.contains(&b.text));
                let Some((key, names)) = keys.get(site.name.as_str()).filter(|_| https) else { continue };
                resolver.add(key, names);
            }
            if resolver.default.is_some() {
                by_socket.insert(socket.fd, TlsAcceptor::from(self.server_config(resolver)?));
            }
        }
        self.by_socket.store(Arc::new(by_socket));
        Ok(())
    }

    fn server_config(&self, resolver: SniResolver) -> Result<Arc<ServerConfig>, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        config.session_storage = self.sessions.clone();
        if let Some(t) = &self.tickets {
            config.ticketer = t.clone();
        }
        Ok(Arc::new(config))
    }
}

fn certified_key(c: &SiteCertificate) -> Result<CertifiedKey, TlsSetupError> {
    let bad = |what: &str| TlsSetupError::Certificate { site: c.site.clone(), what: what.to_string() };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(c.cert_pem.as_bytes()).filter_map(Result::ok).collect();
    if chain.is_empty() {
        return Err(bad("no certificate in the PEM the manager sent"));
    }
    let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).map_err(|_| bad("no private key in the PEM"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| bad(&e.to_string()))?;
    Ok(CertifiedKey::new(chain, signing))
}

/// Picks a socket's certificate by SNI.
#[derive(Debug, Default)]
struct SniResolver {
    /// Exact names.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` certificates, by `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Adds one site's certificate (sites in config order: the first is the default, and an
    /// earlier site keeps a name two sites' certificates share).
    fn add(&mut self, key: &Arc<CertifiedKey>, names: &[String]) {
        self.default.get_or_insert_with(|| key.clone());
        for name in names {
            match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.to_string()).or_insert_with(|| key.clone()),
                None => self.exact.entry(name.clone()).or_insert_with(|| key.clone()),
            };
        }
    }

    fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni else { return self.default.clone() };
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        let name = name.trim_end_matches('.');
        self.exact
            .get(name)
            .or_else(|| name.split_once('.').and_then(|(_, parent)| self.wildcard.get(parent)))
            .or(self.default.as_ref())
            .cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Arc<CertifiedKey> {
        struct Dummy;
        impl std::fmt::Debug for Dummy {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Dummy")
            }
        }
        impl rustls::sign::SigningKey for Dummy {
            fn choose_scheme(&self, _: &[rustls::SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
                None
            }
            fn algorithm(&self) -> rustls::SignatureAlgorithm {
                rustls::SignatureAlgorithm::ED25519
            }
        }
        Arc::new(CertifiedKey::new(vec![CertificateDer::from(vec![n])], Arc::new(Dummy)))
    }

    #[test]
    fn exact_beats_wildcard_and_default_takes_the_rest() {
        let mut r = SniResolver::default();
        r.add(&key(1), &["*.example.com".into()]);
        r.add(&key(2), &["shop.example.com".into()]);
        let chosen = |sni| r.choose(sni).map(|k| k.cert[0].as_ref()[0]);
        assert_eq!(chosen(Some("shop.example.com")), Some(2));
        assert_eq!(chosen(Some("Shop.Example.com")), Some(2));
        assert_eq!(chosen(Some("blog.example.com")), Some(1));
        assert_eq!(chosen(Some("a.b.example.com")), Some(1), "no match: the default (first site)");
        assert_eq!(chosen(None), Some(1));
    }
}
