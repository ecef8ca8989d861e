//! Fuzzes the datapath core with the SAs of three manual conns (AES-CBC-SHA1, AES-GCM in UDP,
//! AH+ESP): raw ESP/AH packets, UDP 4500 datagrams, outbound inner packets, and — to get past
//! the ICV check — ESP built with the right keys around a fuzzed plaintext, so padding, next
//! header, inner-packet and arrival checks see arbitrary authenticated input. Nothing may
//! panic; every packet ends as an emit (sent, delivered or counted as a drop).
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rswan::cmd::{spi, Ctx};
use rswan::config::conf::IpsecConf;
use rswan::crypto::{default_provider, AuthAlg, EncAlg};
use rswan::eroute::Eroute;
use rswan::klips::{DevInfo, Klips};
use rswan::manual::{self, HostFacts};
use rswan::xform::esp::EspCrypto;

const K128: &str = "00112233445566778899aabbccddeeff";
const K160: &str = "0123456789abcdef0123456789abcdef01234567";
const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn conf() -> String {
    let net = |n: u8, spi: &str, body: &str| {
        format!(
            "conn c{n}\n\tleft=192.0.2.1\n\tleftsubnet=10.{n}.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.{n}.2.0/24\n\tspibase={spi}\n\tauto=manual\n{body}"
        )
    };
    format!(
        "version 2\n{}{}{}",
        net(1, "0x200", &format!("\tesp=aes128-sha1\n\tespenckey=0x{K128}\n\tespauthkey=0x{K160}\n")),
        net(2, "0x300", &format!("\tesp=aes128gcm16\n\tespenckey=0x{K128}01020304\n\tforceencaps=yes\n")),
        net(3, "0x400", &format!("\tesp=aes128-sha1\n\tespenckey=0x{K128}\n\tespauthkey=0x{K160}\n\tah=hmac-sha1-96\n\tahkey=0x{K160}\n")),
    )
}

fn klips() -> Klips {
    let k = Klips::new();
    k.set_devs(vec![DevInfo {
        name: "ipsec0".into(),
        phys: "eth0".into(),
        addr: ME,
        phys_mtu: 1500,
        mtu: 1400,
    }]);
    let conf = IpsecConf::parse_str(&conf(), "fuzz.conf").expect("fuzz conf parses");
    let facts = HostFacts {
        local: vec![ME],
        defaultroute: None,
        ipsec: vec![("ipsec0".into(), ME)],
    };
    let mut rng = StdRng::seed_from_u64(1);
    for c in &conf.conns {
        let plan = manual::plan(c, &facts).expect("fuzz conn plans");
        let mut ctx = Ctx::new(&k, 0, &mut rng);
        for s in &plan.sas {
            spi::add(&mut ctx, s).expect("fuzz SA adds");
        }
        for g in plan.groups.iter().filter(|g| g.len() > 1) {
            k.sadb_mut().group(g).expect("fuzz group");
        }
        let (src, dst, said) = plan.eroute;
        k.eroutes_mut().replace(Eroute::new(src, dst, said));
    }
    k
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An IPv4 header from the peer to us around `payload`.
fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let len = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&PEER.octets());
    p.extend_from_slice(&ME.octets());
    p.extend_from_slice(payload);
    p
}

struct World {
    k: Klips,
    cbc: EspCrypto,
    gcm: EspCrypto,
}

static WORLD: OnceLock<World> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let w = WORLD.get_or_init(|| World {
        k: klips(),
        cbc: EspCrypto::new(
            default_provider(),
            EncAlg::AesCbc128,
            &hex(K128),
            Some(AuthAlg::HmacSha1_96),
            &hex(K160),
        )
        .unwrap(),
        gcm: EspCrypto::new(default_provider(), EncAlg::AesGcm16_128, &hex(&format!("{K128}01020304")), None, &[])
            .unwrap(),
    });
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut out = Vec::new();
    let mut rng = StdRng::seed_from_u64(u64::from(sel));
    let peer = SocketAddrV4::new(PEER, 4500);
    match sel % 6 {
        0 => w.k.inbound(rest, 1, &mut out),
        1 => w.k.inbound_udp(peer, ME, rest, 1, &mut out),
        2 => w.k.outbound(0, rest, 1, &mut rng, &mut out),
        // Authenticated ESP around a fuzzed plaintext; the first byte is the next header.
        3 | 4 | 5 => {
            let Some((&nh, plain)) = rest.split_first() else {
                return;
            };
            let seq = u32::from_be_bytes([sel, nh, 0, 1]);
            let mut esp = Vec::new();
            match sel % 6 {
                3 => {
                    w.cbc.encapsulate(0x201, seq, nh, plain, &[7u8; 16], &mut esp);
                    w.k.inbound(&ipv4(50, &esp), 1, &mut out);
                }
                4 => {
                    w.gcm.encapsulate(0x301, seq, nh, plain, &seq.to_be_bytes().repeat(2), &mut esp);
                    w.k.inbound_udp(peer, ME, &esp, 1, &mut out);
                }
                _ => {
                    // The ESP SA of the AH+ESP group, arriving without its AH.
                    w.cbc.encapsulate(0x401, seq, nh, plain, &[9u8; 16], &mut esp);
                    w.k.inbound(&ipv4(50, &esp), 1, &mut out);
                }
            }
        }
        _ => unreachable!(),
    }
});
