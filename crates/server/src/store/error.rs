/// What can go wrong below the domain, in terms the domain can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (e.g. the username is taken).
    #[error("already exists")]
    Conflict,
    /// The database cannot be reached or is too busy; the caller may try again later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, a corrupt file, a failed migration.
    #[error("store failure: {0}")]
    Backend(String),
    /// The database named cannot be used as asked, said for the person who named it: an
    /// unknown URL scheme, a file that is not there, an operation this backend leaves to its
    /// own tools.
    #[error("{0}")]
    Config(String),
}

/// What every store operation returns.
pub type StoreResult<T> = Result<T, StoreError>;
