//! The database itself: it answers, and its clock is the one nodes agree on.

use super::*;

pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

pub async fn the_database_clock_is_close_to_ours(store: Arc<dyn Store>) {
    let clock = m2m_session_server::clock::Clock::default();
    let offset = clock.sync(store.as_ref()).await.unwrap();
    assert!(offset.abs() < 5_000, "offset {offset} ms");
    assert_eq!(clock.offset_ms(), offset);
    let db = store.db_now().await.unwrap();
    assert!((clock.now().0 - db.0).abs() < 5_000);
}
