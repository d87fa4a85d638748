//! What the lockout rules read and write, and nothing of the rules themselves: they are the
//! domain's (`domain/lockout.rs`), written once for both backends. A backend's one duty here is
//! atomicity: while a request holds a username's counters ([`super::CounterStore::lock_counters`]),
//! no other request, on this node or another, reads or changes them, so the domain can decide
//! the next state from what it read and have exactly that written.

use async_trait::async_trait;

use super::StoreResult;
use crate::crypto::AttemptDigest;
use crate::time::Timestamp;

/// The bucket every source shares unless familiar sources are on and the source is familiar.
pub const SHARED_BUCKET: &str = "";

/// Whose counters a request locks: a username's and, for a login, its client address's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey {
    /// The username as given.
    pub username: String,
    /// Which of the username's counters: [`SHARED_BUCKET`], or a familiar source's network.
    pub bucket: String,
    /// For a login: its client address and window.
    pub address: Option<AddressWindow>,
    /// Whether the decision needs the remembered wrong passwords ([`Counters::remembered`]):
    /// ending an attempt does, a reservation does not, and a backend that reads them with a
    /// statement of their own (PostgreSQL) skips it then.
    pub remembered: bool,
    /// Reservations that lapsed by then are not counted as in flight.
    pub now: Timestamp,
}

/// A client address and the start of the window of its failures that still count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressWindow {
    /// The client address, as text.
    pub ip: String,
    /// Failures at or before this no longer count.
    pub since: Timestamp,
}

/// A username's counters (in one bucket) as stored, read under its lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Consecutive failures counted since the last success, unlock or ended lock.
    pub failures: u32,
    /// Stored as written: a lock that has ended is still here until the next change.
    pub locked_until: Option<Timestamp>,
    /// Failures of requests that arrived before this do not count (the latest success or
    /// unlock); the epoch when there was none.
    pub forgiven_before: Timestamp,
    /// Verifications reserved and neither finished nor lapsed.
    pub in_flight: u32,
    /// The client address's counters, when the key named one.
    pub address: Option<AddressCounters>,
    /// The latest (at most ten) wrong passwords counted in `failures`, as digests: the same
    /// one again is not counted twice. Ten covers every count under the default threshold
    /// and keeps the read small under a large one; a repeat older than that counts once
    /// more (and is the latest again), which is stricter, never looser. Read when the key
    /// asks for them ([`CounterKey::remembered`]); otherwise possibly left empty.
    pub remembered: Vec<AttemptDigest>,
    /// The password the user's last reset replaced, while it is recognised.
    pub previous: Option<PreviousPassword>,
}

/// The password a reset replaced, remembered as the digest a login presenting it will have,
/// until `until`: a worker still retrying it is recognised and not counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousPassword {
    /// See [`crate::crypto::PasswordHasher::hash_replacing`].
    pub digest: AttemptDigest,
    /// The end of the grace period.
    pub until: Timestamp,
}

/// A client address's failures within its window, and its verifications in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressCounters {
    /// New guesses from the address within the window.
    pub failures: u32,
    /// The oldest of them: when it leaves the window, the address gets one more try.
    pub oldest_failure: Option<Timestamp>,
    /// Every wrong password from the address within the window, the ones that did not count
    /// (repeated, replaced) included: each cost a verification.
    pub checks: u32,
    /// The oldest of them.
    pub oldest_check: Option<Timestamp>,
    /// Verifications reserved and neither finished nor lapsed.
    pub in_flight: u32,
}

/// A new consecutive-failure count and lock for a username.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Failures logged within the window.
    pub failures: u32,
    /// Set when the count reached the threshold.
    pub locked_until: Option<Timestamp>,
}

/// What the domain decided to write. Every part is optional; a backend writes the parts that
/// are set, in one transaction, and decides nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersChange {
    /// Whose counters change.
    pub username: String,
    /// In which bucket.
    pub bucket: String,
    /// Replaces the count and lock.
    pub count: Option<Count>,
    /// Forgets the bucket's remembered wrong passwords (the count started again), before
    /// `remember` is added.
    pub forget_remembered: bool,
    /// Remembers a counted wrong password.
    pub remember: Option<AttemptDigest>,
    /// A success came from this familiar-source network, at `at`.
    pub familiar: Option<String>,
    /// Raises `forgiven_before` to this (never lowers it).
    pub forgive_before: Option<Timestamp>,
    /// Records a verification in flight.
    pub reserve: Option<NewReservation>,
    /// Ends the verification with this id.
    pub release: Option<String>,
    /// Logs one wrong password against a client address, at `at`.
    pub address_failure: Option<AddressFailure>,
    /// When the change is made: the counter's last update, and the address failure's time.
    pub at: Timestamp,
}

impl CountersChange {
    /// Whether the username's counter row (of the bucket) is written.
    pub fn touches_counter(&self) -> bool {
        self.count.is_some() || self.forgive_before.is_some()
    }
}

/// A wrong password logged against the client address that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressFailure {
    /// The client address, as text.
    pub ip: String,
    /// A new guess, which counts towards the address's limit; otherwise a check that did not
    /// count (a repeated or replaced password), which counts only towards its larger
    /// allowance of verifications.
    pub counts: bool,
}

/// A verification in flight, counted against the username and its client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    /// How the reservation is ended.
    pub attempt_id: String,
    /// The client address the reservation counts against, for a login.
    pub ip: Option<String>,
    /// When it lapses if never finished (a crash, a cancelled request).
    pub expires_at: Timestamp,
}

/// A username's counters, held: nobody else reads or changes them until this is applied or
/// dropped. Dropping it changes nothing.
#[async_trait]
pub trait LockedCounters: Send {
    /// The counters as they were when the hold was taken.
    fn counters(&self) -> &Counters;
    /// Writes `change` and lets the next request in.
    async fn apply(self: Box<Self>, change: &CountersChange) -> StoreResult<()>;
}
