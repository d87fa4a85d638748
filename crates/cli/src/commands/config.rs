//! `config check`: validates the configuration as `serve` would read it (flags, `M2M_*`
//! variables, the file) and prints the effective result as TOML, with secrets redacted.

use std::fmt::Write as _;
use std::time::Duration;

use m2m_session_server::ServerConfig;

use super::redact_url;
use crate::args::{LogFormat, ServeArgs};
use crate::settings::{self, FileConfig};

pub fn check(
    log_format: Option<LogFormat>,
    serve: &ServeArgs,
    file: &FileConfig,
) -> anyhow::Result<()> {
    // What `serve` would refuse, refused here too: a mistyped key, unreadable TLS files.
    file.refuse_unknown(serve.store.config.as_deref())?;
    let config = settings::server_config(serve, file)?;
    if let Some(tls) = &config.tls {
        m2m_session_server::tls::load(tls)?;
    }
    let log_format = log_format.or(file.log_format).unwrap_or_default();
    super::write_stdout(format_args!("{}", effective(&config, log_format)));
    // The summary goes to stderr: stdout stays a file `serve --config` accepts.
    let source = match &serve.store.config {
        Some(path) => format!("flags, M2M_* variables and {}", path.display()),
        None => "flags and M2M_* variables; no --config file".to_owned(),
    };
    eprintln!(
        "configuration is valid: serve would listen on {} with database {} (read from {source})",
        config.listen,
        shown_database(&config.database)
    );
    Ok(())
}

/// The database as people see it: redacted, or the simulator's throwaway file.
fn shown_database(database: &str) -> String {
    if database.is_empty() {
        "a temporary file deleted at exit (--simulator)".to_owned()
    } else {
        redact_url(database)
    }
}

/// The configuration as a file `serve --config` would accept, keys in the README's order.
fn effective(c: &ServerConfig, log_format: LogFormat) -> String {
    let d = |d: Duration| format!("\"{}\"", humantime::format_duration(d));
    let p = &c.policy;
    let mut out = String::new();
    let mut line = |key: &str, value: Option<String>| {
        let _ = match value {
            Some(v) => writeln!(out, "{key} = {v}"),
            None => writeln!(out, "# {key}: not set"),
        };
    };
    line("listen", Some(format!("\"{}\"", c.listen)));
    line(
        "metrics_listen",
        c.metrics_listen.map(|a| format!("\"{a}\"")),
    );
    line(
        "tls_cert",
        c.tls
            .as_ref()
            .map(|t| format!("{:?}", t.cert.display().to_string())),
    );
    line(
        "tls_key",
        c.tls
            .as_ref()
            .map(|t| format!("{:?}", t.key.display().to_string())),
    );
    line(
        "database",
        (!c.database.is_empty()).then(|| format!("\"{}\"", redact_url(&c.database))),
    );
    line(
        "database_max_connections",
        Some(c.store.max_connections.to_string()),
    );
    line("database_acquire_timeout", Some(d(c.store.acquire_timeout)));
    line(
        "session_touch_granularity",
        Some(d(p.session_touch_granularity)),
    );
    line("session_idle_timeout", Some(d(p.session_idle_timeout)));
    line("lockout_threshold", Some(p.lockout_threshold.to_string()));
    line(
        "lockout_duration",
        Some(
            p.lockout_duration
                .map_or_else(|| "\"permanent\"".to_owned(), d),
        ),
    );
    line("session_max_lifetime", p.session_max_lifetime.map(d));
    line(
        "max_sessions_per_user",
        p.max_sessions_per_user.map(|n| n.to_string()),
    );
    line("ip_failure_limit", Some(p.ip_failure_limit.to_string()));
    line("ip_failure_window", Some(d(p.ip_failure_window)));
    line(
        "previous_password_grace",
        Some(if p.previous_password_grace.is_zero() {
            "\"off\"".to_owned()
        } else {
            d(p.previous_password_grace)
        }),
    );
    line(
        "familiar_sources",
        Some(format!("\"{}\"", p.familiar_sources.as_str())),
    );
    line("familiar_source_window", Some(d(p.familiar_source_window)));
    line(
        "argon2_queue",
        (c.hash_queue > 0).then(|| c.hash_queue.to_string()),
    );
    line("shutdown_delay", Some(d(c.shutdown_delay)));
    line("shutdown_timeout", Some(d(c.shutdown_timeout)));
    let limits = &c.connections;
    line("header_read_timeout", Some(d(limits.header_read_timeout)));
    line("body_read_timeout", Some(d(limits.body_read_timeout)));
    line("keep_alive_timeout", Some(d(limits.keep_alive_timeout)));
    line(
        "max_header_bytes",
        Some(limits.max_header_bytes.to_string()),
    );
    line("max_connections", Some(limits.max_connections.to_string()));
    let proxies: Vec<String> = c
        .trusted_proxies
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect();
    line("trusted_proxies", Some(format!("[{}]", proxies.join(", "))));
    line("argon2_memory_kib", Some(c.argon2.memory_kib.to_string()));
    line("argon2_iterations", Some(c.argon2.iterations.to_string()));
    line("argon2_parallelism", Some(c.argon2.parallelism.to_string()));
    let format = match log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    line("log_format", Some(format!("\"{format}\"")));
    out
}

#[cfg(test)]
mod tests {
    use crate::commands::redact_url;

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://m2m:s3cret@db:5432/m2m"),
            "postgres://m2m:REDACTED@db:5432/m2m"
        );
        assert_eq!(
            redact_url("sqlite://m2m-session.db"),
            "sqlite://m2m-session.db"
        );
        assert_eq!(redact_url("/var/lib/m2m.db"), "/var/lib/m2m.db");
        assert_eq!(
            redact_url("postgres://db/m2m?user=m2m&password=s3cret&sslmode=require"),
            "postgres://db/m2m?user=m2m&password=REDACTED&sslmode=require"
        );
        // Unparsable, e.g. an unencoded '@' or '/' in the password: everything before the host.
        assert_eq!(
            redact_url("postgres://m2m:s3/cr@t@db/m2m"),
            "postgres://REDACTED@db/m2m"
        );
    }
}
