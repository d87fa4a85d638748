//! The PostgreSQL node's read cache of sessions and API tokens, which never serves a record that
//! was revoked before the check began, on this node or any other.
//!
//! Why it exists: on a node of a cluster every session check was two point queries (API token,
//! session), each a round trip, and a node checked at an eighth of the rate of one on SQLite.
//!
//! Why it is strict. The database keeps 64 revocation epochs (migration 0005): every statement
//! that deletes a session or an API token, or replaces one, moves the epoch of each slot its
//! rows fall in (the digest's first byte, modulo 64), in the revoking transaction itself, by a
//! trigger, whoever the writer is. So in any snapshot, a slot's epoch is the number of committed
//! revocations in it.
//! - A record enters the cache with the epoch of its slot read by the same statement, hence in
//!   the same snapshot: the record existed when its slot was at that epoch.
//! - A cached record is served only after a validation, a read of all 64 epochs, that was sent
//!   after the check began (the batcher's promise, `batch.rs`), and only if its slot's epoch
//!   there is not above the record's. If it is equal, no revocation in the slot committed
//!   between the two snapshots, so the record still existed in the later one; if it is below,
//!   the record was read after the validation. Either way the record existed in a snapshot
//!   taken after the check began, which therefore observes every revocation acknowledged
//!   before it.
//! - A check that finds nothing cached reads the database, as before.
//!
//! Checks share the proof: a node runs one validation at a time, and every check that begins
//! while one is under way waits for the next, which answers all of them with one statement.
//! Validations have a connection of their own, outside the pool: taken from the pool and handed
//! back for each, they woke a different idle backend every time, which cost PostgreSQL twice the
//! CPU per check (22–34 µs against 11–15, measured), and each hand-back was a task of its own.
//! And a check is a whole request: its API token and its session may rest on one validation,
//! any sent after the request arrived (see [`as_one_check`]), which halves the validations.
//!
//! What is not strict, and need not be: a cached session's last use is the one read, plus this
//! node's own touches; another node's touches are not seen. It only ever lags, so a session
//! that looks idle is read again before it is ended (`SessionStore::reload_session`); a lagging
//! last use otherwise only makes this node touch the row sooner than it had to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnection, PgPool};

use super::batch::Batcher;
use super::map_err;
use crate::crypto::TokenDigest;
use crate::store::{ApiTokenRecord, SessionRecord, StoreError, StoreResult};
use crate::time::Timestamp;

/// Slots of the revocation epochs; the migration creates as many rows.
pub(super) const SLOTS: usize = 64;
/// Beyond this many entries in one slot of one kind, the slot starts over rather than grow.
const MAX_ENTRIES_PER_SLOT: usize = 100_000 / SLOTS;

/// Every slot's epoch, as one validation read them.
pub(super) type Epochs = Arc<[i64; SLOTS]>;

tokio::task_local! {
    /// When the check the current task serves began; see [`as_one_check`].
    static CHECK_BEGAN: Instant;
}

/// Runs `work` as one check that began at `began`: every lookup in it may rest on any
/// validation sent after `began`, rather than on one sent after the lookup itself. The HTTP
/// layer runs each request so, from its arrival: a revocation acknowledged before the request
/// arrived is then observed by all of its lookups, which is the promise. Outside such a scope
/// (the admin CLI, tests), each lookup is a check of its own.
pub async fn as_one_check<F: Future>(began: Instant, work: F) -> F::Output {
    CHECK_BEGAN.scope(began, work).await
}

/// The slot a token's digest falls in, as the migration's trigger computes it.
pub(super) fn slot(digest: &TokenDigest) -> usize {
    usize::from(digest.0[0]) % SLOTS
}

#[derive(Debug, Clone)]
pub(super) struct Cached<T> {
    record: T,
    epoch: i64,
}

pub(super) type Slots<T> = Vec<HashMap<TokenDigest, Cached<T>>>;

