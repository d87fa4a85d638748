//! The audit log.

use super::*;

pub async fn audit_records_round_trip_and_filter(store: Arc<dyn Store>) {
    let record = |t: i64, user: &str| AuditRecord {
        time: Timestamp(t),
        event: "login".into(),
        outcome: "invalid_credentials".into(),
        username: Some(user.into()),
        client_id: Some("c1".into()),
        ip: Some("192.0.2.1".into()),
        detail: None,
        request_id: Some(format!("req-{t}")),
    };
    for (t, u) in [(1, "a"), (2, "b"), (3, "a")] {
        store.append_audit(&record(t, u)).await.unwrap();
    }
    assert_eq!(store.list_audit(None, None, None).await.unwrap().len(), 3);
    assert_eq!(
        store.list_audit(Some("a"), None, None).await.unwrap(),
        vec![record(1, "a"), record(3, "a")]
    );
    assert_eq!(
        store
            .list_audit(None, Some(Timestamp(2)), None)
            .await
            .unwrap()
            .len(),
        2
    );
    // A limit keeps the newest, still oldest first; the request id round-trips.
    assert_eq!(
        store.list_audit(None, None, Some(2)).await.unwrap(),
        vec![record(2, "b"), record(3, "a")]
    );
    assert_eq!(
        store.list_audit(Some("a"), None, Some(1)).await.unwrap(),
        vec![record(3, "a")]
    );
}
