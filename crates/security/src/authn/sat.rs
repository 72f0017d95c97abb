//! The ServiceAccountToken method (SPEC.md §7.3): MQTT v5 enhanced authentication with method
//! `K8S-SAT` and the JWT as data.
//!
//! Verification is a [`TokenVerifier`], chosen once: the JWKS in the ConfigMap named by
//! `serviceAccountTokenSettings.issuerKeysConfigMap` when the method names one, else the
//! verifier `serve` starts with ([`Authenticator::set_default_token_verifier`]): outside
//! Kubernetes the local issuer's key in the data dir
//! ([`LocalIssuer`](super::local_issuer::LocalIssuer), also a [`JwksVerifier`]). A [`JwksVerifier`]
//! checks the token's signature (RS*, PS*, ES256/384, EdDSA; never HMAC or `none`), then `exp`
//! (no leeway: an expired token is expired), `nbf` (60 s of clock skew) and `aud` (one of the
//! method's `audiences`). In Kubernetes a TokenReview verifier takes the place of both
//! ([`Authenticator::set_token_verifier`]).
//!
//! The identity's username is the token's verified `sub`
//! (`system:serviceaccount:<namespace>:<name>`), never the unverified CONNECT username. Its
//! attributes are the verifier's (TokenReview: the ServiceAccount's annotations), completed by
//! the `aio-broker-auth/*` annotations of that ServiceAccount in the configuration.
//!
//! [`Authenticator::set_default_token_verifier`]: super::Authenticator::set_default_token_verifier
//! [`Authenticator::set_token_verifier`]: super::Authenticator::set_token_verifier

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use wardgate_config::{Model, SatSettings, ServiceAccount};
use wardgate_protocol::ReasonCode;

use super::{AuthMethodKind, AuthnError, AuthnOutcome, Identity};

/// Clock skew allowed on `nbf`.
const NBF_SKEW: Duration = Duration::from_secs(60);

/// A token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`, e.g. `system:serviceaccount:azure-iot-operations:my-app`.
    pub subject: Option<String>,
    /// `exp`; `None` for a token that does not expire (a legacy Secret-based service-account
    /// token, which TokenReview accepts).
    pub expires_at: Option<SystemTime>,
    /// Authorization attributes (TokenReview: the ServiceAccount's `aio-broker-auth/*`
    /// annotations; the JWKS verifier gives none, the configuration's ServiceAccount does).
    pub attributes: BTreeMap<String, String>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not valid (signature, expiry, audience, shape); the client is denied.
    #[error("{0}")]
    Invalid(String),
    /// The verifier could not decide now (e.g. the Kubernetes API is unreachable).
    #[error("token verification unavailable: {0}")]
    Unavailable(String),
}

/// A boxed future, so that verifiers can be chosen at run time.
pub type VerifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<VerifiedToken, TokenError>> + Send + 'a>>;

/// Verifies service-account tokens for a set of audiences.
pub trait TokenVerifier: fmt::Debug + Send + Sync {
    /// Verifies `token`; it must carry one of `audiences`.
    fn verify<'a>(&'a self, token: &'a str, audiences: &'a [String]) -> VerifyFuture<'a>;
}

