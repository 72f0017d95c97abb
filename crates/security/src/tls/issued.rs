//! The built-in issuer's certificates as the files of a `kubernetes.io/tls` Secret
//! (`tls.crt`, `tls.key`, `ca.crt`): read to publish them as Secrets on a cluster without
//! cert-manager, and written back from such a Secret when a pod starts with an empty data dir,
//! so that a valid certificate is reused instead of re-issued. The quickstart CA is kept the same
//! way, so that a new pod signs with the CA clients already trust.

use std::fs;
use std::sync::Arc;
use std::time::SystemTime;

use super::TlsContext;
use crate::pki::store::{self, write_private, write_public};
use crate::pki::{PkiError, Signer, pem};

/// An issued certificate's files, as a `kubernetes.io/tls` Secret holds them (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedFiles {
    /// The chain, leaf first.
    pub tls_crt: Vec<u8>,
    /// The leaf's private key.
    pub tls_key: Vec<u8>,
    /// The CA clients trust for it.
    pub ca_crt: Vec<u8>,
}

impl TlsContext {
    /// The files of the certificate the built-in issuer keeps under `secret_name` (an automatic
    /// port's `secretName`), if it has issued one.
    pub fn issued_files(&self, secret_name: &str) -> Option<IssuedFiles> {
        let dir = self.layout.issued_dir(secret_name);
        let read = |name: &str| fs::read(dir.join(name)).ok();
        Some(IssuedFiles {
            tls_crt: read("tls.crt")?,
            tls_key: read("tls.key")?,
            ca_crt: read("ca.crt").unwrap_or_default(),
        })
    }

    /// Puts `files` (a Secret this broker wrote before, say in a previous pod) in the data dir
    /// as the certificate of `secret_name`, unless one is stored there already. Resolving the
    /// port then reuses it if it is still valid and what the spec asks for, and re-issues it
    /// otherwise. Returns whether it was written.
    pub fn restore_issued(&self, secret_name: &str, files: &IssuedFiles) -> Result<bool, PkiError> {
        if store::load_issued(&self.layout, secret_name).is_some() {
            return Ok(false);
        }
        let chain = pem::certificates(&files.tls_crt, "tls.crt")?;
        let key = pem::private_key(&files.tls_key, "tls.key")?;
        let ca = match pem::certificates(&files.ca_crt, "ca.crt") {
            Ok(certs) if !certs.is_empty() => certs,
            _ => chain.last().cloned().into_iter().collect(),
        };
        let dir = self.layout.issued_dir(secret_name);
        let chain_pem: String = chain.iter().map(pem::certificate_pem).collect();
        let ca_pem: String = ca.iter().map(pem::certificate_pem).collect();
        write_private(&dir.join("tls.key"), &pem::private_key_pem(&key))?;
        write_public(&dir.join("tls.crt"), &chain_pem)?;
        write_public(&dir.join("ca.crt"), &ca_pem)?;
        Ok(true)
    }
}

impl TlsContext {
    /// The quickstart CA's certificate and key (`ca_crt` = the certificate), to keep it in a
    /// Secret so that a new pod signs with the same CA and clients keep their trust bundle.
    pub fn quickstart_files(&self) -> IssuedFiles {
        let state = self.state.lock();
        let cert = pem::certificate_pem(state.quickstart.signer.certificate()).into_bytes();
        let dir = self.layout.quickstart_dir();
        IssuedFiles {
            tls_key: fs::read(dir.join("tls.key")).unwrap_or_default(),
            ca_crt: cert.clone(),
            tls_crt: cert,
        }
    }

    /// Makes `files` (the quickstart CA a previous pod kept in a Secret) this data dir's
    /// quickstart CA, unless it is that already; call it before any port resolves. A CA that is
    /// not a usable CA with its key is refused; one due for rotation is replaced as at start.
    /// Returns whether the CA changed.
    pub fn restore_quickstart_ca(&self, files: &IssuedFiles) -> Result<bool, PkiError> {
        if self.quickstart_files().tls_crt == files.tls_crt {
            return Ok(false);
        }
        let dir = self.layout.quickstart_dir();
        Signer::from_pem(
            &files.tls_crt,
            "tls.crt",
            &files.tls_key,
            "tls.key",
            &self.provider,
        )?;
        let key = String::from_utf8_lossy(&files.tls_key);
        let crt = String::from_utf8_lossy(&files.tls_crt);
        write_private(&dir.join("tls.key"), &key)?;
        write_public(&dir.join("tls.crt"), &crt)?;
        let quickstart =
            store::open_quickstart_ca(&self.layout, &self.provider, SystemTime::now())?;
        self.state.lock().quickstart = Arc::new(quickstart);
        Ok(true)
    }
}
