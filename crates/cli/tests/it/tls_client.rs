//! The client commands and the SDK against the server's own TLS listener, with a private CA
//! made here: trusted with `--ca-cert` (or `M2M_CA_CERT`, `SSL_CERT_FILE`, `SSL_CERT_DIR`),
//! refused without it in one line that names the certificate problem; proxies from
//! `HTTPS_PROXY` unless `NO_PROXY` lists the host. Everything stays on loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use m2m_session_client::{Client, Error, LogInRequest};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use secrecy::SecretString;

use crate::binary::{BIN, Env, Served};

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "m2m-session test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.use_authority_key_identifier_extension = true;
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

        let pki = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        };
        std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
        std::fs::write(&pki.cert, leaf_cert.pem()).unwrap();
        std::fs::write(&pki.key, leaf_key.serialize_pem()).unwrap();
        pki
    }
}

/// An HTTPS server with a client and a user, and how to reach it.
struct Setup {
    env: Env,
    pki: Pki,
    served: Served,
    secret: String,
    password: String,
}

impl Setup {
    fn new() -> Self {
        let env = Env::new();
        let secret = env.ok(&["client", "add", "app"]);
        let password = env.ok(&["user", "add", "alice"]);
        let pki = Pki::new(env.dir.path());
        let (cert, key) = (
            pki.cert.display().to_string(),
            pki.key.display().to_string(),
        );
        let served = Served::start(&env, &["--tls-cert", &cert, "--tls-key", &key], "info");
        Self {
            env,
            pki,
            served,
            secret,
            password,
        }
    }

    /// The API base over HTTPS.
    fn url(&self) -> String {
        self.served.url("/api").replacen("http://", "https://", 1)
    }

    fn ca(&self) -> String {
        self.pki.ca.display().to_string()
    }

    /// A client command with only the variables given: no proxy unless a test sets one.
    fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .current_dir(self.env.dir.path())
            .env("M2M_URL", self.url())
            .env("M2M_CLIENT_ID", "app")
            .env("M2M_CLIENT_SECRET", &self.secret)
            .env("M2M_USERNAME", "alice")
            .env("M2M_PASSWORD", &self.password)
            .args(args);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout of a success: exactly one line.
fn one_line(out: &Output) -> String {
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(out));
    let text = stdout(out);
    assert_eq!(text.lines().count(), 1, "{text:?}");
    text.trim_end().to_owned()
}

/// A failure with exit 1, nothing on stdout and one line on stderr; that line.
fn failure_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert!(stdout(out).is_empty(), "stdout: {}", stdout(out));
    let text = stderr(out);
    assert_eq!(text.lines().count(), 1, "{text:?}");
    text.trim_end().to_owned()
}

#[test]
fn tls_client_commands_trust_the_ca_given_with_ca_cert() {
    let s = Setup::new();
    let ca = s.ca();

    let token = one_line(&s.run(&["login", "--ca-cert", &ca], &[]));
    let new_password = one_line(&s.run(
        &["reset-password", "--ca-cert", &ca],
        &[("M2M_SESSION_TOKEN", &token)],
    ));
    assert_ne!(new_password, s.password);
    // The same from the environment.
    let token = one_line(&s.run(
        &["login"],
        &[("M2M_CA_CERT", &ca), ("M2M_PASSWORD", &new_password)],
    ));
    let out = s.run(
        &["logout"],
        &[("M2M_CA_CERT", &ca), ("M2M_SESSION_TOKEN", &token)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    // Without the CA the handshake fails: one line that names the certificate problem and
    // the flag that fixes it.
    let line = failure_line(&s.run(&["login"], &[("M2M_PASSWORD", &new_password)]));
    assert!(line.starts_with("error: "), "{line}");
    assert!(line.contains("invalid peer certificate"), "{line}");
    assert!(line.contains("UnknownIssuer"), "{line}");
    assert!(line.contains("--ca-cert (M2M_CA_CERT)"), "{line}");
    // The server's own certificate is no CA: trusting it does not make it one.
    let cert = s.pki.cert.display().to_string();
    let line = failure_line(&s.run(
        &["login", "--ca-cert", &cert],
        &[("M2M_PASSWORD", &new_password)],
    ));
    assert!(line.contains("certificate"), "{line}");
    s.served.terminate();
}

#[test]
fn tls_client_a_ca_cert_that_is_missing_or_not_pem_is_one_line() {
    let env = Env::without_database();
    let dir = env.dir.path();
    std::fs::write(dir.join("notes.txt"), "not a certificate\n").unwrap();
    let key = KeyPair::generate().unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("der.crt"), [0x30, 0x82, 0x01, 0x00, 0xff]).unwrap();
    for (file, reason) in [
        ("missing.pem", "No such file or directory"),
        ("notes.txt", "no PEM certificate"),
        ("key.pem", "no PEM certificate"),
        ("der.crt", "no PEM certificate"),
        (".", "Is a directory"),
    ] {
        let path = dir.join(file).display().to_string();
        for command in ["login", "logout", "reset-password"] {
            let out = Command::new(BIN)
                .env_clear()
                .current_dir(dir)
                .env("M2M_URL", "https://127.0.0.1:9/api")
                .env("M2M_CLIENT_ID", "app")
                .env("M2M_CLIENT_SECRET", "secret")
                .env("M2M_CA_CERT", &path)
                .args([command])
                .output()
                .unwrap();
            let line = failure_line(&out);
            let expected = format!("error: cannot read the CA certificate {path}: ");
            assert!(line.starts_with(&expected), "{line}");
            assert!(line.contains(reason), "{line}");
            assert!(line.ends_with("; pass a PEM file"), "{line}");
        }
    }
}

#[test]
fn tls_client_ssl_cert_file_and_dir_replace_the_system_roots() {
    let s = Setup::new();
    let ca = s.ca();
    one_line(&s.run(&["login"], &[("SSL_CERT_FILE", &ca)]));
    let only_ca = s.env.dir.path().join("certs");
    std::fs::create_dir(&only_ca).unwrap();
    std::fs::copy(&s.pki.ca, only_ca.join("ca.pem")).unwrap();
    let dirs = format!("/nonexistent:{}", only_ca.display());
    one_line(&s.run(&["login"], &[("SSL_CERT_DIR", &dirs)]));
    s.served.terminate();
}

/// An HTTP proxy that tunnels `CONNECT` to loopback only, and records each request line.
struct ConnectProxy {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let _ = tunnel(client, &seen);
                });
            }
        });
        Self { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn tunnel(mut client: TcpStream, seen: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let line = head.lines().next().unwrap_or_default().to_owned();
    seen.lock().unwrap().push(line.clone());
    let target = line
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .filter(|target| target.starts_with("127.0.0.1:"));
    let Some(target) = target else {
        return client.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
    };
    let mut upstream = TcpStream::connect(target)?;
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    let (mut from_client, mut to_client) = (client.try_clone()?, upstream.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut upstream);
        let _ = upstream.shutdown(std::net::Shutdown::Write);
    });
    std::io::copy(&mut to_client, &mut client)?;
    client.shutdown(std::net::Shutdown::Write)
}

