//! Every row of the contract's error table and the gateway faults, end to end over HTTP.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

const LOGIN: &str = "/api/m2m/v1/session/login";
const LOGOUT: &str = "/api/m2m/v1/session/logout";
const RESET: &str = "/api/m2m/v1/session/password/actions/reset";

const EXPIRED: &str = "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired";
const FORMAT: &str = "UnifiedWebService.REQUEST_FAILED.SessionToken.Format";
const INVALID_TOKEN: &str = "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid";
const UNDEFINED: &str = "UnifiedWebService.INPUT_INVALID.RequestUndefined";
const DESERIALIZATION: &str = "UnifiedWebService.INPUT_INVALID.DeserializationFailed";
const UNEXPECTED: &str = "UnifiedWebService.REQUEST_FAILED.UnexpectedError";
const INVALID_CHAR: &str = "UnifiedWebService.INPUT_INVALID.Request.InvalidCharacter";
const BAD_CREDENTIALS: &str = "UnifiedWebService.REQUEST_FAILED.Login.InvalidCredentials";
const LOCKED: &str = "UnifiedWebService.REQUEST_FAILED.Login.Locked";
const MISMATCH: &str = "UnifiedWebService.REQUEST_FAILED.Password.OldPasswordMismatch";

#[tokio::test]
async fn login_logout_reset_happy_path() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let r = f.login(&bearer, USERNAME, PASSWORD).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = json(r).await;
    let token = body["sessionToken"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 36);
    assert_eq!(token, token.to_lowercase());
    assert_eq!(token.matches('-').count(), 4);

    let r = f.reset(&bearer, &token, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let new_password = json(r).await["newPassword"].as_str().unwrap().to_owned();
    assert_eq!(new_password.len(), 22);
    assert!(new_password.chars().all(|c| c.is_ascii_alphanumeric()));

    let r = f.logout(&bearer, &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await, json!({"sessionToken": token}));
    assert_error(f.logout(&bearer, &token).await, 400, EXPIRED).await;

    assert_error(
        f.login(&bearer, USERNAME, PASSWORD).await,
        400,
        BAD_CREDENTIALS,
    )
    .await;
    assert_eq!(
        f.login(&bearer, USERNAME, &new_password).await.status(),
        200
    );
}

#[tokio::test]
async fn guids_are_case_insensitive_and_echoed_lowercase() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let token = f.session(&bearer).await;
    let r = f.logout(&bearer, &token.to_uppercase()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["sessionToken"], token);
}

