//! OAuth clients and their API tokens.

use super::*;

pub async fn clients_round_trip_and_removal_cascades(store: Arc<dyn Store>) {
    store.insert_client(&client("c1")).await.unwrap();
    assert!(matches!(
        store.insert_client(&client("c1")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.find_client("c1").await.unwrap(), Some(client("c1")));
    store.insert_user(&user("dave")).await.unwrap();
    let s = session("dave", "c1");
    store.insert_session(&s).await.unwrap();
    let t = store
        .issue_api_token(&api_token("c1", "", 1, T0), T0)
        .await
        .unwrap();
    assert!(store.remove_client("c1").await.unwrap());
    assert!(!store.remove_client("c1").await.unwrap());
    assert_eq!(store.find_session(&s.token_digest).await.unwrap(), None);
    assert_eq!(store.find_api_token(&t.token_digest).await.unwrap(), None);
    assert!(store.list_clients().await.unwrap().is_empty());
}

pub async fn one_live_api_token_per_client_and_scope(store: Arc<dyn Store>) {
    store.insert_client(&client("c1")).await.unwrap();
    let first = api_token("c1", "a", 1, T0);
    assert_eq!(store.issue_api_token(&first, T0).await.unwrap(), first);
    // Concurrent issuers all get the one already live.
    let mut tasks = Vec::new();
    for seed in 2..12u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .issue_api_token(&api_token("c1", "a", seed, T0), T0)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), first);
    }
    // Another scope is another token.
    let other_scope = api_token("c1", "b", 3, T0);
    assert_eq!(
        store.issue_api_token(&other_scope, T0).await.unwrap(),
        other_scope
    );
    // Once expired, a new candidate replaces it.
    let later = T0.plus(mins(60));
    let next = api_token("c1", "a", 4, later);
    assert_eq!(store.issue_api_token(&next, later).await.unwrap(), next);
    assert_eq!(
        store.find_api_token(&first.token_digest).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_api_token(&next.token_digest).await.unwrap(),
        Some(next.clone())
    );
    assert!(store.delete_api_token(&next.token_digest).await.unwrap());
    assert!(!store.delete_api_token(&next.token_digest).await.unwrap());
}

pub async fn a_rotated_secret_replaces_the_hash_and_revokes_tokens_when_asked(
    store: Arc<dyn Store>,
) {
    store.insert_client(&client("c1")).await.unwrap();
    let token = api_token("c1", "a", 1, T0);
    store.issue_api_token(&token, T0).await.unwrap();
    // Read once, so that a caching backend holds it.
    assert!(
        store
            .find_api_token(&token.token_digest)
            .await
            .unwrap()
            .is_some()
    );
    // Kept: the hash changes, the token stays.
    assert!(
        store
            .replace_client_secret("c1", "h2", false)
            .await
            .unwrap()
    );
    assert_eq!(
        store.find_client("c1").await.unwrap().unwrap().secret_hash,
        "h2"
    );
    assert!(
        store
            .find_api_token(&token.token_digest)
            .await
            .unwrap()
            .is_some()
    );
    // Revoked: the token is gone at once, cached or not.
    assert!(store.replace_client_secret("c1", "h3", true).await.unwrap());
    assert_eq!(
        store.find_client("c1").await.unwrap().unwrap().secret_hash,
        "h3"
    );
    assert_eq!(
        store.find_api_token(&token.token_digest).await.unwrap(),
        None
    );
    // No such client: nothing written.
    assert!(
        !store
            .replace_client_secret("nope", "h4", true)
            .await
            .unwrap()
    );
    assert_eq!(store.find_client("nope").await.unwrap(), None);
}
