use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::client::{Client, Inner};
use crate::oauth::TokenCache;
use crate::{Error, RetryConfig};

/// Where the service lives. The first three are the platform's own hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Environment {
    /// `https://thingspace.verizon.com/api`.
    Production,
    /// `https://staging.thingspace.verizon.com/api`.
    Staging,
    /// The platform's mock server.
    Mock,
    /// Any API base URL, including `/api`, e.g. `http://127.0.0.1:8080/api`.
    Custom(Url),
}

impl Environment {
    /// The API base (the SDKs' "Thingspace" server), including `/api`.
    pub fn base_url(&self) -> String {
        match self {
            Self::Production => "https://thingspace.verizon.com/api".to_owned(),
            Self::Staging => "https://staging.thingspace.verizon.com/api".to_owned(),
            Self::Mock => "https://mock-staging.thingspace.verizon.com/api".to_owned(),
            Self::Custom(url) => url.as_str().trim_end_matches('/').to_owned(),
        }
    }
}

/// Builds a [`Client`]; [`ClientBuilder::build`] checks everything before anything is sent.
///
/// # TLS
///
/// Server certificates are checked against the Mozilla root certificates built into the SDK
/// (`webpki-roots`, as the other SDKs ship theirs), plus any CA added with
/// [`ClientBuilder::ca_cert_file`] or [`ClientBuilder::add_root_certificate_pem`]. With the
/// `native-roots` Cargo feature the operating system's roots are trusted too
/// (`ClientBuilder::native_roots`); they are read when the client is built, from
/// `SSL_CERT_FILE` and/or `SSL_CERT_DIR` *instead of* the system store when either is set.
/// Without that feature no environment variable changes which roots are trusted.
///
/// ```no_run
/// # fn demo() -> Result<(), m2m_session_client::Error> {
/// use m2m_session_client::Client;
/// use secrecy::SecretString;
///
/// let client = Client::builder()
///     .base_url("https://sessions.internal.example/api")?
///     .ca_cert_file("/etc/m2m/ca.pem")?
///     .oauth_client_credentials("my-app", SecretString::from("client-secret"))
///     .build()?;
/// # drop(client); Ok(()) }
/// ```
///
/// # Proxies
///
/// Requests go through the proxy named by `HTTPS_PROXY` (https URLs), `HTTP_PROXY` (http
/// URLs) or `ALL_PROXY` (either), lower-case names too, except to the hosts, domains and
/// address ranges listed in `NO_PROXY` (`127.0.0.1,localhost,.internal.example,10.0.0.0/8`).
/// They are read when the client is built. A loopback address is proxied too unless
/// `NO_PROXY` lists it. Proxies are `http://` URLs (HTTPS through `CONNECT`), credentials as
/// `http://user:password@proxy:3128`; SOCKS is not built in.
#[derive(Clone)]
pub struct ClientBuilder {
    environment: Environment,
    oauth_base: Option<Url>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    scope: Option<String>,
    connect_timeout: Duration,
    attempt_timeout: Duration,
    operation_timeout: Duration,
    retry: RetryConfig,
    user_agent: String,
    root_certificates: Vec<reqwest::Certificate>,
    webpki_roots: bool,
    #[cfg(feature = "native-roots")]
    native_roots: bool,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("environment", &self.environment)
            .field("oauth_base", &self.oauth_base)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("retry", &self.retry)
            .field("root_certificates", &self.root_certificates.len())
            .field("webpki_roots", &self.webpki_roots)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            environment: Environment::Production,
            oauth_base: None,
            client_id: None,
            client_secret: None,
            scope: None,
            connect_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(90),
            retry: RetryConfig::default(),
            user_agent: concat!("m2m-session-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            root_certificates: Vec::new(),
            webpki_roots: true,
            #[cfg(feature = "native-roots")]
            native_roots: true,
        }
    }
}

