//! Subnets of either address family as FreeS/WAN and Libreswan write them (`10.0.1.0/24`,
//! `10.0.1.0/255.255.255.0`, `2001:db8:1::/64`, bare host addresses).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Address width in bits (32 or 128).
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The unspecified address (`0.0.0.0`, `::`).
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// An address as a 128-bit integer (IPv4 in the low 32 bits), for prefix arithmetic.
pub fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address bytes of either family (4 or 16), as hashed by NAT-D (RFC 3947, RFC 7296
/// 2.23) and cookies.
pub fn ip_octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn from_bits(family: Family, b: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(b as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(b)),
    }
}

/// The netmask of a prefix length `len` in a family `bits` wide, as an integer of that width.
fn mask_bits(bits: u8, len: u8) -> u128 {
    let len = u32::from(len.min(bits));
    if len == 0 {
        0
    } else {
        // The top `len` of `bits` bits.
        (u128::MAX << (128 - len)) >> (128 - u32::from(bits))
    }
}

/// A network of either family: address (host bits cleared) and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    addr: IpAddr,
    len: u8,
}

impl Subnet {
    /// The network `addr/len`; host bits of `addr` are cleared. `len` above the family's width
    /// is clamped to it (use [`Subnet::try_new`] to refuse it instead).
    pub fn new(addr: impl Into<IpAddr>, len: u8) -> Subnet {
        let addr = addr.into();
        let f = Family::of(addr);
        let len = len.min(f.bits());
        Subnet {
            addr: from_bits(f, ip_bits(addr) & mask_bits(f.bits(), len)),
            len,
        }
    }

    /// The network `addr/len`, refusing a prefix length longer than the family's width (an
    /// IPv4 address with an IPv6 mask length) and host bits set in `addr`.
    pub fn try_new(addr: impl Into<IpAddr>, len: u8) -> Result<Subnet, SubnetError> {
        let addr = addr.into();
        let f = Family::of(addr);
        if len > f.bits() {
            return Err(SubnetError(format!(
                "prefix length /{len} is too long for {f} address {addr} (0..{})",
                f.bits()
            )));
        }
        let s = Subnet::new(addr, len);
        if s.addr != addr {
            return Err(SubnetError(format!(
                "improper subnet, host-part bits on in \"{addr}/{len}\""
            )));
        }
        Ok(s)
    }

    /// The host network (/32 or /128) holding one address.
    pub fn host(addr: impl Into<IpAddr>) -> Subnet {
        let addr = addr.into();
        Subnet {
            addr,
            len: Family::of(addr).bits(),
        }
    }

    /// `0.0.0.0/0`: every IPv4 address.
    pub const ANY: Subnet = Subnet {
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        len: 0,
    };

    /// `::/0`: every IPv6 address.
    pub const ANY6: Subnet = Subnet {
        addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        len: 0,
    };

    /// Every address of a family (`0.0.0.0/0` or `::/0`).
    pub fn any(family: Family) -> Subnet {
        match family {
            Family::V4 => Subnet::ANY,
            Family::V6 => Subnet::ANY6,
        }
    }

    /// The network address.
    pub fn ip(&self) -> IpAddr {
        self.addr
    }

