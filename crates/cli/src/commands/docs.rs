//! `completions` and `man`: generated from the command-line definition itself, so they cannot
//! drift from it.

use clap::CommandFactory;

use crate::args::Cli;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "m2m-session", &mut script);
    super::write_stdout(format_args!("{}", String::from_utf8_lossy(&script)));
}

/// Prints the man page (roff) on stdout: the top-level page, then one section per command,
/// each with the version.
pub fn man() -> anyhow::Result<()> {
    let command = Cli::command();
    let version = command.get_version().unwrap_or_default().to_owned();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
        let name = format!("m2m-session-{}", sub.get_name());
        let sub = sub.clone().name(name).version(version.clone());
        clap_mangen::Man::new(sub).render(&mut page)?;
    }
    super::write_stdout(format_args!("{}", String::from_utf8_lossy(&page)));
    Ok(())
}
