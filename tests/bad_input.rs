//! Hostile and broken input toward gateway A (spec 8): with a manual tunnel up, packets are
//! injected from gateway B's namespace — truncated ESP, unknown SPI, bad ICV, replays, bad
//! padding, bad lengths, over-long datagrams, garbage on UDP 4500, ESP arriving raw for an
//! ESP-in-UDP SA or in UDP for a raw one. Each one must be counted under
//! its reason in `ipsec look`, raise RX dropped on ipsec0 by exactly the number injected, leave
//! the daemon running, and leave the tunnel working.

mod common;
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::*;
use rswan::crypto::{default_provider, AuthAlg, EncAlg};
use rswan::xform::esp::EspCrypto;
use support::*;

const K128: &str = "0x00112233445566778899aabbccddeeff";
const K160: &str = "0x0123456789abcdef0123456789abcdef01234567";
const SALT: &str = "01020304";

/// SPI of the SA whose destination is gateway A (left): spibase 0x200, odd for right→left.
const SPI_IN: u32 = 0x201;
/// Sequence numbers far ahead of real traffic, for packets rejected before the replay window
/// moves (they never disturb the peer's own numbering).
const FRESH: u32 = 0x1000_0000;

const GW_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const GW_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 10);

/// An inner packet as gateway B would tunnel it: host B → host A echo request.
fn inner() -> Vec<u8> {
    icmp_echo(HOST_B, HOST_A, 0x4242, 1, b"rswan bad-input test payload")
}

/// Brings up the tunnel, pings through it while capturing the middle link, and returns the
/// topology and the payloads (after the IP or UDP header) of ESP packets gateway B sent to A.
fn setup(body: &str, udp: bool) -> (Topo, Vec<Vec<u8>>) {
    setup_with("", body, udp)
}

