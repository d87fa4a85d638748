//! Command-line surface. Every flag is optional here so that the merge in `settings.rs` can tell
//! "not given" from "given the default": flag > `M2M_*` environment > config file > default.
//!
//! The database and the configuration file belong to `serve` and the admin commands only
//! ([`StoreArgs`]), the hash cost to the commands that hash ([`Argon2Args`]): the client commands
//! talk to a server over HTTP, and no `--help` shows what its command would ignore.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `--version`: the crate's version and the commit it was built from.
fn version() -> String {
    format!(
        "{} (commit {})",
        env!("CARGO_PKG_VERSION"),
        m2m_session_server::BUILD_COMMIT
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "m2m-session",
    version = version(),
    about = "ThingSpace-compatible M2M session server and its administration",
    after_help = EXIT_CODES,
)]
pub struct Cli {
    /// Log lines on stderr as `text` or `json` (one object per line, with the request id of
    /// the request they belong to) [default: text]
    #[arg(long, global = true, env = "M2M_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

/// Every command's exit status, in `--help` and the README.
const EXIT_CODES: &str = "\
Exit codes (every command): 0 success; 1 failure (configuration, database, connection, \
unexpected answer); 2 usage (unknown flag, malformed argument); 3 invalid credentials (user or \
OAuth client); 4 user locked; 5 session expired, unknown or malformed; 6 server busy or \
throttling (retry later); 7 not found (no such user, client or session); 8 already exists.";

/// Where the data is, and what `serve` and the admin commands share.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Database: sqlite://PATH, sqlite:PATH, a plain file path, or
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE, password and port optional (or
    /// M2M_DATABASE_FILE, a file holding the URL) [default: sqlite://m2m-session.db]
    // A PostgreSQL URL holds a password: clap must not show the variable's value in --help.
    #[arg(
        long,
        global = true,
        env = "M2M_DATABASE",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Database and configuration"
    )]
    pub database: Option<String>,

    /// TOML configuration file (keys as the long flags, with underscores; --trusted-proxy is
    /// the list trusted_proxies)
    #[arg(
        long,
        global = true,
        env = "M2M_CONFIG",
        value_name = "FILE",
        help_heading = "Database and configuration"
    )]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines
    #[default]
    Text,
    /// One JSON object per line
    Json,
}

/// Hash cost: `serve`, and the admin commands that hash a new password or secret (their hashes
/// must be made as the server makes them).
#[derive(Debug, Clone, Default, Args)]
pub struct Argon2Args {
    /// argon2id memory in KiB, at least 8 per lane [default: 19456]
    #[arg(
        long,
        env = "M2M_ARGON2_MEMORY_KIB",
        value_name = "N",
        help_heading = "Password hashing"
    )]
    pub argon2_memory_kib: Option<u32>,
    /// argon2id iterations, at least 1 [default: 2]
    #[arg(
        long,
        env = "M2M_ARGON2_ITERATIONS",
        value_name = "N",
        help_heading = "Password hashing"
    )]
    pub argon2_iterations: Option<u32>,
    /// argon2id lanes, at least 1 [default: 1]
    #[arg(
        long,
        env = "M2M_ARGON2_PARALLELISM",
        value_name = "N",
        help_heading = "Password hashing"
    )]
    pub argon2_parallelism: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the session server (creates the SQLite database on first start)
    Serve(Box<ServeArgs>),
    /// Create the database if it is not there and bring its schema up to date, without serving
    Init(StoreArgs),
    /// Manage users
    #[command(after_help = EXIT_CODES)]
    User(UserArgs),
    /// Manage OAuth clients
    #[command(after_help = EXIT_CODES)]
    Client(ClientArgs),
    /// List and revoke sessions
    #[command(after_help = EXIT_CODES)]
    Session(SessionArgs),
    /// Read the audit log
    #[command(after_help = EXIT_CODES)]
    Audit(AuditArgs),
    /// Copy the database to a new file while servers keep running (SQLite)
    #[command(after_help = EXIT_CODES)]
    Backup(BackupArgs),
    /// Check the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script, e.g. `m2m-session completions bash > /etc/bash_completion.d/m2m-session`
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `m2m-session man | man -l -`
    Man,
    /// Log in to a running server; prints the session token
    #[command(after_help = CLIENT_HELP)]
    Login(LoginArgs),
    /// End a session (M2M_SESSION_TOKEN or --token-stdin); prints nothing
    #[command(after_help = CLIENT_HELP)]
    Logout(LogoutArgs),
    /// Reset your own password through the API; prints the new, server-generated one
    ///
    /// The platform's self-service reset: the user's current password (M2M_PASSWORD or
    /// --password-stdin) and its session (M2M_SESSION_TOKEN, or a login as --username for the
    /// purpose). Administrators set a password with `m2m-session user set-password`.
    #[command(after_help = CLIENT_HELP)]
    ResetPassword(ResetPasswordArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration `serve` would run with and print it as TOML
    ///
    /// Reads the same flags, M2M_* variables and --config file as `serve`, and prints the
    /// effective configuration, secrets redacted, as a file `serve --config` accepts.
    Check(Box<ServeArgs>),
}

