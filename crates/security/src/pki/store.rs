//! The PKI state in the data dir:
//!
//! ```text
//! <data-dir>/pki/quickstart-ca/tls.crt, tls.key   the quickstart CA (key mode 0600)
//! <data-dir>/pki/quickstart-ca/previous.crt       the CA it replaced, trusted until it expires
//! <data-dir>/pki/issued/<secretName>/tls.crt, tls.key, ca.crt   automatic server certificates
//! <data-dir>/trust-bundle/ca.crt                   what clients pass as --cafile
//! ```
//!
//! Files are written whole to a temporary name and renamed, so a crash leaves the old or the new
//! file, never half of one.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use wardgate_config::KeyAlgorithm;

use super::cert::{CertificateInfo, Validity, format_time};
use super::issue::{CertRequest, Key, Profile, Signer, self_signed};
use super::{PkiError, pem};

/// Subject O of the quickstart CA.
pub const QUICKSTART_CA_ORGANIZATION: &str = "Wardgate";
/// Subject CN of the quickstart CA.
pub const QUICKSTART_CA_COMMON_NAME: &str = "Wardgate Quickstart Root CA - Not for Production";
/// Lifetime of the quickstart CA: one year.
pub const QUICKSTART_CA_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Key of the quickstart CA. EC P-256: every MQTT client supports it and it is fast to make.
pub const QUICKSTART_CA_KEY: KeyAlgorithm = KeyAlgorithm::Ec256;

/// The paths of the data dir's PKI state.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `<data-dir>/pki`.
    pub pki: PathBuf,
    /// `<data-dir>/trust-bundle/ca.crt`.
    pub trust_bundle: PathBuf,
}

impl Layout {
    /// The layout under a data dir.
    pub fn new(data_dir: &Path) -> Layout {
        Layout {
            pki: data_dir.join("pki"),
            trust_bundle: data_dir.join("trust-bundle").join("ca.crt"),
        }
    }

    /// The quickstart CA's folder.
    pub fn quickstart_dir(&self) -> PathBuf {
        self.pki.join("quickstart-ca")
    }

