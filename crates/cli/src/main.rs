//! `m2m-session`: runs the server and administers its users, OAuth clients and lockouts.

mod args;
mod commands;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, ConfigCommand};

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
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let client_command = matches!(
        cli.command,
        Command::Login(_) | Command::Logout(_) | Command::ResetPassword(_)
    );
    // The client commands read no configuration file: they are configured like the SDK.
    let file = if client_command {
        settings::FileConfig::default()
    } else {
        settings::FileConfig::load(cli.config.as_deref())?
    };
    let default_filter = match cli.command {
        Command::Serve(_) => "info,sqlx=warn,tower_http=info",
        _ => "warn",
    };
    commands::init_logging(
        default_filter,
        cli.log_format.or(file.log_format).unwrap_or_default(),
    );
    match &cli.command {
        Command::Serve(serve) => {
            commands::serve::run(settings::server_config(&cli, serve, &file)?).await?;
        }
        Command::User(cmd) => commands::user::run(&cli, &file, cmd).await?,
        Command::Client(cmd) => commands::client::run(&cli, &file, cmd).await?,
        Command::Session(cmd) => commands::session::run(&cli, &file, cmd).await?,
        Command::Audit(args) => commands::audit::run(&cli, &file, args).await?,
        Command::Config(ConfigCommand::Check(serve)) => {
            commands::config::check(&cli, serve, &file)?
        }
        // The client commands report their own errors, with exit codes of their own.
        Command::Login(args) => return Ok(commands::remote::login(args).await),
        Command::Logout(args) => return Ok(commands::remote::logout(args).await),
        Command::ResetPassword(args) => return Ok(commands::remote::reset_password(args).await),
    }
    Ok(ExitCode::SUCCESS)
}
