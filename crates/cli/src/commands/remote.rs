//! `login`, `logout` and `reset-password`: the CLI as a client of a running server, through the
//! SDK. Stdout carries the one result (a token, a password) and nothing else, so that scripts can
//! capture it; everything else goes to stderr, and the exit code says what went wrong.
//!
//! Secrets come from the environment or stdin, never from flags: a flag's value shows in `ps`
//! and, through clap's `env`, in `--help`.

use std::process::ExitCode;

use m2m_session_client::{
    Client, Error, ErrorCode, LogInRequest, SessionResetPasswordRequest, SessionToken,
};
use secrecy::{ExposeSecret, SecretString};

use super::{exit, print_failure_line, read_secret_line};
use crate::args::{LoginArgs, LogoutArgs, RemoteArgs, ResetPasswordArgs};
use crate::settings::env_or_file;

pub async fn login(args: &LoginArgs) -> ExitCode {
    report(async {
        let client = client(&args.remote)?;
        let password = password(args.password_stdin)?;
        let token = start(&client, &username(args.username.as_deref())?, &password).await?;
        super::write_secret(token.expose_secret(), "session token");
        Ok(())
    })
    .await
}

pub async fn logout(args: &LogoutArgs) -> ExitCode {
    report(async {
        let client = client(&args.remote)?;
        let token = session_token(args.token_stdin)?.ok_or_else(|| {
            Failure::Usage("no session token: set M2M_SESSION_TOKEN or pass --token-stdin".into())
        })?;
        client
            .session_management()
            .end_connectivity_management_session(&token)
            .await?;
        Ok(())
    })
    .await
}

/// Resets with the given session, or with one opened (and closed again) for the purpose.
pub async fn reset_password(args: &ResetPasswordArgs) -> ExitCode {
    report(async {
        let client = client(&args.remote)?;
        let password = password(args.password_stdin)?;
        let (token, temporary) = match session_token(false)? {
            Some(token) => (token, false),
            None => {
                let user = username(args.username.as_deref())?;
                (start(&client, &user, &password).await?, true)
            }
        };
        let sessions = client.session_management();
        let body = SessionResetPasswordRequest::new(password.expose_secret());
        let reset = sessions
            .reset_connectivity_management_password(&token, &body)
            .await?;
        let new_password = reset
            .result
            .new_password
            .ok_or_else(|| Failure::Usage("the server answered without a new password".into()))?;
        // Printed before the logout: whatever happens next, the new password must not be lost.
        super::write_secret(&new_password, "new password (the reset was made)");
        if temporary && let Err(e) = sessions.end_connectivity_management_session(&token).await {
            eprintln!("warning: the temporary session was not ended: {e}");
        }
        Ok(())
    })
    .await
}

enum Failure {
    Usage(String),
    Client(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Client(e)
    }
}

async fn report(work: impl Future<Output = Result<(), Failure>>) -> ExitCode {
    match work.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            print_failure_line(&message, None);
            ExitCode::from(exit::OTHER)
        }
        // The SDK's message is one line that names the code; the CLI adds what to do in its
        // own terms (the variables and flags a person set, not the wire's headers).
        Err(Failure::Client(e)) => {
            let mut line = e.to_string();
            if let Some(fix) = fix_for(&e) {
                line.push_str("; ");
                line.push_str(fix);
            }
            print_failure_line(&line, None);
            ExitCode::from(exit_code(&e))
        }
    }
}

/// What a person can do about a client error, where the SDK cannot say it.
fn fix_for(e: &Error) -> Option<&'static str> {
    match e.known_code() {
        Some(ErrorCode::SessionTokenInvalid | ErrorCode::SessionTokenFormat) => {
            Some("M2M_SESSION_TOKEN (or --token-stdin) must be a token `m2m-session login` printed")
        }
        // rustls' reasons: only an unknown issuer is a missing CA.
        _ if matches!(e, Error::Transport(_)) && e.to_string().contains("UnknownIssuer") => {
            Some("pass --ca-cert (M2M_CA_CERT) with the CA that signed the server's certificate")
        }
        _ if matches!(e, Error::Transport(_)) && e.to_string().contains("NotValidForName") => {
            Some("the server's certificate is not for this host name: check --url (M2M_URL)")
        }
        _ if matches!(e, Error::Transport(_)) && e.to_string().contains("Expired") => {
            Some("the server's certificate has expired: renew it on the server")
        }
        _ if matches!(e, Error::Transport(_) | Error::Timeout(_)) => {
            Some("check that the server runs and that --url (M2M_URL) points to it")
        }
        _ if matches!(e, Error::OAuth { status, .. } if status.as_u16() == 401) => {
            Some("check --client-id (M2M_CLIENT_ID) and M2M_CLIENT_SECRET")
        }
        _ => None,
    }
}

