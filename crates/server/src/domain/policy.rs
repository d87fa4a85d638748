use std::time::Duration;

/// The rules a deployment may tune; defaults are the platform's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// A session unused for this long is over (sliding).
    pub session_idle_timeout: Duration,
    /// Consecutive failed logins that lock a username.
    pub lockout_threshold: u32,
    /// How long a lock lasts; `None` locks until an administrator unlocks.
    pub lockout_duration: Option<Duration>,
    /// Lifetime of an API token from its first issue.
    pub api_token_ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            session_idle_timeout: Duration::from_secs(20 * 60),
            lockout_threshold: 5,
            lockout_duration: Some(Duration::from_secs(15 * 60)),
            api_token_ttl: Duration::from_secs(3600),
        }
    }
}
