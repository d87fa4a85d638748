//! JSON request bodies with any content type: never a panic, and the contract's order holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_session_server::http::parse::{BodyError, json_object};

const TYPES: [Option<&str>; 5] = [
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    Some("application/merge-patch+json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let content_type = TYPES[usize::from(choice) % TYPES.len()];
    match json_object(content_type, body) {
        Ok(map) => assert!(serde_json::to_vec(&map).is_ok()),
        Err(BodyError::Undefined) => {}
        Err(BodyError::UnsupportedMediaType) => {
            assert!(!body.iter().all(u8::is_ascii_whitespace));
        }
        Err(BodyError::NotAnObject) => {}
    }
});