/// [`setup`] with extra `config setup` lines.
fn setup_with(extra: &str, body: &str, udp: bool) -> (Topo, Vec<Vec<u8>>) {
    let mut t = Topo::new();
    let conf = manual_conf(body).replace(
        "\tinterfaces=%defaultroute\n",
        &format!("\tinterfaces=%defaultroute\n{extra}"),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    t.start_gateway(&ga, &conf);
    t.start_gateway(&gb, &conf);
    let cap = Cap::start(&ga, &t.ga_out, &t.dir.path("setup.pcap"), &[]);
    assert!(
        ping(&t.ha, "10.0.2.10", 3, 3),
        "tunnel does not pass ping\n{}",
        t.log(&ga)
    );
    let from_b_esp = |p: &Vec<u8>| {
        let (proto, src, dst, hl) = ip_fields(p);
        src == GW_B && dst == GW_A && proto == if udp { 17 } else { 50 } && p.len() > hl + 16
    };
    // Gateway B's three echo replies must all be on disk before the capture stops.
    cap.wait(Duration::from_secs(5), |pkts| {
        pkts.iter().filter(|p| from_b_esp(p)).count() >= 3
    });
    let mut from_b = Vec::new();
    for p in cap.stop() {
        let (proto, src, dst, hl) = ip_fields(&p);
        if src != GW_B || dst != GW_A {
            continue;
        }
        let esp = match (udp, proto) {
            (false, 50) => &p[hl..],
            (true, 17) if p[hl + 2..hl + 4] == 4500u16.to_be_bytes() => &p[hl + 8..],
            _ => continue,
        };
        if esp.len() > 8 && esp[..4] == SPI_IN.to_be_bytes() {
            from_b.push(esp.to_vec());
        }
    }
    assert!(!from_b.is_empty(), "no ESP from gateway B seen on the wire");
    (t, from_b)
}

/// Injects with `inject`, then checks that exactly `n` inbound drops were counted, all under
/// `reason`, and that RX dropped on ipsec0 rose by exactly `n`.
fn expect_drops(t: &Topo, what: &str, reason: &str, n: u64, inject: impl FnOnce()) {
    let ga = &t.ga;
    let before = drops(t, ga);
    let rx0 = rx_dropped(ga, "ipsec0");
    inject();
    let reached = wait_for(Duration::from_secs(5), || {
        drops(t, ga).get(reason) >= before.get(reason) + n && rx_dropped(ga, "ipsec0") >= rx0 + n
    });
    // Give any further (wrong) drop a moment to show up before comparing exactly.
    std::thread::sleep(Duration::from_millis(200));
    let after = drops(t, ga);
    let rx1 = rx_dropped(ga, "ipsec0");
    assert!(
        reached,
        "{what}: expected {n} \"{reason}\" drops; before {before:?}, after {after:?}, rx_dropped {rx0} -> {rx1}\n{}",
        t.log(ga)
    );
    assert_eq!(
        after.get(reason) - before.get(reason),
        n,
        "{what}: \"{reason}\" count; before {before:?}, after {after:?}"
    );
    assert_eq!(
        after.rx - before.rx,
        n,
        "{what}: other inbound drop reasons moved; before {before:?}, after {after:?}"
    );
    assert_eq!(after.tx, before.tx, "{what}: outbound drops moved");
    assert_eq!(rx1 - rx0, n, "{what}: RX dropped on ipsec0 {rx0} -> {rx1}");
    assert!(daemon_alive(t, ga), "{what}: daemon died\n{}", t.log(ga));
}

fn finish(t: &Topo) {
    assert!(daemon_alive(t, &t.ga), "daemon died\n{}", t.log(&t.ga));
    assert!(
        ping(&t.ha, "10.0.2.10", 3, 3),
        "tunnel no longer passes ping after bad input\n{}",
        t.log(&t.ga)
    );
    let look = t.ipsec_ok(&t.ga, &["look"]);
    assert!(look.contains("drops: "), "{look}");
}

fn set_seq(esp: &mut [u8], seq: u32) {
    esp[4..8].copy_from_slice(&seq.to_be_bytes());
}

/// AES-CBC + HMAC-SHA1-96 ESP over `plaintext` (trailer included, already block-aligned unless
/// the caller wants otherwise), with a correct ICV. Nothing checks the plaintext here.
fn cbc_raw(spi: u32, seq: u32, iv: &[u8; 16], plaintext: &[u8], encrypt: bool) -> Vec<u8> {
    let p = default_provider();
    let mut esp = Vec::new();
    esp.extend_from_slice(&spi.to_be_bytes());
    esp.extend_from_slice(&seq.to_be_bytes());
    esp.extend_from_slice(iv);
    let mut ct = plaintext.to_vec();
    if encrypt {
        p.block_cipher(EncAlg::AesCbc128, &key(K128))
            .unwrap()
            .encrypt(iv, &mut ct)
            .unwrap();
    }
    esp.extend_from_slice(&ct);
    let integ = p.integrity(AuthAlg::HmacSha1_96, &key(K160)).unwrap();
    let mut icv = [0u8; 12];
    integ.compute(&[&esp], &mut icv);
    esp.extend_from_slice(&icv);
    esp
}

/// `payload | pad | pad_len | next_header` padded to `align` with pad bytes from `pad_byte(i)`.
fn trailer(payload: &[u8], align: usize, nh: u8, pad_byte: impl Fn(usize) -> u8) -> Vec<u8> {
    let pad = (align - (payload.len() + 2) % align) % align;
    let pad = if pad == 0 { align } else { pad };
    let mut v = payload.to_vec();
    v.extend((1..=pad).map(pad_byte));
    v.push(pad as u8);
    v.push(nh);
    v
}

#[test]
fn bad_esp_aes_cbc_sha1() {
    let (t, from_b) = setup(
        &format!("\tesp=aes128-sha1\n\tespenckey={K128}\n\tespauthkey={K160}\n"),
        false,
    );
    let gb = t.gb.clone();
    let esp = |payloads: Vec<Vec<u8>>| {
        let gb = gb.clone();
        move || send_ip(&gb, 50, GW_A, payloads)
    };
    let crypto = EspCrypto::new(
        default_provider(),
        EncAlg::AesCbc128,
        &key(K128),
        Some(AuthAlg::HmacSha1_96),
        &key(K160),
    )
    .unwrap();
    let valid = |seq: u32| {
        let mut v = Vec::new();
        crypto.encapsulate(SPI_IN, seq, 4, &inner(), &[7u8; 16], &mut v);
        v
    };

    // Truncated: 6 bytes (no complete header), and a header with the right SPI but no room for
    // IV and ICV.
    let mut short = valid(FRESH);
    short.truncate(20);
    expect_drops(
        &t,
        "truncated ESP",
        "truncated",
        2,
        esp(vec![vec![0, 0, 2, 1, 0, 0], short]),
    );

    // Unknown SPI: well-formed packets for SAs that do not exist.
    let mut unknown = Vec::new();
    for spi in [0x999u32, 0x200, 0xdead_beef] {
        let mut p = valid(FRESH);
        p[..4].copy_from_slice(&spi.to_be_bytes());
        unknown.push(p);
    }
    expect_drops(&t, "unknown SPI", "no SA", 3, esp(unknown));

    // Bad ICV: a valid packet with its ICV flipped, and one with a ciphertext byte flipped.
    let mut bad_icv = valid(FRESH);
    *bad_icv.last_mut().unwrap() ^= 0x01;
    let mut bad_ct = valid(FRESH + 1);
    bad_ct[30] ^= 0x80;
    expect_drops(&t, "bad ICV", "auth failure", 2, esp(vec![bad_icv, bad_ct]));

    // Replay: gateway B's own packets, already accepted once; and sequence number 0.
    let replays = vec![
        from_b[0].clone(),
        from_b[from_b.len() - 1].clone(),
        valid(0),
    ];
    expect_drops(&t, "replayed ESP", "replay", 3, esp(replays));

    // Bad padding: correct ICV, decrypts, but the pad bytes are not 1, 2, 3, ….
    let pt = trailer(&inner(), 16, 4, |i| (i as u8) ^ 0x55);
    let bad_pad = cbc_raw(SPI_IN, FRESH, &[9u8; 16], &pt, true);
    // … and a pad length larger than the plaintext.
    let mut pt2 = trailer(&inner(), 16, 4, |i| i as u8);
    let n = pt2.len();
    pt2[n - 2] = 200;
    let bad_padlen = cbc_raw(SPI_IN, FRESH + 1, &[9u8; 16], &pt2[n - 16..], true);
    expect_drops(
        &t,
        "bad padding",
        "bad padding",
        2,
        esp(vec![bad_pad, bad_padlen]),
    );

    // Ciphertext not a multiple of the AES block, with a correct ICV over it.
    let odd = cbc_raw(SPI_IN, FRESH, &[3u8; 16], &[0x42; 37], false);
    expect_drops(
        &t,
        "ESP length not x16",
        "ESP length not x8",
        1,
        esp(vec![odd]),
    );

    // Over-long: a 60000-byte datagram (fragmented on the wire, reassembled by the kernel) for
    // our SA, whose ICV cannot match.
    let mut big = valid(FRESH);
    big.resize(60_000, 0xa5);
    expect_drops(&t, "over-long ESP", "auth failure", 1, esp(vec![big]));

    // Garbage on UDP 4500: random bytes (not an SPI of ours), and a 3-byte datagram.
    let gb2 = t.gb.clone();
    let mut garbage: Vec<u8> = (0..100u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage[0] = 0xc7;
    expect_drops(&t, "garbage on UDP 4500", "no SA", 1, move || {
        send_udp(&gb2, SocketAddrV4::new(GW_A, 4500), vec![garbage])
    });
    let gb3 = t.gb.clone();
    expect_drops(&t, "3-byte UDP 4500", "not an IPsec packet", 1, move || {
        send_udp(&gb3, SocketAddrV4::new(GW_A, 4500), vec![vec![1, 2, 3]])
    });

    // A valid packet for our raw-ESP SA, but inside UDP 4500: the SA does not use ESP-in-UDP.
    let gb4 = t.gb.clone();
    let in_udp = valid(FRESH + 2);
    expect_drops(
        &t,
        "raw-ESP SA's packet in UDP 4500",
        "ESP encapsulation mismatch",
        1,
        move || send_udp(&gb4, SocketAddrV4::new(GW_A, 4500), vec![in_udp]),
    );

    finish(&t);
}

/// AES-GCM ESP-in-UDP (RFC 3948 + RFC 4106): the same classes of bad input arriving on UDP 4500.
#[test]
fn bad_esp_in_udp_aes_gcm() {
    bad_esp_in_udp("");
}

fn bad_esp_in_udp(extra: &str) {
    let (t, from_b) = setup_with(
        extra,
        &format!("\tesp=aes128gcm16\n\tespenckey={K128}{SALT}\n\tforceencaps=yes\n"),
        true,
    );
    let gcm_key = key(&format!("{K128}{SALT}"));
    let crypto = EspCrypto::new(
        default_provider(),
        EncAlg::AesGcm16_128,
        &gcm_key,
        None,
        &[],
    )
    .unwrap();
    let valid = |seq: u32| {
        let mut v = Vec::new();
        crypto.encapsulate(
            SPI_IN,
            seq,
            4,
            &inner(),
            &u64::from(seq).to_be_bytes(),
            &mut v,
        );
        v
    };
    let gb = t.gb.clone();
    let udp = |datagrams: Vec<Vec<u8>>| {
        let gb = gb.clone();
        move || send_udp(&gb, SocketAddrV4::new(GW_A, 4500), datagrams)
    };

    // Truncated: our SPI and sequence number with no room for IV and tag. (A datagram shorter
    // than an ESP header cannot be told from other junk on port 4500: see the 3-byte case.)
    let mut short = valid(FRESH);
    short.truncate(20);
    let mut shorter = valid(FRESH);
    shorter.truncate(9);
    expect_drops(
        &t,
        "truncated ESP-in-UDP",
        "truncated",
        2,
        udp(vec![short, shorter]),
    );
    expect_drops(
        &t,
        "6-byte datagram on UDP 4500",
        "not an IPsec packet",
        1,
        udp(vec![vec![0, 0, 2, 1, 0, 0]]),
    );

    let mut unknown = valid(FRESH);
    unknown[..4].copy_from_slice(&0x999u32.to_be_bytes());
    expect_drops(&t, "unknown SPI", "no SA", 1, udp(vec![unknown]));

    // Bad ICV: flipped tag; flipped ciphertext; a valid packet whose (authenticated) sequence
    // number was changed.
    let mut bad_tag = valid(FRESH);
    *bad_tag.last_mut().unwrap() ^= 0x01;
    let mut bad_ct = valid(FRESH + 1);
    bad_ct[20] ^= 0x01;
    let mut bad_seq = valid(FRESH + 2);
    set_seq(&mut bad_seq, FRESH + 3);
    expect_drops(
        &t,
        "bad GCM tag",
        "auth failure",
        3,
        udp(vec![bad_tag, bad_ct, bad_seq]),
    );

    let replays = vec![from_b[0].clone(), from_b[from_b.len() - 1].clone()];
    expect_drops(&t, "replayed ESP-in-UDP", "replay", 2, udp(replays));

    // Bad padding under a valid tag.
    let a = default_provider()
        .aead(EncAlg::AesGcm16_128, &gcm_key)
        .unwrap();
    let mut pt = trailer(&inner(), 4, 4, |i| (i as u8) + 7);
    let iv = u64::from(FRESH).to_be_bytes();
    let mut pkt = Vec::new();
    pkt.extend_from_slice(&SPI_IN.to_be_bytes());
    pkt.extend_from_slice(&FRESH.to_be_bytes());
    let mut tag = [0u8; 16];
    a.seal(&iv, &pkt.clone(), &mut pt, &mut tag).unwrap();
    pkt.extend_from_slice(&iv);
    pkt.extend_from_slice(&pt);
    pkt.extend_from_slice(&tag);
    expect_drops(&t, "bad padding", "bad padding", 1, udp(vec![pkt]));

    // Ciphertext length not a multiple of 4.
    let mut odd = valid(FRESH);
    odd.insert(30, 0);
    expect_drops(
        &t,
        "ESP length not x4",
        "ESP length not x8",
        1,
        udp(vec![odd]),
    );

    // Over-long datagram for our SA.
    let mut big = valid(FRESH);
    big.resize(60_000, 0x5a);
    expect_drops(
        &t,
        "over-long ESP-in-UDP",
        "auth failure",
        1,
        udp(vec![big]),
    );

    // Garbage: random bytes, a 3-byte datagram; a NAT keepalive (0xff) is not a drop.
    let mut garbage: Vec<u8> = (0..64u32)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    garbage[0] = 0x9e;
    expect_drops(&t, "garbage on UDP 4500", "no SA", 1, udp(vec![garbage]));
    expect_drops(
        &t,
        "3-byte UDP 4500 after a keepalive",
        "not an IPsec packet",
        1,
        udp(vec![vec![0xff], vec![0xfe, 0, 1]]),
    );

    // A valid packet for our ESP-in-UDP SA, sent as raw ESP (IP protocol 50).
    let gb2 = t.gb.clone();
    let raw = valid(FRESH + 4);
    expect_drops(
        &t,
        "ESP-in-UDP SA's packet as raw ESP",
        "ESP encapsulation mismatch",
        1,
        move || send_ip(&gb2, 50, GW_A, vec![raw]),
    );

    finish(&t);
}
