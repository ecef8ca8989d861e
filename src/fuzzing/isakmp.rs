//! The ISAKMP codec: whole datagrams, decrypted payload chains, NAT-T framing. Anything that
//! parses must re-emit and parse back to the same Repr.

use crate::pluto::isakmp::{self, natt, PayloadType};

/// Harness of the `isakmp_parse` target.
pub fn isakmp_parse(data: &[u8]) {
    if let Ok(msg) = isakmp::parse_message(data) {
        let bytes = msg.to_bytes().expect("a parsed message re-emits");
        assert_eq!(isakmp::parse_message(&bytes), Ok(msg));
    }
    if let Some((&first, body)) = data.split_first() {
        let _ = isakmp::parse_decrypted_payloads(PayloadType::from(first), body);
    }
    if let natt::Port4500Datagram::Ike(ike) = natt::classify_port4500(data) {
        let _ = isakmp::parse_message(ike);
    }
}
