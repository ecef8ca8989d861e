//! Tunnel-exit (arrival) check and outer TOS handling on a manual tunnel.

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
const BODY: &str = "\tesp=aes128-sha1\n\tespenckey=0x00112233445566778899aabbccddeeff\n\tespauthkey=0x0123456789abcdef0123456789abcdef01234567\n";

/// ESP (tunnel mode, SPI 0x201 toward gateway A) carrying `inner`, as gateway B would send it.
fn esp_to_a(inner: &[u8], seq: u32) -> Vec<u8> {
    let c = EspCrypto::new(
        default_provider(),
        EncAlg::AesCbc128,
        &key(K128),
        Some(AuthAlg::HmacSha1_96),
        &key(K160),
    )
    .unwrap();
    let mut out = Vec::new();
    c.encapsulate(0x201, seq, 4, inner, &[7u8; 16], &mut out);
    out
}

fn spoofed_inner() -> Vec<u8> {
    // From 10.9.9.9, which is not inside gateway B's subnet 10.0.2.0/24.
    udp_packet(
        SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 4444),
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 10), 7777),
        b"spoofed",
    )
}

#[test]
fn arrival_check_drops_inner_addresses_outside_the_policy() {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    t.start_gateway(&ga, &manual_conf(BODY));
    t.start_gateway(&gb, &manual_conf(BODY));
    // Genuine traffic passes (before the injection: an authentic packet far ahead in sequence
    // moves the replay window, as it must).
    assert!(ping(&t.ha, "10.0.2.10", 3, 3));
    let sink = UdpSink::bind(&t.ha, 7777);
    let before = drops(&t, &ga);
    send_ip(
        &gb,
        50,
        Ipv4Addr::new(192, 0, 2, 1),
        vec![esp_to_a(&spoofed_inner(), 0x100000)],
    );
    assert!(
        wait_for(Duration::from_secs(5), || drops(&t, &ga)
            .get("inner address outside SA policy")
            > before.get("inner address outside SA policy")),
        "spoofed inner source not dropped: {}",
        t.ipsec_ok(&ga, &["look"])
    );
    assert!(
        sink.collect(Duration::from_millis(500)).is_empty(),
        "spoofed packet delivered"
    );
    assert!(daemon_alive(&t, &ga));
}

#[test]
fn disablearrivalcheck_lets_it_through() {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let body = format!("{BODY}\tdisablearrivalcheck=yes\n");
    t.start_gateway(&ga, &manual_conf(&body));
    t.start_gateway(&gb, &manual_conf(&body));
    let spi = t.ipsec_ok(&ga, &["spi"]);
    assert!(!spi.contains("policy="), "{spi}");
    let sink = UdpSink::bind(&t.ha, 7777);
    send_ip(
        &gb,
        50,
        Ipv4Addr::new(192, 0, 2, 1),
        vec![esp_to_a(&spoofed_inner(), 0x100000)],
    );
    let got = sink.wait_n(1, Duration::from_secs(5));
    assert_eq!(
        got,
        vec![b"spoofed".to_vec()],
        "{}",
        t.ipsec_ok(&ga, &["look"])
    );
}

/// Outer TOS of the ESP packets gateway A sends for a ping with TOS 0x10.
fn outer_tos(hidetos: &str) -> Vec<u8> {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let conf = manual_conf(BODY).replace(
        "\tinterfaces=%defaultroute\n",
        &format!("\tinterfaces=%defaultroute\n\thidetos={hidetos}\n"),
    );
    t.start_gateway(&ga, &conf);
    t.start_gateway(&gb, &conf);
    let cap = Cap::start(&ga, &t.ga_out, &t.dir.path("tos.pcap"), &[]);
    ns_run(
        &t.ha,
        &["ping", "-c", "2", "-i", "0.2", "-Q", "0x10", "10.0.2.10"],
    );
    let out: Vec<u8> = cap
        .stop()
        .iter()
        .filter(|p| p.len() > 20 && p[9] == 50 && p[12..16] == [192, 0, 2, 1])
        .map(|p| p[1])
        .collect();
    assert!(!out.is_empty(), "no ESP captured");
    out
}