#[derive(Debug)]
pub(super) struct State {
    /// The epochs of the latest validation, and when it was sent; they only grow.
    validated: Option<(Instant, Epochs)>,
    sessions: Slots<SessionRecord>,
    api_tokens: Slots<ApiTokenRecord>,
}

impl State {
    /// Drops what the epochs prove may be revoked.
    fn observe(&mut self, sent: Instant, epochs: &Epochs) {
        for s in 0..SLOTS {
            let before = self.validated.as_ref().map_or(i64::MIN, |(_, v)| v[s]);
            if epochs[s] > before {
                self.sessions[s].retain(|_, c| c.epoch >= epochs[s]);
                self.api_tokens[s].retain(|_, c| c.epoch >= epochs[s]);
            }
        }
        // Validations run one after another (one batcher), so each is the latest.
        self.validated = Some((sent, Arc::clone(epochs)));
    }
}

/// The kinds of record the cache holds.
pub(super) trait Cacheable: Clone + Send + 'static {
    fn slots(state: &mut State) -> &mut Slots<Self>;
}

impl Cacheable for SessionRecord {
    fn slots(state: &mut State) -> &mut Slots<Self> {
        &mut state.sessions
    }
}

impl Cacheable for ApiTokenRecord {
    fn slots(state: &mut State) -> &mut Slots<Self> {
        &mut state.api_tokens
    }
}

/// See the module doc.
#[derive(Debug)]
pub(super) struct ReadCache {
    state: Arc<Mutex<State>>,
    validations: Arc<Batcher<(), Epochs>>,
    reader: Arc<EpochReader>,
}

impl ReadCache {
    /// `patience`: how long a validation may take before the checks waiting for it are
    /// answered "unavailable" (the store's acquire timeout).
    pub(super) fn new(pool: PgPool, patience: Duration) -> Self {
        let state = Arc::new(Mutex::new(State {
            validated: None,
            sessions: (0..SLOTS).map(|_| HashMap::new()).collect(),
            api_tokens: (0..SLOTS).map(|_| HashMap::new()).collect(),
        }));
        let observer = Arc::clone(&state);
        let reader = Arc::new(EpochReader {
            pool,
            patience,
            connection: tokio::sync::Mutex::new(None),
        });
        let validator = Arc::clone(&reader);
        let validations = Batcher::new(move |waiting: Vec<()>| {
            let (reader, state) = (Arc::clone(&validator), Arc::clone(&observer));
            async move {
                // Before the statement is sent, so never later than its snapshot.
                let sent = Instant::now();
                let epochs = reader.read().await?;
                lock(&state).observe(sent, &epochs);
                Ok(vec![epochs; waiting.len()])
            }
        });
        Self {
            state,
            validations,
            reader,
        }
    }

    /// Closes the validations' connection (the pool is closed by the store).
    pub(super) async fn close(&self) {
        if let Some(connection) = self.reader.connection.lock().await.take() {
            let _ = sqlx::Connection::close(connection).await;
        }
    }

    /// The record for `digest`: from the cache when a validation proves it is not revoked,
    /// otherwise from `fetch`, which reads the record with its slot's epoch in one statement.
    pub(super) async fn read<T, F, Fut>(
        &self,
        digest: &TokenDigest,
        fetch: F,
    ) -> StoreResult<Option<T>>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<Option<(T, i64)>>>,
    {
        let s = slot(digest);
        let began = CHECK_BEGAN
            .try_with(|t| *t)
            .unwrap_or_else(|_| Instant::now());
        let (cached, validated) = {
            let mut state = lock(&self.state);
            let validated = match &state.validated {
                Some((sent, epochs)) if *sent >= began => Some(Arc::clone(epochs)),
                _ => None,
            };
            (T::slots(&mut state)[s].get(digest).cloned(), validated)
        };
        if let Some(cached) = cached {
            let epochs = match validated {
                Some(epochs) => epochs,
                None => self.validations.submit(()).await?,
            };
            if cached.epoch >= epochs[s] {
                return Ok(Some(cached.record));
            }
        }
        let found = fetch().await?;
        if let Some((record, epoch)) = &found {
            self.fill(digest, record, *epoch);
        }
        Ok(found.map(|(record, _)| record))
    }

