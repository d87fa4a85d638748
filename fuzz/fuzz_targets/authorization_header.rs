//! `Authorization` values, Basic and Bearer: never a panic; decoded ids are never empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_session_server::http::parse::{basic_credentials, bearer_token};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((id, _secret)) = basic_credentials(text) {
        assert!(!id.is_empty());
    }
    if let Some(token) = bearer_token(text) {
        assert!(!token.is_empty());
        assert_eq!(token, token.trim());
    }
});
