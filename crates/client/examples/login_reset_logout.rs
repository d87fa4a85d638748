//! Login → reset → logout against a server, with the raw controller.
//!
//! ```sh
//! cargo run --release -p m2m-session -- serve &
//! export M2M_URL=http://127.0.0.1:8080/api M2M_CLIENT_ID=... M2M_CLIENT_SECRET=...
//! export M2M_USERNAME=... M2M_PASSWORD=...
//! cargo run -p m2m-session-client --example login_reset_logout
//! ```

use m2m_session_client::{Client, Error, LogInRequest, SessionResetPasswordRequest, SessionToken};

/// Returns the new password.
pub async fn run(client: &Client, username: &str, password: &str) -> Result<String, Error> {
    let sessions = client.session_management();
    let login = sessions
        .start_connectivity_management_session(Some(&LogInRequest::new(username, password)))
        .await?;
    let token = SessionToken::new(login.result.session_token.unwrap_or_default());
    println!("logged in (status {})", login.status);

    let reset = sessions
        .reset_connectivity_management_password(&token, &SessionResetPasswordRequest::new(password))
        .await?;
    let new_password = reset.result.new_password.unwrap_or_default();
    println!("password reset; the new one is shown once");

    sessions.end_connectivity_management_session(&token).await?;
    println!("logged out");
    match sessions.end_connectivity_management_session(&token).await {
        Err(e) if e.is_session_expired() => {
            println!("the token is refused after logout, as it should be")
        }
        other => println!("unexpected: {other:?}"),
    }
    Ok(new_password)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env()?;
    let username = std::env::var("M2M_USERNAME")?;
    let password = std::env::var("M2M_PASSWORD")?;
    let new_password = run(&client, &username, &password).await?;
    println!("{new_password}");
    Ok(())
}
