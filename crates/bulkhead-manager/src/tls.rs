//! The https sites' certificates, read and checked by the manager — never by the listener,
//! which runs unprivileged: keys stay root's (mode 0600, as certbot leaves them), as nginx's
//! master reads them for its workers (DESIGN §1).
//!
//! [`load`] reads one site's `tls = { cert, key }` files and checks them: the files open, the
//! PEM holds a certificate chain and a private key, the key matches the leaf certificate, and the
//! leaf's DNS names cover every host-name https binding of the site (a `*` or IP binding takes
//! any name, so it is not checked). A certificate outside its validity period is only a warning:
//! it is still served, as an operator may be replacing it. What passes becomes a
//! [`SiteCertificate`] for the listener (`Configure.certificates`, or `Certificates` when only
//! the files changed).
//!
//! Called by [`crate::preflight`] (validation at `config check`, start-up and every reload: an
//! error refuses the configuration whole) and by the supervisor when sending the listener its
//! configuration or when a watched certificate file changed. Only reads files; never logs or
//! sends a key.

mod der;

use std::path::{Path, PathBuf};

use bulkhead_config::{BindingHost, Config, Scheme, Site};
use bulkhead_proto::SiteCertificate;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

/// Why a site's certificate cannot be served. `key` is where in the config it belongs
/// (`sites[0].tls.cert`), for the file:line:key of the refusal.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("site {site:?}: cannot read {path}: {source}")]
    Read { site: String, key: String, path: PathBuf, source: std::io::Error },
    #[error("site {site:?}: {path} holds no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")")]
    NoCertificate { site: String, key: String, path: PathBuf },
    #[error("site {site:?}: {path} holds no PEM private key (expected \"-----BEGIN PRIVATE KEY-----\", RSA or EC)")]
    NoKey { site: String, key: String, path: PathBuf },
    #[error("site {site:?}: the certificate in {path} cannot be read: {detail}")]
    BadCertificate { site: String, key: String, path: PathBuf, detail: String },
    #[error("site {site:?}: the key in {key_path} does not match the certificate in {cert_path} ({detail})")]
    KeyMismatch { site: String, key: String, cert_path: PathBuf, key_path: PathBuf, detail: String },
    #[error("site {site:?}: the certificate in {path} is for {names}, which does not cover binding {binding:?}")]
    Names { site: String, key: String, path: PathBuf, names: String, binding: String },
}

impl TlsError {
    /// The config key the error is about.
    pub fn key(&self) -> &str {
        match self {
            TlsError::Read { key, .. }
            | TlsError::NoCertificate { key, .. }
            | TlsError::NoKey { key, .. }
            | TlsError::BadCertificate { key, .. }
            | TlsError::KeyMismatch { key, .. }
            | TlsError::Names { key, .. } => key,
        }
    }
}

/// One site's certificate, checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub certificate: SiteCertificate,
    pub not_after: OffsetDateTime,
    /// Served anyway: expired or not yet valid.
    pub warnings: Vec<String>,
}

/// Every https site of `config` (its index and the site), in config order.
pub fn tls_sites(config: &Config) -> impl Iterator<Item = (usize, &Site)> {
    config.sites.iter().enumerate().filter(|(_, s)| s.tls.is_some())
}

