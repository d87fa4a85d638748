//! OAuth form bodies: never a panic; accepted forms never repeat a parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_session_server::http::parse::form;

fuzz_target!(|data: &[u8]| {
    if let Some(pairs) = form(data) {
        let mut names: Vec<_> = pairs.iter().map(|(k, _)| k).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), pairs.len());
    }
});
