//! One name, one user: Unicode spellings of a username (NFC, NFD) reach the same user and the
//! same lockout counter, and users stored before normalisation keep working.

use m2m_session_server::domain::{Admin, DomainError, NewUser, Policy, RequestContext};
use m2m_session_server::store::UserRecord;

use crate::support::*;

/// "café" precomposed (NFC) and decomposed (NFD): the same name to a person.
const CAFE_NFC: &str = "caf\u{e9}";
const CAFE_NFD: &str = "cafe\u{301}";
const CAFE_PASSWORD: &str = "long enough pw 1";

fn ctx() -> RequestContext {
    RequestContext::new(CLIENT_ID, None)
}

async fn add(admin: &Admin, name: &str) {
    let user = NewUser {
        username: name.into(),
        account: None,
        password: Some(secret(CAFE_PASSWORD)),
    };
    admin.add_user(user, T0).await.unwrap();
}

#[tokio::test]
async fn a_user_created_in_nfc_logs_in_when_the_client_sends_nfd() {
    let f = Fixture::start().await;
    add(&Admin::new(sqlite_store(&f.url).await, hasher()), CAFE_NFC).await;
    let bearer = f.api_token().await;
    for spelling in [CAFE_NFD, CAFE_NFC] {
        let r = f.login(&bearer, spelling, CAFE_PASSWORD).await;
        assert_eq!(r.status(), 200, "{spelling:?}: {}", r.text().await.unwrap());
    }
    f.server.stop().await;
}

#[tokio::test]
async fn nfc_and_nfd_spellings_of_one_name_share_one_lockout_counter() {
    let (_dir, svc) = service(Policy::default()).await;
    let admin = Admin::new(svc.store().clone(), hasher());
    add(&admin, CAFE_NFC).await;
    // Three failures in one spelling and two in the other are five failures of one user (each
    // with a wrong password of its own: a repeated one would count only once).
    for (i, spelling) in [CAFE_NFC, CAFE_NFD, CAFE_NFC, CAFE_NFD, CAFE_NFC]
        .into_iter()
        .enumerate()
    {
        let err = svc
            .login(
                &ctx(),
                spelling,
                &secret(&format!("wrong password {i}")),
                T0,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::InvalidCredentials), "{err:?}");
    }
    for spelling in [CAFE_NFC, CAFE_NFD] {
        let err = svc
            .login(&ctx(), spelling, &secret(CAFE_PASSWORD), T0.plus(secs(1)))
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Locked { .. }), "{err:?}");
    }
    // The list shows the lock on the one user, and unlocking by either spelling ends it.
    let users = admin.list_users(T0.plus(secs(1))).await.unwrap();
    let cafe = users.iter().find(|u| u.username == CAFE_NFC).unwrap();
    assert_eq!(cafe.failures, 5);
    assert!(cafe.locked_until.is_some());
    admin.unlock_user(CAFE_NFD, T0.plus(secs(2))).await.unwrap();
    svc.login(&ctx(), CAFE_NFD, &secret(CAFE_PASSWORD), T0.plus(secs(3)))
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_names_are_counted_once_whatever_their_spelling() {
    let (_dir, svc) = service(Policy::default()).await;
    let (nfc, nfd) = ("jos\u{e9}", "jose\u{301}");
    for (i, spelling) in [nfc, nfd, nfc, nfd, nfc].into_iter().enumerate() {
        let err = svc
            .login(&ctx(), spelling, &secret(&format!("whatever{i}")), T0)
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::InvalidCredentials), "{err:?}");
    }
    let err = svc
        .login(&ctx(), nfd, &secret("whatever1"), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Locked { .. }), "{err:?}");
}

#[tokio::test]
async fn a_user_stored_in_nfd_before_normalisation_keeps_logging_in() {
    let (_dir, svc) = service(Policy::default()).await;
    let hash = hasher().hash(&secret(CAFE_PASSWORD)).await.unwrap();
    let legacy = UserRecord {
        username: CAFE_NFD.into(),
        account: None,
        password_hash: hash,
        created_at: T0,
    };
    svc.store().insert_user(&legacy).await.unwrap();
    for (i, spelling) in [CAFE_NFD, CAFE_NFC].into_iter().enumerate() {
        svc.login(
            &ctx(),
            spelling,
            &secret(CAFE_PASSWORD),
            T0.plus(secs(i as u64)),
        )
        .await
        .unwrap_or_else(|e| panic!("{spelling:?}: {e}"));
    }
    // Its failures are counted under the stored spelling, whichever spelling was sent.
    for (i, spelling) in [CAFE_NFC, CAFE_NFD, CAFE_NFC, CAFE_NFD, CAFE_NFC]
        .into_iter()
        .enumerate()
    {
        let err = svc
            .login(
                &ctx(),
                spelling,
                &secret(&format!("wrong password {i}")),
                T0.plus(secs(5)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::InvalidCredentials), "{err:?}");
    }
    let err = svc
        .login(&ctx(), CAFE_NFD, &secret(CAFE_PASSWORD), T0.plus(secs(6)))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Locked { .. }), "{err:?}");
}
