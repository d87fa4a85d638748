pub mod audit;
pub mod client;
pub mod config;
pub mod docs;
pub mod remote;
pub mod serve;
pub mod session;
pub mod user;

use std::io::BufRead;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use m2m_session_server::StartError;
use m2m_session_server::crypto::CryptoError;
use m2m_session_server::domain::{Admin, DomainError};
use m2m_session_server::store::StoreError;
use secrecy::{ExposeSecret, SecretString};
use tracing_subscriber::EnvFilter;

use crate::args::{Argon2Args, BackupArgs, LogFormat, StoreArgs};
use crate::settings::{self, FileConfig};

/// Exit codes, as `--help` lists them (`args::EXIT_CODES`).
pub mod exit {
    pub const OTHER: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const INVALID_CREDENTIALS: u8 = 3;
    pub const LOCKED: u8 = 4;
    pub const SESSION_INVALID: u8 = 5;
    pub const UNAVAILABLE: u8 = 6;
    pub const NOT_FOUND: u8 = 7;
    pub const ALREADY_EXISTS: u8 = 8;
}

/// The domain's refusal somewhere in an error's chain.
fn domain_error(error: &anyhow::Error) -> Option<&DomainError> {
    error.chain().find_map(|c| c.downcast_ref::<DomainError>())
}

/// The exit code of a failed admin or server command.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    match domain_error(error) {
        Some(DomainError::NotFound(_)) => exit::NOT_FOUND,
        Some(DomainError::AlreadyExists(_)) => exit::ALREADY_EXISTS,
        Some(DomainError::InvalidInput(_)) => exit::USAGE,
        Some(DomainError::Unavailable(_) | DomainError::Overloaded) => exit::UNAVAILABLE,
        _ => exit::OTHER,
    }
}

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
    let mut line = one_line(error);
    if let Some(DomainError::NotFound(what)) = domain_error(error) {
        let list = what.split(' ').next().unwrap_or("user");
        line.push_str(&format!("; `m2m-session {list} list` shows what there is"));
    }
    print_failure_line(&line, fallback);
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

/// Opens the database of an admin command; only `init` creates one that is not there.
/// `hashing` is the cost of the hashes the command makes, for the commands that make one.
pub async fn admin(
    store: &StoreArgs,
    file: &FileConfig,
    hashing: Option<&Argon2Args>,
) -> anyhow::Result<Admin> {
    open(store, file, hashing, false).await
}

async fn open(
    store: &StoreArgs,
    file: &FileConfig,
    hashing: Option<&Argon2Args>,
    create: bool,
) -> anyhow::Result<Admin> {
    let database = settings::database(store, file)?;
    let argon2 = settings::argon2(hashing.unwrap_or(&Argon2Args::default()), file);
    m2m_session_server::open_admin(&database, argon2, create)
        .await
        .map_err(|e| anyhow::anyhow!(start_failure(&e, &database, None)))
}

/// A server or admin command that could not start, in one line that names the part that
/// failed: the database (with its URL, redacted), the address (with the flag that names it:
/// `metrics` is the `--metrics-listen` address), or the hash settings.
pub fn start_failure(
    error: &StartError,
    database: &str,
    metrics: Option<std::net::SocketAddr>,
) -> String {
    let flag = |addr: &std::net::SocketAddr| {
        if Some(*addr) == metrics {
            "--metrics-listen"
        } else {
            "--listen"
        }
    };
    match error {
        // Already said for a person, with what to do.
        StartError::Store(StoreError::Config(message)) => message.clone(),
        StartError::Store(e) => format!("cannot open the database {}: {e}", redact_url(database)),
        StartError::Bind { addr, error } if error.kind() == std::io::ErrorKind::AddrInUse => {
            format!(
                "cannot listen on {addr}: another process is listening there; stop it or \
                 choose another {} (port 0 picks a free one)",
                flag(addr)
            )
        }
        StartError::Bind { addr, error }
            if error.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            format!(
                "cannot listen on {addr}: permission denied (ports below 1024 need privileges); \
                 choose a port above 1024 with {}",
                flag(addr)
            )
        }
        StartError::Bind { addr, error }
            if error.kind() == std::io::ErrorKind::AddrNotAvailable =>
        {
            format!(
                "cannot listen on {addr}: no interface of this machine has that address; \
                 use 127.0.0.1, 0.0.0.0 or one of its own addresses with {}",
                flag(addr)
            )
        }
        StartError::Crypto(CryptoError::Params(reason)) => format!(
            "invalid --argon2-* settings: {reason}; the least is --argon2-memory-kib 8 per lane \
             (8 x --argon2-parallelism), --argon2-iterations 1, --argon2-parallelism 1"
        ),
        other => other.to_string(),
    }
}

