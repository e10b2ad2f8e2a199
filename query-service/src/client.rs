//! Who is asking: the client's network address, behind trusted proxies, as the throttles count it.
//!
//! The TCP peer is the client unless it is one of `TRUSTED_PROXIES`; only then is
//! `X-Forwarded-For` read, from the right (the hop nearest us), skipping trusted proxies, and the
//! first address that is not one is the client. A client cannot forge its way past this: an
//! address it writes into the header is to the left of what our proxies append, and the header is
//! ignored entirely when the peer is not a trusted proxy.
//!
//! Throttles count IPv4 addresses one by one and IPv6 addresses per /64, the block one
//! subscriber usually gets: an attacker with one IPv6 connection has 2^64 addresses.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` is inside this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                mask(u128::from(u32::from(net)), self.prefix, 32) == mask(u128::from(u32::from(addr)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                mask(u128::from(net), self.prefix, 128) == mask(u128::from(addr), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit number.
fn mask(bits: u128, prefix: u8, width: u8) -> u128 {
    let prefix = u32::from(prefix.min(width));
    if prefix == 0 { 0 } else { bits >> (u32::from(width) - prefix) }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        let (addr, prefix) = raw.split_once('/').map_or((raw, None), |(a, p)| (a, Some(p)));
        let network = canonical(addr.parse::<IpAddr>().map_err(|_| format!("{raw:?} is not an IP address or CIDR"))?);
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(|| format!("{raw:?}: bad prefix length"))?
            }
        };
        Ok(Self { network, prefix })
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack socket reports) as IPv4.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

/// The client's address: the peer, or the nearest untrusted hop of `X-Forwarded-For` when the
/// peer is a trusted proxy.
pub fn address(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |addr: IpAddr| trusted.iter().any(|net| net.contains(addr));
    if !is_trusted(peer) {
        return peer;
    }
    // Every header line in order, each a comma-separated list; the last entry is the nearest hop.
    // Lines are read leniently: a client's non-ASCII bytes to the left must not hide the hop our
    // proxy appended to the same line.
    let hops: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| String::from_utf8_lossy(v.as_bytes()).split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A hop we cannot read ends the chain: the last trusted hop is the best we know.
        let Some(addr) = parse_hop(hop) else { break };
        client = addr;
        if !is_trusted(addr) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(addr) = hop.parse::<IpAddr>() {
        return Some(canonical(addr));
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// The key the throttles count a client under: the IPv4 address, or the IPv6 /64.
pub fn throttle_key(addr: IpAddr) -> String {
    match canonical(addr) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap_or_else(|e| panic!("{e}")));
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap_or_else(|e| panic!("{e}"))).collect()
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "a mapped address is IPv4");
        assert!(!net.contains(ip("fd00::1")));
        let one: Cidr = "192.0.2.7".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(v6.contains(ip("fdab::1")) && !v6.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(ip("203.0.113.1")));
        for bad in ["10.0.0.0/33", "fd00::/129", "nope", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        // An untrusted peer's header is ignored: it could say anything.
        assert_eq!(address(ip("203.0.113.9"), &headers(&["1.2.3.4"]), &trusted), ip("203.0.113.9"));
        // A trusted proxy: the nearest untrusted hop, whatever the client prepended.
        assert_eq!(address(ip("10.0.0.2"), &headers(&["6.6.6.6, 198.51.100.4"]), &trusted), ip("198.51.100.4"));
        // Two proxies of ours, and several header lines.
        assert_eq!(
            address(ip("10.0.0.2"), &headers(&["6.6.6.6", "198.51.100.4, 10.3.3.3"]), &trusted),
            ip("198.51.100.4")
        );
        // Ports and brackets are allowed; garbage ends the chain at the last trusted hop.
        assert_eq!(address(ip("10.0.0.2"), &headers(&["[2001:db8::1]:443"]), &trusted), ip("2001:db8::1"));
        assert_eq!(address(ip("10.0.0.2"), &headers(&["1.1.1.1, garbage, 10.9.9.9"]), &trusted), ip("10.9.9.9"));
        // A client's bytes that are not ASCII do not hide the hop the proxy appended.
        let mut mixed = HeaderMap::new();
        mixed.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.9").unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(address(ip("10.0.0.2"), &mixed, &trusted), ip("198.51.100.9"));
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(address(ip("10.0.0.2"), &HeaderMap::new(), &trusted), ip("10.0.0.2"));
        // Nothing trusted: the peer, always.
        assert_eq!(address(ip("10.0.0.2"), &headers(&["1.2.3.4"]), &[]), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(throttle_key(ip("2001:db8:1:2:aaaa::1")), throttle_key(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(throttle_key(ip("2001:db8:1:2::1")), throttle_key(ip("2001:db8:1:3::1")));
        assert_eq!(throttle_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(throttle_key(ip("198.51.100.4")), "198.51.100.4");
        assert_eq!(throttle_key(ip("::ffff:198.51.100.4")), "198.51.100.4");
    }
}
