//! Pluto between two rswan gateways in network namespaces: PSK and RSA Main Mode + Quick Mode,
//! algorithm/PFS/IPComp/AH variants, whack output and exit codes, status, road warrior, on-demand
//! (%trap) keying, make-before-break rekey, Delete, auto=start, rereadsecrets, garbage on UDP
//! 500/4500 and custom updown scripts.
//!
//! Each test builds its own topology and takes seconds, except `rekey_without_loss` (~30 s: a
//! paced transfer across rekeys) and `rereadsecrets_and_wrong_psk` (~75 s: an initiator only
//! learns of a PSK mismatch when Main Mode gives up after its retransmissions, 70 s).

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

const MARKER: &[u8] = b"RSWAN-IKE-CLEARTEXT-MARKER-91c4";
const SIZE: usize = 10 * 1024 * 1024 + 77;
const PSK: &str = "this is the shared secret of ike.rs";
const HB: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 10);

/// `ipsec.conf` with a net-to-net conn `net` (A's subnet 10.0.1.0/24 behind 192.0.2.1, B's
/// 10.0.2.0/24 behind 192.0.2.2) plus `body` lines (tab-indented, newline-terminated).
fn net_conf(body: &str) -> String {
    format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\nconn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n{body}"
    )
}

fn psk_line(psk: &str) -> String {
    format!("192.0.2.1 192.0.2.2 : PSK \"{psk}\"\n")
}

/// Both gateways with the same `conf` and the PSK secrets; nothing initiated yet.
fn psk_pair(conf: &str) -> Topo {
    gateway_pair(conf, conf, &psk_line(PSK), &psk_line(PSK))
}

