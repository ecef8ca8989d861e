//! SA identifiers (SAIDs): `<proto><spi>@<dst>` as KLIPS and Pluto print and parse them (spec 5.1),
//! and the magic shunt SAIDs (`%pass`, `%drop`, … spec 4).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// The security protocol of an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// IP-in-IP tunnel pseudo-SA (IP protocol 4), printed `tun`.
    Tun,
    /// IP Payload Compression (protocol 108), printed `comp`; the SPI is the CPI.
    Comp,
    /// Encapsulating Security Payload (protocol 50).
    Esp,
    /// Authentication Header (protocol 51).
    Ah,
    /// Internal shunt pseudo-protocol (61), printed `int`.
    Int,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tun => 4,
            Proto::Comp => 108,
            Proto::Esp => 50,
            Proto::Ah => 51,
            Proto::Int => 61,
        }
    }

    /// The protocol for an IP protocol number, if it is one of ours.
    pub fn from_number(n: u8) -> Option<Proto> {
        Some(match n {
            4 => Proto::Tun,
            108 => Proto::Comp,
            50 => Proto::Esp,
            51 => Proto::Ah,
            61 => Proto::Int,
            _ => return None,
        })
    }

    /// The SAID prefix (`ah`, `esp`, `tun`, `comp`, `int`).
    pub fn prefix(self) -> &'static str {
        match self {
            Proto::Tun => "tun",
            Proto::Comp => "comp",
            Proto::Esp => "esp",
            Proto::Ah => "ah",
            Proto::Int => "int",
        }
    }

    /// Order in an SA group, inner to outer: IPIP, IPComp, ESP, AH.
    pub fn group_rank(self) -> u8 {
        match self {
            Proto::Tun => 0,
            Proto::Comp => 1,
            Proto::Esp => 2,
            Proto::Ah => 3,
            Proto::Int => 4,
        }
    }
}

/// A shunt: the action of an eroute that has no real SA (spec 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shunt {
    /// Send in clear (`%pass`, int256).
    Pass,
    /// Discard silently (`%drop`, int257).
    Drop,
    /// Discard and answer ICMP unreachable, packet filtered (`%reject`, int258).
    Reject,
    /// Keep the newest packet until a real eroute replaces this one (`%hold`, int259).
    Hold,
    /// Ask the keying daemon for an SA and hold the packet (`%trap`, int260).
    Trap,
    /// Like `%trap`, but the eroute itself turns into `%hold` (`%trapsubnet`, int261).
    TrapSubnet,
}

impl Shunt {
    /// The shunt's pseudo-SPI under protocol `int`.
    pub fn spi(self) -> u32 {
        match self {
            Shunt::Pass => 256,
            Shunt::Drop => 257,
            Shunt::Reject => 258,
            Shunt::Hold => 259,
            Shunt::Trap => 260,
            Shunt::TrapSubnet => 261,
        }
    }

    /// The shunt for a pseudo-SPI.
    pub fn from_spi(spi: u32) -> Option<Shunt> {
        Some(match spi {
            256 => Shunt::Pass,
            257 => Shunt::Drop,
            258 => Shunt::Reject,
            259 => Shunt::Hold,
            260 => Shunt::Trap,
            261 => Shunt::TrapSubnet,
            _ => return None,
        })
    }

    /// The magic name (`%pass`, …).
    pub fn name(self) -> &'static str {
        match self {
            Shunt::Pass => "%pass",
            Shunt::Drop => "%drop",
            Shunt::Reject => "%reject",
            Shunt::Hold => "%hold",
            Shunt::Trap => "%trap",
            Shunt::TrapSubnet => "%trapsubnet",
        }
    }

    /// Parses a magic name; `%passthrough`/`%passthrough4` mean `%pass`.
    pub fn from_name(s: &str) -> Option<Shunt> {
        Some(match s {
            "%pass" | "%passthrough" | "%passthrough4" => Shunt::Pass,
            "%drop" => Shunt::Drop,
            "%reject" => Shunt::Reject,
            "%hold" => Shunt::Hold,
            "%trap" => Shunt::Trap,
            "%trapsubnet" => Shunt::TrapSubnet,
            _ => return None,
        })
    }
}

impl fmt::Display for Shunt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// An SA identifier: protocol, SPI and destination address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Said {
    /// The security protocol.
    pub proto: Proto,
    /// The SPI (the CPI for IPComp).
    pub spi: u32,
    /// The SA's destination address (either family).
    pub dst: IpAddr,
}

impl Said {
    /// A SAID from its parts.
    pub fn new(proto: Proto, spi: u32, dst: impl Into<IpAddr>) -> Said {
        Said {
            proto,
            spi,
            dst: dst.into(),
        }
    }

