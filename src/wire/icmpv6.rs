//! ICMPv6 errors the datapath originates (RFC 4443): destination unreachable, administratively
//! prohibited, for `%reject` (type 1 code 1), and Packet Too Big (type 2) when a packet does
//! not fit the tunnel.

use std::net::Ipv6Addr;

use super::ipv6::{self, nh, Ipv6Packet, Ipv6Repr};

/// ICMPv6 type destination unreachable.
pub const DEST_UNREACH: u8 = 1;
/// ICMPv6 type Packet Too Big.
pub const PACKET_TOO_BIG: u8 = 2;
/// Destination unreachable code: communication administratively prohibited.
pub const ADMIN_PROHIBITED: u8 = 1;

/// Builds ICMPv6 destination unreachable, administratively prohibited, about `orig`, from
/// `from` to its sender. None where RFC 4443 2.4(e) forbids an error.
pub fn unreachable(orig: &Ipv6Packet<'_>, from: Ipv6Addr) -> Option<Vec<u8>> {
    error(orig, from, DEST_UNREACH, ADMIN_PROHIBITED, 0)
}

/// Builds ICMPv6 Packet Too Big with the MTU `mtu` about `orig`, from `from` to its sender.
pub fn packet_too_big(orig: &Ipv6Packet<'_>, from: Ipv6Addr, mtu: u32) -> Option<Vec<u8>> {
    error(orig, from, PACKET_TOO_BIG, 0, mtu)
}

/// An ICMPv6 error quoting as much of `orig` as fits the minimum MTU (RFC 4443 2.4(c)).
fn error(orig: &Ipv6Packet<'_>, from: Ipv6Addr, ty: u8, code: u8, param: u32) -> Option<Vec<u8>> {
    let src = orig.src();
    // Never about an ICMPv6 error, nor to an unspecified or multicast source (2.4(e)); only
    // Packet Too Big may answer a multicast destination.
    if src.is_unspecified() || src.is_multicast() {
        return None;
    }
    if ty != PACKET_TOO_BIG && orig.dst().is_multicast() {
        return None;
    }
    if let Ok(u) = orig.upper() {
        if u.proto == nh::ICMPV6 && !u.is_later_fragment() {
            match orig.packet().get(u.offset) {
                Some(&t) if t < 128 => return None,
                None => return None,
                _ => {}
            }
        }
    }
    let quote_len = orig
        .packet()
        .len()
        .min(ipv6::MIN_MTU - ipv6::HEADER_LEN - 8);
    let icmp_len = 8 + quote_len;
    let mut out = vec![0u8; ipv6::HEADER_LEN + icmp_len];
    Ipv6Repr {
        src: from,
        dst: src,
        next_header: nh::ICMPV6,
        traffic_class: 0,
        hop_limit: 64,
        payload_len: icmp_len,
    }
    .emit(&mut out);
    let icmp = &mut out[ipv6::HEADER_LEN..];
    icmp[0] = ty;
    icmp[1] = code;
    icmp[4..8].copy_from_slice(&param.to_be_bytes());
    icmp[8..].copy_from_slice(&orig.packet()[..quote_len]);
    let c = ipv6::upper_checksum(from, src, nh::ICMPV6, icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn orig(next: u8, payload: &[u8], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; 40 + len];
        Ipv6Repr {
            src: a("2001:db8:1::10"),
            dst: a("2001:db8:2::10"),
            next_header: next,
            traffic_class: 0,
            hop_limit: 64,
            payload_len: len,
        }
        .emit(&mut p);
        p[40..40 + payload.len()].copy_from_slice(payload);
        p
    }

    fn verify(r: &[u8]) -> Ipv6Packet<'_> {
        let v = Ipv6Packet::new_checked(r).unwrap();
        let acc = ipv4::sum(
            &r[40..],
            ipv6::pseudo_sum(v.src(), v.dst(), r.len() - 40, nh::ICMPV6),
        );
        assert_eq!(ipv4::fold(acc), 0xffff, "checksum");
        v
    }

    #[test]
    fn reject_is_admin_prohibited() {
        let p = orig(17, &[0, 53, 0, 53], 8);
        let r = unreachable(&Ipv6Packet::new_checked(&p).unwrap(), a("2001:db8:1::1")).unwrap();
        let v = verify(&r);
        assert_eq!(
            (v.src(), v.dst()),
            (a("2001:db8:1::1"), a("2001:db8:1::10"))
        );
        assert_eq!(v.next_header(), nh::ICMPV6);
        assert_eq!(&r[40..42], &[DEST_UNREACH, ADMIN_PROHIBITED]);
        assert_eq!(&r[48..], &p[..]);
    }

    #[test]
    fn packet_too_big_carries_the_mtu_and_fits_the_minimum_mtu() {
        let p = orig(6, &[0; 20], 1452);
        let r = packet_too_big(
            &Ipv6Packet::new_checked(&p).unwrap(),
            a("2001:db8:1::1"),
            1400,
        )
        .unwrap();
        verify(&r);
        assert_eq!(r.len(), ipv6::MIN_MTU);
        assert_eq!(&r[40..42], &[PACKET_TOO_BIG, 0]);
        assert_eq!(u32::from_be_bytes([r[44], r[45], r[46], r[47]]), 1400);
    }

    #[test]
    fn no_error_about_an_error_or_to_multicast() {
        let p = orig(nh::ICMPV6, &[1, 1, 0, 0], 8);
        assert!(unreachable(&Ipv6Packet::new_checked(&p).unwrap(), a("2001:db8::1")).is_none());
        let p = orig(nh::ICMPV6, &[128, 0, 0, 0], 8);
        assert!(unreachable(&Ipv6Packet::new_checked(&p).unwrap(), a("2001:db8::1")).is_some());
        let mut p = orig(17, &[0; 8], 8);
        p[24] = 0xff;
        assert!(unreachable(&Ipv6Packet::new_checked(&p).unwrap(), a("2001:db8::1")).is_none());
        assert!(packet_too_big(
            &Ipv6Packet::new_checked(&p).unwrap(),
            a("2001:db8::1"),
            1280
        )
        .is_some());
    }
}
