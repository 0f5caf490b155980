//! The HTTP edge shared by every function: bounded JSON bodies with unknown fields
//! refused, problem+json answers, path routing, idempotency keys and fingerprints.

use crate::error::ApiError;
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Larger bodies are refused before parsing (no request of this API needs more).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Parses the JSON body into `T` (whose serde attributes refuse unknown fields).
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.starts_with("application/json") && !ct.contains("+json") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("body_required", "a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(json_error)
}

fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {msg}"))
        }
        Category::Data if msg.starts_with("unknown field") => {
            ApiError::bad_request("unknown_field", msg)
        }
        Category::Data if msg.starts_with("missing field") => {
            ApiError::bad_request("missing_field", msg)
        }
        Category::Data => ApiError::bad_request("invalid_field", msg),
    }
}

/// A JSON answer.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => raw_json(status, bytes),
        Err(e) => problem(&ApiError::Internal(format!("serializing the answer: {e}")), ""),
    }
}

pub fn raw_json(status: u16, bytes: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Binary(bytes))
        .expect("static response parts are valid")
}

/// An RFC 9457 problem+json answer; 5xx details are logged, not sent.
pub fn problem(err: &ApiError, instance: &str) -> Response<Body> {
    if err.status() >= 500 {
        tracing::error!(code = err.code(), error = %err, "request failed");
    } else {
        tracing::info!(code = err.code(), status = err.status(), "request refused");
    }
    let body = serde_json::json!({
        "type": format!("https://loyalty.dev/problems/{}", err.code().replace('_', "-")),
        "title": err.title(),
        "status": err.status(),
        "detail": err.public_detail(),
        "code": err.code(),
        "instance": instance,
    });
    let mut resp = Response::builder()
        .status(StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/problem+json");
    // RFC 9110: a 429 says when to come back, so well-behaved clients wait instead of hammering.
    if let Some(secs) = err.retry_after() {
        resp = resp.header(header::RETRY_AFTER, secs.to_string());
    }
    resp.body(Body::Text(body.to_string())).expect("static response parts are valid")
}

/// Turns a handler result into the response, errors as problem+json.
pub fn respond(req: &Request, result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(|e| problem(&e, path(req)))
}

/// The request path as API Gateway passes it (`rawPath`; the `$default` stage adds no prefix).
pub fn path(req: &Request) -> &str {
    let raw = req.raw_http_path();
    if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    }
}

/// The method and the non-empty path segments, for a `match` in each function's router.
pub fn route(req: &Request) -> (Method, Vec<&str>) {
    (req.method().clone(), path(req).split('/').filter(|s| !s.is_empty()).collect())
}

pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name).map(str::to_string))
}

pub fn not_found(req: &Request) -> ApiError {
    ApiError::not_found("route_not_found", format!("no route for {} {}", req.method(), path(req)))
}

/// The `Idempotency-Key` header: 1..100 visible ASCII characters.
pub fn idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else { return Ok(None) };
    let k = v.to_str().unwrap_or_default();
    if k.is_empty() || k.len() > 100 || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 100 visible ASCII characters",
        ));
    }
    Ok(Some(k.to_string()))
}

/// A stable digest of a request's meaning: the same key with another body is a 409.
pub fn fingerprint<T: Serialize>(what: &T) -> String {
    // serde_json's Value keeps object keys sorted, so equal requests print equally.
    let canonical = serde_json::to_value(what).map(|v| v.to_string()).unwrap_or_default();
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Validates a path segment as an id (order, refund, coupon...): 1..128 safe characters.
pub fn id_param<'a>(
    value: &'a str,
    what: &'static str,
    code: &'static str,
) -> Result<&'a str, ApiError> {
    let ok = (1..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    ok.then_some(value).ok_or_else(|| {
        ApiError::bad_request(code, format!("{what} must be 1 to 128 letters, digits or -_.:@"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_says_when_to_retry_and_other_problems_do_not() {
        let r =
            problem(&ApiError::TooManyRequests { retry_after_secs: 17 }, "/members/m-1/activities");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("17"));
        let body: serde_json::Value = serde_json::from_slice(r.body().as_ref()).unwrap();
        assert_eq!(
            (body["code"].as_str(), body["title"].as_str()),
            (Some("rate_limited"), Some("Too many requests"))
        );
        assert!(problem(&ApiError::Unauthenticated, "/")
            .headers()
            .get(header::RETRY_AFTER)
            .is_none());
    }

    #[test]
    fn fingerprint_ignores_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":[1,2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":[1,2],"a":1}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&serde_json::json!({"a":2,"b":[1,2]})));
    }
}
