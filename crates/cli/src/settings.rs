//! Merges flags and environment (already combined by clap) with the TOML file and defaults.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use m2m_session_server::ServerConfig;
use m2m_session_server::crypto::Argon2Settings;
use m2m_session_server::listener::MIN_HEADER_BYTES;
use m2m_session_server::tls::TlsFiles;
use serde::Deserialize;

use crate::args::{Argon2Args, LogFormat, ServeArgs, StoreArgs};

/// The config file: the same keys as the long flags, with underscores
/// (`m2m-session.example.toml` lists them all).
#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    #[serde(default, deserialize_with = "listen_address")]
    pub listen: Option<SocketAddr>,
    pub database: Option<String>,
    pub session_idle_timeout: Option<String>,
    pub lockout_threshold: Option<u32>,
    pub lockout_duration: Option<String>,
    pub session_max_lifetime: Option<String>,
    pub max_sessions_per_user: Option<u32>,
    pub ip_failure_limit: Option<u32>,
    pub ip_failure_window: Option<String>,
    pub previous_password_grace: Option<String>,
    pub familiar_sources: Option<String>,
    pub familiar_source_window: Option<String>,
    /// Also under the flag's own spelling, `trusted_proxy`.
    #[serde(alias = "trusted_proxy")]
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
    pub database_max_connections: Option<u32>,
    pub database_acquire_timeout: Option<String>,
    pub session_touch_granularity: Option<String>,
    pub argon2_queue: Option<usize>,
    pub shutdown_delay: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub keep_alive_timeout: Option<String>,
    pub max_header_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
    pub log_format: Option<LogFormat>,
    #[serde(default, deserialize_with = "listen_address")]
    pub metrics_listen: Option<SocketAddr>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    /// Keys this version does not know: warned about, not fatal, so that one file can serve
    /// several versions during an upgrade.
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, toml::Value>,
}

/// A `listen` key as the flag takes it: `HOST:PORT`, a name resolved.
fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| crate::args::parse_listen(&t).map_err(serde::de::Error::custom))
        .transpose()
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: Self = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start].matches('\n').count() + 1);
            let at = line.map(|n| format!(" line {n}")).unwrap_or_default();
            anyhow::anyhow!(
                "invalid config file {}{at}: {}",
                path.display(),
                plain_toml_reason(e.message())
            )
        })?;
        Ok(config)
    }

    /// The unknown keys as warnings: a file may be shared by several versions during an
    /// upgrade, so `serve` and the admin commands go on without them.
    pub fn warn_unknown(&self, path: Option<&Path>) {
        let Some(path) = path else { return };
        // Logging is not set up yet: this goes straight to stderr.
        for key in self.unknown.keys() {
            eprintln!(
                "warning: {}: unknown key {key:?} ignored{}",
                path.display(),
                did_you_mean(key)
            );
        }
    }

    /// The unknown keys as one refusal, for `config check`: a typo there must not pass.
    pub fn refuse_unknown(&self, path: Option<&Path>) -> anyhow::Result<()> {
        let (Some(path), Some(key)) = (path, self.unknown.keys().next()) else {
            return Ok(());
        };
        let more = match self.unknown.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        bail!(
            "{}: unknown key {key:?}{}{more}",
            path.display(),
            did_you_mean(key)
        )
    }
}

/// Every key the file takes, for suggestions.
const KNOWN_KEYS: &[&str] = &[
    "listen",
    "database",
    "session_idle_timeout",
    "lockout_threshold",
    "lockout_duration",
    "session_max_lifetime",
    "max_sessions_per_user",
    "ip_failure_limit",
    "ip_failure_window",
    "previous_password_grace",
    "familiar_sources",
    "familiar_source_window",
    "trusted_proxies",
    "database_max_connections",
    "database_acquire_timeout",
    "session_touch_granularity",
    "argon2_queue",
    "shutdown_delay",
    "shutdown_timeout",
    "header_read_timeout",
    "body_read_timeout",
    "keep_alive_timeout",
    "max_header_bytes",
    "max_connections",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "log_format",
    "metrics_listen",
    "tls_cert",
    "tls_key",
];

/// "; did you mean X?" for the known key nearest to `key`, when one is near.
fn did_you_mean(key: &str) -> String {
    KNOWN_KEYS
        .iter()
        .map(|known| (strsim::levenshtein(key, known), known))
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, known)| format!("; did you mean {known:?}?"))
        .unwrap_or_default()
}

/// serde's reason in words: its type names are Rust's.
fn plain_toml_reason(message: &str) -> String {
    message
        .replace("expected u32", "expected a whole number")
        .replace("expected u64", "expected a whole number")
        .replace("expected usize", "expected a whole number")
        .replace(
            "expected a string",
            "expected a quoted string, e.g. \"20m\"",
        )
        .trim()
        .to_owned()
}

