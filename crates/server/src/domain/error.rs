use crate::crypto::CryptoError;
use crate::store::StoreError;
use crate::time::Timestamp;

/// Why a domain operation was refused. The HTTP layer maps each to the contract's answer, and
/// never needs to know the store's or the hasher's own errors.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Wrong username or wrong password: one variant, so the two cannot be told apart.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("user is locked until {}", until.to_rfc3339())]
    /// Too many consecutive failures; refused until the lock ends.
    Locked {
        /// When the lock ends ([`Timestamp::NEVER`] for a permanent lock).
        until: Timestamp,
    },
    /// Too many failed logins from the client's IP.
    #[error("too many failed logins from this address; retry after {retry_after:?}")]
    Throttled {
        /// How long until the address's oldest counted failure leaves its window.
        retry_after: std::time::Duration,
    },
    /// Verifications for this username are already running at the threshold; try again soon.
    #[error("too many attempts in flight for this username")]
    Busy,
    /// Any well-formed session token that is not a live session of this client.
    #[error("session token expired")]
    SessionExpired,
    /// The old password of a reset is wrong; counts as a failed login.
    #[error("old password does not match")]
    OldPasswordMismatch,
    /// A reset with this idempotency key is still running.
    #[error("a request with this idempotency key is in progress")]
    IdempotencyInProgress,
    /// The idempotency key was used with another session or body.
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    /// Not 1-255 printable ASCII characters.
    #[error("invalid idempotency key")]
    IdempotencyKeyInvalid,
    /// The idempotency key's stored answer is gone (replay window passed).
    #[error("idempotency key expired")]
    IdempotencyExpired,
    /// Bearer token unknown, revoked or expired.
    #[error("invalid API token")]
    InvalidApiToken,
    /// OAuth client unknown or secret wrong.
    #[error("invalid client credentials")]
    InvalidClient,
    /// A scope the client may not ask for.
    #[error("scope not allowed for this client")]
    InvalidScope,
    /// The token to revoke belongs to another client.
    #[error("token belongs to another client")]
    UnauthorizedClient,
    /// Input the domain refuses, with the reason.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A user or client of that name exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// No user, client or session of that name.
    #[error("{0} not found")]
    NotFound(String),
    /// Every password hash is running and the queue is full: shed before anything is written.
    #[error("every password hash is busy and the queue is full; try again shortly")]
    Overloaded,
    /// The database cannot be reached or stayed busy; the caller may try again shortly.
    #[error("the database is unavailable ({0}); try again shortly")]
    Unavailable(String),
    /// The database failed in a way no caller can act on: a bug, a corrupt file, a failed
    /// migration. The text is for the operator's log, never for the client.
    #[error("{0}")]
    StoreFailed(String),
    /// Any other fault below the domain (a failed hash, a lost worker); for the log only.
    #[error("{0}")]
    Internal(String),
}

/// The store's errors in the domain's terms, mapped here once. A conflict the domain expects
/// (a taken username, a recorded idempotency key) is matched on the store's answer before it
/// gets here.
impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => Self::Unavailable(reason),
            // Expected conflicts never get here; an unexpected one is the store's failure.
            other @ (StoreError::Conflict | StoreError::Backend(_) | StoreError::Config(_)) => {
                Self::StoreFailed(other.to_string())
            }
        }
    }
}

impl From<CryptoError> for DomainError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Overloaded => Self::Overloaded,
            other => Self::Internal(other.to_string()),
        }
    }
}
