//! Well-known Vendor IDs of IKEv1 (NAT-T, RFC 3947 and drafts; DPD, RFC 3706), and the UDP
//! framing shared with IKEv2 ([`crate::pluto::natt`], re-exported here).

pub use crate::pluto::natt::{
    add_non_esp_marker, classify_port4500, is_nat_keepalive, strip_non_esp_marker,
    Port4500Datagram, IKE_PORT, NAT_KEEPALIVE, NAT_T_PORT, NON_ESP_MARKER,
};

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
