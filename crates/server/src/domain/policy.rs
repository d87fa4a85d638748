use std::time::Duration;

use super::FamiliarSources;

/// The rules a deployment may tune; defaults are the platform's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// A session unused for this long is over (sliding).
    pub session_idle_timeout: Duration,
    /// A session this old is over however much it is used; `None` (the platform's behaviour)
    /// for no limit.
    pub session_max_lifetime: Option<Duration>,
    /// Live sessions one user may hold; the oldest are revoked beyond it. `None`: no cap.
    pub max_sessions_per_user: Option<u32>,
    /// Consecutive failed logins that lock a username.
    pub lockout_threshold: u32,
    /// How long a lock lasts; `None` locks until an administrator unlocks.
    pub lockout_duration: Option<Duration>,
    /// How long after a reset the password it replaced is recognised and not counted as a
    /// failure (`domain/lockout.rs`); zero turns the rule off.
    pub previous_password_grace: Duration,
    /// Whether a source the user logged in from recently counts its failures apart
    /// (`domain/familiar.rs`).
    pub familiar_sources: FamiliarSources,
    /// How long after its last successful login a source stays familiar.
    pub familiar_source_window: Duration,
    /// Failed logins one client IP may make per window before every login from it is
    /// throttled; 0 turns the throttle off.
    pub ip_failure_limit: u32,
    /// How long a client address's failures count towards its limit.
    pub ip_failure_window: Duration,
    /// How long a login waits while `lockout_threshold` verifications of its username are
    /// already running, before it is answered 503.
    pub attempt_wait: Duration,
    /// Lifetime of an API token from its first issue.
    pub api_token_ttl: Duration,
    /// A session's last use is written only when the stored one is at least this old, so an
    /// authenticated call does not cost a durable write every time. Never more than a tenth of
    /// the idle timeout is used (see [`Policy::touch_granularity`]).
    pub session_touch_granularity: Duration,
    /// How long a repeated idempotent reset gets the stored answer back.
    pub idempotency_replay_window: Duration,
    /// How long an idempotency key is remembered (later repeats: `IdempotencyKey.Expired`).
    pub idempotency_record_ttl: Duration,
    /// Simulator mode: unknown OAuth clients and users are created on first use (see
    /// `domain/simulator.rs`). Never on by default.
    pub simulator: bool,
}

impl Policy {
    /// The granularity in force: a session then expires no later than the idle timeout after
    /// its real last use, and at most this much earlier.
    pub fn touch_granularity(&self) -> Duration {
        self.session_touch_granularity
            .min(self.session_idle_timeout / 10)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            session_idle_timeout: Duration::from_secs(20 * 60),
            session_max_lifetime: None,
            max_sessions_per_user: None,
            lockout_threshold: 5,
            lockout_duration: Some(Duration::from_secs(15 * 60)),
            previous_password_grace: Duration::from_secs(24 * 3600),
            familiar_sources: FamiliarSources::Off,
            familiar_source_window: Duration::from_secs(30 * 24 * 3600),
            ip_failure_limit: 100,
            ip_failure_window: Duration::from_secs(3600),
            attempt_wait: Duration::from_secs(5),
            api_token_ttl: Duration::from_secs(3600),
            simulator: false,
            session_touch_granularity: Duration::from_secs(60),
            idempotency_replay_window: Duration::from_secs(10 * 60),
            idempotency_record_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granularity_never_exceeds_a_tenth_of_the_idle_timeout() {
        let mut p = Policy::default();
        assert_eq!(p.touch_granularity(), Duration::from_secs(60));
        p.session_idle_timeout = Duration::from_secs(2);
        assert_eq!(p.touch_granularity(), Duration::from_millis(200));
    }
}
