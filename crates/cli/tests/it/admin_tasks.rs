//! The admin tasks people expect (issue 16, section 3), run with the real binary against a
//! real server: set a password, rotate a client secret, see sessions and the audit log as an
//! operator needs them, back up, and the generated completions and man page.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::binary::{Env, Served, login, stderr, token};

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

/// A server with client `app` and user `alice`, and their secrets.
fn served() -> (Env, Served, String, String) {
    let env = Env::new();
    let secret = env.ok(&["client", "add", "app"]);
    let password = env.ok(&["user", "add", "alice"]);
    let served = Served::start(&env, &[], "info");
    (env, served, secret, password)
}

fn audit(env: &Env) -> Vec<Value> {
    serde_json::from_str::<Value>(&env.ok(&["audit", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn set_password_ends_the_sessions_and_is_audited() {
    let (env, served, secret, old) = served();
    let bearer = token(&http(), &served, "app", &secret);
    let (status, body) = login(&http(), &served, &bearer, "alice", &old);
    assert_eq!(status, 200, "{body}");
    let session = body["sessionToken"].as_str().unwrap().to_owned();
    // Given on stdin: nothing on stdout.
    let out = env.run_with_stdin(
        &["user", "set-password", "alice", "--password-stdin"],
        "correct horse battery staple\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("ended its 1 session(s)"),
        "{}",
        stderr(&out)
    );
    let verify = http()
        .get(served.url("/auth/verify"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &session)
        .send()
        .unwrap();
    assert_eq!(verify.status(), 401, "the old session still works");
    assert_eq!(login(&http(), &served, &bearer, "alice", &old).0, 400);
    let (status, _) = login(
        &http(),
        &served,
        &bearer,
        "alice",
        "correct horse battery staple",
    );
    assert_eq!(status, 200);
    // Generated: printed once on stdout, and it works.
    let generated = env.ok(&["user", "set-password", "alice"]);
    assert!(generated.len() >= 16, "{generated}");
    assert_eq!(login(&http(), &served, &bearer, "alice", &generated).0, 200);
    let lines = audit(&env);
    assert!(
        lines.iter().any(|l| l["event"] == "admin"
            && l["username"] == "alice"
            && l["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("password set by an administrator")),
        "{lines:?}"
    );
}

#[test]
fn rotate_secret_revokes_the_tokens_unless_told_to_keep_them() {
    let (env, served, secret, _) = served();
    let old_bearer = token(&http(), &served, "app", &secret);
    let verify = |bearer: &str| {
        http()
            .post(served.url("/api/m2m/v1/session/logout"))
            .bearer_auth(bearer)
            .header("VZ-M2M-Token", "00000000-0000-0000-0000-000000000000")
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // The token works (400: the session is unknown, not the bearer).
    assert_eq!(verify(&old_bearer), 400);
    let kept = env.ok(&["client", "rotate-secret", "app", "--keep-tokens"]);
    assert_eq!(verify(&old_bearer), 400, "--keep-tokens revoked the token");
    let new_bearer = token(&http(), &served, "app", &kept);
    // The old secret no longer gets a token.
    let refused = http()
        .post(served.url("/api/ts/v1/oauth2/token"))
        .basic_auth("app", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401);
    // Without --keep-tokens every token issued before is refused at once.
    let out = env.run(&["client", "rotate-secret", "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("its API tokens are revoked"));
    assert_eq!(verify(&new_bearer), 401);
    let lines = audit(&env);
    let rotations: Vec<_> = lines
        .iter()
        .filter_map(|l| l["detail"].as_str())
        .filter(|d| d.contains("secret rotated"))
        .collect();
    assert_eq!(
        rotations,
        [
            "client \"app\" secret rotated; its API tokens kept until they expire",
            "client \"app\" secret rotated; its API tokens revoked"
        ]
    );
}

#[test]
fn sessions_and_audit_lines_show_what_an_operator_needs() {
    let (env, served, secret, password) = served();
    let bearer = token(&http(), &served, "app", &secret);
    let (status, body) = login(&http(), &served, &bearer, "alice", &password);
    assert_eq!(status, 200, "{body}");
    let session = body["sessionToken"].as_str().unwrap().to_owned();
    let list: Value = serde_json::from_str(&env.ok(&["session", "list", "--json"])).unwrap();
    let row = &list[0];
    assert_eq!(row["client_id"], "app");
    assert_eq!(row["ip"], "127.0.0.1");
    // The idle deadline is the last use plus the idle timeout (20 minutes unless configured).
    let last = row["last_used_at"].as_str().unwrap();
    let deadline = row["idle_deadline"].as_str().unwrap();
    assert!(deadline > last, "{row}");
    let table = env.ok(&["session", "list"]);
    assert!(
        table.contains("IDLE DEADLINE") && table.contains("127.0.0.1"),
        "{table}"
    );
    // A logout with the ended token: an error line that says which, with its request id.
    for _ in 0..2 {
        http()
            .post(served.url("/api/m2m/v1/session/logout"))
            .bearer_auth(&bearer)
            .header("VZ-M2M-Token", &session)
            .header("X-Request-Id", "ops-check-1")
            .send()
            .unwrap();
    }
    let lines = audit(&env);
    let failed = lines
        .iter()
        .find(|l| l["event"] == "logout" && l["outcome"] == "error")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(failed["request_id"], "ops-check-1");
    assert_eq!(failed["detail"], "session token expired");
    let text = env.ok(&["audit", "--limit", "1"]);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("request=ops-check-1 session token expired"),
        "{text}"
    );
}

#[test]
fn audit_follow_prints_new_lines_as_they_are_written() {
    let env = Env::new();
    let mut follow = env
        .command()
        .args(["audit", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    env.ok(&["user", "add", "bob"]);
    let line = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("no line within 15 s");
    let value: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["username"], "bob", "{line}");
    assert_eq!(value["detail"], "user added", "{line}");
    // Printed once, not again at the next poll.
    env.ok(&["user", "add", "carol"]);
    let next: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(15)).unwrap()).unwrap();
    assert_eq!(next["username"], "carol", "{next}");
    let _ = follow.kill();
    let _ = follow.wait();
}

#[test]
fn a_backup_is_taken_while_the_server_runs() {
    let (env, served, secret, password) = served();
    let copy = env.dir.path().join("backup.db");
    let out = env.run(&["backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The copy is a database the commands can use, with the users.
    let users = Command::new(crate::binary::BIN)
        .env_clear()
        .args(["user", "list", "--database", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&users.stdout).contains("alice"));
    // The server went on serving, and a second backup to the same file is refused.
    let bearer = token(&http(), &served, "app", &secret);
    assert_eq!(login(&http(), &served, &bearer, "alice", &password).0, 200);
    let out = env.run(&["backup", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(8));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn completions_man_page_and_config_check_summary() {
    let env = Env::new();
    let bash = env.ok(&["completions", "bash"]);
    assert!(bash.contains("set-password") && bash.contains("rotate-secret"));
    let man = env.ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "{}",
        &man[..200]
    );
    assert!(man.contains("m2m\\-session\\-user") || man.contains("m2m-session-user"));
    let out = env.run(&["config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stderr(&out);
    assert!(
        summary.starts_with("configuration is valid: serve would listen on 127.0.0.1:8080"),
        "{summary}"
    );
}
