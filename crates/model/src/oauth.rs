use std::fmt;

use serde::{Deserialize, Serialize};

use crate::REDACTED;

/// Answer of `POST {oauth}/oauth2/token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// The API token, sent as `Authorization: Bearer` on every API call. Secret: `Debug` hides it.
    pub access_token: String,
    /// `bearer` (compare without regard to case).
    pub token_type: String,
    /// Seconds the token has left (not a constant: a re-issued token has less than an hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// The scopes granted, space-separated, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// RFC 6749 §5.2 error body of the token and revoke endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthErrorResponse {
    /// The RFC 6749 code: `invalid_client`, `invalid_request`, `unsupported_grant_type`, ...
    pub error: String,
    /// A human-readable explanation, when the server gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// The gateway's 401 body when the API token is missing or bad; not the session error shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayFault {
    /// What the gateway refused, and why.
    pub fault: GatewayFaultBody,
}

/// Inside [`GatewayFault`]: `900902` for missing credentials, `900901` for invalid ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayFaultBody {
    /// `900902` (missing credentials) or `900901` (invalid, revoked or expired API token).
    pub code: String,
    /// A short message, e.g. `Invalid Credentials`.
    pub message: String,
    /// The longer explanation (empty when the gateway sends none).
    #[serde(default)]
    pub description: String,
}

impl GatewayFault {
    /// No `Authorization: Bearer` header at all.
    pub fn missing_credentials() -> Self {
        Self::new(
            "900902",
            "Missing Credentials",
            "Invalid Credentials. Make sure your API invocation call has a header: 'Authorization: Bearer ACCESS_TOKEN'",
        )
    }

    /// A bearer token that is unknown, revoked or expired.
    pub fn invalid_credentials() -> Self {
        Self::new(
            "900901",
            "Invalid Credentials",
            "Access failure for API: /api, version: v1. Make sure you have given the correct access token",
        )
    }

    fn new(code: &str, message: &str, description: &str) -> Self {
        Self {
            fault: GatewayFaultBody {
                code: code.into(),
                message: message.into(),
                description: description.into(),
            },
        }
    }
}
