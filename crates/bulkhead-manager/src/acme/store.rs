//! What ACME leaves under `state_dir/acme/` (directories 0700, files 0600, each written through
//! a temporary file and a rename, so a crash never leaves half a file):
//!
//! - `account.json`: the ACME accounts, one per (directory, email):
//!   `[{"directory": URL, "email": EMAIL, "credentials": {…instant-acme's, with the key…}}]`;
//! - `certs/<site>/cert.pem` (the chain the CA sent) and `certs/<site>/key.pem` (its key).
//!
//! Used by the order task (write) and the supervisor (paths, to load). Touches nothing else.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use instant_acme::AccountCredentials;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not an account file bulkhead wrote ({detail}); move it away to create a new account")]
    Parse { path: PathBuf, detail: String },
}

/// The `state_dir/acme/` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub root: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    email: String,
    credentials: AccountCredentials,
}

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store { root: state_dir.join("acme") }
    }

    /// `certs/<site>/cert.pem` and `key.pem`.
    pub fn cert_paths(&self, site: &str) -> (PathBuf, PathBuf) {
        let dir = self.root.join("certs").join(site);
        (dir.join("cert.pem"), dir.join("key.pem"))
    }

    pub fn account_path(&self) -> PathBuf {
        self.root.join("account.json")
    }

    /// Stores a new certificate: the key first, so a crash in between leaves a pair that
    /// fails the key check (and is ordered again), never a served mismatch.
    pub fn save_certificate(&self, site: &str, cert_pem: &str, key_pem: &str) -> Result<(), StoreError> {
        let (cert, key) = self.cert_paths(site);
        if let Some(dir) = cert.parent() {
            make_dir(dir)?;
        }
        write_private(&key, key_pem.as_bytes())?;
        write_private(&cert, cert_pem.as_bytes())
    }

    /// The stored credentials for (`directory`, `email`), if any.
    pub fn account(&self, directory: &str, email: &str) -> Result<Option<AccountCredentials>, StoreError> {
        Ok(self.accounts()?.into_iter().find(|a| a.directory == directory && a.email == email).map(|a| a.credentials))
    }

    /// Records the credentials for (`directory`, `email`), replacing any before.
    pub fn save_account(
        &self,
        directory: &str,
        email: &str,
        credentials: AccountCredentials,
    ) -> Result<(), StoreError> {
        let mut all = self.accounts()?;
        all.retain(|a| !(a.directory == directory && a.email == email));
        all.push(StoredAccount { directory: directory.into(), email: email.into(), credentials });
        let path = self.account_path();
        let text = serde_json::to_vec_pretty(&all)
            .map_err(|e| StoreError::Parse { path: path.clone(), detail: e.to_string() })?;
        make_dir(&self.root)?;
        write_private(&path, &text)
    }

    fn accounts(&self) -> Result<Vec<StoredAccount>, StoreError> {
        let path = self.account_path();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        serde_json::from_slice(&text).map_err(|e| StoreError::Parse { path, detail: e.to_string() })
    }
}

fn make_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Write { path: dir.into(), source })
}

/// `contents` to `path`, mode 0600, through `path.tmp` and a rename.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(contents)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|source| StoreError::Write { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_written_0600_under_certs_site() {
        let dir = std::env::temp_dir().join(format!("bulkhead-acme-store-{}", std::process::id()));
        let store = Store::new(&dir);
        store.save_certificate("shop", "CERT", "KEY").expect("save");
        store.save_certificate("shop", "CERT2", "KEY2").expect("save again");
        let (cert, key) = store.cert_paths("shop");
        assert_eq!(fs::read_to_string(&cert).ok().as_deref(), Some("CERT2"));
        for p in [&cert, &key] {
            let mode = fs::metadata(p).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        assert!(store.account("https://ca/dir", "a@b.c").expect("no file is no account").is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