impl FileConfig {}

/// `NAME`, else the contents of the file named by `NAME_FILE` (without its final line end),
/// the usual way to hand a secret to a container.
pub fn env_or_file(name: &str) -> anyhow::Result<Option<String>> {
    if let Ok(value) = std::env::var(name) {
        return Ok(Some(value));
    }
    let Ok(path) = std::env::var(format!("{name}_FILE")) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {name}_FILE {path}"))?;
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
}

/// The database URL: flag or `M2M_DATABASE`, else `M2M_DATABASE_FILE` (a PostgreSQL URL holds
/// a password), else the file, else the default.
pub fn database(store: &StoreArgs, file: &FileConfig) -> anyhow::Result<String> {
    Ok(named_database(store, file)?.unwrap_or_else(|| ServerConfig::default().database))
}

/// A named database URL, refused when it names nothing (an empty flag, variable or file).
fn nonempty(url: String) -> anyhow::Result<String> {
    if url.trim().is_empty() || matches!(url.trim(), "sqlite:" | "sqlite://") {
        bail!(
            "the database is empty (--database, M2M_DATABASE, M2M_DATABASE_FILE or the config \
             file's database); name a file, e.g. sqlite://m2m-session.db, or a postgres:// URL"
        );
    }
    Ok(url)
}

/// The database URL when one was named anywhere; `None` means the default.
fn named_database(store: &StoreArgs, file: &FileConfig) -> anyhow::Result<Option<String>> {
    if let Some(url) = &store.database {
        return nonempty(url.clone()).map(Some);
    }
    env_or_file("M2M_DATABASE")?
        .or_else(|| file.database.clone())
        .map(nonempty)
        .transpose()
}

/// The idle timeout the servers use, as `session list` is told it: the flag (or
/// `M2M_SESSION_IDLE_TIMEOUT`), else the file, else the default.
pub fn idle_timeout(given: Option<&str>, file: &FileConfig) -> anyhow::Result<Duration> {
    match given.or(file.session_idle_timeout.as_deref()) {
        Some(text) => parse_duration("--session-idle-timeout", text),
        None => Ok(m2m_session_server::domain::Policy::default().session_idle_timeout),
    }
}

pub fn argon2(args: &Argon2Args, file: &FileConfig) -> Argon2Settings {
    let d = Argon2Settings::default();
    Argon2Settings {
        memory_kib: args
            .argon2_memory_kib
            .or(file.argon2_memory_kib)
            .unwrap_or(d.memory_kib),
        iterations: args
            .argon2_iterations
            .or(file.argon2_iterations)
            .unwrap_or(d.iterations),
        parallelism: args
            .argon2_parallelism
            .or(file.argon2_parallelism)
            .unwrap_or(d.parallelism),
    }
}

