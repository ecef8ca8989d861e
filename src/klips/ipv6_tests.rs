//! The datapath with IPv6: every inner/outer family combination of ESP tunnel mode, ESP
//! transport mode over IPv6 (behind extension headers), IPComp and ESP-in-UDP over IPv6,
//! `%reject` and Packet Too Big answered with ICMPv6, the inbound checks and drop counters —
//! two gateways keyed by `ipsec manual` plans from IPv6 configurations, packets handed from
//! one core to the other.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::conf::IpsecConf;
use crate::eroute::Eroute;
use crate::manual::{self, HostFacts};
use crate::sadb::sa::Sa;
use crate::said::{Proto, Said, Shunt};
use crate::wire::icmpv6;
use crate::wire::ipv4::{self, proto};
use crate::wire::ipv6::{self, nh, Ipv6Packet, Ipv6Repr};

use super::{DevInfo, DropReason, Emit, Klips};

const W4: &str = "192.0.2.1";
const E4: &str = "192.0.2.2";
const W6: &str = "2001:db8::1";
const E6: &str = "2001:db8::2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn conf(left: &str, right: &str, ls: &str, rs: &str, extra: &str) -> String {
    format!(
        "version 2\nconn net\n\tleft={left}\n\tright={right}\n\tleftsubnet={ls}\n\trightsubnet={rs}\n\
         \tspibase=0x200\n\tesp=aes128-sha1\n\tespenckey=0x00112233445566778899aabbccddeeff\n\
         \tespauthkey=0x0123456789abcdef0123456789abcdef01234567\n{extra}\tauto=manual\n"
    )
}

/// A gateway whose physical interface holds `v4` and `v6`, keyed from `text` by `ipsec
/// manual`'s plan for the side holding `me`.
fn gateway(text: &str, me: &str, v4: &str, v6: &str) -> Klips {
    let conf = IpsecConf::parse_str(text, "/etc/ipsec.conf").unwrap();
    let facts = HostFacts {
        local: vec![ip(me)],
        defaultroute: None,
        ipsec: vec![("ipsec0".into(), ip(me))],
    };
    let plan = manual::plan(conf.conn("net").unwrap(), &facts).unwrap();
    let k = Klips::new();
    k.set_devs(vec![DevInfo {
        name: "ipsec0".into(),
        phys: "eth0".into(),
        addr: v4.parse().unwrap(),
        addr6: Some(v6.parse().unwrap()),
        phys_mtu: 1500,
        mtu: 1400,
    }]);
    for spec in &plan.sas {
        let sa = Sa::new(spec, spec.dir.unwrap(), 0).unwrap();
        k.sadb_mut().add(sa).unwrap();
    }
    for g in plan.groups.iter().filter(|g| g.len() > 1) {
        k.sadb_mut().group(g).unwrap();
    }
    let (s, d, said) = plan.eroute;
    k.eroutes_mut().add(Eroute::new(s, d, said)).unwrap();
    k
}

fn pair(text: &str, outer6: bool) -> (Klips, Klips) {
    let (w, e) = if outer6 { (W6, E6) } else { (W4, E4) };
    (gateway(text, w, W4, W6), gateway(text, e, E4, E6))
}

/// A UDP datagram with a valid checksum, of either family, `payload` bytes long.
fn udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 8 + payload.len()];
    d[0..2].copy_from_slice(&1234u16.to_be_bytes());
    d[2..4].copy_from_slice(&53u16.to_be_bytes());
    let n = d.len() as u16;
    d[4..6].copy_from_slice(&n.to_be_bytes());
    d[8..].copy_from_slice(payload);
    match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d4)) => {
            let c = crate::wire::udp::checksum(s, d4, &d);
            d[6..8].copy_from_slice(&c.to_be_bytes());
            let mut p = vec![0u8; 20 + d.len()];
            ipv4::Ipv4Repr {
                src: s,
                dst: d4,
                protocol: proto::UDP,
                tos: 0,
                ttl: 64,
                ident: 9,
                dont_frag: true,
                payload_len: d.len(),
            }
            .emit(&mut p);
            p[20..].copy_from_slice(&d);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d6)) => with_v6(s, d6, proto::UDP, &[], d),
        _ => unreachable!(),
    }
}