#[test]
fn tls_client_https_proxy_from_the_environment_unless_no_proxy() {
    let s = Setup::new();
    let ca = s.ca();
    let proxy = ConnectProxy::start();
    let authority = s.served.base.trim_start_matches("http://").to_owned();

    one_line(&s.run(&["login", "--ca-cert", &ca], &[("HTTPS_PROXY", &proxy.url)]));
    let requests = proxy.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request, &format!("CONNECT {authority} HTTP/1.1"));
    }
    // Lower-case names too; NO_PROXY sends loopback straight to the server.
    let before = proxy.requests().len();
    for vars in [
        [
            ("https_proxy", proxy.url.as_str()),
            ("NO_PROXY", "127.0.0.1"),
        ],
        [
            ("HTTPS_PROXY", proxy.url.as_str()),
            ("no_proxy", "localhost,127.0.0.0/8"),
        ],
    ] {
        one_line(&s.run(&["login", "--ca-cert", &ca], &vars));
    }
    assert_eq!(proxy.requests().len(), before);
    // A proxy that is not there fails the command: it is really used.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let line = failure_line(&s.run(&["login", "--ca-cert", &ca], &[("HTTPS_PROXY", &dead)]));
    assert!(line.contains("cannot connect to"), "{line}");
    s.served.terminate();
}

/// The SDK alone: a builder with the CA logs in; without it, `Error::Transport` names the
/// certificate problem. (In-process: a proxy in the test's own environment needs `NO_PROXY`
/// to list 127.0.0.1.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_sdk_builder_with_and_without_the_ca() {
    let s = tokio::task::spawn_blocking(Setup::new).await.unwrap();
    let builder = || {
        Client::builder()
            .base_url(&s.url())
            .unwrap()
            .oauth_client_credentials("app", SecretString::from(s.secret.clone()))
    };
    let login = LogInRequest::new("alice", &s.password);

    let pem = std::fs::read(&s.pki.ca).unwrap();
    for client in [
        builder().ca_cert_file(&s.pki.ca).unwrap().build().unwrap(),
        // Only the private CA: no built-in, no system roots.
        builder()
            .webpki_roots(false)
            .native_roots(false)
            .add_root_certificate_pem(&pem)
            .unwrap()
            .build()
            .unwrap(),
    ] {
        let answer = client
            .session_management()
            .start_connectivity_management_session(Some(&login))
            .await
            .unwrap();
        assert!(answer.result.session_token.is_some());
    }

    let err = builder()
        .build()
        .unwrap()
        .session_management()
        .start_connectivity_management_session(Some(&login))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    let line = err.to_string();
    assert!(
        line.contains("invalid peer certificate: UnknownIssuer"),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line}");

    tokio::task::spawn_blocking(move || s.served.terminate())
        .await
        .unwrap();
}
