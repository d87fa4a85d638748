//! `completions` and `man`: generated from the command-line definition itself, so they cannot
//! drift from it.

use clap::CommandFactory;

use crate::args::Cli;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "m2m-session", &mut std::io::stdout());
}

/// Prints the man page (roff) on stdout: the top-level page, then one section per command.
pub fn man() -> anyhow::Result<()> {
    let command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
        let name = format!("m2m-session-{}", sub.get_name());
        clap_mangen::Man::new(sub.clone().name(name)).render(&mut out)?;
    }
    Ok(())
}
