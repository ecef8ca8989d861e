//! UDP headers (ESP-in-UDP on port 4500, IKE bypass on port 500).

use std::net::Ipv4Addr;

use super::ipv4;

/// UDP header length.
pub const HEADER_LEN: usize = 8;

/// Appends a UDP header and payload to `out`, with the checksum computed over the IPv4
/// pseudo-header (RFC 768). ESP-in-UDP may leave it zero (RFC 3948); we fill it in.
pub fn emit(
    out: &mut Vec<u8>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) {
    let len = (HEADER_LEN + payload.len()) as u16;
    let start = out.len();
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&dport.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let c = checksum(src, dst, &out[start..]);
    out[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
}

/// The UDP checksum of a whole datagram (header with zero checksum field, plus payload).
pub fn checksum(src: Ipv4Addr, dst: Ipv4Addr, datagram: &[u8]) -> u16 {
    let mut acc = ipv4::sum(&src.octets(), 0);
    acc = ipv4::sum(&dst.octets(), acc);
    acc = acc.wrapping_add(u32::from(ipv4::proto::UDP));
    acc = acc.wrapping_add(datagram.len() as u32);
    acc = ipv4::sum(datagram, acc);
    match !ipv4::fold(acc) {
        0 => 0xffff,
        c => c,
    }
}
