//! Who may use the console and the JSON API, and the console's CSRF token.
//!
//! On a loopback address anyone on the machine may ([`Access::Open`]), as before. On any other
//! address a token is required ([`Access::Token`]): `Authorization: Bearer <token>`, or HTTP
//! Basic with the token as the password (what a browser prompts for). Exposed without a token,
//! the console and the JSON API refuse every request ([`Access::Locked`]). The probes and
//! `/metrics` (`/healthz`, `/readyz`, `/metrics`) stay open in every case: the kubelet and
//! Prometheus scrape them without credentials, and they carry no secrets.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::dto;

/// The longest token accepted (a Secret value is small; this bounds the comparison).
const MAX_TOKEN_LEN: usize = 4096;
/// The shortest token accepted: anything shorter is guessable.
const MIN_TOKEN_LEN: usize = 16;

/// The admin token: a secret string callers must present. Its `Debug` never shows it.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Why a token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read the admin token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The token is empty, too short, too long or not printable ASCII.
    #[error(
        "the admin token in {path} must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} printable ASCII characters without spaces (found {found})"
    )]
    Invalid {
        /// The file.
        path: String,
        /// What was found (a length or a character class, never the token).
        found: String,
    },
}

impl AdminToken {
    /// The token in `path` (a Secret's key mounted as a file), surrounding whitespace trimmed.
    pub fn read_file(path: &Path) -> Result<Self, TokenError> {
        let shown = path.display().to_string();
        let raw = std::fs::read(path).map_err(|source| TokenError::Read {
            path: shown.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&raw);
        let token = text.trim();
        let invalid = |found: String| TokenError::Invalid {
            path: shown.clone(),
            found,
        };
        if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len()) {
            return Err(invalid(format!("{} characters", token.len())));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("spaces or non-ASCII characters".to_string()));
        }
        Ok(Self(token.into()))
    }

    /// The token, for [`AdminClient`](super::client::AdminClient)'s requests.
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the token, compared in constant time.
    fn matches(&self, presented: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), presented).is_ok()
    }
}

/// Who may use the console and the JSON API.
#[derive(Debug, Clone)]
pub enum Access {
    /// Bound to loopback, no token configured: no credentials asked.
    Open,
    /// Every request must carry this token.
    Token(AdminToken),
    /// Bound to a non-loopback address without a token: every request is refused.
    Locked {
        /// The address, for the error message.
        addr: SocketAddr,
    },
}

impl Access {
    /// The access for an admin server bound to `addr`: the token when one is configured,
    /// otherwise open on loopback and locked elsewhere.
    pub fn for_address(addr: SocketAddr, token: Option<AdminToken>) -> Self {
        match token {
            Some(token) => Access::Token(token),
            None if addr.ip().is_loopback() => Access::Open,
            None => Access::Locked { addr },
        }
    }
}

/// Refuses a request to the console or the JSON API that `access` does not let through.
pub(super) async fn require(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    match &*access {
        Access::Open => next.run(request).await,
        Access::Token(token) if presented(request.headers()).is_some_and(|t| token.matches(&t)) => {
            next.run(request).await
        }
        Access::Token(_) => {
            let body = dto::Error {
                error: "this admin API requires the admin token: Authorization: Bearer <token>, \
                        or Basic with the token as the password"
                    .to_string(),
            };
            let challenge = HeaderValue::from_static("Basic realm=\"Wardgate\", charset=\"UTF-8\"");
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
                axum::Json(body),
            )
                .into_response()
        }
        Access::Locked { addr } => {
            let body = dto::Error {
                error: format!(
                    "the admin API listens on {addr}, which is not loopback, and no admin token is \
                     configured: start the broker with --admin-token-file (docs/console.md)"
                ),
            };
            (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
        }
    }
}

/// The token a request presents: a Bearer token, or a Basic password.
fn presented(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    if value.len() > 2 * MAX_TOKEN_LEN {
        return None;
    }
    let (scheme, rest) = std::str::from_utf8(value).ok()?.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        Some(decoded[colon + 1..].to_vec())
    } else {
        None
    }
}

/// The console's CSRF token: random per process, embedded in every form, required by every
/// POST. A page of another origin cannot read it, so it cannot forge the form.
#[derive(Clone)]
pub struct CsrfToken(Arc<str>);

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken(<redacted>)")
    }
}

impl CsrfToken {
    /// A fresh random token (32 bytes, hex).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        // The system's generator does not fail on a working system; if it did, an all-zero
        // token would be guessable, so refuse to run rather than continue with it.
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator works");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(hex.into())
    }

    /// The token, for forms.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the token, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), presented.as_bytes())
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_bearer_or_the_basic_password() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(presented(&headers).as_deref(), Some(&b"abc"[..]));
        // admin:s3cret:x — the password may contain colons.
        let basic = base64::engine::general_purpose::STANDARD.encode("admin:s3cret:x");
        let value = HeaderValue::from_str(&format!("Basic {basic}")).expect("header");
        headers.insert(header::AUTHORIZATION, value);
        assert_eq!(presented(&headers).as_deref(), Some(&b"s3cret:x"[..]));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(presented(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest x"));
        assert_eq!(presented(&headers), None);
    }

    #[test]
    fn loopback_is_open_and_elsewhere_needs_a_token() {
        let lo: SocketAddr = "127.0.0.1:9600".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:9600".parse().expect("addr");
        assert!(matches!(Access::for_address(lo, None), Access::Open));
        assert!(matches!(
            Access::for_address(any, None),
            Access::Locked { .. }
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "0123456789abcdef0123\n").expect("write");
        let token = AdminToken::read_file(&file).expect("token");
        assert!(token.matches(b"0123456789abcdef0123"));
        assert!(!token.matches(b"0123456789abcdef012"));
        assert!(!format!("{token:?}").contains("0123"));
        assert!(matches!(
            Access::for_address(any, Some(token)),
            Access::Token(_)
        ));
        std::fs::write(&file, "short").expect("write");
        let err = AdminToken::read_file(&file).expect_err("too short");
        assert!(err.to_string().contains("5 characters"), "{err}");
        std::fs::write(&file, "with a space in it, long enough").expect("write");
        assert!(AdminToken::read_file(&file).is_err());
    }

    #[test]
    fn csrf_tokens_are_random_and_compared_whole() {
        let (a, b) = (CsrfToken::generate(), CsrfToken::generate());
        assert_eq!(a.as_str().len(), 64);
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.matches(a.as_str()));
        assert!(!a.matches(b.as_str()));
        assert!(!a.matches(""));
    }
}
