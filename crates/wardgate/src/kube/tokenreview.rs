//! Service-account tokens verified by the cluster (issue 19 item 4): a [`TokenVerifier`] that
//! asks the API server with a `TokenReview` (authentication.k8s.io/v1) for the method's
//! audiences, and takes the authorization attributes from the reviewed ServiceAccount's
//! `aio-broker-auth/*` annotations (kept for [`ACCOUNT_TTL`]), as AIO's broker does.
//!
//! Both calls run on the connection's task, under one deadline ([`REVIEW_TIMEOUT`]): an API
//! server that does not answer makes the client wait at most that long and get CONNACK 0x88
//! (Server unavailable, what [`TokenError::Unavailable`] maps to), with a warning in the log.
//! A token the API server does not accept is refused with 0x87 and its reason.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use tracing::warn;
use wardgate_config::attribute_of_annotation;
use wardgate_security::authn::sat::{VerifyFuture, claimed_expiry};
use wardgate_security::authn::{TokenError, TokenVerifier, VerifiedToken};

/// How long a review (TokenReview and, when not cached, the ServiceAccount) may take.
pub(crate) const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a ServiceAccount's attributes are reused before it is read again.
pub(crate) const ACCOUNT_TTL: Duration = Duration::from_secs(30);
/// ServiceAccounts kept at most; when full, expired entries go first, then all.
const ACCOUNT_CACHE_MAX: usize = 4096;

/// `system:serviceaccount:<namespace>:<name>`, the username TokenReview gives a service account.
const SERVICE_ACCOUNT_USER: &str = "system:serviceaccount:";

/// Verifies `K8S-SAT` tokens with the cluster's TokenReview API.
pub(crate) struct TokenReviewVerifier {
    client: kube::Client,
    timeout: Duration,
    accounts: Mutex<HashMap<AccountName, CachedAccount>>,
}

impl std::fmt::Debug for TokenReviewVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewVerifier")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A ServiceAccount: `(namespace, name)`.
type AccountName = (String, String);

struct CachedAccount {
    read_at: Instant,
    attributes: BTreeMap<String, String>,
}

impl TokenReviewVerifier {
    /// A verifier that reviews with `client` (the pod's service account needs `create` on
    /// `tokenreviews` and `get` on `serviceaccounts`, as `wardgate kube manifests` grants).
    pub(crate) fn new(client: kube::Client) -> TokenReviewVerifier {
        TokenReviewVerifier {
            client,
            timeout: REVIEW_TIMEOUT,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Gives a review `timeout` instead of [`REVIEW_TIMEOUT`].
    #[cfg(test)]
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> TokenReviewVerifier {
        self.timeout = timeout;
        self
    }

    async fn review(&self, token: &str, audiences: &[String]) -> Result<VerifiedToken, TokenError> {
        let reviews: Api<TokenReview> = Api::all(self.client.clone());
        let request = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(audiences.to_vec()),
            },
            ..TokenReview::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &request)
            .await
            .map_err(|e| unavailable(format!("TokenReview failed: {e}")))?;
        let (namespace, name) = reviewed_account(answer.status.unwrap_or_default(), audiences)?;
        let attributes = self.attributes(&namespace, &name).await?;
        Ok(VerifiedToken {
            subject: Some(format!("{SERVICE_ACCOUNT_USER}{namespace}:{name}")),
            expires_at: claimed_expiry(token)?,
            attributes,
        })
    }

    /// The `aio-broker-auth/*` annotations of the ServiceAccount, cached for [`ACCOUNT_TTL`].
    /// A ServiceAccount that does not exist (deleted since the token was made) gives none.
    async fn attributes(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, TokenError> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(hit) = self.lock_accounts().get(&key)
            && hit.read_at.elapsed() < ACCOUNT_TTL
        {
            return Ok(hit.attributes.clone());
        }
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let account = accounts.get_opt(name).await.map_err(|e| {
            unavailable(format!(
                "reading ServiceAccount {namespace}/{name} failed: {e}"
            ))
        })?;
        let attributes: BTreeMap<String, String> = account
            .and_then(|a| a.metadata.annotations)
            .into_iter()
            .flatten()
            .filter_map(|(key, value)| match attribute_of_annotation(&key) {
                Some(attribute) if !attribute.is_empty() => Some((attribute.to_owned(), value)),
                _ => None,
            })
            .collect();
        let mut cache = self.lock_accounts();
        if cache.len() >= ACCOUNT_CACHE_MAX {
            cache.retain(|_, a| a.read_at.elapsed() < ACCOUNT_TTL);
            if cache.len() >= ACCOUNT_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(
            key,
            CachedAccount {
                read_at: Instant::now(),
                attributes: attributes.clone(),
            },
        );
        Ok(attributes)
    }

    fn lock_accounts(&self) -> std::sync::MutexGuard<'_, HashMap<AccountName, CachedAccount>> {
        // The map is consistent after every statement: a panic elsewhere cannot leave it torn.
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TokenVerifier for TokenReviewVerifier {
    fn verify<'a>(&'a self, token: &'a str, audiences: &'a [String]) -> VerifyFuture<'a> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.review(token, audiences)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(unavailable(format!(
                    "the Kubernetes API did not answer the TokenReview within {} s",
                    self.timeout.as_secs_f32()
                ))),
            }
        })
    }
}

fn unavailable(why: String) -> TokenError {
    warn!("ServiceAccountToken: {why}; the client is refused with 0x88 (Server unavailable)");
    TokenError::Unavailable(why)
}

/// The ServiceAccount an authenticated review names, after checking that the token was
/// accepted for one of `audiences` (an empty `status.audiences` means the API server's own
/// audience, which is not ours).
fn reviewed_account(
    status: TokenReviewStatus,
    audiences: &[String],
) -> Result<AccountName, TokenError> {
    if status.authenticated != Some(true) {
        let why = status
            .error
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "the token was not accepted".to_owned());
        return Err(TokenError::Invalid(format!("TokenReview: {why}")));
    }
    let accepted_for = status.audiences.unwrap_or_default();
    if !accepted_for.iter().any(|a| audiences.contains(a)) {
        return Err(TokenError::Invalid(format!(
            "the token's audience is not one of {}",
            audiences.join(", ")
        )));
    }
    let username = status.user.and_then(|u| u.username).unwrap_or_default();
    username
        .strip_prefix(SERVICE_ACCOUNT_USER)
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
        .ok_or_else(|| {
            TokenError::Invalid(format!(
                "the token is not a service account's (TokenReview user {username:?})"
            ))
        })
}

#[cfg(test)]
#[path = "tokenreview_tests.rs"]
pub(crate) mod tests;
