//! The IKEv2 codec: whole datagrams, protected-message location, decrypted inner chains,
//! RFC 7383 reassembly and RFC 7427 identifiers. Anything that parses must re-emit and parse
//! back to the same Repr.

use crate::pluto::ikev2::wire::{
    self, FragmentInfo, PayloadType, Protected, Reassembly, SignatureAuth, SignatureScheme,
};

/// Harness of the `ikev2_parse` target.
pub fn ikev2_parse(data: &[u8]) {
    if let Ok(msg) = wire::parse_message(data) {
        let bytes = msg.to_bytes().expect("a parsed message re-emits");
        assert_eq!(wire::parse_message(&bytes), Ok(msg));
    }
    // Protected messages with the IV/ICV sizes of the suites rswan negotiates.
    for (iv, icv) in [(16, 16), (8, 16), (16, 12), (16, 24), (16, 32)] {
        if let Ok(p) = Protected::locate(data, iv, icv) {
            assert_eq!(p.iv.len(), iv);
            assert_eq!(p.icv.len(), icv);
            assert_eq!(p.integrity_covered.len() + icv, data.len());
        }
    }
    // The first octet as the first inner type, the rest as a decrypted SK body.
    if let Some((&first, body)) = data.split_first() {
        let first = PayloadType::from(first);
        if let Ok(payloads) = wire::parse_decrypted(first, body) {
            let (f, plain) = wire::inner_plaintext(&payloads, 16).expect("re-emits");
            assert_eq!(wire::parse_decrypted(f, &plain), Ok(payloads));
        }
        let _ = SignatureScheme::from_algorithm_identifier(body);
        let _ = SignatureAuth::parse(body);
    }
    // Reassembly fed 5-octet records: number, total (one octet each), next, then 2 octets of
    // content length taken from the rest.
    let mut r = Reassembly::with_limits(16, 4096);
    let mut rest = data;
    while rest.len() >= 5 {
        let (head, tail) = rest.split_at(5);
        let len = (u16::from_be_bytes([head[3], head[4]]) as usize).min(tail.len());
        let (content, tail) = tail.split_at(len);
        let info = FragmentInfo {
            number: head[0].into(),
            total: head[1].into(),
        };
        if let Ok(wire::FragmentStatus::Complete(m)) =
            r.add(info, PayloadType::from(head[2]), content)
        {
            assert!(m.chain.len() <= 4096);
            let _ = wire::parse_inner(m.first_inner, &m.chain);
        }
        assert!(r.len() <= 4096 && r.received() <= 16);
        rest = tail;
    }
}