/// `init`: creates the database when it is not there and applies the migrations.
pub async fn init(store: &StoreArgs, file: &FileConfig) -> anyhow::Result<()> {
    open(store, file, None, true).await?;
    let database = settings::database(store, file)?;
    eprintln!("database {} is ready", redact_url(&database));
    Ok(())
}

/// `backup PATH`: a consistent copy while servers keep running.
pub async fn backup(args: &BackupArgs, file: &FileConfig) -> anyhow::Result<()> {
    // Refused before the database is opened, with the code of its kind (8).
    if args.path.exists() {
        let what = format!("{}", args.path.display());
        let hint = format!("{what} already exists; name a new file (a backup never overwrites)");
        return Err(anyhow::Error::new(DomainError::AlreadyExists(what)).context(hint));
    }
    let admin = admin(&args.store, file, None).await?;
    admin.backup_to(&args.path).await?;
    eprintln!("backed up to {}", args.path.display());
    Ok(())
}

/// An `add`'s result when the name may be taken: with `--if-not-exists` a success that says so
/// (`None`: nothing was made, nothing to print), otherwise a failure (exit 8) naming both ways
/// out, `renew` being the command that gives the existing one a new secret.
pub fn unless_exists<T>(
    result: Result<T, DomainError>,
    if_not_exists: bool,
    renew: &str,
) -> anyhow::Result<Option<T>> {
    match result {
        Ok(made) => Ok(Some(made)),
        Err(DomainError::AlreadyExists(what)) if if_not_exists => {
            eprintln!("{what} already exists; left unchanged");
            Ok(None)
        }
        Err(e @ DomainError::AlreadyExists(_)) => {
            let hint = format!("{e}; add --if-not-exists to accept it as it is, or {renew}");
            Err(anyhow::Error::new(e).context(hint))
        }
        Err(e) => Err(e.into()),
    }
}

/// A generated secret on stdout (the only thing there, for `$(...)`), the rest on stderr.
pub fn report_generated(generated: Option<&SecretString>, what: &str, done: &str) {
    match generated {
        Some(secret) => {
            write_secret(secret.expose_secret(), what);
            eprintln!("{done}; the {what} is printed above, once");
        }
        None => eprintln!("{done}"),
    }
}

/// A secret that exists only in this output (a generated password, a new session): a reader
/// that has gone away is a failure here, said so, not a quiet end.
pub fn write_secret(secret: &str, what: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{secret}").and_then(|()| out.flush()) {
        print_failure_line(
            &format!("the {what} could not be written to standard output ({e}); it is lost"),
            None,
        );
        std::process::exit(i32::from(exit::OTHER));
    }
}

/// What `outln!` writes with.
pub fn write_stdout(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        print_failure_line(&format!("cannot write to standard output: {e}"), None);
        std::process::exit(i32::from(exit::OTHER));
    }
}

/// One line from stdin without its line ending; for `--password-stdin` and `--secret-stdin`.
pub fn read_secret_line(what: &str) -> anyhow::Result<SecretString> {
    // A terminal would echo it: the flag is for pipes and files.
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!(
            "the {what} is read from a pipe, not typed: e.g. `printf '%s\\n' \"$SECRET\" | \
             m2m-session ...`, or leave the flag out for a generated one (admin commands) or \
             the environment variable (client commands)"
        );
    }
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
