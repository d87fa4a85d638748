//! `serve` end to end: address reporting, live admin changes, SIGTERM, and logs without secrets.

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::binary::{Env, Served, login, token};

#[test]
fn empty_database_gets_a_hint_and_no_silent_data() {
    let env = Env::new();
    let served = Served::start(&env, &[], "info");
    let log = served.terminate();
    assert!(log.contains("m2m-session client add"), "{log}");
    assert!(log.contains("m2m-session user add"), "{log}");
    assert_eq!(env.ok(&["user", "list", "--json"]), "[]");
    assert_eq!(env.ok(&["client", "list", "--json"]), "[]");
}

#[test]
fn full_scenario_leaks_no_secret_into_logs_and_admin_changes_are_live() {
    let env = Env::new();
    let secret = env.ok(&["client", "add", "app"]);
    let password = env.ok(&["user", "add", "alice"]);
    // The most verbose logging there is: every layer, every crate.
    let served = Served::start(&env, &[], "trace");
    let http = Client::new();
    let bearer = token(&http, &served, "app", &secret);

    let (status, body) = login(&http, &served, &bearer, "alice", &password);
    assert_eq!(status, 200);
    let session = body["sessionToken"].as_str().unwrap().to_owned();
    let r = http
        .put(served.url("/api/m2m/v1/session/password/actions/reset"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &session)
        .json(&json!({"oldPassword": password}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_password = r.json::<Value>().unwrap()["newPassword"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http
        .post(served.url("/api/m2m/v1/session/logout"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &session)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // Lock alice, then unlock her from another process while the server runs. Five distinct
    // wrong passwords (a repeated one would count only once), all starting with `wrong`, which
    // the log check below looks for.
    let wrong = "wrong-password-attempt";
    for i in 0..5 {
        let attempt = format!("{wrong}-{i}");
        assert_eq!(login(&http, &served, &bearer, "alice", &attempt).0, 400);
    }
    let (_, body) = login(&http, &served, &bearer, "alice", &new_password);
    assert_eq!(
        body["errorCode"],
        "UnifiedWebService.REQUEST_FAILED.Login.Locked"
    );
    let listed: Value = serde_json::from_str(&env.ok(&["user", "list", "--json"])).unwrap();
    assert!(listed[0]["locked_until"].is_string(), "{listed}");
    env.ok(&["user", "unlock", "alice"]);
    let (status, body) = login(&http, &served, &bearer, "alice", &new_password);
    assert_eq!(status, 200, "{body}");
    let second_session = body["sessionToken"].as_str().unwrap().to_owned();
    // Sessions are listed without their tokens, and revoked by id at once.
    let listed: Value =
        serde_json::from_str(&env.ok(&["session", "list", "--user", "alice", "--json"])).unwrap();
    let row = &listed.as_array().unwrap()[0];
    assert_eq!(row["token_sha256_prefix"].as_str().unwrap().len(), 8);
    assert!(!listed.to_string().contains(&second_session));
    let (status, body) = login(&http, &served, &bearer, "alice", &new_password);
    assert_eq!(status, 200);
    let third_session = body["sessionToken"].as_str().unwrap().to_owned();
    let listed: Value = serde_json::from_str(&env.ok(&["session", "list", "--json"])).unwrap();
    let newest = listed.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&["session", "revoke", "--id", &newest]);
    let r = http
        .get(served.url("/auth/verify"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &third_session)
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "a revoked session is refused on the next request"
    );
    // The audit log has every attempt and never a secret.
    let audit = env.ok(&["audit", "--user", "alice", "--json"]);
    let rows: Value = serde_json::from_str(&audit).unwrap();
    let outcomes: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "login")
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| *o == "invalid_credentials")
            .count(),
        5
    );
    assert_eq!(outcomes.iter().filter(|o| *o == "locked").count(), 1);
    for secret in [&password, &new_password, &session, &second_session, &bearer] {
        assert!(!audit.contains(secret.as_str()));
    }
    // Removing the user from the CLI ends its sessions at once.
    env.ok(&["user", "remove", "alice"]);
    let r = http
        .post(served.url("/api/m2m/v1/session/logout"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &second_session)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    let log = served.terminate();
    assert!(log.contains("stopped"), "no clean shutdown in log");
    assert!(
        log.len() > 1_000,
        "trace logging produced too little to be a real check"
    );
    for (name, value) in [
        ("client secret", secret.as_str()),
        ("password", password.as_str()),
        ("new password", new_password.as_str()),
        ("wrong password", wrong),
        ("API token", bearer.as_str()),
        ("session token", session.as_str()),
        ("second session token", second_session.as_str()),
    ] {
        assert!(!log.contains(value), "{name} found in the server log");
    }
}

#[test]
fn sigterm_turns_readiness_off_first_then_stops_cleanly() {
    let env = Env::new();
    let served = Served::start(&env, &["--shutdown-delay", "1s"], "info");
    let http = Client::new();
    assert_eq!(
        http.get(served.url("/readyz")).send().unwrap().status(),
        200
    );
    served.send_term();
    let mut saw_not_ready = false;
    for _ in 0..40 {
        let ready = http.get(served.url("/readyz")).send().unwrap().status();
        if ready == 503 {
            saw_not_ready = true;
            // Still serving during the delay: only readiness changed.
            assert_eq!(
                http.get(served.url("/healthz")).send().unwrap().status(),
                200
            );
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(saw_not_ready, "/readyz never answered 503 during the drain");
    let log = served.wait_exit();
    assert!(log.contains("draining"), "{log}");
    assert!(log.contains("no longer accepting connections"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn json_logs_carry_the_request_id_of_each_request() {
    let env = Env::new();
    let served = Served::start(&env, &["--log-format", "json"], "info,tower_http=debug");
    let r = Client::new()
        .get(served.url("/healthz"))
        .header("X-Request-Id", "cli-test-42")
        .send()
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "cli-test-42");
    let log = served.terminate();
    let mut tagged = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if entry["span"]["request_id"] == "cli-test-42" {
            tagged += 1;
        }
    }
    assert!(tagged > 0, "no log line carries the request id:\n{log}");
}

#[test]
fn metrics_listen_moves_metrics_off_the_main_listener() {
    let env = Env::new();
    let served = Served::start(&env, &["--metrics-listen", "127.0.0.1:0"], "info");
    let mut addr = None;
    for _ in 0..50 {
        let log = served.log.lock().unwrap().clone();
        if let Some(pos) = log.find("metrics on ") {
            let rest = &log[pos + "metrics on ".len()..];
            addr = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let addr = addr.expect("the metrics address was never logged");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let http = Client::new();
    let r = http.get(format!("http://{addr}/metrics")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("m2m_session_lockouts_total"));
    assert_eq!(
        http.get(served.url("/metrics")).send().unwrap().status(),
        404
    );
    // The operations stay on the main listener only.
    assert_eq!(
        http.get(format!("http://{addr}/healthz"))
            .send()
            .unwrap()
            .status(),
        404
    );
    served.terminate();
}

#[test]
fn the_simulator_refuses_to_listen_beyond_loopback_unless_told() {
    let env = Env::new();
    // Refused before anything is bound: no traffic leaves loopback.
    let out = env.run(&["serve", "--simulator", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    assert!(crate::binary::stderr(&out).contains("--simulator-allow-remote"));
    let out = env.run(&["serve", "--simulator-allow-remote"]);
    assert!(
        !out.status.success(),
        "allow-remote alone must be a usage error"
    );
    // On loopback it starts, and says loudly what it is.
    let served = Served::start(&env, &["--simulator"], "info");
    let log = served.terminate();
    assert!(log.contains("SIMULATOR MODE"), "{log}");
}
