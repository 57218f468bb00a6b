//! The supervisor's side of the https sites' certificates: reading them for each configuration
//! it applies, watching their files, and handing a changed, still valid set to the listener
//! (`Certificates`) without restarting it or closing a connection. A changed file that no
//! longer validates is refused like a bad config (event, `bulkhead status`), and the listener
//! keeps serving the old certificate. The checks themselves are [`crate::tls`]'s. ACME sites'
//! certificates are `supervisor/acme_sites.rs`'s and join the same set.

use bulkhead_config::{ConfigError, ConfigErrors};
use bulkhead_proto::{ManagerToListener, SiteCertificate};

use super::Supervisor;
use crate::config_store::Source;
use crate::tls;

impl Supervisor {
    /// Reads the certificates of the configuration just made current (it was validated, so
    /// this normally succeeds; a site whose files broke since keeps the certificate it had) and
    /// watches their files. The caller sends them with the `Configure`.
    pub(super) fn refresh_certificates(&mut self) {
        let loads: Vec<(String, Result<tls::Loaded, tls::TlsError>)> =
            tls::tls_sites(&self.admin.config).map(|(i, site)| (site.name.clone(), tls::load(i, site))).collect();
        let mut certificates = Vec::new();
        for (site, loaded) in loads {
            match loaded {
                Ok(l) => {
                    self.certs.note_file(&site, &l.certificate.names, l.not_after);
                    certificates.push(l.certificate)
                }
                Err(e) => {
                    self.events.error(None, format!("{e}; keeping the certificate the site had"));
                    certificates.extend(self.admin.certificates.iter().find(|c| c.site == site).cloned());
                }
            }
        }
        self.refresh_acme(&mut certificates);
        self.admin.certificates = certificates;
        self.watch_certificates();
    }

    /// (Re)starts the watch on the certificate and key files when their list changed.
    fn watch_certificates(&mut self) {
        let files = tls::files(&self.admin.config);
        if files == self.admin.certificate_files && (self.admin.certificate_watch.is_some() || files.is_empty()) {
            return;
        }
        self.admin.certificate_watch = None;
        if !files.is_empty() {
            match crate::reload::watch_certificates(&files, self.tx.clone()) {
                Ok(w) => self.admin.certificate_watch = Some(w),
                Err(e) => self.events.warn(None, format!("{e}; certificates are re-read only on a config reload")),
            }
        }
        self.admin.certificate_files = files;
    }

    /// A watched file changed (or a reload found the config unchanged): re-reads every
    /// certificate; all valid and different → the listener serves them to new connections.
    pub(super) fn on_certificates_changed(&mut self) {
        let loaded = match tls::load_all(&self.admin.config) {
            Ok(l) => l,
            Err(e) => {
                let file = self
                    .options
                    .config_path
                    .as_ref()
                    .map_or("<embedded default>".to_string(), |p| p.display().to_string());
                let mut error: ConfigError =
                    bulkhead_config::error_at_key(&self.options.config_text, &file, e.key(), e.to_string());
                error.message = format!("{}; the listener keeps serving the previous certificate", error.message);
                self.refuse(Source::File, ConfigErrors(vec![error]), true);
                return;
            }
        };
        let mut certificates: Vec<SiteCertificate> = Vec::with_capacity(loaded.len());
        for l in loaded {
            for w in &l.warnings {
                self.events.warn(None, w.clone());
            }
            self.certs.note_file(&l.certificate.site, &l.certificate.names, l.not_after);
            certificates.push(l.certificate);
        }
        // ACME sites keep what they serve: their files are bulkhead's, not watched.
        certificates.extend(self.admin.certificates.iter().filter(|c| self.certs.is_acme(&c.site)).cloned());
        if certificates == self.admin.certificates {
            return;
        }
        let sites: Vec<&str> = certificates.iter().map(|c| c.site.as_str()).collect();
        self.events.info(None, format!("certificates re-read for new connections ({})", sites.join(", ")));
        self.admin.certificates = certificates.clone();
        self.admin.refused = None;
        self.send_listener(ManagerToListener::Certificates { certificates });
    }
}
