//! The supervisor's side of ACME (`tls = { acme = "email" }` sites; the work is
//! [`crate::acme`]'s): which certificate each such site serves, when its next order is due,
//! and what the last one said.
//!
//! At start-up and on every applied config, per ACME site: a certificate stored under
//! `state_dir/acme/certs/<site>/` that passes the checks (key, names) is served at once and no
//! order is placed until it is due (`not_after - renew_before`); without one, an order is placed
//! as soon as the listener is up (it must answer the HTTP-01 challenge). Until the first
//! certificate arrives, TLS handshakes on the site's https bindings fail (no certificate is
//! there to offer; no other site's is borrowed). A site whose email, names, directory or
//! ca_file changed starts over (its stored certificate is still served if it covers the names).
//!
//! An issued certificate reaches the listener through the same path as operator files
//! (`Certificates`, new connections only; none is closed). A failed order is an error event
//! naming the site and the CA's reason, retried after 1 minute, doubling up to 6 hours; the old
//! certificate keeps serving. Events say "loaded from state_dir", "issued", "renewed" and
//! "failed (retry at …)"; [`CertificateState::status`] feeds `bulkhead status`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bulkhead_config::units::format_duration;
use bulkhead_config::{Scheme, Site};
use bulkhead_proto::{ManagerToListener, SiteCertificate};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::task::AbortHandle;

use super::{Phase, Supervisor};
use crate::acme::{self, OrderJob, Store};
use crate::config_store::rfc3339;

/// One ACME site's certificate and order state.
#[derive(Debug)]
pub(super) struct AcmeSite {
    index: usize,
    email: String,
    names: Vec<String>,
    directory: String,
    ca_file: Option<PathBuf>,
    /// The served certificate's expiry, once there is one.
    not_after: Option<OffsetDateTime>,
    /// When to place the next order; `None` while one runs.
    next_order: Option<SystemTime>,
    last_error: Option<String>,
    failures: u32,
    order: Option<AbortHandle>,
    tokens: Vec<(String, String)>,
}

/// What the supervisor knows of every https site's certificate.
#[derive(Debug, Default)]
pub(crate) struct CertificateState {
    acme: BTreeMap<String, AcmeSite>,
    /// Sites with certificate files: their names and expiry.
    files: BTreeMap<String, (Vec<String>, OffsetDateTime)>,
    account_lock: Arc<tokio::sync::Mutex<()>>,
}

impl CertificateState {
    /// Notes a file certificate's names and expiry (for status).
    pub(super) fn note_file(&mut self, site: &str, names: &[String], not_after: OffsetDateTime) {
        self.files.insert(site.to_string(), (names.to_vec(), not_after));
    }

    pub(super) fn is_acme(&self, site: &str) -> bool {
        self.acme.contains_key(site)
    }

    /// Per https site of `sites`: source, names, expiry, and for ACME the next renewal and the
    /// last error.
    pub(super) fn status(&self, sites: &[Site]) -> Vec<Value> {
        let mut out = Vec::new();
        for s in sites {
            if let Some(a) = self.acme.get(&s.name) {
                out.push(json!({
                    "site": s.name,
                    "source": "acme",
                    "names": a.names,
                    "not_after": a.not_after.map(|t| rfc3339(t.into())),
                    "next_renewal": match (&a.order, a.next_order) {
                        (Some(_), _) => Some("ordering now".to_string()),
                        (None, Some(t)) => Some(rfc3339(t)),
                        (None, None) => None,
                    },
                    "last_error": a.last_error,
                    "directory": a.directory,
                }));
            } else if s.tls.is_some() {
                let (names, not_after) = match self.files.get(&s.name) {
                    Some((n, t)) => (n.clone(), Some(rfc3339((*t).into()))),
                    None => (Vec::new(), None),
                };
                out.push(json!({ "site": s.name, "source": "files", "names": names, "not_after": not_after }));
            }
        }
        out
    }
}

fn when(t: SystemTime) -> String {
    rfc3339(t)
}

