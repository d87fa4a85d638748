//! The examples' code, run against the real server so that they cannot rot.

#[path = "../../../client/examples/login_reset_logout.rs"]
mod login_reset_logout;
#[path = "../../../client/examples/session.rs"]
mod session_example;

use m2m_session_client::ExposeSecret;
use m2m_session_server::domain::Policy;

use crate::support::*;

#[tokio::test]
async fn login_reset_logout_example_runs() {
    let server = CountingServer::start(Policy::default()).await;
    let new_password = login_reset_logout::run(&server.client(), USERNAME, PASSWORD)
        .await
        .unwrap();
    assert_eq!(new_password.expose_secret().len(), 22);
    assert_eq!(server.logins(), 1);
}

#[tokio::test]
async fn session_example_runs() {
    let server = CountingServer::start(Policy::default()).await;
    let ok = session_example::run(server.client(), USERNAME, PASSWORD)
        .await
        .unwrap();
    assert_eq!(ok, 4);
    assert_eq!(server.logins(), 1, "the tasks share one login");
}
