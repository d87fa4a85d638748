use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use super::{DomainError, SessionService};
use crate::crypto::{derive_api_token, digest, new_api_token_seed};
use crate::store::{ApiTokenRecord, ClientRecord};
use crate::time::Timestamp;

/// What a client presents in its `Authorization: Basic` header.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The client's id.
    pub client_id: String,
    /// The secret it presented; only ever compared with the stored hash.
    pub secret: SecretString,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An API token as handed to its client.
#[derive(Debug)]
pub struct IssuedApiToken {
    /// The bearer token, to be handed to its client and nowhere else.
    pub access_token: SecretString,
    /// Remaining lifetime: the same token asked for again later has less left.
    pub expires_in: Duration,
    /// The granted scope, normalised (sorted, space-separated).
    pub scope: String,
}

/// What RFC 7009 revocation found; both answer 200, as the RFC asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The client's own live token was revoked.
    Revoked,
    /// RFC 7009: unknown and already revoked tokens are not an error.
    Unknown,
}

/// RFC 6749 scope syntax, split, deduplicated and sorted so equal sets compare equal.
pub fn normalize_scope(scope: &str) -> Result<Vec<String>, DomainError> {
    let valid = |c: char| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c);
    let mut tokens: Vec<String> = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.iter().any(|t| !t.chars().all(valid)) {
        return Err(DomainError::InvalidScope);
    }
    tokens.sort();
    tokens.dedup();
    Ok(tokens)
}

/// An OAuth client that proved its secret on this request. It carries the secret it presented,
/// from which its API token is derived (see `crypto::derive_api_token`), and is made only by
/// [`SessionService::authenticate_client`].
pub struct AuthenticatedClient {
    record: ClientRecord,
    secret: SecretString,
}

impl AuthenticatedClient {
    /// The client's id.
    pub fn client_id(&self) -> &str {
        &self.record.client_id
    }
}

impl SessionService {
    /// Verifies a client's id and secret; unknown clients cost a dummy hash too (and are
    /// created first in simulator mode).
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
        now: Timestamp,
    ) -> Result<AuthenticatedClient, DomainError> {
        self.simulate_client(&credentials.client_id, &credentials.secret, now)
            .await?;
        let client = self.store.find_client(&credentials.client_id).await?;
        let stored = client.as_ref().map(|c| c.secret_hash.as_str());
        // Verified whether or not the client exists (a dummy hash then), so that the time of
        // the answer does not tell which client ids exist.
        let verified = self.hasher.verify(&credentials.secret, stored).await?;
        match client {
            Some(record) if verified => Ok(AuthenticatedClient {
                record,
                secret: credentials.secret.clone(),
            }),
            _ => Err(DomainError::InvalidClient),
        }
    }

    /// Client-credentials grant: the live token for (client, scope), or a new one.
    ///
    /// The token is derived from the secret `client` presented, so only its holder gets the
    /// same token back within the hour.
    pub async fn issue_api_token(
        &self,
        client: &AuthenticatedClient,
        requested_scope: Option<&str>,
        now: Timestamp,
    ) -> Result<IssuedApiToken, DomainError> {
        let (secret, client) = (&client.secret, &client.record);
        let scope = grant_scope(client, requested_scope)?;
        // Two rounds at most: the second only when the stored token was derived from a secret
        // the client no longer has, which the first round deletes.
        for _ in 0..2 {
            let seed = new_api_token_seed(self.rng.as_ref());
            let candidate_token = derive_api_token(secret, &client.client_id, &seed);
            let candidate = ApiTokenRecord {
                token_digest: digest(&candidate_token),
                client_id: client.client_id.clone(),
                scope: scope.clone(),
                seed,
                issued_at: now,
                expires_at: now.plus(self.policy.api_token_ttl),
            };
            let live = self.store.issue_api_token(&candidate, now).await?;
            let token = if live.seed == candidate.seed {
                candidate_token
            } else {
                derive_api_token(secret, &client.client_id, &live.seed)
            };
            if digest(&token).ct_eq(&live.token_digest) {
                return Ok(IssuedApiToken {
                    access_token: SecretString::from(token),
                    expires_in: now.until(live.expires_at),
                    scope,
                });
            }
            self.store.delete_api_token(&live.token_digest).await?;
        }
        Err(DomainError::InvalidClient)
    }

    /// The OAuth client a bearer token belongs to, if the token is live.
    pub async fn authenticate_api_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<String, DomainError> {
        match self.store.find_api_token(&digest(token)).await? {
            Some(record) if record.expires_at > now => Ok(record.client_id),
            _ => Err(DomainError::InvalidApiToken),
        }
    }

    /// RFC 7009 revocation by the token's own client.
    pub async fn revoke_api_token(
        &self,
        client: &AuthenticatedClient,
        token: &str,
    ) -> Result<RevokeOutcome, DomainError> {
        let client = &client.record;
        let token_digest = digest(token);
        let Some(record) = self.store.find_api_token(&token_digest).await? else {
            return Ok(RevokeOutcome::Unknown);
        };
        if record.client_id != client.client_id {
            return Err(DomainError::UnauthorizedClient);
        }
        Ok(if self.store.delete_api_token(&token_digest).await? {
            RevokeOutcome::Revoked
        } else {
            RevokeOutcome::Unknown
        })
    }
}

/// A client with configured scopes gets only those (all of them when it asks for none); a client
/// without gets whatever it asked for echoed back.
fn grant_scope(client: &ClientRecord, requested: Option<&str>) -> Result<String, DomainError> {
    let Some(requested) = requested else {
        return Ok(client.scopes.join(" "));
    };
    let requested = normalize_scope(requested)?;
    if !client.scopes.is_empty() && requested.iter().any(|s| !client.scopes.contains(s)) {
        return Err(DomainError::InvalidScope);
    }
    Ok(requested.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_normalise_and_validate() {
        assert_eq!(normalize_scope("b a  b").unwrap(), vec!["a", "b"]);
        assert!(normalize_scope("").unwrap().is_empty());
        assert!(normalize_scope("bad\"quote").is_err());
        assert!(normalize_scope("back\\slash").is_err());
    }

    #[test]
    fn grants() {
        let mut client = ClientRecord {
            client_id: "c".into(),
            secret_hash: String::new(),
            scopes: vec![],
            created_at: Timestamp(0),
        };
        assert_eq!(grant_scope(&client, None).unwrap(), "");
        assert_eq!(grant_scope(&client, Some("x y")).unwrap(), "x y");
        client.scopes = vec!["a".into(), "b".into()];
        assert_eq!(grant_scope(&client, None).unwrap(), "a b");
        assert_eq!(grant_scope(&client, Some("b")).unwrap(), "b");
        assert!(matches!(
            grant_scope(&client, Some("c")),
            Err(DomainError::InvalidScope)
        ));
    }
}
