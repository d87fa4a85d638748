//! The blocking API (feature `blocking`) against the real server. The server runs in the test's
//! tokio runtime; the blocking client runs on a plain thread of its own, as in a program
//! without an async runtime.

#[path = "../../../client/examples/blocking.rs"]
mod blocking_example;

use m2m_session_client::blocking::{Client, Session};
use m2m_session_client::{
    Error, ExposeSecret, LogInRequest, SecretString, SessionResetPasswordRequest,
};
use m2m_session_testkit::TestServer;

fn blocking_client(server: &TestServer) -> Client {
    crate::support::builder_for(server)
        .build_blocking()
        .unwrap()
}

/// Runs `f` on a new std thread (no tokio context there) while the test's runtime keeps
/// serving; its panic, if any, is the test's.
async fn on_plain_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn(move || {
        assert!(tokio::runtime::Handle::try_current().is_err());
        let _ = tx.send(f());
    });
    match rx.await {
        Ok(value) => value,
        Err(_) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread ended without an answer or a panic"),
        },
    }
}

/// Audit lines of the standard user's successful logins.
async fn logins(server: &TestServer) -> usize {
    server
        .service()
        .store()
        .list_audit(Some(TestServer::USERNAME), None, None)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.event == "login" && r.outcome == "success")
        .count()
}

#[tokio::test]
async fn blocking_login_reset_logout_with_the_same_names() {
    let server = TestServer::start().await;
    let client = blocking_client(&server);
    let new_password = on_plain_thread(move || {
        let sessions = client.session_management();
        let login = sessions
            .start_connectivity_management_session(Some(&LogInRequest::new(
                TestServer::USERNAME,
                TestServer::PASSWORD,
            )))
            .unwrap();
        assert_eq!(login.status, 200);
        let token = login.session_token().unwrap();
        let reset = sessions
            .reset_connectivity_management_password(
                &token,
                &SessionResetPasswordRequest::new(TestServer::PASSWORD),
            )
            .unwrap();
        let new_password = reset.new_password().unwrap();
        assert_eq!(
            sessions.verify_session(&token).unwrap().result.username,
            TestServer::USERNAME
        );
        sessions
            .end_connectivity_management_session(&token)
            .unwrap();
        let again = sessions
            .end_connectivity_management_session(&token)
            .unwrap_err();
        assert!(again.is_session_expired(), "{again}");
        // The old password is gone, the new one logs in.
        let old = sessions
            .start_connectivity_management_session(Some(&LogInRequest::new(
                TestServer::USERNAME,
                TestServer::PASSWORD,
            )))
            .unwrap_err();
        assert!(old.is_invalid_credentials(), "{old}");
        new_password
    })
    .await;
    assert_ne!(new_password.expose_secret(), TestServer::PASSWORD);
    assert_eq!(logins(&server).await, 1);
}

#[tokio::test]
async fn a_blocking_session_logs_in_again_after_its_session_expired() {
    let server = TestServer::start().await;
    let client = blocking_client(&server);
    let (session, first) = on_plain_thread(move || {
        let session = Session::new(
            client,
            TestServer::USERNAME,
            SecretString::from(TestServer::PASSWORD),
        );
        let first = session.token().unwrap();
        assert_eq!(session.token().unwrap(), first, "the token is reused");
        (session, first)
    })
    .await;
    assert_eq!(server.expire_sessions(TestServer::USERNAME).await, 1);
    let (session, second, calls) = on_plain_thread(move || {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let controller = session.client().session_management();
        // The call inside `run` is itself blocking: it runs outside the client's runtime.
        let second = session
            .run(|token| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                controller.verify_session(&token)?;
                Ok(token)
            })
            .unwrap();
        let new_password = session.reset_password().unwrap();
        assert_ne!(new_password.expose_secret(), TestServer::PASSWORD);
        (session, second, calls.into_inner())
    })
    .await;
    assert_ne!(first, second, "a new session after the expiry");
    assert_eq!(calls, 2, "the call was repeated once with the new token");
    assert_eq!(logins(&server).await, 2);
    on_plain_thread(move || {
        session.logout().unwrap();
        assert!(session.stopped_by().is_none());
    })
    .await;
}

#[tokio::test]
async fn a_blocking_session_stops_after_a_refused_login_until_resumed() {
    let server = TestServer::start().await;
    let client = blocking_client(&server);
    on_plain_thread(move || {
        let session = Session::new(client, TestServer::USERNAME, SecretString::from("wrong"));
        assert!(session.token().unwrap_err().is_invalid_credentials());
        assert!(session.stopped_by().unwrap().is_invalid_credentials());
        session.resume(SecretString::from(TestServer::PASSWORD));
        session.token().unwrap();
        session.logout().unwrap();
    })
    .await;
}

#[tokio::test]
async fn blocking_calls_inside_an_async_runtime_fail_clearly_without_a_panic() {
    let server = TestServer::start().await;
    // Built here (allowed), used here (refused), dropped here (no panic).
    let client = blocking_client(&server);
    let err = client
        .session_management()
        .start_connectivity_management_session(Some(&LogInRequest::new(
            TestServer::USERNAME,
            TestServer::PASSWORD,
        )))
        .unwrap_err();
    match &err {
        Error::Construction(message) => assert!(
            message.contains("cannot be used inside an async runtime"),
            "{message}"
        ),
        other => panic!("expected a construction error, got {other:?}"),
    }
    let session = Session::new(
        client.clone(),
        TestServer::USERNAME,
        SecretString::from(TestServer::PASSWORD),
    );
    assert!(matches!(session.token(), Err(Error::Construction(_))));
    assert!(matches!(session.logout(), Err(Error::Construction(_))));
    assert_eq!(logins(&server).await, 0, "nothing was sent");
    drop(session);
    drop(client);
}

#[tokio::test]
async fn blocking_example_runs() {
    let server = TestServer::start().await;
    let client = blocking_client(&server);
    let newest = on_plain_thread(move || {
        blocking_example::run(&client, TestServer::USERNAME, TestServer::PASSWORD).unwrap()
    })
    .await;
    assert_eq!(newest.expose_secret().len(), 22);
    assert_eq!(logins(&server).await, 2);
}
