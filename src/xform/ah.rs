//! AH (RFC 4302) with the truncated HMACs, over whole IPv4 or IPv6 packets (dispatched on the
//! IP version).
//!
//! [`ah_output`] inserts the AH header after the IPv4 header; [`ah_header`] reads SPI and
//! sequence number for the SA lookup; [`ah_input`] verifies the ICV. The ICV covers the IPv4
//! header with its mutable fields (TOS, flags + fragment offset, TTL, checksum) zeroed, the AH
//! header with a zero ICV field, and the payload (RFC 4302 §3.3.3.1).
//!
//! IPv4 options are not supported: packets carrying them are refused with
//! [`AhError::IpOptions`], as KLIPS does ("IP options").
//!
//! Over IPv6 (RFC 4302 §3.3.3.1.2) AH goes behind the extension headers in front of the upper
//! layer, its length is a multiple of 64 bits, and the ICV covers the IPv6 header with traffic
//! class, flow label and hop limit zeroed, the extension headers in front of AH with the data
//! of every option whose "may change en route" bit is set zeroed (hop-by-hop and destination
//! options), the AH header with a zero ICV field, and the payload. A routing header with
//! segments left would make the destination address predictable-but-mutable; such packets are
//! refused ([`AhError::IpOptions`]), as are chains longer than [`MAX_V6_HEADERS`] bytes.

use std::fmt;

use crate::crypto::{Integrity, MAX_ICV_LEN};

/// IP protocol number of AH.
pub const IPPROTO_AH: u8 = 51;
/// Bytes of the AH header before the ICV (next header, payload length, reserved, SPI, seq).
pub const AH_FIXED_LEN: usize = 12;
/// Length of an IPv4 header without options (the only kind handled here).
const IPV4_HEADER_LEN: usize = 20;

/// Why an AH operation failed. Maps onto KLIPS' counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AhError {
    /// Packet shorter than its IPv4 header, total length or AH header claim.
    Truncated,
    /// Inconsistent lengths: the AH payload length field does not match the SA's ICV size
    /// (KLIPS "bad authenticator length"), a malformed IPv4 header (version not 4, IHL < 5,
    /// total length < 20), a packet that is not AH (protocol ≠ 51) on input, or an output
    /// packet that would exceed 65535 bytes.
    BadLength,
    /// The IPv4 header carries options (KLIPS "IP options").
    IpOptions,
    /// ICV mismatch (per-SA `auth_errs`).
    AuthFailed,
}

impl fmt::Display for AhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AhError::Truncated => "AH packet truncated",
            AhError::BadLength => "bad authenticator length",
            AhError::IpOptions => "IP options are not supported with AH",
            AhError::AuthFailed => "AH authentication failed",
        })
    }
}

impl std::error::Error for AhError {}

/// What [`ah_input`] learned from a verified AH packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AhInput {
    /// SPI from the AH header.
    pub spi: u32,
    /// Sequence number from the AH header.
    pub seq: u32,
    /// Protocol of the payload after AH (4 = IPIP for tunnel mode, 50 = ESP, 6 = TCP, …).
    pub next_header: u8,
    /// Bytes of IPv4 header plus AH header (including the ICV): the payload starts here.
    pub header_len: usize,
    /// The IPv4 total length: the payload ends here (bytes beyond it, e.g. link-layer padding,
    /// were not authenticated and are not part of the packet).
    pub total_len: usize,
}

/// Length of the AH header for an ICV of `icv_len` bytes, padded to 32 bits for IPv4.
fn ah_len(icv_len: usize) -> usize {
    AH_FIXED_LEN + icv_len.div_ceil(4) * 4
}

/// Length of the AH header over IPv6: padded to 64 bits.
fn ah_len6(icv_len: usize) -> usize {
    (AH_FIXED_LEN + icv_len).div_ceil(8) * 8
}

/// Most bytes of IPv6 header plus extension headers in front of AH.
pub const MAX_V6_HEADERS: usize = 256;

fn is_v6(ip: &[u8]) -> bool {
    ip.first().is_some_and(|b| b >> 4 == 6)
}

