//! Reading certificates and private keys from PEM (rustls-pki-types' `PemObject`), with errors
//! that say what was found instead: no PEM at all, a key where a certificate belongs (or the
//! reverse), an encrypted key, a block that does not decode, a certificate that does not parse.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::PkiError;
use super::cert::parse;

/// Every certificate in PEM text, in order, each checked to parse as X.509. DER input (one
/// certificate, as `kubectl create configmap --from-file=ca.der` stores it) is accepted too.
/// `what` names the input in errors (`tls.crt`, a path, `ConfigMap/x key ca.crt`).
pub fn certificates(input: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    if input.first() == Some(&0x30) && !contains(input, b"-----BEGIN") {
        parse(input, what)?;
        return Ok(vec![CertificateDer::from(input.to_vec())]);
    }
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(input) {
        match item {
            Ok(c) => certs.push(c),
            Err(e) => return Err(PkiError::cert(what, describe_pem_error(&e))),
        }
    }
    if certs.is_empty() {
        let message = if contains(input, b"PRIVATE KEY-----") {
            "holds a private key but no certificate (were the certificate and key files swapped?)"
                .to_owned()
        } else if input.iter().all(u8::is_ascii_whitespace) {
            "is empty".to_owned()
        } else if contains(input, b"-----BEGIN") {
            format!(
                "holds no \"-----BEGIN CERTIFICATE-----\" block (found {})",
                pem_labels(input)
            )
        } else {
            "is not PEM: no \"-----BEGIN CERTIFICATE-----\" block found".to_owned()
        };
        return Err(PkiError::cert(what, message));
    }
    let total = certs.len();
    for (i, c) in certs.iter().enumerate() {
        let label = if total == 1 {
            what.to_owned()
        } else {
            format!("{what}: certificate {} of {total}", i + 1)
        };
        parse(c, &label)?;
    }
    Ok(certs)
}

/// The first private key in PEM text: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
/// (`EC PRIVATE KEY`).
pub fn private_key(input: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    if contains(input, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || (contains(input, b"Proc-Type: 4,ENCRYPTED"))
    {
        return Err(PkiError::key(
            what,
            "the private key is encrypted with a passphrase; store it unencrypted \
             (`openssl pkey -in key.pem -out key-plain.pem`)",
        ));
    }
    if input.first() == Some(&0x30)
        && !contains(input, b"-----BEGIN")
        && let Ok(k) = PrivateKeyDer::try_from(input.to_vec())
    {
        return Ok(k);
    }
    match PrivateKeyDer::from_pem_slice(input) {
        Ok(k) => Ok(k),
        Err(pem::Error::NoItemsFound) => {
            let message = if contains(input, b"-----BEGIN CERTIFICATE-----") {
                "holds a certificate but no private key (were the certificate and key files \
                 swapped?)"
                    .to_owned()
            } else if input.iter().all(u8::is_ascii_whitespace) {
                "is empty".to_owned()
            } else if contains(input, b"-----BEGIN") {
                format!(
                    "holds no private key (found {}); expected PKCS#8 \"PRIVATE KEY\", PKCS#1 \
                     \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\"",
                    pem_labels(input)
                )
            } else {
                "is not PEM: no \"-----BEGIN PRIVATE KEY-----\" (or RSA/EC PRIVATE KEY) block \
                 found"
                    .to_owned()
            };
            Err(PkiError::key(what, message))
        }
        Err(e) => Err(PkiError::key(what, describe_pem_error(&e))),
    }
}

/// A private key as PEM text of its own kind (PKCS#8, PKCS#1 or SEC1).
pub fn private_key_pem(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    encode(label, key.secret_der())
}

/// A certificate as PEM text.
pub fn certificate_pem(cert: &CertificateDer<'_>) -> String {
    encode("CERTIFICATE", cert.as_ref())
}

/// PEM with 64-column base64 lines and `\n` endings, as OpenSSL writes it.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn describe_pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a PEM block is not closed (missing \"{}\"): the file is truncated",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "malformed PEM header line \"{}\"",
            String::from_utf8_lossy(line)
        ),
        pem::Error::Base64Decode(m) => {
            format!("a PEM block's base64 does not decode ({m}): the file is damaged")
        }
        other => format!("PEM error: {other:?}"),
    }
}

/// The labels of the PEM blocks in the input, for "found X instead" messages.
fn pem_labels(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let labels: Vec<String> = text
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("-----BEGIN ")
                .and_then(|r| r.strip_suffix("-----"))
                .map(|s| format!("\"{s}\""))
        })
        .collect();
    if labels.is_empty() {
        "no PEM block".to_owned()
    } else {
        labels.join(", ")
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn garbage_is_not_pem() {
        let e = certificates(b"hello world", "tls.crt").unwrap_err();
        assert_eq!(
            e.to_string(),
            "tls.crt: is not PEM: no \"-----BEGIN CERTIFICATE-----\" block found"
        );
        let e = certificates(b"", "tls.crt").unwrap_err();
        assert_eq!(e.to_string(), "tls.crt: is empty");
    }

    #[test]
    fn a_damaged_block_says_so() {
        let e = certificates(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "tls.crt",
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not decode"), "{e}");
        let e = certificates(b"-----BEGIN CERTIFICATE-----\nMIIB\n", "tls.crt").unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn a_block_that_is_not_x509_says_so() {
        let e = certificates(
            b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
            "tls.crt",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("tls.crt: does not parse as an X.509 certificate"),
            "{e}"
        );
    }

    #[test]
    fn swapped_files_are_named() {
        let key = b"-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n";
        let e = certificates(key, "tls.crt").unwrap_err();
        assert!(e.to_string().contains("swapped"), "{e}");
        let cert = b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let e = private_key(cert, "tls.key").unwrap_err();
        assert!(e.to_string().contains("swapped"), "{e}");
    }

    #[test]
    fn encrypted_keys_are_refused_with_the_fix() {
        let k = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\naGVsbG8=\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let e = private_key(k, "tls.key").unwrap_err();
        assert!(e.to_string().contains("openssl pkey"), "{e}");
    }
}
