//! Familiar sources (opt-in): a network a user logged in from recently gets counters of its
//! own, so that guesses from anywhere else, which share one bucket, can lock only that bucket
//! and never the fleet's own machines.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::store::SHARED_BUCKET;
use crate::time::Timestamp;

/// How a client address is grouped into a familiar source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FamiliarSources {
    /// One bucket for every source, as the platform counts.
    #[default]
    Off,
    /// Each address is its own source.
    Address,
    /// An IPv4 /24 or an IPv6 /64 is one source: a fleet's machines behind one network.
    Network,
}

impl FamiliarSources {
    /// The name settings use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Address => "address",
            Self::Network => "network",
        }
    }

    /// The source `ip` belongs to, as stored (`None` when off). An IPv4 address written as
    /// IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
    pub fn source_of(self, ip: IpAddr) -> Option<String> {
        match (self, ip.to_canonical()) {
            (Self::Off, _) => None,
            (Self::Address, ip) => Some(ip.to_string()),
            (Self::Network, IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                Some(format!("{a}.{b}.{c}.0/24"))
            }
            (Self::Network, IpAddr::V6(v6)) => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                Some(format!("{prefix}/64"))
            }
        }
    }
}

impl FromStr for FamiliarSources {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "address" => Ok(Self::Address),
            "network" => Ok(Self::Network),
            other => Err(format!(
                "unknown familiar-sources mode {other:?}; use off, address or network"
            )),
        }
    }
}

/// The bucket an attempt from `source` counts in: the source's own when the user last
/// logged in from it (`last_success`) within `window` of `now`, else the shared one.
pub fn bucket(
    source: Option<&str>,
    last_success: Option<Timestamp>,
    window: Duration,
    now: Timestamp,
) -> String {
    match (source, last_success) {
        (Some(source), Some(at)) if at > now.minus(window) => source.to_owned(),
        _ => SHARED_BUCKET.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(10_000_000);
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn addresses_group_by_mode() {
        let v4: IpAddr = "192.0.2.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(FamiliarSources::Off.source_of(v4), None);
        assert_eq!(
            FamiliarSources::Address.source_of(v4).unwrap(),
            "192.0.2.77"
        );
        assert_eq!(
            FamiliarSources::Network.source_of(v4).unwrap(),
            "192.0.2.0/24"
        );
        assert_eq!(
            FamiliarSources::Network.source_of(v6).unwrap(),
            "2001:db8:1:2::/64"
        );
        assert_eq!("network".parse(), Ok(FamiliarSources::Network));
        assert!("everything".parse::<FamiliarSources>().is_err());
    }

    #[test]
    fn a_source_is_familiar_only_within_the_window() {
        let s = Some("192.0.2.0/24");
        assert_eq!(bucket(s, Some(T0.minus(DAY)), 2 * DAY, T0), "192.0.2.0/24");
        assert_eq!(
            bucket(s, Some(T0.minus(2 * DAY)), 2 * DAY, T0),
            SHARED_BUCKET
        );
        assert_eq!(bucket(s, None, 2 * DAY, T0), SHARED_BUCKET);
        assert_eq!(bucket(None, Some(T0), 2 * DAY, T0), SHARED_BUCKET);
    }
}