impl Supervisor {
    /// Brings the ACME sites in line with the configuration just made current, adding the
    /// certificate each serves to `certificates` (the set the listener gets).
    pub(super) fn refresh_acme(&mut self, certificates: &mut Vec<SiteCertificate>) {
        let acme_config = self.admin.config.acme.clone();
        let wanted: Vec<(usize, Site)> = self
            .admin
            .config
            .sites
            .iter()
            .enumerate()
            .filter(|(_, s)| s.acme.is_some())
            .map(|(i, s)| (i, s.clone()))
            .collect();
        let gone: Vec<String> =
            self.certs.acme.keys().filter(|k| !wanted.iter().any(|(_, s)| &s.name == *k)).cloned().collect();
        for name in gone {
            if let Some(order) = self.certs.acme.remove(&name).and_then(|a| a.order) {
                order.abort();
            }
        }
        self.certs.files.retain(|name, _| self.admin.config.sites.iter().any(|s| &s.name == name && s.tls.is_some()));
        let store = Store::new(&self.state_dir.root);
        let now = SystemTime::now();
        for (index, site) in wanted {
            let email = site.acme.clone().unwrap_or_default();
            let names = acme::names(&site);
            if let Some(a) = self.certs.acme.get_mut(&site.name) {
                if a.email == email
                    && a.names == names
                    && a.directory == acme_config.directory
                    && a.ca_file == acme_config.ca_file
                {
                    a.index = index;
                    certificates.extend(self.admin.certificates.iter().find(|c| c.site == site.name).cloned());
                    if let (None, 0, Some(not_after)) = (&a.order, a.failures, a.not_after) {
                        a.next_order = Some(acme::due(not_after, acme_config.renew_before));
                    }
                    continue;
                }
                if let Some(order) = a.order.take() {
                    order.abort();
                }
                a.tokens.clear();
            }
            let mut entry = AcmeSite {
                index,
                email,
                names,
                directory: acme_config.directory.clone(),
                ca_file: acme_config.ca_file.clone(),
                not_after: None,
                next_order: Some(now),
                last_error: None,
                failures: 0,
                order: None,
                tokens: Vec::new(),
            };
            let (cert_path, _) = store.cert_paths(&site.name);
            match acme::load_stored(&store, index, &site) {
                Ok(loaded) => {
                    let due = acme::due(loaded.not_after, acme_config.renew_before);
                    let next = if due <= now { "now (it is due)".to_string() } else { when(due) };
                    self.events.info(
                        None,
                        format!(
                            "site {:?}: certificate loaded from state_dir ({}) for {}, expires {}; next renewal {next}",
                            site.name,
                            cert_path.display(),
                            entry.names.join(", "),
                            rfc3339(loaded.not_after.into())
                        ),
                    );
                    entry.not_after = Some(loaded.not_after);
                    entry.next_order = Some(due.max(now));
                    certificates.push(loaded.certificate);
                }
                Err(_) if !cert_path.exists() => self.events.info(
                    None,
                    format!(
                        "site {:?}: no certificate in state_dir yet; ordering one for {} from {}; until it is issued, TLS handshakes on its https bindings fail",
                        site.name,
                        entry.names.join(", "),
                        entry.directory
                    ),
                ),
                Err(e) => self.events.warn(
                    None,
                    format!("site {:?}: the certificate stored in state_dir cannot be used ({e}); ordering a new one", site.name),
                ),
            }
            self.certs.acme.insert(site.name.clone(), entry);
        }
        self.send_challenges();
    }

