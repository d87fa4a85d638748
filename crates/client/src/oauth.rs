//! The API token: fetched lazily, cached, refreshed ahead of expiry, one fetch at a time.

use std::time::Duration;

use m2m_session_model::{OAuthErrorResponse, TokenResponse};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::Instrument as _;
use url::form_urlencoded;

use crate::Error;
use crate::client::{Client, RawResponse, Repeat};

/// Refresh this long before expiry (plus jitter), so no call carries a token about to die.
const REFRESH_AHEAD: Duration = Duration::from_secs(60);
const REFRESH_JITTER_MS: u64 = 15_000;
/// Used when the server omits `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub(crate) struct TokenCache {
    /// Holding the lock while fetching makes concurrent callers wait for the one fetch.
    slot: Mutex<Option<Cached>>,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
    expires_at: Instant,
}

impl TokenCache {
    pub(crate) async fn get(&self, client: &Client) -> Result<SecretString, Error> {
        let mut slot = self.slot.lock().await;
        let now = Instant::now();
        if let Some(cached) = slot.as_ref()
            && now < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        match fetch(client).await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                *slot = Some(fresh);
                Ok(token)
            }
            // A failed early refresh still leaves a token that works: keep using it.
            Err(e) => match slot.as_ref() {
                Some(cached) if now < cached.expires_at => {
                    tracing::warn!(error = %e, "API token refresh failed; using the current token");
                    Ok(cached.token.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Drops `token` if it is still the cached one (a newer one is kept).
    pub(crate) async fn invalidate(&self, token: &SecretString) {
        let mut slot = self.slot.lock().await;
        if slot
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == token.expose_secret())
        {
            *slot = None;
        }
    }

    pub(crate) async fn clear(&self) {
        *self.slot.lock().await = None;
    }
}

async fn fetch(client: &Client) -> Result<Cached, Error> {
    let inner = &client.inner;
    let url = format!("{}/oauth2/token", inner.oauth_base);
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = &inner.scope {
            form.append_pair("scope", scope);
        }
        form.finish()
    };
    // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
    let id: String = form_urlencoded::byte_serialize(inner.client_id.as_bytes()).collect();
    let secret: String =
        form_urlencoded::byte_serialize(inner.client_secret.expose_secret().as_bytes()).collect();
    // Not entered with a guard: that would leak the span into whatever else the thread polls
    // while this future waits.
    let span = tracing::debug_span!("oauth_token", client_id = %inner.client_id);
    let sent_at = Instant::now();
    let raw = client
        .send(Repeat::Safe, inner.attempt_timeout, None, || {
            inner
                .http
                .post(&url)
                .basic_auth(&id, Some(&secret))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form.clone())
        })
        .instrument(span)
        .await?;
    parse(raw, sent_at)
}

fn parse(raw: RawResponse, sent_at: Instant) -> Result<Cached, Error> {
    let body_text = || String::from_utf8_lossy(&raw.body).into_owned();
    if !raw.status.is_success() {
        return Err(Error::OAuth {
            status: raw.status,
            body: serde_json::from_slice::<OAuthErrorResponse>(&raw.body).ok(),
            raw_body: body_text(),
        });
    }
    let Ok(token) = serde_json::from_slice::<TokenResponse>(&raw.body) else {
        return Err(Error::UndecodableResponse {
            status: raw.status,
            headers: Box::new(raw.headers),
            raw_body: body_text(),
        });
    };
    let lifetime = token
        .expires_in
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    let jitter = Duration::from_millis(crate::retry::random_up_to(REFRESH_JITTER_MS));
    let ahead = (REFRESH_AHEAD + jitter).min(lifetime / 2);
    Ok(Cached {
        token: SecretString::from(token.access_token),
        refresh_at: sent_at + lifetime - ahead,
        expires_at: sent_at + lifetime,
    })
}
