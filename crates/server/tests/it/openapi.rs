//! The served OpenAPI document describes exactly the routes the server has: a client generated
//! from it can call every operation, and it promises none that would answer 404 or 405.

use std::collections::BTreeSet;

use m2m_session_server::http::ROUTES;

use crate::support::*;

/// The keys of an OpenAPI path item that are operations; the others (`parameters`, `summary`,
/// ...) describe the path itself.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes() {
    let f = Fixture::start().await;
    let r = f.http.get(f.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc = json(r).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let served: BTreeSet<(&str, &str)> = ROUTES.iter().copied().collect();
    assert_eq!(served.len(), ROUTES.len(), "ROUTES lists a route twice");
    assert!(served.len() >= 9);
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<(&str, &str)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().unwrap();
            METHODS
                .into_iter()
                .filter(|method| item.contains_key(*method))
                .map(move |method| (method, path.as_str()))
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "the OpenAPI document and ROUTES differ: served but not documented {undocumented:?}, \
         documented but not served {unserved:?}"
    );

    for (method, path) in ROUTES {
        let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
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
    for scheme in ["bearer", "basic"] {
        assert!(doc["components"]["securitySchemes"][scheme].is_object());
    }
}
