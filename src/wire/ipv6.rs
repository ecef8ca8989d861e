//! IPv6 headers (RFC 8200): a checked view of a packet, the walk over extension headers to the
//! upper layer, a header to emit, and the pseudo-header sum for upper-layer checksums.

use std::net::Ipv6Addr;

use super::ipv4;

/// Fixed IPv6 header length.
pub const HEADER_LEN: usize = 40;

/// The minimum link MTU IPv6 requires (RFC 8200 section 5).
pub const MIN_MTU: usize = 1280;

/// Next-header values the datapath meets (beside the IPv4 protocol numbers of
/// [`super::ipv4::proto`], which IPv6 shares).
pub mod nh {
    /// Hop-by-hop options (only directly after the IPv6 header).
    pub const HOP_BY_HOP: u8 = 0;
    /// IPv6 in IP (tunnel mode's inner IPv6 packet).
    pub const IPV6: u8 = 41;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header.
    pub const NONE: u8 = 59;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
}

/// Most extension headers the walk follows before it calls a chain bogus.
pub const MAX_EXT_HEADERS: usize = 8;

/// Why bytes are not a usable IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Error {
    /// Shorter than the fixed header or than the payload length says.
    Truncated,
    /// Version field is not 6.
    NotIpv6,
    /// An extension header runs past the packet, hop-by-hop options are not first, or the chain
    /// is longer than [`MAX_EXT_HEADERS`].
    BadExtHeaders,
}

impl std::fmt::Display for Ipv6Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ipv6Error::Truncated => "truncated IPv6 packet",
            Ipv6Error::NotIpv6 => "not an IPv6 packet",
            Ipv6Error::BadExtHeaders => "bogus IPv6 extension header chain",
        })
    }
}

impl std::error::Error for Ipv6Error {}

/// Where the upper layer of an IPv6 packet starts, found by walking its extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upper {
    /// The upper-layer protocol (TCP, UDP, ICMPv6, ESP, AH, IPv4/IPv6 in IP, …).
    pub proto: u8,
    /// Offset of the upper-layer header (IPv6 header plus the extension headers skipped).
    pub offset: usize,
    /// Offset of the next-header byte that names `proto` (6 for the IPv6 header itself).
    pub nh_at: usize,
    /// A fragment header was found: (fragment offset in bytes, more fragments).
    pub fragment: Option<(usize, bool)>,
}

impl Upper {
    /// Whether this is a fragment that does not start the datagram (its upper-layer header is
    /// elsewhere).
    pub fn is_later_fragment(&self) -> bool {
        matches!(self.fragment, Some((off, _)) if off > 0)
    }
}

/// A read-only, length-checked view of an IPv6 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    /// Checks version and lengths; trailing bytes beyond the payload length are ignored. A
    /// payload length of 0 (a jumbogram) is refused as truncated.
    pub fn new_checked(buf: &'a [u8]) -> Result<Ipv6Packet<'a>, Ipv6Error> {
        if buf.len() < HEADER_LEN {
            return Err(Ipv6Error::Truncated);
        }
        if buf[0] >> 4 != 6 {
            return Err(Ipv6Error::NotIpv6);
        }
        let total = HEADER_LEN + usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        if total > buf.len() {
            return Err(Ipv6Error::Truncated);
        }
        Ok(Ipv6Packet { buf: &buf[..total] })
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (self.buf[0] << 4) | (self.buf[1] >> 4)
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes([0, self.buf[1] & 0x0f, self.buf[2], self.buf[3]])
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    /// Length of the whole packet.
    pub fn total_len(&self) -> usize {
        self.buf.len()
    }

    /// The fixed header's next header.
    pub fn next_header(&self) -> u8 {
        self.buf[6]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buf[7]
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(<[u8; 16]>::try_from(&self.buf[8..24]).unwrap_or([0; 16]))
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(<[u8; 16]>::try_from(&self.buf[24..40]).unwrap_or([0; 16]))
    }

    /// The packet, up to its payload length.
    pub fn packet(&self) -> &'a [u8] {
        self.buf
    }

    /// Walks the extension headers (hop-by-hop, routing, fragment, destination options) to the
    /// upper layer. AH and ESP count as the upper layer: what lies behind them is protected.
    pub fn upper(&self) -> Result<Upper, Ipv6Error> {
        walk(self.buf)
    }

    /// TCP/UDP ports of the upper layer, (0, 0) for other protocols, later fragments or a
    /// chain that cannot be walked.
    pub fn ports(&self) -> (u16, u16) {
        match self.upper() {
            Ok(u) if !u.is_later_fragment() => ports_at(self.buf, u),
            _ => (0, 0),
        }
    }
}

/// TCP/UDP ports at `u` in `pkt`.
pub fn ports_at(pkt: &[u8], u: Upper) -> (u16, u16) {
    if u.proto != ipv4::proto::TCP && u.proto != ipv4::proto::UDP {
        return (0, 0);
    }
    match pkt.get(u.offset..u.offset + 4) {
        Some(p) => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        None => (0, 0),
    }
}

