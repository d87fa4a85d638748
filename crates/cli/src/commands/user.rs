use m2m_session_server::domain::NewUser;
use m2m_session_server::time::Timestamp;
use secrecy::ExposeSecret;
use serde_json::json;

use super::{admin, read_secret_line};
use crate::args::{Cli, UserCommand};
use crate::settings::FileConfig;

pub async fn run(cli: &Cli, file: &FileConfig, cmd: &UserCommand) -> anyhow::Result<()> {
    let admin = admin(cli, file).await?;
    match cmd {
        UserCommand::Add {
            username,
            account,
            password_stdin,
        } => {
            let password = if *password_stdin {
                Some(read_secret_line("password")?)
            } else {
                None
            };
            let user = NewUser {
                username: username.clone(),
                account: account.clone(),
                password,
            };
            let added = admin.add_user(user, Timestamp::now()).await?;
            for warning in &added.warnings {
                eprintln!("warning: {warning}");
            }
            if let Some(generated) = added.generated_password {
                println!("{}", generated.expose_secret());
                eprintln!("created user {username:?}; its password is printed above, once");
            } else {
                eprintln!("created user {username:?}");
            }
        }
        UserCommand::List { json } => {
            let users = admin.list_users(Timestamp::now()).await?;
            if *json {
                let rows: Vec<_> = users
                    .iter()
                    .map(|u| {
                        json!({
                            "username": u.username,
                            "account": u.account,
                            "created_at": u.created_at.to_rfc3339(),
                            "failed_attempts": u.failures,
                            "locked_until": u.locked_until.map(|t| t.to_rfc3339()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<24} {:<16} {:<22} STATUS",
                    "USERNAME", "ACCOUNT", "CREATED"
                );
                for u in &users {
                    let status = match u.locked_until {
                        Some(until) => format!("locked until {}", until.to_rfc3339()),
                        None if u.failures > 0 => {
                            format!("active ({} failed attempts)", u.failures)
                        }
                        None => "active".to_owned(),
                    };
                    println!(
                        "{:<24} {:<16} {:<22} {status}",
                        u.username,
                        u.account.as_deref().unwrap_or("-"),
                        u.created_at.to_rfc3339()
                    );
                }
            }
        }
        UserCommand::Unlock { username } => {
            admin.unlock_user(username, Timestamp::now()).await?;
            eprintln!("unlocked {username:?}");
        }
        UserCommand::Remove { username } => {
            admin.remove_user(username, Timestamp::now()).await?;
            eprintln!("removed user {username:?} and its sessions");
        }
    }
    Ok(())
}
