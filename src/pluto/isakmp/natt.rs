//! NAT traversal framing (RFC 3947, RFC 3948) and well-known Vendor IDs.
//!
//! On UDP port 4500 IKE messages are prefixed with a 4-byte zero "non-ESP marker" (an ESP
//! packet starts with its non-zero SPI there), and a NAT keepalive is a single 0xFF byte.

/// The IKE port.
pub const IKE_PORT: u16 = 500;
/// The NAT-T port (IKE with non-ESP marker, and ESP in UDP).
pub const NAT_T_PORT: u16 = 4500;
/// Non-ESP marker that prefixes IKE messages on port 4500.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// A NAT keepalive datagram (RFC 3948 2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// What a datagram received on port 4500 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port4500Datagram<'a> {
    /// A NAT keepalive: ignore.
    Keepalive,
    /// An IKE message (marker removed).
    Ike(&'a [u8]),
    /// A UDP-encapsulated ESP packet (starting with its SPI).
    Esp(&'a [u8]),
    /// Too short to be anything: drop.
    Invalid,
}

/// Classifies a datagram received on port 4500 (RFC 3948 2.2, 2.3).
pub fn classify_port4500(datagram: &[u8]) -> Port4500Datagram<'_> {
    if is_nat_keepalive(datagram) {
        return Port4500Datagram::Keepalive;
    }
    match strip_non_esp_marker(datagram) {
        Some(ike) => Port4500Datagram::Ike(ike),
        // SPI (4) + sequence number (4) at least.
        None if datagram.len() >= 8 => Port4500Datagram::Esp(datagram),
        None => Port4500Datagram::Invalid,
    }
}

/// True if the datagram is a NAT keepalive (exactly one 0xFF byte).
pub fn is_nat_keepalive(datagram: &[u8]) -> bool {
    datagram == NAT_KEEPALIVE
}

/// The IKE message behind a non-ESP marker, or `None` if the datagram does not start with one
/// (it is then ESP in UDP, or garbage).
pub fn strip_non_esp_marker(datagram: &[u8]) -> Option<&[u8]> {
    datagram.strip_prefix(&NON_ESP_MARKER[..])
}

/// Prefixes an IKE message with the non-ESP marker, for sending on port 4500.
pub fn add_non_esp_marker(ike: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ike.len() + NON_ESP_MARKER.len());
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(ike);
    out
}

/// Well-known Vendor ID payload contents.
pub mod vendor_id {
    /// RFC 3947 NAT-T: MD5("RFC 3947").
    pub const NAT_T_RFC3947: [u8; 16] = [
        0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45,
        0x2f,
    ];
    /// NAT-T draft 02 with trailing newline: MD5("draft-ietf-ipsec-nat-t-ike-02\n").
    pub const NAT_T_DRAFT_02_N: [u8; 16] = [
        0x90, 0xcb, 0x80, 0x91, 0x3e, 0xbb, 0x69, 0x6e, 0x08, 0x63, 0x81, 0xb5, 0xec, 0x42, 0x7b,
        0x1f,
    ];
    /// NAT-T draft 02: MD5("draft-ietf-ipsec-nat-t-ike-02").
    pub const NAT_T_DRAFT_02: [u8; 16] = [
        0xcd, 0x60, 0x46, 0x43, 0x35, 0xdf, 0x21, 0xf8, 0x7c, 0xfd, 0xb2, 0xfc, 0x68, 0xb6, 0xa4,
        0x48,
    ];
    /// NAT-T draft 03: MD5("draft-ietf-ipsec-nat-t-ike-03").
    pub const NAT_T_DRAFT_03: [u8; 16] = [
        0x7d, 0x94, 0x19, 0xa6, 0x53, 0x10, 0xca, 0x6f, 0x2c, 0x17, 0x9d, 0x92, 0x15, 0x52, 0x9d,
        0x56,
    ];
    /// Dead Peer Detection, version 1.0 (RFC 3706 2).
    pub const DPD: [u8; 16] = [
        0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01,
        0x00,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    #[test]
    fn framing() {
        assert_eq!(classify_port4500(&[0xff]), Port4500Datagram::Keepalive);
        let ike = [1u8, 2, 3];
        let framed = add_non_esp_marker(&ike);
        assert_eq!(framed, [0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(classify_port4500(&framed), Port4500Datagram::Ike(&ike));
        let esp = [0u8, 0, 0x10, 0x01, 0, 0, 0, 1, 9, 9];
        assert_eq!(classify_port4500(&esp), Port4500Datagram::Esp(&esp));
        assert_eq!(classify_port4500(&[0, 0, 1]), Port4500Datagram::Invalid);
        assert_eq!(classify_port4500(&[]), Port4500Datagram::Invalid);
        assert!(!is_nat_keepalive(&[0xff, 0xff]));
        assert_eq!(strip_non_esp_marker(&[0, 0, 0]), None);
    }

    #[test]
    fn vendor_ids_are_md5_of_their_strings() {
        let md5 = |s: &str| -> [u8; 16] { Md5::digest(s.as_bytes()).into() };
        assert_eq!(vendor_id::NAT_T_RFC3947, md5("RFC 3947"));
        assert_eq!(
            vendor_id::NAT_T_DRAFT_02_N,
            md5("draft-ietf-ipsec-nat-t-ike-02\n")
        );
        assert_eq!(
            vendor_id::NAT_T_DRAFT_02,
            md5("draft-ietf-ipsec-nat-t-ike-02")
        );
        assert_eq!(
            vendor_id::NAT_T_DRAFT_03,
            md5("draft-ietf-ipsec-nat-t-ike-03")
        );
    }
}
