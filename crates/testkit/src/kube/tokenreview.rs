//! `TokenReview` (`POST /apis/authentication.k8s.io/v1/tokenreviews`): the tokens the test
//! registered are valid for their service account and audiences; every other token is not.

use serde_json::{Value, json};

use super::status::ApiError;

/// A service-account token the fake accepts.
#[derive(Debug, Clone)]
pub struct ServiceAccountToken {
    /// The bearer token.
    pub token: String,
    /// The service account's namespace.
    pub namespace: String,
    /// The service account's name.
    pub name: String,
    /// The audiences the token was issued for.
    pub audiences: Vec<String>,
}

/// The API server's own audience, used when a review names none (as kube-apiserver's
/// `--api-audiences` default is).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Answers one review: the request body in, the TokenReview with its `status` out.
pub fn review(tokens: &[ServiceAccountToken], body: &[u8]) -> Result<Value, ApiError> {
    let mut review: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding TokenReview: {e}")))?;
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("TokenReview.spec.token: Required value"))?;
    let wanted: Vec<String> = match review.pointer("/spec/audiences").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        _ => vec![API_AUDIENCE.to_string()],
    };
    let status = match tokens.iter().find(|t| t.token == token) {
        None => {
            json!({"authenticated": false, "user": {}, "error": "[invalid bearer token, service account token has been invalidated]"})
        }
        Some(sa) => {
            let common: Vec<&String> = wanted.iter().filter(|a| sa.audiences.contains(a)).collect();
            if common.is_empty() {
                json!({"authenticated": false, "user": {}, "error": "[invalid bearer token, token audiences is invalid for the target audiences]"})
            } else {
                json!({
                    "authenticated": true,
                    "user": {
                        "username": format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
                        "uid": format!("sa-{}-{}", sa.namespace, sa.name),
                        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", sa.namespace), "system:authenticated"],
                    },
                    "audiences": common,
                })
            }
        }
    };
    if let Some(map) = review.as_object_mut() {
        map.insert("status".into(), status);
        map.insert("metadata".into(), json!({"creationTimestamp": null}));
    }
    Ok(review)
}
