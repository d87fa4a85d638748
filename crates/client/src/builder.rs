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
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("environment", &self.environment)
            .field("oauth_base", &self.oauth_base)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("retry", &self.retry)
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
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| Error::Construction(format!("HTTP client: {e}")))?;
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

    #[test]
    fn debug_hides_the_secret() {
        let b = ClientBuilder::default()
            .oauth_client_credentials("id", SecretString::from("super-secret-value"));
        assert!(!format!("{b:?}").contains("super-secret-value"));
        let c = b.build().unwrap();
        assert!(!format!("{c:?}").contains("super-secret-value"));
    }
}
