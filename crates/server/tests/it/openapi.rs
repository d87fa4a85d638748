//! The served OpenAPI document describes every route the server has.

use m2m_session_server::http::ROUTES;

use crate::support::*;

#[tokio::test]
async fn every_route_is_in_the_openapi_document() {
    let f = Fixture::start().await;
    let r = f.http.get(f.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc = json(r).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(ROUTES.len() >= 9);
    for (method, path) in ROUTES {
        let operation = &doc["paths"][path][method];
        assert!(
            operation.is_object(),
            "{method} {path} is missing from the OpenAPI document"
        );
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            !responses.is_empty(),
            "{method} {path} documents no response"
        );
        if *path != "/healthz" && *path != "/api/openapi.json" {
            assert!(
                responses
                    .keys()
                    .any(|code| code.starts_with('4') || code.starts_with('5')),
                "{method} {path} documents no error response"
            );
        }
    }
    // Nothing documented that is not served.
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, ROUTES.len());
    for scheme in ["bearer", "basic"] {
        assert!(doc["components"]["securitySchemes"][scheme].is_object());
    }
}