/// `serve`'s configuration. With `--simulator` and no database named, `database` is empty:
/// the caller puts the simulator's throwaway database there.
pub fn server_config(serve: &ServeArgs, file: &FileConfig) -> anyhow::Result<ServerConfig> {
    let database = match named_database(&serve.store, file)? {
        Some(url) => url,
        None if serve.simulator => String::new(),
        None => ServerConfig::default().database,
    };
    let mut config = ServerConfig {
        database,
        argon2: argon2(&serve.argon2, file),
        ..ServerConfig::default()
    };
    config.metrics_listen = serve.metrics_listen.or(file.metrics_listen);
    config.tls = match (
        serve.tls_cert.clone().or_else(|| file.tls_cert.clone()),
        serve.tls_key.clone().or_else(|| file.tls_key.clone()),
    ) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => bail!("TLS needs both a certificate (tls_cert) and its key (tls_key)"),
    };
    if let Some(listen) = serve.listen.or(file.listen) {
        config.listen = listen;
    }
    if config.metrics_listen == Some(config.listen) && config.listen.port() != 0 {
        bail!(
            "--metrics-listen {} is the --listen address; give /metrics an address of its own, \
             or leave --metrics-listen out to serve it on --listen",
            config.listen
        );
    }
    if let Some(text) = serve
        .session_idle_timeout
        .as_ref()
        .or(file.session_idle_timeout.as_ref())
    {
        config.policy.session_idle_timeout = parse_duration("session idle timeout", text)?;
    }
    if let Some(n) = serve.lockout_threshold.or(file.lockout_threshold) {
        if n == 0 {
            bail!("lockout threshold must be at least 1");
        }
        config.policy.lockout_threshold = n;
    }
    if let Some(text) = serve
        .lockout_duration
        .as_ref()
        .or(file.lockout_duration.as_ref())
    {
        config.policy.lockout_duration = if text.trim() == "permanent" {
            None
        } else {
            Some(parse_duration_or(
                "lockout duration",
                text,
                ", or permanent",
            )?)
        };
    }
    if let Some(text) = serve
        .previous_password_grace
        .as_ref()
        .or(file.previous_password_grace.as_ref())
    {
        config.policy.previous_password_grace = if text.trim() == "off" {
            Duration::ZERO
        } else {
            parse_duration_or("previous password grace", text, ", or off")?
        };
    }
    if let Some(text) = serve
        .familiar_sources
        .as_ref()
        .or(file.familiar_sources.as_ref())
    {
        config.policy.familiar_sources = text.trim().parse().map_err(anyhow::Error::msg)?;
    }
    if let Some(text) = serve
        .familiar_source_window
        .as_ref()
        .or(file.familiar_source_window.as_ref())
    {
        config.policy.familiar_source_window = parse_duration("familiar source window", text)?;
    }
    if let Some(text) = serve
        .session_max_lifetime
        .as_ref()
        .or(file.session_max_lifetime.as_ref())
    {
        config.policy.session_max_lifetime = Some(parse_duration("session max lifetime", text)?);
    }
    if let Some(n) = serve.max_sessions_per_user.or(file.max_sessions_per_user) {
        if n == 0 {
            bail!("max sessions per user must be at least 1");
        }
        config.policy.max_sessions_per_user = Some(n);
    }
    if let Some(n) = serve.ip_failure_limit.or(file.ip_failure_limit) {
        config.policy.ip_failure_limit = n;
    }
    if let Some(text) = serve
        .ip_failure_window
        .as_ref()
        .or(file.ip_failure_window.as_ref())
    {
        config.policy.ip_failure_window = parse_duration("IP failure window", text)?;
    }
    if let Some(n) = serve
        .database_max_connections
        .or(file.database_max_connections)
    {
        if n == 0 {
            bail!("database max connections must be at least 1");
        }
        config.store.max_connections = n;
    }
    if let Some(text) = serve
        .database_acquire_timeout
        .as_ref()
        .or(file.database_acquire_timeout.as_ref())
    {
        config.store.acquire_timeout = parse_duration("database acquire timeout", text)?;
    }
    if let Some(text) = serve
        .session_touch_granularity
        .as_ref()
        .or(file.session_touch_granularity.as_ref())
    {
        config.policy.session_touch_granularity =
            parse_duration("session touch granularity", text)?;
    }
    if let Some(n) = serve.argon2_queue.or(file.argon2_queue) {
        config.hash_queue = n;
    }
    if let Some(text) = serve
        .shutdown_delay
        .as_ref()
        .or(file.shutdown_delay.as_ref())
    {
        // Zero is allowed here: no delay before draining.
        config.shutdown_delay = humantime::parse_duration(text.trim()).map_err(|_| {
            anyhow::anyhow!("shutdown delay: {text:?} is not a duration; use e.g. 2s, or 0s")
        })?;
    }
    if let Some(text) = serve
        .shutdown_timeout
        .as_ref()
        .or(file.shutdown_timeout.as_ref())
    {
        config.shutdown_timeout = parse_duration("shutdown timeout", text)?;
    }
    let limits = &mut config.connections;
    for (what, flag, key, slot) in [
        (
            "header read timeout",
            &serve.header_read_timeout,
            &file.header_read_timeout,
            &mut limits.header_read_timeout,
        ),
        (
            "body read timeout",
            &serve.body_read_timeout,
            &file.body_read_timeout,
            &mut limits.body_read_timeout,
        ),
        (
            "keep-alive timeout",
            &serve.keep_alive_timeout,
            &file.keep_alive_timeout,
            &mut limits.keep_alive_timeout,
        ),
    ] {
        if let Some(text) = flag.as_ref().or(key.as_ref()) {
            *slot = parse_duration(what, text)?;
        }
    }
    if let Some(n) = serve.max_header_bytes.or(file.max_header_bytes) {
        if n < MIN_HEADER_BYTES {
            bail!("max header bytes must be at least {MIN_HEADER_BYTES}");
        }
        limits.max_header_bytes = n;
    }
    if let Some(n) = serve.max_connections.or(file.max_connections) {
        if n == 0 {
            bail!("max connections must be at least 1");
        }
        limits.max_connections = n;
    }
    config.policy.simulator = serve.simulator;
    if serve.simulator && !config.listen.ip().is_loopback() && !serve.simulator_allow_remote {
        bail!(
            "--simulator accepts any credentials, so it listens on loopback only; \
             --listen {} needs --simulator-allow-remote",
            config.listen
        );
    }
    config.trusted_proxies = if serve.trusted_proxies.is_empty() {
        file.trusted_proxies.clone().unwrap_or_default()
    } else {
        serve.trusted_proxies.clone()
    };
    Ok(config)
}

