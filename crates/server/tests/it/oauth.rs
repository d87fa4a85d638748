//! The OAuth 2.0 token and revoke endpoints, over HTTP against the real router.

use m2m_session_server::domain::{Admin, NewClient, Policy};
use m2m_session_server::time::Timestamp;

use crate::support::*;

const TOKEN: &str = "/api/ts/v1/oauth2/token";
const REVOKE: &str = "/api/ts/v1/oauth2/revoke";

async fn add_client(f: &Fixture, id: &str, secret_text: &str, scopes: &[&str]) {
    Admin::new(sqlite_store(&f.url).await, hasher())
        .add_client(
            NewClient {
                client_id: id.into(),
                secret: Some(secret(secret_text)),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            },
            T0,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn token_response_has_the_contract_shape_and_is_reused_within_the_hour() {
    let f = Fixture::start().await;
    let r = f
        .http
        .post(f.url(TOKEN))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let first = json(r).await;
    assert_eq!(first["token_type"], "bearer");
    let expires_in = first["expires_in"].as_u64().unwrap();
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
    assert!(first["access_token"].as_str().unwrap().len() >= 32);
    assert!(first.get("scope").is_some());
    assert_eq!(f.api_token().await, first["access_token"].as_str().unwrap());
}

#[tokio::test]
async fn client_authentication_errors() {
    let f = Fixture::start().await;
    let cases = [
        f.http
            .post(f.url(TOKEN))
            .form(&[("grant_type", "client_credentials")]),
        f.http
            .post(f.url(TOKEN))
            .basic_auth(CLIENT_ID, Some("wrong secret"))
            .form(&[("grant_type", "client_credentials")]),
        f.http
            .post(f.url(TOKEN))
            .basic_auth("nobody", Some(CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")]),
        f.http
            .post(f.url(TOKEN))
            .header("Authorization", "Basic !!!not-base64")
            .form(&[("grant_type", "client_credentials")]),
        // Client authentication comes before the grant type is looked at.
        f.http
            .post(f.url(TOKEN))
            .basic_auth(CLIENT_ID, Some("wrong secret"))
            .form(&[("grant_type", "password")]),
    ];
    for req in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert_eq!(json(r).await["error"], "invalid_client");
    }
}

#[tokio::test]
async fn request_errors() {
    let f = Fixture::start().await;
    let authed = || {
        f.http
            .post(f.url(TOKEN))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
    };
    let cases = [
        (
            authed().form(&[("grant_type", "password")]),
            "unsupported_grant_type",
        ),
        (authed().form(&[("scope", "a")]), "invalid_request"),
        (
            authed()
                .header("content-type", "application/json")
                .body(r#"{"grant_type":"client_credentials"}"#),
            "invalid_request",
        ),
        (
            authed()
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials&grant_type=client_credentials"),
            "invalid_request",
        ),
        (
            authed().form(&[
                ("grant_type", "client_credentials"),
                ("scope", "bad\"scope"),
            ]),
            "invalid_scope",
        ),
    ];
    for (req, error) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{error}");
        assert_eq!(json(r).await["error"], error);
    }
}

#[tokio::test]
async fn credentials_are_url_decoded_per_rfc6749() {
    let f = Fixture::start().await;
    add_client(&f, "odd:id", "p@ss word+more", &[]).await;
    let r = f
        .http
        .post(f.url(TOKEN))
        .basic_auth("odd%3Aid", Some("p%40ss+word%2Bmore"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn scopes_are_limited_to_the_configured_ones_and_keyed_separately() {
    let f = Fixture::start().await;
    add_client(&f, "scoped", "scoped-secret-1", &["read", "write"]).await;
    let ask = |scope: Option<&'static str>| {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        f.http
            .post(f.url(TOKEN))
            .basic_auth("scoped", Some("scoped-secret-1"))
            .form(&form)
            .send()
    };
    let all = json(ask(None).await.unwrap()).await;
    assert_eq!(all["scope"], "read write");
    let read = json(ask(Some("read")).await.unwrap()).await;
    assert_eq!(read["scope"], "read");
    assert_ne!(read["access_token"], all["access_token"]);
    // Same set in another order: the same token.
    let again = json(ask(Some("write read")).await.unwrap()).await;
    assert_eq!(again["access_token"], all["access_token"]);
    let r = ask(Some("admin")).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["error"], "invalid_scope");
    // A client without configured scopes gets its requested scope echoed.
    let r = f
        .http
        .post(f.url(TOKEN))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "anything")])
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await["scope"], "anything");
}

