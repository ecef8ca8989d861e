//! IKEv1 identification payloads (RFC 2407 4.6.2) ↔ the engine's IDs and client subnets:
//! our ID for Main Mode, the peer's as configured `Id`, its printable form, and Quick Mode's
//! client IDs.

use crate::addr::Subnet;
use crate::config::secrets::Id;
use crate::pluto::isakmp::Identification;
use std::net::IpAddr;

/// The ISAKMP identification for a configured ID (`None` for `%any`).
pub fn id_to_identification(id: &Id) -> Option<Identification> {
    Some(match id {
        Id::Ipv4(a) => Identification::Ipv4Addr(*a),
        Id::Ipv6(a) => Identification::Ipv6Addr(*a),
        Id::Fqdn(s) | Id::Name(s) => Identification::Fqdn(s.as_bytes().to_vec()),
        Id::UserFqdn(s) => Identification::UserFqdn(s.as_bytes().to_vec()),
        Id::Any => return None,
    })
}

/// The configured-ID form of a received identification (`None` for types we do not match).
pub fn identification_to_id(i: &Identification) -> Option<Id> {
    Some(match i {
        Identification::Ipv4Addr(a) => Id::Ipv4(*a),
        Identification::Ipv6Addr(a) => Id::Ipv6(*a),
        Identification::Fqdn(b) => Id::Fqdn(String::from_utf8_lossy(b).into_owned()),
        Identification::UserFqdn(b) => Id::UserFqdn(String::from_utf8_lossy(b).into_owned()),
        _ => return None,
    })
}

/// Printable form of a received identification (`@host`, `user@host`, address, or type),
/// peer-supplied bytes escaped (`\xNN`, FreeS/WAN's `sanitize_string`).
pub fn identification_text(i: &Identification) -> String {
    match i {
        Identification::Fqdn(b) => format!("@{}", crate::sanitize::escape_bytes(b)),
        Identification::UserFqdn(b) => crate::sanitize::escape_bytes(b),
        _ => match identification_to_id(i) {
            Some(id) => id.to_string(),
            None => crate::sanitize::escape_text(&format!("{i:?}")).into_owned(),
        },
    }
}

/// The identification of a client subnet for Quick Mode: ID_IPV4_ADDR / ID_IPV6_ADDR for a
/// host, else ID_IPV4_ADDR_SUBNET / ID_IPV6_ADDR_SUBNET (RFC 2407 4.6.2.1).
pub fn subnet_identification(s: &Subnet) -> Identification {
    match (s.ip(), s.netmask_ip()) {
        (IpAddr::V4(a), _) if s.is_host() => Identification::Ipv4Addr(a),
        (IpAddr::V6(a), _) if s.is_host() => Identification::Ipv6Addr(a),
        (IpAddr::V4(addr), IpAddr::V4(mask)) => Identification::Ipv4Subnet { addr, mask },
        (IpAddr::V6(addr), IpAddr::V6(mask)) => Identification::Ipv6Subnet { addr, mask },
        // A subnet's address and mask are of one family.
        (IpAddr::V4(addr), IpAddr::V6(_)) => Identification::Ipv4Addr(addr),
        (IpAddr::V6(addr), IpAddr::V4(_)) => Identification::Ipv6Addr(addr),
    }
}

/// The prefix length of a contiguous netmask over `bits`-bit addresses held in a u128.
fn mask_len(mask: u128, bits: u32) -> Option<u8> {
    let m = mask << (128 - bits);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// The subnet of a network address and mask (`None` if the mask is not contiguous or the
/// address has host bits set).
fn masked(addr: IpAddr, mask: u128, bits: u32) -> Option<Subnet> {
    let len = mask_len(mask, bits)?;
    let s = Subnet::try_new(addr, len).ok()?;
    (s.ip() == addr).then_some(s)
}

/// The subnet of an address range (`None` unless it is exactly one prefix).
fn range(start: IpAddr, s: u128, e: u128, bits: u32) -> Option<Subnet> {
    let span = e.checked_sub(s)?.checked_add(1);
    let len = match span {
        // The whole 128-bit space.
        None => 0,
        Some(span) => {
            if !span.is_power_of_two() || !s.is_multiple_of(span) {
                return None;
            }
            bits - span.trailing_zeros()
        }
    };
    Subnet::try_new(start, u8::try_from(len).ok()?).ok()
}

/// The client subnet a Quick Mode ID names (`None` for anything but an address, subnet or
/// range of either family that is a subnet).
pub fn identification_subnet(i: &Identification) -> Option<Subnet> {
    match i {
        Identification::Ipv4Addr(a) => Some(Subnet::host(*a)),
        Identification::Ipv6Addr(a) => Some(Subnet::host(*a)),
        Identification::Ipv4Subnet { addr, mask } => {
            masked(IpAddr::V4(*addr), u128::from(u32::from(*mask)), 32)
        }
        Identification::Ipv6Subnet { addr, mask } => {
            masked(IpAddr::V6(*addr), u128::from(*mask), 128)
        }
        Identification::Ipv4Range { start, end } => range(
            IpAddr::V4(*start),
            u128::from(u32::from(*start)),
            u128::from(u32::from(*end)),
            32,
        ),
        Identification::Ipv6Range { start, end } => range(
            IpAddr::V6(*start),
            u128::from(*start),
            u128::from(*end),
            128,
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_of_both_families_round_trip() {
        for text in [
            "10.0.1.0/24",
            "10.0.1.7/32",
            "2001:db8:1::/64",
            "2001:db8::5/128",
            "::/0",
        ] {
            let s: Subnet = text.parse().unwrap();
            let id = subnet_identification(&s);
            assert_eq!(identification_subnet(&id), Some(s), "{text}: {id:?}");
        }
        let v6 = subnet_identification(&"2001:db8:1::/64".parse().unwrap());
        assert!(matches!(v6, Identification::Ipv6Subnet { .. }), "{v6:?}");
        let host = subnet_identification(&"2001:db8::5/128".parse().unwrap());
        assert!(matches!(host, Identification::Ipv6Addr(_)), "{host:?}");
        // A non-contiguous mask and host bits are refused.
        let bad = Identification::Ipv6Subnet {
            addr: "2001:db8::".parse().unwrap(),
            mask: "ffff:0:ffff::".parse().unwrap(),
        };
        assert_eq!(identification_subnet(&bad), None);
        let bad = Identification::Ipv6Subnet {
            addr: "2001:db8::1".parse().unwrap(),
            mask: "ffff:ffff:ffff:ffff::".parse().unwrap(),
        };
        assert_eq!(identification_subnet(&bad), None);
        let r = Identification::Ipv6Range {
            start: "2001:db8::".parse().unwrap(),
            end: "2001:db8::ff".parse().unwrap(),
        };
        assert_eq!(
            identification_subnet(&r),
            Some("2001:db8::/120".parse().unwrap())
        );
        assert_eq!(
            identification_to_id(&Identification::Ipv6Addr("2001:db8::1".parse().unwrap())),
            Some(Id::Ipv6("2001:db8::1".parse().unwrap()))
        );
    }
}