#[tokio::test]
async fn gateway_faults_for_missing_and_bad_api_tokens() {
    let f = Fixture::start().await;
    for (method, path) in [
        (Method::POST, LOGIN),
        (Method::POST, LOGOUT),
        (Method::PUT, RESET),
    ] {
        let r = f
            .http
            .request(method.clone(), f.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let body = json(r).await;
        assert_eq!(body["fault"]["code"], "900902");
        assert_eq!(body["fault"]["message"], "Missing Credentials");

        for auth in ["Bearer not-a-token", "Basic abc", "Bearer ", "Bearer"] {
            let r = f
                .http
                .request(method.clone(), f.url(path))
                .header("Authorization", auth)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{auth}");
            let body = json(r).await;
            assert_eq!(body["fault"]["code"], "900901", "{auth}");
            assert_eq!(body["fault"]["message"], "Invalid Credentials");
        }
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_indistinguishable() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let wrong = f.login(&bearer, USERNAME, "wrong-password").await;
    let unknown = f.login(&bearer, "no-such-user", "wrong-password").await;
    assert_eq!(wrong.status(), unknown.status());
    let strip = |r: &reqwest::Response| {
        let mut h: Vec<_> = r
            .headers()
            .iter()
            // The date and the request id differ between any two answers.
            .filter(|(k, _)| *k != "date" && *k != "x-request-id")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        h.sort();
        h
    };
    assert_eq!(strip(&wrong), strip(&unknown));
    assert_eq!(json(wrong).await, json(unknown).await);
}

#[tokio::test]
async fn login_body_errors() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut req = f.http.post(f.url(LOGIN)).bearer_auth(&bearer).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let json_ct = Some("application/json");
    assert_error(raw("", json_ct).await.unwrap(), 400, UNDEFINED).await;
    assert_error(raw("", None).await.unwrap(), 400, UNDEFINED).await;
    assert_error(raw("null", json_ct).await.unwrap(), 400, UNDEFINED).await;
    assert_error(
        raw("{not json", json_ct).await.unwrap(),
        400,
        DESERIALIZATION,
    )
    .await;
    assert_error(raw("[1,2]", json_ct).await.unwrap(), 400, DESERIALIZATION).await;
    assert_error(
        raw("\"text\"", json_ct).await.unwrap(),
        400,
        DESERIALIZATION,
    )
    .await;
    for body in [
        r#"{"username":"u"}"#,
        r#"{"password":"p"}"#,
        r#"{"username":null,"password":"p"}"#,
        r#"{"username":"u","password":12}"#,
        r#"{"username":["u"],"password":"p"}"#,
        "{}",
    ] {
        assert_error(raw(body, json_ct).await.unwrap(), 400, UNEXPECTED).await;
    }
    for name in ["o'brien", "a<b", "back\\slash"] {
        let r = f.login(&bearer, name, "whatever-pass").await;
        assert_error(r, 400, INVALID_CHAR).await;
    }
    // charset and +json are fine.
    let r = raw(
        r#"{"username":"zbeeblebrox","password":"IMgr8-but-longer"}"#,
        Some("application/json; charset=utf-8"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn http_level_errors_use_the_contract_shape() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    assert_error(
        f.http.get(f.url("/api/m2m/v1/nope")).send().await.unwrap(),
        404,
        "UnifiedWebService.REQUEST_FAILED.NotFound",
    )
    .await;
    assert_error(
        f.http.get(f.url(LOGIN)).send().await.unwrap(),
        405,
        "UnifiedWebService.REQUEST_FAILED.MethodNotAllowed",
    )
    .await;
    assert_error(
        f.http.post(f.url(RESET)).send().await.unwrap(),
        405,
        "UnifiedWebService.REQUEST_FAILED.MethodNotAllowed",
    )
    .await;
    let big = format!(
        r#"{{"username":"{}","password":"p"}}"#,
        "x".repeat(17 * 1024)
    );
    let r = f
        .http
        .post(f.url(LOGIN))
        .bearer_auth(&bearer)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "UnifiedWebService.INPUT_INVALID.PayloadTooLarge").await;
    let r = f
        .http
        .post(f.url(LOGIN))
        .bearer_auth(&bearer)
        .header("content-type", "text/plain")
        .body(r#"{"username":"u","password":"p"}"#)
        .send()
        .await
        .unwrap();
    assert_error(
        r,
        415,
        "UnifiedWebService.INPUT_INVALID.UnsupportedMediaType",
    )
    .await;
}

#[tokio::test]
async fn checks_run_in_the_contract_order() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    // API token before body: no bearer and a broken body is a 401.
    let r = f
        .http
        .post(f.url(LOGIN))
        .header("content-type", "application/json")
        .body("{broken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Body before session token: broken body and no session token is a body error.
    let r = f
        .http
        .put(f.url(RESET))
        .bearer_auth(&bearer)
        .header("content-type", "application/json")
        .body("{broken")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, DESERIALIZATION).await;
    // Wrong method before the API token.
    assert_eq!(
        f.http.delete(f.url(LOGIN)).send().await.unwrap().status(),
        405
    );
}

#[tokio::test]
async fn session_token_errors() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let no_session = f.call(Method::POST, LOGOUT, &bearer, None, None).await;
    assert_error(no_session, 400, FORMAT).await;
    let r = f
        .call(
            Method::PUT,
            RESET,
            &bearer,
            None,
            Some(json!({"oldPassword": "x"})),
        )
        .await;
    assert_error(r, 400, FORMAT).await;
    for bad in [
        "abc",
        "bcce3ea6fe4f4952bacfeadd80718e83",
        "zcce3ea6-fe4f-4952-bacf-eadd80718e83",
    ] {
        assert_error(f.logout(&bearer, bad).await, 400, INVALID_TOKEN).await;
        assert_error(f.reset(&bearer, bad, PASSWORD).await, 400, INVALID_TOKEN).await;
    }
    let never = "bcce3ea6-fe4f-4952-bacf-eadd80718e83";
    assert_error(f.logout(&bearer, never).await, 400, EXPIRED).await;
    assert_error(f.reset(&bearer, never, PASSWORD).await, 400, EXPIRED).await;
}

#[tokio::test]
async fn reset_errors_and_revocation_of_other_sessions() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let current = f.session(&bearer).await;
    let other = f.session(&bearer).await;
    let r = f
        .call(Method::PUT, RESET, &bearer, Some(&current), Some(json!({})))
        .await;
    assert_error(r, 400, UNEXPECTED).await;
    let r = f
        .http
        .put(f.url(RESET))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &current)
        .send()
        .await
        .unwrap();
    assert_error(r, 400, UNDEFINED).await;
    assert_error(
        f.reset(&bearer, &current, "not the password").await,
        400,
        MISMATCH,
    )
    .await;

    let r = f.reset(&bearer, &current, PASSWORD).await;
    assert_eq!(r.status(), 200);
    // The other session was revoked; the current one still works.
    assert_error(f.logout(&bearer, &other).await, 400, EXPIRED).await;
    assert_eq!(f.logout(&bearer, &current).await.status(), 200);
}