#[tokio::test]
async fn revoke_own_token_other_clients_token_and_unknown_token() {
    let f = Fixture::start().await;
    add_client(&f, "other", "other-secret-1", &[]).await;
    let mine = f.api_token().await;
    let theirs = f.api_token_for("other", "other-secret-1").await;
    let revoke = |id: &'static str, sec: &'static str, token: String| {
        f.http
            .post(f.url(REVOKE))
            .basic_auth(id, Some(sec))
            .form(&[("token", token)])
            .send()
    };
    // Another client's token: refused, and it stays valid.
    let r = revoke(CLIENT_ID, CLIENT_SECRET, theirs.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["error"], "unauthorized_client");
    assert_eq!(f.login(&theirs, USERNAME, PASSWORD).await.status(), 200);
    // Unknown token: 200 {}.
    let r = revoke(CLIENT_ID, CLIENT_SECRET, "no-such-token".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await, serde_json::json!({}));
    // Own token: revoked, refused by the API, and the next request issues a new one.
    let r = revoke(CLIENT_ID, CLIENT_SECRET, mine.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = f.login(&mine, USERNAME, PASSWORD).await;
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["fault"]["code"], "900901");
    assert_ne!(f.api_token().await, mine);
    // Wrong credentials on revoke: invalid_client.
    let r = revoke(CLIENT_ID, "nope", "x".into()).await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn api_tokens_expire_after_an_hour_and_expires_in_counts_down() {
    let (_dir, svc) = service(Policy::default()).await;
    let creds = m2m_session_server::domain::ClientCredentials {
        client_id: CLIENT_ID.into(),
        secret: secret(CLIENT_SECRET),
    };
    let client = svc.authenticate_client(&creds, T0).await.unwrap();
    let first = svc.issue_api_token(&client, None, T0).await.unwrap();
    let later: Timestamp = T0.plus(mins(40));
    let same = svc.issue_api_token(&client, None, later).await.unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        first.access_token.expose_secret(),
        same.access_token.expose_secret()
    );
    assert_eq!(first.expires_in, mins(60));
    assert_eq!(same.expires_in, mins(20));
    let token = first.access_token.expose_secret();
    assert_eq!(
        svc.authenticate_api_token(token, later).await.unwrap(),
        CLIENT_ID
    );
    let after_hour = T0.plus(mins(60));
    assert!(svc.authenticate_api_token(token, after_hour).await.is_err());
    let fresh = svc
        .issue_api_token(&client, None, after_hour)
        .await
        .unwrap();
    assert_ne!(fresh.access_token.expose_secret(), token);
    assert_eq!(fresh.expires_in, mins(60));
}

/// An unknown client id costs one (dummy) hash like a wrong secret of a known one, so the
/// time of a 401 does not tell which client ids exist.
#[tokio::test]
async fn an_unknown_client_costs_a_hash_like_a_wrong_secret() {
    let (_dir, svc) = service(Policy::default()).await;
    for client_id in [CLIENT_ID, "no-such-client"] {
        let creds = m2m_session_server::domain::ClientCredentials {
            client_id: client_id.into(),
            secret: secret("wrong-secret"),
        };
        let before = svc.hasher().verifications();
        assert!(svc.authenticate_client(&creds, T0).await.is_err());
        assert_eq!(svc.hasher().verifications(), before + 1, "{client_id}");
    }
}
