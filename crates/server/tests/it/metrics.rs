//! `GET /metrics` parses as Prometheus text and counts what the README says it counts.

use prometheus_parse::{Sample, Scrape, Value};

use crate::support::*;

async fn scrape(f: &Fixture) -> Scrape {
    let r = f.http.get(f.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = r.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn find<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

fn total(samples: &[&Sample]) -> f64 {
    samples
        .iter()
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_requests_logins_and_sessions() {
    // The recorder is per process: other tests' servers add to these figures, so every check
    // is "at least what this test did".
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let session = f.session(&bearer).await;
    // The same wrong password twice: the second is not counted, and counted as such.
    for _ in 0..2 {
        assert_eq!(
            f.login(&bearer, USERNAME, "wrong password").await.status(),
            400
        );
    }
    let r = f
        .http
        .get(f.url("/auth/verify"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let scrape = scrape(&f).await;
    let login_ok = find(
        &scrape,
        "http_requests_total",
        &[
            ("route", "/api/m2m/v1/session/login"),
            ("method", "POST"),
            ("status", "200"),
        ],
    );
    assert!(total(&login_ok) >= 1.0, "{login_ok:?}");
    let verify = find(
        &scrape,
        "http_requests_total",
        &[("route", "/auth/verify"), ("status", "204")],
    );
    assert!(total(&verify) >= 1.0);
    let latency = scrape
        .samples
        .iter()
        .find(|s| s.metric == "http_request_duration_seconds")
        .expect("no latency histogram");
    assert!(matches!(latency.value, Value::Histogram(_)), "{latency:?}");
    assert!(total(&find(&scrape, "login_total", &[("result", "success")])) >= 1.0);
    assert!(
        total(&find(
            &scrape,
            "login_total",
            &[("result", "invalid_credentials")]
        )) >= 1.0
    );
    assert!(total(&find(&scrape, "active_sessions", &[])) >= 1.0);
    let wait = scrape
        .samples
        .iter()
        .find(|s| s.metric == "argon2_queue_wait_seconds")
        .expect("no argon2 queue wait");
    assert!(matches!(wait.value, Value::Histogram(_)));
    // Present from the start, even at 0.
    assert_eq!(find(&scrape, "lockouts_total", &[]).len(), 1);
    assert_eq!(find(&scrape, "store_errors_total", &[]).len(), 1);
    for reason in ["forgiven", "stale_password"] {
        let series = find(
            &scrape,
            "login_failures_uncounted_total",
            &[("reason", reason)],
        );
        assert_eq!(series.len(), 1, "{reason}");
    }
    let repeated = find(
        &scrape,
        "login_failures_uncounted_total",
        &[("reason", "repeated")],
    );
    assert!(total(&repeated) >= 1.0, "{repeated:?}");
    assert!(scrape.docs.contains_key("login_total"), "{:?}", scrape.docs);
}
