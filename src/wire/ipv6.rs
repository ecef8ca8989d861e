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

/// Where the unfragmentable part of `pkt` ends (RFC 8200 4.5: the IPv6 header plus a
/// Hop-by-Hop header, a Routing header and Destination Options in front of a Routing header),
/// with the offset of the next-header byte that names the first fragmentable header. None if
/// the chain is malformed or already holds a Fragment header.
fn unfragmentable(pkt: &[u8]) -> Option<(usize, usize)> {
    let mut next = *pkt.get(6)?;
    let (mut off, mut nh_at) = (HEADER_LEN, 6);
    for _ in 0..MAX_EXT_HEADERS {
        let h = pkt.get(off..off + 2)?;
        let stays = match next {
            nh::HOP_BY_HOP | nh::ROUTING => true,
            // Destination options travel with the Routing header they precede.
            nh::DEST_OPTS => {
                let len = (usize::from(h[1]) + 1) * 8;
                h[0] == nh::ROUTING && pkt.len() >= off + len
            }
            nh::FRAGMENT => return None,
            _ => false,
        };
        if !stays {
            return Some((off, nh_at));
        }
        let len = (usize::from(h[1]) + 1) * 8;
        if off + len > pkt.len() {
            return None;
        }
        nh_at = off;
        next = h[0];
        off += len;
    }
    None
}

/// Source fragmentation (RFC 8200 4.5) of the IPv6 packet `pkt` into packets of at most `mtu`
/// bytes, each carrying a Fragment header with identification `ident`. A packet that fits is
/// returned whole. None if `pkt` is not IPv6, is already a fragment, or `mtu` leaves no room
/// for 8 bytes of payload per fragment. Only this gateway's own outer packets come here:
/// routers never fragment IPv6, but the source of a packet may.
pub fn fragment(pkt: &[u8], mtu: usize, ident: u32) -> Option<Vec<Vec<u8>>> {
    let p = Ipv6Packet::new_checked(pkt).ok()?;
    let pkt = &pkt[..p.total_len()];
    if pkt.len() <= mtu {
        return Some(vec![pkt.to_vec()]);
    }
    let (unfrag, nh_at) = unfragmentable(pkt)?;
    let chunk = (mtu.checked_sub(unfrag + 8)? / 8) * 8;
    if chunk == 0 {
        return None;
    }
    let first_next = pkt[nh_at];
    let data = &pkt[unfrag..];
    let mut out = Vec::with_capacity(data.len().div_ceil(chunk));
    let mut off = 0;
    while off < data.len() {
        let end = (off + chunk).min(data.len());
        let more = u16::from(end < data.len());
        let mut f = Vec::with_capacity(unfrag + 8 + end - off);
        f.extend_from_slice(&pkt[..unfrag]);
        f[nh_at] = nh::FRAGMENT;
        f.extend_from_slice(&[first_next, 0]);
        f.extend_from_slice(&((off as u16) | more).to_be_bytes());
        f.extend_from_slice(&ident.to_be_bytes());
        f.extend_from_slice(&data[off..end]);
        let pl = (f.len() - HEADER_LEN) as u16;
        f[4..6].copy_from_slice(&pl.to_be_bytes());
        out.push(f);
        off = end;
    }
    Some(out)
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

    /// Reassembles fragments made by [`fragment`] (the receiver's view, RFC 8200 4.5).
    /// `nh_at` is where the unfragmentable part names the Fragment header.
    fn reassemble(frags: &[Vec<u8>], nh_at: usize) -> Vec<u8> {
        let first = Ipv6Packet::new_checked(&frags[0]).unwrap().upper().unwrap();
        let unfrag = first.offset - 8;
        assert_eq!(frags[0][nh_at], nh::FRAGMENT);
        let mut whole = frags[0][..unfrag].to_vec();
        let mut data = Vec::new();
        for f in frags {
            let u = Ipv6Packet::new_checked(f).unwrap().upper().unwrap();
            let (off, _) = u.fragment.unwrap();
            assert_eq!(off, data.len());
            data.extend_from_slice(&f[unfrag + 8..]);
        }
        // The fragment header's next-header byte names the first fragmentable header.
        whole[nh_at] = frags[0][unfrag];
        let pl = (unfrag - HEADER_LEN + data.len()) as u16;
        whole[4..6].copy_from_slice(&pl.to_be_bytes());
        whole.extend_from_slice(&data);
        whole
    }

    fn esp6(payload: usize, ext: &[u8]) -> Vec<u8> {
        let mut pkt = vec![0u8; HEADER_LEN];
        Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: if ext.is_empty() { 50 } else { nh::HOP_BY_HOP },
            traffic_class: 0,
            hop_limit: 64,
            payload_len: ext.len() + payload,
        }
        .emit(&mut pkt);
        pkt.extend_from_slice(ext);
        pkt.extend((0..payload).map(|i| i as u8));
        pkt
    }

    #[test]
    fn fragments_fit_and_reassemble() {
        for ext in [&[][..], &[50, 0, 1, 4, 0, 0, 0, 0][..]] {
            let pkt = esp6(3000, ext);
            let frags = fragment(&pkt, 1280, 0xdead_beef).unwrap();
            assert_eq!(frags.len(), 3);
            for (i, f) in frags.iter().enumerate() {
                assert!(f.len() <= 1280);
                let u = Ipv6Packet::new_checked(f).unwrap().upper().unwrap();
                assert_eq!(
                    u.proto, 50,
                    "fragment {i} names ESP behind its Fragment header"
                );
                let (off, more) = u.fragment.unwrap();
                assert_eq!(off % 8, 0);
                assert_eq!(more, i + 1 < frags.len());
                assert_eq!(&f[u.offset - 4..u.offset], &0xdead_beefu32.to_be_bytes());
                // The hop-by-hop header stays in every fragment, in front of it.
                if !ext.is_empty() {
                    assert_eq!(f[6], nh::HOP_BY_HOP);
                    assert_eq!(f[HEADER_LEN], nh::FRAGMENT);
                    assert_eq!(&f[HEADER_LEN + 1..HEADER_LEN + ext.len()], &ext[1..]);
                }
            }
            let nh_at = if ext.is_empty() { 6 } else { HEADER_LEN };
            assert_eq!(reassemble(&frags, nh_at), pkt);
        }
        let small = esp6(100, &[]);
        assert_eq!(fragment(&small, 1280, 1).unwrap(), vec![small.clone()]);
    }

    #[test]
    fn refuses_what_it_cannot_fragment() {
        let pkt = esp6(3000, &[]);
        assert_eq!(
            fragment(&pkt, 48, 1),
            None,
            "no room for 8 bytes of payload"
        );
        let frags = fragment(&pkt, 1280, 1).unwrap();
        let mut again = frags[0].clone();
        again.extend_from_slice(&[0; 2000]);
        let pl = (again.len() - HEADER_LEN) as u16;
        again[4..6].copy_from_slice(&pl.to_be_bytes());
        assert_eq!(fragment(&again, 1280, 2), None, "already a fragment");
        assert_eq!(fragment(&pkt[..30], 1280, 1), None, "not a packet");
    }
}
