//! The local service-account token issuer: what lets the ServiceAccountToken method work on a
//! box without Kubernetes. `wardgate token create` signs tokens shaped like a projected
//! Kubernetes token with an EC P-256 key kept in the data dir, and the broker verifies them with
//! that key's public half (SPEC.md §7.3).
//!
//! The key is `<data_dir>/pki/token-issuer/key.pem` (PKCS#8, mode 0600), made by whichever of
//! `serve` and `token create` runs first. It is published to the verifier as a one-key JWKS, so
//! local tokens are checked by exactly the code that checks a cluster's tokens
//! ([`JwksVerifier`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::AuthnError;
use super::sat::JwksVerifier;
use crate::pki::PkiError;
use crate::pki::store::write_private;

/// The `iss` of local tokens.
pub const LOCAL_ISSUER: &str = "wardgate-local-token-issuer";

/// Where the signing key lives, under the data dir.
const KEY_FILE: &str = "pki/token-issuer/key.pem";

/// The issuer of local service-account tokens: the signing key of one data dir.
pub struct LocalIssuer {
    path: PathBuf,
    key: EncodingKey,
    kid: String,
    jwk: String,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("path", &self.path)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What a token is for: the service account, its audiences and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account's name.
    pub service_account: String,
    /// `aud`: at least one.
    pub audiences: Vec<String>,
    /// From `iat` to `exp`.
    pub lifetime: Duration,
}

/// The claims of a projected Kubernetes service-account token.
#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a [String],
    exp: u64,
    iat: u64,
    nbf: u64,
    iss: &'static str,
    jti: String,
    sub: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaim<'a>,
}

#[derive(Serialize)]
struct KubernetesClaim<'a> {
    namespace: &'a str,
    serviceaccount: ServiceAccountClaim<'a>,
}

#[derive(Serialize)]
struct ServiceAccountClaim<'a> {
    name: &'a str,
}

impl LocalIssuer {
    /// Opens the data dir's signing key, making it (0600) on first use. Two processes making it
    /// at once agree on one key: the first to link its file in place wins, the other reads it.
    pub fn open_or_create(data_dir: &Path) -> Result<LocalIssuer, PkiError> {
        let path = data_dir.join(KEY_FILE);
        let pem = match fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(&path)?,
            Err(e) => return Err(PkiError::io(&path, e)),
        };
        LocalIssuer::from_pem(path, &pem)
    }

    fn from_pem(path: PathBuf, pem: &str) -> Result<LocalIssuer, PkiError> {
        let bad = |message: String| PkiError::BadKey {
            what: path.display().to_string(),
            message,
        };
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| bad(e.to_string()))?;
        if !pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(bad(
                "is not an EC P-256 key; remove it and a new one is made".to_owned(),
            ));
        }
        // An uncompressed P-256 point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key_raw();
        let (x, y) = match point {
            [0x04, xy @ ..] if xy.len() == 64 => xy.split_at(32),
            _ => return Err(bad("has an unexpected public key encoding".to_owned())),
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638 thumbprint: the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ));
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "alg": "ES256", "use": "sig",
        })
        .to_string();
        let key = EncodingKey::from_ec_der(&pair.serialize_der());
        Ok(LocalIssuer {
            path,
            key,
            kid,
            jwk,
        })
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public key as a JWK (what `kubectl get --raw /openid/v1/jwks` lists for a cluster).
    pub fn public_jwk(&self) -> &str {
        &self.jwk
    }

    /// Signs a token for `request`, issued at `now`.
    pub fn issue(&self, request: &TokenRequest, now: SystemTime) -> Result<String, AuthnError> {
        let invalid = |why: &str| Err(AuthnError::Jwks(format!("cannot issue a token: {why}")));
        if request.audiences.is_empty() {
            return invalid("at least one audience is required");
        }
        if request.lifetime.is_zero() {
            return invalid("the duration must be positive");
        }
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let exp = iat.saturating_add(request.lifetime.as_secs().max(1));
        let claims = Claims {
            aud: &request.audiences,
            exp,
            iat,
            nbf: iat,
            iss: LOCAL_ISSUER,
            jti: token_id(),
            sub: format!(
                "system:serviceaccount:{}:{}",
                request.namespace, request.service_account
            ),
            kubernetes: KubernetesClaim {
                namespace: &request.namespace,
                serviceaccount: ServiceAccountClaim {
                    name: &request.service_account,
                },
            },
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AuthnError::Jwks(format!("cannot sign the token: {e}")))
    }

    /// The verifier of this issuer's tokens.
    pub fn verifier(&self) -> Result<JwksVerifier, AuthnError> {
        JwksVerifier::from_documents(
            &format!("the local token issuer key {}", self.path.display()),
            [("jwk", self.jwk.as_bytes())],
        )
    }
}

/// Makes the key at `path` unless another process just did; returns the PEM in place.
fn create(path: &Path) -> Result<String, PkiError> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| {
        PkiError::BadKey {
            what: path.display().to_string(),
            message: format!("cannot generate a key: {e}"),
        }
    })?;
    // A name of this attempt's own, so that racing makers never share a staging file.
    let staged = path.with_extension(format!("pem.{}", token_id()));
    write_private(&staged, &pair.serialize_pem())?;
    let linked = fs::hard_link(&staged, path);
    let _ = fs::remove_file(&staged);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(PkiError::io(path, e)),
    }
    fs::read_to_string(path).map_err(|e| PkiError::io(path, e))
}

/// A random ID in UUID v4 form, as Kubernetes writes `jti`.
fn token_id() -> String {
    let mut b = [0u8; 16];
    // The system's random source failing leaves a zero ID; making a key, which needs the same
    // source, fails before a staging file is named. `jti` is informational.
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalIssuer::open_or_create(dir.path()).unwrap();
        let again = LocalIssuer::open_or_create(dir.path()).unwrap();
        assert_eq!(first.kid, again.kid);
        assert_eq!(first.path(), dir.path().join(KEY_FILE));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(first.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(first.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["key.pem"]);
    }

    #[test]
    fn makers_racing_on_a_fresh_data_dir_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let kids: Vec<String> = std::thread::scope(|s| {
            let makers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| LocalIssuer::open_or_create(dir.path()).unwrap().kid))
                .collect();
            makers.into_iter().map(|m| m.join().unwrap()).collect()
        });
        assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
        let files = fs::read_dir(dir.path().join("pki/token-issuer"))
            .unwrap()
            .count();
        assert_eq!(files, 1, "no staging file is left behind");
    }

    #[test]
    fn a_key_file_that_is_not_a_p256_key_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "not a key").unwrap();
        let e = LocalIssuer::open_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("key.pem"), "{e}");
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        fs::write(&path, ed.serialize_pem()).unwrap();
        let e = LocalIssuer::open_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is not an EC P-256 key"), "{e}");
    }

    #[test]
    fn token_ids_look_like_uuids() {
        let id = token_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, token_id());
    }
}