    /// The network address of an IPv4 network (`0.0.0.0` for an IPv6 one: IPv4-only callers
    /// such as IKE check [`Subnet::family`] at their boundary).
    pub fn addr(&self) -> Ipv4Addr {
        self.v4().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// The network address if this is an IPv4 network.
    pub fn v4(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    /// The address family.
    pub fn family(&self) -> Family {
        Family::of(self.addr)
    }

    /// Whether this is a host network (/32, /128).
    pub fn is_host(&self) -> bool {
        self.len == self.family().bits()
    }

    /// The prefix length (0..=32 or 0..=128).
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Never "empty": provided for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The netmask of an IPv4 network as a 32-bit integer (0 for IPv6).
    pub fn mask(&self) -> u32 {
        match self.family() {
            Family::V4 => prefix_mask(self.len),
            Family::V6 => 0,
        }
    }

    /// The netmask of an IPv4 network in dotted form (`255.255.255.0`).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// The netmask as an address of the network's family (`255.255.255.0`, `ffff:ffff::`).
    pub fn netmask_ip(&self) -> IpAddr {
        let f = self.family();
        from_bits(f, mask_bits(f.bits(), self.len))
    }

    /// The last (highest) address of the network.
    pub fn last(&self) -> IpAddr {
        let f = self.family();
        let host = !mask_bits(f.bits(), self.len) & mask_bits(f.bits(), f.bits());
        from_bits(f, ip_bits(self.addr) | host)
    }

    /// Whether `ip` lies inside this network (never for an address of the other family).
    pub fn contains(&self, ip: impl Into<IpAddr>) -> bool {
        let ip = ip.into();
        let f = self.family();
        Family::of(ip) == f && ip_bits(ip) & mask_bits(f.bits(), self.len) == ip_bits(self.addr)
    }

    /// Whether every address of `other` lies inside this network.
    pub fn covers(&self, other: &Subnet) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// Whether the two networks share an address (one covers the other).
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.covers(other) || other.covers(self)
    }
}

/// The IPv4 netmask of a prefix length as a 32-bit integer.
pub fn prefix_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

impl From<Ipv4Addr> for Subnet {
    fn from(a: Ipv4Addr) -> Subnet {
        Subnet::host(a)
    }
}

impl From<Ipv6Addr> for Subnet {
    fn from(a: Ipv6Addr) -> Subnet {
        Subnet::host(a)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Honour width/alignment flags so callers can use `{:<18}` like KLIPS' `%-18s`.
        f.pad(&format!("{}/{}", self.addr, self.len))
    }
}

/// Why a subnet string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetError(pub String);

impl fmt::Display for SubnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SubnetError {}

impl FromStr for Subnet {
    type Err = SubnetError;

