//! Denial of service against a running gateway's Pluto (issue 7, items 4 and 5):
//!
//! * spoofed Main Mode first messages (MI1) claiming a configured peer's address do not lock
//!   that peer out: it still establishes on its first transmission;
//! * a random-source MI1 flood at a `right=%any` conn does not keep a road warrior out;
//! * 5,000 junk datagrams to UDP 500 add a bounded number of lines to the log, and a
//!   "similar messages suppressed" summary;
//! * IKEv2 (issue 8): on an established IKE SA, malformed inner payloads, an unknown critical
//!   payload, wrong SPIs, a replayed message ID, a bad ICV and bad RFC 7383 fragments — sent
//!   as the peer, encrypted with the SA's real keys where that matters — are each dropped and
//!   logged at a bounded rate, and the SA keeps working.
//!
//! Spoofed packets are written whole (IPPROTO_RAW) in host B's namespace, whose default route
//! is gateway B: B takes them in on its LAN interface once the test turns B's reverse-path
//! filter off (as on a router with asymmetric routes). Replies to the random sources are routed
//! back to host B, which drops them. The MI1s are a real initiator's: an in-process Pluto with
//! gateway A's conn builds them, then each copy gets a fresh initiator cookie.
//!
//! Each test takes a few seconds (the log test waits for the summary, 10 s).

mod common;
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use common::*;
use rswan::config::conf::IpsecConf;
use rswan::config::secrets::Secrets;
use rswan::pluto::limits::UNAUTH_LOG_LIMITS;
use rswan::pluto::{Interface, Output, Pluto, PlutoConfig, WhackClient, WhackCmd};
use support::*;

const PSK: &str = "the shared secret of ike_dos.rs";
const GA: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const GB: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Random spoofed sources are drawn from here; gateway B routes it to host B.
const FLOOD_NET: u32 = 0xc612_0000; // 198.18.0.0/15

fn net_conf() -> String {
    format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\nconn net\n\tleft={GA}\n\tleftsubnet=10.0.1.0/24\n\tright={GB}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n"
    )
}

/// Both gateways with `conf_a` / `conf_b` and their secrets, B started first.
fn gateways(conf_a: &str, conf_b: &str, secrets_a: &str, secrets_b: &str) -> Topo {
    let t = gateway_pair(conf_a, conf_b, secrets_a, secrets_b);
    let gb = t.gb.clone();
    // Host B may hand gateway B packets with any source; replies to the flood's sources go
    // back to host B (not a router: it drops them).
    let b_lan = format!("{}b1", t.p);
    for conf in ["all", b_lan.as_str()] {
        ns_must(
            &gb,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{conf}.rp_filter=0"),
            ],
        );
    }
    ns_must(
        &gb,
        &["ip", "route", "add", "198.18.0.0/15", "via", "10.0.2.10"],
    );
    t
}

/// The MI1 gateway A sends for `conn` of `conf` (built by an in-process Pluto at `GA`).
fn mi1_of(conf: &str, secrets: &str, conn: &str) -> Vec<u8> {
    let cfg = PlutoConfig {
        interfaces: vec![Interface {
            virt: "ipsec0".into(),
            phys: "eth0".into(),
            addr: GA.into(),
        }],
        ..PlutoConfig::default()
    };
    let mut p = Pluto::new(cfg, Box::new(StdRng::seed_from_u64(1)));
    let errs = p.load_conns(&IpsecConf::parse_str(conf, "/ike_dos.conf").unwrap());
    assert!(errs.is_empty(), "{errs:?}");
    p.load_secrets(Secrets::parse_str(secrets, "/ike_dos.secrets").unwrap());
    p.whack(
        0,
        WhackClient(1),
        WhackCmd::Up {
            name: conn.into(),
            asynchronous: true,
        },
    );
    while let Some(o) = p.poll_output() {
        if let Output::Send { data, .. } = o {
            return data;
        }
    }
    panic!("no MI1");
}

/// `mi1` with a fresh initiator cookie, as an IPv4/UDP packet `src:500 → GB:500`.
fn spoofed_mi1(mi1: &[u8], src: Ipv4Addr, rng: &mut StdRng) -> Vec<u8> {
    let mut m = mi1.to_vec();
    let icky: u64 = rng.gen::<u64>() | 1;
    m[..8].copy_from_slice(&icky.to_be_bytes());
    udp_packet(SocketAddrV4::new(src, 500), SocketAddrV4::new(GB, 500), &m)
}