    /// The destination if it is an IPv4 address (IPv4-only callers such as IKE).
    pub fn dst_v4(&self) -> Option<Ipv4Addr> {
        match self.dst {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    /// The shunt this SAID names, if it is an `int` SAID with a magic SPI.
    pub fn shunt(&self) -> Option<Shunt> {
        if self.proto == Proto::Int {
            Shunt::from_spi(self.spi)
        } else {
            None
        }
    }

    /// Pluto's form: `esp.1234abcd@192.0.2.1` (family marker `.` instead of `0x`).
    pub fn pluto(&self) -> String {
        format!("{}.{:x}@{}", self.proto.prefix(), self.spi, self.dst)
    }
}

impl fmt::Display for Said {
    /// KLIPS' form: `esp0x1234abcd@192.0.2.1`; shunts print as their magic name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shunt() {
            Some(s) => f.pad(s.name()),
            None => f.pad(&format!(
                "{}0x{:x}@{}",
                self.proto.prefix(),
                self.spi,
                self.dst
            )),
        }
    }
}

/// Why a SAID string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaidError(pub String);

impl fmt::Display for SaidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SaidError {}

impl FromStr for Said {
    type Err = SaidError;

    /// Accepts `esp0x1234@1.2.3.4`, `esp.1234@1.2.3.4`, `esp9@1.2.3.4` (decimal),
    /// `esp0x1234@2001:db8::1` and magic names.
    fn from_str(s: &str) -> Result<Said, SaidError> {
        let s = s.trim();
        if let Some(sh) = Shunt::from_name(s) {
            return Ok(Said::new(Proto::Int, sh.spi(), Ipv4Addr::UNSPECIFIED));
        }
        let bad = || {
            SaidError(format!(
                "\"{s}\" is not a SAID (expected e.g. esp0x1234@192.0.2.1)"
            ))
        };
        let (head, dst) = s.split_once('@').ok_or_else(bad)?;
        let dst: IpAddr = dst
            .parse()
            .map_err(|_| SaidError(format!("SAID \"{s}\": \"{dst}\" is not an IP address")))?;
        let (proto, rest) = [Proto::Tun, Proto::Comp, Proto::Esp, Proto::Ah, Proto::Int]
            .into_iter()
            .find_map(|p| head.strip_prefix(p.prefix()).map(|r| (p, r)))
            .ok_or_else(bad)?;
        let spi = if let Some(h) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            u32::from_str_radix(h, 16)
        } else if let Some(h) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(':')) {
            u32::from_str_radix(h, 16)
        } else {
            rest.parse::<u32>()
        }
        .map_err(|_| SaidError(format!("SAID \"{s}\": bad SPI \"{rest}\"")))?;
        Ok(Said::new(proto, spi, dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_forms() {
        let s: Said = "esp0x1234abcd@192.0.2.1".parse().unwrap();
        assert_eq!(s.proto, Proto::Esp);
        assert_eq!(s.spi, 0x1234abcd);
        assert_eq!(s.to_string(), "esp0x1234abcd@192.0.2.1");
        assert_eq!(s.pluto(), "esp.1234abcd@192.0.2.1");
        assert_eq!("esp.1234abcd@192.0.2.1".parse::<Said>().unwrap(), s);
        assert_eq!("tun9@1.2.3.4".parse::<Said>().unwrap().spi, 9);
        assert_eq!(
            "comp0x3d0@1.2.3.4".parse::<Said>().unwrap().proto,
            Proto::Comp
        );
        let p: Said = "%pass".parse().unwrap();
        assert_eq!(p.shunt(), Some(Shunt::Pass));
        assert_eq!(p.to_string(), "%pass");
        assert!("esp0xzz@1.2.3.4".parse::<Said>().is_err());
        assert!("foo0x1@1.2.3.4".parse::<Said>().is_err());
        assert!("esp0x1@1.2.3".parse::<Said>().is_err());
    }

    #[test]
    fn ipv6_forms_round_trip() {
        let s: Said = "esp0x1234@2001:db8::1".parse().unwrap();
        assert_eq!(s.dst, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(s.to_string(), "esp0x1234@2001:db8::1");
        assert_eq!(s.pluto(), "esp.1234@2001:db8::1");
        assert_eq!(s.pluto().parse::<Said>().unwrap(), s);
        assert_eq!(s.dst_v4(), None);
        let t: Said = "tun0x1001@2001:db8:0:1::2".parse().unwrap();
        assert_eq!((t.proto, t.spi), (Proto::Tun, 0x1001));
        assert_eq!(t.to_string().parse::<Said>().unwrap(), t);
        assert!("esp0x1@2001:db8::g".parse::<Said>().is_err());
    }
}