    /// Places the orders that are due (once the listener can answer their challenges).
    pub(super) fn tick_acme(&mut self) {
        if self.phase != Phase::Serving || !self.listener_ever_ready || self.certs.acme.is_empty() {
            return;
        }
        let now = SystemTime::now();
        let due: Vec<String> = self
            .certs
            .acme
            .iter()
            .filter(|(_, a)| a.order.is_none() && a.next_order.is_some_and(|t| t <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.start_order(&name);
        }
    }

    fn start_order(&mut self, name: &str) {
        let Some(site) = self.admin.config.sites.iter().find(|s| s.name == name).cloned() else { return };
        let probe = self.http_probe(&site);
        let Some(a) = self.certs.acme.get_mut(name) else { return };
        let job = OrderJob {
            site: name.to_string(),
            email: a.email.clone(),
            names: a.names.clone(),
            directory: a.directory.clone(),
            ca_file: a.ca_file.clone(),
            store: Store::new(&self.state_dir.root),
            probe,
            account_lock: self.certs.account_lock.clone(),
        };
        let what = if a.not_after.is_some() { "renewal" } else { "certificate" };
        self.events
            .info(None, format!("site {name:?}: ordering a {what} for {} from {}", a.names.join(", "), a.directory));
        a.next_order = None;
        a.order = Some(acme::spawn_order(job, self.tx.clone()));
    }

    /// Where to reach the site's first http binding from here, for the self-check.
    fn http_probe(&self, site: &Site) -> Option<SocketAddr> {
        let b = site.bindings.iter().find(|b| b.scheme == Scheme::Http)?;
        let (_, addr) = self.public.bindings.iter().find(|(text, _)| text == &b.text)?;
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Some(SocketAddr::new(ip, addr.port()))
    }

    /// An order's challenge set changed.
    pub(super) fn on_acme_challenges(&mut self, site: &str, tokens: Vec<(String, String)>) {
        if let Some(a) = self.certs.acme.get_mut(site) {
            a.tokens = tokens;
            self.send_challenges();
        }
    }

    /// Hands the listener every current challenge (after a restart too).
    pub(super) fn send_challenges(&self) {
        let tokens: Vec<(String, String)> = self.certs.acme.values().flat_map(|a| a.tokens.iter().cloned()).collect();
        self.send_listener(ManagerToListener::AcmeChallenges { tokens });
    }

    /// An order ended: serve what it stored, or schedule the retry.
    pub(super) fn on_acme_finished(&mut self, name: &str, result: Result<(), String>) {
        let Some(site) = self.admin.config.sites.iter().find(|s| s.name == name).cloned() else { return };
        let renew_before = self.admin.config.acme.renew_before;
        let store = Store::new(&self.state_dir.root);
        let Some(a) = self.certs.acme.get_mut(name) else { return };
        a.order = None;
        let loaded = result.and_then(|()| {
            acme::load_stored(&store, a.index, &site)
                .map_err(|e| format!("the certificate the CA sent does not pass the checks: {e}"))
        });
        let now = SystemTime::now();
        match loaded {
            Ok(l) => {
                let verb = if a.not_after.is_some() { "renewed" } else { "issued" };
                a.not_after = Some(l.not_after);
                a.failures = 0;
                a.last_error = None;
                let mut due = acme::due(l.not_after, renew_before);
                if due <= now {
                    let left = SystemTime::from(l.not_after).duration_since(now).unwrap_or_default();
                    due = now + (left / 2).max(acme::FIRST_BACKOFF);
                    self.events.warn(
                        None,
                        format!(
                            "site {name:?}: renew_before ({}) is longer than the life of the certificate the CA issues (until {}); the next renewal is at half its remaining life",
                            format_duration(renew_before),
                            rfc3339(l.not_after.into())
                        ),
                    );
                }
                a.next_order = Some(due);
                self.events.info(
                    None,
                    format!(
                        "site {name:?}: certificate {verb} by {} for {}, expires {}; next renewal {}",
                        a.directory,
                        a.names.join(", "),
                        rfc3339(l.not_after.into()),
                        when(due)
                    ),
                );
                self.admin.certificates.retain(|c| c.site != name);
                self.admin.certificates.push(l.certificate);
                self.send_listener(ManagerToListener::Certificates { certificates: self.admin.certificates.clone() });
            }
            Err(why) => {
                a.failures += 1;
                let wait: Duration = acme::backoff(a.failures);
                let retry = now + wait;
                a.next_order = Some(retry);
                a.last_error = Some(why.clone());
                let meanwhile = match a.not_after {
                    Some(t) => {
                        format!("the site keeps serving its current certificate (expires {})", rfc3339(t.into()))
                    }
                    None => "TLS handshakes on its https bindings fail until a certificate is issued".to_string(),
                };
                self.events.error(
                    None,
                    format!(
                        "site {name:?}: ACME order from {} failed (retry at {}, in {}; failure {} in a row): {why}; {meanwhile}",
                        a.directory,
                        when(retry),
                        format_duration(wait),
                        a.failures
                    ),
                );
            }
        }
    }

    /// Abandons every running order (shutdown).
    pub(super) fn stop_acme(&mut self) {
        for a in self.certs.acme.values_mut() {
            if let Some(order) = a.order.take() {
                order.abort();
            }
        }
    }
}
