//! Extractors that turn headers and bodies into typed values or the contract's errors.
//!
//! The contract fixes the order of checks (API token → body size → content type → body →
//! session token). Axum runs part extractors before the body one, so the API token is an
//! extractor, the body is the last one, and the session token is parsed by the handler after.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use m2m_session_model::{ErrorCode, GatewayFault, SESSION_TOKEN_HEADER};
use serde_json::{Map, Value};

use super::parse::{self, BodyError};
use super::{AppError, AppState};
use crate::crypto::SessionToken;

/// The OAuth client behind a valid `Authorization: Bearer` API token.
#[derive(Debug, Clone)]
pub struct ApiClient(pub String);

impl FromRequestParts<AppState> for ApiClient {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(AppError::Fault(GatewayFault::missing_credentials()));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(parse::bearer_token)
            .ok_or(AppError::Fault(GatewayFault::invalid_credentials()))?;
        let client = state
            .service
            .authenticate_api_token(token, state.clock.now())
            .await?;
        Ok(Self(client))
    }
}

/// The `VZ-M2M-Token` header as sent, parsed only when the handler asks (after the body).
#[derive(Debug, Clone)]
pub struct SessionTokenHeader(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for SessionTokenHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get(SESSION_TOKEN_HEADER).cloned()))
    }
}

impl SessionTokenHeader {
    /// Missing → `SessionToken.Format`; not a GUID → `SessionToken.Invalid`.
    pub fn token(&self) -> Result<SessionToken, AppError> {
        let value = self.0.as_ref().ok_or(AppError::bad_request(
            ErrorCode::SessionTokenFormat,
            "The VZ-M2M-Token header is missing.",
        ))?;
        value
            .to_str()
            .ok()
            .and_then(|text| SessionToken::parse(text.trim()).ok())
            .ok_or(AppError::bad_request(
                ErrorCode::SessionTokenInvalid,
                "The VZ-M2M-Token header is not a valid session token.",
            ))
    }
}

/// A JSON object body, checked for size, content type and shape in the contract's order.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let (parts, body) = req.into_parts();
        let bytes = read_limited(body, state).await?;
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        parse::json_object(content_type, &bytes)
            .map(Self)
            .map_err(|e| match e {
                BodyError::Undefined => {
                    AppError::bad_request(e.code(), "The request body is missing.")
                }
                BodyError::UnsupportedMediaType => AppError::api(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    e.code(),
                    "The request body must be application/json.",
                ),
                BodyError::NotAnObject => {
                    AppError::bad_request(e.code(), "The request body is not a valid JSON object.")
                }
            })
    }
}

impl JsonObject {
    /// A required string field; missing, `null` or another type is `UnexpectedError`.
    pub fn required_str(&self, name: &str) -> Result<&str, AppError> {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .ok_or(AppError::bad_request(
                ErrorCode::UnexpectedError,
                "A required field is missing or has the wrong type.",
            ))
    }
}

/// Reads a whole body within the body limit and the body read timeout.
///
/// A declared `Content-Length` over the limit is answered 413 before a byte is read (no client
/// gets to make the server wait for, or buffer, what it would refuse). A body that ends short
/// of its length or has a malformed chunk is the client's malformed request, 400, not 413.
pub async fn read_limited(body: axum::body::Body, state: &AppState) -> Result<Bytes, AppError> {
    use axum::body::HttpBody;
    let too_large = || {
        AppError::api(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "The request body is too large.",
        )
    };
    if body.size_hint().lower() > state.body_limit as u64 {
        return Err(too_large());
    }
    let read = axum::body::to_bytes(body, state.body_limit);
    match tokio::time::timeout(state.body_read_timeout, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large()),
        Ok(Err(_)) => Err(AppError::bad_request(
            ErrorCode::DeserializationFailed,
            "The request body ended early or its chunked encoding is malformed.",
        )),
        Err(_) => Err(AppError::api(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::DeserializationFailed,
            "The request body did not arrive in time; send the request again.",
        )),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The lower-cased media type of the `Content-Type` header, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    parse::media_type(headers.get(header::CONTENT_TYPE)?.to_str().ok()?)
}
