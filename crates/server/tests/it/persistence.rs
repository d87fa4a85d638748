//! What the server acknowledged survives a restart, and no secret reaches the database file.

use std::path::Path;

use crate::support::*;

#[tokio::test]
async fn sessions_users_and_lockouts_survive_a_restart() {
    let (_dir, url) = temp_db();
    seed(sqlite_store(&url).await).await;
    let f = Fixture::start_on(&url, |_| {}).await;
    let bearer = f.api_token().await;
    let live = f.session(&bearer).await;
    let ended = f.session(&bearer).await;
    assert_eq!(f.logout(&bearer, &ended).await.status(), 200);
    // Distinct wrong passwords: a repeated one would count only once.
    for i in 0..5 {
        f.login(&bearer, "locked-name", &format!("wrong-password-{i}"))
            .await;
    }
    f.server.stop().await;

    let f = Fixture::start_on(&url, |_| {}).await;
    // The API token too survives: same token from the token endpoint, and still accepted.
    assert_eq!(f.api_token().await, bearer);
    assert_eq!(f.logout(&bearer, &ended).await.status(), 400);
    assert_eq!(f.logout(&bearer, &live).await.status(), 200);
    let r = f.login(&bearer, "locked-name", "wrong-password").await;
    assert_error(r, 400, "UnifiedWebService.REQUEST_FAILED.Login.Locked").await;
    assert_eq!(f.login(&bearer, USERNAME, PASSWORD).await.status(), 200);
    f.server.stop().await;
}

#[tokio::test]
async fn no_token_or_password_is_stored_in_the_database_file() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let token = f.session(&bearer).await;
    let other = f.session(&bearer).await;
    // With an Idempotency-Key, so the sealed answer is in the database too.
    let r = f
        .http
        .put(f.url("/api/m2m/v1/session/password/actions/reset"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &token)
        .header("Idempotency-Key", "persistence-key")
        .json(&serde_json::json!({"oldPassword": PASSWORD}))
        .send()
        .await
        .unwrap();
    let new_password = json(r).await["newPassword"].as_str().unwrap().to_owned();
    f.login(&bearer, USERNAME, "a-wrong-password-attempt").await;
    let db_dir = f.dir.path().to_owned();
    // Before shutdown the data sits in the WAL; after, in the main file. Check both moments.
    let secrets = [
        bearer.as_str(),
        token.as_str(),
        other.as_str(),
        new_password.as_str(),
        PASSWORD,
        CLIENT_SECRET,
        "a-wrong-password-attempt",
    ];
    assert_absent(&db_dir, &secrets);
    f.server.stop().await;
    assert_absent(&db_dir, &secrets);
}

fn assert_absent(dir: &Path, secrets: &[&str]) {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // SQLite deletes -wal and -shm when its last connection closes: gone is fine.
        let bytes = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            other => other.unwrap(),
        };
        files += 1;
        for secret in secrets {
            let hit = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!hit, "{secret:?} found in {}", path.display());
            let upper = secret.to_uppercase();
            let hit = bytes.windows(upper.len()).any(|w| w == upper.as_bytes());
            assert!(!hit, "{upper:?} found in {}", path.display());
        }
    }
    assert!(files >= 1, "no database file found in {}", dir.display());
}
