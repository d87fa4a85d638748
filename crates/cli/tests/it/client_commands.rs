//! `login`, `logout` and `reset-password` against a real server: stdout carries the result and
//! nothing else, errors go to stderr with the error code, and exit codes tell failures apart.

use std::process::{Command, Output};

use crate::binary::{BIN, Env, Served, output_with_stdin};

/// The server, a client and a user, and how the client commands reach them.
struct Setup {
    env: Env,
    served: Served,
    secret: String,
    password: String,
}

impl Setup {
    fn new() -> Self {
        let env = Env::new();
        let secret = env.ok(&["client", "add", "app"]);
        let password = env.ok(&["user", "add", "alice"]);
        let served = Served::start(&env, &[], "info");
        Self {
            env,
            served,
            secret,
            password,
        }
    }

    /// A client command with only the variables a user would set.
    fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .current_dir(self.env.dir.path())
            .env("M2M_URL", self.served.url("/api"))
            .env("M2M_CLIENT_ID", "app")
            .env("M2M_CLIENT_SECRET", &self.secret)
            .env("M2M_USERNAME", "alice")
            .args(args);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        self.command(args, vars).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], vars: &[(&str, &str)], stdin: &str) -> Output {
        output_with_stdin(self.command(args, vars), stdin)
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code and stderr, for failures that must print nothing on stdout.
fn failure(out: &Output) -> (i32, String) {
    assert!(stdout(out).is_empty(), "stdout: {}", stdout(out));
    (out.status.code().unwrap(), stderr(out))
}

/// Stdout of a success: exactly one line.
fn one_line(out: &Output) -> String {
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(out));
    let text = stdout(out);
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{text:?}"
    );
    text.trim_end().to_owned()
}

fn is_guid(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[test]
fn login_then_logout_then_the_token_is_refused() {
    let s = Setup::new();
    let token = one_line(&s.run(&["login"], &[("M2M_PASSWORD", &s.password)]));
    assert!(is_guid(&token), "{token}");

    let out = s.run(&["logout"], &[("M2M_SESSION_TOKEN", &token)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    let (code, err) = failure(&s.run(&["logout"], &[("M2M_SESSION_TOKEN", &token)]));
    assert_eq!(code, 5);
    assert!(
        err.contains("UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"),
        "{err}"
    );

    // Secrets may come from stdin instead.
    let token = one_line(&s.run_with_stdin(
        &["login", "--password-stdin"],
        &[],
        &format!("{}\n", s.password),
    ));
    let out = s.run_with_stdin(&["logout", "--token-stdin"], &[], &format!("{token}\n"));
    assert!(out.status.success(), "{}", stderr(&out));

    // Or from files named by NAME_FILE (container secrets).
    let password_file = s.env.dir.path().join("password");
    std::fs::write(&password_file, format!("{}\n", s.password)).unwrap();
    let token = one_line(&s.run(
        &["login"],
        &[("M2M_PASSWORD_FILE", password_file.to_str().unwrap())],
    ));
    let token_file = s.env.dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let out = s.run(
        &["logout"],
        &[("M2M_SESSION_TOKEN_FILE", token_file.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn wrong_password_then_lock_have_their_own_exit_codes() {
    let s = Setup::new();
    // Five distinct wrong passwords: a repeated one would count only once.
    for i in 0..5 {
        let wrong = format!("not-the-password-{i}");
        let (code, err) = failure(&s.run(&["login"], &[("M2M_PASSWORD", &wrong)]));
        assert_eq!(code, 3);
        assert!(
            err.contains("UnifiedWebService.REQUEST_FAILED.Login.InvalidCredentials"),
            "{err}"
        );
        assert!(!err.contains("not-the-password"), "{err}");
    }
    let (code, err) = failure(&s.run(&["login"], &[("M2M_PASSWORD", &s.password)]));
    assert_eq!(code, 4);
    assert!(
        err.contains("UnifiedWebService.REQUEST_FAILED.Login.Locked"),
        "{err}"
    );
}

#[test]
fn reset_password_prints_only_the_new_password_which_then_works() {
    let s = Setup::new();
    // Without a session: the command logs in, resets and ends its own session.
    let new = one_line(&s.run(&["reset-password"], &[("M2M_PASSWORD", &s.password)]));
    assert_ne!(new, s.password);
    let (code, _) = failure(&s.run(&["login"], &[("M2M_PASSWORD", &s.password)]));
    assert_eq!(code, 3);
    let token = one_line(&s.run(&["login"], &[("M2M_PASSWORD", &new)]));

    // With a session: it is kept, and the old password goes on stdin.
    let newer = one_line(&s.run_with_stdin(
        &["reset-password", "--password-stdin"],
        &[("M2M_SESSION_TOKEN", &token)],
        &format!("{new}\n"),
    ));
    assert_ne!(newer, new);
    let out = s.run(&["logout"], &[("M2M_SESSION_TOKEN", &token)]);
    assert!(out.status.success(), "{}", stderr(&out));
    one_line(&s.run(&["login"], &[("M2M_PASSWORD", &newer)]));
}

#[test]
fn bad_client_secret_missing_settings_and_no_server_fail_clearly() {
    let s = Setup::new();
    let (code, err) = failure(&s.run(
        &["login"],
        &[
            ("M2M_PASSWORD", &s.password),
            ("M2M_CLIENT_SECRET", "wrong-secret-0123456789"),
        ],
    ));
    assert_eq!(code, 3, "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");

    let out = s
        .command(&["login"], &[])
        .env_remove("M2M_CLIENT_SECRET")
        .env("M2M_PASSWORD", &s.password)
        .output()
        .unwrap();
    let (code, err) = failure(&out);
    assert_eq!(code, 1);
    assert!(err.contains("M2M_CLIENT_SECRET"), "{err}");

    let (code, err) = failure(&s.run(&["login"], &[]));
    assert_eq!(code, 1);
    assert!(err.contains("M2M_PASSWORD"), "{err}");

    let (code, err) = failure(&s.run(
        &["login"],
        &[
            ("M2M_PASSWORD", &s.password),
            ("M2M_URL", "http://127.0.0.1:9/api"),
        ],
    ));
    assert_eq!(code, 1);
    assert!(err.starts_with("error: "), "{err}");
}
