//! `user` and `client` commands against a real SQLite file.

use reqwest::blocking::Client;
use serde_json::Value;

use crate::binary::{Env, Served, login, stderr, token};

#[test]
fn client_add_generates_a_secret_once_and_refuses_duplicates() {
    let env = Env::new();
    let secret = env.ok(&["client", "add", "app"]);
    assert_eq!(secret.len(), 32);
    assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()));
    let out = env.run(&["client", "add", "app"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    let out = env.run_with_stdin(
        &[
            "client",
            "add",
            "second",
            "--secret-stdin",
            "--scope",
            "read",
        ],
        "my-secret\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let list: Value = serde_json::from_str(&env.ok(&["client", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["client_id"], "second");
    assert_eq!(list[1]["scopes"][0], "read");
    assert!(!env.ok(&["client", "list"]).contains("my-secret"));
    env.ok(&["client", "remove", "second"]);
    assert!(!env.run(&["client", "remove", "second"]).status.success());
}

#[test]
fn user_lifecycle() {
    let env = Env::new();
    let generated = env.ok(&["user", "add", "bob"]);
    assert_eq!(generated.len(), 22);
    let out = env.run_with_stdin(
        &[
            "user",
            "add",
            "alice",
            "--account",
            "acme",
            "--password-stdin",
        ],
        "a-long-password\r\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "a given password is never echoed");
    let list: Value = serde_json::from_str(&env.ok(&["user", "list", "--json"])).unwrap();
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(list[0]["account"], "acme");
    assert_eq!(list[0]["locked_until"], Value::Null);
    let table = env.ok(&["user", "list"]);
    assert!(table.contains("alice") && table.contains("acme") && table.contains("active"));
    env.ok(&["user", "unlock", "alice"]);
    env.ok(&["user", "remove", "bob"]);
    for args in [
        &["user", "remove", "bob"][..],
        &["user", "unlock", "nobody"],
        &["user", "add", "alice"],
        &["user", "add", "o'brien"],
    ] {
        let out = env.run(args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(
            stderr(&out).trim().lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = env.run_with_stdin(&["user", "add", "carol", "--password-stdin"], "short\n");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("at least 8"));
    let out = env.run_with_stdin(&["user", "add", "carol", "--password-stdin"], "");
    assert!(!out.status.success());
}

#[test]
fn user_add_refuses_look_alike_names() {
    let env = Env::new();
    env.ok(&["user", "add", "alice"]);
    env.ok(&["user", "add", "caf\u{e9}"]);
    for name in [
        "Alice",
        "ALICE",
        "\u{430}lice",   // Cyrillic a
        "\u{ff41}lice",  // fullwidth a
        "ali\u{200b}ce", // zero-width space
        "alice ",
        " alice",
        "cafe\u{301}", // "café" in NFD
        "CAF\u{c9}",
    ] {
        let out = env.run(&["user", "add", name]);
        assert!(!out.status.success(), "{name:?} was accepted");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{name:?}: {err}");
        assert!(
            err.contains("username") || err.contains("already exists"),
            "{name:?}: {err}"
        );
    }
    let list: Value = serde_json::from_str(&env.ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    // Commands naming a user find it in either Unicode spelling.
    env.ok(&["user", "unlock", "cafe\u{301}"]);
    env.ok(&["user", "remove", "cafe\u{301}"]);
    let list: Value = serde_json::from_str(&env.ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn an_unusable_database_is_one_clear_line_and_a_failure() {
    let env = Env::new();
    let out = env
        .command()
        .args(["user", "list", "--database", "/nonexistent-dir/sub/m2m.db"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Names the path it looked for and how to get a database there, and creates nothing.
    assert!(
        err.starts_with("error: no database at /nonexistent-dir/sub/m2m.db: "),
        "{err}"
    );
    assert!(err.contains("m2m-session init"), "{err}");
}

#[test]
fn flags_beat_environment_and_config_file() {
    let env = Env::new();
    let file = env.dir.path().join("m2m.toml");
    let from_file = env.dir.path().join("from-file.db").display().to_string();
    std::fs::write(&file, format!("database = \"{from_file}\"\n")).unwrap();
    // Env (M2M_DATABASE set by Env) beats the file.
    env.ok(&["user", "add", "x1", "--config", file.to_str().unwrap()]);
    assert!(!std::path::Path::new(&from_file).exists());
    // Without the env, the file applies (`init` creates the database it names).
    for args in [&["init"][..], &["user", "add", "x2"]] {
        let out = env
            .command()
            .env_remove("M2M_DATABASE")
            .args(args)
            .args(["--config", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert!(std::path::Path::new(&from_file).exists());
    // An unknown key is a warning; a value of the wrong type is a clear error.
    std::fs::write(&file, "no_such_key = 1\n").unwrap();
    let out = env.run(&["user", "list", "--config", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown key \"no_such_key\" ignored"));
    std::fs::write(&file, "lockout_threshold = \"five\"\n").unwrap();
    let out = env.run(&["user", "list", "--config", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid config file"));
}

#[test]
fn password_policy_refuses_common_and_warns_on_short() {
    let env = Env::new();
    let out = env.run_with_stdin(&["user", "add", "u1", "--password-stdin"], "Password1\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("most common passwords"),
        "{}",
        stderr(&out)
    );
    let out = env.run_with_stdin(&["user", "add", "u2", "--password-stdin"], "Zq8!vLm2#t\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: password has fewer than 15"),
        "{}",
        stderr(&out)
    );
    let out = env.run_with_stdin(&["user", "add", "u3", "--password-stdin"], &"x".repeat(129));
    assert!(!out.status.success());
}

#[test]
fn session_and_audit_commands() {
    let env = Env::new();
    assert_eq!(env.ok(&["session", "list", "--json"]), "[]");
    let out = env.run(&["session", "revoke"]);
    assert!(!out.status.success(), "revoke needs --user or --id");
    let out = env.run(&["session", "revoke", "--id", "nope"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"));
    env.ok(&["user", "add", "alice"]);
    env.ok(&["user", "unlock", "alice"]);
    let audit: Value = serde_json::from_str(&env.ok(&["audit", "--json"])).unwrap();
    let rows = audit.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["event"], "admin");
    assert_eq!(rows[1]["event"], "unlock");
    for row in rows {
        assert_eq!(row["outcome"], "success");
        assert_eq!(row["username"], "alice");
        assert!(row["time"].as_str().unwrap().ends_with('Z'));
        for key in ["client_id", "ip", "detail"] {
            assert!(row.get(key).is_some(), "{key} missing");
        }
    }
    let filtered: Value =
        serde_json::from_str(&env.ok(&["audit", "--user", "bob", "--since", "1h", "--json"]))
            .unwrap();
    assert_eq!(filtered, serde_json::json!([]));
    assert!(env.ok(&["audit"]).contains("unlock"));
    assert!(!env.run(&["audit", "--since", "yesterday"]).status.success());
}

#[test]
fn config_check_prints_the_effective_configuration_and_the_example_is_the_defaults() {
    let env = Env::new();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../m2m-session.example.toml"
    );
    let defaults = env.run(&["config", "check"]);
    assert!(defaults.status.success(), "{}", stderr(&defaults));
    let from_example = env.run(&["config", "check", "--config", example]);
    assert!(from_example.status.success(), "{}", stderr(&from_example));
    assert_eq!(
        String::from_utf8_lossy(&from_example.stdout),
        String::from_utf8_lossy(&defaults.stdout)
    );
    assert!(
        !stderr(&from_example).contains("warning"),
        "{}",
        stderr(&from_example)
    );

    // A key `serve` would only warn about fails the check, with the key it is near.
    let file = env.dir.path().join("m2m.toml");
    std::fs::write(&file, "lockout_treshold = 3\n").unwrap();
    let out = env.run(&["config", "check", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("unknown key \"lockout_treshold\"; did you mean \"lockout_threshold\"?"),
        "{err}"
    );
    // Flags and the file meet as in `serve`; secrets are redacted.
    std::fs::write(&file, "lockout_threshold = 3\n").unwrap();
    let secret_file = env.dir.path().join("database-url");
    std::fs::write(&secret_file, "postgres://m2m:s3cret-pw@db:5432/m2m\n").unwrap();
    let out = env
        .command()
        .env_remove("M2M_DATABASE")
        .env("M2M_DATABASE_FILE", &secret_file)
        .args(["config", "check", "--config", file.to_str().unwrap()])
        .args(["--session-idle-timeout", "5m"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(printed.contains("lockout_threshold = 3\n"), "{printed}");
    assert!(
        printed.contains("session_idle_timeout = \"5m\"\n"),
        "{printed}"
    );
    assert!(
        printed.contains("database = \"postgres://m2m:REDACTED@db:5432/m2m\""),
        "{printed}"
    );
    assert!(!printed.contains("s3cret-pw"));

    // A wrong value is an error naming it.
    std::fs::write(&file, "lockout_duration = \"soon\"\n").unwrap();
    let out = env.run(&["config", "check", "--config", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("lockout duration"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn user_lockout_shows_counts_per_source_and_recent_failures() {
    let env = Env::new();
    let secret = env.ok(&["client", "add", "app"]);
    env.ok(&["user", "add", "alice"]);
    let served = Served::start(&env, &[], "info");
    let http = Client::new();
    let bearer = token(&http, &served, "app", &secret);
    for wrong in ["first-wrong-password", "second-wrong-password"] {
        assert_eq!(login(&http, &served, &bearer, "alice", wrong).0, 400);
    }

    let text = env.ok(&["user", "lockout", "alice"]);
    let shared: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("shared"))
        .unwrap_or_else(|| panic!("no shared source in:\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(shared, ["shared", "2", "not", "locked"], "{text}");
    let failures = text
        .lines()
        .filter(|l| l.contains("login") && l.contains("invalid_credentials"))
        .count();
    assert_eq!(failures, 2, "{text}");

    let json: Value = serde_json::from_str(&env.ok(&["user", "lockout", "alice", "--json"]))
        .unwrap_or_else(|e| panic!("user lockout --json: {e}"));
    assert_eq!(json["username"], "alice");
    assert_eq!(
        json["buckets"],
        serde_json::json!([{"source": "shared", "failed_attempts": 2, "locked_until": null}])
    );
    let recent = json["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2, "{json:#}");
    for r in recent {
        assert_eq!(r["event"], "login");
        assert_eq!(r["outcome"], "invalid_credentials");
        assert_eq!(r["ip"], "127.0.0.1");
    }

    let out = env.run(&["user", "lockout", "nobody-at-all"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not found"), "{err}");
}