    fn fill<T: Cacheable>(&self, digest: &TokenDigest, record: &T, epoch: i64) {
        let s = slot(digest);
        let mut state = lock(&self.state);
        // Already older than what a validation proved: it would never be served.
        if state.validated.as_ref().is_some_and(|(_, v)| epoch < v[s]) {
            return;
        }
        let entries = &mut T::slots(&mut state)[s];
        if entries.len() >= MAX_ENTRIES_PER_SLOT {
            entries.clear();
        }
        if entries.get(digest).is_none_or(|c| c.epoch <= epoch) {
            let record = record.clone();
            entries.insert(*digest, Cached { record, epoch });
        }
    }

    /// This node recorded a use of the session: its cached last use follows.
    pub(super) fn touched(&self, digest: &TokenDigest, last_used_at: Timestamp) {
        let mut state = lock(&self.state);
        if let Some(c) = state.sessions[slot(digest)].get_mut(digest) {
            c.record.last_used_at = c.record.last_used_at.max(last_used_at);
        }
    }

    /// Drops one token's entries: this node saw it gone. Not needed for strictness, which rests
    /// on the epochs alone; it only spares a validation.
    pub(super) fn forget(&self, digest: &TokenDigest) {
        let mut state = lock(&self.state);
        let s = slot(digest);
        state.sessions[s].remove(digest);
        state.api_tokens[s].remove(digest);
    }

    /// Whether a session or API token with this digest is held.
    pub(super) fn holds(&self, digest: &TokenDigest) -> bool {
        let state = lock(&self.state);
        let s = slot(digest);
        state.sessions[s].contains_key(digest) || state.api_tokens[s].contains_key(digest)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every critical section leaves the state consistent; a panic elsewhere cannot tear it.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads the epochs on a connection of its own (see the module doc); one that failed, or did
/// not answer within `patience`, is dropped and the next validation opens another. Without the
/// bound, one validation stuck on a connection that a firewall dropped silently, or behind a
/// lock, would hold every check of the node until TCP gave up, minutes later.
#[derive(Debug)]
struct EpochReader {
    pool: PgPool,
    patience: Duration,
    connection: tokio::sync::Mutex<Option<PgConnection>>,
}

impl EpochReader {
    async fn read(&self) -> StoreResult<Epochs> {
        let mut held = self.connection.lock().await;
        let connection = match &mut *held {
            Some(connection) => connection,
            // Through the pool, so it is set up like every other connection (`pooler.rs`),
            // then detached: it does not take one of `--database-max-connections`.
            None => held.insert(self.pool.acquire().await.map_err(map_err)?.detach()),
        };
        let read = tokio::time::timeout(
            self.patience,
            sqlx::query_scalar("SELECT array_agg(epoch ORDER BY slot) FROM revocation_epochs")
                .fetch_one(connection),
        )
        .await;
        match read {
            Ok(Ok(epochs)) => epochs_of(epochs),
            Ok(Err(e)) => {
                *held = None;
                Err(map_err(e))
            }
            Err(_) => {
                *held = None;
                Err(StoreError::Unavailable(format!(
                    "PostgreSQL did not answer the read cache's validation within {}",
                    humantime::format_duration(self.patience)
                )))
            }
        }
    }
}

fn epochs_of(epochs: Option<Vec<i64>>) -> StoreResult<Epochs> {
    let epochs: [i64; SLOTS] = epochs
        .unwrap_or_default()
        .try_into()
        .map_err(|_| StoreError::Backend(format!("revocation_epochs must hold {SLOTS} slots")))?;
    Ok(Arc::new(epochs))
}