/// Whether `n` is an extension header the walk skips.
fn is_ext(n: u8) -> bool {
    matches!(
        n,
        nh::HOP_BY_HOP | nh::ROUTING | nh::FRAGMENT | nh::DEST_OPTS
    )
}

/// The walk of [`Ipv6Packet::upper`] over a packet whose length was checked.
fn walk(pkt: &[u8]) -> Result<Upper, Ipv6Error> {
    let mut next = pkt[6];
    let mut nh_at = 6;
    let mut off = HEADER_LEN;
    let mut fragment = None;
    let mut seen = 0;
    while is_ext(next) {
        if next == nh::HOP_BY_HOP && seen > 0 {
            return Err(Ipv6Error::BadExtHeaders);
        }
        seen += 1;
        if seen > MAX_EXT_HEADERS {
            return Err(Ipv6Error::BadExtHeaders);
        }
        let h = pkt.get(off..off + 8).ok_or(Ipv6Error::BadExtHeaders)?;
        let len = if next == nh::FRAGMENT {
            let fo = u16::from_be_bytes([h[2], h[3]]);
            fragment = Some((usize::from(fo & 0xfff8), fo & 1 == 1));
            8
        } else {
            (usize::from(h[1]) + 1) * 8
        };
        if off + len > pkt.len() {
            return Err(Ipv6Error::BadExtHeaders);
        }
        nh_at = off;
        next = h[0];
        off += len;
        if fragment.is_some_and(|(o, _)| o > 0) {
            // Behind a later fragment's header lies data, not a header.
            break;
        }
    }
    Ok(Upper {
        proto: next,
        offset: off,
        nh_at,
        fragment,
    })
}

/// The fields of an IPv6 header, for building packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Ipv6Repr {
    /// Writes the 40-byte header into `out[..40]` (flow label 0). Returns false (writing
    /// nothing) if the payload length exceeds 65535 or `out` is short.
    pub fn emit(&self, out: &mut [u8]) -> bool {
        if self.payload_len > usize::from(u16::MAX) || out.len() < HEADER_LEN {
            return false;
        }
        out[0] = 0x60 | (self.traffic_class >> 4);
        out[1] = self.traffic_class << 4;
        out[2] = 0;
        out[3] = 0;
        out[4..6].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
        out[6] = self.next_header;
        out[7] = self.hop_limit;
        out[8..24].copy_from_slice(&self.src.octets());
        out[24..40].copy_from_slice(&self.dst.octets());
        true
    }
}

/// Rewrites the payload length of the IPv6 header at the front of `pkt` after its payload
/// changed (transport mode) and sets the next-header byte at `nh_at` to `next` (the IPv6
/// header's own at 6, else the last extension header's). False if `pkt` cannot hold it.
pub fn fix_header(pkt: &mut [u8], nh_at: usize, next: u8) -> bool {
    if pkt.len() < HEADER_LEN || nh_at >= pkt.len() || pkt.len() - HEADER_LEN > 0xffff {
        return false;
    }
    let pl = (pkt.len() - HEADER_LEN) as u16;
    pkt[4..6].copy_from_slice(&pl.to_be_bytes());
    pkt[nh_at] = next;
    true
}

/// The one's-complement sum of the IPv6 pseudo-header (RFC 8200 section 8.1) for an
/// upper-layer packet of `len` bytes and protocol `next`.
pub fn pseudo_sum(src: Ipv6Addr, dst: Ipv6Addr, len: usize, next: u8) -> u32 {
    let mut acc = ipv4::sum(&src.octets(), 0);
    acc = ipv4::sum(&dst.octets(), acc);
    acc = ipv4::sum(&(len as u32).to_be_bytes(), acc);
    acc.wrapping_add(u32::from(next))
}