/// What every client command shares in `--help`.
const CLIENT_HELP: &str = "\
Secrets are read from the environment, never from flags: M2M_CLIENT_SECRET, M2M_PASSWORD (or \
--password-stdin) and M2M_SESSION_TOKEN (or, for logout, --token-stdin); each also as NAME_FILE, \
the path of a file holding it.

Exit codes (those of `m2m-session --help` a client command can give): 0 success; 1 failure \
(configuration, connection, unexpected answer); 2 usage; 3 invalid credentials (user or OAuth \
client); 4 user locked; 5 session expired, unknown or malformed; 6 server busy or throttling \
(retry later).";

/// Where the server is and which OAuth client calls it.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// API base URL, including /api
    // It may carry credentials (user:password@host).
    #[arg(
        long,
        env = "M2M_URL",
        hide_env_values = true,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/api"
    )]
    pub url: String,
    /// OAuth client id (its secret: M2M_CLIENT_SECRET)
    #[arg(long, env = "M2M_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// Also trust the CA certificate(s) in this PEM file, for a server whose certificate a
    /// private CA signed (the system's and the built-in roots stay trusted)
    #[arg(long, env = "M2M_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Username
    #[arg(long, env = "M2M_USERNAME", value_name = "NAME")]
    pub username: Option<String>,
    /// Read the password from the first line of stdin instead of M2M_PASSWORD
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Read the session token from the first line of stdin instead of M2M_SESSION_TOKEN
    #[arg(long)]
    pub token_stdin: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ResetPasswordArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Username, to log in first when M2M_SESSION_TOKEN is not set (that session is ended after)
    #[arg(long, env = "M2M_USERNAME", value_name = "NAME")]
    pub username: Option<String>,
    /// Read the current password from the first line of stdin instead of M2M_PASSWORD
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub argon2: Argon2Args,
    /// Address to listen on, HOST:PORT (e.g. 0.0.0.0:8080, `[::]:8080`, localhost:0); port 0
    /// picks a free one [default: 127.0.0.1:8080]
    #[arg(
        long,
        env = "M2M_LISTEN",
        value_name = "HOST:PORT",
        value_parser = parse_listen,
        help_heading = "Listening"
    )]
    pub listen: Option<SocketAddr>,
    /// Inactivity after which a session ends, e.g. 20m [default: 20m]
    #[arg(
        long,
        env = "M2M_SESSION_IDLE_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Sessions and lockout"
    )]
    pub session_idle_timeout: Option<String>,
    /// Consecutive failed logins that lock a user [default: 5]
    #[arg(
        long,
        env = "M2M_LOCKOUT_THRESHOLD",
        value_name = "N",
        help_heading = "Sessions and lockout"
    )]
    pub lockout_threshold: Option<u32>,
    /// How long a lock lasts, or `permanent` [default: 15m]
    #[arg(
        long,
        env = "M2M_LOCKOUT_DURATION",
        value_name = "DURATION|permanent",
        help_heading = "Sessions and lockout"
    )]
    pub lockout_duration: Option<String>,
    /// Absolute session lifetime however active, e.g. 12h [default: none]
    #[arg(
        long,
        env = "M2M_SESSION_MAX_LIFETIME",
        value_name = "DURATION",
        help_heading = "Sessions and lockout"
    )]
    pub session_max_lifetime: Option<String>,
    /// Live sessions per user; the oldest are revoked beyond it [default: no cap]
    #[arg(
        long,
        env = "M2M_MAX_SESSIONS_PER_USER",
        value_name = "N",
        help_heading = "Sessions and lockout"
    )]
    pub max_sessions_per_user: Option<u32>,
    /// After a reset, how long the replaced password is recognised and not counted
    /// towards the lock; `off` to count it [default: 24h]
    #[arg(
        long,
        env = "M2M_PREVIOUS_PASSWORD_GRACE",
        value_name = "DURATION|off",
        help_heading = "Sessions and lockout"
    )]
    pub previous_password_grace: Option<String>,
    /// Keep a separate failure count for the addresses (address) or networks (network: /24,
    /// /64) a user recently logged in from, so guesses from elsewhere cannot lock it out; or
    /// off [default: off]
    #[arg(
        long,
        env = "M2M_FAMILIAR_SOURCES",
        value_name = "MODE",
        help_heading = "Sessions and lockout"
    )]
    pub familiar_sources: Option<String>,
    /// How long after its last successful login a source stays familiar [default: 30d]
    #[arg(
        long,
        env = "M2M_FAMILIAR_SOURCE_WINDOW",
        value_name = "DURATION",
        help_heading = "Sessions and lockout"
    )]
    pub familiar_source_window: Option<String>,
    /// Failed logins per client IP per window before the IP is throttled; 0 = off [default: 100]
    #[arg(
        long,
        env = "M2M_IP_FAILURE_LIMIT",
        value_name = "N",
        help_heading = "Sessions and lockout"
    )]
    pub ip_failure_limit: Option<u32>,
    /// Window of the per-IP failure limit [default: 1h]
    #[arg(
        long,
        env = "M2M_IP_FAILURE_WINDOW",
        value_name = "DURATION",
        help_heading = "Sessions and lockout"
    )]
    pub ip_failure_window: Option<String>,
    /// Maximum database connections of this server process [default: 10]
    #[arg(
        long,
        env = "M2M_DATABASE_MAX_CONNECTIONS",
        value_name = "N",
        help_heading = "Database and configuration"
    )]
    pub database_max_connections: Option<u32>,
    /// How long a request waits for a database connection before answering 503 [default: 3s]
    #[arg(
        long,
        env = "M2M_DATABASE_ACQUIRE_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Database and configuration"
    )]
    pub database_acquire_timeout: Option<String>,
    /// A session's last use is written at most this often, capped at idle timeout / 10 [default: 60s]
    #[arg(
        long,
        env = "M2M_SESSION_TOUCH_GRANULARITY",
        value_name = "DURATION",
        help_heading = "Database and configuration"
    )]
    pub session_touch_granularity: Option<String>,
    /// Password hashes that may wait for a worker; beyond it logins get 503 [default: 16 per CPU]
    #[arg(
        long,
        env = "M2M_ARGON2_QUEUE",
        value_name = "N",
        help_heading = "Password hashing"
    )]
    pub argon2_queue: Option<usize>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key [default: HTTP]
    #[arg(
        long,
        env = "M2M_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key",
        help_heading = "Listening"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(
        long,
        env = "M2M_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "Listening"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve /metrics on this address instead of on --listen, e.g. 127.0.0.1:9100 [default: none]
    #[arg(
        long,
        env = "M2M_METRICS_LISTEN",
        value_name = "HOST:PORT",
        value_parser = parse_listen,
        help_heading = "Listening"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// After SIGTERM, how long /readyz answers 503 while requests are still served [default: 2s]
    #[arg(
        long,
        env = "M2M_SHUTDOWN_DELAY",
        value_name = "DURATION",
        help_heading = "Connections and shutdown"
    )]
    pub shutdown_delay: Option<String>,
    /// After that, how long in-flight requests may take before the server stops anyway [default: 20s]
    #[arg(
        long,
        env = "M2M_SHUTDOWN_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Connections and shutdown"
    )]
    pub shutdown_timeout: Option<String>,
    /// How long a client may take to send a request's headers, counted from its first byte (or from
    /// connecting), and to finish a TLS handshake [default: 10s]
    #[arg(
        long,
        env = "M2M_HEADER_READ_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Connections and shutdown"
    )]
    pub header_read_timeout: Option<String>,
    /// How long a client may take to send a whole request body; 408 beyond [default: 10s]
    #[arg(
        long,
        env = "M2M_BODY_READ_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Connections and shutdown"
    )]
    pub body_read_timeout: Option<String>,
    /// How long a connection may stay silent between two requests [default: 60s]
    #[arg(
        long,
        env = "M2M_KEEP_ALIVE_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Connections and shutdown"
    )]
    pub keep_alive_timeout: Option<String>,
    /// Bytes a connection may send before its headers are complete; 431 beyond (at least 8192)
    /// [default: 16384]
    #[arg(
        long,
        env = "M2M_MAX_HEADER_BYTES",
        value_name = "BYTES",
        help_heading = "Connections and shutdown"
    )]
    pub max_header_bytes: Option<usize>,
    /// Client connections served at once; 16 more may reach only /healthz and /readyz
    /// [default: 1024]
    #[arg(
        long,
        env = "M2M_MAX_CONNECTIONS",
        value_name = "N",
        help_heading = "Connections and shutdown"
    )]
    pub max_connections: Option<usize>,
    /// Proxy whose X-Forwarded-For (or, without it, Forwarded) is believed (repeatable): a
    /// network, e.g. 10.0.0.0/8, or one address, e.g. 127.0.0.1
    #[arg(
        long = "trusted-proxy",
        env = "M2M_TRUSTED_PROXY",
        value_name = "CIDR",
        value_parser = parse_proxy,
        value_delimiter = ',',
        help_heading = "Listening"
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Simulator for offline testing: any OAuth client and any user are accepted and created on
    /// first use. Loopback only. Its data lives in a temporary database deleted at exit, unless
    /// --database (or M2M_DATABASE, or the file) names one. A flag only, never read from the
    /// environment or a file, so that no deployed configuration can turn it on.
    #[arg(long, help_heading = "Simulator")]
    pub simulator: bool,
    /// Let --simulator listen on a non-loopback address
    #[arg(long, requires = "simulator", help_heading = "Simulator")]
    pub simulator_allow_remote: bool,
}