/// An IPv6 packet's length and where AH goes (or is): (total length, offset of the upper
/// layer — AH on input —, offset of the next-header byte naming it).
fn v6_layout(ip: &[u8]) -> Result<(usize, usize, usize), AhError> {
    use crate::wire::ipv6::{Ipv6Error, Ipv6Packet};
    let p = Ipv6Packet::new_checked(ip).map_err(|e| match e {
        Ipv6Error::Truncated => AhError::Truncated,
        _ => AhError::BadLength,
    })?;
    let u = p.upper().map_err(|_| AhError::BadLength)?;
    if u.offset > MAX_V6_HEADERS {
        return Err(AhError::IpOptions);
    }
    Ok((p.total_len(), u.offset, u.nh_at))
}

/// The IPv6 header and extension headers `hdr` as the ICV sees them, written into `out`:
/// traffic class, flow label and hop limit zeroed; options marked mutable zeroed.
fn zero_mutable6(hdr: &[u8], out: &mut [u8]) -> Result<(), AhError> {
    use crate::wire::ipv6::nh;
    let out = &mut out[..hdr.len()];
    out.copy_from_slice(hdr);
    out[0] = 0x60;
    out[1] = 0;
    out[2] = 0;
    out[3] = 0;
    out[7] = 0; // hop limit
    let mut next = out[6];
    let mut off = crate::wire::ipv6::HEADER_LEN;
    while off < out.len() {
        let len = if next == nh::FRAGMENT {
            8
        } else {
            (usize::from(out.get(off + 1).copied().ok_or(AhError::Truncated)?) + 1) * 8
        };
        let h = out.get_mut(off..off + len).ok_or(AhError::Truncated)?;
        match next {
            nh::HOP_BY_HOP | nh::DEST_OPTS => {
                let mut i = 2;
                while i < h.len() {
                    let ty = h[i];
                    if ty == 0 {
                        i += 1; // Pad1
                        continue;
                    }
                    let dlen = usize::from(*h.get(i + 1).ok_or(AhError::BadLength)?);
                    let data = h.get_mut(i + 2..i + 2 + dlen).ok_or(AhError::BadLength)?;
                    if ty & 0x20 != 0 {
                        data.fill(0);
                    }
                    i += 2 + dlen;
                }
            }
            nh::ROUTING if h[3] != 0 => return Err(AhError::IpOptions),
            _ => {}
        }
        next = h[0];
        off += len;
    }
    Ok(())
}

