//! Two real server processes on one PostgreSQL database, behind no balancer: every rule that
//! must hold across nodes, checked by talking to both.

use std::thread;

use m2m_session_testkit::PgTestDatabase;
use reqwest::blocking::Client;
use serde_json::Value;

use crate::binary::{Env, Served};

pub(crate) struct Cluster {
    pub(crate) env: Env,
    pub(crate) a: Served,
    pub(crate) b: Served,
    pub(crate) http: Client,
    _db: PgTestDatabase,
}

fn cluster() -> (Cluster, String, String) {
    cluster_with(&[])
}

/// Two nodes started with `extra` flags, with a client `app` and a user `alice`: answers the
/// cluster, the client's secret and alice's password.
pub(crate) fn cluster_with(extra: &[&str]) -> (Cluster, String, String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(PgTestDatabase::create());
    let mut env = Env::new();
    env.database = db.url().to_owned();
    // Both nodes start together on an empty database: the migration lock must hold.
    let (a, b) = Served::start_two(&env, extra);
    let secret = env.ok(&["client", "add", "app"]);
    let password = env.ok(&["user", "add", "alice"]);
    let cluster = Cluster {
        env,
        a,
        b,
        http: Client::new(),
        _db: db,
    };
    (cluster, secret, password)
}

impl Cluster {
    fn token(&self, node: &Served, secret: &str) -> String {
        crate::binary::token(&self.http, node, "app", secret)
    }

    fn login(&self, node: &Served, bearer: &str, password: &str) -> (u16, Value) {
        crate::binary::login(&self.http, node, bearer, "alice", password)
    }