/// An IPv6 packet with extension headers `ext` (their first next-header byte is patched to
/// `upper`'s chain by the caller) in front of the upper-layer bytes.
fn with_v6(s: Ipv6Addr, d: Ipv6Addr, first: u8, ext: &[u8], mut upper: Vec<u8>) -> Vec<u8> {
    if upper.len() >= 8 && ext.is_empty() && first == proto::UDP {
        upper[6..8].copy_from_slice(&[0, 0]);
        let c = ipv6::upper_checksum(s, d, proto::UDP, &upper);
        upper[6..8].copy_from_slice(&c.to_be_bytes());
    }
    let mut p = vec![0u8; 40];
    Ipv6Repr {
        src: s,
        dst: d,
        next_header: first,
        traffic_class: 0,
        hop_limit: 64,
        payload_len: ext.len() + upper.len(),
    }
    .emit(&mut p);
    p.extend_from_slice(ext);
    p.extend_from_slice(&upper);
    p
}

fn send(k: &Klips, pkt: &[u8]) -> Vec<Emit> {
    let mut out = Vec::new();
    k.outbound(0, pkt, 0, &mut rand::thread_rng(), &mut out);
    out
}

fn net_packets(out: &[Emit]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|e| match e {
            Emit::Net { pkt, .. } => Some(pkt.clone()),
            _ => None,
        })
        .collect()
}

fn receive(k: &Klips, pkt: &[u8]) -> Vec<Emit> {
    let mut out = Vec::new();
    k.inbound(pkt, 0, &mut out);
    out
}

fn delivered(out: &[Emit]) -> Option<Vec<u8>> {
    match out {
        [Emit::Tun { pkt, .. }] => Some(pkt.clone()),
        _ => None,
    }
}

fn dropped(out: &[Emit]) -> Option<DropReason> {
    out.iter().find_map(|e| match e {
        Emit::Drop { reason, .. } => Some(*reason),
        _ => None,
    })
}

/// The outer header's family and payload protocol of a packet on the wire.
fn outer(pkt: &[u8]) -> (bool, u8) {
    match pkt[0] >> 4 {
        4 => (false, pkt[9]),
        6 => (
            true,
            Ipv6Packet::new_checked(pkt).unwrap().upper().unwrap().proto,
        ),
        v => panic!("IP version {v}"),
    }
}

/// ESP tunnel mode for 4-in-4, 6-in-6, 4-in-6 and 6-in-4: on the wire only ESP of the outer
/// family, no inner bytes in clear; the peer delivers the inner packet unchanged (both ways).
#[test]
fn esp_tunnel_every_family_combination() {
    let secret = b"inner payload that must not appear on the wire";
    for (outer6, inner6) in [(false, false), (true, true), (true, false), (false, true)] {
        let (l, r) = if outer6 { (W6, E6) } else { (W4, E4) };
        let (ls, rs, hs, hd) = if inner6 {
            (
                "2001:db8:1::/64",
                "2001:db8:2::/64",
                "2001:db8:1::10",
                "2001:db8:2::10",
            )
        } else {
            ("10.0.1.0/24", "10.0.2.0/24", "10.0.1.10", "10.0.2.10")
        };
        let (west, east) = pair(&conf(l, r, ls, rs, ""), outer6);
        let what = format!("outer v6 {outer6}, inner v6 {inner6}");
        for (from, to, s, d) in [(&west, &east, hs, hd), (&east, &west, hd, hs)] {
            let inner = udp(s, d, secret);
            let wire = net_packets(&send(from, &inner));
            assert_eq!(wire.len(), 1, "{what}");
            assert_eq!(outer(&wire[0]), (outer6, proto::ESP), "{what}");
            assert!(
                !wire[0].windows(secret.len()).any(|w| w == secret),
                "{what}: cleartext on the wire"
            );
            let got = receive(to, &wire[0]);
            assert_eq!(
                delivered(&got).as_deref(),
                Some(&inner[..]),
                "{what}: {got:?}"
            );
            // The same packet again is a replay.
            assert_eq!(
                dropped(&receive(to, &wire[0])),
                Some(DropReason::Replay),
                "{what}"
            );
        }
    }
}

