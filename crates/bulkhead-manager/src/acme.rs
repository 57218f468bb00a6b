//! Certificates from an ACME server (RFC 8555) for `tls = { acme = "email" }` sites, with the
//! `instant-acme` client on rustls (`ring`), HTTP-01 challenges answered by the listener.
//!
//! The supervisor owns the per-site state (`supervisor/acme_sites.rs`: what is served, when the
//! next order is due, the last error, the back-off); this module does the work it starts:
//! [`spawn_order`] runs one order as a task and reports back with events — the challenge set
//! to hand the listener ([`Event::AcmeChallenges`]) and the end ([`Event::AcmeFinished`]).
//! The stored files are read back through [`crate::tls::load`], the same checks as an
//! operator's own files (key matches, names cover the https bindings).
//!
//! One order: the account (`state_dir/acme/account.json`, created on first use with the site's
//! email as contact and the CA's terms agreed), a new order for the site's https host names,
//! per authorization the HTTP-01 token and key authorization added to the listener's set, a
//! self-check through the site's own http binding (bounded, so the CA is never asked before the
//! listener answers), the challenge set ready, the order polled with a bounded back-off,
//! finalized with a key `instant-acme` generates (rcgen, ECDSA P-256), the chain downloaded and
//! stored under `state_dir/acme/certs/<site>/` as `cert.pem` and `key.pem`, each mode 0600 and
//! written through a temporary file and a rename. TLS-ALPN-01 and DNS-01 are not offered.
//!
//! The HTTP client trusts the system's roots plus `[acme] ca_file`'s (a private or test CA).
//! Never logs a key; never touches files outside `state_dir/acme/`.

mod client;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bulkhead_config::{BindingHost, Scheme, Site, Tls};
use tokio::task::AbortHandle;

use crate::event::{Event, EventSender};
use crate::tls;

pub use store::Store;

/// The first retry after a failed order; doubled after each further failure, up to
/// [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(60);
/// The longest wait between two failed orders.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// Why an order failed. Every message names what failed; the supervisor adds the site.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("[acme] ca_file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error("the ACME server at {directory}: {source}")]
    Server { directory: String, source: instant_acme::Error },
    #[error("the CA offers no http-01 challenge for {name} (only HTTP-01 is built)")]
    NoHttp01 { name: String },
    #[error("the authorization for {name} is {status}")]
    Authorization { name: String, status: String },
    #[error("the order became {status}: {detail}")]
    Order { status: String, detail: String },
    #[error("{0}")]
    Store(#[from] store::StoreError),
}

/// What one order needs, copied out of the config so the task owns it.
#[derive(Debug, Clone)]
pub struct OrderJob {
    pub site: String,
    pub email: String,
    pub names: Vec<String>,
    pub directory: String,
    pub ca_file: Option<PathBuf>,
    pub store: Store,
    /// Where the site's http binding listens, for the self-check (`*` → 127.0.0.1).
    pub probe: Option<SocketAddr>,
    /// Held while account.json is read or written (orders of several sites run at once).
    pub account_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The host names a certificate for `site` must carry: its https bindings' names, in order,
/// without repeats. Config validation has made sure every https binding of an ACME site is one.
pub fn names(site: &Site) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in site.bindings.iter().filter(|b| b.scheme == Scheme::Https) {
        if let BindingHost::Name(n) = &b.host {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
    }
    out
}

/// The site's stored certificate and key, checked like an operator's own files.
pub fn load_stored(store: &Store, index: usize, site: &Site) -> Result<tls::Loaded, tls::TlsError> {
    let (cert, key) = store.cert_paths(&site.name);
    let mut as_files = site.clone();
    as_files.tls = Some(Tls { cert, key });
    tls::load(index, &as_files)
}

/// When a certificate valid until `not_after` is due for renewal.
pub fn due(not_after: time::OffsetDateTime, renew_before: Duration) -> SystemTime {
    let expires = SystemTime::from(not_after);
    expires.checked_sub(renew_before).unwrap_or(SystemTime::UNIX_EPOCH).max(SystemTime::UNIX_EPOCH)
}

/// The wait before retrying after `failures` failed orders in a row (at least 1).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// Starts one order as a task; it ends with [`Event::AcmeFinished`] (and always clears its
/// challenges first). Aborting the handle abandons the order.
pub fn spawn_order(job: OrderJob, events: EventSender) -> AbortHandle {
    tokio::spawn(async move {
        let result = client::obtain(&job, &events).await;
        let _ = events.send(Event::AcmeChallenges { site: job.site.clone(), tokens: Vec::new() });
        let _ = events.send(Event::AcmeFinished { site: job.site, result: result.map_err(|e| with_causes(&e)) });
    })
    .abort_handle()
}

/// An error and the causes under it that its own text does not already say ("client error
/// (Connect)" alone does not tell an operator the port was closed).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_to_six_hours() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(4), Duration::from_secs(480));
        assert_eq!(backoff(9), Duration::from_secs(60 * 256));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }

    #[test]
    fn due_is_renew_before_ahead_of_expiry() {
        let t = time::OffsetDateTime::from_unix_timestamp(100 * 86_400).expect("valid time");
        let d = due(t, Duration::from_secs(30 * 86_400));
        assert_eq!(d, SystemTime::UNIX_EPOCH + Duration::from_secs(70 * 86_400));
        assert_eq!(due(t, Duration::from_secs(1000 * 86_400)), SystemTime::UNIX_EPOCH);
    }
}
