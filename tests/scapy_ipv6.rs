//! IPsec over IPv6 against an independent implementation, scapy's `SecurityAssociation`
//! (Debian's python3-scapy), over bytes (no namespace needed):
//! * AH: scapy verifies the ICV rswan computes over an IPv6 packet whose mutable fields
//!   (traffic class, flow label, hop limit, a hop-by-hop option marked "may change en route")
//!   are set, and rswan verifies the AH scapy builds over the same packet;
//! * ESP tunnel mode over IPv6: scapy decrypts what rswan's datapath sends (6-in-6), and
//!   rswan's datapath accepts and delivers the ESP scapy builds.

use std::io::Write;
use std::process::{Command, Stdio};

use rswan::config::conf::IpsecConf;
use rswan::crypto::{default_provider, AuthAlg};
use rswan::eroute::Eroute;
use rswan::klips::{DevInfo, Emit, Klips};
use rswan::manual::{self, HostFacts};
use rswan::sadb::Sa;
use rswan::said::Proto;
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
if sys.argv[1] in ('esp-decrypt', 'esp-encrypt'):
    from scapy.layers.ipsec import ESP
    enc, auth, spi = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), int(sys.argv[4], 16)
    src, dst = ('2001:db8::1', '2001:db8::2') if sys.argv[1] == 'esp-decrypt' else ('2001:db8::2', '2001:db8::1')
    esp = SecurityAssociation(ESP, spi=spi, crypt_algo='AES-CBC', crypt_key=enc,
                              auth_algo='HMAC-SHA1-96', auth_key=auth,
                              tunnel_header=IPv6(src=src, dst=dst))
    if sys.argv[1] == 'esp-decrypt':
        print(bytes(esp.decrypt(IPv6(bytes.fromhex(sys.argv[5])))).hex())
    else:
        inner = IPv6(src='2001:db8:2::10', dst='2001:db8:1::10', hlim=63) / UDP(sport=53, dport=1234) / Raw(b'from scapy')
        inner = IPv6(bytes(inner))
        print(bytes(inner).hex())
        print(bytes(esp.encrypt(inner, seq_num=1)).hex())
elif sys.argv[1] == 'build':
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

const ENC: &str = "00112233445566778899aabbccddeeff";
const AUTH: &str = "0123456789abcdef0123456789abcdef01234567";

/// Gateway `me` of a 6-in-6 manual conn (AES-CBC + HMAC-SHA1-96), with the SPI of its
/// outbound ESP SA.
fn gateway(me: &str) -> (Klips, u32) {
    let text = format!(
        "version 2\nconn net\n\tleft=2001:db8::1\n\tright=2001:db8::2\n\tleftsubnet=2001:db8:1::/64\n\trightsubnet=2001:db8:2::/64\n\tspibase=0x200\n\tesp=aes128-sha1\n\tespenckey=0x{ENC}\n\tespauthkey=0x{AUTH}\n\tauto=manual\n"
    );
    let conf = IpsecConf::parse_str(&text, "/etc/ipsec.conf").unwrap();
    let ip: std::net::IpAddr = me.parse().unwrap();
    let facts = HostFacts {
        local: vec![ip],
        defaultroute: None,
        ipsec: vec![("ipsec0".into(), ip)],
    };
    let plan = manual::plan(conf.conn("net").unwrap(), &facts).unwrap();
    let k = Klips::new();
    k.set_devs(vec![DevInfo {
        name: "ipsec0".into(),
        phys: "eth0".into(),
        addr: std::net::Ipv4Addr::UNSPECIFIED,
        addr6: Some(me.parse().unwrap()),
        phys_mtu: 1500,
        mtu: 1400,
    }]);
    let mut out_spi = 0;
    for spec in &plan.sas {
        if spec.said.proto == Proto::Esp && spec.said.dst != ip {
            out_spi = spec.said.spi;
        }
        k.sadb_mut()
            .add(Sa::new(spec, spec.dir.unwrap(), 0).unwrap())
            .unwrap();
    }
    for g in plan.groups.iter().filter(|g| g.len() > 1) {
        k.sadb_mut().group(g).unwrap();
    }
    let (s, d, said) = plan.eroute;
    k.eroutes_mut().add(Eroute::new(s, d, said)).unwrap();
    (k, out_spi)
}

#[test]
fn esp_over_ipv6_agrees_with_scapy() {
    // rswan → scapy: west's datapath encrypts host A's packet; scapy decrypts it.
    let (west, spi) = gateway("2001:db8::1");
    let inner = hex::decode(
        python(&["esp-encrypt", ENC, AUTH, "1"])
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    // host A's packet: the same shape with the addresses swapped
    let mut a_to_b = inner.clone();
    a_to_b[8..24].copy_from_slice(&inner[24..40]);
    a_to_b[24..40].copy_from_slice(&inner[8..24]);
    let mut out = Vec::new();
    west.outbound(0, &a_to_b, 0, &mut rand::thread_rng(), &mut out);
    let Some(Emit::Net { pkt, .. }) = out.first() else {
        panic!("{out:?}");
    };
    let spi_hex = format!("{spi:x}");
    let back = python(&["esp-decrypt", ENC, AUTH, &spi_hex, &hex::encode(pkt)]);
    let back = hex::decode(back.trim()).unwrap();
    assert_eq!(
        &back[8..],
        &a_to_b[8..],
        "scapy's decryption of rswan's ESP"
    );
    // scapy → rswan: east's SA toward west carries what scapy encrypts from host B.
    // (east's outbound ESP SA is the one west receives on)
    let (_east, spi_e) = gateway("2001:db8::2");
    let out = python(&["esp-encrypt", ENC, AUTH, &format!("{spi_e:x}")]);
    let mut lines = out.lines();
    let inner = hex::decode(lines.next().unwrap()).unwrap();
    let esp = hex::decode(lines.next().unwrap()).unwrap();
    let mut got = Vec::new();
    west.inbound(&esp, 0, &mut got);
    match got.as_slice() {
        [Emit::Tun { pkt, .. }] => assert_eq!(pkt, &inner),
        other => panic!("rswan refused scapy's IPv6 ESP: {other:?}"),
    }
}
