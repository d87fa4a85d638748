//! Login → reset → logout with the blocking API (feature `blocking`): no async runtime, the same
//! names as the async controller, then a blocking `Session`.
//!
//! Environment as for `login_reset_logout`:
//!
//! ```sh
//! cargo run -p m2m-session-client --features blocking --example blocking
//! ```

use std::process::ExitCode;

use m2m_session_client::blocking::{Client, Session};
use m2m_session_client::{
    Error, ExposeSecret, LogInRequest, SecretString, SessionResetPasswordRequest,
};

/// Returns the password in force at the end (reset twice: once by hand, once by the session).
pub fn run(client: &Client, username: &str, password: &str) -> Result<SecretString, Error> {
    let sessions = client.session_management();
    let login = sessions
        .start_connectivity_management_session(Some(&LogInRequest::new(username, password)))?;
    let token = login.session_token()?;
    println!("logged in (status {})", login.status);

    let reset = sessions.reset_connectivity_management_password(
        &token,
        &SessionResetPasswordRequest::new(password),
    )?;
    let new_password = reset.new_password()?;
    println!("password reset");

    sessions.end_connectivity_management_session(&token)?;
    println!("logged out");

    // The same with a Session: it logs in when first used and again if the session expires.
    let session = Session::new(client.clone(), username, new_password);
    let checked = session.run(|token| {
        // A real application calls its ThingSpace device APIs here (blocking calls are fine)
        // with the header `VZ-M2M-Token: token.expose_secret()`; this example only checks it.
        Ok::<_, Error>(!token.expose_secret().is_empty())
    })?;
    println!("session token present: {checked}");
    let newest = session.reset_password()?;
    session.logout()?;
    println!("password reset by the session; the new one is shown once");
    Ok(newest)
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let outcome = (|| {
        let client = Client::from_env()?;
        run(&client, &env("M2M_USERNAME")?, &env("M2M_PASSWORD")?)
    })();
    match outcome {
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
