//! `VZ-M2M-Token` and `X-Forwarded-For`: never a panic; accepted tokens are canonical GUIDs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_session_server::crypto::SessionToken;
use m2m_session_server::http::resolve_client_ip;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = SessionToken::parse(text) {
        let canonical = token.expose();
        assert_eq!(canonical.len(), 36);
        assert_eq!(canonical, canonical.to_lowercase());
        assert_eq!(SessionToken::parse(canonical).ok().as_ref(), Some(&token));
    }
    let trusted = ["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let peer = "127.0.0.1".parse().unwrap();
    let _ = resolve_client_ip(peer, text, &trusted);
});
