//! Time as the domain and the stores see it: milliseconds since the Unix epoch.
//!
//! The domain's rules never read the clock; callers pass `now`, so expiry and lockout rules are
//! tested with an injected time. Integers keep both database backends identical and comparisons
//! exact. Where the domain must wait or measure a duration, it asks a [`TimeSource`] it was
//! handed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

/// A clock handed to the domain, to wait by and to measure how long a request has taken.
#[async_trait]
pub trait TimeSource: Send + Sync + 'static {
    /// The time now, as this clock tells it.
    fn now(&self) -> Timestamp;
    /// Time since a fixed point, never going back: for durations, which a wall clock set
    /// back (or its offset measured again) must not shorten.
    fn monotonic(&self) -> Duration;
    /// Returns after `duration`.
    async fn sleep(&self, duration: Duration);
}

/// The default is the epoch: before anything this service records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// A moment that never comes: the end of a permanent lock.
    pub const NEVER: Self = Self(i64::MAX);

    /// The wall clock; called only at the edges (HTTP handlers, the CLI).
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// A `SystemTime` in milliseconds; times before the epoch are clamped to it.
    pub fn from_system_time(t: SystemTime) -> Self {
        let millis = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This time plus `d`, saturating.
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(d)))
    }

    /// This time minus `d`, saturating.
    #[must_use]
    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(d)))
    }

    /// Time from `self` until `later`, zero if `later` is not later.
    pub fn until(self, later: Self) -> Duration {
        u64::try_from(later.0.saturating_sub(self.0)).map_or(Duration::ZERO, Duration::from_millis)
    }

    /// RFC 3339 in UTC, or `never` for [`Timestamp::NEVER`].
    pub fn to_rfc3339(self) -> String {
        if self == Self::NEVER {
            return "never".to_owned();
        }
        let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(self.0).unwrap_or(0));
        humantime::format_rfc3339_seconds(t).to_string()
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_formats() {
        let t = Timestamp(1_000);
        assert_eq!(t.plus(Duration::from_secs(1)), Timestamp(2_000));
        assert_eq!(t.until(Timestamp(500)), Duration::ZERO);
        assert_eq!(
            Timestamp::NEVER.plus(Duration::from_secs(1)),
            Timestamp::NEVER
        );
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp(1_700_000_000_000).to_rfc3339(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_rfc3339(),
            "2000-02-29T00:00:00Z"
        );
    }
}
