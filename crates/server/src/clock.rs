//! The time every node agrees on.
//!
//! Idle expiry compares a session's last use, written by one node, with "now" on another. Each
//! node therefore reads the database's clock now and then and applies its offset to its own,
//! which costs no round trip per request. For SQLite the offset is zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use std::time::Duration;

use async_trait::async_trait;

use crate::store::{Store, StoreResult};
use crate::time::{TimeSource, Timestamp};

/// A clock agreed with the database's; cheap to clone (the offset is shared).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// This host's wall clock plus the measured offset to the database's.
    pub fn now(&self) -> Timestamp {
        Timestamp(
            Timestamp::now()
                .0
                .saturating_add(self.offset_ms.load(Ordering::Relaxed)),
        )
    }

    /// Measures the offset to the database's clock (midpoint of the round trip) and keeps it.
    pub async fn sync(&self, store: &dyn Store) -> StoreResult<i64> {
        let before = Timestamp::now();
        let db = store.db_now().await?;
        let after = Timestamp::now();
        let offset = db.0 - (before.0 + (after.0 - before.0) / 2);
        self.offset_ms.store(offset, Ordering::Relaxed);
        Ok(offset)
    }

    /// The last measured offset to the database's clock, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl TimeSource for Clock {
    fn now(&self) -> Timestamp {
        Clock::now(self)
    }

    fn monotonic(&self) -> Duration {
        static START: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(tokio::time::Instant::now).elapsed()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