/// Every certificate and key file `config` names (to watch for changes).
pub fn files(config: &Config) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for (_, site) in tls_sites(config) {
        if let Some(tls) = &site.tls {
            for p in [&tls.cert, &tls.key] {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
    }
    out
}

/// Loads every https site's certificate; the first error refuses them all.
pub fn load_all(config: &Config) -> Result<Vec<Loaded>, TlsError> {
    tls_sites(config).map(|(i, site)| load(i, site)).collect()
}

/// Reads and checks site number `index`'s certificate and key (`site.tls` must be set).
pub fn load(index: usize, site: &Site) -> Result<Loaded, TlsError> {
    let name = site.name.clone();
    let cert_key = format!("sites[{index}].tls.cert");
    let key_key = format!("sites[{index}].tls.key");
    let Some(tls) = &site.tls else {
        return Err(TlsError::NoCertificate { site: name, key: format!("sites[{index}].tls"), path: PathBuf::new() });
    };
    let read = |path: &Path, key: &str| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            site: name.clone(),
            key: key.to_string(),
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(&tls.cert, &cert_key)?;
    let key_pem = read(&tls.key, &key_key)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&cert_pem).filter_map(Result::ok).collect();
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate { site: name, key: cert_key, path: tls.cert.clone() });
    };
    let facts = der::read(leaf).ok_or_else(|| TlsError::BadCertificate {
        site: name.clone(),
        key: cert_key.clone(),
        path: tls.cert.clone(),
        detail: "not a DER X.509 certificate with validity and names".into(),
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        site: name.clone(),
        key: key_key.clone(),
        path: tls.key.clone(),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain.clone(), key, &provider).map_err(|e| TlsError::KeyMismatch {
        site: name.clone(),
        key: key_key.clone(),
        cert_path: tls.cert.clone(),
        key_path: tls.key.clone(),
        detail: e.to_string(),
    })?;
    for b in site.bindings.iter().filter(|b| b.scheme == Scheme::Https) {
        let BindingHost::Name(host) = &b.host else { continue };
        if !facts.names.iter().any(|n| covers(n, host)) {
            return Err(TlsError::Names {
                site: name,
                key: cert_key,
                path: tls.cert.clone(),
                names: if facts.names.is_empty() { "no DNS name".into() } else { facts.names.join(", ") },
                binding: b.text.clone(),
            });
        }
    }
    let mut warnings = Vec::new();
    let now = OffsetDateTime::now_utc();
    if now > facts.not_after {
        warnings.push(format!(
            "site {name:?}: the certificate in {} expired on {}; still served, but clients will refuse it: renew it",
            tls.cert.display(),
            facts.not_after
        ));
    } else if now < facts.not_before {
        warnings.push(format!(
            "site {name:?}: the certificate in {} is not valid before {}; still served, but clients will refuse it until then",
            tls.cert.display(),
            facts.not_before
        ));
    }
    // Text for the listener: PEM as read (UTF-8 by construction of the PEM parser's success).
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    Ok(Loaded {
        certificate: SiteCertificate {
            site: name,
            names: facts.names,
            cert_pem: text(cert_pem),
            key_pem: text(key_pem),
        },
        not_after: facts.not_after,
        warnings,
    })
}

/// Whether certificate name `pattern` (lowercase; `*.example.com` for a wildcard, which takes
/// exactly one label) covers `host` (lowercase).
pub fn covers(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if pattern == host {
        return true;
    }
    match (pattern.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((label, rest))) => !label.is_empty() && rest == suffix,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Site 0 of a config whose https binding is `binding`, with `cert` and `key` from testdata.
    fn site(binding: &str, cert: &str, key: &str) -> Result<Loaded, TlsError> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata");
        let text =
            format!("[[sites]]\nname = \"s\"\nbindings = [{binding:?}]\ntls = {{ cert = {cert:?}, key = {key:?} }}\n");
        let config = bulkhead_config::parse(&text, "t.toml", &dir).expect("valid config");
        load(0, &config.sites[0])
    }

    #[test]
    fn a_matching_pair_loads_with_its_names() {
        let loaded = site("https://a.shop.example:0", "san.pem", "san.key").expect("loads");
        assert_eq!(loaded.certificate.names, ["shop.example", "*.shop.example"]);
        assert!(loaded.certificate.key_pem.contains("PRIVATE KEY"));
        // A `*` or IP binding takes any name.
        assert!(site("https://*:0", "cn-only.pem", "cn-only.key").is_ok());
    }

    #[test]
    fn an_expired_certificate_is_served_with_a_warning() {
        let loaded = site("https://expired.test:0", "expired.pem", "expired.key").expect("still loads");
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("expired on 2020-01-02"), "{:?}", loaded.warnings);
        assert!(site("https://*:0", "san.pem", "san.key").expect("loads").warnings.is_empty());
    }

    #[test]
    fn each_problem_is_named_at_its_key() {
        let e = site("https://*:0", "san.pem", "cn-only.key").expect_err("mismatch");
        assert!(matches!(e, TlsError::KeyMismatch { .. }) && e.key() == "sites[0].tls.key", "{e}");
        let e = site("https://other.example:0", "san.pem", "san.key").expect_err("names");
        assert_eq!(e.key(), "sites[0].tls.cert");
        assert!(
            e.to_string().contains(
                "is for shop.example, *.shop.example, which does not cover binding \"https://other.example:0\""
            ),
            "{e}"
        );
        let e = site("https://*:0", "missing.pem", "san.key").expect_err("missing");
        assert!(matches!(e, TlsError::Read { .. }) && e.key() == "sites[0].tls.cert", "{e}");
        let e = site("https://*:0", "san.key", "san.key").expect_err("a key is no certificate");
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = site("https://*:0", "san.pem", "san.pem").expect_err("a certificate is no key");
        assert!(matches!(e, TlsError::NoKey { .. }) && e.key() == "sites[0].tls.key", "{e}");
    }

    #[test]
    fn wildcards_take_one_label() {
        assert!(covers("shop.example", "shop.example"));
        assert!(covers("*.example.com", "a.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("shop.example", "other.example"));
    }
}
