pub mod audit;
pub mod client;
pub mod config;
pub mod remote;
pub mod serve;
pub mod session;
pub mod user;

use std::io::BufRead;

use anyhow::{Context, bail};
use m2m_session_server::domain::Admin;
use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

use crate::args::{Cli, LogFormat};
use crate::settings::{self, FileConfig};

/// Logs to stderr; `RUST_LOG` overrides the command's default level.
pub fn init_logging(default: &str, format: LogFormat) {
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

pub async fn admin(cli: &Cli, file: &FileConfig) -> anyhow::Result<Admin> {
    let database = settings::database(cli, file)?;
    m2m_session_server::open_admin(&database, settings::argon2(&cli.argon2, file))
        .await
        .with_context(|| format!("database {database}"))
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