    /// Parses `a.b.c.d/len`, `a.b.c.d/m.m.m.m` (contiguous mask), `2001:db8::/64` or a bare
    /// address (a host network). Host bits set in the address are an error, as in FreeS/WAN's
    /// `ttosubnet`; so is a prefix length beyond the family's width.
    fn from_str(s: &str) -> Result<Subnet, SubnetError> {
        let s = s.trim();
        let (a, m) = match s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| SubnetError(format!("\"{a}\" is not an IP address")))?;
        let f = Family::of(addr);
        let len = match m {
            None => f.bits(),
            Some(m) if m.contains('.') || m.contains(':') => {
                let mask: IpAddr = m
                    .parse()
                    .map_err(|_| SubnetError(format!("\"{m}\" is not a netmask")))?;
                if Family::of(mask) != f {
                    return Err(SubnetError(format!(
                        "netmask \"{m}\" is not an {f} netmask for \"{a}\""
                    )));
                }
                let bits = ip_bits(mask) << (128 - u32::from(f.bits()));
                let len = bits.leading_ones() as u8;
                if mask_bits(f.bits(), len) != ip_bits(mask) {
                    return Err(SubnetError(format!("netmask \"{m}\" is not contiguous")));
                }
                len
            }
            Some(m) => match m.parse::<u8>() {
                Ok(l) if l <= f.bits() => l,
                _ => {
                    return Err(SubnetError(format!(
                        "\"{m}\" is not a prefix length 0..{} for {f} address \"{a}\"",
                        f.bits()
                    )))
                }
            },
        };
        if ip_bits(addr) & !mask_bits(f.bits(), len) != 0 {
            return Err(SubnetError(format!(
                "improper subnet, host-part bits on in \"{s}\""
            )));
        }
        Ok(Subnet { addr, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!("10.0.1.0/24".parse::<Subnet>().unwrap().len(), 24);
        assert_eq!(
            "10.0.1.0/255.255.255.0".parse::<Subnet>().unwrap().len(),
            24
        );
        assert_eq!("10.0.1.7".parse::<Subnet>().unwrap().len(), 32);
        assert!("10.0.1.7/24".parse::<Subnet>().is_err());
        assert!("10.0.1.0/33".parse::<Subnet>().is_err());
        assert!("10.0.1.0/255.0.255.0".parse::<Subnet>().is_err());
        assert!("nonsense".parse::<Subnet>().is_err());
    }

    #[test]
    fn contains_and_display() {
        let n: Subnet = "10.0.1.0/24".parse().unwrap();
        assert!(n.contains("10.0.1.200".parse::<Ipv4Addr>().unwrap()));
        assert!(!n.contains("10.0.2.1".parse::<Ipv4Addr>().unwrap()));
        assert!(Subnet::ANY.contains("1.2.3.4".parse::<Ipv4Addr>().unwrap()));
        assert_eq!(format!("{:<14}|", n), "10.0.1.0/24   |");
        assert_eq!(n.netmask().to_string(), "255.255.255.0");
    }

    #[test]
    fn covers_and_overlaps() {
        let s = |x: &str| x.parse::<Subnet>().unwrap();
        assert!(s("10.0.0.0/8").covers(&s("10.0.2.5/32")));
        assert!(!s("10.0.2.5/32").covers(&s("10.0.0.0/8")));
        assert!(s("10.0.0.0/8").overlaps(&s("10.0.2.5/32")));
        assert!(s("10.0.2.5/32").overlaps(&s("10.0.0.0/8")));
        assert!(s("10.0.2.0/24").overlaps(&s("10.0.2.0/24")));
        assert!(!s("10.0.2.0/24").overlaps(&s("10.0.3.0/24")));
        assert!(Subnet::ANY.overlaps(&s("192.0.2.1/32")));
    }

    #[test]
    fn ipv6_forms_round_trip() {
        let n: Subnet = "2001:db8:1::/64".parse().unwrap();
        assert_eq!(n.family(), Family::V6);
        assert_eq!(n.len(), 64);
        assert_eq!(n.to_string(), "2001:db8:1::/64");
        assert_eq!(n.to_string().parse::<Subnet>().unwrap(), n);
        assert!(n.contains("2001:db8:1::5".parse::<IpAddr>().unwrap()));
        assert!(!n.contains("2001:db8:2::5".parse::<IpAddr>().unwrap()));
        assert!(!n.contains(Ipv4Addr::new(10, 0, 0, 1)), "other family");
        assert_eq!(n.netmask_ip().to_string(), "ffff:ffff:ffff:ffff::");
        let h: Subnet = "2001:db8::1".parse().unwrap();
        assert_eq!((h.len(), h.is_host()), (128, true));
        assert_eq!(h, Subnet::host("2001:db8::1".parse::<Ipv6Addr>().unwrap()));
        assert_eq!("::/0".parse::<Subnet>().unwrap(), Subnet::ANY6);
        assert_eq!(
            "2001:db8::/ffff:ffff::".parse::<Subnet>().unwrap().len(),
            32
        );
        assert!("2001:db8::1/64".parse::<Subnet>().is_err(), "host bits");
        assert!("2001:db8::/129".parse::<Subnet>().is_err());
        assert!(!Subnet::ANY.overlaps(&n), "families never overlap");
        assert!(Subnet::ANY6.covers(&n));
        assert_eq!(n.v4(), None);
        assert_eq!(Subnet::ANY.v4(), Some(Ipv4Addr::UNSPECIFIED));
    }

    /// A family mismatch is an error naming both, never a panic or a silent clamp.
    #[test]
    fn family_mismatch_is_an_error() {
        let e = "10.0.0.0/64".parse::<Subnet>().unwrap_err();
        assert!(e.0.contains("0..32") && e.0.contains("IPv4"), "{e}");
        let e = "10.0.0.0/ffff::".parse::<Subnet>().unwrap_err();
        assert!(e.0.contains("IPv4 netmask"), "{e}");
        let e = "2001:db8::/255.255.0.0".parse::<Subnet>().unwrap_err();
        assert!(e.0.contains("IPv6 netmask"), "{e}");
        let e = Subnet::try_new(Ipv4Addr::new(10, 0, 0, 0), 64).unwrap_err();
        assert!(e.0.contains("too long for IPv4"), "{e}");
        assert!(Subnet::try_new("2001:db8::".parse::<Ipv6Addr>().unwrap(), 64).is_ok());
        assert_eq!(Subnet::new(Ipv4Addr::new(10, 1, 2, 3), 200).len(), 32);
    }
}
