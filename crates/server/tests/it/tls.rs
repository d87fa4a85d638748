//! HTTPS on the listener with a self-signed certificate made here; plain HTTP is then refused.

use m2m_session_server::tls::TlsFiles;

use crate::support::*;

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let (dir, url) = temp_db();
    seed(sqlite_store(&url).await).await;
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut config = test_config(&url);
    config.tls = Some(TlsFiles {
        cert: cert_path.clone(),
        key: key_path.clone(),
    });
    let server = TestServer::start(&config).await;
    let https = server.base.replace("http://", "https://");

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = trusting
        .post(format!("{https}/api/ts/v1/oauth2/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    // A client that does not trust the certificate, and plain HTTP, get nowhere.
    assert!(reqwest::get(format!("{https}/healthz")).await.is_err());
    let plain = reqwest::get(format!("{}/healthz", server.base)).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    server.stop().await;

    // A key that is not the certificate's is refused at start, not at the first handshake.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&key_path, other.signing_key.serialize_pem()).unwrap();
    let err = m2m_session_server::Server::bind(&config)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("TLS"), "{err}");
}
