pub mod audit;
pub mod client;
pub mod config;
pub mod remote;
pub mod serve;
pub mod session;
pub mod user;

use std::io::BufRead;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use m2m_session_server::domain::Admin;
use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

use crate::args::{Cli, LogFormat};
use crate::settings::{self, FileConfig};

/// The format `init_logging` chose, for the failure line printed after the logs.
static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Logs to stderr; `RUST_LOG` overrides the command's default level.
pub fn init_logging(default: &str, format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// The line a failed command ends with. Under `--log-format json` it is a log object like the
/// lines before it (`fallback` is the flag's format, for failures before logging started), so a
/// log shipper never meets a stray text line.
pub fn print_failure(error: &anyhow::Error, fallback: Option<LogFormat>) {
    print_failure_line(&one_line(error), fallback);
}

/// [`print_failure`] for a message already made one line.
pub fn print_failure_line(message: &str, fallback: Option<LogFormat>) {
    match LOG_FORMAT.get().copied().or(fallback).unwrap_or_default() {
        LogFormat::Text => eprintln!("error: {message}"),
        LogFormat::Json => eprintln!(
            "{}",
            serde_json::json!({
                "timestamp": m2m_session_server::time::Timestamp::now().to_rfc3339(),
                "level": "ERROR",
                "fields": {"message": message},
                "target": "m2m_session",
            })
        ),
    }
}

/// The error and its causes on one line, each said once: some errors already show their
/// source in their own message, and printing the chain would repeat it.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A database URL fit to show: PostgreSQL URLs can carry a password, in the user part or as a
/// `password` parameter. Every place that shows a database URL goes through this.
pub fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "REDACTED";
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some(HIDDEN));
            }
            let has_password_param = parsed
                .query_pairs()
                .any(|(k, _)| k.eq_ignore_ascii_case("password"));
            if has_password_param {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k.eq_ignore_ascii_case("password") {
                            HIDDEN.into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        // Not a URL the parser takes (an unencoded '@' or '/' in the password, say): hide
        // everything between the scheme and the last '@', where credentials would be.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}{HIDDEN}{}", &url[..scheme_end + 3], &url[at..])
            }
            _ => url.to_owned(),
        },
    }
}

pub async fn admin(cli: &Cli, file: &FileConfig) -> anyhow::Result<Admin> {
    let database = settings::database(cli, file)?;
    m2m_session_server::open_admin(&database, settings::argon2(&cli.argon2, file))
        .await
        .with_context(|| format!("database {}", redact_url(&database)))
}

/// One line from stdin without its line ending; for `--password-stdin` and `--secret-stdin`.
pub fn read_secret_line(what: &str) -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let trimmed = line.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(SecretString::from(trimmed.to_owned()))
}