/// IPComp inside ESP over IPv6 (6-in-6): a compressible packet is compressed and restored.
#[test]
fn ipcomp_over_ipv6() {
    let (west, east) = pair(
        &conf(
            W6,
            E6,
            "2001:db8:1::/64",
            "2001:db8:2::/64",
            "\tcompress=yes\n",
        ),
        true,
    );
    let inner = udp("2001:db8:1::10", "2001:db8:2::10", &[b'a'; 1000]);
    let wire = net_packets(&send(&west, &inner));
    assert_eq!(wire.len(), 1);
    assert!(wire[0].len() < inner.len(), "compressed: {}", wire[0].len());
    let got = receive(&east, &wire[0]);
    assert_eq!(delivered(&got).as_deref(), Some(&inner[..]), "{got:?}");
}

/// ESP transport mode over IPv6 goes behind the extension headers (here destination
/// options): the last one's next header becomes ESP, and the peer restores the packet.
#[test]
fn esp_transport_over_ipv6_behind_extension_headers() {
    let text = conf(W6, E6, W6, E6, "\ttype=transport\n");
    let text = text.replace("\tleftsubnet=2001:db8::1\n\trightsubnet=2001:db8::2\n", "");
    let (west, east) = pair(&text, true);
    let mut upper = vec![0u8; 8 + 100];
    upper[0..2].copy_from_slice(&1234u16.to_be_bytes());
    upper[2..4].copy_from_slice(&53u16.to_be_bytes());
    upper[4..6].copy_from_slice(&108u16.to_be_bytes());
    let (s, d): (Ipv6Addr, Ipv6Addr) = (W6.parse().unwrap(), E6.parse().unwrap());
    let c = ipv6::upper_checksum(s, d, proto::UDP, &upper);
    upper[6..8].copy_from_slice(&c.to_be_bytes());
    let dest_opts = [proto::UDP, 0, 1, 4, 0, 0, 0, 0];
    let inner = with_v6(s, d, nh::DEST_OPTS, &dest_opts, upper);
    let wire = net_packets(&send(&west, &inner));
    assert_eq!(wire.len(), 1);
    let v = Ipv6Packet::new_checked(&wire[0]).unwrap();
    assert_eq!(v.next_header(), nh::DEST_OPTS);
    let u = v.upper().unwrap();
    assert_eq!((u.proto, u.offset, u.nh_at), (proto::ESP, 48, 40));
    let got = receive(&east, &wire[0]);
    assert_eq!(delivered(&got).as_deref(), Some(&inner[..]), "{got:?}");
}

