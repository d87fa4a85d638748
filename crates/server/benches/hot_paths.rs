//! The in-process hot paths of a session check, timed alone: `cargo bench -p m2m-session-server`.
//! What the end-to-end ratios (`scripts/bench`) cannot separate: header parsing, the token
//! digest, a lookup served by the read cache against one that reaches SQLite, and rendering the
//! contract's error body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use axum::response::IntoResponse;
use criterion::{Criterion, criterion_group, criterion_main};
use m2m_session_server::crypto::{OsRandomness, SessionToken, digest};
use m2m_session_server::domain::DomainError;
use m2m_session_server::http::{AppError, parse};
use m2m_session_server::store::{
    ClientRecord, ClientStore, SessionRecord, SessionStore, SqliteStore, StoreSettings, UserRecord,
    UserStore,
};
use m2m_session_server::time::Timestamp;

fn parsing(c: &mut Criterion) {
    let token = "BCCE3EA6-FE68-4B4F-B5A3-84D4B5B1F1C0";
    c.bench_function("parse VZ-M2M-Token", |b| {
        b.iter(|| SessionToken::parse(black_box(token)).unwrap())
    });
    c.bench_function("parse Authorization: Bearer", |b| {
        b.iter(|| parse::bearer_token(black_box("Bearer 0123456789abcdef0123456789abcdef")))
    });
    c.bench_function("parse Authorization: Basic", |b| {
        b.iter(|| parse::basic_credentials(black_box("Basic YXBwOmFwcC1zZWNyZXQtMDEyMzQ1Njc4OQ==")))
    });
    let body = br#"{"username":"zbeeblebrox","password":"IMgr8-but-longer"}"#;
    c.bench_function("parse login JSON body", |b| {
        b.iter(|| parse::json_object(Some("application/json"), black_box(body)).unwrap())
    });
}

fn digest_and_lookup(c: &mut Criterion) {
    let token = SessionToken::generate(&OsRandomness);
    c.bench_function("token SHA-256 digest", |b| {
        b.iter(|| black_box(&token).digest())
    });
    c.bench_function("API token SHA-256 digest", |b| {
        b.iter(|| digest(black_box("0123456789abcdef0123456789abcdef")))
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = runtime.block_on(async {
        let store = SqliteStore::open(&url, &StoreSettings::default())
            .await
            .unwrap();
        let now = Timestamp::now();
        store
            .insert_client(&ClientRecord {
                client_id: "c".into(),
                secret_hash: "h".into(),
                scopes: vec![],
                created_at: now,
            })
            .await
            .unwrap();
        store
            .insert_user(&UserRecord {
                username: "u".into(),
                account: Some("a".into()),
                password_hash: "h".into(),
                created_at: now,
            })
            .await
            .unwrap();
        store
            .insert_session(&SessionRecord {
                token_digest: token.digest(),
                id: "id".into(),
                username: "u".into(),
                client_id: "c".into(),
                created_at: now,
                last_used_at: now,
                account: None,
                ip: None,
            })
            .await
            .unwrap();
        // Until the cache has validated itself and holds the session.
        while !store.caches(&token.digest()) {
            store.find_session(&token.digest()).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        store
    });
    c.bench_function("session lookup, read cache", |b| {
        b.iter(|| {
            runtime
                .block_on(store.find_session(&black_box(&token).digest()))
                .unwrap()
        })
    });
    // Absent tokens are never cached: every lookup reaches SQLite.
    let absent = SessionToken::generate(&OsRandomness);
    c.bench_function("session lookup, SQLite", |b| {
        b.iter(|| {
            runtime
                .block_on(store.find_session(&black_box(&absent).digest()))
                .unwrap()
        })
    });
}

fn error_rendering(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    c.bench_function("render SessionToken.Expired 400", |b| {
        b.iter(|| {
            let response = AppError::from(DomainError::SessionExpired).into_response();
            runtime
                .block_on(axum::body::to_bytes(response.into_body(), 4096))
                .unwrap()
        })
    });
}

criterion_group!(benches, parsing, digest_and_lookup, error_rendering);
criterion_main!(benches);
