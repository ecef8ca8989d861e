//! AH over IPv6 against an independent implementation: scapy's `SecurityAssociation(AH)`
//! (Debian's python3-scapy) verifies the ICV rswan computes over an IPv6 packet whose mutable
//! fields (traffic class, flow label, hop limit, a hop-by-hop option marked "may change en
//! route") are set, and rswan verifies the AH scapy builds over the same packet. No namespace
//! is needed: both run over bytes.

use std::io::Write;
use std::process::{Command, Stdio};

use rswan::crypto::{default_provider, AuthAlg};
use rswan::xform::ah::{ah_input, ah_output};

const PYTHON: &str = "/usr/bin/python3";
const KEY: &str = "0102030405060708090a0b0c0d0e0f1011121314";
const SPI: u32 = 0x1234;

/// `build`: prints the plain packet, then scapy's AH of it (transport mode); `verify HEX`:
/// checks rswan's AH packet and prints the packet without AH.
const SCRIPT: &str = r#"
import sys
from scapy.all import IPv6, UDP, Raw, IPv6ExtHdrHopByHop, HBHOptUnknown, PadN
from scapy.layers.ipsec import SecurityAssociation, AH
key = bytes.fromhex(sys.argv[2])
sa = SecurityAssociation(AH, spi=0x1234, auth_algo='HMAC-SHA1-96', auth_key=key)
if sys.argv[1] == 'build':
    p = (IPv6(src='2001:db8::1', dst='2001:db8::2', tc=0xb8, fl=0x12345, hlim=9)
         / IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x23, optdata=b'\x05\x06\x07\x08'), PadN(optdata=b'')])
         / UDP(sport=1234, dport=53) / Raw(b'rswan ah over ipv6'))
    p = IPv6(bytes(p))
    print(bytes(p).hex())
    print(bytes(sa.encrypt(p, seq_num=7)).hex())
else:
    pkt = IPv6(bytes.fromhex(sys.argv[3]))
    print(bytes(sa.decrypt(pkt)).hex())
"#;

fn python(args: &[&str]) -> String {
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} missing: run scripts/install-deps (python3-scapy)"
    );
    let mut c = Command::new(PYTHON)
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(SCRIPT.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "python {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn ah_over_ipv6_agrees_with_scapy() {
    let out = python(&["build", KEY]);
    let mut lines = out.lines();
    let plain = hex::decode(lines.next().unwrap()).unwrap();
    let theirs = hex::decode(lines.next().unwrap()).unwrap();
    let integ = default_provider()
        .integrity(AuthAlg::HmacSha1_96, &hex::decode(KEY).unwrap())
        .unwrap();
    // scapy's AH verifies with rswan, also after the mutable fields changed in transit.
    let info = ah_input(integ.as_ref(), &theirs).expect("rswan verifies scapy's AH");
    assert_eq!((info.spi, info.seq, info.next_header), (SPI, 7, 17));
    let mut moved = theirs.clone();
    moved[0] = 0x6f; // traffic class
    moved[3] ^= 0x55; // flow label
    moved[7] = 1; // hop limit
    moved[44] ^= 0xff; // data of the mutable hop-by-hop option
    ah_input(integ.as_ref(), &moved).expect("mutable fields are not covered");
    let mut forged = theirs.clone();
    forged[10] ^= 1; // the source address
    assert!(ah_input(integ.as_ref(), &forged).is_err());
    // rswan's AH is what scapy builds, byte for byte, and scapy verifies it.
    let mut ours = Vec::new();
    ah_output(integ.as_ref(), SPI, 7, &plain, &mut ours).unwrap();
    assert_eq!(hex::encode(&ours), hex::encode(&theirs));
    let back = python(&["verify", KEY, &hex::encode(&ours)]);
    let back = hex::decode(back.trim()).unwrap();
    assert_eq!(back.len(), plain.len());
    assert_eq!(&back[8..], &plain[8..], "scapy restores the packet");
}