/// ESP-in-UDP over IPv6: the UDP checksum is filled in (never zero over IPv6) and verifies;
/// the peer takes the datagram from its UDP socket; raw ESP for that SA is refused.
#[test]
fn esp_in_udp_over_ipv6_has_a_valid_checksum() {
    let (west, east) = pair(
        &conf(
            W6,
            E6,
            "2001:db8:1::/64",
            "2001:db8:2::/64",
            "\tforceencaps=yes\n",
        ),
        true,
    );
    let inner = udp("2001:db8:1::10", "2001:db8:2::10", b"through UDP");
    let wire = net_packets(&send(&west, &inner));
    assert_eq!(wire.len(), 1);
    let p = &wire[0];
    assert_eq!(outer(p), (true, proto::UDP));
    let v = Ipv6Packet::new_checked(p).unwrap();
    let dgram = &p[40..];
    assert_eq!(&dgram[0..4], &[0x11, 0x94, 0x11, 0x94]);
    assert_ne!(&dgram[6..8], &[0, 0], "zero UDP checksum over IPv6");
    let acc = ipv4::sum(
        dgram,
        ipv6::pseudo_sum(v.src(), v.dst(), dgram.len(), proto::UDP),
    );
    assert_eq!(ipv4::fold(acc), 0xffff, "UDP checksum");
    let mut out = Vec::new();
    east.inbound_udp(
        SocketAddr::new(v.src().into(), 4500),
        IpAddr::V6(v.dst()),
        &dgram[8..],
        0,
        &mut out,
    );
    assert_eq!(delivered(&out).as_deref(), Some(&inner[..]), "{out:?}");
    // The same ESP as IP protocol 50: an encapsulation mismatch.
    let raw = with_v6(v.src(), v.dst(), proto::ESP, &[], dgram[8..].to_vec());
    assert_eq!(
        dropped(&receive(&east, &raw)),
        Some(DropReason::EncapMismatch)
    );
}

/// `%reject` answers an IPv6 sender with ICMPv6 destination unreachable, administratively
/// prohibited, from the gateway's IPv6 address.
#[test]
fn reject_answers_icmpv6_admin_prohibited() {
    let (west, _) = pair(
        &conf(W6, E6, "2001:db8:1::/64", "2001:db8:2::/64", ""),
        true,
    );
    west.eroutes_mut()
        .add(Eroute::new(
            "2001:db8:1::/64".parse().unwrap(),
            "2001:db8:3::/64".parse().unwrap(),
            Said::new(Proto::Int, Shunt::Reject.spi(), Ipv4Addr::UNSPECIFIED),
        ))
        .unwrap();
    let out = send(&west, &udp("2001:db8:1::10", "2001:db8:3::1", b"x"));
    assert_eq!(dropped(&out), Some(DropReason::ShuntReject));
    let icmp = out
        .iter()
        .find_map(|e| match e {
            Emit::Local { pkt } => Some(pkt.clone()),
            _ => None,
        })
        .expect("an ICMPv6 error");
    let v = Ipv6Packet::new_checked(&icmp).unwrap();
    assert_eq!(v.src(), W6.parse::<Ipv6Addr>().unwrap());
    assert_eq!(v.dst(), "2001:db8:1::10".parse::<Ipv6Addr>().unwrap());
    assert_eq!(v.next_header(), nh::ICMPV6);
    assert_eq!(
        &icmp[40..42],
        &[icmpv6::DEST_UNREACH, icmpv6::ADMIN_PROHIBITED]
    );
    assert!(net_packets(&out).is_empty());
}

/// An IPv6 packet larger than ipsecN's MTU is not sent: its sender gets Packet Too Big with
/// that MTU (IPv6 is never fragmented on the way). One that fits goes through.
#[test]
fn oversized_ipv6_gets_packet_too_big() {
    for outer6 in [true, false] {
        let (l, r) = if outer6 { (W6, E6) } else { (W4, E4) };
        let (west, _) = pair(
            &conf(l, r, "2001:db8:1::/64", "2001:db8:2::/64", ""),
            outer6,
        );
        let big = udp("2001:db8:1::10", "2001:db8:2::10", &[7u8; 1400]);
        let out = send(&west, &big);
        assert!(net_packets(&out).is_empty());
        assert_eq!(dropped(&out), Some(DropReason::Oversize));
        let ptb = out
            .iter()
            .find_map(|e| match e {
                Emit::Local { pkt } => Some(pkt.clone()),
                _ => None,
            })
            .expect("Packet Too Big");
        assert_eq!(ptb[40], icmpv6::PACKET_TOO_BIG);
        assert_eq!(
            u32::from_be_bytes([ptb[44], ptb[45], ptb[46], ptb[47]]),
            1400
        );
        let fits = udp("2001:db8:1::10", "2001:db8:2::10", &[7u8; 1300]);
        assert_eq!(net_packets(&send(&west, &fits)).len(), 1);
    }
}

