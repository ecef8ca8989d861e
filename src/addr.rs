//! IPv4 subnets as FreeS/WAN writes them (`10.0.1.0/24`, `10.0.1.0/255.255.255.0`, bare host addresses).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: address (host bits cleared) and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    addr: Ipv4Addr,
    len: u8,
}

impl Subnet {
    /// The network `addr/len`; host bits of `addr` are cleared. `len` above 32 is clamped to 32.
    pub fn new(addr: Ipv4Addr, len: u8) -> Subnet {
        let len = len.min(32);
        Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & prefix_mask(len)),
            len,
        }
    }

    /// The /32 network holding one host.
    pub fn host(addr: Ipv4Addr) -> Subnet {
        Subnet { addr, len: 32 }
    }

    /// `0.0.0.0/0`: every address.
    pub const ANY: Subnet = Subnet {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    };

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length (0..=32).
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True only for `0.0.0.0/0`... never "empty": provided for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The netmask as a 32-bit integer.
    pub fn mask(&self) -> u32 {
        prefix_mask(self.len)
    }

    /// The netmask in dotted form (`255.255.255.0`).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
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

/// The netmask of a prefix length as a 32-bit integer.
pub fn prefix_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
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

    /// Parses `a.b.c.d/len`, `a.b.c.d/m.m.m.m` (contiguous mask) or a bare address (a /32).
    /// Host bits set in the address are an error, as in FreeS/WAN's `ttosubnet`.
    fn from_str(s: &str) -> Result<Subnet, SubnetError> {
        let s = s.trim();
        let (a, m) = match s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (s, None),
        };
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| SubnetError(format!("\"{a}\" is not an IPv4 address")))?;
        let len = match m {
            None => 32,
            Some(m) if m.contains('.') => {
                let mask: Ipv4Addr = m
                    .parse()
                    .map_err(|_| SubnetError(format!("\"{m}\" is not a netmask")))?;
                let mask = u32::from(mask);
                let len = mask.leading_ones() as u8;
                if prefix_mask(len) != mask {
                    return Err(SubnetError(format!("netmask \"{m}\" is not contiguous")));
                }
                len
            }
            Some(m) => match m.parse::<u8>() {
                Ok(l) if l <= 32 => l,
                _ => return Err(SubnetError(format!("\"{m}\" is not a prefix length 0..32"))),
            },
        };
        if u32::from(addr) & !prefix_mask(len) != 0 {
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
        assert!(n.contains("10.0.1.200".parse().unwrap()));
        assert!(!n.contains("10.0.2.1".parse().unwrap()));
        assert!(Subnet::ANY.contains("1.2.3.4".parse().unwrap()));
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
}
