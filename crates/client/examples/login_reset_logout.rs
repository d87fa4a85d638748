//! Login → reset → logout against a server, with the raw controller.
//!
//! ```sh
//! cargo run --release -p m2m-session -- serve &
//! export M2M_URL=http://127.0.0.1:8080/api M2M_CLIENT_ID=... M2M_CLIENT_SECRET=...
//! export M2M_USERNAME=... M2M_PASSWORD=...
//! cargo run -p m2m-session-client --example login_reset_logout
//! ```

use std::process::ExitCode;

use m2m_session_client::{
    Client, Error, ExposeSecret, LogInRequest, SecretString, SessionResetPasswordRequest,
};

/// Returns the new password.
pub async fn run(client: &Client, username: &str, password: &str) -> Result<SecretString, Error> {
    let sessions = client.session_management();
    let login = sessions
        .start_connectivity_management_session(Some(&LogInRequest::new(username, password)))
        .await?;
    let token = login.session_token()?;
    println!("logged in (status {})", login.status);

    let reset = sessions
        .reset_connectivity_management_password(&token, &SessionResetPasswordRequest::new(password))
        .await?;
    let new_password = reset.new_password()?;
    println!("password reset; the new one is shown once");

    sessions.end_connectivity_management_session(&token).await?;
    println!("logged out");
    match sessions.end_connectivity_management_session(&token).await {
        Err(e) if e.is_session_expired() => {
            println!("the token is refused after logout, as it should be")
        }
        Err(e) => println!("unexpected error: {e}"),
        Ok(answer) => println!("unexpected: a second logout answered {}", answer.status),
    }
    Ok(new_password)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> ExitCode {
    let outcome = async {
        let client = Client::from_env()?;
        let username = env("M2M_USERNAME")?;
        let password = env("M2M_PASSWORD")?;
        run(&client, &username, &password).await
    };
    match outcome.await {
        Ok(new_password) => {
            println!("{}", new_password.expose_secret());
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One readable line (`Display`), not a `Debug` dump.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(dead_code)]
fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| Error::Construction(format!("{name} is not set")))
}