#[test]
fn hidetos_zeroes_or_copies_outer_tos() {
    assert!(outer_tos("yes").iter().all(|&t| t == 0));
    assert!(outer_tos("no").iter().all(|&t| t == 0x10));
}

/// Several flows at once through one SA, with as many TUN queues as `workers=` asks for: our
/// own threads never reorder an SA's packets, so the receiver's replay window drops none.
#[test]
fn parallel_flows_cause_no_replay_drops() {
    parallel_flows("\tworkers=4\n");
}

fn parallel_flows(setup: &str) {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let conf = manual_conf(BODY).replace(
        "\tinterfaces=%defaultroute\n",
        &format!("\tinterfaces=%defaultroute\n{setup}"),
    );
    t.start_gateway(&ga, &conf);
    t.start_gateway(&gb, &conf);
    assert!(ping(&t.ha, "10.0.2.10", 2, 2));
    let handles: Vec<_> = (0..4u16)
        .map(|i| {
            let (ha, hb) = (t.ha.clone(), t.hb.clone());
            std::thread::spawn(move || {
                let data = payload(3 * 1024 * 1024 + usize::from(i), b"flow");
                let (s, g, n) = tcp_transfer(&ha, &hb, Ipv4Addr::new(10, 0, 2, 10), 6000 + i, data);
                assert_eq!((s, n), (g, 3 * 1024 * 1024 + usize::from(i)));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for ns in [&ga, &gb] {
        let d = drops(&t, ns);
        assert_eq!(d.get("replay"), 0, "{}", t.ipsec_ok(ns, &["look"]));
    }
}

/// `interfaces="ipsec0=PHYS ipsec1=PHYS"` creates both devices, up, with the MTU from
/// `overridemtu` or the physical MTU minus the worst-case overhead; `ipsec tncfg` lists them.
#[test]
fn explicit_interfaces_and_mtu() {
    let mut t = Topo::new();
    let ga = t.ga.clone();
    let lan = format!("{}a1", t.p);
    let conf = format!(
        "version 2\nconfig setup\n\tinterfaces=\"ipsec0={} ipsec1={lan}\"\n",
        t.ga_out
    );
    t.start_gateway(&ga, &conf);
    let tncfg = t.ipsec_ok(&ga, &["tncfg"]);
    assert_eq!(
        tncfg,
        format!(
            "ipsec0 -> {} mtu=1355(1355) -> 1500\nipsec1 -> {lan} mtu=1355(1355) -> 1500\n",
            t.ga_out
        )
    );
    for dev in ["ipsec0", "ipsec1"] {
        let link = ns_must(&ga, &["ip", "-o", "link", "show", dev]);
        assert!(link.contains("mtu 1355") && link.contains(",UP"), "{link}");
    }
    let addr = ns_must(&ga, &["ip", "-o", "-4", "addr", "show", "dev", "ipsec1"]);
    assert!(addr.contains("10.0.1.1/24"), "{addr}");
    ns_must(
        &ga,
        &[
            ipsec_bin(),
            "--rundir",
            t.dir.path(&format!("{ga}.run")).to_str().unwrap(),
            "setup",
            "stop",
        ],
    );

    let mut t2 = Topo::new();
    let ga2 = t2.ga.clone();
    let conf = "version 2\nconfig setup\n\tinterfaces=%defaultroute\n\toverridemtu=1400\n";
    t2.start_gateway(&ga2, conf);
    let tncfg = t2.ipsec_ok(&ga2, &["tncfg"]);
    assert!(
        tncfg.starts_with("ipsec0 -> ") && tncfg.contains("mtu=1400(1400) -> 1500"),
        "{tncfg}"
    );
    // A bad interfaces= line is an error naming the file and line.
    let t3 = Topo::new();
    let ga3 = t3.ga.clone();
    let cfg = t3.dir.path("bad.conf");
    std::fs::write(&cfg, "version 2\nconfig setup\n\tinterfaces=\"eth0\"\n").unwrap();
    let out = ns_run(
        &ga3,
        &[
            ipsec_bin(),
            "--config",
            cfg.to_str().unwrap(),
            "--rundir",
            t3.dir.path("run").to_str().unwrap(),
            "setup",
            "start",
            "--nofork",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("{}:3:", cfg.display())), "{err}");
}