/// Runs `ipsec auto --up CONN` on `ns`; returns (exit code, stdout+stderr).
fn up(t: &Topo, ns: &str, conn: &str) -> (i32, String) {
    let o = t.ipsec(ns, &["auto", "--up", conn]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

fn up_ok(t: &Topo, ns: &str, conn: &str) -> String {
    let (code, text) = up(t, ns, conn);
    assert_eq!(
        code,
        0,
        "ipsec auto --up {conn} failed: {text}\nlog {ns}:\n{}\nlog peer:\n{}",
        t.log(ns),
        t.log(if ns == t.ga { &t.gb } else { &t.ga })
    );
    text
}

fn status(t: &Topo, ns: &str) -> String {
    t.ipsec_ok(ns, &["auto", "--status"])
}

/// SAIDs (`esp0x…@…`, `ah…`, `comp…`) listed by `ipsec spi`.
fn spis(t: &Topo, ns: &str) -> Vec<String> {
    t.ipsec_ok(ns, &["spi"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Ping, a ≥10 MB TCP transfer host A → host B with matching hash, and a capture on the middle
/// link holding only IKE and ESP/AH — never the inner cleartext.
fn check_traffic(t: &Topo) {
    // IKEv1's last message (QI2) is not acknowledged: give the responder the moment it needs to
    // install its outbound SA, eroute and route.
    assert!(
        wait_until(Duration::from_secs(5), || t
            .ipsec_ok(&t.gb, &["eroute"])
            .contains("=> tun0x")),
        "responder has no tunnel eroute\n{}",
        t.log(&t.gb)
    );
    assert!(
        wait_until(Duration::from_secs(5), || ping(&t.ha, "10.0.2.10", 1, 1)),
        "no ping through the tunnel\nA:\n{}\nB:\n{}",
        t.log(&t.ga),
        t.log(&t.gb)
    );
    let o = ns_run(
        &t.ha,
        &["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.10"],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "ping lost packets: {text}\nA:\n{}\nB:\n{}\nspi A:\n{}\nspi B:\n{}",
        t.log(&t.ga),
        t.log(&t.gb),
        t.ipsec_ok(&t.ga, &["spi"]),
        t.ipsec_ok(&t.gb, &["spi"])
    );
    let cap = Capture::start(&t.ga, &t.ga_out, &t.dir.path("mid.pcap"));
    let port = 5100 + (std::process::id() % 500) as u16;
    let (sent, got, n) = tcp_transfer(&t.ha, &t.hb, HB, port, payload(SIZE, MARKER));
    let (lines, raw) = cap.stop();
    assert_eq!(n, SIZE, "short transfer");
    assert_eq!(sent, got, "transfer corrupted");
    check_wire(t, &lines, &raw, 200);
}

/// Every captured packet is IKE (UDP 500/4500) or ESP/AH; at least `min` IPsec packets; the
/// marker never appears. Panics with both gateways' logs and tables otherwise.
fn check_wire(t: &Topo, lines: &[String], raw: &[u8], min: usize) {
    let mut ipsec = 0;
    let mut problem = None;
    for l in lines {
        if l.contains(" ARP") || l.contains(" IP6 ") {
            continue;
        }
        let ike = l.contains(".500 > ")
            || l.contains(".4500 > ")
            || l.contains("isakmp")
            || l.contains("UDP-encap");
        if !(l.contains("ESP(") || l.contains("AH(") || ike) {
            problem = Some(format!("cleartext on the wire: {l}"));
            break;
        }
        if !ike {
            ipsec += 1;
        }
    }
    if problem.is_none() && ipsec < min {
        problem = Some(format!("capture saw only {ipsec} IPsec packets"));
    }
    if problem.is_none() && contains(raw, MARKER) {
        problem = Some("inner cleartext marker found on the wire".into());
    }
    if let Some(p) = problem {
        panic!("{p}\n{}", t.diag());
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Net-to-net, PSK and RSA, variants.

#[test]
fn psk_net_to_net() {
    let t = psk_pair(&net_conf("\tauthby=secret\n\tauto=add\n"));
    up_ok(&t, &t.ga, "net");
    check_traffic(&t);
    let st = status(&t, &t.gb);
    assert!(st.contains("STATE_QUICK_R2"), "{st}");
    assert!(st.contains("STATE_MAIN_R3"), "{st}");
}

/// Generates an RSA host key into `file` and returns the `ipsec showhostkey` line for `side`
/// (`left` or `right`), e.g. `leftrsasigkey=0sAw…`.
fn hostkey(file: &std::path::Path, side: &str) -> String {
    if !file.exists() {
        must(
            ipsec_bin(),
            &[
                "newhostkey",
                "--output",
                file.to_str().unwrap(),
                "--bits",
                "2048",
            ],
        );
    }
    let out = must(
        ipsec_bin(),
        &[
            "showhostkey",
            &format!("--{side}"),
            "--file",
            file.to_str().unwrap(),
        ],
    );
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{side}rsasigkey=0s")))
        .unwrap_or_else(|| panic!("showhostkey --{side}: {out}"))
        .to_string()
}

/// Both gateways with the same net-to-net conn, `authby=rsasig` and `extra` lines, each with its
/// own new RSA host key (its secrets file holds its private key exactly as newhostkey wrote it;
/// the conn names both public keys); nothing initiated yet.
fn rsa_pair(extra: &str) -> Topo {
    let keys = TempDir::new(&format!("{}-keys", unique_prefix()));
    let (ka, kb) = (keys.path("a.key"), keys.path("b.key"));
    let left = hostkey(&ka, "left");
    let right = hostkey(&kb, "right");
    let conf = net_conf(&format!(
        "\tauthby=rsasig\n{extra}\t{left}\n\t{right}\n\tauto=add\n"
    ));
    gateway_pair(
        &conf,
        &conf,
        &std::fs::read_to_string(&ka).unwrap(),
        &std::fs::read_to_string(&kb).unwrap(),
    )
}

#[test]
fn rsa_net_to_net() {
    let t = rsa_pair("");
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    up_ok(&t, &ga, "net");
    check_traffic(&t);
    for ns in [&ga, &gb] {
        let st = status(&t, ns);
        assert!(st.contains("policy: RSASIG+ENCRYPT+TUNNEL+PFS"), "{st}");
    }
    assert!(status(&t, &gb).contains("STATE_QUICK_R2"));
}

#[test]
fn rsa_wrong_public_key_is_refused() {
    // B is told a key for A that is not A's: B must refuse A's signature.
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let ka = t.dir.path("a.key");
    let kb = t.dir.path("b.key");
    let kx = t.dir.path("x.key");
    let left = hostkey(&ka, "left");
    let wrong_left = hostkey(&kx, "left");
    let right = hostkey(&kb, "right");
    write_secrets(&t, &ga, &std::fs::read_to_string(&ka).unwrap());
    write_secrets(&t, &gb, &std::fs::read_to_string(&kb).unwrap());
    t.start_gateway(
        &gb,
        &net_conf(&format!(
            "\tauthby=rsasig\n\t{wrong_left}\n\t{right}\n\tauto=add\n"
        )),
    );
    t.start_gateway(
        &ga,
        &net_conf(&format!(
            "\tauthby=rsasig\n\t{left}\n\t{right}\n\tauto=add\n"
        )),
    );
    let o = t.ipsec(&ga, &["auto", "--asynchronous", "--up", "net"]);
    assert!(o.status.success());
    assert!(
        wait_until(Duration::from_secs(5), || t
            .log(&gb)
            .contains("Signature check")),
        "B did not reject the signature:\n{}",
        t.log(&gb)
    );
    assert!(!status(&t, &gb).contains("STATE_MAIN_R3"));
    assert!(!status(&t, &ga).contains("STATE_QUICK_I2"));
}

#[test]
fn pfs_no() {
    let t = psk_pair(&net_conf("\tauthby=secret\n\tpfs=no\n\tauto=add\n"));
    up_ok(&t, &t.ga, "net");
    check_traffic(&t);
    for ns in [&t.ga, &t.gb] {
        let st = status(&t, ns);
        let pol = st
            .lines()
            .find(|l| l.contains("\"net\":") && l.contains("policy: "))
            .unwrap()
            .to_string();
        assert!(pol.contains("PSK+ENCRYPT+TUNNEL"), "{pol}");
        assert!(!pol.contains("PFS"), "pfs=no still negotiates PFS: {pol}");
    }
}

#[test]
fn pfs_mismatch_is_refused() {
    // The responder insists on PFS; an initiator with pfs=no gets no IPsec SA.
    let t = gateway_pair(
        &net_conf("\tauthby=secret\n\tpfs=no\n\tauto=add\n"),
        &net_conf("\tauthby=secret\n\tauto=add\n"),
        &psk_line(PSK),
        &psk_line(PSK),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let o = t.ipsec(&ga, &["auto", "--asynchronous", "--up", "net"]);
    assert!(o.status.success());
    assert!(
        wait_until(Duration::from_secs(5), || status(&t, &gb)
            .contains("STATE_MAIN_R3")),
        "{}",
        t.log(&gb)
    );
    assert!(
        wait_until(Duration::from_secs(5), || t
            .log(&gb)
            .contains("missing PFS group required by our policy")),
        "{}",
        t.log(&gb)
    );
    let st = status(&t, &gb);
    assert!(!st.contains("STATE_QUICK_R2"), "{st}\n{}", t.log(&gb));
}

#[test]
fn compress_yes() {
    let t = psk_pair(&net_conf("\tauthby=secret\n\tcompress=yes\n\tauto=add\n"));
    let out = up_ok(&t, &t.ga, "net");
    assert!(out.contains("IPCOMP=>0x"), "{out}");
    check_traffic(&t);
    // Compressible data is compressed.
    let mut data = Vec::with_capacity(SIZE);
    while data.len() < 2 * 1024 * 1024 {
        data.extend_from_slice(b"All work and no play makes Jack a dull boy. ");
    }
    let (sent, got, _) = tcp_transfer(&t.ha, &t.hb, HB, 5300, data);
    assert_eq!(sent, got);
    for ns in [&t.ga, &t.gb] {
        let spi = t.ipsec_ok(ns, &["spi"]);
        assert!(spi.contains("COMP_DEFLATE"), "no IPComp SA:\n{spi}");
        let grp = t.ipsec_ok(ns, &["spigrp"]);
        assert!(grp.contains(" comp0x"), "{grp}");
        let st = status(&t, ns);
        assert!(st.contains("COMPRESS"), "{st}");
        assert!(st.contains(" comp."), "{st}");
    }
    let spi = t.ipsec_ok(&t.ga, &["spi"]);
    let out_comp = spi
        .lines()
        .find(|l| l.contains("COMP_DEFLATE: dir=out"))
        .unwrap();
    let ratio = out_comp
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ratio="))
        .unwrap_or_else(|| panic!("nothing compressed: {out_comp}"));
    let (u, c) = ratio.split_once(':').unwrap();
    let (u, c): (u64, u64) = (u.parse().unwrap(), c.parse().unwrap());
    assert!(c * 2 < u, "poor compression {u}:{c}");
}

#[test]
fn auth_ah() {
    let t = psk_pair(&net_conf("\tauthby=secret\n\tauth=ah\n\tauto=add\n"));
    let out = up_ok(&t, &t.ga, "net");
    assert!(out.contains("AH=>0x"), "{out}");
    check_traffic(&t);
    for ns in [&t.ga, &t.gb] {
        let spi = t.ipsec_ok(ns, &["spi"]);
        assert!(
            spi.lines().filter(|l| l.starts_with("ah0x")).count() == 2,
            "no AH SAs:\n{spi}"
        );
        let st = status(&t, ns);
        assert!(st.contains("AUTHENTICATE"), "{st}");
    }
    // The wire carries AH.
    let cap = Capture::start(&t.ga, &t.ga_out, &t.dir.path("ah.pcap"));
    assert!(ping(&t.ha, "10.0.2.10", 2, 2));
    let (lines, _) = cap.stop();
    assert!(lines.iter().any(|l| l.contains("AH(")), "{lines:?}");
}

#[test]
fn explicit_algorithms() {
    let conf =
        net_conf("\tauthby=secret\n\tike=aes128-sha1-modp2048\n\tesp=aes128gcm16\n\tauto=add\n");
    // First B accepts only another IKE proposal: ike= is honoured by both sides.
    let t = gateway_pair(
        &conf,
        &net_conf("\tauthby=secret\n\tike=aes256-sha2_256-modp1536\n\tauto=add\n"),
        &psk_line(PSK),
        &psk_line(PSK),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let o = t.ipsec(&ga, &["auto", "--asynchronous", "--up", "net"]);
    assert!(o.status.success());
    assert!(
        wait_until(Duration::from_secs(5), || t
            .log(&gb)
            .contains("no acceptable Oakley Transform")),
        "{}",
        t.log(&gb)
    );
    assert!(
        t.log(&gb).contains("AES_CBC_128-SHA1-MODP2048") || t.log(&gb).contains("MODP2048"),
        "{}",
        t.log(&gb)
    );
    t.ipsec_ok(&ga, &["auto", "--down", "net"]);
    // Now the same algorithms on both sides.
    std::fs::write(t.dir.path(&format!("{gb}.conf")), &conf).unwrap();
    t.ipsec_ok(&gb, &["auto", "--replace", "net"]);
    up_ok(&t, &ga, "net");
    check_traffic(&t);
    for ns in [&ga, &gb] {
        let spi = t.ipsec_ok(ns, &["spi"]);
        assert!(
            spi.lines()
                .filter(|l| l.starts_with("esp0x") && l.contains("GCM"))
                .count()
                == 2,
            "esp=aes128gcm16 not used:\n{spi}"
        );
    }
}

#[test]
fn explicit_3des_sha1_modp1536() {
    let t = psk_pair(&net_conf(
        "\tauthby=secret\n\tike=3des-sha1-modp1536\n\tesp=3des-sha1\n\tauto=add\n",
    ));
    up_ok(&t, &t.ga, "net");
    check_traffic(&t);
    let spi = t.ipsec_ok(&t.gb, &["spi"]);
    assert!(spi.contains("ESP_3DES_HMAC_SHA1"), "{spi}");
}

// ---------------------------------------------------------------------------------------------
// 2. Whack output, exit codes, status.

/// The hex SPIs of `{ESP=>0xOUT <0xIN}` in an `ipsec auto --up` line.
fn esp_spis(up: &str) -> (u32, u32) {
    let l = up
        .lines()
        .find(|l| l.contains("{ESP=>0x"))
        .unwrap_or_else(|| panic!("no ESP SPIs in: {up}"));
    let out = l.split("ESP=>0x").nth(1).unwrap();
    let out: String = out.chars().take_while(char::is_ascii_hexdigit).collect();
    let inn = l.split(" <0x").nth(1).unwrap();
    let inn: String = inn.chars().take_while(char::is_ascii_hexdigit).collect();
    assert_eq!(
        (out.len(), inn.len()),
        (8, 8),
        "SPIs are printed as 0x%08x: {l}"
    );
    (
        u32::from_str_radix(&out, 16).unwrap(),
        u32::from_str_radix(&inn, 16).unwrap(),
    )
}

#[test]
fn whack_output_exit_codes_and_status() {
    let t = psk_pair(&net_conf("\tauthby=secret\n\tauto=add\n"));
    let (ga, gb) = (&t.ga, &t.gb);
    // Added, not up: the conn is listed, unrouted, no states.
    let st = status(&t, ga);
    assert!(
        st.contains("000 \"net\": 10.0.1.0/24===192.0.2.1...192.0.2.2===10.0.2.0/24; unrouted; eroute owner: #0"),
        "{st}"
    );
    assert!(!st.contains("#1:"), "{st}");

    let out = up_ok(&t, ga, "net");
    let want = [
        "104 \"net\" #1: STATE_MAIN_I1: initiate",
        "106 \"net\" #1: STATE_MAIN_I2: sent MI2, expecting MR2",
        "108 \"net\" #1: STATE_MAIN_I3: sent MI3, expecting MR3",
        "004 \"net\" #1: STATE_MAIN_I4: ISAKMP SA established",
        "112 \"net\" #2: STATE_QUICK_I1: initiate",
        "004 \"net\" #2: STATE_QUICK_I2: sent QI2, IPsec SA established {ESP=>0x",
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), want.len(), "{out}");
    for (l, w) in lines.iter().zip(want) {
        assert!(l.starts_with(w), "got {l:?}, want {w:?}\n{out}");
    }
    let (o, i) = esp_spis(&out);

    // Status, spec 5.8.
    let st = status(&t, ga);
    for l in st.lines() {
        assert!(l.starts_with("000 "), "{l}");
    }
    for w in [
        "000 interface ipsec0/",
        "000 \"net\": 10.0.1.0/24===192.0.2.1...192.0.2.2===10.0.2.0/24; erouted; eroute owner: #2",
        "000 \"net\":   policy: PSK+ENCRYPT+TUNNEL+PFS+UP; prio: 24,24; interface: ",
        "000 \"net\":   newest ISAKMP SA: #1; newest IPsec SA: #2; ",
        "000 #2: \"net\" STATE_QUICK_I2 (sent QI2, IPsec SA established); EVENT_SA_REPLACE in ",
        "000 #1: \"net\" STATE_MAIN_I4 (ISAKMP SA established); EVENT_SA_REPLACE in ",
    ] {
        assert!(st.contains(w), "missing {w:?} in\n{st}");
    }
    let saids = format!("\"net\" esp.{o:x}@192.0.2.2 esp.{i:x}@192.0.2.1 tun.");
    assert!(st.contains(&saids), "missing {saids:?} in\n{st}");
    // The SAIDs are the datapath's.
    let spi = t.ipsec_ok(ga, &["spi"]);
    assert!(spi.contains(&format!("esp0x{o:x}@192.0.2.2 ")), "{spi}");
    assert!(spi.contains(&format!("esp0x{i:x}@192.0.2.1 ")), "{spi}");
    let spi = t.ipsec_ok(gb, &["spi"]);
    assert!(spi.contains(&format!("esp0x{o:x}@192.0.2.2 ")), "{spi}");
    // The responder's view.
    let st = status(&t, gb);
    assert!(
        st.contains("000 \"net\": 10.0.2.0/24===192.0.2.2...192.0.2.1===10.0.1.0/24; erouted; eroute owner: #2"),
        "{st}"
    );
    assert!(
        st.contains("000 #2: \"net\" STATE_QUICK_R2 (IPsec SA established)"),
        "{st}"
    );
    assert!(
        st.contains("000 #1: \"net\" STATE_MAIN_R3 (sent MR3, ISAKMP SA established)"),
        "{st}"
    );
    assert!(
        st.contains(&format!(
            "\"net\" esp.{i:x}@192.0.2.1 esp.{o:x}@192.0.2.2 tun."
        )),
        "{st}"
    );
    // `ipsec whack --status` is the same report.
    let w = t.ipsec_ok(gb, &["whack", "--status"]);
    assert!(w.contains("STATE_QUICK_R2"), "{w}");

    // Unknown conn: 021 and a non-zero exit.
    let (code, text) = up(&t, ga, "nosuch");
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("021 "), "{text}");
    assert!(text.contains("nosuch"), "{text}");
    // A second --up of an established conn only does a new Quick Mode over the ISAKMP SA.
    let out = up_ok(&t, ga, "net");
    assert!(!out.contains("STATE_MAIN_I1"), "{out}");
    assert!(
        out.contains("112 \"net\" #3: STATE_QUICK_I1: initiate"),
        "{out}"
    );
    assert!(out.contains("004 \"net\" #3: STATE_QUICK_I2"), "{out}");
    // --down of a conn that was only added (not routed): no eroute, no route left.
    t.ipsec_ok(ga, &["auto", "--down", "net"]);
    assert!(spis(&t, ga).is_empty(), "{:?}", spis(&t, ga));
    let er = t.ipsec_ok(ga, &["eroute"]);
    assert!(er.trim().is_empty(), "{er}");
    let route = ns_must(ga, &["ip", "route", "show", "10.0.2.0/24"]);
    assert!(!route.contains("ipsec0"), "{route}");
    let st = status(&t, ga);
    assert!(st.contains("; unrouted; "), "{st}");
    assert!(!st.contains("#3:"), "{st}");
}

// ---------------------------------------------------------------------------------------------
// 3. Road warrior.

/// An IKEv1 road warrior: B's `right=%any` template gets an instance for gateway A, which
/// reaches host B's subnet (ping, 10 MB TCP, only IKE/ESP on the wire); A's `--down` removes
/// the instance on B.
#[test]
fn road_warrior() {
    road_warrior_case(1);
}

/// The road warrior of [`road_warrior`] with IKE `version` 1 or 2 (A says `keyexchange=`; B's
/// template accepts either).
fn road_warrior_case(version: u8) {
    // B accepts anyone knowing the RW PSK; its peer is only a host (no rightsubnet).
    let a = format!("version 2\nconfig setup\n\tinterfaces=%defaultroute\nconn rw\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tkeyexchange=ikev{version}\n\tauto=add\n");
    let b = "version 2\nconfig setup\n\tinterfaces=%defaultroute\nconn rw\n\tleft=192.0.2.2\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n";
    let t = gateway_pair(
        &a,
        b,
        &psk_line(PSK),
        &format!("192.0.2.2 %any : PSK \"{PSK}\"\n"),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let st = status(&t, &gb);
    assert!(
        st.contains("\"rw\": 10.0.2.0/24===192.0.2.2...%any; unrouted"),
        "{st}"
    );
    up_ok(&t, &ga, "rw");
    let st = status(&t, &gb);
    assert!(
        st.contains("\"rw\"[1]: 10.0.2.0/24===192.0.2.2...192.0.2.1; erouted"),
        "{st}"
    );
    let states: &[&str] = if version == 1 {
        &[
            "#2: \"rw\"[1] 192.0.2.1 STATE_QUICK_R2",
            "#1: \"rw\"[1] 192.0.2.1 STATE_MAIN_R3",
        ]
    } else {
        &["\"rw\"[1] 192.0.2.1 STATE_V2_ESTABLISHED_CHILD_SA"]
    };
    for state in states {
        assert!(st.contains(state), "{st}");
    }
    // Gateway A itself is the road warrior.
    assert!(
        wait_until(Duration::from_secs(5), || t
            .ipsec_ok(&gb, &["eroute"])
            .contains("10.0.2.0/24        -> 192.0.2.1/32")),
        "{}",
        t.ipsec_ok(&gb, &["eroute"])
    );
    assert!(ping(&ga, "10.0.2.10", 3, 3), "{}", t.log(&gb));
    let cap = Capture::start(&ga, &t.ga_out, &t.dir.path("rw.pcap"));
    let (sent, got, n) = tcp_transfer(&ga, &t.hb, HB, 5400, payload(SIZE, MARKER));
    let (lines, raw) = cap.stop();
    assert_eq!(n, SIZE);
    assert_eq!(sent, got);
    check_wire(&t, &lines, &raw, 200);
    // Down from the road warrior: the instance goes away on B.
    t.ipsec_ok(&ga, &["auto", "--down", "rw"]);
    assert!(
        wait_until(Duration::from_secs(5), || !status(&t, &gb)
            .contains("\"rw\"[1]")),
        "{}",
        status(&t, &gb)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. On demand.

#[test]
fn auto_route_keys_on_demand() {
    let t = gateway_pair(
        &net_conf("\tauthby=secret\n\tauto=route\n"),
        &net_conf("\tauthby=secret\n\tauto=add\n"),
        &psk_line(PSK),
        &psk_line(PSK),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let er = t.ipsec_ok(&ga, &["eroute"]);
    assert!(
        er.contains("10.0.1.0/24        -> 10.0.2.0/24        => %trap"),
        "{er}"
    );
    let st = status(&t, &ga);
    assert!(st.contains("prospective erouted"), "{st}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!status(&t, &gb).contains("#1:"), "{}", status(&t, &gb));
    // The first packet (one UDP datagram) triggers the negotiation; it is held and sent
    // through the tunnel once the SA is up.
    let (tx, rx) = std::sync::mpsc::channel();
    let hb = t.hb.clone();
    let listener = std::thread::spawn(move || {
        enter_netns(&hb);
        let s = std::net::UdpSocket::bind("0.0.0.0:7777").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 100];
        s.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
    });
    rx.recv().unwrap();
    in_netns(&t.ha, || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"first packet", "10.0.2.10:7777").unwrap();
    });
    let got = listener.join().unwrap();
    assert_eq!(
        got.as_deref(),
        Some(&b"first packet"[..]),
        "the trapped packet was not delivered\nA:\n{}\nB:\n{}\n{}",
        t.log(&ga),
        t.log(&gb),
        t.ipsec_ok(&ga, &["look"])
    );
    assert!(
        wait_until(Duration::from_secs(5), || ping(&t.ha, "10.0.2.10", 1, 1)),
        "no tunnel on demand\nA:\n{}\nB:\n{}",
        t.log(&ga),
        t.log(&gb)
    );
    // No narrow %hold is left behind.
    let er = t.ipsec_ok(&ga, &["eroute"]);
    assert!(!er.contains("%hold"), "{er}");
    assert!(t.log(&ga).contains("acquire: 10.0.1.10"), "{}", t.log(&ga));
    let er = t.ipsec_ok(&ga, &["eroute"]);
    assert!(
        er.contains("10.0.1.0/24        -> 10.0.2.0/24        => tun0x"),
        "{er}"
    );
    let st = status(&t, &ga);
    assert!(st.contains("STATE_QUICK_I2"), "{st}");
    assert!(st.contains("; erouted; "), "{st}");
    assert!(status(&t, &gb).contains("STATE_QUICK_R2"));
    check_traffic(&t);
}

// ---------------------------------------------------------------------------------------------
// 6. Down.

#[test]
fn down_deletes_on_both_sides() {
    let t = gateway_pair(
        &net_conf("\tauthby=secret\n\tauto=route\n"),
        &net_conf("\tauthby=secret\n\tauto=add\n"),
        &psk_line(PSK),
        &psk_line(PSK),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    up_ok(&t, &ga, "net");
    check_traffic(&t);
    let old_a = spis(&t, &ga);
    let old_b = spis(&t, &gb);
    assert_eq!(old_a.len(), 4, "{old_a:?}");
    assert_eq!(old_b.len(), 4, "{old_b:?}");
    let o = t.ipsec(&ga, &["auto", "--down", "net"]);
    assert!(o.status.success(), "{o:?}");
    assert!(spis(&t, &ga).is_empty(), "{:?}", spis(&t, &ga));
    // The peer honours the authenticated Delete.
    assert!(
        wait_until(Duration::from_secs(5), || spis(&t, &gb).is_empty()),
        "B kept {:?}\n{}",
        spis(&t, &gb),
        t.log(&gb)
    );
    assert!(
        t.log(&gb).contains("received Delete SA payload"),
        "{}",
        t.log(&gb)
    );
    let st = status(&t, &gb);
    assert!(!st.contains("STATE_QUICK_R2"), "{st}");
    // B (not routed by policy) drops its eroute and route with the SA.
    let er = t.ipsec_ok(&gb, &["eroute"]);
    assert!(!er.contains("10.0.2.0/24"), "{er}");
    let route = ns_must(&gb, &["ip", "route", "show", "10.0.1.0/24"]);
    assert!(!route.contains("ipsec0"), "{route}");
    // A was routed: its %trap stays, the route too.
    let er = t.ipsec_ok(&ga, &["eroute"]);
    assert!(
        er.contains("10.0.1.0/24        -> 10.0.2.0/24        => %trap"),
        "{er}"
    );
    let st = status(&t, &ga);
    assert!(st.contains("prospective erouted"), "{st}");
    assert!(!st.contains("+UP"), "{st}");
    let route = ns_must(&ga, &["ip", "route", "show", "10.0.2.0/24"]);
    assert!(route.contains("ipsec0"), "{route}");
    // Traffic triggers a new negotiation (the conn is still routed).
    assert!(
        wait_until(Duration::from_secs(10), || ping(&t.ha, "10.0.2.10", 1, 1)),
        "A:\n{}\nB:\n{}\n{}{}{}{}",
        t.log(&ga),
        t.log(&gb),
        t.ipsec_ok(&ga, &["look"]),
        t.ipsec_ok(&gb, &["look"]),
        status(&t, &ga),
        status(&t, &gb),
    );
    let now_a = spis(&t, &ga);
    assert!(
        now_a
            .iter()
            .all(|s| !old_a.contains(s) || s.starts_with("tun")),
        "{now_a:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. auto=start / auto=add, rereadsecrets, wrong PSK.

#[test]
fn auto_start_brings_the_tunnel_up_auto_add_does_not() {
    let mut t = gateway_pair(
        &net_conf("\tauthby=secret\n\tauto=add\n"),
        &net_conf("\tauthby=secret\n\tauto=add\n"),
        &psk_line(PSK),
        &psk_line(PSK),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    std::thread::sleep(Duration::from_millis(1500));
    for ns in [&ga, &gb] {
        let st = status(&t, ns);
        assert!(st.contains("\"net\": "), "{st}");
        assert!(!st.contains("#1:"), "auto=add negotiated by itself:\n{st}");
        assert!(spis(&t, ns).is_empty());
    }
    // A clean, quick stop (no SIGKILL after a timeout).
    let t0 = Instant::now();
    let o = t.ipsec(&ga, &["setup", "stop"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("stopped") && !text.contains("killed"),
        "{text}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "setup stop took {:?}",
        t0.elapsed()
    );
    // auto=start: up without anyone running --up.
    t.start_gateway(&ga, &net_conf("\tauthby=secret\n\tauto=start\n"));
    assert!(
        wait_until(Duration::from_secs(10), || status(&t, &ga)
            .contains("STATE_QUICK_I2 (sent QI2, IPsec SA established)")),
        "{}\n{}",
        status(&t, &ga),
        t.log(&ga)
    );
    check_traffic(&t);
}

/// Waits until `ns`'s datapath has no SAs.
fn wait_no_sas(t: &Topo, ns: &str) {
    assert!(
        wait_until(Duration::from_secs(5), || spis(t, ns).is_empty()),
        "{ns} kept {:?}",
        spis(t, ns)
    );
}

#[test]
fn rereadsecrets_and_wrong_psk() {
    let t = psk_pair(&net_conf("\tauthby=secret\n\tauto=add\n"));
    let (ga, gb) = (&t.ga, &t.gb);
    up_ok(&t, ga, "net");
    t.ipsec_ok(ga, &["auto", "--down", "net"]);
    wait_no_sas(&t, gb);
    // A new PSK on A only: the next Main Mode uses it, so B (old PSK) cannot authenticate A.
    write_secrets(&t, ga, &psk_line("a brand new secret"));
    let out = t.ipsec_ok(ga, &["auto", "--rereadsecrets"]);
    assert!(!out.contains("brand new"), "{out}");
    let t0 = Instant::now();
    let (code, text) = up(&t, ga, "net");
    eprintln!(
        "--up with a wrong PSK: exit {code} after {:?}",
        t0.elapsed()
    );
    assert_ne!(code, 0, "--up with mismatched PSKs succeeded: {text}");
    assert!(!text.contains("IPsec SA established"), "{text}");
    assert!(
        text.contains("031 \"net\" #")
            && text.contains("Possible authentication failure: no acceptable response to our first encrypted message"),
        "{text}"
    );
    let lb = t.log(gb);
    assert!(
        lb.contains("probable authentication failure (mismatch of preshared secrets?)")
            || lb.contains("received Hash Payload does not match computed value"),
        "no clear log line on B:\n{lb}"
    );
    assert!(!lb.contains("brand new"), "a secret was logged:\n{lb}");
    assert!(!t.log(ga).contains("brand new"));
    // Both daemons keep serving.
    for ns in [ga, gb] {
        assert!(t.ipsec(ns, &["look"]).status.success());
        assert!(!t.log(ns).contains("panicked"));
    }
    // B learns the new PSK too: --up works again.
    write_secrets(&t, gb, &psk_line("a brand new secret"));
    t.ipsec_ok(gb, &["auto", "--rereadsecrets"]);
    t.ipsec_ok(ga, &["auto", "--down", "net"]);
    up_ok(&t, ga, "net");
    let er = t.ipsec_ok(ga, &["eroute"]);
    let route = ns_must(ga, &["ip", "route", "show", "10.0.2.0/24"]);
    assert!(
        er.contains("=> tun0x") && route.contains("ipsec0"),
        "A not routed into the tunnel:\n{er}\n{route}\n{}",
        t.log(ga)
    );
    check_traffic(&t);
}

// ---------------------------------------------------------------------------------------------
// 8. Garbage on UDP 500 and 4500.

#[test]
fn garbage_to_ike_ports_is_dropped() {
    let t = psk_pair(&net_conf("\tauthby=secret\n\tauto=add\n"));
    let mut x: u64 = 0x2545f4914f6cdd1d;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let header = |len: u32, np: u8, exch: u8| -> Vec<u8> {
        let mut h = vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&[np, 0x10, exch, 0]);
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(&len.to_be_bytes());
        h
    };
    let mut bad: Vec<Vec<u8>> = vec![
        header(28, 1, 2)[..20].to_vec(), // truncated header
        random(1),
        random(300),
        random(1400),
        header(0xffff, 1, 2), // length beyond the datagram
        header(8, 1, 2),      // length shorter than the header
        header(28, 1, 2),     // SA payload announced, none present
        header(28, 0, 99),    // unknown exchange
    ];
    // A payload whose own length runs past the message.
    let mut p = header(28 + 8, 1, 2);
    p.extend_from_slice(&[0, 0, 0xff, 0xff, 0, 0, 0, 1]);
    bad.push(p);
    // A payload length of 0 (would loop forever in a careless parser).
    let mut p = header(28 + 8, 1, 2);
    p.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 1]);
    bad.push(p);
    // Version 3.0, version 2.0 (IKEv2) for an IKE SA nobody knows, and a Main Mode message with
    // a response cookie nobody knows.
    let mut p = header(28, 1, 2);
    p[17] = 0x30;
    bad.push(p);
    let mut p = header(28, 1, 2);
    p[17] = 0x20;
    bad.push(p);
    let mut p = header(28, 5, 2);
    p[8..16].copy_from_slice(&[9; 8]);
    bad.push(p);
    let mut on4500: Vec<Vec<u8>> = bad
        .iter()
        .map(|d| {
            let mut m = vec![0, 0, 0, 0];
            m.extend_from_slice(d);
            m
        })
        .collect();
    on4500.push(vec![0xff]); // NAT keepalive
    on4500.push(vec![0, 0, 0]); // too short for a marker
    on4500.push(random(100)); // ESP with an unknown SPI
    let a = Ipv4Addr::new(192, 0, 2, 1);
    for _ in 0..5 {
        send_udp(&t.gb, SocketAddrV4::new(a, 500), bad.clone());
        send_udp(&t.gb, SocketAddrV4::new(a, 4500), on4500.clone());
    }
    std::thread::sleep(Duration::from_millis(500));
    let la = t.log(&t.ga);
    assert!(!la.contains("panicked"), "{la}");
    assert!(t.ipsec(&t.ga, &["look"]).status.success());
    assert!(
        !status(&t, &t.ga).contains("#1:"),
        "garbage created a state"
    );
    // Each bad message is dropped, on 500 and (behind the marker) on 4500, and logged: at a
    // bounded rate (pluto::limits), so the first of each kind, not all 10.
    for w in [
        "message truncated; message dropped",
        "ISAKMP header length 8 is smaller than the header; message dropped",
        "bad length 0 of ISAKMP_NEXT_SA payload; message dropped",
        "bad length 65535 of ISAKMP_NEXT_SA payload; message dropped",
        "ISAKMP version 3.0 not supported; message dropped",
        "message for unknown IKE SA; dropped",
    ] {
        let n = la
            .lines()
            .filter(|l| l.contains(" packet from 192.0.2.2:") && l.ends_with(w))
            .count();
        assert!(n >= 1, "{w:?} not logged:\n{la}");
    }
    // Both the port-500 and the port-4500 garbage got that far (one sending socket each).
    let ports: std::collections::HashSet<&str> = la
        .lines()
        .filter_map(|l| l.split_once(" packet from 192.0.2.2:"))
        .filter_map(|(_, l)| l.split(':').next())
        .collect();
    assert!(ports.len() >= 2, "{la}");
    let lines = la
        .lines()
        .filter(|l| l.contains(" packet from 192.0.2.2:"))
        .count();
    let burst = rswan::pluto::limits::UNAUTH_LOG_LIMITS.per_source.burst as usize;
    assert!(lines <= burst + 2, "{lines} lines about garbage:\n{la}");
    up_ok(&t, &t.ga, "net");
    check_traffic(&t);
}

/// Sends each of `datagrams` over UDP from namespace `ns` to `dst`.
fn send_udp(ns: &str, dst: SocketAddrV4, datagrams: Vec<Vec<u8>>) {
    in_netns(ns, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
        for d in datagrams {
            s.send_to(&d, dst).expect("send udp");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 9. Custom updown.

#[test]
fn custom_updown_gets_the_pluto_environment() {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    write_secrets(&t, &ga, &psk_line(PSK));
    write_secrets(&t, &gb, &psk_line(PSK));
    let script = t.dir.path("updown.sh");
    let rec = t.dir.path("updown.rec");
    let write_script = |body: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&script, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write_script(&format!(
        "{{ echo \"== $PLUTO_VERB\"; env | grep '^PLUTO_' | sort; }} >> {}\nexec {} _updown\n",
        rec.display(),
        ipsec_bin()
    ));
    t.start_gateway(&gb, &net_conf("\tauthby=secret\n\tauto=add\n"));
    t.start_gateway(
        &ga,
        &net_conf(&format!(
            "\tauthby=secret\n\tleftupdown={}\n\tauto=add\n",
            script.display()
        )),
    );
    up_ok(&t, &ga, "net");
    check_traffic(&t);
    let r = std::fs::read_to_string(&rec).unwrap_or_default();
    let section = |verb: &str| -> String {
        r.split("== ")
            .find(|s| s.starts_with(&format!("{verb}\n")))
            .unwrap_or_else(|| panic!("updown never ran {verb}:\n{r}"))
            .to_string()
    };
    for verb in ["route-client", "up-client"] {
        let s = section(verb);
        for want in [
            format!("PLUTO_VERB={verb}"),
            "PLUTO_VERSION=1.1".into(),
            "PLUTO_CONNECTION=net".into(),
            "PLUTO_INTERFACE=ipsec0".into(),
            "PLUTO_ME=192.0.2.1".into(),
            "PLUTO_PEER=192.0.2.2".into(),
            "PLUTO_NEXT_HOP=192.0.2.2".into(),
            "PLUTO_MY_CLIENT=10.0.1.0/24".into(),
            "PLUTO_MY_CLIENT_NET=10.0.1.0".into(),
            "PLUTO_MY_CLIENT_MASK=255.255.255.0".into(),
            "PLUTO_PEER_CLIENT=10.0.2.0/24".into(),
            "PLUTO_PEER_CLIENT_NET=10.0.2.0".into(),
            "PLUTO_PEER_CLIENT_MASK=255.255.255.0".into(),
        ] {
            assert!(s.lines().any(|l| l == want), "{verb}: missing {want}:\n{s}");
        }
    }
    // route before up.
    assert!(r.find("== route-client").unwrap() < r.find("== up-client").unwrap());
    assert!(!r.contains("== down-client"));
    t.ipsec_ok(&ga, &["auto", "--down", "net"]);
    let r = std::fs::read_to_string(&rec).unwrap_or_default();
    assert!(r.contains("== down-client\n"), "{r}");
    assert!(r.contains("PLUTO_VERB=down-client"), "{r}");

    // A failing script: its output and exit status are logged; the daemon carries on.
    write_script(&format!(
        "echo \"updown says hello to $PLUTO_VERB\"\n[ \"$PLUTO_VERB\" = up-client ] && exit 1\nexec {} _updown\n",
        ipsec_bin()
    ));
    let _ = up(&t, &ga, "net");
    let la = t.log(&ga);
    assert!(
        la.contains("up-client output: updown says hello to up-client"),
        "{la}"
    );
    assert!(
        la.contains("up-client command exited with status 1"),
        "{la}"
    );
    assert!(t.ipsec(&ga, &["look"]).status.success());
}

// ---------------------------------------------------------------------------------------------
// 5. Rekey without loss.

/// Sends `data` over TCP from `from` to host B at about `rate` bytes/s; returns (sent hash,
/// received hash, bytes received, longest gap between reads at the receiver).
fn paced_transfer(t: &Topo, port: u16, data: Vec<u8>, rate: usize) -> (u64, u64, usize, Duration) {
    use std::io::{Read, Write};
    let (tx, rx) = std::sync::mpsc::channel();
    let hb = t.hb.clone();
    let server = std::thread::spawn(move || {
        enter_netns(&hb);
        let l = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
        tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 65536];
        let mut last = Instant::now();
        let mut gap = Duration::ZERO;
        loop {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    gap = gap.max(last.elapsed());
                    last = Instant::now();
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
        (buf, gap)
    });
    rx.recv().unwrap();
    let sent = hash(&data);
    let ha = t.ha.clone();
    in_netns(&ha, move || {
        let mut s = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::V4(SocketAddrV4::new(HB, port)),
            Duration::from_secs(10),
        )
        .expect("connect through the tunnel");
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        let t0 = Instant::now();
        let mut off = 0;
        while off < data.len() {
            let allowed = (t0.elapsed().as_secs_f64() * rate as f64) as usize;
            if allowed <= off {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let end = allowed.min(data.len()).min(off + 65536);
            s.write_all(&data[off..end])
                .expect("send through the tunnel");
            off = end;
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let (got, gap) = server.join().unwrap();
    (sent, hash(&got), got.len(), gap)
}

/// IKEv1 rekeys during a paced 10 MB TCP transfer lose nothing: Quick Mode replaces the IPsec
/// SA at 10 s and 20 s, Main Mode the ISAKMP SA at 20 s; the first SAs are gone from both sides
/// after their 20 s.
#[test]
fn rekey_without_loss() {
    rekey_without_loss_case(1);
}

/// Both versions' rekeys during a paced 10 MB TCP transfer ([`rekey_without_loss`],
/// [`ikev2_rekey_without_loss`]): no data lost, no stall over 3 s, only IKE/ESP on the wire,
/// each version's rekey log lines, the first SAs expired on both sides.
fn rekey_without_loss_case(version: u8) {
    let t = psk_pair(&net_conf(&format!(
        "\tauthby=secret\n\tkeyexchange=ikev{version}\n\tkeylife=20s\n\trekeymargin=10s\n\trekeyfuzz=0%\n\tikelifetime=30s\n\tauto=add\n",
    )));
    let (ga, gb) = (&t.ga, &t.gb);
    let out = up_ok(&t, ga, "net");
    let (first_out, first_in) = esp_spis(&out);
    let first = newest_ipsec(&status(&t, ga));
    assert!(
        wait_until(Duration::from_secs(5), || t
            .ipsec_ok(gb, &["eroute"])
            .contains("=> tun0x")),
        "{}",
        t.log(gb)
    );
    let cap = Capture::start(ga, &t.ga_out, &t.dir.path("rekey.pcap"));
    let t0 = Instant::now();
    // 10 MB over ~27 s: across the IPsec rekeys at 10 s and 20 s and the ISAKMP one at 20 s.
    let port = 5600 + 100 * u16::from(version - 1);
    let (sent, got, n, gap) = paced_transfer(&t, port, payload(SIZE, MARKER), SIZE / 27);
    let took = t0.elapsed();
    let (lines, raw) = cap.stop();
    eprintln!("paced transfer: {n} bytes in {took:?}, longest stall {gap:?}");
    assert_eq!(n, SIZE, "short transfer\n{}\n{}", t.log(ga), t.log(gb));
    assert_eq!(sent, got, "transfer corrupted");
    assert!(took > Duration::from_secs(25), "{took:?}");
    assert!(
        gap < Duration::from_secs(3),
        "the transfer stalled for {gap:?} around a rekey\n{}\n{}",
        t.log(ga),
        t.log(gb)
    );
    check_wire(&t, &lines, &raw, 200);
    let st = status(&t, ga);
    let newest = newest_ipsec(&st);
    assert!(newest > first, "no newer IPsec SA than #{first}:\n{st}");
    let la = t.log(ga);
    let lb = t.log(gb);
    let expected: Vec<(&str, String)> = if version == 1 {
        vec![
            (
                la.as_str(),
                format!("initiating Quick Mode PSK+ENCRYPT+TUNNEL+PFS+UP to replace #{first}"),
            ),
            (
                la.as_str(),
                format!("#{first}: IPsec SA expiring soon: replacing"),
            ),
            (la.as_str(), "#1: ISAKMP SA expiring soon: replacing".into()),
            (la.as_str(), "initiating Main Mode to replace #1".into()),
        ]
    } else {
        vec![
            (
                la.as_str(),
                format!("initiating CREATE_CHILD_SA to replace #{first}"),
            ),
            (
                la.as_str(),
                "initiating CREATE_CHILD_SA to rekey IKE SA #1".into(),
            ),
            (la.as_str(), "IKE SA established (rekeyed #1)".into()),
            (lb.as_str(), "IKE SA #1 rekeyed by the peer".into()),
        ]
    };
    for (log, line) in expected {
        assert!(log.contains(&line), "missing {line:?} in\n{log}");
    }
    // The first SAs are gone (expired) on both sides, newer ones carry the traffic.
    for ns in [ga, gb] {
        let s = spis(&t, ns);
        for spi in [first_out, first_in] {
            assert!(
                !s.iter().any(|x| x.starts_with(&format!("esp0x{spi:x}@"))),
                "{ns}: the first SA {spi:x} outlived its 20 s: {s:?}"
            );
        }
        assert!(
            s.iter().any(|x| x.starts_with("esp0x")),
            "{ns}: no SAs left"
        );
    }
    assert!(ping(&t.ha, "10.0.2.10", 3, 3));
}

#[test]
fn no_cleartext_right_after_up() {
    // The initiator sends as soon as `--up` returns (QI2 sent); the responder may still be
    // processing QI2. Host B's replies must not leave gateway B in the clear meanwhile.
    let t = psk_pair(&net_conf("\tauthby=secret\n\tauto=add\n"));
    let cap = Capture::start(&t.ga, &t.ga_out, &t.dir.path("race.pcap"));
    up_ok(&t, &t.ga, "net");
    ns_run(
        &t.ha,
        &[
            "ping",
            "-n",
            "-c",
            "20",
            "-i",
            "0.01",
            "-W",
            "1",
            "10.0.2.10",
        ],
    );
    let (lines, raw) = cap.stop();
    check_wire(&t, &lines, &raw, 10);
}

// ---------------------------------------------------------------------------------------------
// 9. SA usage (rekey=no, DPD, `used Ns ago`), --status completeness, stale shunts,
// RESPONDER-LIFETIME.

/// Pings 10.0.2.10 from host A every 0.2 s for about `secs` seconds; returns the replies.
fn ping_for(t: &Topo, secs: u32) -> u32 {
    ping_replies(&t.ha, "10.0.2.10", secs * 5, 1).0
}

/// rekey=no (spec 7): the initiator schedules EVENT_SA_REPLACE_IF_USED, the responder
/// EVENT_SA_EXPIRE. An idle IPsec SA is not replaced and is gone on both sides at its 20 s
/// lifetime; one carrying traffic is replaced at 10 s (the keying thread reports SA usage).
#[test]
fn rekey_no_replaces_only_used_sas() {
    let t = psk_pair(&net_conf(
        "\tauthby=secret\n\trekey=no\n\tkeylife=20s\n\trekeymargin=10s\n\trekeyfuzz=0%\n\tauto=add\n",
    ));
    let (ga, gb) = (&t.ga, &t.gb);
    up_ok(&t, ga, "net");
    let first = newest_ipsec(&status(&t, ga));
    let st = status(&t, ga);
    assert!(
        st.contains(&format!(
            "000 #{first}: \"net\" STATE_QUICK_I2 (sent QI2, IPsec SA established); EVENT_SA_REPLACE_IF_USED in "
        )),
        "{st}"
    );
    assert!(
        st.contains("policy: PSK+ENCRYPT+TUNNEL+PFS+DONTREKEY+UP;"),
        "{st}"
    );
    let st = status(&t, gb);
    assert!(
        st.contains("STATE_QUICK_R2 (IPsec SA established); EVENT_SA_EXPIRE in "),
        "{st}"
    );
    // Idle: expires on both sides, not replaced.
    assert!(
        wait_until(Duration::from_secs(30), || spis(&t, ga).is_empty()
            && spis(&t, gb).is_empty()),
        "idle SAs outlived their 20 s\n{}",
        t.diag()
    );
    let la = t.log(ga);
    assert!(
        la.contains(&format!(
            "#{first}: not replacing stale IPsec SA: inactive for "
        )),
        "{la}"
    );
    assert!(!la.contains(&format!("to replace #{first}")), "{la}");
    // Up again, with traffic: replaced at 10 s, the traffic goes on across it.
    up_ok(&t, ga, "net");
    let second = newest_ipsec(&status(&t, ga));
    assert!(
        wait_until(Duration::from_secs(5), || ping(&t.ha, "10.0.2.10", 1, 1)),
        "{}",
        t.diag()
    );
    let got = ping_for(&t, 14);
    assert!(got >= 60, "only {got} of 70 pings answered\n{}", t.diag());
    let la = t.log(ga);
    assert!(
        la.contains(&format!("#{second}: replacing stale IPsec SA: in use")),
        "{la}"
    );
    assert!(
        la.contains(&format!(
            "initiating Quick Mode PSK+ENCRYPT+TUNNEL+PFS+DONTREKEY+UP to replace #{second}"
        )),
        "{la}"
    );
    assert!(newest_ipsec(&status(&t, ga)) > second);
    // The second line of a used IPsec SA says when it was last used (spec 5.8).
    let st = status(&t, ga);
    assert!(
        st.lines().any(|l| l.starts_with("000 #")
            && l.contains(" \"net\" used ")
            && l.contains("s ago; esp.")),
        "{st}"
    );
}

/// DPD (RFC 3706 / Openswan): no R_U_THERE while the peer's traffic keeps arriving; probes
/// (answered) once the tunnel is idle for dpddelay.
#[test]
fn dpd_probes_only_an_idle_peer() {
    let t = psk_pair(&net_conf(
        "\tauthby=secret\n\tdpddelay=3s\n\tdpdtimeout=30s\n\tdpdaction=clear\n\tauto=add\n",
    ));
    up_ok(&t, &t.ga, "net");
    assert!(
        wait_until(Duration::from_secs(5), || ping(&t.ha, "10.0.2.10", 1, 1)),
        "{}",
        t.diag()
    );
    let ike = |lines: &[String], from: &str| {
        lines
            .iter()
            .filter(|l| l.contains(&format!("{from}.500 > ")))
            .count()
    };
    let cap = Capture::start(&t.ga, &t.ga_out, &t.dir.path("dpd-busy.pcap"));
    let got = ping_for(&t, 10);
    let (busy, _) = cap.stop();
    assert!(got >= 45, "only {got} of 50 pings answered\n{}", t.diag());
    assert_eq!(
        ike(&busy, "192.0.2.1") + ike(&busy, "192.0.2.2"),
        0,
        "DPD probed a peer whose traffic was arriving:\n{}\n{}",
        busy.join("\n"),
        t.diag()
    );
    let cap = Capture::start(&t.ga, &t.ga_out, &t.dir.path("dpd-idle.pcap"));
    std::thread::sleep(Duration::from_secs(10));
    let (idle, _) = cap.stop();
    assert!(
        ike(&idle, "192.0.2.1") >= 2 && ike(&idle, "192.0.2.2") >= 2,
        "no R_U_THERE / R_U_THERE_ACK while idle:\n{}",
        idle.join("\n")
    );
    assert!(ping(&t.ha, "10.0.2.10", 3, 3), "{}", t.diag());
    assert!(!t.log(&t.ga).contains("declaring peer dead"));
}

/// --status (spec 5.8): the algorithm lines, a Quick Mode waiting for its ISAKMP SA
/// (`pending Phase 2`), the trapped packet's `%hold` in the bare shunt section, then the
/// negotiated algorithms and `used Ns ago` once up.
#[test]
fn status_algorithms_pending_phase2_and_bare_shunts() {
    // B does not know the conn yet: A's Main Mode stays in MAIN_I1.
    let t = gateway_pair(
        &net_conf("\tauthby=secret\n\tauto=route\n"),
        &net_conf("\tauthby=secret\n\tauto=ignore\n"),
        &psk_line(PSK),
        &psk_line(PSK),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    in_netns(&t.ha, || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"trapped", "10.0.2.10:7777").unwrap();
    });
    let hold = "000 10.0.1.10/32:0 -0-> 10.0.2.10/32:0 => %hold 0    acquire";
    assert!(
        wait_until(Duration::from_secs(5), || status(&t, &ga).contains(hold)),
        "{}",
        status(&t, &ga)
    );
    let st = status(&t, &ga);
    let lines: Vec<&str> = st.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("000 #1: \"net\" STATE_MAIN_I1"))
        .unwrap_or_else(|| panic!("{st}"));
    assert_eq!(
        lines[i + 1..],
        [
            "000 #1: pending Phase 2 for \"net\" replacing #0",
            "000  ",
            hold,
            "000  "
        ],
        "{st}"
    );
    let debug = lines.iter().position(|l| *l == "000 debug none").unwrap();
    assert_eq!(lines[debug + 1], "000  ");
    assert_eq!(
        lines[debug + 2],
        "000 algorithm ESP encrypt: id=3, name=ESP_3DES, ivlen=64, keysizemin=168, keysizemax=168"
    );
    for w in [
        "000 algorithm ESP auth attr: id=5, name=AUTH_ALGORITHM_HMAC_SHA2_256, keysizemin=256, keysizemax=256",
        "000 algorithm IKE encrypt: id=7, name=OAKLEY_AES_CBC, blocksize=16, keydeflen=128",
        "000 algorithm IKE hash: id=2, name=OAKLEY_SHA1, hashsize=20",
        "000 algorithm IKE dh group: id=5, name=OAKLEY_GROUP_MODP1536, bits=1536",
    ] {
        assert!(lines.contains(&w), "missing {w:?} in\n{st}");
    }
    assert!(t.ipsec_ok(&ga, &["eroute"]).contains("%hold"));
    // B learns the conn; A's next MI1 retransmission gets through and the held packet leaves
    // through the tunnel.
    t.ipsec_ok(&gb, &["auto", "--add", "net"]);
    assert!(
        wait_until(Duration::from_secs(25), || status(&t, &ga)
            .contains("STATE_QUICK_I2")),
        "{}",
        t.diag()
    );
    let st = status(&t, &ga);
    assert!(!st.contains("pending Phase 2"), "{st}");
    assert!(!st.contains("%hold"), "{st}");
    assert!(
        st.contains("000 \"net\":   IKE algorithm newest: AES_CBC_128-SHA2_256-MODP2048"),
        "{st}"
    );
    assert!(
        st.contains(
            "000 \"net\":   ESP algorithm newest: AES_128-HMAC_SHA2_256; pfsgroup=<Phase1>"
        ),
        "{st}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || ping(&t.ha, "10.0.2.10", 1, 1)),
        "{}",
        t.diag()
    );
    assert!(
        wait_until(Duration::from_secs(3), || status(&t, &ga).lines().any(
            |l| l.starts_with("000 #2: \"net\" used ") && l.contains("s ago; esp.")
        )),
        "{}",
        status(&t, &ga)
    );
}

/// Stale shunts (spec 4), with shuntscaninterval=2s: the `%hold` of an acquire no routed conn
/// covers is a bare shunt in `--status` and deleted by the shunt scan a scan interval later; a
/// `%hold` Pluto never heard of is found by the scan and handled like an acquire: dropped the
/// same way if nothing covers it, negotiated (and its packet released into the tunnel) if a
/// routed conn does.
#[test]
fn stale_holds_are_swept() {
    let t = gateway_pair(
        &net_conf("\tauthby=secret\n\tauto=route\n").replace(
            "\tinterfaces=%defaultroute\n",
            "\tinterfaces=%defaultroute\n\tshuntscaninterval=2s\n",
        ),
        &net_conf("\tauthby=secret\n\tauto=add\n"),
        &psk_line(PSK),
        &psk_line(PSK),
    );
    let ga = t.ga.clone();
    // A %trap nobody's conn covers (made by hand), and a route into ipsec0 for it.
    t.ipsec_ok(
        &ga,
        &[
            "eroute",
            "--add",
            "--eraf",
            "inet",
            "--src",
            "10.0.1.0/24",
            "--dst",
            "10.9.0.0/16",
            "--said",
            "%trap",
        ],
    );
    ns_must(&ga, &["ip", "route", "add", "10.9.0.0/16", "dev", "ipsec0"]);
    ns_run(&t.ha, &["ping", "-n", "-c", "1", "-W", "1", "10.9.0.5"]);
    let bare = "000 10.0.1.10/32:0 -0-> 10.9.0.5/32:0 => %hold 0    no routed connection covers it";
    assert!(
        wait_until(Duration::from_secs(3), || status(&t, &ga).contains(bare)),
        "{}\n{}",
        status(&t, &ga),
        t.log(&ga)
    );
    assert!(t.log(&ga).contains(
        "acquire from 10.0.1.10 to 10.9.0.5: no routed connection covers it; %hold kept as a bare shunt until the next shunt scan"
    ));
    assert!(
        wait_until(Duration::from_secs(8), || !t
            .ipsec_ok(&ga, &["eroute"])
            .contains("%hold")),
        "{}",
        t.ipsec_ok(&ga, &["eroute"])
    );
    assert!(t.log(&ga).contains(
        "expire bare shunt 10.0.1.10/32:0 -0-> 10.9.0.5/32:0 => %hold (no routed connection covers it)"
    ));
    assert!(!status(&t, &ga).contains("%hold"));
    let er = t.ipsec_ok(&ga, &["eroute"]);
    assert!(
        er.contains("10.0.1.0/24        -> 10.9.0.0/16        => %trap"),
        "{er}"
    );
    // Orphaned %holds (as if their acquires had been lost): one nothing covers, one the routed
    // conn covers.
    for dst in ["10.9.0.7/32", "10.0.2.10/32"] {
        t.ipsec_ok(
            &ga,
            &[
                "eroute",
                "--add",
                "--eraf",
                "inet",
                "--src",
                "10.0.1.10/32",
                "--dst",
                dst,
                "--said",
                "%hold",
            ],
        );
    }
    assert!(
        wait_until(Duration::from_secs(12), || {
            let er = t.ipsec_ok(&ga, &["eroute"]);
            !er.contains("%hold")
                && er.contains("10.0.1.0/24        -> 10.0.2.0/24        => tun0x")
        }),
        "{}\n{}",
        t.ipsec_ok(&ga, &["eroute"]),
        t.diag()
    );
    let la = t.log(&ga);
    assert!(
        la.contains("acquire from 10.0.1.10 to 10.9.0.7: no routed connection covers it"),
        "{la}"
    );
    assert!(
        la.contains("expire bare shunt 10.0.1.10/32:0 -0-> 10.9.0.7/32:0 => %hold"),
        "{la}"
    );
    assert!(
        la.contains(
            "\"net\": initiate on demand from 10.0.1.10:0 to 10.0.2.10:0 because: %hold found"
        ),
        "{la}"
    );
    assert!(ping(&t.ha, "10.0.2.10", 3, 3), "{}", t.diag());
}

/// RESPONDER-LIFETIME (RFC 2407 4.6.3.1): B (keylife 30 s) shortens A's proposed 1 h and says
/// so in QR1; A uses the 30 s (and so rekeys well before B's SA expires).
#[test]
fn responder_lifetime_shortens_the_initiators_sa() {
    let t = gateway_pair(
        &net_conf("\tauthby=secret\n\tkeylife=1h\n\tauto=add\n"),
        &net_conf("\tauthby=secret\n\tkeylife=30s\n\tauto=add\n"),
        &psk_line(PSK),
        &psk_line(PSK),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    up_ok(&t, &ga, "net");
    assert!(
        t.log(&gb).contains(
            "IPsec SA lifetime shortened to 30s (peer proposed 3600s): sending RESPONDER-LIFETIME"
        ),
        "{}",
        t.log(&gb)
    );
    assert!(
        t.log(&ga)
            .contains("received RESPONDER-LIFETIME: IPsec SA lifetime 30s"),
        "{}",
        t.log(&ga)
    );
    // The rekey margin (540 s) exceeds 30 s: A replaces at half the lifetime.
    let st = status(&t, &ga);
    let secs: u64 = st
        .lines()
        .find(|l| l.contains("STATE_QUICK_I2"))
        .and_then(|l| l.split("EVENT_SA_REPLACE in ").nth(1))
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{st}"));
    assert!(secs <= 15, "{st}");
    check_traffic(&t);
}

/// `left=`/`right=` may be host names, resolved when the conn is loaded (here from the
/// namespace's `/etc/hosts`, which `ip netns exec` takes from `/etc/netns/NS/hosts`); a name
/// that does not resolve is refused with the conn's file and line.
#[test]
fn host_names_in_left_and_right() {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let _etc = NetnsEtc::hosts(
        &[&ga, &gb],
        "127.0.0.1 localhost
192.0.2.1 gw-a.rswan.test
192.0.2.2 gw-b.rswan.test
",
    );
    let conf = net_conf("\tauthby=secret\n\tauto=add\n")
        .replace("left=192.0.2.1", "left=gw-a.rswan.test")
        .replace("right=192.0.2.2", "right=gw-b.rswan.test")
        + "\nconn lost\n\tleft=192.0.2.1\n\tright=nowhere.rswan.test\n\tauthby=secret\n\tauto=ignore\n";
    write_secrets(&t, &ga, &psk_line(PSK));
    write_secrets(&t, &gb, &psk_line(PSK));
    t.start_gateway(&gb, &conf);
    t.start_gateway(&ga, &conf);
    up_ok(&t, &ga, "net");
    let st = status(&t, &ga);
    assert!(
        st.contains("\"net\": 10.0.1.0/24===192.0.2.1...192.0.2.2===10.0.2.0/24; erouted"),
        "{st}"
    );
    check_traffic(&t);
    let o = t.ipsec(&ga, &["auto", "--add", "lost"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains(".conf:")
            && text.contains(
                "right=\"nowhere.rswan.test\" is neither an IP address nor a host name that resolves to one"
            ),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// IKEv2.

/// IKEv2 PSK between two rswan gateways: IKE_SA_INIT + IKE_AUTH bring up the IKE SA and the
/// first child SA (whack progress lines and exit code 0), ping and a 10 MB TCP transfer go
/// through with only IKE and ESP on the wire, `--status` shows the STATE_V2_* states on both
/// sides, and `auto --down` removes the SAs on both sides (INFORMATIONAL Delete).
#[test]
fn ikev2_psk_net_to_net_and_down() {
    let t = psk_pair(&net_conf(
        "\tauthby=secret\n\tkeyexchange=ikev2\n\tauto=add\n",
    ));
    let out = up_ok(&t, &t.ga, "net");
    for line in [
        "130 \"net\" #1: STATE_V2_PARENT_I1: sent IKE_SA_INIT request",
        "131 \"net\" #1: STATE_V2_PARENT_I2: sent IKE_AUTH request",
        "004 \"net\" #2: STATE_V2_ESTABLISHED_CHILD_SA: IPsec SA established {ESP=>0x",
    ] {
        assert!(out.contains(line), "missing {line}:\n{out}");
    }
    check_traffic(&t);
    for (ns, role) in [(&t.ga, "initiator"), (&t.gb, "responder")] {
        let st = status(&t, ns);
        assert!(
            st.contains("STATE_V2_ESTABLISHED_IKE_SA")
                && st.contains("STATE_V2_ESTABLISHED_CHILD_SA"),
            "{role}:\n{st}"
        );
    }
    let st = status(&t, &t.ga);
    assert!(
        st.contains("IKE algorithm newest: AES_GCM_16_256-SHA2_256-CURVE25519"),
        "{st}"
    );
    let o = t.ipsec(&t.ga, &["auto", "--down", "net"]);
    assert!(o.status.success(), "{o:?}");
    assert!(spis(&t, &t.ga).is_empty(), "{:?}", spis(&t, &t.ga));
    assert!(
        wait_until(Duration::from_secs(5), || spis(&t, &t.gb).is_empty()),
        "B kept {:?}\n{}",
        spis(&t, &t.gb),
        t.log(&t.gb)
    );
    let st = status(&t, &t.gb);
    assert!(!st.contains("STATE_V2_"), "{st}");
}

/// IKEv2 rekeys during a paced 10 MB TCP transfer lose nothing: CREATE_CHILD_SA replaces the
/// child SA at 10 s and 20 s (make-before-break), CREATE_CHILD_SA rekeys the IKE SA at 20 s
/// (the child SAs move to the new IKE SA); the first SAs are gone from both sides after their
/// 20 s.
#[test]
fn ikev2_rekey_without_loss() {
    rekey_without_loss_case(2);
}

/// `auto=route` with IKEv2: the %trap eroute's first packet starts IKE_SA_INIT, is held and
/// delivered through the tunnel once the child SA is up.
#[test]
fn ikev2_auto_route_keys_on_demand() {
    let t = gateway_pair(
        &net_conf("\tauthby=secret\n\tkeyexchange=ikev2\n\tauto=route\n"),
        &net_conf("\tauthby=secret\n\tauto=add\n"),
        &psk_line(PSK),
        &psk_line(PSK),
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let er = t.ipsec_ok(&ga, &["eroute"]);
    assert!(er.contains("=> %trap"), "{er}");
    assert!(
        wait_until(Duration::from_secs(10), || ping(&t.ha, "10.0.2.10", 1, 1)),
        "no tunnel on demand\nA:\n{}\nB:\n{}",
        t.log(&ga),
        t.log(&gb)
    );
    assert!(t.log(&ga).contains("acquire: 10.0.1.10"), "{}", t.log(&ga));
    let st = status(&t, &ga);
    assert!(st.contains("STATE_V2_ESTABLISHED_CHILD_SA"), "{st}");
    assert!(st.contains("; erouted; "), "{st}");
    // B says nothing about the version: it answers IKEv2.
    assert!(
        status(&t, &gb).contains("STATE_V2_ESTABLISHED_CHILD_SA"),
        "{}",
        status(&t, &gb)
    );
    check_traffic(&t);
}

/// An IKEv2 road warrior: B's `right=%any` template gets an instance for gateway A, which
/// reaches host B's subnet (ping, 10 MB TCP, only IKE/ESP on the wire); A's `--down` removes
/// the instance on B.
#[test]
fn ikev2_road_warrior() {
    road_warrior_case(2);
}

/// IKEv2 with RSA signatures between rswan gateways (keys from `ipsec newhostkey`, public
/// halves as `leftrsasigkey`/`rightrsasigkey`): ping and 10 MB TCP through the tunnel.
#[test]
fn ikev2_rsa_net_to_net() {
    let t = rsa_pair("\tkeyexchange=ikev2\n");
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    up_ok(&t, &ga, "net");
    check_traffic(&t);
    assert!(status(&t, &gb).contains("STATE_V2_ESTABLISHED_CHILD_SA"));
}

/// Forced rekeys with whack (`ipsec whack --name net --rekey-ipsec`, then `--rekey-ike`, as
/// Libreswan spells them) during a paced 10 MB TCP transfer over IKEv2: the transfer arrives
/// whole (hash), only IKE and ESP are on the wire, and `--status` on both sides names new
/// child and IKE SAs carrying the traffic. The lifetimes are long: only the commands rekey.
#[test]
fn ikev2_forced_rekey_during_transfer() {
    let t = psk_pair(&net_conf(
        "\tauthby=secret\n\tkeyexchange=ikev2\n\tauto=add\n",
    ));
    let (ga, gb) = (&t.ga, &t.gb);
    up_ok(&t, ga, "net");
    let (ike1, child1) = {
        let st = status(&t, ga);
        (newest_isakmp(&st), newest_ipsec(&st))
    };
    let (ike1_b, child1_b) = {
        let st = status(&t, gb);
        (newest_isakmp(&st), newest_ipsec(&st))
    };
    assert!(
        wait_until(Duration::from_secs(5), || t
            .ipsec_ok(gb, &["eroute"])
            .contains("=> tun0x")),
        "{}",
        t.log(gb)
    );
    let cap = Capture::start(ga, &t.ga_out, &t.dir.path("forced.pcap"));
    // About 12 s of transfer; the rekeys come 3 s and 7 s in.
    let (sent, got, n, whack) = std::thread::scope(|s| {
        let xfer = s.spawn(|| paced_transfer(&t, 5750, payload(SIZE, MARKER), SIZE / 12));
        std::thread::sleep(Duration::from_secs(3));
        let child = t.ipsec(ga, &["whack", "--name", "net", "--rekey-ipsec"]);
        std::thread::sleep(Duration::from_secs(4));
        let ike = t.ipsec(ga, &["whack", "--name", "net", "--rekey-ike"]);
        let (sent, got, n, _) = xfer.join().unwrap();
        (sent, got, n, [child, ike])
    });
    let (lines, raw) = cap.stop();
    for o in &whack {
        assert!(
            o.status.success(),
            "whack: {}{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            t.diag()
        );
    }
    assert!(
        String::from_utf8_lossy(&whack[0].stdout).contains("forced rekey of IPsec SA"),
        "{:?}",
        whack[0]
    );
    assert_eq!(n, SIZE, "short transfer\n{}", t.diag());
    assert_eq!(sent, got, "transfer corrupted");
    check_wire(&t, &lines, &raw, 200);
    let la = t.log(ga);
    assert!(
        la.contains(&format!("initiating CREATE_CHILD_SA to replace #{child1}")),
        "{la}"
    );
    assert!(
        la.contains(&format!(
            "initiating CREATE_CHILD_SA to rekey IKE SA #{ike1}"
        )),
        "{la}"
    );
    for (ns, ike_old, child_old) in [(ga, ike1, child1), (gb, ike1_b, child1_b)] {
        let st = status(&t, ns);
        let (ike, child) = (newest_isakmp(&st), newest_ipsec(&st));
        assert!(
            ike != ike_old && child != child_old,
            "{ns}: newest IKE SA #{ike} (was #{ike_old}), child SA #{child} (was #{child_old})\n{st}"
        );
        assert!(
            st.contains(&format!("#{ike}: \"net\" STATE_V2_ESTABLISHED_IKE_SA"))
                && st.contains(&format!("#{child}: \"net\" STATE_V2_ESTABLISHED_CHILD_SA")),
            "{ns}:\n{st}"
        );
    }
    assert!(ping(&t.ha, "10.0.2.10", 3, 3), "{}", t.diag());
}
