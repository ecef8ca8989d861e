//! Denial of service against a running gateway's Pluto (issue 7, items 4 and 5):
//!
//! * spoofed Main Mode first messages (MI1) claiming a configured peer's address do not lock
//!   that peer out: it still establishes on its first transmission;
//! * a random-source MI1 flood at a `right=%any` conn does not keep a road warrior out;
//! * 5,000 junk datagrams to UDP 500 add a bounded number of lines to the log, and a
//!   "similar messages suppressed" summary.
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

fn write_secrets(t: &Topo, ns: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let f = t.dir.path(&format!("{ns}.secrets"));
    std::fs::write(&f, text).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Both gateways with `conf_a` / `conf_b` and their secrets, B started first.
fn gateways(conf_a: &str, conf_b: &str, secrets_a: &str, secrets_b: &str) -> Topo {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    write_secrets(&t, &ga, secrets_a);
    write_secrets(&t, &gb, secrets_b);
    t.start_gateway(&gb, conf_b);
    t.start_gateway(&ga, conf_a);
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
    let handled_s = t0.elapsed().as_secs() + 1;
    let log = t.log(&t.gb);
    let added: Vec<&str> = log.lines().skip(before).collect();
    let total = UNAUTH_LOG_LIMITS.total;
    let bound = total.burst as u64 + handled_s * 1000 / total.interval_ms + 2;
    assert!(
        (added.len() as u64) <= bound,
        "{} lines added (bound {bound}):\n{}",
        added.len(),
        added.join("\n")
    );
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
