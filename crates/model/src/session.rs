use std::fmt;

use serde::{Deserialize, Serialize};

use crate::REDACTED;

/// Body of `POST /api/m2m/v1/session/login`.
///
/// Both fields are required on the wire; they are `Option` because the official SDKs model them
/// that way and a caller may want to send a deliberately incomplete request.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LogInRequest {
    /// The user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's password. Secret: `Debug` hides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl LogInRequest {
    /// A complete login request.
    ///
    /// ```
    /// let body = m2m_session_model::LogInRequest::new("zbeeblebrox", "IMgr8");
    /// assert_eq!(body.username.as_deref(), Some("zbeeblebrox"));
    /// assert!(!format!("{body:?}").contains("IMgr8"));
    /// ```
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: Some(username.into()),
            password: Some(password.into()),
        }
    }
}

impl fmt::Debug for LogInRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogInRequest")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// Answer to a successful login.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LogInResult {
    /// The session token (a GUID) for the `VZ-M2M-Token` header of later calls. Secret: `Debug`
    /// hides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl fmt::Debug for LogInResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogInResult")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

/// Answer to a successful logout: the token that was just invalidated.
///
/// The odd name (a "request" that is a response) is the official SDKs'; it is kept so that code
/// ported from them reads the same.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LogOutRequest {
    /// The session token that was ended. Secret: `Debug` hides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl fmt::Debug for LogOutRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogOutRequest")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

/// Body of `PUT /api/m2m/v1/session/password/actions/reset`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionResetPasswordRequest {
    /// The current password, as proof. Secret: `Debug` hides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_password: Option<String>,
}

impl SessionResetPasswordRequest {
    /// A reset request proving knowledge of the current password.
    pub fn new(old_password: impl Into<String>) -> Self {
        Self {
            old_password: Some(old_password.into()),
        }
    }
}

impl fmt::Debug for SessionResetPasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionResetPasswordRequest")
            .field(
                "old_password",
                &self.old_password.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

/// Answer to a successful reset: the server-generated password, shown exactly once.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionResetPasswordResult {
    /// The new password; the old one no longer works. Secret: `Debug` hides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_password: Option<String>,
}

impl fmt::Debug for SessionResetPasswordResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionResetPasswordResult")
            .field(
                "new_password",
                &self.new_password.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

/// The error body of every documented operation error (HTTP 400) and of our own 4xx/5xx answers.
///
/// Unknown properties are kept, as the C# model does, so nothing the server said is lost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConnectivityManagementResult {
    /// `<Service>.<CLASS>.<Detail>`, e.g. `UnifiedWebService.REQUEST_FAILED.SessionToken.Expired`;
    /// match on the part after the service name ([`crate::ErrorCode::from_code`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// For people; may change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Any other property of the body, kept as received.
    #[serde(flatten)]
    pub additional_properties: serde_json::Map<String, serde_json::Value>,
}

impl ConnectivityManagementResult {
    /// An error body with a code and a human-readable message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_code: Some(code.into()),
            error_message: Some(message.into()),
            additional_properties: serde_json::Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_camel_case_exactly() {
        let body = serde_json::to_value(LogInRequest::new("u", "p")).unwrap();
        assert_eq!(body, serde_json::json!({"username": "u", "password": "p"}));
        let reset = serde_json::to_value(SessionResetPasswordRequest::new("old")).unwrap();
        assert_eq!(reset, serde_json::json!({"oldPassword": "old"}));
        let result: SessionResetPasswordResult =
            serde_json::from_str(r#"{"newPassword":"Wh0a1545a84d"}"#).unwrap();
        assert_eq!(result.new_password.as_deref(), Some("Wh0a1545a84d"));
        let login: LogInResult =
            serde_json::from_str(r#"{"sessionToken":"bcce3ea6-fe4f-4952-bacf-eadd80718e83"}"#)
                .unwrap();
        assert!(login.session_token.is_some());
    }

    #[test]
    fn responses_tolerate_absence_and_unknown_fields() {
        let r: LogInResult = serde_json::from_str(r#"{"extra": 1}"#).unwrap();
        assert_eq!(r.session_token, None);
        let e: ConnectivityManagementResult =
            serde_json::from_str(r#"{"errorCode":"X","traceId":"t"}"#).unwrap();
        assert_eq!(e.error_code.as_deref(), Some("X"));
        assert_eq!(e.error_message, None);
        assert_eq!(e.additional_properties["traceId"], "t");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let all = format!(
            "{:?}{:?}{:?}{:?}{:?}",
            LogInRequest::new("user", "hunter2"),
            LogInResult {
                session_token: Some("tok-secret".into())
            },
            LogOutRequest {
                session_token: Some("tok-secret".into())
            },
            SessionResetPasswordRequest::new("hunter2"),
            SessionResetPasswordResult {
                new_password: Some("NewPass1".into())
            },
        );
        for secret in ["hunter2", "tok-secret", "NewPass1"] {
            assert!(!all.contains(secret), "{secret} leaked in {all}");
        }
        assert!(all.contains("user"));
    }
}