/// [`ah_output`] for an IPv6 packet.
fn ah6_output(
    integ: &dyn Integrity,
    spi: u32,
    seq: u32,
    ip: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AhError> {
    let (total, at, nh_at) = v6_layout(ip)?;
    let icv_len = integ.icv_len();
    if icv_len == 0 || icv_len > MAX_ICV_LEN {
        return Err(AhError::BadLength);
    }
    let ah_len = ah_len6(icv_len);
    let payload_len = u16::try_from(total + ah_len - crate::wire::ipv6::HEADER_LEN)
        .map_err(|_| AhError::BadLength)?;
    let mut hdr = [0u8; MAX_V6_HEADERS];
    let hdr = &mut hdr[..at];
    hdr.copy_from_slice(&ip[..at]);
    let next_header = hdr[nh_at];
    hdr[nh_at] = IPPROTO_AH;
    hdr[4..6].copy_from_slice(&payload_len.to_be_bytes());
    let mut fixed = [0u8; AH_FIXED_LEN];
    fixed[0] = next_header;
    fixed[1] = (ah_len / 4 - 2) as u8;
    fixed[4..8].copy_from_slice(&spi.to_be_bytes());
    fixed[8..12].copy_from_slice(&seq.to_be_bytes());
    let mut zeroed = [0u8; MAX_V6_HEADERS];
    zero_mutable6(hdr, &mut zeroed)?;
    let icv_field = ah_len - AH_FIXED_LEN;
    let payload = &ip[at..total];
    let mut icv = [0u8; MAX_ICV_LEN + 8];
    integ.compute(
        &[&zeroed[..at], &fixed, &ZERO_ICV[..icv_field], payload],
        &mut icv[..icv_len],
    );
    out.reserve(total + ah_len);
    out.extend_from_slice(hdr);
    out.extend_from_slice(&fixed);
    out.extend_from_slice(&icv[..icv_field]);
    out.extend_from_slice(payload);
    Ok(())
}

/// [`ah_input`] for an IPv6 packet.
fn ah6_input(integ: &dyn Integrity, ip: &[u8]) -> Result<AhInput, AhError> {
    let (total, at, nh_at) = v6_layout(ip)?;
    if ip[nh_at] != IPPROTO_AH {
        return Err(AhError::BadLength);
    }
    let fixed = ip.get(at..at + AH_FIXED_LEN).ok_or(AhError::Truncated)?;
    let icv_len = integ.icv_len();
    if icv_len == 0 || icv_len > MAX_ICV_LEN {
        return Err(AhError::BadLength);
    }
    let ah_len = ah_len6(icv_len);
    if (usize::from(fixed[1]) + 2) * 4 != ah_len {
        return Err(AhError::BadLength);
    }
    let header_len = at + ah_len;
    if header_len > total {
        return Err(AhError::Truncated);
    }
    let mut zeroed = [0u8; MAX_V6_HEADERS];
    zero_mutable6(&ip[..at], &mut zeroed)?;
    let icv = &ip[at + AH_FIXED_LEN..at + AH_FIXED_LEN + icv_len];
    let ok = integ.verify(
        &[
            &zeroed[..at],
            fixed,
            &ZERO_ICV[..ah_len - AH_FIXED_LEN],
            &ip[header_len..total],
        ],
        icv,
    );
    if !ok {
        return Err(AhError::AuthFailed);
    }
    Ok(AhInput {
        spi: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        seq: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        next_header: fixed[0],
        header_len,
        total_len: total,
    })
}

/// Validates the IPv4 header of `ip` and returns its total length.
fn ipv4_total_len(ip: &[u8]) -> Result<usize, AhError> {
    if ip.len() < IPV4_HEADER_LEN {
        return Err(AhError::Truncated);
    }
    if ip[0] >> 4 != 4 {
        return Err(AhError::BadLength);
    }
    let ihl = usize::from(ip[0] & 0x0f);
    if ihl < 5 {
        return Err(AhError::BadLength);
    }
    if ihl > 5 {
        return Err(AhError::IpOptions);
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total < IPV4_HEADER_LEN {
        return Err(AhError::BadLength);
    }
    if total > ip.len() {
        return Err(AhError::Truncated);
    }
    Ok(total)
}

/// The IPv4 header as the ICV sees it: TOS, flags + fragment offset, TTL and checksum zeroed.
fn zero_mutable(hdr: &[u8]) -> [u8; IPV4_HEADER_LEN] {
    let mut h = [0u8; IPV4_HEADER_LEN];
    h.copy_from_slice(&hdr[..IPV4_HEADER_LEN]);
    h[1] = 0; // TOS / DSCP+ECN
    h[6] = 0; // flags + fragment offset
    h[7] = 0;
    h[8] = 0; // TTL
    h[10] = 0; // header checksum
    h[11] = 0;
    h
}

/// The Internet checksum of an IPv4 header (RFC 1071), with its checksum field taken as zero.
fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, pair) in hdr.chunks(2).enumerate() {
        if i == 5 {
            continue;
        }
        let hi = u32::from(pair[0]) << 8;
        let lo = pair.get(1).copied().map_or(0, u32::from);
        sum += hi | lo;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Zeros for the ICV field with its padding (up to 64 bits over IPv6).
static ZERO_ICV: [u8; MAX_ICV_LEN + 8] = [0u8; MAX_ICV_LEN + 8];

/// Appends to `out` the IPv4 packet `ip` with an AH header inserted after its IPv4 header
/// (transport-mode AH; for tunnel mode pass the IPIP-encapsulated packet).
///
/// The protocol field becomes 51 (the old value moves to AH's next header), the total length
/// grows by the AH length and the header checksum is recomputed; AH's payload length field is
/// (AH length in 32-bit words) − 2. Bytes of `ip` beyond its IPv4 total length are dropped.
/// Fails with [`AhError::IpOptions`] for packets with IPv4 options, and on malformed input; on
/// error `out` is unchanged.
pub fn ah_output(
    integ: &dyn Integrity,
    spi: u32,
    seq: u32,
    ip: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AhError> {
    if is_v6(ip) {
        return ah6_output(integ, spi, seq, ip, out);
    }
    let total = ipv4_total_len(ip)?;
    let icv_len = integ.icv_len();
    if icv_len == 0 || icv_len > MAX_ICV_LEN {
        return Err(AhError::BadLength);
    }
    let ah_len = ah_len(icv_len);
    let new_total = total + ah_len;
    let new_total16 = u16::try_from(new_total).map_err(|_| AhError::BadLength)?;
    let payload = &ip[IPV4_HEADER_LEN..total];

    let mut hdr = [0u8; IPV4_HEADER_LEN];
    hdr.copy_from_slice(&ip[..IPV4_HEADER_LEN]);
    let next_header = hdr[9];
    hdr[9] = IPPROTO_AH;
    hdr[2..4].copy_from_slice(&new_total16.to_be_bytes());
    let csum = ipv4_checksum(&hdr);
    hdr[10..12].copy_from_slice(&csum.to_be_bytes());

    let mut fixed = [0u8; AH_FIXED_LEN];
    fixed[0] = next_header;
    // ah_len <= 12 + 32, so this fits in a byte.
    fixed[1] = (ah_len / 4 - 2) as u8;
    fixed[4..8].copy_from_slice(&spi.to_be_bytes());
    fixed[8..12].copy_from_slice(&seq.to_be_bytes());

    let icv_field = ah_len - AH_FIXED_LEN;
    let mut icv = [0u8; MAX_ICV_LEN];
    integ.compute(
        &[&zero_mutable(&hdr), &fixed, &ZERO_ICV[..icv_field], payload],
        &mut icv[..icv_len],
    );

    out.reserve(new_total);
    out.extend_from_slice(&hdr);
    out.extend_from_slice(&fixed);
    // icv[icv_len..icv_field] is zero: the IPv4 alignment padding.
    out.extend_from_slice(&icv[..icv_field]);
    out.extend_from_slice(payload);
    Ok(())
}

/// Reads (SPI, sequence number) from an IPv4 AH packet for the SA lookup and replay check,
/// without verifying anything else.
pub fn ah_header(ip: &[u8]) -> Result<(u32, u32), AhError> {
    if is_v6(ip) {
        let (total, at, nh_at) = v6_layout(ip)?;
        if ip[nh_at] != IPPROTO_AH {
            return Err(AhError::BadLength);
        }
        let ah = ip
            .get(at..total)
            .and_then(|a| a.get(..AH_FIXED_LEN))
            .ok_or(AhError::Truncated)?;
        return Ok((
            u32::from_be_bytes([ah[4], ah[5], ah[6], ah[7]]),
            u32::from_be_bytes([ah[8], ah[9], ah[10], ah[11]]),
        ));
    }
    let total = ipv4_total_len(ip)?;
    if ip[9] != IPPROTO_AH {
        return Err(AhError::BadLength);
    }
    let ah = ip
        .get(IPV4_HEADER_LEN..total)
        .and_then(|a| a.get(..AH_FIXED_LEN))
        .ok_or(AhError::Truncated)?;
    Ok((
        u32::from_be_bytes([ah[4], ah[5], ah[6], ah[7]]),
        u32::from_be_bytes([ah[8], ah[9], ah[10], ah[11]]),
    ))
}

/// Verifies the ICV of an IPv4 AH packet with the SA's integrity check (constant-time).
///
/// The AH payload length field must describe exactly `integ.icv_len()` bytes of ICV (padded
/// to 32 bits), else [`AhError::BadLength`]. Mutable IPv4 fields (TOS, flags, fragment
/// offset, TTL, checksum) may have changed in transit.
pub fn ah_input(integ: &dyn Integrity, ip: &[u8]) -> Result<AhInput, AhError> {
    if is_v6(ip) {
        return ah6_input(integ, ip);
    }
    let (spi, seq) = ah_header(ip)?;
    let total = ipv4_total_len(ip)?;
    let icv_len = integ.icv_len();
    if icv_len == 0 || icv_len > MAX_ICV_LEN {
        return Err(AhError::BadLength);
    }
    let fixed = &ip[IPV4_HEADER_LEN..IPV4_HEADER_LEN + AH_FIXED_LEN];
    let claimed = (usize::from(fixed[1]) + 2) * 4;
    let ah_len = ah_len(icv_len);
    if claimed != ah_len {
        return Err(AhError::BadLength);
    }
    let header_len = IPV4_HEADER_LEN + ah_len;
    if header_len > total {
        return Err(AhError::Truncated);
    }
    let icv_start = IPV4_HEADER_LEN + AH_FIXED_LEN;
    let icv = &ip[icv_start..icv_start + icv_len];
    let payload = &ip[header_len..total];
    let ok = integ.verify(
        &[
            &zero_mutable(ip),
            fixed,
            &ZERO_ICV[..ah_len - AH_FIXED_LEN],
            payload,
        ],
        icv,
    );
    if !ok {
        return Err(AhError::AuthFailed);
    }
    Ok(AhInput {
        spi,
        seq,
        next_header: fixed[0],
        header_len,
        total_len: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{default_provider, AuthAlg};

    /// A UDP-ish IPv4 packet 10.0.1.5 -> 10.0.2.7 with `len` payload bytes.
    fn packet(len: usize) -> Vec<u8> {
        let total = (20 + len) as u16;
        let mut p = vec![
            0x45, 0x10, 0, 0, 0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0, 10, 0, 1, 5, 10, 0, 2, 7,
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let c = ipv4_checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend((0..len).map(|i| (i * 13 + 1) as u8));
        p
    }

    fn integ(alg: AuthAlg) -> Box<dyn Integrity> {
        let key: Vec<u8> = (0..alg.key_len() as u8).collect();
        default_provider().integrity(alg, &key).unwrap()
    }

    fn header_checksum_ok(p: &[u8]) -> bool {
        u16::from_be_bytes([p[10], p[11]]) == ipv4_checksum(&p[..20])
    }

    #[test]
    fn checksum_matches_known_header() {
        // The RFC 3602 case 5 outer header carries a valid checksum f9a5.
        let h = hex::decode("4500007c08f200004032f9a5c0a87b03c0a87b64").unwrap();
        assert_eq!(ipv4_checksum(&h), 0xf9a5);
    }

    #[test]
    fn round_trip_every_alg() {
        for alg in AuthAlg::ALL {
            let i = integ(alg);
            for len in [0usize, 1, 63, 1400] {
                let p = packet(len);
                let mut out = vec![0xaa];
                ah_output(i.as_ref(), 0x1000, 77, &p, &mut out).unwrap();
                let out = out.split_off(1);
                let ah_len = 12 + alg.icv_len();
                assert_eq!(out.len(), p.len() + ah_len);
                assert_eq!(out[9], IPPROTO_AH);
                assert_eq!(
                    usize::from(u16::from_be_bytes([out[2], out[3]])),
                    p.len() + ah_len
                );
                assert!(header_checksum_ok(&out));
                assert_eq!(out[20], 17); // next header
                assert_eq!(usize::from(out[21]), ah_len / 4 - 2);
                if alg == AuthAlg::HmacSha1_96 {
                    assert_eq!(out[21], 4); // RFC 2404: 96-bit ICV -> payload length 4
                }
                assert_eq!(&out[22..24], &[0, 0]);
                assert_eq!(&out[20 + ah_len..], &p[20..]);
                assert_eq!(ah_header(&out), Ok((0x1000, 77)));
                let info = ah_input(i.as_ref(), &out).unwrap();
                assert_eq!(
                    info,
                    AhInput {
                        spi: 0x1000,
                        seq: 77,
                        next_header: 17,
                        header_len: 20 + ah_len,
                        total_len: out.len(),
                    }
                );
            }
        }
    }

    #[test]
    fn known_answer_against_hand_computed_icv() {
        // The ICV must be HMAC(zeroed-IP-header | AH-with-zero-ICV | payload), truncated.
        let i = integ(AuthAlg::HmacSha1_96);
        let p = packet(10);
        let mut out = Vec::new();
        ah_output(i.as_ref(), 0xdead_beef, 1, &p, &mut out).unwrap();
        let mut buf = out.clone();
        for b in [1usize, 6, 7, 8, 10, 11] {
            buf[b] = 0;
        }
        buf[32..44].fill(0);
        let key: Vec<u8> = (0..20u8).collect();
        let full =
            crate::crypto::rustcrypto::hmac_integrity(AuthAlg::HmacSha1_96, &key, 20).unwrap();
        let mut mac = [0u8; 20];
        full.compute(&[&buf], &mut mac);
        assert_eq!(&out[32..44], &mac[..12]);
    }

    #[test]
    fn mutable_field_changes_still_verify() {
        let i = integ(AuthAlg::HmacSha2_256_128);
        let mut out = Vec::new();
        ah_output(i.as_ref(), 0x2000, 5, &packet(100), &mut out).unwrap();
        let mut m = out.clone();
        m[1] = 0xb8; // TOS / DSCP
        m[6] = 0x20; // flags: MF
        m[7] = 0x10; // fragment offset
        m[8] -= 3; // TTL decremented by routers
        let c = ipv4_checksum(&m);
        m[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(ah_input(i.as_ref(), &m).is_ok());
        // Even a stale checksum is not covered by the ICV.
        m[10] ^= 0xff;
        assert!(ah_input(i.as_ref(), &m).is_ok());
    }

    #[test]
    fn tampering_immutable_bytes_fails() {
        let i = integ(AuthAlg::HmacMd5_96);
        let mut out = Vec::new();
        ah_output(i.as_ref(), 0x3000, 9, &packet(40), &mut out).unwrap();
        let mutable = [1usize, 6, 7, 8, 10, 11];
        for idx in 0..out.len() {
            if mutable.contains(&idx) {
                continue;
            }
            let mut t = out.clone();
            t[idx] ^= 0x01;
            let r = ah_input(i.as_ref(), &t);
            // Flipping bits in version/IHL, length or protocol breaks parsing; anything else
            // must fail the ICV.
            assert!(r.is_err(), "byte {idx}");
            if ![0usize, 2, 3, 9, 21].contains(&idx) {
                assert_eq!(r, Err(AhError::AuthFailed), "byte {idx}");
            }
        }
    }

    #[test]
    fn options_are_refused() {
        let i = integ(AuthAlg::HmacSha1_96);
        // IHL 6: one 4-byte option (NOP NOP NOP EOL).
        let mut p = packet(8);
        p[0] = 0x46;
        p.splice(20..20, [1, 1, 1, 0]);
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let mut out = vec![9];
        assert_eq!(
            ah_output(i.as_ref(), 0x100, 1, &p, &mut out),
            Err(AhError::IpOptions)
        );
        assert_eq!(out, [9]);
        p[9] = IPPROTO_AH;
        assert_eq!(ah_header(&p), Err(AhError::IpOptions));
        assert_eq!(ah_input(i.as_ref(), &p), Err(AhError::IpOptions));
    }

    #[test]
    fn wrong_authenticator_length_is_bad_length() {
        let sha1 = integ(AuthAlg::HmacSha1_96);
        let sha256 = integ(AuthAlg::HmacSha2_256_128);
        let mut out = Vec::new();
        ah_output(sha1.as_ref(), 0x100, 1, &packet(64), &mut out).unwrap();
        // An SA expecting a 16-byte ICV sees payload length 4 (12-byte ICV).
        assert_eq!(ah_input(sha256.as_ref(), &out), Err(AhError::BadLength));
        let mut t = out.clone();
        t[21] = 5;
        assert_eq!(ah_input(sha1.as_ref(), &t), Err(AhError::BadLength));
        t[21] = 255;
        assert_eq!(ah_input(sha1.as_ref(), &t), Err(AhError::BadLength));
    }

    #[test]
    fn not_ah_and_malformed() {
        let i = integ(AuthAlg::HmacSha1_96);
        let p = packet(40);
        assert_eq!(ah_header(&p), Err(AhError::BadLength)); // protocol 17
        assert_eq!(ah_input(i.as_ref(), &p), Err(AhError::BadLength));
        let mut v5 = p.clone();
        v5[0] = 0x55;
        assert_eq!(
            ah_output(i.as_ref(), 1, 1, &v5, &mut Vec::new()),
            Err(AhError::BadLength)
        );
        // An IPv4 header read as IPv6: its length does not hold.
        let mut v6 = p.clone();
        v6[0] = 0x65;
        assert_eq!(
            ah_output(i.as_ref(), 1, 1, &v6, &mut Vec::new()),
            Err(AhError::Truncated)
        );
        let mut short_ihl = p.clone();
        short_ihl[0] = 0x44;
        assert_eq!(
            ah_output(i.as_ref(), 1, 1, &short_ihl, &mut Vec::new()),
            Err(AhError::BadLength)
        );
        let mut long_total = p.clone();
        long_total[3] += 1;
        assert_eq!(
            ah_output(i.as_ref(), 1, 1, &long_total, &mut Vec::new()),
            Err(AhError::Truncated)
        );
        // A packet too large to take the AH header.
        let mut big = vec![0u8; 65535];
        big[..20].copy_from_slice(&packet(0));
        big[2..4].copy_from_slice(&65535u16.to_be_bytes());
        assert_eq!(
            ah_output(i.as_ref(), 1, 1, &big, &mut Vec::new()),
            Err(AhError::BadLength)
        );
    }

    #[test]
    fn trailing_bytes_beyond_total_length_are_ignored() {
        let i = integ(AuthAlg::HmacSha1_96);
        let p = packet(30);
        let mut padded = p.clone();
        padded.extend_from_slice(&[0xff; 6]);
        let mut a = Vec::new();
        let mut b = Vec::new();
        ah_output(i.as_ref(), 0x100, 3, &p, &mut a).unwrap();
        ah_output(i.as_ref(), 0x100, 3, &padded, &mut b).unwrap();
        assert_eq!(a, b);
        a.extend_from_slice(&[0xee; 4]);
        let info = ah_input(i.as_ref(), &a).unwrap();
        assert_eq!(info.total_len, a.len() - 4);
    }

    #[test]
    fn truncations_and_garbage_never_panic() {
        use rand::{Rng, SeedableRng};
        let i = integ(AuthAlg::HmacSha2_512_256);
        let mut out = Vec::new();
        ah_output(i.as_ref(), 0x100, 3, &packet(50), &mut out).unwrap();
        for len in 0..out.len() {
            let t = &out[..len];
            assert!(ah_input(i.as_ref(), t).is_err(), "len {len}");
            let _ = ah_header(t);
            let _ = ah_output(i.as_ref(), 1, 1, t, &mut Vec::new());
            // Also with the total length field shrunk to match.
            let mut t2 = t.to_vec();
            if t2.len() >= 4 {
                t2[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                assert!(ah_input(i.as_ref(), &t2).is_err(), "len {len}");
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(4302);
        for _ in 0..3000 {
            let len = rng.gen_range(0..90);
            let mut g: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if len > 10 && rng.gen_bool(0.7) {
                g[0] = 0x45;
                g[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                g[9] = IPPROTO_AH;
            }
            let _ = ah_header(&g);
            let _ = ah_input(i.as_ref(), &g);
            let _ = ah_output(i.as_ref(), 1, 1, &g, &mut Vec::new());
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(AhError::BadLength.to_string(), "bad authenticator length");
        assert_eq!(AhError::AuthFailed.to_string(), "AH authentication failed");
    }
}