/// A humantime duration such as `20m`; zero is refused.
pub fn parse_duration(what: &str, text: &str) -> anyhow::Result<Duration> {
    parse_duration_or(what, text, "")
}

/// [`parse_duration`] for a setting that also takes keywords (`alternatives`, e.g.
/// `", or permanent"`), which its message names. The parser's own reason is left out: it speaks
/// of positions and unit tables, not of what to write.
pub fn parse_duration_or(what: &str, text: &str, alternatives: &str) -> anyhow::Result<Duration> {
    let Ok(d) = humantime::parse_duration(text.trim()) else {
        bail!("{what}: {text:?} is not a duration; use e.g. 20m, 90s or 1h{alternatives}");
    };
    if d.is_zero() {
        bail!("{what} must be greater than zero{alternatives}");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    fn serve_config(argv: &[&str], file: &str) -> anyhow::Result<ServerConfig> {
        let cli = Cli::try_parse_from(argv).unwrap();
        let file: FileConfig = toml::from_str(file).unwrap();
        let Command::Serve(serve) = &cli.command else {
            panic!("not serve")
        };
        server_config(serve, &file)
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let c = serve_config(
            &["m2m-session", "serve", "--lockout-threshold", "7"],
            "lockout_threshold = 3\nsession_idle_timeout = \"2s\"\nlockout_duration = \"permanent\"",
        )
        .unwrap();
        assert_eq!(c.policy.lockout_threshold, 7);
        assert_eq!(c.policy.session_idle_timeout, Duration::from_secs(2));
        assert_eq!(c.policy.lockout_duration, None);
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.database, "sqlite://m2m-session.db");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = serve_config(
            &["m2m-session", "serve", "--session-idle-timeout", "soon"],
            "",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("session idle timeout: \"soon\" is not a duration; use e.g. 20m"),
            "{err:#}"
        );
        assert!(serve_config(&["m2m-session", "serve", "--lockout-threshold", "0"], "").is_err());
        // Unknown keys are kept aside (and warned about), wrong types are errors.
        let file: FileConfig = toml::from_str("nonsense = 1\nlockout_threshold = 3").unwrap();
        assert_eq!(file.unknown.keys().collect::<Vec<_>>(), ["nonsense"]);
        assert_eq!(file.lockout_threshold, Some(3));
        assert!(toml::from_str::<FileConfig>("lockout_threshold = \"three\"").is_err());
    }

    #[test]
    fn the_example_file_names_every_key() {
        let example = include_str!("../../../m2m-session.example.toml");
        // Exhaustive: a new key does not compile until it is listed here; then it must be in
        // KNOWN_KEYS (the suggestions for typos) and in the example file.
        let FileConfig {
            listen: _,
            database: _,
            session_idle_timeout: _,
            lockout_threshold: _,
            lockout_duration: _,
            session_max_lifetime: _,
            max_sessions_per_user: _,
            ip_failure_limit: _,
            ip_failure_window: _,
            previous_password_grace: _,
            familiar_sources: _,
            familiar_source_window: _,
            trusted_proxies: _,
            database_max_connections: _,
            database_acquire_timeout: _,
            session_touch_granularity: _,
            argon2_queue: _,
            shutdown_delay: _,
            shutdown_timeout: _,
            header_read_timeout: _,
            body_read_timeout: _,
            keep_alive_timeout: _,
            max_header_bytes: _,
            max_connections: _,
            argon2_memory_kib: _,
            argon2_iterations: _,
            argon2_parallelism: _,
            log_format: _,
            metrics_listen: _,
            tls_cert: _,
            tls_key: _,
            unknown: _,
        } = FileConfig::default();
        // The fields above, less `unknown`: KNOWN_KEYS must name each.
        assert_eq!(
            KNOWN_KEYS.len(),
            31,
            "a key was added: list it in KNOWN_KEYS"
        );
        let keys = KNOWN_KEYS;
        for key in keys {
            let set = example.lines().any(|l| l.starts_with(&format!("{key} = ")));
            let shown = example
                .lines()
                .any(|l| l.starts_with(&format!("# {key} = ")));
            assert!(
                set || shown,
                "{key} is missing from m2m-session.example.toml"
            );
        }
        let parsed: FileConfig = toml::from_str(example).unwrap();
        assert!(parsed.unknown.is_empty(), "{:?}", parsed.unknown);
    }
}
