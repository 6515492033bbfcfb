//! `TRUSTED_PROXIES`: the address blocks of the proxies in front of the gateway
//! (an ingress controller), and the client behind them that a request is from.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::net::IpAddr;
use std::str::FromStr;

/// A block of addresses: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // IPv4 in IPv6 (`::ffff:10.0.0.1`) is compared as IPv4.
        let ip = ip.to_canonical();
        let (net, ip, width) = match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n).into(), u32::from(i).into(), 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.bits);
        shift >= width || net >> shift == ip >> shift
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, bits) = s.trim().split_once('/').unwrap_or((s.trim(), ""));
        let bad = || format!("{s:?} is not an address block such as 10.0.0.0/8 or fd00::/8");
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let width = if net.is_ipv4() { 32 } else { 128 };
        let bits = if bits.is_empty() {
            width
        } else {
            bits.parse().ok().filter(|b| *b <= width).ok_or_else(bad)?
        };
        Ok(Self {
            net: net.to_canonical(),
            bits,
        })
    }
}

/// `TRUSTED_PROXIES`: address blocks separated by commas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cidrs(pub Vec<Cidr>);

impl FromStr for Cidrs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .filter(|c| !c.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl Cidrs {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client behind `peer`: `peer` itself unless it is a trusted proxy, else
    /// the nearest address in `forwarded` (`X-Forwarded-For`, read from the right)
    /// that is not one. What a client writes there itself is never believed.
    pub fn client(&self, peer: IpAddr, forwarded: Option<&str>) -> IpAddr {
        let mut client = peer;
        if !self.trusts(peer) {
            return client;
        }
        for hop in forwarded.unwrap_or_default().rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => client = ip,
                Err(_) => break,
            }
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_nearest_untrusted_hop() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let none = Cidrs::default();
        // No trusted proxy: the peer, whatever the header says.
        assert_eq!(none.client(ip("10.1.2.3"), Some("6.6.6.6")), ip("10.1.2.3"));
        let ingress: Cidrs = "10.0.0.0/8, fd00::/8".parse().unwrap();
        assert_eq!(
            ingress.client(ip("10.1.2.3"), Some("6.6.6.6, 203.0.113.7")),
            ip("203.0.113.7")
        );
        assert_eq!(
            ingress.client(ip("203.0.113.9"), Some("1.1.1.1")),
            ip("203.0.113.9")
        );
        assert_eq!(
            ingress.client(ip("10.0.0.1"), Some("10.0.0.2")),
            ip("10.0.0.2")
        );
        assert_eq!(ingress.client(ip("10.0.0.1"), None), ip("10.0.0.1"));
        assert!(ingress.trusts(ip("::ffff:10.9.9.9")));
        assert!(ingress.trusts(ip("fd12::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidrs>().is_err());
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
    }
}
