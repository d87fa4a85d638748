//! The client's IP: the socket peer, or the forwarded client when the peer is a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
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
        // X-Forwarded-For is what the documented nginx setup sends, so it wins; RFC 7239
        // `Forwarded` serves proxies that send only that.
        let forwarded_for = joined(&parts.headers, "x-forwarded-for");
        Ok(Self(peer.map(|p| {
            if forwarded_for.is_empty() {
                resolve_forwarded(
                    p,
                    &joined(&parts.headers, "forwarded"),
                    &state.trusted_proxies,
                )
            } else {
                resolve(p, &forwarded_for, &state.trusted_proxies)
            }
        })))
    }
}

/// Every field line of a list header as one list (RFC 9110 §5.3).
fn joined(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
}

/// Walks `X-Forwarded-For` from the right (nearest hop first) while the hops are trusted
/// proxies; the first untrusted address is the client. An untrusted peer's header is ignored,
/// since anyone can send one.
pub fn resolve(peer: IpAddr, forwarded_for: &str, trusted: &[IpNet]) -> IpAddr {
    walk(peer, forwarded_for.split(',').map(node_ip), trusted)
}

/// [`resolve`] for RFC 7239 `Forwarded`: the `for=` of each element, nearest hop last.
pub fn resolve_forwarded(peer: IpAddr, forwarded: &str, trusted: &[IpNet]) -> IpAddr {
    let hops = split_unquoted(forwarded, ',').map(|element| {
        split_unquoted(element, ';')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
            .and_then(|(_, value)| node_ip(unquote(value.trim())))
    });
    walk(peer, hops, trusted)
}

/// A hop that is not an address (`unknown`, an obfuscated `_name`, garbage) ends the walk:
/// what lies left of it was written by someone no trusted proxy vouches for.
fn walk(
    peer: IpAddr,
    hops: impl DoubleEndedIterator<Item = Option<IpAddr>>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in hops.rev() {
        let Some(ip) = hop else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One node: `10.0.0.1`, `10.0.0.1:5555`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:443`, IPv4-mapped IPv6 taken as the IPv4 address it is.
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let ip = if let Some(rest) = node.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)?
    } else if let Ok(ip) = node.parse::<IpAddr>() {
        ip
    } else {
        node.parse::<SocketAddr>().ok()?.ip()
    };
    Some(ip.to_canonical())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A quoted-string's content (RFC 9110 §5.6.4), or the token as is.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Splits on `sep` outside double quotes, so a quoted value may contain it.
fn split_unquoted(s: &str, sep: char) -> impl DoubleEndedIterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
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

    #[test]
    fn forwarded_for_entries_with_ports_and_brackets() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.9.9.9");
        for (entry, client) in [
            ("198.51.100.1:5555", "198.51.100.1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:198.51.100.1", "198.51.100.1"),
            ("[::ffff:198.51.100.1]:80", "198.51.100.1"),
        ] {
            assert_eq!(resolve(peer, entry, &trusted), ip(client), "{entry}");
        }
        // A trusted hop written with a port is still trusted and walked past.
        assert_eq!(
            resolve(peer, "198.51.100.1, 10.0.0.1:5555", &trusted),
            ip("198.51.100.1")
        );
        // Mapped trusted hops are trusted too.
        assert_eq!(
            resolve(peer, "198.51.100.1, ::ffff:10.0.0.1", &trusted),
            ip("198.51.100.1")
        );
        for bad in [
            "198.51.100.1:",
            "198.51.100.1:99999x",
            "[2001:db8::1",
            "[2001:db8::1]x",
        ] {
            assert_eq!(resolve(peer, bad, &trusted), peer, "{bad}");
        }
    }

    #[test]
    fn a_mapped_peer_is_its_ipv4_address() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            resolve(ip("::ffff:203.0.113.9"), "198.51.100.1", &trusted),
            ip("203.0.113.9"),
            "untrusted: the peer, as IPv4"
        );
        assert_eq!(
            resolve(ip("::ffff:10.1.1.1"), "198.51.100.1", &trusted),
            ip("198.51.100.1"),
            "a mapped trusted proxy is trusted"
        );
    }

    #[test]
    fn rfc_7239_forwarded_for() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.9.9.9");
        for (header, client) in [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            ("For=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=\"192.0.2.60:8080\"", "192.0.2.60"),
            ("for=192.0.2.43, for=198.51.100.17", "198.51.100.17"),
            ("for=192.0.2.43, for=\"10.0.0.7:1\"", "192.0.2.43"),
            ("proto=https;for=\"::ffff:192.0.2.9\"", "192.0.2.9"),
            ("by=\"a,b;c\";for=192.0.2.5", "192.0.2.5"),
        ] {
            assert_eq!(
                resolve_forwarded(peer, header, &trusted),
                ip(client),
                "{header}"
            );
        }
        // Unknown and obfuscated nodes name no client: the walk stops at the last trusted hop.
        for header in [
            "for=unknown",
            "for=_hidden",
            "for=192.0.2.43, for=_gazonk",
            "proto=http",
            "",
        ] {
            assert_eq!(resolve_forwarded(peer, header, &trusted), peer, "{header}");
        }
        // Untrusted peer: ignored.
        assert_eq!(
            resolve_forwarded(ip("203.0.113.9"), "for=192.0.2.60", &trusted),
            ip("203.0.113.9")
        );
    }
}
