//! Network addresses as configuration names them: [`Cidr`], an IP network parsed once (at
//! compile time or from the command line) and matched per request. A neutral module, so the
//! snapshot (IP allow/deny lists) and the proxy (trusted proxies) share it without the
//! snapshot depending on the proxy; `weir::proxy::Cidr` re-exports it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network, `address/prefix-length` (`10.0.0.0/8`, `2001:db8::/32`); a bare address is
/// a network of one. Host bits below the prefix are ignored, as `ip route` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The part before `/` is not an IP address.
    #[error("{0:?}: not an IP address or network (expected e.g. 10.0.0.0/8 or 2001:db8::/32)")]
    Address(String),
    /// The prefix length is not a number, or longer than the address.
    #[error("{0:?}: the prefix length must be 0-32 for IPv4, 0-128 for IPv6")]
    Prefix(String),
}

impl Cidr {
    /// The network of `address` with a `prefix`-bit mask (clamped to the address length).
    pub fn new(address: IpAddr, prefix: u8) -> Self {
        let address = address.to_canonical();
        let prefix = prefix.min(address_bits(address));
        Cidr {
            network: mask(address, prefix),
            prefix,
        }
    }

    /// Whether `ip` is in this network (an IPv4 address is never in an IPv6 network; map it
    /// with [`IpAddr::to_canonical`] first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.network.is_ipv4() == ip.is_ipv4() && mask(ip, self.prefix) == self.network
    }

    /// The `n`th host address of the network, counting from 0: the addresses after the
    /// network address, and before the broadcast address of an IPv4 network of more than
    /// two addresses (`10.0.0.0/30` has hosts `.1` and `.2`); `None` past the end.
    pub fn host(&self, n: u128) -> Option<IpAddr> {
        let bits = u32::from(address_bits(self.network) - self.prefix);
        let size = 1u128.checked_shl(bits).unwrap_or(u128::MAX);
        let (first, count) = match (self.network, size) {
            (_, 1) => (0, 1),
            (IpAddr::V4(_), 2) => (0, 2),
            (IpAddr::V4(_), size) => (1, size - 2),
            (IpAddr::V6(_), size) => (1, size - 1),
        };
        if n >= count {
            return None;
        }
        Some(match self.network {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) + (first + n) as u32)),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) + first + n)),
        })
    }
}

fn address_bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// `ip` with every bit after the first `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| CidrError::Address(s.to_owned()))?;
        let bits = address_bits(address);
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| CidrError::Prefix(s.to_owned()))?,
        };
        // `Cidr::new` maps `::ffff:a.b.c.d/n` to IPv4; keep the prefix meaningful for it.
        let prefix = match address {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => prefix.saturating_sub(96),
            _ => prefix,
        };
        Ok(Cidr::new(address, prefix))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().expect("cidr")
    }

    #[test]
    fn hosts_skip_the_network_and_broadcast_addresses() {
        let net = cidr("10.244.200.0/24");
        assert_eq!(net.host(0), Some(ip("10.244.200.1")));
        assert_eq!(net.host(253), Some(ip("10.244.200.254")));
        assert_eq!(net.host(254), None);
        assert_eq!(cidr("192.0.2.7").host(0), Some(ip("192.0.2.7")));
        assert_eq!(cidr("192.0.2.7").host(1), None);
        assert_eq!(cidr("192.0.2.6/31").host(1), Some(ip("192.0.2.7")));
        assert_eq!(cidr("2001:db8::/126").host(2), Some(ip("2001:db8::3")));
        assert_eq!(cidr("2001:db8::/126").host(3), None);
        assert_eq!(cidr("0.0.0.0/0").host(0), Some(ip("0.0.0.1")));
    }

    #[test]
    fn cidrs_contain_their_addresses_and_nothing_else() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::ffff:10.0.0.1")), "map IPv6 peers first");
        let one = cidr("192.0.2.7");
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("::/0").contains(ip("::1")));
    }

    #[test]
    fn host_bits_are_ignored_and_the_network_is_displayed() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr(" 2001:db8::1/32 ").to_string(), "2001:db8::/32");
        assert_eq!(cidr("::ffff:10.1.0.0/104").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("127.0.0.1").to_string(), "127.0.0.1/32");
    }

    #[test]
    fn malformed_cidrs_are_refused() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        assert!(matches!(
            "10.0.0.0/40".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
    }
}
