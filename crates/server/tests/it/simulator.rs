//! Simulator mode: unknown clients and users are created on first use; after that, the real
//! service (their secret and password, lockout, expiry, errors).

use crate::support::*;

const BAD_CREDENTIALS: &str = "UnifiedWebService.REQUEST_FAILED.Login.InvalidCredentials";
const LOCKED: &str = "UnifiedWebService.REQUEST_FAILED.Login.Locked";
const EXPIRED: &str = "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired";

#[tokio::test]
async fn first_use_creates_then_the_real_rules_apply() {
    let f = Fixture::start_with(|c| c.policy.simulator = true).await;
    // A client id nobody created, with any secret.
    let bearer = f.api_token_for("offline-app", "whatever-secret-123").await;
    // The same id with another secret is now refused, as on the real service.
    let r = f
        .http
        .post(f.url("/api/ts/v1/oauth2/token"))
        .basic_auth("offline-app", Some("another-secret-456"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A user nobody created logs in with any password, which is theirs from now on.
    let r = f.login(&bearer, "new-user", "first-password").await;
    assert_eq!(r.status(), 200);
    let session = json(r).await["sessionToken"].as_str().unwrap().to_owned();
    assert_error(
        f.login(&bearer, "new-user", "other-password").await,
        400,
        BAD_CREDENTIALS,
    )
    .await;
    assert_eq!(f.logout(&bearer, &session).await.status(), 200);
    assert_error(f.logout(&bearer, &session).await, 400, EXPIRED).await;
    // Four more wrong passwords, each distinct: a repeated one would count only once.
    for i in 0..4 {
        assert_error(
            f.login(&bearer, "new-user", &format!("other-password-{i}"))
                .await,
            400,
            BAD_CREDENTIALS,
        )
        .await;
    }
    assert_error(
        f.login(&bearer, "new-user", "first-password").await,
        400,
        LOCKED,
    )
    .await;
}

#[tokio::test]
async fn without_simulator_unknown_clients_and_users_are_refused() {
    let f = Fixture::start().await;
    let r = f
        .http
        .post(f.url("/api/ts/v1/oauth2/token"))
        .basic_auth("offline-app", Some("whatever-secret-123"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let bearer = f.api_token().await;
    assert_error(
        f.login(&bearer, "new-user", "first-password").await,
        400,
        BAD_CREDENTIALS,
    )
    .await;
}