/// `user`: the command and the database it works on.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a generated password once unless --password-stdin
    Add {
        /// The username devices log in with
        username: String,
        /// Account name the user belongs to
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        /// Succeed without a change when the user exists (a note on stderr, nothing on stdout;
        /// exit 0)
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        argon2: Argon2Args,
    },
    /// Set a user's password; prints a generated one once unless --password-stdin
    ///
    /// Ends the user's sessions (they were opened with the old password). A lock stays:
    /// `user unlock` ends it.
    SetPassword {
        /// The username, as for login
        username: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        argon2: Argon2Args,
    },
    /// List users with their lock state
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show what counts against a user: failures and lock per source, and recent failures
    Lockout {
        /// The username, as for login; a name without a user is shown while failures count
        /// against it
        username: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Clear a user's failed-login counts and locks, from every source
    Unlock {
        /// The username, as for login
        username: String,
    },
    /// Delete a user and end its sessions
    Remove {
        /// The username, as for login
        username: String,
    },
}

/// `client`: the command and the database it works on.
#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an OAuth client; prints a generated secret once unless --secret-stdin
    Add {
        /// The client id, as in the client-credentials grant (printable ASCII, no spaces)
        client_id: String,
        /// Read the secret from the first line of standard input
        #[arg(long)]
        secret_stdin: bool,
        /// A scope the client may request (repeatable); none means any requested scope is echoed
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Succeed without a change when the client exists (a note on stderr, nothing on
        /// stdout; exit 0)
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        argon2: Argon2Args,
    },
    /// Give a client a new secret; prints a generated one once unless --secret-stdin
    ///
    /// Its API tokens are revoked at once (calls with them get 401 and must ask for a new
    /// token), unless --keep-tokens: then they work until they expire, within the hour.
    /// Sessions stay either way.
    RotateSecret {
        /// The client id
        client_id: String,
        /// Read the new secret from the first line of standard input
        #[arg(long)]
        secret_stdin: bool,
        /// Keep the API tokens issued with the old secret until they expire
        #[arg(long)]
        keep_tokens: bool,
        #[command(flatten)]
        argon2: Argon2Args,
    },
    /// List OAuth clients
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Delete a client with its API tokens and sessions
    Remove {
        /// The client id
        client_id: String,
    },
}

