//! Time as the domain and the stores see it: milliseconds since the Unix epoch.
//!
//! The domain never reads the clock; callers pass `now`, so expiry and lockout rules are tested
//! with an injected time. Integers keep both database backends identical and comparisons exact.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// A moment that never comes: the end of a permanent lock.
    pub const NEVER: Self = Self(i64::MAX);

    /// The wall clock; called only at the edges (HTTP handlers, the CLI).
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(t: SystemTime) -> Self {
        let millis = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self(millis)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(d)))
    }

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
        humantime_rfc3339(t)
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn humantime_rfc3339(t: SystemTime) -> String {
    // Formatting by hand avoids a date-time dependency for one format: civil-from-days
    // (Howard Hinnant's algorithm) on whole seconds, which is all an audit line needs.
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        (rem % 3_600) / 60,
        rem % 60
    )
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