/// With ipsecN's MTU at the physical MTU (`overridemtu=`), a packet that fits ipsecN but not
/// the link after ESP is sent as IPv6 fragments of one identification, each within the link
/// MTU; reassembled as the receiving kernel does, the peer decrypts the original packet.
#[test]
fn outer_ipv6_is_fragmented_by_its_source() {
    let (west, east) = pair(&conf(W6, E6, "10.0.1.0/24", "10.0.2.0/24", ""), true);
    let mut devs = west.devs();
    devs[0].mtu = 1500;
    west.set_devs(devs);
    let inner = udp("10.0.1.10", "10.0.2.10", &[7u8; 1400]);
    let frags = net_packets(&send(&west, &inner));
    assert_eq!(frags.len(), 2, "one ESP packet in two fragments");
    let mut ids = Vec::new();
    let mut data = Vec::new();
    for f in &frags {
        assert!(f.len() <= 1500);
        let u = Ipv6Packet::new_checked(f).unwrap().upper().unwrap();
        assert_eq!(u.proto, proto::ESP);
        assert_eq!(u.fragment.unwrap().0, data.len());
        ids.push(f[u.offset - 4..u.offset].to_vec());
        data.extend_from_slice(&f[u.offset..]);
    }
    assert_eq!(ids[0], ids[1]);
    let whole = with_v6(
        W6.parse().unwrap(),
        E6.parse().unwrap(),
        proto::ESP,
        &[],
        data,
    );
    assert_eq!(delivered(&receive(&east, &whole)), Some(inner));
}

/// Bad input over IPv6 is dropped and counted under its reason, never delivered: truncated
/// headers, a bogus extension header chain, an unknown SPI, a bad ICV, a decapsulated
/// source outside the SA's policy.
#[test]
fn bad_ipv6_input_is_dropped_and_counted() {
    let text = conf(W6, E6, "2001:db8:1::/64", "2001:db8:2::/64", "");
    let (west, east) = pair(&text, true);
    let wire = net_packets(&send(
        &west,
        &udp("2001:db8:1::10", "2001:db8:2::10", b"ok"),
    ));
    let good = wire[0].clone();
    assert_eq!(
        dropped(&receive(&east, &good[..30])),
        Some(DropReason::NotIpsec)
    );
    let mut short = good.clone();
    short.truncate(good.len() - 4);
    assert_eq!(dropped(&receive(&east, &short)), Some(DropReason::NotIpsec));
    // a destination options header that runs past the packet
    let (s, d): (Ipv6Addr, Ipv6Addr) = (W6.parse().unwrap(), E6.parse().unwrap());
    let bogus = with_v6(
        s,
        d,
        nh::DEST_OPTS,
        &[proto::ESP, 40, 0, 0, 0, 0, 0, 0],
        vec![0; 16],
    );
    assert_eq!(
        dropped(&receive(&east, &bogus)),
        Some(DropReason::BadExtHeaders)
    );
    let mut unknown = good.clone();
    unknown[40..44].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    assert_eq!(dropped(&receive(&east, &unknown)), Some(DropReason::NoSa));
    let mut forged = good.clone();
    let n = forged.len();
    forged[n - 1] ^= 1;
    assert_eq!(
        dropped(&receive(&east, &forged)),
        Some(DropReason::AuthFailure)
    );
    assert!(delivered(&receive(&east, &good)).is_some());
    // West keyed with a wider subnet than east's policy admits: the tunnel-exit check.
    let wide = gateway(
        &conf(W6, E6, "2001:db8::/32", "2001:db8:2::/64", ""),
        W6,
        W4,
        W6,
    );
    let stray = udp("2001:db8:9::1", "2001:db8:2::10", b"x");
    send(&wide, &stray); // sequence number 1, which east has seen
    let stray = net_packets(&send(&wide, &stray));
    assert_eq!(
        dropped(&receive(&east, &stray[0])),
        Some(DropReason::ArrivalCheck)
    );
    let drops = east.drops.totals();
    assert_eq!(drops.0, 6, "inbound drops {drops:?}");
}

