//! The SQLite backend's read cache of sessions and API tokens, which never serves a record the
//! database no longer holds.
//!
//! Why it exists: a session check is three point lookups, and with sqlx each costs two thread
//! hand-offs to the connection's worker thread; the profile of `/auth/verify` showed 60% of the
//! server's CPU in futex wake-ups and context switches, and 1% in SQLite itself.
//!
//! Why it is safe: two kinds of writes can make an entry stale.
//! - This store's own writes go through its single writer connection; every write that can
//!   revoke something drops entries ([`ReadCache::invalidate_all`], or one entry) through a guard
//!   that runs even if the request is cancelled after the commit.
//! - Another process's writes (the admin CLI, another server on the same file) are seen through
//!   the WAL-index header in the `-shm` file, which SQLite rewrites on every commit by anyone.
//!   Entries are trusted only while that header equals the one they were validated at; when it
//!   differs, lookups go to the database until `PRAGMA data_version` on the writer connection
//!   (which changes only for commits by *other* connections) proves the change was ours, or the
//!   cache is cleared. Each of this store's writes runs that validation as soon as it has
//!   committed and dropped its entries, before the next write (`writer.rs`); a lookup that
//!   finds the header changed by someone else starts one in the background.
//!
//! An in-memory database has no `-shm` file; the cache is then off.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::crypto::TokenDigest;
use crate::store::{ApiTokenRecord, SessionRecord};

/// Two copies of the 48-byte WAL-index header (sqlite.org/walformat.html, section 2.1).
const HEADER: usize = 48;
/// Beyond this many entries of a kind, the cache starts over rather than grow.
const MAX_ENTRIES: usize = 100_000;
/// Background validations are at least this far apart. Each takes the writer connection; when
/// they were the only kind, unthrottled ones queued behind a steady stream of logins' writes and
/// cut logins/s by a quarter, while lookups are served by the database meanwhile anyway.
const MIN_VALIDATION_INTERVAL: Duration = Duration::from_millis(50);

pub(super) type Header = [u8; HEADER];

#[derive(Debug)]
pub(super) struct ReadCache {
    shm: Option<File>,
    state: Mutex<State>,
    /// One validation at a time, and when the last one started; lookups meanwhile go to the
    /// database.
    validating: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by every invalidation: a lookup that started before one may not fill the cache.
    generation: u64,
    /// The header the entries are known to be consistent with.
    validated: Option<Header>,
    /// The writer's `PRAGMA data_version` at the last validation.
    data_version: Option<i64>,
    sessions: HashMap<TokenDigest, SessionRecord>,
    api_tokens: HashMap<TokenDigest, ApiTokenRecord>,
}

/// A miss: what the lookup saw, so that filling the cache afterwards is safe.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    generation: u64,
    header: Option<Header>,
    /// The header differed from the validated one: validate before trusting entries again.
    pub(super) needs_validation: bool,
}

pub(super) enum Lookup<T> {
    Hit(T),
    Miss(Ticket),
}

/// Drops entries when it goes out of scope, whether the write finished or was cancelled.
pub(super) struct Invalidation<'a> {
    cache: &'a ReadCache,
    only: Option<TokenDigest>,
}

impl Drop for Invalidation<'_> {
    fn drop(&mut self) {
        let mut state = self.cache.lock();
        state.generation += 1;
        match &self.only {
            Some(digest) => {
                state.sessions.remove(digest);
                state.api_tokens.remove(digest);
            }
            None => {
                state.sessions.clear();
                state.api_tokens.clear();
            }
        }
    }
}

