//! `m2m-session`: runs the server and administers its users, OAuth clients and lockouts.

/// `println!` for the command's output: a reader that has gone away (`| head`) ends the command
/// quietly, as it ends the shell's own tools, instead of a panic; any other write failure is one
/// line and exit 1.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod args;
mod commands;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, ConfigCommand, StoreArgs};

/// mimalloc rather than glibc's malloc, which took a fifth of a PostgreSQL node's CPU under
/// session checks, much of it in `malloc_consolidate`: with it a check costs 67 µs of server
/// CPU instead of 119, a login 1 ms besides its hash instead of 4 (BENCHMARKS.md, issue 18).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            commands::print_failure(&e, log_format);
            ExitCode::from(commands::exit_code(&e))
        }
    }
}

/// The database and configuration a command works with; `None` for the client commands,
/// which are configured like the SDK and read no configuration file.
fn store_args(command: &Command) -> Option<&StoreArgs> {
    match command {
        Command::Serve(serve) => Some(&serve.store),
        Command::Config(ConfigCommand::Check(serve)) => Some(&serve.store),
        Command::Init(store) => Some(store),
        Command::User(args) => Some(&args.store),
        Command::Client(args) => Some(&args.store),
        Command::Session(args) => Some(&args.store),
        Command::Audit(args) => Some(&args.store),
        Command::Backup(args) => Some(&args.store),
        Command::Completions { .. }
        | Command::Man
        | Command::Login(_)
        | Command::Logout(_)
        | Command::ResetPassword(_) => None,
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = store_args(&cli.command).cloned().unwrap_or_default();
    let file = settings::FileConfig::load(store.config.as_deref())?;
    // `config check` refuses unknown keys instead (a typo must not pass a check).
    if !matches!(cli.command, Command::Config(_)) {
        file.warn_unknown(store.config.as_deref());
    }
    let default_filter = match cli.command {
        Command::Serve(_) => "info,sqlx=warn,tower_http=info",
        // sqlx's slow-statement warnings print SQL: noise under a command's one line.
        _ => "warn,sqlx=error",
    };
    commands::init_logging(
        default_filter,
        cli.log_format.or(file.log_format).unwrap_or_default(),
    );
    match &cli.command {
        Command::Serve(serve) => {
            commands::serve::run(settings::server_config(serve, &file)?).await?;
        }
        Command::Init(store) => commands::init(store, &file).await?,
        Command::User(args) => commands::user::run(&args.store, &file, &args.command).await?,
        Command::Client(args) => commands::client::run(&args.store, &file, &args.command).await?,
        Command::Session(args) => commands::session::run(&args.store, &file, &args.command).await?,
        Command::Audit(args) => commands::audit::run(&file, args).await?,
        Command::Backup(args) => commands::backup(args, &file).await?,
        Command::Config(ConfigCommand::Check(serve)) => {
            commands::config::check(cli.log_format, serve, &file)?
        }
        Command::Completions { shell } => commands::docs::completions(*shell),
        Command::Man => commands::docs::man()?,
        // The client commands report their own errors, with exit codes of their own.
        Command::Login(args) => return Ok(commands::remote::login(args).await),
        Command::Logout(args) => return Ok(commands::remote::logout(args).await),
        Command::ResetPassword(args) => return Ok(commands::remote::reset_password(args).await),
    }
    Ok(ExitCode::SUCCESS)
}