/// One usable public key of a JWKS.
struct JwksKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// Verifies tokens against the public keys of a JWKS (the cluster's `/openid/v1/jwks`).
pub struct JwksVerifier {
    source: String,
    keys: Vec<JwksKey>,
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("source", &self.source)
            .field(
                "kids",
                &self
                    .keys
                    .iter()
                    .map(|k| k.kid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

impl JwksVerifier {
    /// Reads every JWKS (`{"keys": [...]}`) or single JWK among the ConfigMap values. `source`
    /// names it in messages.
    pub fn from_documents<'a>(
        source: &str,
        documents: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<JwksVerifier, AuthnError> {
        let mut keys = Vec::new();
        for (name, bytes) in documents {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                continue;
            };
            let jwks: Vec<serde_json::Value> = match value.get("keys") {
                Some(serde_json::Value::Array(k)) => k.clone(),
                _ if value.get("kty").is_some() => vec![value.clone()],
                _ => continue,
            };
            for (i, k) in jwks.into_iter().enumerate() {
                let jwk: Jwk = match serde_json::from_value(k) {
                    Ok(j) => j,
                    Err(e) => {
                        tracing::warn!(%source, key = name, index = i, error = %e, "skipping a JWK that cannot be read");
                        continue;
                    }
                };
                match usable_key(&jwk) {
                    Ok(k) => keys.push(k),
                    Err(why) => {
                        tracing::warn!(%source, key = name, index = i, %why, "skipping a JWK");
                    }
                }
            }
        }
        if keys.is_empty() {
            return Err(AuthnError::Jwks(format!(
                "{source} holds no usable public key (expected a JWKS such as the cluster's \
                 /openid/v1/jwks: {{\"keys\": [...]}} with RSA, EC or OKP keys)"
            )));
        }
        Ok(JwksVerifier {
            source: source.to_owned(),
            keys,
        })
    }

    fn verify_now(
        &self,
        token: &str,
        audiences: &[String],
        now: SystemTime,
    ) -> Result<VerifiedToken, TokenError> {
        let invalid = |why: String| Err(TokenError::Invalid(why));
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            Err(e) => return invalid(format!("the token is not a JWT ({e})")),
        };
        if !is_public_key_alg(header.alg) {
            return invalid(format!(
                "the token's algorithm {:?} is not accepted",
                header.alg
            ));
        }
        let candidates: Vec<&JwksKey> = self
            .keys
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .filter(|k| k.algorithms.contains(&header.alg))
            .collect();
        if candidates.is_empty() {
            return invalid(format!(
                "no key in {} matches the token (kid {:?}, alg {:?})",
                self.source, header.kid, header.alg
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = false;
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "aud"]);
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return check_claims(data.claims, now),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    let why = match e.kind() {
                        K::InvalidSignature => {
                            last = Some("the signature does not verify".to_owned());
                            continue;
                        }
                        K::ExpiredSignature => "the token has expired".to_owned(),
                        K::InvalidAudience => format!(
                            "the token's audience is not one of {}",
                            audiences.join(", ")
                        ),
                        K::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
                        K::InvalidClaimFormat(c) => format!("the token's `{c}` claim is malformed"),
                        other => format!("the token is invalid ({other:?})"),
                    };
                    return invalid(why);
                }
            }
        }
        invalid(last.unwrap_or_else(|| "the signature does not verify".to_owned()))
    }
}

fn check_claims(claims: Claims, now: SystemTime) -> Result<VerifiedToken, TokenError> {
    let Some(exp) = claims.exp else {
        return Err(TokenError::Invalid(
            "the token has no `exp` claim".to_owned(),
        ));
    };
    let exp = UNIX_EPOCH + Duration::from_secs(exp);
    if exp <= now {
        return Err(TokenError::Invalid("the token has expired".to_owned()));
    }
    if let Some(nbf) = claims.nbf {
        let nbf = UNIX_EPOCH + Duration::from_secs(nbf);
        if nbf > now + NBF_SKEW {
            return Err(TokenError::Invalid(
                "the token is not valid yet (nbf)".to_owned(),
            ));
        }
    }
    Ok(VerifiedToken {
        subject: claims.sub,
        expires_at: Some(exp),
        attributes: BTreeMap::new(),
    })
}

impl TokenVerifier for JwksVerifier {
    fn verify<'a>(&'a self, token: &'a str, audiences: &'a [String]) -> VerifyFuture<'a> {
        Box::pin(async move { self.verify_now(token, audiences, SystemTime::now()) })
    }
}

/// The `exp` a JWT claims, read without checking its signature: for a verifier that had the
/// token verified by someone else (the API server's TokenReview, which does not say when the
/// token expires). `Ok(None)`: the token claims no `exp`.
pub fn claimed_expiry(token: &str) -> Result<Option<SystemTime>, TokenError> {
    use base64::Engine as _;
    #[derive(Deserialize)]
    struct Expiry {
        exp: Option<u64>,
    }
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| TokenError::Invalid("the token is not a JWT".to_owned()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| TokenError::Invalid("the token's claims are not base64url".to_owned()))?;
    let claims: Expiry = serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Invalid("the token's claims are not a JSON object".to_owned()))?;
    Ok(claims.exp.map(|exp| UNIX_EPOCH + Duration::from_secs(exp)))
}

fn is_public_key_alg(alg: Algorithm) -> bool {
    use Algorithm as A;
    matches!(
        alg,
        A::RS256
            | A::RS384
            | A::RS512
            | A::PS256
            | A::PS384
            | A::PS512
            | A::ES256
            | A::ES384
            | A::EdDSA
    )
}

