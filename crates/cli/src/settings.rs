//! Merges flags and environment (already combined by clap) with the TOML file and defaults.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use m2m_session_server::ServerConfig;
use m2m_session_server::crypto::Argon2Settings;
use serde::Deserialize;

use crate::args::{Argon2Args, Cli, LogFormat, ServeArgs};

/// The config file: the same keys as the long flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub database: Option<String>,
    pub session_idle_timeout: Option<String>,
    pub lockout_threshold: Option<u32>,
    pub lockout_duration: Option<String>,
    pub session_max_lifetime: Option<String>,
    pub max_sessions_per_user: Option<u32>,
    pub ip_failure_limit: Option<u32>,
    pub ip_failure_window: Option<String>,
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
    pub database_max_connections: Option<u32>,
    pub database_acquire_timeout: Option<String>,
    pub session_touch_granularity: Option<String>,
    pub argon2_queue: Option<usize>,
    pub shutdown_delay: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
    pub log_format: Option<LogFormat>,
    pub metrics_listen: Option<SocketAddr>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

pub fn database(cli: &Cli, file: &FileConfig) -> String {
    cli.database
        .clone()
        .or_else(|| file.database.clone())
        .unwrap_or_else(|| ServerConfig::default().database)
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

pub fn server_config(
    cli: &Cli,
    serve: &ServeArgs,
    file: &FileConfig,
) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig {
        database: database(cli, file),
        argon2: argon2(&cli.argon2, file),
        ..ServerConfig::default()
    };
    config.metrics_listen = serve.metrics_listen.or(file.metrics_listen);
    if let Some(listen) = serve.listen.or(file.listen) {
        config.listen = listen;
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
            Some(parse_duration("lockout duration", text)?)
        };
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
        config.shutdown_delay = humantime::parse_duration(text.trim())
            .with_context(|| format!("invalid shutdown delay {text:?}"))?;
    }
    if let Some(text) = serve
        .shutdown_timeout
        .as_ref()
        .or(file.shutdown_timeout.as_ref())
    {
        config.shutdown_timeout = parse_duration("shutdown timeout", text)?;
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
    let d = humantime::parse_duration(text.trim())
        .with_context(|| format!("invalid {what} {text:?} (expected e.g. 20m, 90s, 1h)"))?;
    if d.is_zero() {
        bail!("{what} must be greater than zero");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::Command;

    fn serve_config(argv: &[&str], file: &str) -> anyhow::Result<ServerConfig> {
        let cli = Cli::try_parse_from(argv).unwrap();
        let file: FileConfig = toml::from_str(file).unwrap();
        let Command::Serve(serve) = &cli.command else {
            panic!("not serve")
        };
        server_config(&cli, serve, &file)
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
        assert!(format!("{err:#}").contains("invalid session idle timeout"));
        assert!(serve_config(&["m2m-session", "serve", "--lockout-threshold", "0"], "").is_err());
        assert!(toml::from_str::<FileConfig>("nonsense = 1").is_err());
    }
}
