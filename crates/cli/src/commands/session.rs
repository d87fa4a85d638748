use m2m_session_server::time::Timestamp;
use serde_json::json;

use super::admin;
use crate::args::{SessionCommand, StoreArgs};
use crate::settings::{self, FileConfig};

pub async fn run(store: &StoreArgs, file: &FileConfig, cmd: &SessionCommand) -> anyhow::Result<()> {
    let admin = admin(store, file, None).await?;
    match cmd {
        SessionCommand::List {
            session_idle_timeout,
            username,
            json,
        } => {
            let idle = settings::idle_timeout(session_idle_timeout.as_deref(), file)?;
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
                            "ip": s.ip,
                            "created_at": s.created_at.to_rfc3339(),
                            "last_used_at": s.last_used_at.to_rfc3339(),
                            "idle_deadline": s.last_used_at.plus(idle).to_rfc3339(),
                        })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                outln!(
                    "{:<16} {:<8} {:<20} {:<16} {:<15} {:<24} IDLE DEADLINE",
                    "ID",
                    "SHA256",
                    "USERNAME",
                    "CLIENT",
                    "ADDRESS",
                    "LAST USED"
                );
                for s in &sessions {
                    outln!(
                        "{:<16} {:<8} {:<20} {:<16} {:<15} {:<24} {}",
                        s.id,
                        s.token_sha256_prefix,
                        s.username,
                        s.client_id,
                        s.ip.as_deref().unwrap_or("-"),
                        s.last_used_at.to_rfc3339(),
                        s.last_used_at.plus(idle).to_rfc3339()
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
