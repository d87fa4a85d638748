//! When and how long to wait before trying again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Retry settings. Retries only ever happen where repeating is safe (see the crate docs).
///
/// ```
/// use std::time::Duration;
/// use m2m_session_client::RetryConfig;
/// let retry = RetryConfig::default().max_attempts(5).initial_backoff(Duration::from_millis(50));
/// assert_eq!(retry.attempts(), 5);
/// let never = RetryConfig::disabled();
/// assert_eq!(never.attempts(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
    budget: u32,
}

impl Default for RetryConfig {
    /// 3 attempts in all, full-jitter backoff from 200 ms capped at 5 s, `Retry-After` honoured up
    /// to 30 s, and a budget of 50 retries that successes earn back.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            budget: 50,
        }
    }
}

impl RetryConfig {
    /// One attempt, never a retry.
    pub fn disabled() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Attempts in all, the first included (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Ceiling of the first backoff; doubles per retry up to [`Self::max_backoff`].
    #[must_use]
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// Largest backoff ceiling.
    #[must_use]
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// Longest `Retry-After` the client will wait; a longer one ends the retries.
    #[must_use]
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// Retries a client may spend beyond what its successes earn back; stops retry storms.
    #[must_use]
    pub fn budget(mut self, retries: u32) -> Self {
        self.budget = retries;
        self
    }

    /// Attempts in all, the first included.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Full jitter: uniform in [0, min(cap, initial × 2^retry)].
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(16)));
        let ceiling = exp.min(self.max_backoff);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(random_up_to(millis))
    }

    /// The wait before retry number `retry`, or `None` when `Retry-After` asks for too long.
    pub(crate) fn delay(&self, retry: u32, headers: Option<&HeaderMap>) -> Option<Duration> {
        match headers.and_then(retry_after) {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(wait),
            None => Some(self.backoff(retry)),
        }
    }

    pub(crate) fn new_budget(&self) -> RetryBudget {
        RetryBudget {
            tokens: Arc::new(Mutex::new(self.budget * RetryBudget::RETRY_COST)),
            capacity: self.budget * RetryBudget::RETRY_COST,
        }
    }
}

/// Uniform in `[0, max]` (but for a modulo bias below `(max + 1) / 2^62`), from the system's
/// randomness through a v4 UUID's random bits: jitter needs no `rand` crate.
pub(crate) fn random_up_to(max: u64) -> u64 {
    let (_, low) = uuid::Uuid::new_v4().as_u64_pair();
    // The top two bits of the low half are the UUID variant; the other 62 are random.
    let bits = low & (u64::MAX >> 2);
    match max.checked_add(1) {
        Some(n) => bits % n,
        None => bits,
    }
}

/// Statuses worth another attempt when the request is safe to repeat.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A token bucket shared by clones of a client: each retry spends, each success earns back a
/// little, so a failing service sees at most a bounded burst of retries (smithy-rs's design).
#[derive(Debug, Clone)]
pub(crate) struct RetryBudget {
    tokens: Arc<Mutex<u32>>,
    capacity: u32,
}

impl RetryBudget {
    const RETRY_COST: u32 = 5;
    const SUCCESS_REFUND: u32 = 1;

    pub(crate) fn try_spend(&self) -> bool {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *tokens >= Self::RETRY_COST {
            *tokens -= Self::RETRY_COST;
            true
        } else {
            false
        }
    }

    pub(crate) fn refund(&self) {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *tokens = (*tokens + Self::SUCCESS_REFUND).min(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn backoff_is_capped_full_jitter() {
        let c = RetryConfig::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(300));
        for retry in 0..10 {
            for _ in 0..50 {
                let d = c.backoff(retry);
                assert!(d <= Duration::from_millis(300));
                if retry == 0 {
                    assert!(d <= Duration::from_millis(100));
                }
            }
        }
    }

    #[test]
    fn random_up_to_stays_in_range_and_varies() {
        assert_eq!(random_up_to(0), 0);
        let draws: Vec<u64> = (0..200).map(|_| random_up_to(9)).collect();
        assert!(draws.iter().all(|d| *d <= 9));
        for value in 0..=9 {
            assert!(draws.contains(&value), "{value} never drawn in {draws:?}");
        }
        assert!(random_up_to(u64::MAX) <= u64::MAX >> 2);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let soon = SystemTime::now() + Duration::from_secs(10);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(soon)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(8) && d <= Duration::from_secs(10),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
        let c = RetryConfig::default().max_retry_after(Duration::from_secs(2));
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(c.delay(0, Some(&h)), None);
    }

    #[test]
    fn budget_runs_out_and_refills_slowly() {
        let budget = RetryConfig::default().budget(2).new_budget();
        assert!(budget.try_spend());
        assert!(budget.try_spend());
        assert!(!budget.try_spend());
        for _ in 0..5 {
            budget.refund();
        }
        assert!(budget.try_spend());
        assert!(!budget.try_spend());
    }
}
