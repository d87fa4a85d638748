use m2m_session_server::domain::NewClient;
use m2m_session_server::time::Timestamp;
use serde_json::json;

use super::{admin, read_secret_line, report_generated, unless_exists};
use crate::args::{ClientCommand, StoreArgs};
use crate::settings::FileConfig;

pub async fn run(store: &StoreArgs, file: &FileConfig, cmd: &ClientCommand) -> anyhow::Result<()> {
    let hashing = match cmd {
        ClientCommand::Add { argon2, .. } | ClientCommand::RotateSecret { argon2, .. } => {
            Some(argon2)
        }
        _ => None,
    };
    let admin = admin(store, file, hashing).await?;
    match cmd {
        ClientCommand::Add {
            client_id,
            secret_stdin,
            scopes,
            if_not_exists,
            argon2: _,
        } => {
            let secret = secret_stdin
                .then(|| read_secret_line("client secret"))
                .transpose()?;
            let client = NewClient {
                client_id: client_id.clone(),
                secret,
                scopes: scopes.clone(),
            };
            let renew =
                format!("`m2m-session client rotate-secret {client_id}` gives it a new secret");
            let added = admin.add_client(client, Timestamp::now()).await;
            if let Some(generated) = unless_exists(added, *if_not_exists, &renew)? {
                let done = format!("created client {client_id:?}");
                report_generated(generated.as_ref(), "secret", &done);
            }
        }
        ClientCommand::RotateSecret {
            client_id,
            secret_stdin,
            keep_tokens,
            argon2: _,
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
            let done = format!("new secret for client {client_id:?}; {tokens}");
            report_generated(generated.as_ref(), "secret", &done);
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
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                outln!("{:<32} {:<22} SCOPES", "CLIENT_ID", "CREATED");
                for c in &clients {
                    outln!(
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
