//! Smart lockout against real `serve` processes, on one node (SQLite) and on two nodes sharing
//! one PostgreSQL database: a repeated wrong password counts once, the password a reset
//! replaced is not counted, and a familiar source keeps its own count while guesses from
//! elsewhere lock the shared one. Each scenario is written once and run on both setups.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use reqwest::blocking::Client;
use serde_json::Value;

use crate::binary::{Env, Served, login, reset, token};
use crate::multi_node::cluster_with;

const INVALID: &str = "UnifiedWebService.REQUEST_FAILED.Login.InvalidCredentials";
const LOCKED: &str = "UnifiedWebService.REQUEST_FAILED.Login.Locked";

/// Where a scenario runs: nodes `a` and `b` (the same node on one-node setups), with the
/// client `app` and the user `alice` already added.
struct Nodes<'a> {
    env: &'a Env,
    a: &'a Served,
    b: &'a Served,
    /// Connects from 127.0.0.1, as the server listens.
    http: Client,
    secret: String,
    password: String,
}

/// One `serve` with `flags` on a fresh SQLite database.
fn on_one_node(flags: &[&str], scenario: fn(&Nodes)) {
    let env = Env::new();
    let secret = env.ok(&["client", "add", "app"]);
    let password = env.ok(&["user", "add", "alice"]);
    let served = Served::start(&env, flags, "info");
    scenario(&Nodes {
        env: &env,
        a: &served,
        b: &served,
        http: Client::new(),
        secret,
        password,
    });
}

/// Two `serve`s with `flags` on one fresh PostgreSQL database.
fn on_two_nodes(flags: &[&str], scenario: fn(&Nodes)) {
    let (c, secret, password) = cluster_with(flags);
    scenario(&Nodes {
        env: &c.env,
        a: &c.a,
        b: &c.b,
        http: c.http.clone(),
        secret,
        password,
    });
}

impl Nodes<'_> {
    /// Node a for an even `i`, node b for an odd one: requests spread over both.
    fn node(&self, i: usize) -> &Served {
        if i.is_multiple_of(2) { self.a } else { self.b }
    }

    fn token(&self) -> String {
        token(&self.http, self.a, "app", &self.secret)
    }

    /// alice's login on `node` from 127.0.0.1: its status and error code (empty on success).
    fn login(&self, node: &Served, bearer: &str, password: &str) -> (u16, String) {
        answer(login(&self.http, node, bearer, "alice", password))
    }

    /// `user lockout alice --json`.
    fn lockout(&self) -> Value {
        serde_json::from_str(&self.env.ok(&["user", "lockout", "alice", "--json"])).unwrap()
    }

    /// alice's audit lines.
    fn audit(&self) -> Vec<Value> {
        let audit: Value =
            serde_json::from_str(&self.env.ok(&["audit", "--user", "alice", "--json"])).unwrap();
        audit.as_array().unwrap().clone()
    }
}

fn answer((status, body): (u16, Value)) -> (u16, String) {
    let code = body["errorCode"].as_str().unwrap_or_default().to_owned();
    (status, code)
}

/// The bucket of `user lockout --json` whose source is `source`.
fn bucket<'v>(lockout: &'v Value, source: &str) -> Option<&'v Value> {
    lockout["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["source"] == source)
}

/// How many times each answer was given, for a readable failure.
fn tally(answers: &[(u16, String)]) -> BTreeMap<&(u16, String), usize> {
    let mut tally = BTreeMap::new();
    for a in answers {
        *tally.entry(a).or_default() += 1;
    }
    tally
}

/// How many audit lines there are of each event, outcome and detail.
fn audit_tally(audit: &[Value]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for r in audit {
        let line = format!("{} {} {}", r["event"], r["outcome"], r["detail"]);
        *tally.entry(line).or_default() += 1;
    }
    tally
}

