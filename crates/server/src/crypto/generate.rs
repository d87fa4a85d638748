use rand::Rng as _;
use rand::distributions::Alphanumeric;
use secrecy::SecretString;

use super::random::{Draw, Randomness};

/// Length of a server-generated password: 22 characters of [A-Za-z0-9] carry about 131 bits.
pub const GENERATED_PASSWORD_LEN: usize = 22;

/// A new random password with at least one upper-case letter, lower-case letter and digit.
///
/// Classes are enforced by rejection (redrawing the whole password) rather than by placing
/// characters, which would make the positions predictable.
pub fn generate_password(rng: &dyn Randomness) -> SecretString {
    loop {
        let candidate = random_alphanumeric(rng, GENERATED_PASSWORD_LEN);
        let has = |f: fn(&char) -> bool| candidate.chars().any(|c| f(&c));
        if has(char::is_ascii_uppercase)
            && has(char::is_ascii_lowercase)
            && has(char::is_ascii_digit)
        {
            return SecretString::from(candidate);
        }
    }
}

/// A new OAuth client secret (32 alphanumerics, about 190 bits).
pub fn generate_client_secret(rng: &dyn Randomness) -> SecretString {
    SecretString::from(random_alphanumeric(rng, 32))
}

fn random_alphanumeric(rng: &dyn Randomness, len: usize) -> String {
    Draw(rng)
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::crypto::OsRandomness;

    #[test]
    fn passwords_have_the_promised_shape() {
        for _ in 0..200 {
            let p = generate_password(&OsRandomness);
            let p = p.expose_secret();
            assert_eq!(p.len(), GENERATED_PASSWORD_LEN);
            assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
        }
        assert_ne!(
            generate_password(&OsRandomness).expose_secret(),
            generate_password(&OsRandomness).expose_secret()
        );
    }
}
