//! The datapath core with the SAs of five manual conns: AES-CBC-SHA1 (c1), AES-GCM in UDP
//! (c2), AH+ESP (c3), IPComp+ESP (c4) and IPComp+AH (c5), all tunnel mode.
//!
//! The input is a list of packets (selector byte, u16 length, bytes), each handled by a fresh
//! copy of the tables' sequence of events: raw ESP/AH packets, UDP 4500 datagrams, outbound
//! inner packets, and — to get past the ICV checks — ESP or AH built with the right keys
//! around a fuzzed plaintext, so that padding, next header, the IPComp decompressor (fuzzed
//! DEFLATE streams, and DEFLATE the harness made of fuzzed inner packets), inner-packet and
//! arrival checks see arbitrary authenticated input.
//!
//! Nothing may panic; every inbound packet ends as exactly one emit (delivered or counted
//! as a drop), and nothing leaves towards the network in the clear (every eroute here points
//! at an SA group).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::cmd::{spi, Ctx};
use crate::config::conf::IpsecConf;
use crate::crypto::{default_provider, AuthAlg, EncAlg};
use crate::eroute::Eroute;
use crate::klips::{DevInfo, Emit, Klips};
use crate::manual::{self, HostFacts, ManualPlan};
use crate::sadb::Dir;
use crate::said::Proto;
use crate::wire::ipv4::{self, proto};
use crate::xform::ah;
use crate::xform::esp::EspCrypto;

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
    let cbc = format!("\tesp=aes128-sha1\n\tespenckey=0x{K128}\n\tespauthkey=0x{K160}\n");
    let ah = format!("\tah=hmac-sha1-96\n\tahkey=0x{K160}\n");
    format!(
        "version 2\n{}{}{}{}{}",
        net(1, "0x200", &cbc),
        net(
            2,
            "0x300",
            &format!("\tesp=aes128gcm16\n\tespenckey=0x{K128}01020304\n\tforceencaps=yes\n")
        ),
        net(3, "0x400", &format!("{cbc}{ah}")),
        net(4, "0x500", &format!("{cbc}\tcompress=yes\n")),
        net(5, "0x600", &format!("{ah}\tcompress=yes\n")),
    )
}

/// The parsed plans (SAs, groups, eroutes) of the five conns, made once.
fn plans() -> &'static [ManualPlan] {
    static PLANS: OnceLock<Vec<ManualPlan>> = OnceLock::new();
    PLANS.get_or_init(|| {
        let conf = IpsecConf::parse_str(&conf(), "fuzz.conf").expect("fuzz conf parses");
        let facts = HostFacts {
            local: vec![ME.into()],
            defaultroute: None,
            ipsec: vec![("ipsec0".into(), ME.into())],
        };
        conf.conns
            .iter()
            .map(|c| manual::plan(c, &facts).expect("fuzz conn plans"))
            .collect()
    })
}

/// A datapath with every SA, group and eroute of [`plans`].
fn klips() -> Klips {
    let k = Klips::new();
    k.set_devs(vec![DevInfo {
        name: "ipsec0".into(),
        phys: "eth0".into(),
        addr: ME,
        addr6: None,
        phys_mtu: 1500,
        mtu: 1400,
    }]);
    let mut rng = StdRng::seed_from_u64(1);
    for plan in plans() {
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

/// The inbound SPI of `proto` of conn number `n` (1-based).
fn inbound_spi(n: usize, p: Proto) -> u32 {
    plans()[n - 1]
        .sas
        .iter()
        .find(|s| s.dir == Some(Dir::In) && s.said.proto == p)
        .map(|s| s.said.spi)
        .expect("fuzz conn has that SA")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// An IPv4 header from the peer to us around `payload`.
fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; ipv4::HEADER_LEN];
    ipv4::Ipv4Repr {
        src: PEER,
        dst: ME,
        protocol,
        tos: 0,
        ttl: 64,
        ident: 0,
        dont_frag: false,
        payload_len: payload.len(),
    }
    .emit(&mut p);
    p.extend_from_slice(payload);
    p
}

/// Raw DEFLATE of `data`, behind an IPComp header (next header `nh`, `cpi`). The compressor
/// is reused: a fresh one per call cost more than the datapath under test.
fn ipcomp(nh: u8, cpi: u32, data: &[u8]) -> Vec<u8> {
    thread_local!(static DEFLATE: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::fast(), false)));
    let mut out = Vec::with_capacity(4 + data.len() * 2 + 64);
    out.extend_from_slice(&[nh, 0]);
    out.extend_from_slice(&(cpi as u16).to_be_bytes());
    DEFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset();
        let done = d.compress_vec(data, &mut out, flate2::FlushCompress::Finish);
        assert_eq!(
            done.ok(),
            Some(flate2::Status::StreamEnd),
            "deflate into memory"
        );
    });
    out
}

