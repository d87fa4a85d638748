//! The lockout and throttle decisions, written once for both backends. Each backend reads the
//! counts in one transaction (so that no other node changes them meanwhile) and hands them
//! here to decide what the reservation or the failure means.

use super::{AttemptEnd, AttemptRequest, AttemptReservation};
use crate::time::Timestamp;

/// The counts a reservation read, after it tried to reserve.
pub(super) struct Counted {
    pub granted: bool,
    pub locked_until: Option<i64>,
    /// Failures from the client address within its window, and the oldest of them.
    pub ip_failures: i64,
    pub oldest_ip_failure: Option<i64>,
}

/// The answer to a reservation. An address at its limit is refused first, as the contract
/// orders the throttle before the lock. "Busy" means the verifications already running, for
/// the username or for the address, use up what its limit leaves.
pub(super) fn reservation(request: &AttemptRequest, c: Counted) -> AttemptReservation {
    if c.granted {
        return AttemptReservation::Granted;
    }
    if let Some(ip) = &request.ip
        && c.ip_failures >= i64::from(ip.limit)
    {
        let window = request.now.0 - ip.since.0;
        let oldest = c.oldest_ip_failure.unwrap_or(request.now.0);
        return AttemptReservation::Throttled {
            until: Timestamp(oldest + window),
        };
    }
    match c.locked_until {
        Some(until) => AttemptReservation::Locked {
            until: Timestamp(until),
        },
        None => AttemptReservation::Busy,
    }
}

/// Whether a failure counts towards the lock: only if its request arrived at or after the
/// user's latest success (or admin unlock), `forgiven_before` on the counter.
pub(super) fn counts(end: &AttemptEnd, forgiven_before: Option<i64>) -> bool {
    end.now.0 >= forgiven_before.unwrap_or(i64::MIN)
}
