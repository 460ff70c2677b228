//! The client's IP address: the socket peer's, or, when the peer is a trusted reverse
//! proxy, the nearest `X-Forwarded-For` hop that is not one.
//!
//! Hops are read from the right. Each trusted proxy appends the address it received the
//! request from, so the first untrusted address from the right is the one that talked to
//! the outermost trusted proxy; anything left of it was written by the client itself and
//! could be anything.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// The reverse proxies whose `X-Forwarded-For` is believed (`PALAVER_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `PALAVER_TRUSTED_PROXIES` entry that is neither an address nor a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProxy(String);

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is neither an IP address nor a CIDR range such as 10.0.0.0/8",
            self.0
        )
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidProxy;

    /// A comma-separated list of addresses (`10.0.0.7`, `::1`) and CIDR ranges
    /// (`10.0.0.0/8`, `fd00::/8`).
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| InvalidProxy(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    /// No proxy is trusted: the socket peer is always the client.
    pub fn none() -> Self {
        TrustedProxies(Vec::new())
    }

    /// True when `address` is a trusted proxy.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For` values (in
    /// header order; each may list several hops).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(address) = parse_hop(hop) else {
                return client;
            };
            client = address;
            if !self.contains(address) {
                return address;
            }
        }
        client
    }
}

/// One hop: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_the_header_says() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            proxies.client_ip(ip("203.0.113.9"), ["1.2.3.4"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::none().client_ip(ip("10.0.0.1"), ["1.2.3.4"]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let proxies: TrustedProxies = "10.0.0.0/8, 192.168.1.1".parse().unwrap();
        // The client wrote a fake first hop; the proxies appended the real ones.
        let header = ["6.6.6.6, 198.51.100.7, 192.168.1.1"];
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), header),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), ["6.6.6.6", "198.51.100.7:4711"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_missing_or_garbled_header_leaves_the_nearest_known_address() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), []), ip("10.0.0.2"));
        assert_eq!(
            proxies.client_ip(ip("10.0.0.2"), ["junk, 10.0.0.9"]),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let proxies: TrustedProxies = "127.0.0.1".parse().unwrap();
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), ["2001:db8::1"]),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn entries_must_be_addresses_or_ranges() {
        assert!("10.0.0.0/8,,::1".parse::<TrustedProxies>().is_ok());
        let err = "10.0.0.0/8, proxy.local"
            .parse::<TrustedProxies>()
            .unwrap_err();
        assert!(err.to_string().contains("proxy.local"));
    }
}