impl ClientBuilder {
    /// Which platform environment, or a custom base URL (default: production).
    #[must_use]
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// A custom API base URL, including `/api`; shorthand for `Environment::Custom`.
    pub fn base_url(self, url: &str) -> Result<Self, Error> {
        let url = Url::parse(url)
            .map_err(|e| Error::Construction(format!("invalid base URL {url:?}: {e}")))?;
        Ok(self.environment(Environment::Custom(url)))
    }

    /// The OAuth server base, when it is not `{base}/ts/v1`.
    #[must_use]
    pub fn oauth_base_url(mut self, url: Url) -> Self {
        self.oauth_base = Some(url);
        self
    }

    /// The OAuth client credentials the API token is requested with.
    #[must_use]
    pub fn oauth_client_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.client_secret = Some(client_secret);
        self
    }

    /// The `scope` asked for with the API token (none by default).
    #[must_use]
    pub fn oauth_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Time allowed to open a connection (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Time allowed to one attempt, from sending to the end of the body (default 30 s).
    #[must_use]
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }

    /// Time allowed to a whole operation: token fetch, attempts and waits (default 90 s).
    #[must_use]
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// When to retry; see [`RetryConfig`] (default: 3 attempts, only where safe).
    #[must_use]
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The `User-Agent` header (default: `m2m-session-client/VERSION`).
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Trusts the CA certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks,
    /// as in a `.pem` or `.crt` bundle) besides the default roots: for a server whose
    /// certificate a private CA signed. Anything but certificates (a key, text) is refused.
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let certificates = parse_ca_pem(pem).map_err(Error::Construction)?;
        self.root_certificates.extend(certificates);
        Ok(self)
    }

    /// Trusts the CA certificates in the PEM file at `path`; see
    /// [`ClientBuilder::add_root_certificate_pem`]. The file is read now.
    pub fn ca_cert_file(mut self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let fail = |reason: String| {
            Error::Construction(format!(
                "cannot read the CA certificate {}: {reason}",
                path.display()
            ))
        };
        let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let certificates = parse_ca_pem(&pem).map_err(fail)?;
        self.root_certificates.extend(certificates);
        Ok(self)
    }

    /// Whether to trust the Mozilla root certificates built into the SDK (default: yes). Off,
    /// only the CAs added here (and the system's, with `native-roots`) are trusted.
    #[must_use]
    pub fn webpki_roots(mut self, enabled: bool) -> Self {
        self.webpki_roots = enabled;
        self
    }

    /// Whether to trust the operating system's root certificates (default: yes, with the
    /// `native-roots` feature): on Linux the system bundle; when `SSL_CERT_FILE` (a PEM file)
    /// or `SSL_CERT_DIR` (`:`-separated directories of PEM files) is set, those instead.
    #[cfg(feature = "native-roots")]
    #[must_use]
    pub fn native_roots(mut self, enabled: bool) -> Self {
        self.native_roots = enabled;
        self
    }

    /// Validates the settings and builds the client.
    pub fn build(self) -> Result<Client, Error> {
        let base = checked_base(&self.environment.base_url(), "base URL")?;
        let oauth_base = match &self.oauth_base {
            Some(url) => checked_base(url.as_str(), "OAuth base URL")?,
            None => format!("{base}/ts/v1"),
        };
        let client_id = self
            .client_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::Construction("OAuth client id is required".into()))?;
        let client_secret = self
            .client_secret
            .ok_or_else(|| Error::Construction("OAuth client secret is required".into()))?;
        for (name, d) in [
            ("connect timeout", self.connect_timeout),
            ("attempt timeout", self.attempt_timeout),
            ("operation timeout", self.operation_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Construction(format!(
                    "{name} must be greater than zero"
                )));
            }
        }
        #[cfg(feature = "native-roots")]
        let native_roots = self.native_roots;
        #[cfg(not(feature = "native-roots"))]
        let native_roots = false;
        if !self.webpki_roots && !native_roots && self.root_certificates.is_empty() {
            return Err(Error::Construction(
                "no root certificate to trust: add a CA (ca_cert_file) or keep webpki_roots".into(),
            ));
        }
        // All built-in sources off, then each one as asked: whichever reqwest features other
        // crates in the build turn on, the roots trusted are the ones chosen here.
        // Proxies: reqwest reads HTTP(S)_PROXY / ALL_PROXY / NO_PROXY at build (never disabled).
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .tls_built_in_root_certs(false)
            .tls_built_in_webpki_certs(self.webpki_roots);
        #[cfg(feature = "native-roots")]
        {
            http = http.tls_built_in_native_certs(native_roots);
        }
        for certificate in self.root_certificates {
            http = http.add_root_certificate(certificate);
        }
        let http = http
            .build()
            .map_err(|e| Error::Construction(format!("HTTP client: {}", error_chain(&e))))?;
        let budget = self.retry.new_budget();
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                oauth_base,
                client_id,
                client_secret,
                scope: self.scope,
                attempt_timeout: self.attempt_timeout,
                operation_timeout: self.operation_timeout,
                retry: self.retry,
                budget,
                tokens: TokenCache::default(),
            }),
        })
    }
}