    fn verify(&self, node: &Served, bearer: &str, session: &str) -> u16 {
        self.http
            .get(node.url("/auth/verify"))
            .bearer_auth(bearer)
            .header("VZ-M2M-Token", session)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    fn logout(&self, node: &Served, bearer: &str, session: &str) -> u16 {
        self.http
            .post(node.url("/api/m2m/v1/session/logout"))
            .bearer_auth(bearer)
            .header("VZ-M2M-Token", session)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }
}

#[test]
fn sessions_tokens_and_revocations_are_shared_by_every_node() {
    let (c, secret, password) = cluster();
    // Same client asking both nodes at once: one token.
    let (ta, tb) = thread::scope(|s| {
        let ta = s.spawn(|| c.token(&c.a, &secret));
        let tb = s.spawn(|| c.token(&c.b, &secret));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(ta, tb);
    let bearer = ta;

    // A session made on A works on B; a logout acknowledged by B is refused by A at once.
    let (status, body) = c.login(&c.a, &bearer, &password);
    assert_eq!(status, 200);
    let session = body["sessionToken"].as_str().unwrap().to_owned();
    assert_eq!(c.verify(&c.b, &bearer, &session), 204);
    assert_eq!(c.logout(&c.b, &bearer, &session), 200);
    assert_eq!(c.verify(&c.a, &bearer, &session), 401);
    assert_eq!(c.logout(&c.a, &bearer, &session), 400);

    // An admin revocation is refused by both nodes on the very next request.
    let (_, body) = c.login(&c.b, &bearer, &password);
    let session = body["sessionToken"].as_str().unwrap().to_owned();
    assert_eq!(c.verify(&c.a, &bearer, &session), 204);
    c.env.ok(&["session", "revoke", "--user", "alice"]);
    assert_eq!(c.verify(&c.a, &bearer, &session), 401);
    assert_eq!(c.verify(&c.b, &bearer, &session), 401);
}

/// The nodes' read caches (issue 18) hold what was checked; the admin CLI's revocations reach
/// them on the very next request all the same.
#[test]
fn admin_revocations_reach_every_nodes_read_cache() {
    let (c, secret, password) = cluster();
    let bearer = c.token(&c.a, &secret);
    let warm = |bearer: &str, session: &str| {
        for node in [&c.a, &c.b, &c.a, &c.b] {
            assert_eq!(c.verify(node, bearer, session), 204);
        }
    };
    let session_of = |node: &Served, bearer: &str| {
        let (status, body) = c.login(node, bearer, &password);
        assert_eq!(status, 200, "{body}");
        body["sessionToken"].as_str().unwrap().to_owned()
    };

    let session = session_of(&c.a, &bearer);
    warm(&bearer, &session);
    let listed: Value =
        serde_json::from_str(&c.env.ok(&["session", "list", "--user", "alice", "--json"])).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    c.env.ok(&["session", "revoke", "--id", &id]);
    assert_eq!(c.verify(&c.a, &bearer, &session), 401);
    assert_eq!(c.verify(&c.b, &bearer, &session), 401);

    let session = session_of(&c.b, &bearer);
    warm(&bearer, &session);
    let new_secret = c.env.ok(&["client", "rotate-secret", "app"]);
    assert_eq!(c.verify(&c.a, &bearer, &session), 401);
    assert_eq!(c.verify(&c.b, &bearer, &session), 401);

    let bearer = c.token(&c.b, new_secret.trim());
    let session = session_of(&c.a, &bearer);
    warm(&bearer, &session);
    c.env.ok(&["user", "remove", "alice"]);
    assert_eq!(c.verify(&c.a, &bearer, &session), 401);
    assert_eq!(c.verify(&c.b, &bearer, &session), 401);
}

#[test]
fn lockout_counts_across_nodes() {
    let (c, secret, password) = cluster();
    let bearer = c.token(&c.a, &secret);
    // Five failures alternating between the nodes lock the user on both (each with a distinct
    // wrong password: a repeated one would count only once).
    for i in 0..5 {
        let node = if i % 2 == 0 { &c.a } else { &c.b };
        let (status, body) = c.login(node, &bearer, &format!("wrong-password-{i}"));
        assert_eq!(status, 400);
        assert_eq!(
            body["errorCode"],
            "UnifiedWebService.REQUEST_FAILED.Login.InvalidCredentials"
        );
    }
    for node in [&c.a, &c.b] {
        let (_, body) = c.login(node, &bearer, &password);
        assert_eq!(
            body["errorCode"],
            "UnifiedWebService.REQUEST_FAILED.Login.Locked"
        );
    }
}

#[test]
fn fifty_parallel_guesses_over_two_nodes_run_at_most_five_verifications() {
    let (c, secret, _) = cluster();
    let bearer = c.token(&c.a, &secret);
    let statuses: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (c, bearer) = (&c, &bearer);
                s.spawn(move || {
                    let node = if i % 2 == 0 { &c.a } else { &c.b };
                    // Distinct guesses: a repeated wrong password would count only once.
                    c.login(node, bearer, &format!("wrong-password-{i}")).1["errorCode"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let invalid = statuses
        .iter()
        .filter(|s| s.ends_with("InvalidCredentials"))
        .count();
    let locked = statuses
        .iter()
        .filter(|s| s.ends_with("Login.Locked"))
        .count();
    assert_eq!(invalid + locked, 50, "{statuses:?}");
    assert!(invalid <= 5, "{invalid} guesses were verified");
    // Every verification of a wrong password is one invalid_credentials line in the audit log.
    let audit: Value =
        serde_json::from_str(&c.env.ok(&["audit", "--user", "alice", "--json"])).unwrap();
    let verified = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "login" && r["outcome"] == "invalid_credentials")
        .count();
    assert_eq!(verified, invalid);
    assert!(verified <= 5);
}

impl Cluster {
    fn reset(
        &self,
        node: &Served,
        bearer: &str,
        session: &str,
        old: &str,
        key: &str,
    ) -> (u16, Value) {
        crate::binary::reset(&self.http, node, bearer, session, old, Some(key))
    }
}

/// The lost-answer case across a load balancer: the same idempotent reset reaches both nodes at
/// once. Each answer is the one new password or "in progress", never "wrong old password"; a
/// retry with the key then gets the password, and the user is never locked.
#[test]
fn the_same_idempotent_reset_on_two_nodes_answers_one_password_or_in_progress() {
    let (c, secret, mut password) = cluster();
    let bearer = c.token(&c.a, &secret);
    for round in 0..12 {
        let (status, body) = c.login(&c.a, &bearer, &password);
        assert_eq!(status, 200, "round {round}: {body}");
        let session = body["sessionToken"].as_str().unwrap().to_owned();
        let key = format!("round-{round}");
        let barrier = std::sync::Barrier::new(2);
        let answers: Vec<(u16, Value)> = thread::scope(|s| {
            let handles: Vec<_> = [&c.a, &c.b]
                .into_iter()
                .map(|node| {
                    let (c, barrier) = (&c, &barrier);
                    let (bearer, session, password, key) = (&bearer, &session, &password, &key);
                    s.spawn(move || {
                        barrier.wait();
                        c.reset(node, bearer, session, password, key)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut new = None;
        for (status, body) in &answers {
            match status {
                200 => {
                    let p = body["newPassword"].as_str().unwrap().to_owned();
                    assert!(new.is_none() || new.as_ref() == Some(&p), "two passwords");
                    new = Some(p);
                }
                409 => assert_eq!(
                    body["errorCode"], "UnifiedWebService.REQUEST_FAILED.IdempotencyKey.InProgress",
                    "round {round}"
                ),
                _ => panic!("round {round}: {status} {body}"),
            }
        }
        // A retry with the key, on either node, gets the stored answer.
        let (status, body) = c.reset(&c.b, &bearer, &session, &password, &key);
        assert_eq!(status, 200, "round {round}: retry answered {body}");
        let replayed = body["newPassword"].as_str().unwrap().to_owned();
        if let Some(new) = new {
            assert_eq!(new, replayed, "round {round}");
        }
        password = replayed;
    }
    // Not locked: the last password logs in.
    let (status, body) = c.login(&c.b, &bearer, &password);
    assert_eq!(status, 200, "{body}");
}

/// Twenty resets with the right old password, each with its own key, split over both nodes:
/// one new password, the others "old password mismatch" (it changed under them), and the user
/// who holds the new password is not locked. The nodes hash at the default cost, as deployed:
/// what makes the requests race is that they arrive while the winning reset is still hashing.
#[test]
fn parallel_correct_resets_over_two_nodes_never_lock_the_user() {
    let (c, secret, password) =
        cluster_with(&["--argon2-memory-kib", "19456", "--argon2-iterations", "2"]);
    let bearer = c.token(&c.a, &secret);
    let (status, body) = c.login(&c.a, &bearer, &password);
    assert_eq!(status, 200, "{body}");
    let session = body["sessionToken"].as_str().unwrap().to_owned();
    let answers: Vec<(u16, Value)> = thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let (c, bearer, session, password) = (&c, &bearer, &session, &password);
                s.spawn(move || {
                    let node = if i % 2 == 0 { &c.a } else { &c.b };
                    c.reset(node, bearer, session, password, &format!("key-{i}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let new: Vec<&str> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body["newPassword"].as_str().unwrap())
        .collect();
    assert_eq!(new.len(), 1, "{answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == 200
                || body["errorCode"]
                    == "UnifiedWebService.REQUEST_FAILED.Password.OldPasswordMismatch",
            "{status} {body}"
        );
    }
    for node in [&c.a, &c.b] {
        let (status, body) = c.login(node, &bearer, new[0]);
        assert_eq!(status, 200, "the new password is locked out: {body}");
    }
}