    /// The folder of an automatic certificate's Secret.
    pub fn issued_dir(&self, secret_name: &str) -> PathBuf {
        self.pki.join("issued").join(sanitize(secret_name))
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// The quickstart CA, loaded or made, and when it must be replaced.
#[derive(Debug)]
pub struct QuickstartCa {
    /// The CA.
    pub signer: Signer,
    /// When to make its successor (two thirds into its life, as cert-manager renews).
    pub rotate_at: SystemTime,
    /// What clients must trust for certificates it issued: the current CA, then the previous
    /// one while it is still valid. Part of the trust bundle while the CA signs something.
    pub trusted: Vec<CertificateDer<'static>>,
}

/// Loads the quickstart CA, making it on first start and replacing it when it is due, with what
/// clients must trust (the current CA, then the previous one while it is still valid). The trust
/// bundle file is written by [`write_trust_bundle`].
pub fn open_quickstart_ca(
    layout: &Layout,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<QuickstartCa, PkiError> {
    let dir = layout.quickstart_dir();
    let crt = dir.join("tls.crt");
    let key = dir.join("tls.key");
    let previous = dir.join("previous.crt");
    let existing = if crt.exists() || key.exists() {
        let fix = format!(
            "(delete {} to make a new quickstart CA; clients must then get the new trust bundle)",
            dir.display()
        );
        let c = read(&crt)?;
        let k = read(&key)?;
        let expired = pem::certificates(&c, "tls.crt")
            .ok()
            .and_then(|certs| CertificateInfo::from_der(&certs[0], "tls.crt").ok())
            .is_some_and(|info| info.validity_at(now) == Validity::Expired);
        if expired {
            tracing::warn!(path = %crt.display(), "the quickstart CA has expired; making a new one");
            None
        } else {
            let signer = Signer::from_pem(
                &c,
                &crt.display().to_string(),
                &k,
                &key.display().to_string(),
                provider,
            )
            .map_err(|e| PkiError::Invalid(format!("{e} {fix}")))?;
            Some(signer)
        }
    } else {
        None
    };
    let ca = match existing {
        Some(signer) if now < rotation_time(signer.info()) => signer,
        Some(old) => {
            tracing::info!(
                not_after = %format_time(old.info().not_after),
                "the quickstart CA is due for rotation; making its successor (clients need the new trust bundle)"
            );
            write_public(&previous, &pem::certificate_pem(old.certificate()))?;
            make_quickstart_ca(&crt, &key, provider, now)?
        }
        None => make_quickstart_ca(&crt, &key, provider, now)?,
    };
    let mut trusted = vec![ca.certificate().clone()];
    if let Ok(prev) = fs::read(&previous)
        && let Ok(certs) = pem::certificates(&prev, "previous.crt")
    {
        for c in certs {
            if let Ok(info) = CertificateInfo::from_der(&c, "previous.crt")
                && info.validity_at(now) == Validity::Valid
                && c != *ca.certificate()
            {
                trusted.push(c);
            }
        }
    }
    Ok(QuickstartCa {
        rotate_at: rotation_time(ca.info()),
        signer: ca,
        trusted,
    })
}

/// Writes the trust bundle file (`<data-dir>/trust-bundle/ca.crt`) with `certs` as PEM, only if
/// that changes it; with no certificate, removes it (nothing served needs a CA from here).
pub fn write_trust_bundle(layout: &Layout, certs: &[CertificateDer<'_>]) -> Result<(), PkiError> {
    if certs.is_empty() {
        return match fs::remove_file(&layout.trust_bundle) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(PkiError::io(&layout.trust_bundle, e))
            }
            _ => Ok(()),
        };
    }
    let bundle: String = certs.iter().map(|c| pem::certificate_pem(c)).collect();
    if fs::read_to_string(&layout.trust_bundle).ok().as_deref() != Some(bundle.as_str()) {
        write_public(&layout.trust_bundle, &bundle)?;
    }
    Ok(())
}

/// Two thirds into the certificate's life.
pub(crate) fn rotation_time(info: &CertificateInfo) -> SystemTime {
    let life = info
        .not_after
        .duration_since(info.not_before)
        .unwrap_or_default();
    info.not_before + life / 3 * 2
}

fn make_quickstart_ca(
    crt: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Signer, PkiError> {
    let key = Key::generate(QUICKSTART_CA_KEY)?;
    let mut req = CertRequest::new(
        QUICKSTART_CA_COMMON_NAME,
        Profile::RootCa,
        QUICKSTART_CA_LIFETIME,
    );
    req.organization = Some(QUICKSTART_CA_ORGANIZATION.to_owned());
    req.not_before = super::issue::truncate_to_seconds(now) - super::issue::BACKDATE;
    req.not_after = super::issue::truncate_to_seconds(now) + QUICKSTART_CA_LIFETIME;
    let cert = self_signed(&req, &key)?;
    write_private(key_path, &key.pem())?;
    write_public(crt, &pem::certificate_pem(&cert))?;
    tracing::info!(path = %crt.display(), "made the quickstart CA (not for production)");
    Signer::new(
        vec![cert],
        &crt.display().to_string(),
        key,
        &key_path.display().to_string(),
        provider,
    )
}

/// An automatic certificate as stored: the served chain, the key, and the CA.
#[derive(Debug)]
pub struct Stored {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

/// Reads a stored automatic certificate; `None` when absent or unreadable (it is then issued
/// anew).
pub fn load_issued(layout: &Layout, secret_name: &str) -> Option<Stored> {
    let dir = layout.issued_dir(secret_name);
    let crt = fs::read(dir.join("tls.crt")).ok()?;
    let key = fs::read(dir.join("tls.key")).ok()?;
    let chain = pem::certificates(&crt, "tls.crt").ok()?;
    let key = pem::private_key(&key, "tls.key").ok()?;
    Some(Stored { chain, key })
}

/// Writes an automatic certificate's Secret files.
pub fn save_issued(
    layout: &Layout,
    secret_name: &str,
    chain: &[CertificateDer<'_>],
    key: &PrivateKeyDer<'_>,
    ca: &CertificateDer<'_>,
) -> Result<(), PkiError> {
    let dir = layout.issued_dir(secret_name);
    let chain_pem: String = chain.iter().map(pem::certificate_pem).collect();
    write_private(&dir.join("tls.key"), &pem::private_key_pem(key))?;
    write_public(&dir.join("tls.crt"), &chain_pem)?;
    write_public(&dir.join("ca.crt"), &pem::certificate_pem(ca))?;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|e| PkiError::io(path, e))
}

/// Writes a file readable by everyone (certificates).
pub fn write_public(path: &Path, contents: &str) -> Result<(), PkiError> {
    write_atomic(path, contents.as_bytes(), 0o644)
}

/// Writes a file readable by its owner only (private keys).
pub fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    write_atomic(path, contents.as_bytes(), 0o600)
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| PkiError::io(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(|e| PkiError::io(&tmp, e))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| PkiError::io(&tmp, e))?;
    drop(f);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .map_err(|e| PkiError::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_stay_inside_the_folder() {
        assert_eq!(
            sanitize("aio-broker-frontend-server-18883"),
            "aio-broker-frontend-server-18883"
        );
        assert_eq!(sanitize("../../etc"), "_.._etc");
        assert_eq!(sanitize("a/b"), "a_b");
    }

    #[test]
    fn keys_are_written_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/tls.key");
        write_private(&p, "secret").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
