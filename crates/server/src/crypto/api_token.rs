use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};

use super::Randomness;

/// Random material stored beside an API token's digest.
pub fn new_api_token_seed(rng: &dyn Randomness) -> Vec<u8> {
    let mut seed = vec![0u8; 32];
    rng.fill(&mut seed);
    seed
}

/// The API token for a stored seed, keyed by the client secret.
///
/// The contract asks for the same token within its hour, yet forbids keeping it in plaintext.
/// Deriving it from the secret (which the client presents on every token request and which the
/// database holds only as an argon2 hash) gives back the same token to the rightful client while
/// the stored seed alone reveals nothing.
pub fn derive_api_token(client_secret: &SecretString, client_id: &str, seed: &[u8]) -> String {
    let mut mac = super::hmac(client_secret.expose_secret().as_bytes());
    mac.update(b"m2m-session api token v1\0");
    mac.update(client_id.as_bytes());
    mac.update(b"\0");
    mac.update(seed);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::OsRandomness;

    #[test]
    fn same_inputs_same_token_any_change_another() {
        let secret = SecretString::from("s3cret");
        let seed = new_api_token_seed(&OsRandomness);
        let a = derive_api_token(&secret, "c1", &seed);
        assert_eq!(a, derive_api_token(&secret, "c1", &seed));
        assert_ne!(
            a,
            derive_api_token(&SecretString::from("other"), "c1", &seed)
        );
        assert_ne!(a, derive_api_token(&secret, "c2", &seed));
        assert_ne!(
            a,
            derive_api_token(&secret, "c1", &new_api_token_seed(&OsRandomness))
        );
        assert_eq!(a.len(), 43);
    }
}
