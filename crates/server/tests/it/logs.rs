//! What the log says under stress: shed and draining 503s are summarised at WARN, not one
//! ERROR line each; lines written inside an operation carry the request id.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use m2m_session_server::crypto::Argon2Settings;
use tracing_subscriber::fmt::MakeWriter;

use crate::support::*;

/// The formatted log lines of this thread. The tests run on a current-thread runtime, so
/// the server's tasks log here too.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

fn capture_json() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// Requests that carry every kind of secret, each with an id of its own: an OAuth token
/// request (client secret in a header), a login (bearer in a header, password in the body), a
/// verify (session token in a header), a path no route serves with a token in its query, and
/// a health check. Returns the secrets.
async fn requests_with_secrets(f: &Fixture) -> Vec<String> {
    let token = f
        .http
        .post(f.url("/api/ts/v1/oauth2/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .header("X-Request-Id", "access-token")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let bearer = json(token).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = f
        .http
        .post(f.url("/api/m2m/v1/session/login"))
        .bearer_auth(&bearer)
        .header("X-Request-Id", "access-login")
        .json(&serde_json::json!({"username": USERNAME, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let session = json(login).await["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = f
        .http
        .get(f.url("/auth/verify"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &session)
        .header("X-Request-Id", "access-verify")
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 204);
    let query_secret = "query-secret-0123456789";
    let unknown = f
        .http
        .get(f.url(&format!("/no/such/path?access_token={query_secret}")))
        .header("X-Request-Id", "access-unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let health = f
        .http
        .get(f.url("/healthz"))
        .header("X-Request-Id", "access-health")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    vec![
        CLIENT_SECRET.to_owned(),
        bearer,
        PASSWORD.to_owned(),
        session,
        query_secret.to_owned(),
    ]
}

/// What each access line must say, by request id: method, route, status.
const EXPECTED_ACCESS: &[(&str, &str, &str, u16)] = &[
    ("access-token", "POST", "/api/ts/v1/oauth2/token", 200),
    ("access-login", "POST", "/api/m2m/v1/session/login", 200),
    ("access-verify", "GET", "/auth/verify", 204),
    ("access-unknown", "GET", "unmatched", 404),
];

#[tokio::test]
async fn each_request_has_one_access_line_with_route_status_latency_and_id_and_no_secret() {
    let (logs, _guard) = capture();
    let f = Fixture::start().await;
    let secrets = requests_with_secrets(&f).await;
    f.server.stop().await;
    let lines = logs.lines();
    for (id, method, route, status) in EXPECTED_ACCESS {
        let access: Vec<_> = lines
            .iter()
            .filter(|l| {
                l.contains(" m2m_session::access: ") && l.contains(&format!("request_id={id}"))
            })
            .collect();
        assert_eq!(access.len(), 1, "{id}: {lines:#?}");
        let line = access[0];
        assert!(line.contains(" INFO "), "{line}");
        for field in [
            format!("method={method} "),
            format!("route={route} "),
            format!("status={status} "),
            "latency_ms=".to_owned(),
        ] {
            assert!(line.contains(&field), "{field} not in {line}");
        }
    }
    let unknown = lines
        .iter()
        .find(|l| l.contains(" m2m_session::access: ") && l.contains("request_id=access-unknown"))
        .unwrap();
    assert!(unknown.contains("path=\"/no/such/path\" "), "{unknown}");
    // A successful health check is logged at DEBUG only.
    assert!(!lines.iter().any(|l| l.contains("request_id=access-health")));
    for secret in &secrets {
        let leaks: Vec<_> = lines
            .iter()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(leaks.is_empty(), "{secret} logged: {leaks:#?}");
    }
}

#[tokio::test]
async fn access_lines_in_json_carry_the_same_fields() {
    let (logs, _guard) = capture_json();
    let f = Fixture::start().await;
    let secrets = requests_with_secrets(&f).await;
    f.server.stop().await;
    let lines = logs.lines();
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access: Vec<_> = objects
        .iter()
        .filter(|o| o["target"] == "m2m_session::access")
        .collect();
    assert_eq!(access.len(), EXPECTED_ACCESS.len(), "{access:#?}");
    for (id, method, route, status) in EXPECTED_ACCESS {
        let line = access
            .iter()
            .find(|o| o["fields"]["request_id"] == *id)
            .unwrap_or_else(|| panic!("no access line for {id}: {access:#?}"));
        let fields = &line["fields"];
        assert_eq!(line["level"], "INFO");
        assert_eq!(fields["method"], *method, "{line}");
        assert_eq!(fields["route"], *route, "{line}");
        assert_eq!(fields["status"], *status, "{line}");
        let latency = fields["latency_ms"]
            .as_f64()
            .expect("latency_ms is a number");
        assert!((0.0..10_000.0).contains(&latency), "{line}");
    }
    for secret in &secrets {
        let leaks: Vec<_> = lines
            .iter()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(leaks.is_empty(), "{secret} logged: {leaks:#?}");
    }
}

#[tokio::test]
async fn the_lock_line_carries_the_request_id() {
    let (logs, _guard) = capture();
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    for i in 0..5 {
        // A distinct wrong password each: a repeated one would count only once.
        let password = format!("wrong password {i}");
        let r = f
            .http
            .post(f.url("/api/m2m/v1/session/login"))
            .bearer_auth(&bearer)
            .header("X-Request-Id", format!("lock-attempt-{i}"))
            .json(&serde_json::json!({"username": USERNAME, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
    f.server.stop().await;
    let lines = logs.lines();
    let lock = lines
        .iter()
        .find(|l| l.contains("username locked"))
        .unwrap_or_else(|| panic!("no lock line in {lines:#?}"));
    assert!(lock.contains("lock-attempt-4"), "{lock}");
}

#[tokio::test]
async fn shed_logins_and_a_drain_are_counted_and_summarised_not_logged_as_errors() {
    let (logs, _guard) = capture();
    let mut f = Fixture::start_with(|c| {
        // Real argon2 cost, one worker and a queue of one: most of a burst is shed.
        c.argon2 = Argon2Settings::default();
        c.hash_workers = 1;
        c.hash_queue = 1;
        c.shutdown_delay = Duration::from_secs(1);
    })
    .await;
    let bearer = f.api_token().await;
    let names: Vec<String> = (0..40).map(|i| format!("nobody-{i}")).collect();
    let burst = names
        .iter()
        .map(|name| Box::pin(f.login(&bearer, name, "whatever password")))
        .collect();
    let answers: Vec<u16> = join_local(burst)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let shed = answers.iter().filter(|s| **s == 503).count();
    assert!(shed > 0, "nothing was shed: {answers:?}");

    let metrics = f
        .http
        .get(f.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("m2m_session_http_shed_total{reason=\"overloaded\"}"))
        .unwrap_or_else(|| panic!("no shed counter in {metrics}"));
    assert!(
        counted.ends_with(&format!(" {shed}")),
        "{counted} for {shed}"
    );

    f.server.begin_stop();
    let mut draining = 0;
    for _ in 0..20 {
        match f.http.get(f.url("/readyz")).send().await {
            Ok(r) if r.status() == 503 => draining += 1,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(draining > 0);
    f.server.stop().await;

    let lines = logs.lines();
    let errors: Vec<_> = lines.iter().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.is_empty(),
        "{} ERROR lines: {errors:#?}",
        errors.len()
    );
    let summaries = lines
        .iter()
        .filter(|l| l.contains(" WARN ") && l.contains("answered 503 on purpose"))
        .count();
    // The first shed answer is reported at once, later ones at most every 10 s.
    assert!((1..=2).contains(&summaries), "{summaries} summary lines");
}

/// Drives the futures together on this task (they borrow the fixture, so no spawning).
async fn join_local<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match std::pin::Pin::new(f).poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
