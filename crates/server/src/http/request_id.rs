//! `X-Request-Id` on every response: the caller's own id when it is a sane one (so a gateway's
//! id follows the request through), otherwise a fresh one. The id is in every log line of the
//! request, which is what makes a user's report ("request id …") findable.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Ids longer than this, or with other than `A-Z a-z 0-9 - _ . :`, are replaced: an id is
/// copied into logs and must not be able to forge or bloat them.
const MAX_LEN: usize = 128;

pub fn is_valid(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The request's id, for log spans made further in (set by [`assign`]).
pub fn of(request: &Request) -> &str {
    request
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

/// The request's id as a handler argument, for the audit lines the request leads to.
pub struct RequestId(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let id = parts.headers.get(&HEADER).and_then(|v| v.to_str().ok());
        Ok(Self(id.unwrap_or("-").to_owned()))
    }
}

/// Middleware: keeps a valid incoming id or assigns a new one, and returns it on the response.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(&HEADER) {
        Some(given) if is_valid(given.as_bytes()) => given.clone(),
        _ => {
            let fresh = uuid::Uuid::new_v4().simple().to_string();
            // A simple UUID is always a valid header value.
            HeaderValue::from_str(&fresh).unwrap_or(HeaderValue::from_static("-"))
        }
    };
    request.headers_mut().insert(HEADER, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(HEADER, id);
    response
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        assert!(is_valid(b"0f8c2d9e-1b7a-4c3e-9a51-2b6f0e7d4c11"));
        assert!(is_valid(b"gw:edge-1.req_42"));
        assert!(!is_valid(b""));
        assert!(!is_valid(b"has space"));
        assert!(!is_valid(b"new\nline"));
        assert!(!is_valid(b"quote\"d"));
        assert!(!is_valid(&[b'a'; 129]));
    }
}
