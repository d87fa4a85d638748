//! Running the binary under test.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_m2m-session");

/// A temp dir with a database path, and the cheapest argon2 parameters for speed.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub database: String,
}

impl Env {
    /// A new, migrated database: admin commands do not create one (only `serve` and `init` do).
    pub fn new() -> Self {
        let env = Self::without_database();
        env.ok(&["init"]);
        env
    }

    /// A database path where there is no database yet.
    pub fn without_database() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("m2m.db").display().to_string();
        Self { dir, database }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("M2M_DATABASE", &self.database)
            .env("M2M_ARGON2_MEMORY_KIB", "8")
            .env("M2M_ARGON2_ITERATIONS", "1")
            .env("M2M_SHUTDOWN_DELAY", "0s")
            .current_dir(self.dir.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        output_with_stdin(cmd, stdin)
    }

    /// Runs and expects success; returns stdout trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

/// Runs `cmd` with `stdin` as its standard input; collects its output.
pub fn output_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `serve` with its stderr captured.
pub struct Served {
    pub child: Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
}

impl Served {
    /// Two nodes started at once on `env`'s database, as a cluster is started: on an empty
    /// database they race for the migrations, whose lock must hold.
    pub fn start_two(env: &Env, extra: &[&str]) -> (Self, Self) {
        std::thread::scope(|s| {
            let a = s.spawn(|| Self::start(env, extra, "info"));
            let b = s.spawn(|| Self::start(env, extra, "info"));
            (a.join().unwrap(), b.join().unwrap())
        })
    }

    pub fn start(env: &Env, extra: &[&str], rust_log: &str) -> Self {
        let mut child = env
            .command()
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap_or_default();
                if let Some(pos) = line.find("listening on ") {
                    // Up to the end of the word: a JSON log line goes on with `",...`.
                    let rest = &line[pos + "listening on ".len()..];
                    let addr = rest.split(['"', ' ']).next().unwrap_or_default();
                    let _ = tx.send(addr.trim().to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(20)) else {
            // Never leave the process behind when the test gives up on it.
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not report its address");
        };
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        Self {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(self) -> String {
        self.send_term();
        self.wait_exit()
    }

    pub fn send_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (10 s at most) for a clean exit; returns the log.
    pub fn wait_exit(mut self) -> String {
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "server exited with {status}");
                std::thread::sleep(Duration::from_millis(100));
                return self.log.lock().unwrap().clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("server did not stop within 10 s of SIGTERM");
    }
}

impl Served {
    /// SIGKILL: no shutdown, no checkpoint, mid-request.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// An API token from a running server.
pub fn token(http: &reqwest::blocking::Client, s: &Served, id: &str, secret: &str) -> String {
    let r = http
        .post(s.url("/api/ts/v1/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<serde_json::Value>().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A login's status and body.
pub fn login(
    http: &reqwest::blocking::Client,
    s: &Served,
    bearer: &str,
    user: &str,
    pw: &str,
) -> (u16, serde_json::Value) {
    let r = http
        .post(s.url("/api/m2m/v1/session/login"))
        .bearer_auth(bearer)
        .json(&serde_json::json!({"username": user, "password": pw}))
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

/// A password reset's status and body: `old` is the password being replaced; `key`, if
/// given, is sent as the Idempotency-Key.
pub fn reset(
    http: &reqwest::blocking::Client,
    s: &Served,
    bearer: &str,
    session: &str,
    old: &str,
    key: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = http
        .put(s.url("/api/m2m/v1/session/password/actions/reset"))
        .bearer_auth(bearer)
        .header("VZ-M2M-Token", session)
        .json(&serde_json::json!({"oldPassword": old}));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let r = request.send().unwrap();
    (r.status().as_u16(), r.json().unwrap())
}
