//! `X-Request-Id` on every answer: a sane incoming id is kept, anything else replaced.

use crate::support::*;

fn id_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .expect("no X-Request-Id")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_answer_has_a_request_id_and_sane_incoming_ones_are_kept() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let mut seen = std::collections::HashSet::new();
    // Success, operation error, gateway fault, unknown route, health.
    let answers = [
        f.login(&bearer, USERNAME, PASSWORD).await,
        f.login(&bearer, USERNAME, "wrong password").await,
        f.login("not-a-token", USERNAME, PASSWORD).await,
        f.http.get(f.url("/nowhere")).send().await.unwrap(),
        f.http.get(f.url("/healthz")).send().await.unwrap(),
    ];
    for r in &answers {
        let id = id_of(r);
        assert_eq!(id.len(), 32, "{id}");
        assert!(seen.insert(id), "ids must differ");
    }

    let kept = f
        .http
        .get(f.url("/healthz"))
        .header("X-Request-Id", "gw:edge-1.req_42")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&kept), "gw:edge-1.req_42");

    for bad in ["has space", "quote\"d", &"a".repeat(129)] {
        let r = f
            .http
            .get(f.url("/healthz"))
            .header("X-Request-Id", bad)
            .send()
            .await
            .unwrap();
        let id = id_of(&r);
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32, "{id}");
    }
}
