//! One ACME order, start to stored certificate (see [`super`] for the steps), and the HTTP
//! client it speaks through: rustls on `ring`, trusting the system's roots plus `[acme]
//! ca_file`'s. Runs inside the order task; talks to the supervisor only by events.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, ChallengeType, HttpClient, Identifier, NewAccount, NewOrder,
    OrderStatus, RetryPolicy,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{AcmeError, OrderJob};
use crate::event::{Event, EventSender};

/// How long the listener may take to answer a challenge it was handed, before the CA is
/// asked anyway.
const SELF_CHECK_LIMIT: Duration = Duration::from_secs(10);
/// Polling the order for ready or for the certificate: 250 ms doubling, at most this long.
const ORDER_POLL_LIMIT: Duration = Duration::from_secs(120);
/// The HTTP-01 path prefix (RFC 8555 §8.3).
const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// Places the order, answers its challenges, finalizes and stores the certificate.
pub(super) async fn obtain(job: &OrderJob, events: &EventSender) -> Result<(), AcmeError> {
    let server = |source| AcmeError::Server { directory: job.directory.clone(), source };
    let account = account(job).await?;
    let identifiers: Vec<Identifier> = job.names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
        Ok(o) => o,
        // The CA forgot the account (a test CA restarted, an account deactivated): a new one.
        Err(instant_acme::Error::Api(p))
            if p.r#type.as_deref().is_some_and(|t| t.ends_with(":accountDoesNotExist")) =>
        {
            let account = account_fresh(job).await?;
            account.new_order(&NewOrder::new(&identifiers)).await.map_err(server)?
        }
        Err(e) => return Err(server(e)),
    };
    let mut tokens: Vec<(String, String)> = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(server)?;
        let name = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(AcmeError::Authorization { name, status: format!("{other:?}").to_lowercase() }),
        }
        let mut challenge =
            authz.challenge(ChallengeType::Http01).ok_or_else(|| AcmeError::NoHttp01 { name: name.clone() })?;
        let key_authorization = challenge.key_authorization().as_str().to_string();
        tokens.push((challenge.token.clone(), key_authorization.clone()));
        let _ = events.send(Event::AcmeChallenges { site: job.site.clone(), tokens: tokens.clone() });
        if let Some(addr) = job.probe {
            self_check(addr, &name, &challenge.token, &key_authorization).await;
        }
        challenge.set_ready().await.map_err(server)?;
    }
    let poll = RetryPolicy::new().initial_delay(Duration::from_millis(250)).timeout(ORDER_POLL_LIMIT);
    let status = order.poll_ready(&poll).await.map_err(server)?;
    if status != OrderStatus::Ready {
        let detail = challenge_errors(&mut order).await;
        return Err(AcmeError::Order { status: format!("{status:?}").to_lowercase(), detail });
    }
    let key_pem = order.finalize().await.map_err(server)?;
    let cert_pem = order.poll_certificate(&poll).await.map_err(server)?;
    job.store.save_certificate(&job.site, &cert_pem, &key_pem)?;
    Ok(())
}

/// The stored account for this directory and email, or a new one (stored at once).
async fn account(job: &OrderJob) -> Result<Account, AcmeError> {
    let _guard = job.account_lock.lock().await;
    if let Some(credentials) = job.store.account(&job.directory, &job.email)? {
        let builder = Account::builder_with_http(http_client(job.ca_file.as_deref())?);
        return builder
            .from_credentials(credentials)
            .await
            .map_err(|source| AcmeError::Server { directory: job.directory.clone(), source });
    }
    create(job).await
}

async fn account_fresh(job: &OrderJob) -> Result<Account, AcmeError> {
    let _guard = job.account_lock.lock().await;
    create(job).await
}

async fn create(job: &OrderJob) -> Result<Account, AcmeError> {
    let contact = format!("mailto:{}", job.email);
    let new = NewAccount { contact: &[contact.as_str()], terms_of_service_agreed: true, only_return_existing: false };
    let builder = Account::builder_with_http(http_client(job.ca_file.as_deref())?);
    let (account, credentials) = builder
        .create(&new, job.directory.clone(), None)
        .await
        .map_err(|source| AcmeError::Server { directory: job.directory.clone(), source })?;
    job.store.save_account(&job.directory, &job.email, credentials)?;
    Ok(account)
}

/// What the CA said about each failed challenge, for the operator.
async fn challenge_errors(order: &mut instant_acme::Order) -> String {
    let mut out = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for c in authz.challenges.iter() {
            if let Some(p) = &c.error {
                out.push(format!("{}: {p}", authz.identifier()));
            }
        }
    }
    if out.is_empty() {
        "the CA gave no reason".into()
    } else {
        out.join("; ")
    }
}

/// Waits (bounded) until the site's http binding answers the challenge as the CA will ask it.
async fn self_check(addr: SocketAddr, host: &str, token: &str, key_authorization: &str) {
    let deadline = tokio::time::Instant::now() + SELF_CHECK_LIMIT;
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), fetch(addr, host, token));
        if let Ok(Ok(body)) = attempt.await {
            if body.ends_with(key_authorization) {
                return;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("ACME: {addr} did not answer the challenge for {host} within {SELF_CHECK_LIMIT:?}; asking the CA anyway");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fetch(addr: SocketAddr, host: &str, token: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "GET {HTTP01_PREFIX}{token} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bulkhead-acme-self-check\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.take(64 * 1024).read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// An HTTPS client for the ACME server: the system's roots plus `ca_file`'s certificates.
/// Plain http is allowed only because config validation admits it for loopback directories.
fn http_client(ca_file: Option<&Path>) -> Result<Box<dyn HttpClient>, AcmeError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if let Some(path) = ca_file {
        let bad = |detail: String| AcmeError::CaFile { path: path.to_path_buf(), detail };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("holds no PEM certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeError::CaFile { path: Default::default(), detail: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, BodyWrapper<Bytes>>(connector);
    Ok(Box::new(client))
}