/// The checksum of an upper-layer packet `data` (its checksum field zero) under the IPv6
/// pseudo-header; a UDP checksum of 0 is sent as 0xffff (RFC 8200 8.1: it may not be zero).
pub fn upper_checksum(src: Ipv6Addr, dst: Ipv6Addr, next: u8, data: &[u8]) -> u16 {
    let acc = ipv4::sum(data, pseudo_sum(src, dst, data.len(), next));
    match !ipv4::fold(acc) {
        0 if next == ipv4::proto::UDP => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN + payload.len()];
        assert!(Ipv6Repr {
            src: a("2001:db8:1::10"),
            dst: a("2001:db8:2::10"),
            next_header: next,
            traffic_class: 0xb8,
            hop_limit: 64,
            payload_len: payload.len(),
        }
        .emit(&mut p));
        p[HEADER_LEN..].copy_from_slice(payload);
        p
    }

    #[test]
    fn header_round_trip() {
        let p = packet(17, &[0, 53, 0, 54, 0, 8, 0, 0]);
        let v = Ipv6Packet::new_checked(&p).unwrap();
        assert_eq!(v.src(), a("2001:db8:1::10"));
        assert_eq!(v.dst(), a("2001:db8:2::10"));
        assert_eq!(
            (v.traffic_class(), v.flow_label(), v.hop_limit()),
            (0xb8, 0, 64)
        );
        assert_eq!((v.payload_len(), v.next_header()), (8, 17));
        assert_eq!(v.ports(), (53, 54));
        let u = v.upper().unwrap();
        assert_eq!((u.proto, u.offset, u.nh_at, u.fragment), (17, 40, 6, None));
        // trailing link padding is not part of the packet
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(Ipv6Packet::new_checked(&padded).unwrap().total_len(), 48);
    }

    #[test]
    fn refuses_short_or_foreign() {
        assert_eq!(
            Ipv6Packet::new_checked(&[0x60; 39]).unwrap_err(),
            Ipv6Error::Truncated
        );
        let mut p = packet(17, &[0; 8]);
        p[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&p).unwrap_err(), Ipv6Error::NotIpv6);
        let mut p = packet(17, &[0; 8]);
        p[5] = 9;
        assert_eq!(
            Ipv6Packet::new_checked(&p).unwrap_err(),
            Ipv6Error::Truncated
        );
    }

    /// Hop-by-hop, destination options, routing and fragment headers are skipped to TCP; the
    /// next-header byte naming TCP is the last extension header's.
    #[test]
    fn extension_headers_walked_to_the_upper_layer() {
        let mut pl = Vec::new();
        pl.extend_from_slice(&[nh::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]); // HBH: PadN
        pl.extend_from_slice(&[nh::ROUTING, 1, 1, 12, 0, 0, 0, 0]); // dest opts, 16 bytes
        pl.extend_from_slice(&[0; 8]);
        pl.extend_from_slice(&[nh::FRAGMENT, 0, 4, 0, 0, 0, 0, 0]); // routing, segments 0
        pl.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]); // fragment offset 0, more
        pl.extend_from_slice(&[0x1f, 0x90, 0, 80, 0, 0, 0, 0]); // TCP ports 8080 → 80
        let p = packet(nh::HOP_BY_HOP, &pl);
        let v = Ipv6Packet::new_checked(&p).unwrap();
        let u = v.upper().unwrap();
        assert_eq!(u.proto, 6);
        assert_eq!(u.offset, 40 + 8 + 16 + 8 + 8);
        assert_eq!(u.nh_at, 40 + 8 + 16 + 8);
        assert_eq!(u.fragment, Some((0, true)));
        assert_eq!(v.ports(), (8080, 80));
        // A later fragment has no upper-layer header to read.
        let mut later = p.clone();
        later[40 + 32 + 3] = 0x10;
        let v = Ipv6Packet::new_checked(&later).unwrap();
        assert!(v.upper().unwrap().is_later_fragment());
        assert_eq!(v.ports(), (0, 0));
    }

    #[test]
    fn bogus_chains_are_refused() {
        // an extension header longer than the packet
        let p = packet(nh::DEST_OPTS, &[6, 4, 0, 0, 0, 0, 0, 0]);
        let v = Ipv6Packet::new_checked(&p).unwrap();
        assert_eq!(v.upper(), Err(Ipv6Error::BadExtHeaders));
        // hop-by-hop after another header
        let p = packet(
            nh::DEST_OPTS,
            &[0, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0],
        );
        let v = Ipv6Packet::new_checked(&p).unwrap();
        assert_eq!(v.upper(), Err(Ipv6Error::BadExtHeaders));
        // a header cut short
        let p = packet(nh::ROUTING, &[6, 0, 0, 0]);
        let v = Ipv6Packet::new_checked(&p).unwrap();
        assert_eq!(v.upper(), Err(Ipv6Error::BadExtHeaders));
        // an endless chain of destination options
        let chain: Vec<u8> = (0..20)
            .flat_map(|_| [nh::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0])
            .collect();
        let p = packet(nh::DEST_OPTS, &chain);
        let v = Ipv6Packet::new_checked(&p).unwrap();
        assert_eq!(v.upper(), Err(Ipv6Error::BadExtHeaders));
        assert_eq!(v.ports(), (0, 0));
    }

    /// The UDP checksum under the IPv6 pseudo-header verifies to zero over the datagram, and
    /// fix_header rewrites the payload length and the naming byte.
    #[test]
    fn pseudo_header_checksum_and_fix() {
        let mut p = packet(17, &[0x11, 0x94, 0x11, 0x94, 0, 12, 0, 0, 1, 2, 3, 4]);
        let (s, d) = (a("2001:db8:1::10"), a("2001:db8:2::10"));
        let c = upper_checksum(s, d, 17, &p[40..]);
        p[46..48].copy_from_slice(&c.to_be_bytes());
        let acc = ipv4::sum(&p[40..], pseudo_sum(s, d, 12, 17));
        assert_eq!(ipv4::fold(acc), 0xffff);
        p.extend_from_slice(&[0; 4]);
        assert!(fix_header(&mut p, 6, 50));
        assert_eq!(&p[4..7], &[0, 16, 50]);
    }
}
