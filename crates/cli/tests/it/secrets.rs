//! A database password never leaves the process: not in `--help` (clap shows `env` values),
//! not in the one-line error of a command that cannot open the database, in either log format.

use std::process::Output;

use crate::binary::Env;

const PASSWORD: &str = "hunter2";
/// Nothing listens on port 1: every command fails to open this database.
const URL: &str = "postgres://admin:hunter2@127.0.0.1:1/x";

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn help_shows_no_database_url_from_the_environment() {
    let env = Env::new();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["user", "list", "--help"],
        &["config", "check", "--help"],
        &["login", "--help"],
    ] {
        let out = env
            .command()
            .env("M2M_DATABASE", URL)
            .env("M2M_URL", "http://proxyuser:hunter2@127.0.0.1:1/api")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = all_output(&out);
        assert!(!text.contains(PASSWORD), "{args:?} shows it:\n{text}");
    }
}

#[test]
fn commands_that_cannot_open_the_database_do_not_print_its_password() {
    let env = Env::new();
    let commands: [&[&str]; 7] = [
        &["serve", "--listen", "127.0.0.1:0"],
        &["user", "list"],
        &["user", "unlock", "bob"],
        &["client", "list"],
        &["session", "list"],
        &["audit"],
        &["config", "check"],
    ];
    for format in ["text", "json"] {
        for args in commands {
            // The flag's path is the same code; once per command is enough.
            let ways: &[bool] = if format == "text" {
                &[false, true]
            } else {
                &[false]
            };
            for &by_flag in ways {
                let mut cmd = env.command();
                cmd.env("M2M_LOG_FORMAT", format);
                cmd.args(args);
                if by_flag {
                    cmd.args(["--database", URL]);
                } else {
                    cmd.env("M2M_DATABASE", URL);
                }
                let out = cmd.output().unwrap();
                let text = all_output(&out);
                assert!(
                    !text.contains(PASSWORD),
                    "{format} {args:?} shows it:\n{text}"
                );
                if args[0] == "config" {
                    assert!(out.status.success(), "{text}");
                    assert!(
                        text.contains("postgres://admin:REDACTED@127.0.0.1:1/x"),
                        "{text}"
                    );
                    continue;
                }
                assert!(!out.status.success(), "{format} {args:?}: {text}");
                let stderr = String::from_utf8_lossy(&out.stderr);
                let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                let last = lines.last().copied().unwrap_or_default();
                // Still says which database: the URL without its password.
                assert!(last.contains("127.0.0.1:1"), "{format} {args:?}: {stderr}");
                if format == "json" {
                    for line in &lines {
                        let value: serde_json::Value = serde_json::from_str(line)
                            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line}"));
                        assert!(value.is_object(), "{line}");
                    }
                    let value: serde_json::Value = serde_json::from_str(last).unwrap();
                    assert_eq!(value["level"], "ERROR", "{last}");
                } else {
                    assert!(last.starts_with("error: "), "{last}");
                }
            }
        }
    }
}

#[test]
fn client_command_failures_are_one_json_line_under_json_logs() {
    let env = Env::new();
    let out = env
        .command()
        .env("M2M_LOG_FORMAT", "json")
        .env("M2M_URL", "http://127.0.0.1:9/api")
        .env("M2M_CLIENT_ID", "app")
        .env("M2M_CLIENT_SECRET", "hunter2")
        .env("M2M_USERNAME", "bob")
        .env("M2M_PASSWORD", "hunter2")
        .arg("login")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = all_output(&out);
    assert!(!text.contains(PASSWORD), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(value["level"], "ERROR", "{stderr}");
}
