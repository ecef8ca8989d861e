//! IPv4 headers: a checked view over a packet buffer, the selector the eroute table matches on,
//! and header construction for the outer header of tunnel mode.

use std::net::Ipv4Addr;

/// Minimum IPv4 header length.
pub const HEADER_LEN: usize = 20;

/// IP protocol numbers the datapath cares about.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IP-in-IP.
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ESP.
    pub const ESP: u8 = 50;
    /// AH.
    pub const AH: u8 = 51;
    /// IPComp.
    pub const COMP: u8 = 108;
}

/// Why a buffer is not a usable IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Shorter than a header, or than the header length field says.
    Truncated,
    /// Version nibble is not 4.
    NotIpv4,
    /// Header length below 20 or total length inconsistent with the buffer.
    BadLength,
}

/// A read-only view of an IPv4 packet whose header lengths have been checked.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Checks version, header length and total length against the buffer. Trailing bytes beyond
    /// the total length (link padding) are ignored by `payload()`/`packet()`.
    pub fn new_checked(buf: &'a [u8]) -> Result<Ipv4Packet<'a>, Ipv4Error> {
        if buf.len() < HEADER_LEN {
            return Err(Ipv4Error::Truncated);
        }
        if buf[0] >> 4 != 4 {
            return Err(Ipv4Error::NotIpv4);
        }
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if ihl < HEADER_LEN || total < ihl {
            return Err(Ipv4Error::BadLength);
        }
        if buf.len() < total {
            return Err(Ipv4Error::Truncated);
        }
        Ok(Ipv4Packet { buf })
    }

    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buf[0] & 0x0f) * 4
    }

    /// Total length from the header.
    pub fn total_len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]))
    }

    /// Whether the header carries options.
    pub fn has_options(&self) -> bool {
        self.header_len() > HEADER_LEN
    }

    /// Type of service byte.
    pub fn tos(&self) -> u8 {
        self.buf[1]
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.buf[4], self.buf[5]])
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.buf[6] & 0x40 != 0
    }

    /// Whether this is a fragment (more-fragments set or nonzero offset).
    pub fn is_fragment(&self) -> bool {
        u16::from_be_bytes([self.buf[6], self.buf[7]]) & 0x3fff != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buf[8]
    }

    /// Protocol number of the payload.
    pub fn protocol(&self) -> u8 {
        self.buf[9]
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[12], self.buf[13], self.buf[14], self.buf[15])
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[16], self.buf[17], self.buf[18], self.buf[19])
    }

    /// The header bytes.
    pub fn header(&self) -> &'a [u8] {
        &self.buf[..self.header_len()]
    }

    /// The payload (up to the total length).
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len()..self.total_len()]
    }

    /// The whole packet (up to the total length).
    pub fn packet(&self) -> &'a [u8] {
        &self.buf[..self.total_len()]
    }

    /// Source and destination ports for TCP/UDP first fragments (0 otherwise).
    pub fn ports(&self) -> (u16, u16) {
        let p = self.payload();
        let first = u16::from_be_bytes([self.buf[6], self.buf[7]]) & 0x1fff == 0;
        if first && matches!(self.protocol(), proto::TCP | proto::UDP) && p.len() >= 4 {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        } else {
            (0, 0)
        }
    }
}

/// The RFC 1071 Internet checksum of `data` (folded, complemented).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Adds `data` to a running 32-bit one's-complement sum.
pub fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [b] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*b) << 8);
    }
    acc
}