struct Keys {
    cbc: EspCrypto,
    gcm: EspCrypto,
    ah: Box<dyn crate::crypto::Integrity>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        cbc: EspCrypto::new(
            default_provider(),
            EncAlg::AesCbc128,
            &hex(K128),
            Some(AuthAlg::HmacSha1_96),
            &hex(K160),
        )
        .expect("CBC keys"),
        gcm: EspCrypto::new(
            default_provider(),
            EncAlg::AesGcm16_128,
            &hex(&format!("{K128}01020304")),
            None,
            &[],
        )
        .expect("GCM keys"),
        ah: default_provider()
            .integrity(AuthAlg::HmacSha1_96, &hex(K160))
            .expect("AH key"),
    })
}

/// Harness of the `klips_packets` target.
pub fn klips_packets(data: &[u8]) {
    packets(data, |_| {});
}

/// [`klips_packets`], handing each packet's emits to `each` as well.
fn packets(data: &[u8], mut each: impl FnMut(Vec<Emit>)) {
    let k = klips();
    let keys = keys();
    let peer = SocketAddrV4::new(PEER, 4500);
    let mut rest = data;
    let mut n = 0u32;
    while let [sel, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (pkt, more) = tail.split_at(len);
        rest = more;
        n += 1;
        let now = u64::from(n);
        let seq = u32::from_be_bytes([*sel, *l0, 0, 0]) | n;
        let mut out = Vec::new();
        let mut rng = StdRng::seed_from_u64(u64::from(*sel));
        let (nh, plain) = pkt.split_first().map_or((0, &[][..]), |(a, b)| (*a, b));
        let mut esp = Vec::new();
        let inbound = match sel % 11 {
            0 => {
                k.inbound(pkt, now, &mut out);
                true
            }
            1 => {
                k.inbound_udp(peer, ME, pkt, now, &mut out);
                // A keepalive is ignored; IKE goes to Pluto (one emit).
                pkt != [0xff]
            }
            2 => {
                k.outbound(0, pkt, now, &mut rng, &mut out);
                false
            }
            3 => {
                // Outbound, addressed from conn c{1..5}'s local client to its remote one.
                let mut p = pkt.to_vec();
                if p.len() >= ipv4::HEADER_LEN {
                    let c = sel / 11 % 5 + 1;
                    p[12..15].copy_from_slice(&[10, c, 1]);
                    p[16..19].copy_from_slice(&[10, c, 2]);
                }
                k.outbound(0, &p, now, &mut rng, &mut out);
                false
            }
            // Authenticated ESP around a fuzzed plaintext; the first byte is the next header.
            4 => {
                keys.cbc.encapsulate(
                    inbound_spi(1, Proto::Esp),
                    seq,
                    nh,
                    plain,
                    &[7; 16],
                    &mut esp,
                );
                k.inbound(&ipv4(proto::ESP, &esp), now, &mut out);
                true
            }
            5 => {
                let iv = seq.to_be_bytes().repeat(2);
                keys.gcm
                    .encapsulate(inbound_spi(2, Proto::Esp), seq, nh, plain, &iv, &mut esp);
                k.inbound_udp(peer, ME, &esp, now, &mut out);
                true
            }
            6 => {
                // The ESP SA of the AH+ESP group, arriving without its AH.
                keys.cbc.encapsulate(
                    inbound_spi(3, Proto::Esp),
                    seq,
                    nh,
                    plain,
                    &[9; 16],
                    &mut esp,
                );
                k.inbound(&ipv4(proto::ESP, &esp), now, &mut out);
                true
            }
            7 => {
                // AH+ESP as the group wants it: AH around ESP around the fuzzed plaintext.
                keys.cbc.encapsulate(
                    inbound_spi(3, Proto::Esp),
                    seq,
                    nh,
                    plain,
                    &[3; 16],
                    &mut esp,
                );
                let mut ahp = Vec::new();
                let _ = ah::ah_output(
                    keys.ah.as_ref(),
                    inbound_spi(3, Proto::Ah),
                    seq,
                    &ipv4(proto::ESP, &esp),
                    &mut ahp,
                );
                k.inbound(&ahp, now, &mut out);
                true
            }
            8 => {
                // IPComp+ESP: the fuzzed plaintext is the IPComp header and DEFLATE stream
                // when its next header says IPComp, else what skipping IPComp carries.
                keys.cbc.encapsulate(
                    inbound_spi(4, Proto::Esp),
                    seq,
                    nh,
                    plain,
                    &[5; 16],
                    &mut esp,
                );
                k.inbound(&ipv4(proto::ESP, &esp), now, &mut out);
                true
            }
            9 => {
                // IPComp+ESP with a valid DEFLATE stream of a fuzzed inner packet.
                let comp = ipcomp(nh, inbound_spi(4, Proto::Comp), plain);
                keys.cbc.encapsulate(
                    inbound_spi(4, Proto::Esp),
                    seq,
                    proto::COMP,
                    &comp,
                    &[6; 16],
                    &mut esp,
                );
                k.inbound(&ipv4(proto::ESP, &esp), now, &mut out);
                true
            }
            _ => {
                // IPComp+AH: AH around IPComp, the DEFLATE stream fuzzed (even selector
                // bytes) or made of a fuzzed inner packet (odd ones).
                let comp = if sel / 11 % 2 == 0 {
                    pkt.to_vec()
                } else {
                    ipcomp(nh, inbound_spi(5, Proto::Comp), plain)
                };
                let mut ahp = Vec::new();
                let _ = ah::ah_output(
                    keys.ah.as_ref(),
                    inbound_spi(5, Proto::Ah),
                    seq,
                    &ipv4(proto::COMP, &comp),
                    &mut ahp,
                );
                k.inbound(&ahp, now, &mut out);
                true
            }
        };
        check_emits(&out, inbound);
        each(out);
    }
}

