//! Command-line surface. Every flag is optional here so that the merge in `settings.rs` can tell
//! "not given" from "given the default": flag > `M2M_*` environment > config file > default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "m2m-session",
    version,
    about = "ThingSpace-compatible M2M session server and its administration"
)]
pub struct Cli {
    /// Database URL: sqlite://PATH, sqlite:PATH or a plain file path [default: sqlite://m2m-session.db]
    #[arg(long, global = true, env = "M2M_DATABASE", value_name = "URL")]
    pub database: Option<String>,

    /// TOML configuration file (keys as the long flags, with underscores)
    #[arg(long, global = true, env = "M2M_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub argon2: Argon2Args,

    #[command(subcommand)]
    pub command: Command,
}

/// Hash cost; global because `user add` and `client add` hash too and must match the server.
#[derive(Debug, Clone, Default, Args)]
pub struct Argon2Args {
    /// argon2id memory in KiB [default: 19456]
    #[arg(long, global = true, env = "M2M_ARGON2_MEMORY_KIB", value_name = "N")]
    pub argon2_memory_kib: Option<u32>,
    /// argon2id iterations [default: 2]
    #[arg(long, global = true, env = "M2M_ARGON2_ITERATIONS", value_name = "N")]
    pub argon2_iterations: Option<u32>,
    /// argon2id lanes [default: 1]
    #[arg(long, global = true, env = "M2M_ARGON2_PARALLELISM", value_name = "N")]
    pub argon2_parallelism: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the session server
    Serve(ServeArgs),
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one [default: 127.0.0.1:8080]
    #[arg(long, env = "M2M_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Inactivity after which a session ends, e.g. 20m [default: 20m]
    #[arg(long, env = "M2M_SESSION_IDLE_TIMEOUT", value_name = "DURATION")]
    pub session_idle_timeout: Option<String>,
    /// Consecutive failed logins that lock a user [default: 5]
    #[arg(long, env = "M2M_LOCKOUT_THRESHOLD", value_name = "N")]
    pub lockout_threshold: Option<u32>,
    /// How long a lock lasts, or `permanent` [default: 15m]
    #[arg(long, env = "M2M_LOCKOUT_DURATION", value_name = "DURATION|permanent")]
    pub lockout_duration: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a generated password once unless --password-stdin
    Add {
        username: String,
        /// Account name the user belongs to
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their lock state
    List {
        #[arg(long)]
        json: bool,
    },
    /// Clear a user's failed-login count and lock
    Unlock { username: String },
    /// Delete a user and end its sessions
    Remove { username: String },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an OAuth client; prints a generated secret once unless --secret-stdin
    Add {
        client_id: String,
        /// Read the secret from the first line of standard input
        #[arg(long)]
        secret_stdin: bool,
        /// A scope the client may request (repeatable); none means any requested scope is echoed
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
    },
    /// List OAuth clients
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a client with its API tokens and sessions
    Remove { client_id: String },
}
