//! The client's IP: the socket peer, or `X-Forwarded-For` when the peer is a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;

use super::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self(
            peer.map(|p| resolve(p, &forwarded, &state.trusted_proxies)),
        ))
    }
}

/// Walks `X-Forwarded-For` from the right (nearest hop first) while the hops are trusted
/// proxies; the first untrusted address is the client. An untrusted peer's header is ignored,
/// since anyone can send one.
pub fn resolve(peer: IpAddr, forwarded_for: &str, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        // Untrusted peer: header ignored.
        assert_eq!(
            resolve(ip("203.0.113.9"), "198.51.100.1", &trusted),
            ip("203.0.113.9")
        );
        // Trusted peer: the rightmost untrusted hop.
        assert_eq!(
            resolve(ip("10.1.1.1"), "198.51.100.1", &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            resolve(ip("10.1.1.1"), "1.1.1.1, 198.51.100.1, 10.2.2.2", &trusted),
            ip("198.51.100.1"),
            "a spoofed leftmost entry is not believed"
        );
        // No or bad header: the peer.
        assert_eq!(resolve(ip("10.1.1.1"), "", &trusted), ip("10.1.1.1"));
        assert_eq!(resolve(ip("10.1.1.1"), "garbage", &trusted), ip("10.1.1.1"));
        assert_eq!(
            resolve(ip("::1"), "2001:db8::7", &trusted),
            ip("2001:db8::7")
        );
    }
}