fn check_emits(out: &[Emit], inbound: bool) {
    if inbound {
        assert_eq!(out.len(), 1, "one emit per inbound packet: {out:?}");
    }
    for e in out {
        if let Emit::Net { pkt, .. } = e {
            let p = pkt.get(9).copied();
            assert!(
                matches!(p, Some(proto::ESP | proto::AH | proto::UDP)),
                "cleartext (protocol {p:?}) leaves towards the network"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inner packet from conn `c`'s remote client to its local one.
    fn inner(c: u8) -> Vec<u8> {
        let payload = b"through the IPComp SA, compressible compressible compressible";
        let mut p = vec![0u8; ipv4::HEADER_LEN];
        ipv4::Ipv4Repr {
            src: Ipv4Addr::new(10, c, 2, 5),
            dst: Ipv4Addr::new(10, c, 1, 5),
            protocol: proto::UDP,
            tos: 0,
            ttl: 64,
            ident: 1,
            dont_frag: false,
            payload_len: payload.len(),
        }
        .emit(&mut p);
        p.extend_from_slice(payload);
        p
    }

    fn record(sel: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![sel];
        r.extend_from_slice(&(body.len() as u16).to_le_bytes());
        r.extend_from_slice(body);
        r
    }

    /// The authenticated IPComp modes deliver a compressed inner packet through the
    /// decompressor and the tunnel checks, and a corrupt DEFLATE stream is a counted drop.
    #[test]
    fn ipcomp_groups_are_reached() {
        let ipip = |c| [&[proto::IPIP][..], &inner(c)].concat();
        let mut input = record(9, &ipip(4));
        input.extend(record(21, &ipip(5)));
        input.extend(record(32, &[proto::IPIP, 0, 0x06, 0x01, 0xff, 0xff]));
        let mut emits = Vec::new();
        packets(&input, |e| emits.push(e));
        assert!(
            matches!(&emits[0][..], [Emit::Tun { pkt, .. }] if *pkt == inner(4)),
            "{emits:?}"
        );
        assert!(
            matches!(&emits[1][..], [Emit::Tun { pkt, .. }] if *pkt == inner(5)),
            "{emits:?}"
        );
        assert!(
            matches!(
                &emits[2][..],
                [Emit::Drop {
                    reason: crate::klips::DropReason::DecompressFailure,
                    ..
                }]
            ),
            "{emits:?}"
        );
    }
}
