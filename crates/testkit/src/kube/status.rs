//! The `Status` objects the API server answers failures with (`kind: Status`, `reason`,
//! `code`), worded as a real server words them so kubectl prints the same lines.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A failed request: the HTTP code, the machine-readable reason and the message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status code.
    pub code: StatusCode,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `BadRequest`, `Expired`, ...
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
}

impl ApiError {
    /// `<qualified> "<name>" not found`.
    pub fn not_found(qualified: &str, name: &str) -> Self {
        ApiError {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: format!("{qualified} \"{name}\" not found"),
        }
    }

    /// `<qualified> "<name>" already exists`.
    pub fn already_exists(qualified: &str, name: &str) -> Self {
        ApiError {
            code: StatusCode::CONFLICT,
            reason: "AlreadyExists",
            message: format!("{qualified} \"{name}\" already exists"),
        }
    }

    /// An update whose `resourceVersion` is not the stored one.
    pub fn conflict(qualified: &str, name: &str) -> Self {
        ApiError {
            code: StatusCode::CONFLICT,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
        }
    }

    /// A request the server cannot make sense of.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    /// A path that names no resource.
    pub fn no_route(path: &str) -> Self {
        ApiError {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: format!("the server could not find the requested resource ({path})"),
        }
    }

    /// A verb the resource does not allow.
    pub fn method_not_allowed(verb: &str, qualified: &str) -> Self {
        ApiError {
            code: StatusCode::METHOD_NOT_ALLOWED,
            reason: "MethodNotAllowed",
            message: format!("{verb} is not supported on resources of kind \"{qualified}\""),
        }
    }

    /// A request whose content is refused (a JSON patch that does not apply, say): 422.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message: message.into(),
        }
    }

    /// A patch content type the fake does not implement.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError {
            code: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        }
    }

    /// A watch from a resourceVersion older than the kept history (HTTP 410).
    pub fn expired(requested: u64, oldest: u64) -> Self {
        ApiError {
            code: StatusCode::GONE,
            reason: "Expired",
            message: format!("too old resource version: {requested} ({oldest})"),
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, axum::Json(self.to_status())).into_response()
    }
}

/// The `Status` a successful collection delete or a delete by name may answer with.
pub fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}
