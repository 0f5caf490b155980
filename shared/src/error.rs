//! The API layer's one error type. Every failure a caller can see maps here once, to an
//! HTTP status and a stable machine `code` in an RFC 9457 problem+json body.

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, unknown or missing field, bad header...).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// Well-formed, but breaks a rule (invalid email, points not a multiple of 100...).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("no authenticated member identity on the request")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    #[error("{0} is not allowed on this resource")]
    MethodNotAllowed(String),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// Over a per-member limit (`limits`): nothing was written; retry after the delay.
    #[error("too many write attempts for this member; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// A fault on our side. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest { code, detail: detail.into() }
    }
    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Unprocessable { code, detail: detail.into() }
    }
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::NotFound { code, detail: detail.into() }
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict { code, detail: detail.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthenticated => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge(_) => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::Unprocessable { .. } => 422,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::Unavailable(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. } => code,
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "body_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn title(&self) -> &'static str {
        match self.status() {
            400 => "Bad request",
            401 => "Unauthenticated",
            403 => "Forbidden",
            404 => "Not found",
            405 => "Method not allowed",
            409 => "Conflict",
            413 => "Payload too large",
            415 => "Unsupported media type",
            422 => "Unprocessable request",
            429 => "Too many requests",
            503 => "Service unavailable",
            _ => "Internal error",
        }
    }

    /// Seconds for the `Retry-After` header, for answers that carry one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// What the caller is told. Internal details stay in the logs.
    pub fn public_detail(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "something went wrong on our side; the request may be retried".into()
            }
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Contended => ApiError::conflict(
                "concurrent_update",
                "too many concurrent changes to this member; retry the request",
            ),
            StoreError::Throttled(m) => {
                ApiError::Unavailable(format!("the database is busy ({m}); retry the request"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::limits::RateLimited> for ApiError {
    fn from(e: crate::limits::RateLimited) -> ApiError {
        ApiError::TooManyRequests { retry_after_secs: e.retry_after_secs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_refusal_is_a_429_with_the_wait() {
        let e: ApiError = crate::limits::RateLimited { limit: 30, retry_after_secs: 12 }.into();
        assert_eq!((e.status(), e.code(), e.retry_after()), (429, "rate_limited", Some(12)));
    }
}
