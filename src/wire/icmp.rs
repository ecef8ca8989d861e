//! ICMP messages the datapath originates: destination unreachable for `%reject` (type 3 code 13,
//! communication administratively prohibited) and fragmentation needed (type 3 code 4).

use std::net::Ipv4Addr;

use super::ipv4::{self, Ipv4Packet, Ipv4Repr};

/// ICMP type destination unreachable.
pub const DEST_UNREACH: u8 = 3;
/// Code: fragmentation needed and DF set.
pub const FRAG_NEEDED: u8 = 4;
/// Code: communication administratively prohibited (packet filtered).
pub const PKT_FILTERED: u8 = 13;

/// Builds a complete IPv4 packet carrying ICMP destination-unreachable `code` about `orig`,
/// addressed from `from` to the original sender. `mtu` is the next-hop MTU for code 4.
/// Returns None when `orig` is itself an ICMP error or not a first fragment (RFC 1812 4.3.2.7).
pub fn unreachable(orig: &Ipv4Packet<'_>, from: Ipv4Addr, code: u8, mtu: u16) -> Option<Vec<u8>> {
    if orig.protocol() == ipv4::proto::ICMP {
        let t = orig.payload().first().copied().unwrap_or(0);
        if !matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) {
            return None;
        }
    }
    if orig.is_fragment() && orig.payload().is_empty() {
        return None;
    }
    let quote_len = (orig.header_len() + 8).min(orig.packet().len());
    let quote = &orig.packet()[..quote_len];
    let icmp_len = 8 + quote.len();
    let mut out = vec![0u8; ipv4::HEADER_LEN + icmp_len];
    let repr = Ipv4Repr {
        src: from,
        dst: orig.src(),
        protocol: ipv4::proto::ICMP,
        tos: 0,
        ttl: 64,
        ident: 0,
        dont_frag: false,
        payload_len: icmp_len,
    };
    repr.emit(&mut out);
    let icmp = &mut out[ipv4::HEADER_LEN..];
    icmp[0] = DEST_UNREACH;
    icmp[1] = code;
    if code == FRAG_NEEDED {
        icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    }
    icmp[8..].copy_from_slice(quote);
    let c = ipv4::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_builds_code_13() {
        let mut p = vec![0u8; 28];
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 1, 5),
            dst: Ipv4Addr::new(10, 0, 2, 5),
            protocol: ipv4::proto::UDP,
            tos: 0,
            ttl: 64,
            ident: 1,
            dont_frag: false,
            payload_len: 8,
        }
        .emit(&mut p);
        let orig = Ipv4Packet::new_checked(&p).unwrap();
        let r = unreachable(&orig, Ipv4Addr::new(10, 0, 1, 1), PKT_FILTERED, 0).unwrap();
        let rp = Ipv4Packet::new_checked(&r).unwrap();
        assert_eq!(rp.dst(), Ipv4Addr::new(10, 0, 1, 5));
        assert_eq!(rp.payload()[0], 3);
        assert_eq!(rp.payload()[1], 13);
        assert_eq!(ipv4::checksum(rp.payload()), 0);
    }
}
