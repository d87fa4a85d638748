use std::collections::HashMap;
use std::time::Duration;

use m2m_session_server::domain::Admin;
use m2m_session_server::store::AuditRecord;
use m2m_session_server::time::Timestamp;
use serde_json::json;

use super::admin;
use crate::args::AuditArgs;
use crate::settings::{FileConfig, parse_duration};

/// How often `--follow` asks for new lines.
const FOLLOW_POLL: Duration = Duration::from_secs(1);
/// How far back each poll reads again: a line is written with its node's time, which can
/// arrive after a later-stamped one from another node; lines already printed are skipped.
const FOLLOW_OVERLAP: Duration = Duration::from_secs(10);

pub async fn run(file: &FileConfig, args: &AuditArgs) -> anyhow::Result<()> {
    let since = args
        .since
        .as_deref()
        .map(|text| parse_duration("--since", text).map(|d| Timestamp::now().minus(d)))
        .transpose()?;
    let admin = admin(&args.store, file, None).await?;
    let records = admin
        .audit_log(args.username.as_deref(), since, args.limit)
        .await?;
    if args.follow {
        for r in &records {
            print_record(r, args.json);
        }
        return follow(&admin, args, records).await;
    }
    if args.json {
        let rows: Vec<_> = records.iter().map(record_json).collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &records {
            outln!("{}", record_line(r));
        }
    }
    Ok(())
}

/// Prints lines as they are written after `printed`, until the process is interrupted.
async fn follow(admin: &Admin, args: &AuditArgs, printed: Vec<AuditRecord>) -> anyhow::Result<()> {
    let mut from = printed.last().map_or_else(Timestamp::now, |r| r.time);
    // Everything already there counts as seen, not only the lines a --limit let through: only
    // lines written from now on are printed. Lines are told apart by their whole content; two
    // identical ones (same millisecond, same everything) are both printed, by counting.
    let mut seen = counted(
        &admin
            .audit_log(
                args.username.as_deref(),
                Some(from.minus(FOLLOW_OVERLAP)),
                None,
            )
            .await?,
    );
    loop {
        tokio::time::sleep(FOLLOW_POLL).await;
        let since = from.minus(FOLLOW_OVERLAP);
        let records = admin
            .audit_log(args.username.as_deref(), Some(since), None)
            .await?;
        let mut now_seen = HashMap::new();
        for r in &records {
            let key = record_json(r).to_string();
            let count = now_seen.entry(key.clone()).or_insert(0usize);
            *count += 1;
            if *count > seen.get(&key).copied().unwrap_or(0) {
                print_record(r, args.json);
                from = from.max(r.time);
            }
        }
        seen = now_seen;
    }
}

/// How many times each line (by its whole content) is in `records`.
fn counted(records: &[AuditRecord]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in records {
        *counts.entry(record_json(r).to_string()).or_insert(0) += 1;
    }
    counts
}

/// One line; under `--json`, one compact object per line, as log shippers read.
fn print_record(r: &AuditRecord, json: bool) {
    if json {
        outln!("{}", record_json(r));
    } else {
        outln!("{}", record_line(r));
    }
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
        "request_id": r.request_id,
    })
}

/// One audit line as `audit` prints it.
pub fn record_line(r: &AuditRecord) -> String {
    format!(
        "{} {:<7} {:<19} user={} client={} ip={}{}{}",
        r.time.to_rfc3339(),
        r.event,
        r.outcome,
        r.username.as_deref().unwrap_or("-"),
        r.client_id.as_deref().unwrap_or("-"),
        r.ip.as_deref().unwrap_or("-"),
        r.request_id
            .as_deref()
            .map(|id| format!(" request={id}"))
            .unwrap_or_default(),
        r.detail
            .as_deref()
            .map(|d| format!(" {d}"))
            .unwrap_or_default()
    )
}
