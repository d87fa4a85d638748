//! The opt-in `Session` helper: lazy login, automatic re-login on expiry, shared by tasks.
//!
//! Environment as for `login_reset_logout`.

use std::process::ExitCode;
use std::sync::Arc;

use m2m_session_client::{Client, Error, SecretString, Session};

/// Checks the session from several tasks at once; returns how many checks succeeded.
pub async fn run(client: Client, username: &str, password: &str) -> Result<usize, Error> {
    let session = Arc::new(Session::new(
        client,
        username,
        SecretString::from(password.to_owned()),
    ));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let session = session.clone();
        // `run` hands your own call the current token and logs in again if it has expired.
        tasks.push(tokio::spawn(async move {
            session
                .run(|token| async move {
                    // A real application calls its ThingSpace device APIs here with the header
                    // `VZ-M2M-Token: token.expose_secret()`; this example only checks it.
                    Ok::<_, Error>(!token.expose_secret().is_empty())
                })
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if task
            .await
            .map_err(|e| Error::Construction(e.to_string()))??
        {
            ok += 1;
        }
    }
    let who = session.verify().await?;
    println!("session of {} checked by {ok} tasks", who.username);
    session.logout().await?;
    Ok(ok)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> ExitCode {
    let outcome = async {
        let client = Client::from_env()?;
        run(client, &env("M2M_USERNAME")?, &env("M2M_PASSWORD")?).await
    };
    match outcome.await {
        Ok(_) => ExitCode::SUCCESS,
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
