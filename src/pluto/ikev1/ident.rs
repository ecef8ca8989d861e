//! IKEv1 identification payloads (RFC 2407 4.6.2) ↔ the engine's IDs and client subnets:
//! our ID for Main Mode, the peer's as configured `Id`, its printable form, and Quick Mode's
//! client IDs.

use crate::addr::Subnet;
use crate::config::secrets::Id;
use crate::pluto::isakmp::Identification;

/// The ISAKMP identification for a configured ID (`None` for `%any`).
pub fn id_to_identification(id: &Id) -> Option<Identification> {
    Some(match id {
        Id::Ipv4(a) => Identification::Ipv4Addr(*a),
        Id::Fqdn(s) | Id::Name(s) => Identification::Fqdn(s.as_bytes().to_vec()),
        Id::UserFqdn(s) => Identification::UserFqdn(s.as_bytes().to_vec()),
        Id::Any => return None,
    })
}

/// The configured-ID form of a received identification (`None` for types we do not match).
pub fn identification_to_id(i: &Identification) -> Option<Id> {
    Some(match i {
        Identification::Ipv4Addr(a) => Id::Ipv4(*a),
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

/// The identification of a client subnet for Quick Mode (ID_IPV4_ADDR for a /32).
pub fn subnet_identification(s: &Subnet) -> Identification {
    if s.len() == 32 {
        Identification::Ipv4Addr(s.addr())
    } else {
        Identification::Ipv4Subnet {
            addr: s.addr(),
            mask: s.netmask(),
        }
    }
}

/// The client subnet a Quick Mode ID names (`None` for anything but v4 addr/subnet/range
/// that is a subnet).
pub fn identification_subnet(i: &Identification) -> Option<Subnet> {
    match i {
        Identification::Ipv4Addr(a) => Some(Subnet::host(*a)),
        Identification::Ipv4Subnet { addr, mask } => {
            let m = u32::from(*mask);
            let len = m.leading_ones() as u8;
            if crate::addr::prefix_mask(len) != m || u32::from(*addr) & !m != 0 {
                return None;
            }
            Some(Subnet::new(*addr, len))
        }
        Identification::Ipv4Range { start, end } => {
            let (s, e) = (u32::from(*start), u32::from(*end));
            let span = e.checked_sub(s)?.checked_add(1)?;
            if !span.is_power_of_two() || s % span != 0 {
                return None;
            }
            Some(Subnet::new(*start, 32 - span.trailing_zeros() as u8))
        }
        _ => None,
    }
}