/// Folds a 32-bit running sum into 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The fields of an IPv4 header without options, for building packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Type of service.
    pub tos: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Writes the 20-byte header (checksum filled in) into `out[..20]`.
    /// Returns false (writing nothing) if the total length would exceed 65535.
    pub fn emit(&self, out: &mut [u8]) -> bool {
        let total = self.payload_len + HEADER_LEN;
        if total > usize::from(u16::MAX) || out.len() < HEADER_LEN {
            return false;
        }
        out[0] = 0x45;
        out[1] = self.tos;
        out[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        out[4..6].copy_from_slice(&self.ident.to_be_bytes());
        out[6..8].copy_from_slice(&(if self.dont_frag { 0x4000u16 } else { 0 }).to_be_bytes());
        out[8] = self.ttl;
        out[9] = self.protocol;
        out[10..12].copy_from_slice(&[0, 0]);
        out[12..16].copy_from_slice(&self.src.octets());
        out[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum(&out[..HEADER_LEN]);
        out[10..12].copy_from_slice(&c.to_be_bytes());
        true
    }
}

/// Rewrites the total length and checksum of the IPv4 header at the front of `pkt`
/// after its payload has changed (transport mode), and sets the protocol.
pub fn fix_header(pkt: &mut [u8], protocol: u8) {
    if pkt.len() < HEADER_LEN {
        return;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    if pkt.len() < ihl || pkt.len() > usize::from(u16::MAX) {
        return;
    }
    let total = pkt.len() as u16;
    pkt[2..4].copy_from_slice(&total.to_be_bytes());
    pkt[9] = protocol;
    pkt[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&pkt[..ihl]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_parse_round_trip() {
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            protocol: proto::ESP,
            tos: 0x10,
            ttl: 64,
            ident: 7,
            dont_frag: true,
            payload_len: 4,
        };
        let mut buf = [0u8; 24];
        assert!(repr.emit(&mut buf));
        let p = Ipv4Packet::new_checked(&buf).unwrap();
        assert_eq!(p.src(), repr.src);
        assert_eq!(p.dst(), repr.dst);
        assert_eq!(p.protocol(), proto::ESP);
        assert!(p.dont_frag());
        assert_eq!(checksum(p.header()), 0);
        assert_eq!(p.payload().len(), 4);
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(
            Ipv4Packet::new_checked(&[0x45; 10]).unwrap_err(),
            Ipv4Error::Truncated
        );
        let mut b = [0u8; 20];
        b[0] = 0x60;
        assert_eq!(Ipv4Packet::new_checked(&b).unwrap_err(), Ipv4Error::NotIpv4);
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b).unwrap_err(),
            Ipv4Error::BadLength
        );
        b[0] = 0x45;
        b[3] = 40;
        assert_eq!(
            Ipv4Packet::new_checked(&b).unwrap_err(),
            Ipv4Error::Truncated
        );
    }
}

/// Splits an IPv4 packet (no options assumed beyond what its header says) into fragments no
/// larger than `mtu`, clearing DF. Returns None if `mtu` is too small to carry any payload.
pub fn fragment(pkt: &[u8], mtu: usize) -> Option<Vec<Vec<u8>>> {
    let p = Ipv4Packet::new_checked(pkt).ok()?;
    let hl = p.header_len();
    if pkt.len() <= mtu {
        return Some(vec![pkt.to_vec()]);
    }
    let chunk = (mtu.checked_sub(hl)? / 8) * 8;
    if chunk == 0 {
        return None;
    }
    let payload = p.payload();
    let base_off = usize::from(u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff) * 8;
    let orig_mf = pkt[6] & 0x20 != 0;
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let last = end == payload.len();
        let mut f = Vec::with_capacity(hl + end - off);
        f.extend_from_slice(&pkt[..hl]);
        f.extend_from_slice(&payload[off..end]);
        let fo = ((base_off + off) / 8) as u16;
        let mf = if !last || orig_mf { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&(fo | mf).to_be_bytes());
        let flen = f.len() as u16;
        f[2..4].copy_from_slice(&flen.to_be_bytes());
        f[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&f[..hl]);
        f[10..12].copy_from_slice(&c.to_be_bytes());
        out.push(f);
        off = end;
    }
    Some(out)
}

#[cfg(test)]
mod frag_tests {
    use super::*;

    #[test]
    fn fragments_reassemble() {
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut pkt = vec![0u8; HEADER_LEN + payload.len()];
        Ipv4Repr {
            src: Ipv4Addr::new(1, 1, 1, 1),
            dst: Ipv4Addr::new(2, 2, 2, 2),
            protocol: proto::ESP,
            tos: 0,
            ttl: 64,
            ident: 9,
            dont_frag: true,
            payload_len: payload.len(),
        }
        .emit(&mut pkt);
        pkt[HEADER_LEN..].copy_from_slice(&payload);
        let frags = fragment(&pkt, 1500).unwrap();
        assert_eq!(frags.len(), 3);
        let mut re = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 1500);
            let p = Ipv4Packet::new_checked(f).unwrap();
            assert_eq!(checksum(p.header()), 0);
            assert!(!p.dont_frag());
            let mf = f[6] & 0x20 != 0;
            assert_eq!(mf, i < 2);
            re.extend_from_slice(p.payload());
        }
        assert_eq!(re, payload);
    }
}
