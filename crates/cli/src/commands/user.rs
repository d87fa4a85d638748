use m2m_session_server::domain::{AddedUser, LockoutState, NewUser};
use m2m_session_server::time::Timestamp;
use serde_json::json;

use super::audit::{record_json, record_line};
use super::{admin, read_secret_line, report_generated, unless_exists};
use crate::args::{StoreArgs, UserCommand};
use crate::settings::FileConfig;

pub async fn run(store: &StoreArgs, file: &FileConfig, cmd: &UserCommand) -> anyhow::Result<()> {
    let hashing = match cmd {
        UserCommand::Add { argon2, .. } | UserCommand::SetPassword { argon2, .. } => Some(argon2),
        _ => None,
    };
    let admin = admin(store, file, hashing).await?;
    match cmd {
        UserCommand::Add {
            username,
            account,
            password_stdin,
            if_not_exists,
            argon2: _,
        } => {
            let password = password_stdin
                .then(|| read_secret_line("password"))
                .transpose()?;
            let user = NewUser {
                username: username.clone(),
                account: account.clone(),
                password,
            };
            let renew =
                format!("`m2m-session user set-password {username}` gives it a new password");
            let added = admin.add_user(user, Timestamp::now()).await;
            if let Some(added) = unless_exists(added, *if_not_exists, &renew)? {
                report_password(&added, &format!("created user {username:?}"));
            }
        }
        UserCommand::SetPassword {
            username,
            password_stdin,
            argon2: _,
        } => {
            let password = password_stdin
                .then(|| read_secret_line("password"))
                .transpose()?;
            let (added, ended) = admin
                .set_password(username, password, Timestamp::now())
                .await?;
            let done = format!("set the password of {username:?} and ended its {ended} session(s)");
            report_password(&added, &done);
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
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                outln!(
                    "{:<24} {:<16} {:<22} STATUS",
                    "USERNAME",
                    "ACCOUNT",
                    "CREATED"
                );
                for u in &users {
                    let status = match u.locked_until {
                        Some(until) => format!("locked until {}", until.to_rfc3339()),
                        None if u.failures > 0 => {
                            format!("active ({} failed attempts)", u.failures)
                        }
                        None => "active".to_owned(),
                    };
                    outln!(
                        "{:<24} {:<16} {:<22} {status}",
                        u.username,
                        u.account.as_deref().unwrap_or("-"),
                        u.created_at.to_rfc3339()
                    );
                }
            }
        }
        UserCommand::Lockout { username, json } => {
            let state = admin.lockout_state(username, Timestamp::now()).await?;
            print_lockout(username, &state, *json)?;
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

/// A new password's warnings, then the password itself when it was generated.
fn report_password(added: &AddedUser, done: &str) {
    for warning in &added.warnings {
        eprintln!("warning: {warning}");
    }
    report_generated(added.generated_password.as_ref(), "password", done);
}

fn print_lockout(username: &str, state: &LockoutState, json: bool) -> anyhow::Result<()> {
    let source = |bucket: &str| {
        if bucket.is_empty() {
            "shared".to_owned()
        } else {
            bucket.to_owned()
        }
    };
    if json {
        let value = json!({
            "username": username,
            "buckets": state.buckets.iter().map(|b| json!({
                "source": source(&b.bucket),
                "failed_attempts": b.failures,
                "locked_until": b.locked_until.map(|t| t.to_rfc3339()),
            })).collect::<Vec<_>>(),
            "recent": state.recent.iter().map(record_json).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if state.buckets.is_empty() {
        outln!("nothing counts against {username:?}: it is not locked");
    } else {
        outln!("{:<26} {:<9} STATUS", "SOURCE", "FAILURES");
    }
    for b in &state.buckets {
        let status = match b.locked_until {
            Some(until) => format!("locked until {}", until.to_rfc3339()),
            None => "not locked".to_owned(),
        };
        outln!("{:<26} {:<9} {status}", source(&b.bucket), b.failures);
    }
    if !state.recent.is_empty() {
        outln!("\nrecent failures, locks and unlocks (the last day):");
        for r in &state.recent {
            outln!("{}", record_line(r));
        }
    }
    Ok(())
}