fn usable_key(jwk: &Jwk) -> Result<JwksKey, String> {
    use Algorithm as A;
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            vec![A::RS256, A::RS384, A::RS512, A::PS256, A::PS384, A::PS512]
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![A::ES256],
            EllipticCurve::P384 => vec![A::ES384],
            ref c => return Err(format!("curve {c:?} is not supported")),
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![A::EdDSA],
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are never accepted".to_owned());
        }
        _ => return Err("unsupported key type".to_owned()),
    };
    // A key that names its algorithm is used only with it.
    let algorithms = match jwk.common.key_algorithm {
        Some(ka) => {
            let named = match ka {
                KeyAlgorithm::RS256 => A::RS256,
                KeyAlgorithm::RS384 => A::RS384,
                KeyAlgorithm::RS512 => A::RS512,
                KeyAlgorithm::PS256 => A::PS256,
                KeyAlgorithm::PS384 => A::PS384,
                KeyAlgorithm::PS512 => A::PS512,
                KeyAlgorithm::ES256 => A::ES256,
                KeyAlgorithm::ES384 => A::ES384,
                KeyAlgorithm::EdDSA => A::EdDSA,
                other => return Err(format!("algorithm {other:?} is not accepted")),
            };
            if !family.contains(&named) {
                return Err(format!("alg {named:?} does not fit the key type"));
            }
            vec![named]
        }
        None => family,
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key ({e})"))?;
    Ok(JwksKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}

/// The ServiceAccountToken method, ready to use.
pub(crate) struct SatMethod {
    audiences: Vec<String>,
    verifier: Option<Arc<dyn TokenVerifier>>,
    /// The ConfigMap of the method's own JWKS, which a default verifier does not replace.
    jwks_config_map: Option<String>,
    /// The configuration's ServiceAccounts, whose annotations are attributes.
    service_accounts: BTreeMap<String, ServiceAccount>,
}

impl SatMethod {
    pub(crate) fn new(model: &Model, s: &SatSettings) -> Result<SatMethod, AuthnError> {
        let verifier: Option<Arc<dyn TokenVerifier>> =
            match &s.issuer_keys_config_map {
                None => None,
                Some(name) => {
                    let cm = model.config_maps.get(name).ok_or_else(|| {
                        AuthnError::MissingConfigMap {
                        method:
                            "ServiceAccountToken serviceAccountTokenSettings.issuerKeysConfigMap"
                                .to_owned(),
                        name: name.clone(),
                    }
                    })?;
                    Some(Arc::new(JwksVerifier::from_documents(
                        &format!("ConfigMap/{name}"),
                        cm.values(),
                    )?))
                }
            };
        Ok(SatMethod {
            audiences: s.audiences.clone(),
            jwks_config_map: s.issuer_keys_config_map.clone(),
            verifier,
            service_accounts: model.service_accounts.clone(),
        })
    }

    /// Verifies with `v` unless the method names its own JWKS.
    pub(crate) fn set_default_verifier(&mut self, v: Arc<dyn TokenVerifier>) {
        if self.jwks_config_map.is_none() {
            self.verifier = Some(v);
        }
    }

    pub(crate) fn set_verifier(&mut self, v: Arc<dyn TokenVerifier>) {
        self.verifier = Some(v);
    }

    /// The configuration's ServiceAccount a verified `sub`
    /// (`system:serviceaccount:<namespace>:<name>`) names.
    pub(crate) fn service_account(&self, subject: &str) -> Option<&ServiceAccount> {
        let (namespace, name) = subject
            .strip_prefix("system:serviceaccount:")?
            .split_once(':')?;
        self.service_accounts
            .get(name)
            .filter(|sa| sa.is(namespace, name))
    }

    /// The audiences, for `explain`.
    pub(crate) fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The ConfigMap of the method's own JWKS, for `explain`.
    pub(crate) fn jwks_config_map(&self) -> Option<&str> {
        self.jwks_config_map.as_deref()
    }

    pub(crate) async fn authenticate(&self, client_id: &str, token: &[u8]) -> AuthnOutcome {
        let Some(verifier) = &self.verifier else {
            return AuthnOutcome::denied(
                ReasonCode::NOT_AUTHORIZED,
                "ServiceAccountToken: tokens cannot be verified here: neither \
                 serviceAccountTokenSettings.issuerKeysConfigMap (a JWKS) nor the local token \
                 issuer of `wardgate serve`'s data dir",
            );
        };
        let Ok(token) = std::str::from_utf8(token) else {
            return AuthnOutcome::denied(
                ReasonCode::NOT_AUTHORIZED,
                "ServiceAccountToken: the authentication data is not a JWT",
            );
        };
        match verifier.verify(token.trim(), &self.audiences).await {
            Ok(v) => {
                let mut attributes = v.attributes;
                if let Some(sa) = v.subject.as_deref().and_then(|s| self.service_account(s)) {
                    for (k, value) in &sa.attributes {
                        attributes.entry(k.clone()).or_insert_with(|| value.clone());
                    }
                }
                let mut id =
                    Identity::new(client_id, v.subject, AuthMethodKind::ServiceAccountToken);
                id.attributes = attributes;
                id.expires_at = v.expires_at;
                AuthnOutcome::Allowed(id)
            }
            Err(TokenError::Invalid(why)) => AuthnOutcome::denied(
                ReasonCode::NOT_AUTHORIZED,
                format!("ServiceAccountToken: {why}"),
            ),
            Err(TokenError::Unavailable(why)) => AuthnOutcome::denied(
                ReasonCode::SERVER_UNAVAILABLE,
                format!("ServiceAccountToken: {why}"),
            ),
        }
    }
}
