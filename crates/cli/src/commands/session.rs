use m2m_session_server::time::Timestamp;
use serde_json::json;

use super::admin;
use crate::args::{Cli, SessionCommand};
use crate::settings::FileConfig;

pub async fn run(cli: &Cli, file: &FileConfig, cmd: &SessionCommand) -> anyhow::Result<()> {
    let admin = admin(cli, file).await?;
    match cmd {
        SessionCommand::List { username, json } => {
            let sessions = admin.list_sessions(username.as_deref()).await?;
            if *json {
                let rows: Vec<_> = sessions
                    .iter()
                    .map(|s| {
                        json!({
                            "id": s.id,
                            "token_sha256_prefix": s.token_sha256_prefix,
                            "username": s.username,
                            "client_id": s.client_id,
                            "created_at": s.created_at.to_rfc3339(),
                            "last_used_at": s.last_used_at.to_rfc3339(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<16} {:<8} {:<24} {:<20} {:<20} LAST USED",
                    "ID", "SHA256", "USERNAME", "CLIENT", "CREATED"
                );
                for s in &sessions {
                    println!(
                        "{:<16} {:<8} {:<24} {:<20} {:<20} {}",
                        s.id,
                        s.token_sha256_prefix,
                        s.username,
                        s.client_id,
                        s.created_at.to_rfc3339(),
                        s.last_used_at.to_rfc3339()
                    );
                }
            }
        }
        SessionCommand::Revoke { username, id } => {
            let now = Timestamp::now();
            if let Some(username) = username {
                let n = admin.revoke_user_sessions(username, now).await?;
                eprintln!("revoked {n} session(s) of {username:?}");
            } else if let Some(id) = id {
                admin.revoke_session(id, now).await?;
                eprintln!("revoked session {id}");
            }
        }
    }
    Ok(())
}
