use m2m_session_server::store::AuditRecord;
use m2m_session_server::time::Timestamp;
use serde_json::json;

use super::admin;
use crate::args::{AuditArgs, Cli};
use crate::settings::{FileConfig, parse_duration};

pub async fn run(cli: &Cli, file: &FileConfig, args: &AuditArgs) -> anyhow::Result<()> {
    let since = args
        .since
        .as_deref()
        .map(|text| parse_duration("--since", text).map(|d| Timestamp::now().minus(d)))
        .transpose()?;
    let admin = admin(cli, file).await?;
    let records = admin.audit_log(args.username.as_deref(), since).await?;
    if args.json {
        let rows: Vec<_> = records.iter().map(record_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &records {
            println!("{}", record_line(r));
        }
    }
    Ok(())
}

/// One audit line as `audit --json` prints it.
pub fn record_json(r: &AuditRecord) -> serde_json::Value {
    json!({
        "time": r.time.to_rfc3339(),
        "event": r.event,
        "outcome": r.outcome,
        "username": r.username,
        "client_id": r.client_id,
        "ip": r.ip,
        "detail": r.detail,
    })
}

/// One audit line as `audit` prints it.
pub fn record_line(r: &AuditRecord) -> String {
    format!(
        "{} {:<7} {:<19} user={} client={} ip={}{}",
        r.time.to_rfc3339(),
        r.event,
        r.outcome,
        r.username.as_deref().unwrap_or("-"),
        r.client_id.as_deref().unwrap_or("-"),
        r.ip.as_deref().unwrap_or("-"),
        r.detail
            .as_deref()
            .map(|d| format!(" {d}"))
            .unwrap_or_default()
    )
}
