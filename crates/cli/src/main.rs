//! `m2m-session`: runs the server and administers its users, OAuth clients and lockouts.

mod args;
mod commands;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let file = || settings::FileConfig::load(cli.config.as_deref());
    match &cli.command {
        Command::Serve(serve) => {
            let file = file()?;
            commands::init_logging("info,sqlx=warn,tower_http=info");
            commands::serve::run(settings::server_config(&cli, serve, &file)?).await?;
        }
        Command::User(cmd) => {
            let file = file()?;
            commands::init_logging("warn");
            commands::user::run(&cli, &file, cmd).await?;
        }
        Command::Client(cmd) => {
            let file = file()?;
            commands::init_logging("warn");
            commands::client::run(&cli, &file, cmd).await?;
        }
        Command::Session(cmd) => {
            let file = file()?;
            commands::init_logging("warn");
            commands::session::run(&cli, &file, cmd).await?;
        }
        Command::Audit(args) => {
            let file = file()?;
            commands::init_logging("warn");
            commands::audit::run(&cli, &file, args).await?;
        }
        // The client commands report their own errors, with exit codes of their own.
        Command::Login(args) => {
            commands::init_logging("warn");
            return Ok(commands::remote::login(args).await);
        }
        Command::Logout(args) => {
            commands::init_logging("warn");
            return Ok(commands::remote::logout(args).await);
        }
        Command::ResetPassword(args) => {
            commands::init_logging("warn");
            return Ok(commands::remote::reset_password(args).await);
        }
    }
    Ok(ExitCode::SUCCESS)
}
