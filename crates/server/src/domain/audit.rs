//! The audit trail: one line per attempt and per administrative change, never a secret.

use std::net::IpAddr;

use super::DomainError;
use crate::store::{AuditRecord, Store};
use crate::time::Timestamp;

/// What an audit line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    /// A login, successful or not.
    Login,
    /// A logout.
    Logout,
    /// A password reset.
    Reset,
    /// A username locked by failures.
    Lock,
    /// A lock ended by an administrator.
    Unlock,
    /// Sessions ended by the per-user cap or an administrator.
    Revoke,
    /// Any other administrative change (users, clients).
    Admin,
}

impl AuditEvent {
    /// The name stored in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Reset => "reset",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::Revoke => "revoke",
            Self::Admin => "admin",
        }
    }
}

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// It did what was asked.
    Success,
    /// Wrong username, password or old password.
    InvalidCredentials,
    /// Refused: the username is locked.
    Locked,
    /// Refused: the client address has too many failures.
    Throttled,
    /// Refused: the password the user's last reset replaced, recognised and not counted.
    StalePassword,
    /// Anything else (an expired session, a store fault).
    Error,
}

impl AuditOutcome {
    /// The name stored in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Locked => "locked",
            Self::Throttled => "throttled",
            Self::StalePassword => "stale_password",
            Self::Error => "error",
        }
    }

    /// The outcome an operation's result is audited as.
    pub fn of<T>(result: &Result<T, DomainError>) -> Self {
        match result {
            Ok(_) => Self::Success,
            Err(DomainError::InvalidCredentials | DomainError::OldPasswordMismatch) => {
                Self::InvalidCredentials
            }
            Err(DomainError::Locked { .. }) => Self::Locked,
            Err(DomainError::Throttled { .. }) => Self::Throttled,
            Err(_) => Self::Error,
        }
    }
}

/// Who is asking: the OAuth client and the client IP, for the audit log and the IP throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The OAuth client that made the request.
    pub client_id: String,
    /// The client's address, as the trusted proxies report it.
    pub ip: Option<IpAddr>,
    /// The request's `X-Request-Id`, written with its audit lines.
    pub request_id: Option<String>,
}

impl RequestContext {
    /// A context for a request arriving now.
    pub fn new(client_id: impl Into<String>, ip: Option<IpAddr>) -> Self {
        Self {
            client_id: client_id.into(),
            ip,
            request_id: None,
        }
    }

    /// The same context, naming the request's id in the audit lines it leads to.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }
}

/// One audit line. Appending one never fails the operation it records: a store error is
/// logged. (A successful login's line is instead written in the transaction that starts the
/// session, so the two stand or fall together.)
pub struct Entry<'a> {
    pub event: AuditEvent,
    pub outcome: AuditOutcome,
    pub username: Option<&'a str>,
    pub context: Option<&'a RequestContext>,
    pub detail: Option<String>,
}

impl Entry<'_> {
    pub fn record(self, now: Timestamp) -> AuditRecord {
        AuditRecord {
            time: now,
            event: self.event.as_str().to_owned(),
            outcome: self.outcome.as_str().to_owned(),
            username: self.username.map(str::to_owned),
            client_id: self.context.map(|c| c.client_id.clone()),
            ip: self.context.and_then(|c| c.ip).map(|ip| ip.to_string()),
            detail: self.detail,
            request_id: self.context.and_then(|c| c.request_id.clone()),
        }
    }
}

pub async fn append(store: &dyn Store, now: Timestamp, entry: Entry<'_>) {
    let record = entry.record(now);
    if let Err(e) = store.append_audit(&record).await {
        tracing::warn!(error = %e, event = record.event, "audit record lost");
    }
}