/// The certificates of a PEM text, each one checked as a trust anchor; the reason otherwise.
fn parse_ca_pem(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let certificates = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| format!("not PEM: {}", error_chain(&e)))?;
    if certificates.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    // reqwest decodes the DER only when a client is built: build one that trusts only these,
    // so that a bad certificate is reported here, where its source is known.
    for (i, certificate) in certificates.iter().enumerate() {
        reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(certificate.clone())
            .build()
            .map_err(|e| {
                format!(
                    "certificate {} of {} is not a valid X.509 certificate: {}",
                    i + 1,
                    certificates.len(),
                    error_chain(&e)
                )
            })?;
    }
    Ok(certificates)
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = inner.source();
    }
    line
}

/// An http(s) URL that can be a base, without a trailing slash.
fn checked_base(url: &str, what: &str) -> Result<String, Error> {
    let parsed =
        Url::parse(url).map_err(|e| Error::Construction(format!("invalid {what} {url:?}: {e}")))?;
    if parsed.cannot_be_a_base() || !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Construction(format!(
            "{what} {url:?} must be an http or https URL"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::Construction(format!(
            "{what} {url:?} must not have a query or fragment"
        )));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> ClientBuilder {
        ClientBuilder::default().oauth_client_credentials("id", SecretString::from("s"))
    }

    #[test]
    fn platform_environments() {
        assert_eq!(
            Environment::Production.base_url(),
            "https://thingspace.verizon.com/api"
        );
        assert_eq!(
            Environment::Staging.base_url(),
            "https://staging.thingspace.verizon.com/api"
        );
        assert_eq!(
            Environment::Mock.base_url(),
            "https://mock-staging.thingspace.verizon.com/api"
        );
    }

    #[test]
    fn oauth_base_is_derived_unless_set() {
        let c = builder()
            .base_url("http://127.0.0.1:8080/api/")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.inner.base, "http://127.0.0.1:8080/api");
        assert_eq!(c.inner.oauth_base, "http://127.0.0.1:8080/api/ts/v1");
        let c = builder()
            .oauth_base_url(Url::parse("https://auth.example/oauth").unwrap())
            .build()
            .unwrap();
        assert_eq!(c.inner.oauth_base, "https://auth.example/oauth");
    }

    #[test]
    fn bad_settings_are_construction_errors() {
        assert!(matches!(
            builder().base_url("not a url"),
            Err(Error::Construction(_))
        ));
        let mailto = builder()
            .base_url("mailto:someone@example.com")
            .unwrap()
            .build();
        assert!(matches!(mailto, Err(Error::Construction(_))));
        let ftp = builder().base_url("ftp://example.com/api").unwrap().build();
        assert!(matches!(ftp, Err(Error::Construction(_))));
        assert!(matches!(
            ClientBuilder::default().build(),
            Err(Error::Construction(_))
        ));
        let zero = builder().attempt_timeout(Duration::ZERO).build();
        assert!(matches!(zero, Err(Error::Construction(_))));
    }

    /// A self-signed CA certificate (P-256, no key here), only parsed in these tests.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBkzCCATmgAwIBAgIUIeGLDq/mt3bjnxsebbnpYg/dI4EwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTbTJtLXNlc3Npb24gdGVzdCBDQTAgFw0yNjEyMDMxMzMzMTJa
GA8yMTI2MTEwOTEzMzMxMlowHjEcMBoGA1UEAwwTbTJtLXNlc3Npb24gdGVzdCBD
QTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABIHYrfMhCxi+3UYZNAcwL8yThz6G
DgxiI2UUL1W5I/NVKDAwSUX0pZ3eXD8H+LDrxJeW39W+LGZNF//lOE/GfxqjUzBR
MB0GA1UdDgQWBBR+25Y9QSCqvYxhtLBX9dmXhp8qpzAfBgNVHSMEGDAWgBR+25Y9
QSCqvYxhtLBX9dmXhp8qpzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA
MEUCIE+mBaknAuR8NrnV/Oy4zk8OEf1QiClIuGehkarA68/sAiEA7Ywp4yDvT8dk
3d709lNbsCIXQ6rbHWG4Tmw9jrYN7ZI=
-----END CERTIFICATE-----
";

    fn construction_message(r: Result<ClientBuilder, Error>) -> String {
        match r {
            Err(Error::Construction(message)) => message,
            other => panic!("expected a construction error, got {other:?}"),
        }
    }

    #[test]
    fn a_pem_ca_or_bundle_is_trusted() {
        let b = builder()
            .add_root_certificate_pem(TEST_CA.as_bytes())
            .unwrap();
        assert_eq!(b.root_certificates.len(), 1);
        let bundle = format!("# two CAs\n{TEST_CA}\n{TEST_CA}");
        let b = b.add_root_certificate_pem(bundle.as_bytes()).unwrap();
        assert_eq!(b.root_certificates.len(), 3);
        assert!(format!("{b:?}").contains("root_certificates: 3"), "{b:?}");
        b.base_url("https://127.0.0.1:8443/api")
            .unwrap()
            .build()
            .unwrap();

        let dir = std::env::temp_dir().join(format!("m2m-ca-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("ca.pem");
        std::fs::write(&file, TEST_CA).unwrap();
        let from_file = builder().ca_cert_file(&file);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(from_file.unwrap().root_certificates.len(), 1);
    }

    #[test]
    fn what_is_not_a_pem_certificate_is_refused_with_the_reason() {
        for (input, reason) in [
            (&b"hello"[..], "no PEM certificate"),
            (&b""[..], "no PEM certificate"),
            (
                &b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"[..],
                "no PEM certificate",
            ),
            (
                &b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"[..],
                "certificate 1 of 1 is not a valid X.509 certificate",
            ),
            (
                &b"-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n"[..],
                "not PEM",
            ),
        ] {
            let message = construction_message(builder().add_root_certificate_pem(input));
            assert!(message.contains(reason), "{input:?}: {message}");
            assert!(!message.contains('\n'), "{message}");
        }
        let message = construction_message(builder().ca_cert_file("/nonexistent/ca.pem"));
        assert!(
            message.starts_with("cannot read the CA certificate /nonexistent/ca.pem: "),
            "{message}"
        );
        assert!(message.contains("No such file"), "{message}");
    }

    #[test]
    fn roots_can_be_only_the_ones_added() {
        let none = builder().webpki_roots(false);
        #[cfg(feature = "native-roots")]
        let none = none.native_roots(false);
        assert!(matches!(none.clone().build(), Err(Error::Construction(_))));
        none.add_root_certificate_pem(TEST_CA.as_bytes())
            .unwrap()
            .build()
            .unwrap();
    }

    #[test]
    fn debug_hides_the_secret() {
        let b = ClientBuilder::default()
            .oauth_client_credentials("id", SecretString::from("super-secret-value"));
        assert!(!format!("{b:?}").contains("super-secret-value"));
        let c = b.build().unwrap();
        assert!(!format!("{c:?}").contains("super-secret-value"));
    }
}