/// `session`: the command and the database it works on.
#[derive(Debug, Args)]
pub struct SessionArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: SessionCommand,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List live sessions: id, user, client, address, last use and idle deadline
    ///
    /// Never the tokens: an id and the first 8 hex digits of their SHA-256. The idle deadline
    /// is the last use plus --session-idle-timeout: give the value the servers run with.
    List {
        /// The servers' idle timeout, e.g. 20m [default: 20m, or the --config file's]
        #[arg(long, env = "M2M_SESSION_IDLE_TIMEOUT", value_name = "DURATION")]
        session_idle_timeout: Option<String>,
        /// Only this user's sessions
        #[arg(long = "user", value_name = "USERNAME")]
        username: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke all sessions of a user, or one session by id
    #[command(group(clap::ArgGroup::new("which").required(true).args(["username", "id"])))]
    Revoke {
        /// Every session of this user
        #[arg(long = "user", value_name = "USERNAME")]
        username: Option<String>,
        /// The session with this id (from `session list`)
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only entries for this username
    #[arg(long = "user", value_name = "USERNAME")]
    pub username: Option<String>,
    /// Only entries this recent, e.g. 1h, 7d
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only the newest N entries (still printed oldest first)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Keep printing new entries as they are written, until interrupted
    #[arg(long)]
    pub follow: bool,
    /// Print JSON (with --follow: one object per line)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The new file to write; it must not exist
    pub path: PathBuf,
}

/// `HOST:PORT`, with a name (`localhost:0`) resolved to its first address. The value is not
/// repeated: clap's message names it already.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let shape = "expected HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or localhost:0";
    if text.contains("://") {
        return Err(format!("no scheme here: {shape}"));
    }
    if text.starts_with(':') {
        return Err(format!(
            "no host: use 0.0.0.0{text} for every interface or 127.0.0.1{text} for this machine"
        ));
    }
    use std::net::ToSocketAddrs;
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("the name has no address; {shape}")),
        Err(e) => Err(format!("{e}; {shape}")),
    }
}

/// A trusted proxy: a network, or one address (taken as its /32 or /128).
pub fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    Err(
        "expected a network such as 10.0.0.0/8 (prefix at most /32 for IPv4, /128 for IPv6) \
         or one address such as 127.0.0.1"
            .to_owned(),
    )
}
