//! The in-progress guard of idempotent resets.

use super::*;

/// The in-progress guard of an idempotent reset: one holder per (user, key), released at once
/// by `release`, and by dropping the claim (a cancelled request) soon after.
pub async fn idempotency_claims_are_exclusive_per_user_and_key(store: Arc<dyn Store>) {
    let claim = store.claim_idempotency("kim", "k1").await.unwrap().unwrap();
    assert!(
        store
            .claim_idempotency("kim", "k1")
            .await
            .unwrap()
            .is_none()
    );
    let other_key = store.claim_idempotency("kim", "k2").await.unwrap().unwrap();
    let other_user = store.claim_idempotency("lee", "k1").await.unwrap().unwrap();
    claim.release().await;
    let again = store.claim_idempotency("kim", "k1").await.unwrap().unwrap();
    drop(again);
    let mut reclaimed = None;
    for _ in 0..100 {
        reclaimed = store.claim_idempotency("kim", "k1").await.unwrap();
        if reclaimed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reclaimed.is_some(), "a dropped claim was never released");
    other_key.release().await;
    other_user.release().await;
}