/// AH over IPv6 through the datapath: alone (6-in-6 and 4-in-6 tunnels) and outside ESP,
/// verified by the peer; a changed address fails the ICV.
#[test]
fn ah_over_ipv6_through_the_datapath() {
    let ah = "\tah=hmac-sha1-96\n\tahkey=0x0123456789abcdef0123456789abcdef01234567\n";
    for (inner6, with_esp) in [(true, false), (false, false), (true, true)] {
        let (ls, rs, hs, hd) = if inner6 {
            (
                "2001:db8:1::/64",
                "2001:db8:2::/64",
                "2001:db8:1::10",
                "2001:db8:2::10",
            )
        } else {
            ("10.0.1.0/24", "10.0.2.0/24", "10.0.1.10", "10.0.2.10")
        };
        let mut text = conf(W6, E6, ls, rs, ah);
        if !with_esp {
            text = text
                .replace("\tesp=aes128-sha1\n", "")
                .replace("\tespenckey=0x00112233445566778899aabbccddeeff\n", "")
                .replace(
                    "\tespauthkey=0x0123456789abcdef0123456789abcdef01234567\n",
                    "",
                );
        }
        let (west, east) = pair(&text, true);
        let inner = udp(hs, hd, b"authenticated");
        let wire = net_packets(&send(&west, &inner));
        assert_eq!(wire.len(), 1);
        assert_eq!(outer(&wire[0]), (true, proto::AH), "inner v6 {inner6}");
        let mut forged = wire[0].clone();
        let n = forged.len();
        forged[n - 1] ^= 1;
        assert_eq!(
            dropped(&receive(&east, &forged)),
            Some(DropReason::AuthFailure)
        );
        let mut hops = wire[0].clone();
        hops[7] = 3; // hop limit: mutable, not covered
        let got = receive(&east, &hops);
        assert_eq!(delivered(&got).as_deref(), Some(&inner[..]), "{got:?}");
    }
}

/// Mutated and truncated IPv6 packets — ESP, AH, ESP-in-UDP from the network, anything from
/// ipsecN — are dropped or delivered, never a panic; nothing mutated is delivered unless its
/// ICV still holds.
#[test]
fn mutated_ipv6_packets_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(96);
    let ah = "\tah=hmac-sha1-96\n\tahkey=0x0123456789abcdef0123456789abcdef01234567\n";
    let esp_text = conf(W6, E6, "2001:db8:1::/64", "2001:db8:2::/64", "");
    let ah_text = conf(W6, E6, "2001:db8:1::/64", "2001:db8:2::/64", ah);
    let udp_text = conf(
        W6,
        E6,
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        "\tforceencaps=yes\n",
    );
    for text in [esp_text, ah_text, udp_text] {
        let (west, east) = pair(&text, true);
        let inner = udp("2001:db8:1::10", "2001:db8:2::10", &[3u8; 64]);
        for round in 0..2000 {
            let wire = net_packets(&send(&west, &inner));
            let mut p = wire[0].clone();
            match round % 4 {
                0 => p.truncate(rng.gen_range(0..p.len())),
                1 => {
                    for _ in 0..rng.gen_range(1..4) {
                        let i = rng.gen_range(0..p.len());
                        p[i] = rng.gen();
                    }
                }
                2 => {
                    // a random extension header chain in front of the payload
                    let n = rng.gen_range(1..5) * 8;
                    let ext: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                    p.splice(40..40, ext);
                    p[6] = [0u8, 43, 44, 60][rng.gen_range(0..4)];
                }
                _ => {}
            }
            let _ = receive(&east, &p);
            if p.len() > 48 {
                let mut out = Vec::new();
                east.inbound_udp(SocketAddr::new(ip(W6), 4500), ip(E6), &p[48..], 0, &mut out);
            }
            let _ = send(&west, &p);
        }
    }
}