/// Whether an audit line is a failed login that counted towards the lock.
fn counted(row: &Value) -> bool {
    row["event"] == "login"
        && row["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("counted"))
}

const OLD_PASSWORD_WORKERS: usize = 10;
const RETRIES_PER_WORKER: usize = 50;

/// A fleet's workers keep retrying the password a reset replaced, in parallel, while the
/// holder of the new one logs in over and over: the stale password is refused as any wrong
/// one, yet never counts, so nothing locks and the new password always works. 500 stale
/// attempts from one address also stay clear of the per-address throttle (100 by default):
/// they are not logged against it.
fn old_password_workers_never_lock_out_the_new_one(n: &Nodes) {
    let bearer = n.token();
    let (status, body) = login(&n.http, n.a, &bearer, "alice", &n.password);
    assert_eq!(status, 200, "{body}");
    let session = body["sessionToken"].as_str().unwrap();
    let (status, body) = reset(&n.http, n.a, &bearer, session, &n.password, None);
    assert_eq!(status, 200, "{body}");
    let new = body["newPassword"].as_str().unwrap().to_owned();
    let (old, bearer) = (&n.password, &bearer);

    let workers_done = AtomicUsize::new(0);
    let (old_answers, new_answers) = thread::scope(|s| {
        let workers: Vec<_> = (0..OLD_PASSWORD_WORKERS)
            .map(|w| {
                let done = &workers_done;
                s.spawn(move || {
                    let answers: Vec<_> = (0..RETRIES_PER_WORKER)
                        .map(|i| n.login(n.node(w + i), bearer, old))
                        .collect();
                    done.fetch_add(1, Ordering::SeqCst);
                    answers
                })
            })
            .collect();
        let holder = s.spawn(|| {
            let mut answers = Vec::new();
            // For as long as the workers run (bounded: they make 500 requests in all).
            for i in 0..10_000 {
                if workers_done.load(Ordering::SeqCst) == OLD_PASSWORD_WORKERS {
                    break;
                }
                answers.push(n.login(n.node(i), bearer, &new));
            }
            answers
        });
        let old_answers: Vec<_> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        (old_answers, holder.join().unwrap())
    });

    assert_eq!(old_answers.len(), OLD_PASSWORD_WORKERS * RETRIES_PER_WORKER);
    assert!(!new_answers.is_empty(), "the new password was never tried");
    let as_expected = old_answers.iter().all(|a| *a == (400, INVALID.to_owned()))
        && new_answers.iter().all(|(status, _)| *status == 200);
    assert!(
        as_expected,
        "old-password logins answered {:?}; new-password logins answered {:?}; \
         the audit says {:#?}",
        tally(&old_answers),
        tally(&new_answers),
        audit_tally(&n.audit())
    );
    // And once the storm is over, on every node.
    for node in [n.a, n.b] {
        assert_eq!(n.login(node, bearer, &new), (200, String::new()));
    }

    let lockout = n.lockout();
    for b in lockout["buckets"].as_array().unwrap() {
        assert_eq!(b["locked_until"], Value::Null, "{lockout:#}");
        assert_eq!(b["failed_attempts"], 0, "{lockout:#}");
    }
    let audit = n.audit();
    let stale = audit
        .iter()
        .filter(|r| r["event"] == "login" && r["outcome"] == "stale_password")
        .count();
    assert!(
        stale > 0,
        "no stale_password line among {} lines",
        audit.len()
    );
    assert!(
        !audit.iter().any(|r| counted(r) || r["event"] == "lock"),
        "a stale password counted: {:#?}",
        audit.iter().find(|r| counted(r) || r["event"] == "lock")
    );
}

#[test]
fn after_a_reset_workers_retrying_the_old_password_never_lock_out_the_new_one() {
    on_one_node(&[], old_password_workers_never_lock_out_the_new_one);
}

#[test]
fn after_a_reset_workers_retrying_the_old_password_never_lock_out_the_new_one_on_two_nodes() {
    on_two_nodes(&[], old_password_workers_never_lock_out_the_new_one);
}

/// Failures whose request arrived before a success was decided are forgiven, and each node's
/// clock agrees with the database's only to within a round trip: guesses meant to count come
/// a little after the success they follow, as a guesser's would.
fn let_the_success_be_decided_on_every_node() {
    std::thread::sleep(std::time::Duration::from_millis(100));
}

/// The per-address limit these scenarios run with: far below 100 repeats, above the 6
/// distinct wrong passwords, so a repeat taken for a new guess would throttle the address;
/// the repeats fit in its allowance of wrong passwords in all (ten times the limit).
const IP_FAILURE_LIMIT: &str = "20";

/// One wrong password a hundred times counts once (and once as a new guess of the address);
/// five distinct ones lock, even against the right password, on every node.
fn one_wrong_password_counts_once_but_five_distinct_lock(n: &Nodes) {
    let bearer = n.token();
    for i in 0..100 {
        let answer = n.login(n.node(i), &bearer, "the-same-wrong-password");
        assert_eq!(answer, (400, INVALID.to_owned()), "repeat {i}");
    }
    let answer = n.login(n.b, &bearer, &n.password);
    assert_eq!(answer, (200, String::new()), "the repeats locked the user");
    let_the_success_be_decided_on_every_node();

    for i in 0..5 {
        let answer = n.login(n.node(i), &bearer, &format!("distinct-wrong-password-{i}"));
        assert_eq!(answer, (400, INVALID.to_owned()), "distinct guess {i}");
    }
    for node in [n.a, n.b] {
        let answer = n.login(node, &bearer, &n.password);
        assert_eq!(
            answer,
            (400, LOCKED.to_owned()),
            "after five distinct guesses"
        );
    }

    let lockout = n.lockout();
    let shared = bucket(&lockout, "shared").unwrap_or_else(|| panic!("{lockout:#}"));
    assert_eq!(shared["failed_attempts"], 5, "{lockout:#}");
    assert!(shared["locked_until"].is_string(), "{lockout:#}");
    // The first of the repeats and the five distinct guesses; none of the 99 other repeats.
    let audit = n.audit();
    assert_eq!(audit.iter().filter(|r| counted(r)).count(), 6, "{audit:#?}");
}

#[test]
fn a_hundred_repeats_of_one_wrong_password_do_not_lock_but_five_distinct_do() {
    on_one_node(
        &["--ip-failure-limit", IP_FAILURE_LIMIT],
        one_wrong_password_counts_once_but_five_distinct_lock,
    );
}

#[test]
fn a_hundred_repeats_of_one_wrong_password_do_not_lock_but_five_distinct_do_on_two_nodes() {
    on_two_nodes(
        &["--ip-failure-limit", IP_FAILURE_LIMIT],
        one_wrong_password_counts_once_but_five_distinct_lock,
    );
}

/// The fleet logs in from 127.0.0.1 (node a), which makes that address familiar; a guesser
/// from 127.0.0.2 (node b) locks the shared bucket with five distinct guesses. The fleet's
/// address keeps its own count (a typo of the fleet's, sent to node b, counts there and is
/// not refused as locked) and still logs in; only an unlock lets the guesser's address in.
fn a_familiar_address_stays_in_while_a_guesser_is_locked_out(n: &Nodes) {
    let guesser = Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    // The client's token is one per client, whoever asks for it.
    let bearer = n.token();
    let guess = |password: &str| answer(login(&guesser, n.b, &bearer, "alice", password));
    assert_eq!(n.login(n.a, &bearer, &n.password), (200, String::new()));
    let_the_success_be_decided_on_every_node();

    for i in 0..5 {
        let answer = guess(&format!("guess-{i}"));
        assert_eq!(answer, (400, INVALID.to_owned()), "guess {i}");
    }
    assert_eq!(guess(&n.password), (400, LOCKED.to_owned()));

    let typo = n.login(n.b, &bearer, "the-fleets-typo");
    assert_eq!(
        typo,
        (400, INVALID.to_owned()),
        "the familiar address is locked"
    );
    let lockout = n.lockout();
    let shared = bucket(&lockout, "shared").unwrap_or_else(|| panic!("{lockout:#}"));
    assert_eq!(shared["failed_attempts"], 5, "{lockout:#}");
    assert!(shared["locked_until"].is_string(), "{lockout:#}");
    let familiar = bucket(&lockout, "127.0.0.1").unwrap_or_else(|| panic!("{lockout:#}"));
    assert_eq!(familiar["failed_attempts"], 1, "{lockout:#}");
    assert_eq!(familiar["locked_until"], Value::Null, "{lockout:#}");
    // The server saw the guesser's own address.
    let recent = lockout["recent"].as_array().unwrap();
    assert!(recent.iter().any(|r| r["ip"] == "127.0.0.2"), "{lockout:#}");

    assert_eq!(n.login(n.a, &bearer, &n.password), (200, String::new()));
    // The fleet's success clears its own bucket, not the shared one.
    assert_eq!(guess(&n.password), (400, LOCKED.to_owned()));

    n.env.ok(&["user", "unlock", "alice"]);
    let lockout = n.lockout();
    for b in lockout["buckets"].as_array().unwrap() {
        assert_eq!(b["locked_until"], Value::Null, "{lockout:#}");
    }
    assert_eq!(guess(&n.password), (200, String::new()));
}

#[test]
fn familiar_sources_keep_the_fleet_in_while_a_guesser_is_locked_out() {
    on_one_node(
        &["--familiar-sources", "address"],
        a_familiar_address_stays_in_while_a_guesser_is_locked_out,
    );
}

#[test]
fn familiar_sources_keep_the_fleet_in_while_a_guesser_is_locked_out_on_two_nodes() {
    on_two_nodes(
        &["--familiar-sources", "address"],
        a_familiar_address_stays_in_while_a_guesser_is_locked_out,
    );
}
