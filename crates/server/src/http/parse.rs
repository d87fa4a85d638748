//! Parsing of untrusted request input, as pure functions: the extractors call these, and the
//! fuzz targets (`fuzz/`) drive them with arbitrary bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use m2m_session_model::ErrorCode;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

/// Why a JSON body was refused, in the contract's order of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// No body, or not JSON.
    Undefined,
    /// A `Content-Type` other than JSON.
    UnsupportedMediaType,
    /// JSON, but not an object.
    NotAnObject,
}

impl BodyError {
    /// The contract's `errorCode` for this refusal.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::Undefined => ErrorCode::RequestUndefined,
            Self::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Self::NotAnObject => ErrorCode::DeserializationFailed,
        }
    }
}

/// A request body that must be a JSON object: empty (or `null`) is undefined, a non-JSON
/// media type is unsupported, anything but an object is undeserializable.
pub fn json_object(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Undefined);
    }
    let is_json = content_type
        .and_then(media_type)
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if !is_json {
        return Err(BodyError::UnsupportedMediaType);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Err(BodyError::Undefined),
        Ok(_) | Err(_) => Err(BodyError::NotAnObject),
    }
}

/// The lower-cased media type of a `Content-Type` value, without parameters.
pub fn media_type(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// `Basic base64(urlencode(id):urlencode(secret))` per RFC 6749 §2.3.1, as (id, secret).
pub fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, encoded) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    if id.is_empty() {
        return None;
    }
    Some((id, form_decode(secret)?))
}

/// The token of a `Bearer` authorization value.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
}

fn form_decode(text: &str) -> Option<String> {
    percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// An `application/x-www-form-urlencoded` body; `None` if malformed or a parameter repeats
/// (RFC 6749 §3.2).
pub fn form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_in_the_contract_order() {
        let json = Some("application/json; charset=utf-8");
        assert_eq!(json_object(json, b"  "), Err(BodyError::Undefined));
        assert_eq!(
            json_object(Some("text/plain"), b"  "),
            Err(BodyError::Undefined)
        );
        assert_eq!(
            json_object(Some("text/plain"), b"{}"),
            Err(BodyError::UnsupportedMediaType)
        );
        assert_eq!(
            json_object(None, b"{}"),
            Err(BodyError::UnsupportedMediaType)
        );
        assert_eq!(json_object(json, b"null"), Err(BodyError::Undefined));
        assert_eq!(json_object(json, b"[1]"), Err(BodyError::NotAnObject));
        assert_eq!(json_object(json, b"{"), Err(BodyError::NotAnObject));
        assert!(json_object(Some("application/problem+json"), b"{\"a\":1}").is_ok());
    }

    #[test]
    fn authorization_headers() {
        let basic = format!("Basic {}", STANDARD.encode("my%3Aid:p%40ss+word"));
        assert_eq!(
            basic_credentials(&basic),
            Some(("my:id".into(), "p@ss word".into()))
        );
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(
            basic_credentials(&format!("Basic {}", STANDARD.encode(":secret"))),
            None
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic abc"), None);
    }

    #[test]
    fn forms() {
        assert_eq!(form(b"a=1&b=2").unwrap().len(), 2);
        assert!(form(b"a=1&a=2").is_none());
        assert_eq!(form(b"").unwrap().len(), 0);
    }
}
