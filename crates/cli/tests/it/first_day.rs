//! What a newcomer trips over on the first day (issue 16, sections 1 and 2): nothing is created
//! by mistake, nothing fails silently, and every error is one line that names the cause and
//! the fix. Each test runs the real binary and asserts on its output and exit status.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::binary::{BIN, Env, Served, stderr};

/// Exit codes, as `--help` documents them.
const FAILURE: i32 = 1;
const SESSION_INVALID: i32 = 5;
const NOT_FOUND: i32 = 7;
const ALREADY_EXISTS: i32 = 8;

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one line a failed command prints, checked to be one line starting with `error: `.
fn failure_line(out: &Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

/// No fragment of the line appears twice: a cause printed again by its chain.
fn assert_said_once(line: &str, fragment: &str) {
    assert_eq!(
        line.matches(fragment).count(),
        1,
        "{fragment:?} not once: {line}"
    );
}

/// An empty directory, and the binary run there with nothing configured.
fn bare(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_clear()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

// ---- 1. Nothing is created by mistake, nothing fails silently

#[test]
fn admin_commands_never_create_a_database_and_say_where_they_looked() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["user", "list"][..],
        &["user", "add", "eve", "--database", "m2m-sesion.db"],
        &["client", "list", "--database", "sqlite://typo.db"],
        &["audit"],
    ] {
        let out = bare(dir.path(), args);
        assert_eq!(code(&out), FAILURE, "{args:?}");
        let line = failure_line(&out);
        assert!(
            line.starts_with("error: no database at /"),
            "{args:?}: {line}"
        );
        assert!(line.contains("m2m-session init"), "{line}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "created {left:?}");
    // `init` creates it, once, and says so; after that the same commands work.
    let out = bare(dir.path(), &["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("m2m-session.db").exists());
    let out = bare(dir.path(), &["user", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn provisioning_can_be_repeated_as_the_quickstart_does() {
    let env = Env::new();
    // The quickstart's provisioning, twice: the second run changes nothing it should keep,
    // and ends with a known secret and password again.
    let mut credentials = Vec::new();
    for _ in 0..2 {
        let added = env.run(&["client", "add", "demo-app", "--if-not-exists"]);
        assert!(added.status.success(), "{}", stderr(&added));
        let secret = env.ok(&["client", "rotate-secret", "demo-app"]);
        let added = env.run(&[
            "user",
            "add",
            "zaphod",
            "--account",
            "demo",
            "--if-not-exists",
        ]);
        assert!(added.status.success(), "{}", stderr(&added));
        let password = env.ok(&["user", "set-password", "zaphod"]);
        credentials.push((secret, password));
    }
    // The second `add`s printed nothing on stdout (no secret that does not work) and said so.
    let again = env.run(&["user", "add", "zaphod", "--if-not-exists"]);
    assert_eq!(stdout(&again), "");
    assert!(
        stderr(&again).contains("already exists; left unchanged"),
        "{}",
        stderr(&again)
    );
    assert_ne!(credentials[0], credentials[1]);
    // Both credentials of the last run work against a server.
    let served = Served::start(&env, &[], "info");
    let (secret, password) = &credentials[1];
    let login = Command::new(BIN)
        .env_clear()
        .env("M2M_URL", served.url("/api"))
        .env("M2M_CLIENT_ID", "demo-app")
        .env("M2M_CLIENT_SECRET", secret)
        .env("M2M_USERNAME", "zaphod")
        .env("M2M_PASSWORD", password)
        .arg("login")
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", stderr(&login));
    // Without --if-not-exists a second add is a failure of its own kind, with the way out.
    let out = env.run(&["client", "add", "demo-app"]);
    assert_eq!(code(&out), ALREADY_EXISTS);
    let line = failure_line(&out);
    assert!(line.contains("--if-not-exists"), "{line}");
    assert!(line.contains("rotate-secret"), "{line}");
    assert_eq!(stdout(&out), "");
}

#[test]
fn an_unknown_name_is_not_found_for_every_command() {
    let env = Env::new();
    env.ok(&["user", "add", "alice"]);
    env.ok(&["client", "add", "app"]);
    for args in [
        &["session", "revoke", "--user", "nobody"][..],
        &["session", "revoke", "--id", "0123456789abcdef"],
        &["user", "unlock", "nobody"],
        &["user", "remove", "nobody"],
        &["user", "set-password", "nobody"],
        &["user", "lockout", "nobody"],
        &["client", "remove", "nope"],
        &["client", "rotate-secret", "nope"],
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), NOT_FOUND, "{args:?}: {}", stderr(&out));
        let line = failure_line(&out);
        assert!(line.contains("not found"), "{args:?}: {line}");
        assert!(
            line.contains(" list` shows what there is"),
            "{args:?}: {line}"
        );
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    // A known user without sessions is not an error: there was nothing to revoke.
    let out = env.run(&["session", "revoke", "--user", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("revoked 0 session(s) of \"alice\""));
}

#[test]
fn the_simulator_leaves_the_real_database_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .env_clear()
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env("M2M_SHUTDOWN_DELAY", "0s")
        .env("NO_COLOR", "1")
        .args(["serve", "--simulator", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = read_until(&mut child, "listening on ");
    assert!(!log.contains("client add"), "a hint to add clients: {log}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the simulator wrote {left:?} in its directory"
    );
    // Its throwaway database, named in the log, is there while it runs and gone after it.
    let marker = "the simulator's data is kept in a temporary database, ";
    let start = log.find(marker).unwrap_or_else(|| panic!("{log}")) + marker.len();
    let path = std::path::PathBuf::from(log[start..].split(", deleted at exit").next().unwrap());
    assert!(path.exists(), "{}", path.display());
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!path.exists(), "left behind: {}", path.display());
    assert!(
        !path.parent().unwrap().exists(),
        "left behind: {}",
        path.display()
    );
}

/// Reads the child's stderr until a line contains `marker` (20 s at most); returns it all.
fn read_until(child: &mut std::process::Child, marker: &str) -> String {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens any more: a closed pipe would fail the
        // child's later log lines.
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        log.push_str(&line);
        log.push('\n');
        if line.contains(marker) {
            return log;
        }
    }
    let _ = child.kill();
    panic!("no {marker:?} in: {log}");
}

// ---- 2. Error messages

#[test]
fn a_taken_port_blames_the_port_once_not_the_database() {
    let env = Env::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = env.run(&["serve", "--listen", &addr]);
    assert_eq!(code(&out), FAILURE);
    let line = failure_line(&out);
    assert!(
        line.starts_with(&format!("error: cannot listen on {addr}: another process")),
        "{line}"
    );
    assert!(line.contains("--listen"), "{line}");
    assert!(!line.contains("database"), "{line}");
    assert_said_once(&line, "listen on");
    // And nothing was created for a server that never started.
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .env_clear()
        .current_dir(fresh.path())
        .args(["serve", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(code(&out), FAILURE);
    let left: Vec<_> = std::fs::read_dir(fresh.path()).unwrap().collect();
    assert!(left.is_empty(), "created {left:?}");
}

#[test]
fn a_database_that_cannot_be_opened_is_said_once_with_the_fix() {
    let env = Env::new();
    // A missing directory.
    let out = env.run(&["serve", "--database", "/nonexistent-dir/sub/m2m.db"]);
    assert_eq!(code(&out), FAILURE);
    let line = failure_line(&out);
    assert!(
        line.contains("/nonexistent-dir/sub does not exist; create the directory"),
        "{line}"
    );
    // A directory where the file should be.
    let dir = env.dir.path().display().to_string();
    let out = env.run(&["serve", "--database", &dir]);
    assert_eq!(code(&out), FAILURE);
    let line = failure_line(&out);
    assert!(
        line.starts_with(&format!(
            "error: {dir} is a directory; name a file in it, e.g. {dir}/"
        )),
        "{line}"
    );
    // A file SQLite cannot open (not a database, here one it may not create beside): its
    // code 14, once, in words, naming the file.
    let blocked = env.dir.path().join("blocked");
    std::fs::write(&blocked, b"").unwrap();
    let inside = blocked.join("m2m.db").display().to_string();
    let out = env.run(&["serve", "--database", &inside]);
    let line = failure_line(&out);
    assert!(line.contains("is not a directory"), "{line}");
    // A place nobody may create a file (even root: /proc): SQLite's code 14, once, in words,
    // naming the file.
    let out = env.run(&["serve", "--database", "/proc/m2m.db"]);
    assert_eq!(code(&out), FAILURE);
    let line = failure_line(&out);
    assert!(
        line.starts_with("error: cannot open the database /proc/m2m.db: SQLite refuses it"),
        "{line}"
    );
    assert!(line.contains("it must be a database file"), "{line}");
    assert!(!line.contains("store failure"), "{line}");
    assert_said_once(&line, "code 14");
    // Another kind of database: refused, not taken for a file name.
    let out = env.run(&["user", "list", "--database", "mysql://root@127.0.0.1/test"]);
    assert_eq!(code(&out), FAILURE);
    let line = failure_line(&out);
    assert!(
        line.contains("mysql:// databases are not supported; use sqlite://"),
        "{line}"
    );
    assert!(line.contains("postgres://"), "{line}");
    assert!(!env.dir.path().join("mysql:").exists());
}

#[test]
fn listen_takes_a_host_name() {
    let env = Env::new();
    let mut child = env
        .command()
        .env("RUST_LOG", "info")
        .args(["serve", "--listen", "localhost:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = read_until(&mut child, "listening on ");
    assert!(
        log.contains("listening on 127.0.0.1:") || log.contains("listening on [::1]:"),
        "{log}"
    );
    let _ = child.kill();
    let _ = child.wait();
    // A shape it cannot take is a usage error that shows the expected shape.
    let out = env.run(&["serve", "--listen", "localhost"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("expected HOST:PORT"),
        "{}",
        stderr(&out)
    );
}

/// A server with a client and a user, and the client commands pointed at it.
struct Remote {
    _served: Served,
    env: Env,
    vars: Vec<(&'static str, String)>,
}

impl Remote {
    fn start() -> Self {
        let env = Env::new();
        let secret = env.ok(&["client", "add", "app"]);
        let password = env.ok(&["user", "add", "alice"]);
        let served = Served::start(&env, &[], "info");
        let vars = vec![
            ("M2M_URL", served.url("/api")),
            ("M2M_CLIENT_ID", "app".to_owned()),
            ("M2M_CLIENT_SECRET", secret),
            ("M2M_USERNAME", "alice".to_owned()),
            ("M2M_PASSWORD", password),
        ];
        Self {
            _served: served,
            env,
            vars,
        }
    }

    fn run(&self, args: &[&str], vars: &[(&'static str, String)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.env_clear().current_dir(self.env.dir.path());
        for (k, v) in self.vars.iter().chain(vars) {
            cmd.env(k, v);
        }
        cmd.args(args).output().unwrap()
    }

    fn url(&self) -> &str {
        &self.vars[0].1
    }
}

#[test]
fn a_refused_connection_is_named() {
    let remote = Remote::start();
    let url = format!("http://{}/api", closed_port());
    let out = remote.run(&["login"], &[("M2M_URL", url.clone())]);
    assert_eq!(code(&out), FAILURE);
    let line = failure_line(&out);
    assert!(
        line.starts_with(&format!(
            "error: cannot connect to {url}/ts/v1/oauth2/token: "
        )),
        "{line}"
    );
    assert!(line.to_lowercase().contains("connection refused"), "{line}");
    assert!(line.ends_with("check that the server runs and that --url (M2M_URL) points to it"));
}

/// A loopback address where nothing listens: a port just given up by the system.
fn closed_port() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_base_url_without_api_shows_the_answer_and_the_fix() {
    let remote = Remote::start();
    let without_api = remote.url().trim_end_matches("/api").to_owned();
    let out = remote.run(&["login"], &[("M2M_URL", without_api)]);
    assert_eq!(code(&out), FAILURE);
    let line = failure_line(&out);
    assert!(line.contains("404 Not Found"), "{line}");
    // The server's own JSON body, not "no error body".
    assert!(line.contains("NotFound"), "{line}");
    assert!(!line.contains("no error body"), "{line}");
    assert!(line.contains("ends in /api"), "{line}");
}

#[test]
fn session_errors_name_their_code_once_and_exit_alike() {
    let remote = Remote::start();
    let login = remote.run(&["login"], &[]);
    assert!(login.status.success(), "{}", stderr(&login));
    let token = stdout(&login).trim().to_owned();
    let ended = remote.run(&["logout"], &[("M2M_SESSION_TOKEN", token.clone())]);
    assert!(ended.status.success(), "{}", stderr(&ended));
    // The same token again: expired, code once.
    let out = remote.run(&["logout"], &[("M2M_SESSION_TOKEN", token)]);
    assert_eq!(code(&out), SESSION_INVALID);
    let line = failure_line(&out);
    assert!(line.starts_with("error: UnifiedWebService.REQUEST_FAILED.SessionToken.Expired: "));
    assert_said_once(&line, "SessionToken.Expired");
    assert!(line.contains("request id "), "{line}");
    // A malformed token exits like an expired one, as --help says.
    let out = remote.run(&["logout"], &[("M2M_SESSION_TOKEN", "not-a-token".into())]);
    assert_eq!(code(&out), SESSION_INVALID, "{}", stderr(&out));
    let line = failure_line(&out);
    assert_said_once(&line, "SessionToken.Invalid");
    assert!(
        line.contains("M2M_SESSION_TOKEN (or --token-stdin) must be a token"),
        "{line}"
    );
}

#[test]
fn help_documents_every_exit_code_and_hides_server_flags_from_client_commands() {
    let top = Command::new(BIN).arg("--help").output().unwrap();
    let top = stdout(&top);
    for documented in [
        "3 invalid credentials",
        "5 session expired, unknown or malformed",
        "7 not found",
        "8 already exists",
    ] {
        assert!(top.contains(documented), "{documented}: {top}");
    }
    for client in ["login", "logout", "reset-password"] {
        let help = Command::new(BIN).args([client, "--help"]).output().unwrap();
        let help = stdout(&help);
        assert!(help.contains("Exit codes"), "{client}: {help}");
        for server_flag in ["--database", "--argon2", "--config"] {
            assert!(
                !help.contains(server_flag),
                "{client} shows {server_flag}: {help}"
            );
        }
    }
    let version = Command::new(BIN).arg("--version").output().unwrap();
    let version = stdout(&version);
    assert!(version.starts_with("m2m-session 0."), "{version}");
    assert!(version.contains("(commit "), "{version}");
}

// ---- Found by a stranger's walk through the CLI

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    // `| head`: the pipe closes while the command still writes.
    let mut child = Command::new(BIN)
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert_eq!(stderr(&out), "", "no panic, no message");
}

#[test]
fn settings_a_command_would_ignore_or_misread_are_refused_plainly() {
    let env = Env::new();
    // The hash cost belongs to the commands that hash.
    let out = env.run(&["user", "list", "--argon2-memory-kib", "0"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = env.run(&["user", "add", "zed", "--argon2-memory-kib", "7"]);
    let line = failure_line(&out);
    assert!(line.contains("invalid --argon2-* settings"), "{line}");
    assert!(
        line.contains("the least is --argon2-memory-kib 8 per lane"),
        "{line}"
    );
    // An empty database names where it came from.
    let out = env.run(&["user", "list", "--database", ""]);
    assert_eq!(code(&out), FAILURE);
    assert!(
        failure_line(&out).contains("the database is empty"),
        "{}",
        stderr(&out)
    );
    // /metrics on the API's own address.
    let out = env.run(&[
        "config",
        "check",
        "--listen",
        "127.0.0.1:8080",
        "--metrics-listen",
        "127.0.0.1:8080",
    ]);
    assert_eq!(code(&out), FAILURE);
    assert!(failure_line(&out).contains("--metrics-listen 127.0.0.1:8080 is the --listen address"));
    // A duration in words, without the parser's jargon.
    let out = env.run(&["config", "check", "--lockout-duration", "forever"]);
    let line = failure_line(&out);
    assert!(
        line.ends_with("\"forever\" is not a duration; use e.g. 20m, 90s or 1h, or permanent"),
        "{line}"
    );
    // A file that is not a database.
    let not_db = env.dir.path().join("notes.txt");
    std::fs::write(
        &not_db,
        "not a database, but long enough to have a header of sorts\n".repeat(20),
    )
    .unwrap();
    let out = env.run(&["user", "list", "--database", not_db.to_str().unwrap()]);
    let line = failure_line(&out);
    assert!(
        line.contains("is not an SQLite database (code 26)"),
        "{line}"
    );
    assert!(line.contains("notes.txt"), "{line}");
    // A backup into a missing directory names the backup.
    let out = env.run(&["backup", "/nonexistent-dir/b.db"]);
    let line = failure_line(&out);
    assert!(line.contains("/nonexistent-dir does not exist"), "{line}");
}

#[test]
fn audit_follow_with_a_limit_prints_the_limit_then_only_new_lines() {
    let env = Env::new();
    for name in ["u1", "u2", "u3"] {
        env.ok(&["user", "add", name]);
    }
    let mut follow = env
        .command()
        .args(["audit", "--follow", "--json", "--limit", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert!(first.contains("\"u3\""), "{first}");
    env.ok(&["user", "add", "u4"]);
    let next = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert!(
        next.contains("\"u4\""),
        "the next line is the new one, not u1 or u2: {next}"
    );
    let _ = follow.kill();
    let _ = follow.wait();
}

#[test]
fn a_wrong_current_password_in_a_reset_is_invalid_credentials() {
    let remote = Remote::start();
    let login = remote.run(&["login"], &[]);
    let token = stdout(&login).trim().to_owned();
    let out = remote.run(
        &["reset-password"],
        &[
            ("M2M_SESSION_TOKEN", token),
            ("M2M_PASSWORD", "not the password".into()),
        ],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let out = remote.run(&["login"], &[("M2M_URL", "127.0.0.1:8080/api".into())]);
    assert_eq!(code(&out), FAILURE);
    assert!(failure_line(&out).contains("needs its scheme, e.g. http://"));
}