impl ReadCache {
    /// A cache for the database file at `path`; off when there is no file (in-memory database).
    pub(super) fn new(path: Option<&Path>) -> Self {
        let shm = path.and_then(|p| {
            let mut name = p.as_os_str().to_owned();
            name.push("-shm");
            File::open(name).ok()
        });
        Self {
            shm,
            state: Mutex::default(),
            validating: tokio::sync::Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent; a panic elsewhere cannot tear it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current WAL-index header, if it could be read whole and untorn.
    pub(super) fn header(&self) -> Option<Header> {
        let shm = self.shm.as_ref()?;
        let mut both = [0u8; 2 * HEADER];
        shm.read_exact_at(&mut both, 0).ok()?;
        let (first, second) = both.split_at(HEADER);
        // SQLite writes the second copy first; equal copies mean no commit was half-written.
        // Byte 12 is `isInit`.
        (first == second && first[12] != 0).then(|| {
            let mut header = [0u8; HEADER];
            header.copy_from_slice(first);
            header
        })
    }

    fn lookup<T: Clone>(&self, get: impl FnOnce(&State) -> Option<&T>) -> Lookup<T> {
        let header = self.header();
        let state = self.lock();
        let trusted = header.is_some() && state.validated == header;
        if trusted && let Some(found) = get(&state) {
            return Lookup::Hit(found.clone());
        }
        Lookup::Miss(Ticket {
            generation: state.generation,
            header,
            needs_validation: header.is_some() && !trusted,
        })
    }

    pub(super) fn session(&self, digest: &TokenDigest) -> Lookup<SessionRecord> {
        self.lookup(|s| s.sessions.get(digest))
    }

    pub(super) fn api_token(&self, digest: &TokenDigest) -> Lookup<ApiTokenRecord> {
        self.lookup(|s| s.api_tokens.get(digest))
    }

    /// Fills the cache after a miss, unless something was invalidated since the lookup began
    /// (the record might predate it). A foreign commit after the lookup needs no check here: it
    /// changes the header, so entries are not trusted until a validation has cleared them.
    fn fill(&self, ticket: Ticket, insert: impl FnOnce(&mut State)) {
        let mut state = self.lock();
        if ticket.header.is_some()
            && state.generation == ticket.generation
            && state.validated == ticket.header
        {
            insert(&mut state);
        }
    }

    pub(super) fn fill_session(&self, ticket: Ticket, record: &SessionRecord) {
        self.fill(ticket, |s| {
            if s.sessions.len() >= MAX_ENTRIES {
                s.sessions.clear();
            }
            s.sessions.insert(record.token_digest, record.clone());
        });
    }

    pub(super) fn fill_api_token(&self, ticket: Ticket, record: &ApiTokenRecord) {
        self.fill(ticket, |s| {
            if s.api_tokens.len() >= MAX_ENTRIES {
                s.api_tokens.clear();
            }
            s.api_tokens.insert(record.token_digest, record.clone());
        });
    }

    /// Held across a write that may revoke anything: drops every entry when done.
    pub(super) fn invalidate_all(&self) -> Invalidation<'_> {
        Invalidation {
            cache: self,
            only: None,
        }
    }

    /// Held across a write to one token's row.
    pub(super) fn invalidate(&self, digest: &TokenDigest) -> Invalidation<'_> {
        Invalidation {
            cache: self,
            only: Some(*digest),
        }
    }

    /// One validation at a time and not too often; `None` when another is under way or the
    /// last began under [`MIN_VALIDATION_INTERVAL`] ago.
    pub(super) fn try_begin_validation(
        &self,
    ) -> Option<tokio::sync::MutexGuard<'_, Option<Instant>>> {
        let mut last = self.validating.try_lock().ok()?;
        if last.is_some_and(|t| t.elapsed() < MIN_VALIDATION_INTERVAL) {
            return None;
        }
        *last = Some(Instant::now());
        Some(last)
    }

    /// Records that the database was at `header` (read before `data_version` was queried):
    /// entries survive only if no other connection committed since the last validation.
    pub(super) fn validated(&self, header: Header, data_version: i64) {
        let mut state = self.lock();
        if state.data_version != Some(data_version) {
            state.generation += 1;
            state.sessions.clear();
            state.api_tokens.clear();
            state.data_version = Some(data_version);
        }
        state.validated = Some(header);
    }

    /// Whether a session or API token with this digest is held.
    pub(super) fn holds(&self, digest: &TokenDigest) -> bool {
        let state = self.lock();
        state.sessions.contains_key(digest) || state.api_tokens.contains_key(digest)
    }
}