/// Sends whole IPv4 packets (their own source addresses) from `ns`.
fn send_spoofed(ns: &str, packets: Vec<Vec<u8>>) {
    send_ip(ns, libc::IPPROTO_RAW as u8, GB, packets);
}

fn status(t: &Topo, ns: &str) -> String {
    t.ipsec_ok(ns, &["auto", "--status"])
}

fn up(t: &Topo, ns: &str, conn: &str) -> (Option<i32>, String) {
    let o = t.ipsec(ns, &["auto", "--up", conn]);
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// 16 spoofed MI1s from the configured peer's address fill B's per-address bound; then the
/// peer's `ipsec auto --up` establishes on its first MI1 (a refusing bound kept it out until
/// the spoofed states timed out after 60 s: its whole first keying attempt).
#[test]
fn spoofed_first_messages_do_not_lock_out_a_configured_peer() {
    let conf = net_conf();
    let secrets = format!("{GA} {GB} : PSK \"{PSK}\"\n");
    let t = gateways(&conf, &conf, &secrets, &secrets);
    let mi1 = mi1_of(&conf, &secrets, "net");
    let mut rng = StdRng::seed_from_u64(4);
    let packets = (0..16).map(|_| spoofed_mi1(&mi1, GA, &mut rng)).collect();
    send_spoofed(&t.hb, packets);
    assert!(
        wait_for(Duration::from_secs(10), || status(&t, &t.gb)
            .contains("half-open 16/1024 (16 per address)")),
        "the spoofed MI1s did not reach B\n{}\n{}",
        status(&t, &t.gb),
        t.log(&t.gb)
    );
    let (code, text) = up(&t, &t.ga, "net");
    assert_eq!(
        code,
        Some(0),
        "{text}\nA:\n{}\nB:\n{}",
        t.log(&t.ga),
        t.log(&t.gb)
    );
    assert!(!text.contains("retransmission"), "{text}");
    let st = status(&t, &t.gb);
    assert!(st.contains("STATE_MAIN_R3"), "{st}");
    assert!(st.contains("limits hit: half-open evicted 1,"), "{st}");
    assert!(ping(&t.ha, "10.0.2.10", 3, 1), "{}", t.log(&t.gb));
}

/// While spoofed MI1s from random sources keep arriving at a `right=%any` conn (more than
/// `max_half_open`), a road warrior still gets in.
#[test]
fn random_source_flood_does_not_keep_a_road_warrior_out() {
    let conf_a = format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\nconn rw\n\tleft={GA}\n\tright={GB}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n"
    );
    let conf_b = format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\nconn rw\n\tleft={GB}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n"
    );
    let secrets_a = format!("{GA} {GB} : PSK \"{PSK}\"\n");
    let secrets_b = format!("{GB} %any : PSK \"{PSK}\"\n");
    let t = gateways(&conf_a, &conf_b, &secrets_a, &secrets_b);
    let mi1 = mi1_of(&conf_a, &secrets_a, "rw");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (hb, stop, sent) = (t.hb.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            in_netns(&hb, move || {
                let s = Socket::new(
                    Domain::IPV4,
                    Type::RAW,
                    Some(Protocol::from(libc::IPPROTO_RAW)),
                )
                .expect("raw socket");
                let to = SockAddr::from(SocketAddrV4::new(GB, 0));
                let mut rng = StdRng::seed_from_u64(5);
                // About 2,000 a second: more than B's half-open bound every second, at a rate
                // B's Pluto keeps up with (the test is about its eviction policy, not about
                // the kernel dropping datagrams from a full socket buffer).
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..20 {
                        let src = Ipv4Addr::from(FLOOD_NET | rng.gen_range(1..0x1_fffe));
                        let p = spoofed_mi1(&mi1, src, &mut rng);
                        if s.send_to(&p, &to).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
    };
    let full = wait_for(Duration::from_secs(20), || {
        status(&t, &t.gb).contains("half-open 1024/1024")
    });
    let result = if full {
        Some(up(&t, &t.ga, "rw"))
    } else {
        None
    };
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    assert!(
        full,
        "the flood did not fill B's half-open states\n{}",
        status(&t, &t.gb)
    );
    let (code, text) = result.unwrap();
    assert_eq!(
        code,
        Some(0),
        "{text}\nA:\n{}\nB:\n{}",
        t.log(&t.ga),
        t.log(&t.gb)
    );
    let st = status(&t, &t.gb);
    assert!(st.contains("STATE_QUICK_R2"), "{st}");
    assert!(!st.contains("half-open evicted 0,"), "{st}");
    assert!(sent.load(Ordering::Relaxed) > 1024);
}

/// `added` log lines since `t0` are at most what `rate` lets through in that time (its burst
/// plus its refill, the elapsed time rounded up) plus the summary line and one to spare.
fn assert_within_rate(added: &[&str], rate: rswan::ratelimit::Rate, t0: Instant) {
    let handled_s = t0.elapsed().as_secs() + 1;
    let bound = rate.burst as u64 + handled_s * 1000 / rate.interval_ms + 2;
    assert!(
        (added.len() as u64) <= bound,
        "{} lines added (bound {bound}):\n{}",
        added.len(),
        added.join("\n")
    );
}

/// Junk that breaks every rule of the wire format, from one source and from many.
fn junk(rng: &mut StdRng, mi1: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 28];
    rng.fill(&mut h[..16]);
    h[16] = 1;
    h[17] = 0x10;
    h[24..28].copy_from_slice(&28u32.to_be_bytes());
    match rng.gen_range(0..7) {
        0 => (0..rng.gen_range(1..300)).map(|_| rng.gen()).collect(),
        1 => {
            h[18] = 2; // Main Mode for unknown cookies
            h
        }
        2 => {
            h[17] = 0x20; // ISAKMP 2.0
            h
        }
        3 => {
            h[18] = 4; // Aggressive Mode
            h
        }
        4 => {
            h[18] = 32; // Quick Mode for an unknown ISAKMP SA
            h[19] = 1;
            h
        }
        5 => {
            h[18] = 5; // unprotected Informational
            h
        }
        _ => {
            let mut m = mi1.to_vec();
            rng.fill(&mut m[..8]);
            m
        }
    }
}

/// 5,000 junk datagrams to UDP 500 (half from gateway A's address, half from random spoofed
/// sources) add at most the rate limit's total burst, plus its refill while they were being
/// handled, plus the summary, to B's log — not one line each.
#[test]
fn junk_to_port_500_adds_a_bounded_number_of_log_lines() {
    let conf = net_conf();
    let secrets = format!("{GA} {GB} : PSK \"{PSK}\"\n");
    let t = gateways(&conf, &conf, &secrets, &secrets);
    let mi1 = mi1_of(&conf, &secrets, "net");
    let before = t.log(&t.gb).lines().count();
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(6);
    // In batches, so that B's socket buffer does not overflow and drop them unread.
    for _ in 0..25 {
        let one_source: Vec<Vec<u8>> = (0..100).map(|_| junk(&mut rng, &mi1)).collect();
        send_udp(&t.ga, SocketAddrV4::new(GB, 500), one_source);
        let spoofed: Vec<Vec<u8>> = (0..100)
            .map(|_| {
                let src = Ipv4Addr::from(FLOOD_NET | rng.gen_range(1..0x1_fffe));
                let d = junk(&mut rng, &mi1);
                udp_packet(SocketAddrV4::new(src, 500), SocketAddrV4::new(GB, 500), &d)
            })
            .collect();
        send_spoofed(&t.hb, spoofed);
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = "similar messages suppressed";
    assert!(
        wait_for(Duration::from_secs(30), || t.log(&t.gb).contains(summary)),
        "no summary line\n{}",
        t.log(&t.gb)
    );
    let log = t.log(&t.gb);
    let added: Vec<&str> = log.lines().skip(before).collect();
    assert_within_rate(&added, UNAUTH_LOG_LIMITS.total, t0);
    assert!(added.iter().any(|l| l.contains("packet from 192.0.2.1:")));
    // The counter behind `--status` agrees: most of them were suppressed (each junk
    // datagram makes at least one line; a few may have been lost on the way).
    let st = status(&t, &t.gb);
    let suppressed: u64 = st
        .lines()
        .find_map(|l| l.split("log lines suppressed ").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{st}"));
    assert!(suppressed >= 3000, "{suppressed}\n{st}");
    // And `ipsec look` lists the bound hit.
    let look = t.ipsec_ok(&t.gb, &["look"]);
    assert!(
        look.lines()
            .any(|l| l.trim_start().starts_with("log lines suppressed")),
        "{look}"
    );
    assert!(daemon_alive(&t, &t.gb));
}

// ---------------------------------------------------------------------------------------------
// IKEv2: bad input on an established IKE SA.

/// The keys of an established IKEv2 SA as `ipsec keys --wireshark` writes them.
struct V2Keys {
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    /// SK_ei: AES-256-GCM key and 4-byte salt (the default suite's cipher).
    sk_ei: Vec<u8>,
}

/// Reads the one IKEv2 SA of the gateway in `ns` from its Wireshark key table.
fn v2_keys(t: &Topo, ns: &str) -> V2Keys {
    let dir = t.dir.path(&format!("{ns}-keys"));
    t.ipsec_ok(ns, &["keys", "--wireshark", dir.to_str().unwrap()]);
    let table = std::fs::read_to_string(dir.join("ikev2_decryption_table")).unwrap();
    let line = table
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap_or_else(|| panic!("no IKEv2 SA in\n{table}"));
    let f: Vec<&str> = line.split(',').collect();
    assert!(f[4].contains("AES-GCM") && f[4].contains("256"), "{line}");
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let sk_ei = unhex(f[2]);
    assert_eq!(sk_ei.len(), 36, "{line}");
    V2Keys {
        spi_i: unhex(f[0]).try_into().unwrap(),
        spi_r: unhex(f[1]).try_into().unwrap(),
        sk_ei,
    }
}

/// IKEv2 payload types and exchange (RFC 7296 3.2/3.1, RFC 7383 2.5).
const PT_NOTIFY: u8 = 41;
const PT_SK: u8 = 46;
const PT_SKF: u8 = 53;
const INFORMATIONAL: u8 = 37;

/// An INFORMATIONAL request from the original initiator (I flag) with message ID `msgid`:
/// `inner` (first payload type `first`) encrypted under `k` with AES-256-GCM (RFC 5282:
/// nonce = salt | IV, associated data = IKE header to the IV), in an SK payload or, with
/// `frag` = (number, total), an SKF payload (RFC 7383).
fn v2_request(
    k: &V2Keys,
    msgid: u32,
    first: u8,
    inner: &[u8],
    frag: Option<(u16, u16)>,
) -> Vec<u8> {
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
    let mut m = Vec::new();
    m.extend_from_slice(&k.spi_i);
    m.extend_from_slice(&k.spi_r);
    m.push(if frag.is_some() { PT_SKF } else { PT_SK });
    m.push(0x20);
    m.push(INFORMATIONAL);
    m.push(0x08);
    m.extend_from_slice(&msgid.to_be_bytes());
    m.extend_from_slice(&[0; 4]); // length, below
    let sk = m.len();
    m.extend_from_slice(&[first, 0, 0, 0]); // SK/SKF generic header, length below
    if let Some((n, total)) = frag {
        m.extend_from_slice(&n.to_be_bytes());
        m.extend_from_slice(&total.to_be_bytes());
    }
    let iv: [u8; 8] = rand::random();
    let mut body = inner.to_vec();
    body.push(0); // Pad Length (AES-GCM pads to 1 octet: none)
    let total_len = m.len() + 8 + body.len() + 16;
    m[24..28].copy_from_slice(&(total_len as u32).to_be_bytes());
    m[sk + 2..sk + 4].copy_from_slice(&((total_len - sk) as u16).to_be_bytes());
    let mut nonce = k.sk_ei[32..36].to_vec();
    nonce.extend_from_slice(&iv);
    let cipher = Aes256Gcm::new_from_slice(&k.sk_ei[..32]).unwrap();
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &m, &mut body)
        .unwrap();
    m.extend_from_slice(&iv);
    m.extend_from_slice(&body);
    m.extend_from_slice(&tag);
    m
}

/// Sends IKE `messages` to gateway B's UDP 500 as gateway A's (192.0.2.1:500), written whole
/// from gateway A's namespace (A's own daemon holds that port).
fn send_as_a(t: &Topo, messages: Vec<Vec<u8>>) {
    let packets = messages
        .iter()
        .map(|m| udp_packet(SocketAddrV4::new(GA, 500), SocketAddrV4::new(GB, 500), m))
        .collect();
    send_ip(&t.ga, libc::IPPROTO_RAW as u8, GB, packets);
}

/// `log lines suppressed N` from a `--status` report.
fn suppressed(st: &str) -> u64 {
    st.lines()
        .find_map(|l| l.split("log lines suppressed ").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{st}"))
}

/// Against gateway B with an IKEv2 SA established by gateway A, messages sent as A with the
/// SA's real keys (from `ipsec keys --wireshark`) but bad content, and messages that fail
/// before decryption: each one is dropped and logged — an inner payload with a bad length,
/// a bad header length, unknown IKE SPIs, a replayed
/// (old) message ID, a bad ICV, and RFC 7383 fragments announcing too many fragments, a
/// fragment number above the total, a stale total, and fragments adding up to more than the
/// reassembly limit. Then 2,000 more of them add a bounded number of log lines (per-source
/// rate limit of `UNAUTH_LOG_LIMITS`), and the SA still works: ping through it, and a
/// CREATE_CHILD_SA from A (message ID 2, so B's message ID window was not moved by any of
/// them) rekeys the child SA. Last, an authenticated request with an unknown critical payload
/// is answered with UNSUPPORTED_CRITICAL_PAYLOAD (RFC 7296 2.5) rather than dropped.
#[test]
fn ikev2_bad_input_on_an_established_sa_is_dropped_and_logged() {
    let conf = net_conf().replace("\tauto=add\n", "\tkeyexchange=ikev2\n\tauto=add\n");
    let secrets = format!("{GA} {GB} : PSK \"{PSK}\"\n");
    let t = gateways(&conf, &conf, &secrets, &secrets);
    let (code, text) = up(&t, &t.ga, "net");
    assert_eq!(code, Some(0), "{text}\n{}", t.log(&t.gb));
    assert!(
        wait_for(Duration::from_secs(5), || ping(&t.ha, "10.0.2.10", 1, 1)),
        "{}",
        t.log(&t.gb)
    );
    let k = v2_keys(&t, &t.gb);
    // B expects A's next request with message ID 2 (IKE_SA_INIT 0, IKE_AUTH 1).
    let ok = |first: u8, inner: &[u8]| v2_request(&k, 2, first, inner, None);
    let bad_length = ok(PT_NOTIFY, &[0, 0, 0, 200, 0, 0, 0, 0]);
    let mut header_length = ok(0, &[]);
    header_length[27] = header_length[27].wrapping_add(40);
    let mut unknown_spi = ok(0, &[]);
    unknown_spi[8..16].copy_from_slice(&rand::random::<[u8; 8]>());
    let replayed = v2_request(&k, 0, 0, &[], None);
    let mut bad_icv = ok(0, &[]);
    *bad_icv.last_mut().unwrap() ^= 1;
    let frag =
        |n: u16, total: u16, len: usize| v2_request(&k, 2, 0, &vec![0u8; len], Some((n, total)));
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "bad inner payload length",
            vec![bad_length],
            "bad length 200 of",
        ),
        (
            "bad header length",
            vec![header_length],
            "packet from 192.0.2.1:500: message truncated",
        ),
        (
            "unknown IKE SPIs",
            vec![unknown_spi],
            "message for unknown IKE SA; dropped",
        ),
        (
            "replayed message ID",
            vec![replayed],
            "request with message ID 0 (expected 2); dropped",
        ),
        (
            "bad ICV",
            vec![bad_icv],
            "encrypted payload failed its integrity check",
        ),
        (
            "too many fragments",
            vec![frag(1, 1000, 16)],
            "1000 fragments announced, at most 64 accepted",
        ),
        (
            "fragment number above the total",
            vec![frag(5, 3, 16)],
            "malformed SKF payload: fragment number 0, or above total fragments",
        ),
        (
            "stale total",
            vec![frag(1, 8, 16), frag(2, 5, 16)],
            "fragment of a 5-fragment message while reassembling 8",
        ),
        (
            "oversized reassembly",
            (1..=56).map(|n| frag(n, 60, 1200)).collect(),
            "fragmented message larger than",
        ),
    ];
    for (what, messages, line) in cases {
        let before = t.log(&t.gb).lines().count();
        send_as_a(&t, messages);
        let logged = wait_for(Duration::from_secs(5), || {
            t.log(&t.gb)
                .lines()
                .skip(before)
                .any(|l| l.contains(line) && l.contains("dropped"))
        });
        assert!(
            logged,
            "{what}: no \"{line}\" drop line\n{}",
            t.log(&t.gb)
                .lines()
                .skip(before)
                .collect::<Vec<_>>()
                .join("\n")
        );
        // One second between cases: the per-source rate limit's refill, so each case's line
        // is not suppressed by the previous ones.
        std::thread::sleep(Duration::from_millis(1100));
    }
    // The same, 2,000 times: a bounded number of lines.
    let flood_before = t.log(&t.gb).lines().count();
    let sup_before = suppressed(&t.ipsec_ok(&t.gb, &["auto", "--status"]));
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(8);
    for _ in 0..20 {
        let batch: Vec<Vec<u8>> = (0..100)
            .map(|_| match rng.gen_range(0..6) {
                0 | 1 => ok(PT_NOTIFY, &[0, 0, 0, 200, 0, 0, 0, 0]),
                2 => v2_request(&k, 0, 0, &[], None),
                3 => {
                    let mut m = ok(0, &[]);
                    *m.last_mut().unwrap() ^= 0x55;
                    m
                }
                4 => frag(rng.gen_range(2..10), 1, 16),
                _ => {
                    let mut m = ok(0, &[]);
                    rng.fill(&mut m[8..16]);
                    m
                }
            })
            .collect();
        send_as_a(&t, batch);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        wait_for(Duration::from_secs(20), || suppressed(
            &t.ipsec_ok(&t.gb, &["auto", "--status"])
        ) >= sup_before + 1500),
        "the flood was not suppressed\n{}",
        t.ipsec_ok(&t.gb, &["auto", "--status"])
    );
    let log = t.log(&t.gb);
    let added: Vec<&str> = log.lines().skip(flood_before).collect();
    assert_within_rate(&added, UNAUTH_LOG_LIMITS.per_source, t0);
    // The SA is untouched: traffic flows, and A's next request (message ID 2) is taken.
    assert!(ping(&t.ha, "10.0.2.10", 3, 3), "{}", t.log(&t.gb));
    let st = t.ipsec_ok(&t.gb, &["auto", "--status"]);
    assert!(
        st.contains("#1: \"net\" STATE_V2_ESTABLISHED_IKE_SA"),
        "{st}"
    );
    let child_b = newest_ipsec(&st);
    let o = t.ipsec(&t.ga, &["whack", "--name", "net", "--rekey-ipsec"]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        wait_for(Duration::from_secs(10), || newest_ipsec(
            &t.ipsec_ok(&t.gb, &["auto", "--status"])
        ) != child_b),
        "A's CREATE_CHILD_SA was not taken\nA:\n{}\nB:\n{}",
        t.log(&t.ga),
        t.log(&t.gb)
    );
    assert!(ping(&t.ha, "10.0.2.10", 3, 3), "{}", t.log(&t.gb));
    // An authenticated request carrying a critical payload B does not know is not dropped but
    // answered with UNSUPPORTED_CRITICAL_PAYLOAD naming its type (RFC 7296 2.5); A's daemon,
    // which did not send it, drops the unexpected response. B's next expected message ID
    // depends on what A sent since (the rekey, the old child's Delete): a run of them covers it.
    let before = t.log(&t.gb).lines().count();
    send_as_a(
        &t,
        (3..=8)
            .map(|id| v2_request(&k, id, 250, &[0, 0x80, 0, 8, 1, 2, 3, 4], None))
            .collect(),
    );
    assert!(
        wait_for(Duration::from_secs(5), || t
            .log(&t.gb)
            .lines()
            .skip(before)
            .any(|l| l.contains("unsupported critical payload")
                && l.contains("answered with UNSUPPORTED_CRITICAL_PAYLOAD"))),
        "no UNSUPPORTED_CRITICAL_PAYLOAD answer\n{}",
        t.log(&t.gb)
    );
    assert!(daemon_alive(&t, &t.gb));
}