fn exit_code(e: &Error) -> u8 {
    let status = e.status().map(|s| s.as_u16());
    match e.known_code() {
        Some(ErrorCode::InvalidCredentials | ErrorCode::OldPasswordMismatch) => {
            exit::INVALID_CREDENTIALS
        }
        Some(ErrorCode::Locked) => exit::LOCKED,
        Some(
            ErrorCode::SessionTokenExpired
            | ErrorCode::SessionTokenFormat
            | ErrorCode::SessionTokenInvalid,
        ) => exit::SESSION_INVALID,
        _ if matches!(e, Error::OAuth { .. }) && status == Some(401) => exit::INVALID_CREDENTIALS,
        _ if matches!(status, Some(429 | 503)) => exit::UNAVAILABLE,
        _ => exit::OTHER,
    }
}

/// A secret from `NAME` or the file named by `NAME_FILE`.
fn secret_env(name: &str) -> Result<Option<String>, Failure> {
    env_or_file(name).map_err(|e| Failure::Usage(format!("{e:#}")))
}

fn client(remote: &RemoteArgs) -> Result<Client, Failure> {
    let secret = secret_env("M2M_CLIENT_SECRET")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Failure::Usage("M2M_CLIENT_SECRET (or M2M_CLIENT_SECRET_FILE) is not set".into())
        })?;
    let url = remote.url.trim();
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(Failure::Usage(format!(
            "--url (M2M_URL) {url:?} needs its scheme, e.g. http://127.0.0.1:8080/api"
        )));
    }
    let client_id = remote
        .client_id
        .clone()
        .ok_or_else(|| Failure::Usage("no client id: set M2M_CLIENT_ID or --client-id".into()))?;
    let mut builder = Client::builder().base_url(url)?;
    if let Some(path) = &remote.ca_cert {
        builder = builder.ca_cert_file(path).map_err(|e| match e {
            // The SDK's reason, "cannot read the CA certificate FILE: ...", without its
            // "invalid configuration: " prefix, and what to pass instead.
            Error::Construction(reason) => Failure::Usage(format!("{reason}; pass a PEM file")),
            other => Failure::Client(other),
        })?;
    }
    Ok(builder
        .oauth_client_credentials(client_id, SecretString::from(secret))
        .build()?)
}

fn username(given: Option<&str>) -> Result<String, Failure> {
    given
        .map(str::to_owned)
        .ok_or_else(|| Failure::Usage("no username: set M2M_USERNAME or --username".into()))
}

fn password(from_stdin: bool) -> Result<SecretString, Failure> {
    if from_stdin {
        return read_secret_line("password").map_err(|e| Failure::Usage(format!("{e:#}")));
    }
    secret_env("M2M_PASSWORD")?
        .map(SecretString::from)
        .ok_or_else(|| {
            Failure::Usage(
                "no password: set M2M_PASSWORD (or M2M_PASSWORD_FILE) or pass --password-stdin"
                    .into(),
            )
        })
}

fn session_token(from_stdin: bool) -> Result<Option<SessionToken>, Failure> {
    if from_stdin {
        let token =
            read_secret_line("session token").map_err(|e| Failure::Usage(format!("{e:#}")))?;
        return Ok(Some(SessionToken::new(token.expose_secret().to_owned())));
    }
    Ok(secret_env("M2M_SESSION_TOKEN")?.map(SessionToken::new))
}

async fn start(
    client: &Client,
    username: &str,
    password: &SecretString,
) -> Result<SessionToken, Failure> {
    let login = client
        .session_management()
        .start_connectivity_management_session(Some(&LogInRequest::new(
            username,
            password.expose_secret(),
        )))
        .await?;
    let token = login
        .result
        .session_token
        .ok_or_else(|| Failure::Usage("the server answered without a session token".into()))?;
    Ok(SessionToken::new(token))
}