#[tokio::test]
async fn five_failures_lock_the_user_over_http() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    // Five distinct wrong passwords: a repeated one would count only once.
    for i in 0..5 {
        assert_error(
            f.login(&bearer, USERNAME, &format!("wrong-password-{i}"))
                .await,
            400,
            BAD_CREDENTIALS,
        )
        .await;
    }
    assert_error(f.login(&bearer, USERNAME, PASSWORD).await, 400, LOCKED).await;
}

#[tokio::test]
async fn sessions_of_one_client_are_expired_for_another() {
    let f = Fixture::start().await;
    m2m_session_server::domain::Admin::new(sqlite_store(&f.url).await, hasher())
        .add_client(
            m2m_session_server::domain::NewClient {
                client_id: "other".into(),
                secret: Some(secret("other-secret-1")),
                scopes: vec![],
            },
            T0,
        )
        .await
        .unwrap();
    let mine = f.api_token().await;
    let theirs = f.api_token_for("other", "other-secret-1").await;
    let token = f.session(&mine).await;
    assert_error(f.logout(&theirs, &token).await, 400, EXPIRED).await;
    assert_eq!(f.logout(&mine, &token).await.status(), 200);
}

#[tokio::test]
async fn short_idle_timeout_expires_sessions_in_real_time() {
    let f = Fixture::start_with(|c| c.policy.session_idle_timeout = secs(1)).await;
    let bearer = f.api_token().await;
    let token = f.session(&bearer).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert_error(f.logout(&bearer, &token).await, 400, EXPIRED).await;
}

#[tokio::test]
async fn health_and_readiness() {
    let f = Fixture::start().await;
    let r = f.http.get(f.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = f.http.get(f.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["status"], "ready");
}

#[tokio::test]
async fn auth_verify_answers_204_with_identity_or_401() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let token = f.session(&bearer).await;
    let verify = |bearer: Option<&str>, session: Option<&str>| {
        let mut req = f.http.get(f.url("/auth/verify"));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(s) = session {
            req = req.header("VZ-M2M-Token", s);
        }
        req.send()
    };
    let r = verify(Some(&bearer), Some(&token)).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["x-m2m-username"], USERNAME);
    assert_eq!(r.headers()["x-m2m-account"], "acme");

    let r = verify(None, Some(&token)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["fault"]["code"], "900902");
    assert_error(verify(Some(&bearer), None).await.unwrap(), 401, FORMAT).await;
    assert_error(
        verify(Some(&bearer), Some("nope")).await.unwrap(),
        401,
        INVALID_TOKEN,
    )
    .await;
    assert_eq!(f.logout(&bearer, &token).await.status(), 200);
    assert_error(
        verify(Some(&bearer), Some(&token)).await.unwrap(),
        401,
        EXPIRED,
    )
    .await;
}

#[tokio::test]
async fn auth_verify_counts_as_activity() {
    let f = Fixture::start_with(|c| c.policy.session_idle_timeout = secs(2)).await;
    let bearer = f.api_token().await;
    let token = f.session(&bearer).await;
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
        let r = f
            .http
            .get(f.url("/auth/verify"))
            .bearer_auth(&bearer)
            .header("VZ-M2M-Token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "session should be kept alive by use");
    }
}
