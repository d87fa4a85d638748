use m2m_session_server::domain::{DomainError, NewClient};
use m2m_session_server::time::Timestamp;
use secrecy::ExposeSecret;
use serde_json::json;

use super::{admin, read_secret_line};
use crate::args::{ClientCommand, StoreArgs};
use crate::settings::FileConfig;

pub async fn run(store: &StoreArgs, file: &FileConfig, cmd: &ClientCommand) -> anyhow::Result<()> {
    let admin = admin(store, file).await?;
    match cmd {
        ClientCommand::Add {
            client_id,
            secret_stdin,
            scopes,
            if_not_exists,
        } => {
            let secret = secret_stdin
                .then(|| read_secret_line("client secret"))
                .transpose()?;
            let client = NewClient {
                client_id: client_id.clone(),
                secret,
                scopes: scopes.clone(),
            };
            match admin.add_client(client, Timestamp::now()).await {
                Ok(generated) => report_secret(generated, &format!("created client {client_id:?}")),
                Err(DomainError::AlreadyExists(_)) if *if_not_exists => {
                    eprintln!("client {client_id:?} already exists; left unchanged");
                }
                Err(e @ DomainError::AlreadyExists(_)) => {
                    let hint = format!(
                        "{e}; add --if-not-exists to accept it as it is, or `m2m-session client rotate-secret {client_id}` gives it a new secret"
                    );
                    return Err(anyhow::Error::new(e).context(hint));
                }
                Err(e) => return Err(e.into()),
            }
        }
        ClientCommand::RotateSecret {
            client_id,
            secret_stdin,
            keep_tokens,
        } => {
            let secret = secret_stdin
                .then(|| read_secret_line("client secret"))
                .transpose()?;
            let generated = admin
                .rotate_client_secret(client_id, secret, *keep_tokens, Timestamp::now())
                .await?;
            let tokens = if *keep_tokens {
                "its API tokens work until they expire"
            } else {
                "its API tokens are revoked"
            };
            report_secret(
                generated,
                &format!("new secret for client {client_id:?}; {tokens}"),
            );
        }
        ClientCommand::List { json } => {
            let clients = admin.list_clients().await?;
            if *json {
                let rows: Vec<_> = clients
                    .iter()
                    .map(|c| {
                        json!({
                            "client_id": c.client_id,
                            "scopes": c.scopes,
                            "created_at": c.created_at.to_rfc3339(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<32} {:<22} SCOPES", "CLIENT_ID", "CREATED");
                for c in &clients {
                    println!(
                        "{:<32} {:<22} {}",
                        c.client_id,
                        c.created_at.to_rfc3339(),
                        if c.scopes.is_empty() {
                            "-".to_owned()
                        } else {
                            c.scopes.join(" ")
                        }
                    );
                }
            }
        }
        ClientCommand::Remove { client_id } => {
            admin.remove_client(client_id, Timestamp::now()).await?;
            eprintln!("removed client {client_id:?} with its tokens and sessions");
        }
    }
    Ok(())
}

/// A generated secret on stdout, the rest on stderr.
fn report_secret(generated: Option<secrecy::SecretString>, done: &str) {
    if let Some(generated) = generated {
        println!("{}", generated.expose_secret());
        eprintln!("{done}; the secret is printed above, once");
    } else {
        eprintln!("{done}");
    }
}
