//! kill -9 under load: nothing answered 200 is lost. Bounded: 10 crashes, short load bursts.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::binary::{Env, Served};

const USERS: usize = 4;
const CRASHES: usize = 10;

fn random(below: u64) -> u64 {
    RandomState::new().build_hasher().finish() % below.max(1)
}

/// What a user's client knows: only what the server acknowledged.
#[derive(Default)]
struct Known {
    password: String,
    /// Passwords replaced by a reset answered 200: must be refused from then on.
    retired: Vec<String>,
    /// Sessions ended by a logout answered 200: must stay ended.
    ended: Vec<String>,
    /// A reset sent but not answered: (session, key, old password), to retry after restart.
    pending_reset: Option<(String, String, String)>,
}

struct Api<'a> {
    http: &'a Client,
    base: &'a str,
    bearer: &'a str,
}

impl Api<'_> {
    fn login(&self, user: &str, password: &str) -> reqwest::Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}/api/m2m/v1/session/login", self.base))
            .bearer_auth(self.bearer)
            .json(&json!({"username": user, "password": password}))
            .send()?;
        Ok((r.status().as_u16(), r.json().unwrap_or_default()))
    }

    fn reset(&self, session: &str, key: &str, old: &str) -> reqwest::Result<(u16, Value)> {
        let r = self
            .http
            .put(format!(
                "{}/api/m2m/v1/session/password/actions/reset",
                self.base
            ))
            .bearer_auth(self.bearer)
            .header("VZ-M2M-Token", session)
            .header("Idempotency-Key", key)
            .json(&json!({"oldPassword": old}))
            .send()?;
        Ok((r.status().as_u16(), r.json().unwrap_or_default()))
    }

    fn logout(&self, session: &str) -> reqwest::Result<u16> {
        self.http
            .post(format!("{}/api/m2m/v1/session/logout", self.base))
            .bearer_auth(self.bearer)
            .header("VZ-M2M-Token", session)
            .send()
            .map(|r| r.status().as_u16())
    }

    fn verify(&self, session: &str) -> u16 {
        self.http
            .get(format!("{}/auth/verify", self.base))
            .bearer_auth(self.bearer)
            .header("VZ-M2M-Token", session)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }
}

/// One user's burst of traffic until the server dies or the time is up.
fn burst(api: &Api<'_>, user: &str, known: &Mutex<Known>, until: Instant) {
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let password = known.lock().unwrap().password.clone();
        let Ok((200, body)) = api.login(user, &password) else {
            return;
        };
        let session = body["sessionToken"].as_str().unwrap().to_owned();
        if random(2) == 0 {
            let key = format!("{user}-{n}-{}", random(1 << 40));
            known.lock().unwrap().pending_reset =
                Some((session.clone(), key.clone(), password.clone()));
            let Ok((status, body)) = api.reset(&session, &key, &password) else {
                return; // unanswered: stays pending
            };
            assert_eq!(status, 200, "{body}");
            let mut k = known.lock().unwrap();
            let old = std::mem::take(&mut k.password);
            k.retired.push(old);
            k.password = body["newPassword"].as_str().unwrap().to_owned();
            k.pending_reset = None;
        }
        match api.logout(&session) {
            Ok(200) => known.lock().unwrap().ended.push(session),
            Ok(other) => panic!("logout answered {other}"),
            Err(_) => return,
        }
    }
}

/// Returns whether a cut-off reset had to be retried.
fn check_invariants(api: &Api<'_>, user: &str, known: &mut Known) -> bool {
    let retried = known.pending_reset.is_some();
    // A reset cut off by the crash: retried with its key, it must now succeed, whether it had
    // been applied (the stored answer comes back) or not (it runs now).
    if let Some((session, key, old)) = known.pending_reset.take() {
        let (status, body) = api.reset(&session, &key, &old).unwrap();
        assert_eq!(status, 200, "retried reset of {user}: {body}");
        let replaced = std::mem::take(&mut known.password);
        known.retired.push(replaced);
        known.password = body["newPassword"].as_str().unwrap().to_owned();
    }
    for session in &known.ended {
        assert_eq!(
            api.verify(session),
            401,
            "a session logged out with 200 came back"
        );
    }
    for old in &known.retired {
        let (status, body) = api.login(user, old).unwrap();
        assert_eq!(
            status, 400,
            "a password replaced with 200 still works: {body}"
        );
    }
    let (status, body) = api.login(user, &known.password).unwrap();
    assert_eq!(
        status, 200,
        "the acknowledged password of {user} fails: {body}"
    );
    retried
}

fn integrity_check(path: &str) {
    let result: String = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .unwrap();
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    });
    assert_eq!(result, "ok");
}

#[test]
fn nothing_acknowledged_is_lost_across_ten_kill_9s() {
    let env = Env::new();
    let secret = env.ok(&["client", "add", "app"]);
    let users: Vec<String> = (0..USERS).map(|i| format!("user{i}")).collect();
    let known: Vec<Arc<Mutex<Known>>> = users
        .iter()
        .map(|u| {
            let password = format!("crash test password {u}");
            let out = env.run_with_stdin(&["user", "add", u, "--password-stdin"], &password);
            assert!(out.status.success());
            Arc::new(Mutex::new(Known {
                password,
                ..Known::default()
            }))
        })
        .collect();
    let http = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let serve_args = ["--lockout-threshold", "100000", "--ip-failure-limit", "0"];
    let mut acknowledged = 0;
    let mut retried_resets = 0;
    for crash in 0..=CRASHES {
        let served = Served::start(&env, &serve_args, "info");
        let r = http
            .post(served.url("/api/ts/v1/oauth2/token"))
            .basic_auth("app", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .unwrap();
        let bearer = r.json::<Value>().unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let base = served.base.clone();
        let api = Api {
            http: &http,
            base: &base,
            bearer: &bearer,
        };
        for (user, known) in users.iter().zip(&known) {
            retried_resets += usize::from(check_invariants(&api, user, &mut known.lock().unwrap()));
        }
        if crash == CRASHES {
            break;
        }
        let until = Instant::now() + Duration::from_millis(400);
        thread::scope(|s| {
            for (user, known) in users.iter().zip(&known) {
                let api = &api;
                s.spawn(move || burst(api, user, known, until));
            }
            thread::sleep(Duration::from_millis(30 + random(300)));
            served.kill9();
        });
        integrity_check(&env.database);
        acknowledged = known
            .iter()
            .map(|k| {
                let k = k.lock().unwrap();
                k.ended.len() + k.retired.len()
            })
            .sum();
    }
    println!(
        "{CRASHES} crashes: {acknowledged} acknowledged logouts and resets kept, \
         {retried_resets} cut-off resets completed by their retry"
    );
    assert!(
        acknowledged >= 20,
        "too little load to mean anything: {acknowledged}"
    );
}
