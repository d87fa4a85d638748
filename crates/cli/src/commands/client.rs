use m2m_session_server::domain::NewClient;
use m2m_session_server::time::Timestamp;
use secrecy::ExposeSecret;
use serde_json::json;

use super::{admin, read_secret_line};
use crate::args::{Cli, ClientCommand};
use crate::settings::FileConfig;

pub async fn run(cli: &Cli, file: &FileConfig, cmd: &ClientCommand) -> anyhow::Result<()> {
    let admin = admin(cli, file).await?;
    match cmd {
        ClientCommand::Add {
            client_id,
            secret_stdin,
            scopes,
        } => {
            let secret = if *secret_stdin {
                Some(read_secret_line("client secret")?)
            } else {
                None
            };
            let client = NewClient {
                client_id: client_id.clone(),
                secret,
                scopes: scopes.clone(),
            };
            if let Some(generated) = admin.add_client(client, Timestamp::now()).await? {
                println!("{}", generated.expose_secret());
                eprintln!("created client {client_id:?}; its secret is printed above, once");
            } else {
                eprintln!("created client {client_id:?}");
            }
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
