//! Bounds against hostile peers (`pluto::limits`): spoofed MI1s cannot lock out a configured
//! peer or a road warrior, proven half-open states stay, authenticated peers are bounded in
//! Quick Modes, IPsec SAs and ISAKMP SAs, unauthenticated junk is logged at a bounded rate and
//! peer-supplied text is escaped.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::scenarios::{assert_up, sas_match};
use super::*;
use crate::config::secrets::Id;
use crate::pluto::ikev1::state::StateKind;
use crate::pluto::limits::UNAUTH_LOG_LIMITS;
use crate::pluto::rc;

/// A's first MI1 for `conn`, captured on a network that loses everything (B never sees it).
fn mi1_of(mut net: Net, conn: &str) -> Vec<u8> {
    net.drop = Box::new(|_, _| true);
    net.up_a(conn);
    net.a.sent[0].3.clone()
}

/// `mi1` with initiator cookie `n` (never zero).
fn with_icookie(mi1: &[u8], n: u64) -> Vec<u8> {
    let mut m = mi1.to_vec();
    m[..8].copy_from_slice(&(n | 1 << 63).to_be_bytes());
    m
}

/// The Main Mode state of an ISAKMP SA.
fn kind(x: &crate::pluto::version::IkeExchange) -> StateKind {
    x.v1().expect("an IKEv1 SA").kind
}

/// Half-open responder states of `n` whose peer is `ip` (`None`: all).
fn half_open(n: &Node, ip: Option<Ipv4Addr>) -> usize {
    n.p.sas
        .ikes()
        .filter(|s| s.exchange.half_open_responder())
        .filter(|s| ip.is_none_or(|ip| s.remote.ip() == ip))
        .count()
}

fn rw_pair(b_extra: &str) -> Net {
    let a = Node::new(
        WEST,
        1,
        &format!("version 2\nconn rw\n\tleft={WEST}\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n"),
        ": PSK \"rw secret\"\n",
    );
    let b = Node::new(
        EAST,
        2,
        &format!("version 2\nconn rw\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n{b_extra}"),
        "198.51.100.7 %any : PSK \"rw secret\"\n",
    );
    Net::new(a, b)
}

const B_IKE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(EAST, 500));
const A_IKE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(WEST, 500));

// ---------------------------------------------------------------------------------------------
// Half-open states: spoofed MI1s.

/// 16 spoofed MI1s claiming the configured peer's address fill its per-address bound; the
/// peer's own MI1 then evicts the oldest and it establishes at once, with no retransmission
/// (a refusing bound kept it out until the spoofed states timed out, 60 s: past its whole
/// first keying attempt).
#[test]
fn spoofed_mi1s_in_flight_do_not_lock_out_a_configured_peer() {
    let mi1 = mi1_of(psk_pair(""), "net");
    let mut net = psk_pair("");
    for i in 0..16 {
        net.b
            .p
            .handle_datagram(0, B_IKE, A_IKE, &with_icookie(&mi1, i));
    }
    // B's MR1s go to the real west, which knows none of them.
    net.run();
    assert_eq!(half_open(&net.b, Some(WEST)), 16);
    assert!(net.a.log_has("Main Mode message for unknown ISAKMP SA"));
    net.up_a("net");
    assert_up(&net);
    assert_eq!(
        net.now, 0,
        "established without waiting for a retransmission"
    );
    assert!(!net.a.whack_has(rc::RETRANSMISSION, "retransmission"));
    assert_eq!(net.b.p.limit_counters().half_open_evicted, 1);
    // (The eviction's log line fell to the rate limit: the spoofed MI1s from that address
    // used up its burst. The summary tells.)
    assert_eq!(half_open(&net.b, Some(WEST)), 15);
    // The spoofed states time out; the real SAs stay.
    net.advance_to(61_000);
    assert_eq!(half_open(&net.b, None), 0);
    assert_eq!(net.b.established_ipsec(), 1);
}

/// Spoofed MI1s keep arriving between the genuine peer's messages (7 before each: 14 between
/// its MI1 and MI2, fewer than the per-address bound): the genuine exchange is never the
/// oldest unproven state, and once it has sent MI2 it is never evicted.
#[test]
fn spoofed_mi1s_between_the_genuine_messages() {
    let mi1 = mi1_of(psk_pair(""), "net");
    let mut net = psk_pair("");
    let mut n = 1000;
    net.adversary = Some(Box::new(move |_, _| {
        (0..7)
            .map(|_| {
                n += 1;
                (B_IKE, A_IKE, with_icookie(&mi1, n))
            })
            .collect()
    }));
    net.up_a("net");
    assert_up(&net);
    let c = net.b.p.limit_counters();
    assert!(c.half_open_evicted > 0, "{c:?}");
    assert!(half_open(&net.b, Some(WEST)) <= 16);
}

/// A half-open state that received MI2 (the peer got our MR1 at its address) is never evicted
/// for an MI1: with a per-address bound of 1 and the genuine exchange past MI2, 1,000 spoofed
/// MI1s are all refused and the exchange completes.
#[test]
fn proven_half_open_states_are_not_evicted() {
    let mi1 = mi1_of(psk_pair(""), "net");
    let mut net = psk_pair("");
    net.b.p.cfg.max_half_open_per_peer = 1;
    let mut n = 0;
    net.adversary = Some(Box::new(move |b, _| {
        let proven =
            b.p.sas
                .ikes()
                .any(|s| kind(&s.exchange) == StateKind::MainR2);
        if !proven || n > 0 {
            return Vec::new();
        }
        (0..1000)
            .map(|_| {
                n += 1;
                (B_IKE, A_IKE, with_icookie(&mi1, n))
            })
            .collect()
    }));
    net.up_a("net");
    assert_up(&net);
    let c = net.b.p.limit_counters();
    assert_eq!(
        (c.half_open_refused, c.half_open_evicted),
        (1000, 0),
        "{c:?}"
    );
    // Refusals are logged at a bounded rate.
    let refusals = net
        .b
        .logs
        .iter()
        .filter(|l| l.contains("none of them evictable; MI1 dropped"))
        .count();
    assert!(
        (1..=UNAUTH_LOG_LIMITS.per_source.burst as usize).contains(&refusals),
        "{refusals}"
    );
}

/// A random-source flood of MI1s at a `right=%any` conn (5,000 before, 300 between each of
/// the road warrior's messages) does not keep the road warrior out, and never evicts the
/// half-open state of a configured peer.
#[test]
fn road_warrior_gets_in_under_a_random_source_flood() {
    const GW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);
    let mut net = rw_pair(&format!(
        "conn gw\n\tleft={EAST}\n\tright={GW}\n\tauthby=secret\n\tauto=add\n"
    ));
    let mi1 = mi1_of(rw_pair(""), "rw");
    // The configured peer's exchange, half-open.
    net.b
        .p
        .handle_datagram(0, B_IKE, SocketAddrV4::new(GW, 500), &mi1);
    let mut rng = StdRng::seed_from_u64(7);
    let mut flood = move |n: usize| -> Injected {
        (0..n)
            .map(|_| {
                let src =
                    SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 | rng.gen::<u32>() >> 8), 500);
                (B_IKE, src.into(), with_icookie(&mi1, rng.gen()))
            })
            .collect()
    };
    for (local, src, m) in flood(5000) {
        net.b.p.handle_datagram(0, local, src, &m);
    }
    net.run();
    assert!(half_open(&net.b, None) <= 1024);
    net.adversary = Some(Box::new(move |_, _| flood(300)));
    net.up_a("rw");
    assert_eq!(net.a.established_ipsec(), 1, "{}", net.a.dump());
    assert_eq!(
        half_open(&net.b, Some(GW)),
        1,
        "the configured peer's state stays"
    );
    assert!(half_open(&net.b, None) <= 1024);
    assert!(net.b.p.limit_counters().half_open_evicted >= 4000);
}

/// An MI2 for a half-open state that was evicted is recognised by its responder cookie.
#[test]
fn mi2_for_an_evicted_state_is_counted() {
    let mut net = psk_pair("");
    net.b.p.cfg.max_half_open_per_peer = 1;
    let mi1 = mi1_of(psk_pair(""), "net");
    // Deliver A's MI1 and B's MR1, then let a spoofed MI1 evict B's state before MI2.
    let mut spoofed = false;
    net.adversary = Some(Box::new(move |b, _| {
        let waiting =
            b.p.sas
                .ikes()
                .any(|s| kind(&s.exchange) == StateKind::MainR1);
        if !waiting || spoofed {
            return Vec::new();
        }
        spoofed = true;
        vec![(B_IKE, A_IKE, with_icookie(&mi1, 5))]
    }));
    net.up_a("net");
    assert_eq!(net.a.established_isakmp(), 0);
    let c = net.b.p.limit_counters();
    assert_eq!((c.half_open_evicted, c.half_open_late), (1, 1), "{c:?}");
    assert!(
        net.b.log_has("packet from 192.0.2.1:500: too many half-open Main Mode states from 192.0.2.1 (max_half_open_per_peer=1); evicting #1 (MI1 from 192.0.2.1:500 0s ago, no MI2 since)"),
        "{}",
        net.b.dump()
    );
    assert!(net
        .b
        .log_has("Main Mode message for a half-open state that was evicted or timed out"));
}

// ---------------------------------------------------------------------------------------------
// Authenticated peers.

/// A Quick Mode responder refuses a new Quick Mode while its state table is full, and serves
/// the peer's retransmission once there is room.
#[test]
fn quick_mode_responder_respects_the_state_limit() {
    let mut net = psk_pair("");
    net.up_a("net");
    assert_up(&net);
    net.b.p.cfg.max_states = net.b.p.sas.len();
    net.whack_a(
        2,
        WhackCmd::Up {
            name: "net".into(),
            asynchronous: true,
        },
    );
    assert_eq!(net.b.p.limit_counters().states_refused, 1);
    assert!(
        net.b
            .log_has("Quick Mode request refused: state table full (max_states=2); dropped"),
        "{}",
        net.b.dump()
    );
    assert_eq!(net.b.established_ipsec(), 1);
    net.b.p.cfg.max_states = crate::pluto::limits::MAX_STATES;
    net.advance_to(11_000);
    assert_eq!(net.a.established_ipsec(), 2, "{}", net.a.dump());
    assert_eq!(net.b.established_ipsec(), 2, "{}", net.b.dump());
}

/// A peer at its IPsec SA limit gets no more.
#[test]
fn per_peer_ipsec_sa_limit() {
    let mut net = psk_pair("");
    net.b.p.cfg.max_ipsec_sas_per_peer = 1;
    net.up_a("net");
    assert_up(&net);
    net.whack_a(
        2,
        WhackCmd::Up {
            name: "net".into(),
            asynchronous: true,
        },
    );
    assert_eq!(net.b.established_ipsec(), 1);
    assert_eq!(net.b.p.limit_counters().ipsec_sas_refused, 1);
    assert!(
        net.b.log_has(
            "Quick Mode request refused: peer '192.0.2.1' has 1 IPsec SAs (max_ipsec_sas_per_peer=1); dropped"
        ),
        "{}",
        net.b.dump()
    );
    // `--status` shows the bound and the hit.
    let st = net.b.status(net.now);
    assert!(
        st.iter().any(|l| l.starts_with("limits: states 2/16384; half-open 0/1024 (16 per address); per peer: 64 ISAKMP SAs, 1 IPsec SAs, 64 Quick Modes in progress")),
        "{st:#?}"
    );
    assert!(
        st.iter()
            .any(|l| l.contains("Quick Modes dropped at the IPsec SA limit 1,")),
        "{st:#?}"
    );
}

/// A peer with a Quick Mode in progress (QI2 lost) at a limit of one gets no second one.
#[test]
fn per_peer_concurrent_quick_mode_limit() {
    let mut net = psk_pair("");
    net.b.p.cfg.max_quick_modes_per_peer = 1;
    net.up_a("net");
    assert_up(&net);
    // From now on every QI2 (A's second Quick Mode message of a Message ID) is lost.
    let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
    net.drop = Box::new(move |dir, d| {
        if dir != Dir::AtoB || d.get(18) != Some(&32) {
            return false;
        }
        let n = seen.entry(d[20..24].to_vec()).or_insert(0);
        *n += 1;
        *n == 2
    });
    let up = |net: &mut Net| {
        net.whack_a(
            2,
            WhackCmd::Up {
                name: "net".into(),
                asynchronous: true,
            },
        )
    };
    up(&mut net);
    assert_eq!(
        net.b
            .p
            .sas
            .children()
            .filter(|c| c
                .exchange
                .v1()
                .is_some_and(|q| q.kind == StateKind::QuickR1))
            .count(),
        1
    );
    up(&mut net);
    let c = net.b.p.limit_counters();
    assert_eq!(c.quick_modes_refused, 1, "{c:?}");
    assert!(net.b.log_has(
        "Quick Mode request refused: peer '192.0.2.1' has 1 Quick Modes in progress (max_quick_modes_per_peer=1); dropped"
    ));
}

/// Beyond its ISAKMP SA limit a peer's oldest ISAKMP SA is deleted (with a Delete); the
/// IPsec SAs go on.
#[test]
fn per_peer_isakmp_sa_limit_keeps_the_newest() {
    let mut net =
        psk_pair("\tikelifetime=100s\n\tkeylife=300s\n\trekeymargin=20s\n\trekeyfuzz=0%\n");
    net.b.p.cfg.max_isakmp_sas_per_peer = 1;
    net.up_a("net");
    assert_up(&net);
    net.advance_to(85_000);
    assert!(net.a.log_has("initiating Main Mode to replace #1"));
    assert_eq!(net.b.established_isakmp(), 1, "{}", net.b.dump());
    assert_eq!(net.a.established_isakmp(), 1, "{}", net.a.dump());
    assert_eq!(net.b.p.limit_counters().isakmp_sas_deleted, 1);
    assert!(
        net.b.log_has("\"net\" #1: peer '192.0.2.1' has more than 1 ISAKMP SAs (max_isakmp_sas_per_peer); deleting this oldest one"),
        "{}",
        net.b.dump()
    );
    assert_eq!(net.a.established_ipsec(), 1);
    assert!(sas_match(&net.a, &net.b) >= 1);
}

// ---------------------------------------------------------------------------------------------
// Logging.

/// Junk from the wire (malformed, unknown cookies, unsupported exchanges, MI1 nobody
/// authorised, spoofed MI1s) makes a bounded number of log lines: a source's burst, then all
/// sources' burst; a summary line says how many were suppressed.
#[test]
fn unauthenticated_junk_is_logged_at_a_bounded_rate() {
    let mi1 = mi1_of(psk_pair(""), "net");
    let mut net = psk_pair("");
    net.run();
    let mut rng = StdRng::seed_from_u64(99);
    let junk = |rng: &mut StdRng| -> Vec<u8> {
        let mut h = vec![0u8; 28];
        rng.fill(&mut h[..16]);
        h[16] = 1; // next payload SA
        h[17] = 0x10;
        match rng.gen_range(0..7) {
            0 => (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect(),
            1 => {
                h[18] = 2; // Main Mode, unknown cookies
                h
            }
            2 => {
                h[17] = 0x20; // version 2.0
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
            _ => with_icookie(&mi1, rng.gen()),
        }
    };
    let before = net.b.logs.len();
    for _ in 0..10_000 {
        let d = junk(&mut rng);
        net.b.p.handle_datagram(0, B_IKE, A_IKE, &d);
    }
    net.run();
    let one_source = net.b.logs.len() - before;
    assert!(
        one_source <= UNAUTH_LOG_LIMITS.per_source.burst as usize,
        "{one_source} lines: {:#?}",
        &net.b.logs[before..]
    );
    assert!(one_source > 0);
    // From 10,000 sources (no conn for them: "no connection has been authorized" and more).
    for i in 0..10_000u32 {
        let d = junk(&mut rng);
        let src = SocketAddrV4::new(Ipv4Addr::from(0x0b00_0000 + i), 500);
        net.b.p.handle_datagram(0, B_IKE, src, &d);
    }
    net.run();
    let all = net.b.logs.len() - before;
    assert!(
        all <= UNAUTH_LOG_LIMITS.total.burst as usize,
        "{all} lines: {:#?}",
        &net.b.logs[before..]
    );
    assert!(!net.b.log_has("similar messages suppressed"));
    let suppressed = net.b.p.limit_counters().log_lines_suppressed;
    assert!(suppressed >= 19_000, "{suppressed}");
    // The summary comes by itself, once, when its period is over.
    net.advance_to(UNAUTH_LOG_LIMITS.summary_ms);
    let summaries: Vec<&String> = net
        .b
        .logs
        .iter()
        .filter(|l| l.contains("similar messages suppressed"))
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert!(
        summaries[0].starts_with(&format!(
            "rate limit: {suppressed} similar messages suppressed in the last 10s"
        )),
        "{summaries:?}"
    );
    // The genuine peer still gets in, and its authenticated progress is logged.
    net.up_a("net");
    assert_up(&net);
    assert!(net.b.log_has("STATE_QUICK_R2"));
}

/// A peer ID with control characters is refused, and what is logged of it is escaped: no
/// forged log line, no terminal escape.
#[test]
fn peer_ids_with_control_characters_are_refused_and_escaped() {
    let mut net = rw_pair("");
    let evil = "evil\nMay  1 00:00:00 gw pluto: \"rw\" #9: forged\u{1b}[2J";
    if let Some(c) = net.a.p.conns.get_mut("rw") {
        c.this.id = Id::Fqdn(evil.into());
    }
    net.up_a("rw");
    assert_eq!(net.b.established_isakmp(), 0, "{}", net.b.dump());
    assert!(
        net.b.log_has(
            "peer ID '@evil\\x0aMay  1 00:00:00 gw pluto: \"rw\" #9: forged\\x1b[2J' contains control characters; refused"
        ),
        "{}",
        net.b.dump()
    );
    for l in net.b.logs.iter().chain(net.a.logs.iter()) {
        assert!(!l.chars().any(|c| c.is_control()), "{l:?}");
    }
}

/// 40 conns between the same two hosts with their own IDs, all brought up at once: we keep
/// at most `max_half_open_per_peer` Main Modes in flight towards the peer (what it keeps
/// half-open for us), the rest wait their turn, so none is evicted and none needs a
/// retransmission. With shared IDs, the waiting conns use the first ISAKMP SA instead.
#[test]
fn many_conns_to_one_peer_come_up_without_evictions() {
    for shared_ids in [false, true] {
        let mut conf = String::from("version 2\n");
        for n in 0..40 {
            let ids = if shared_ids {
                String::new()
            } else {
                format!("\tleftid=@w{n}.example\n\trightid=@e{n}.example\n")
            };
            conf.push_str(&format!(
                "conn c{n}\n\tleft={WEST}\n\tleftsubnet=10.1.{n}.0/24\n\tright={EAST}\n\trightsubnet=10.2.{n}.0/24\n\tauthby=secret\n\tauto=add\n{ids}"
            ));
        }
        let secrets = ": PSK \"one for all\"\n";
        let mut net = Net::new(
            Node::new(WEST, 1, &conf, secrets),
            Node::new(EAST, 2, &conf, secrets),
        );
        for n in 0..40 {
            net.a.p.whack(
                0,
                WhackClient(100 + n),
                WhackCmd::Up {
                    name: format!("c{n}"),
                    asynchronous: false,
                },
            );
        }
        let st = net.a.p.status_lines();
        assert_eq!(
            st.iter()
                .filter(|l| l.contains("Main Mode to 198.51.100.7 waiting"))
                .count(),
            24,
            "{st:#?}"
        );
        net.run();
        assert_eq!(net.a.established_ipsec(), 40, "{}", net.a.dump());
        assert_eq!(net.b.established_ipsec(), 40, "{}", net.b.dump());
        assert_eq!(net.now, 0);
        assert!(!net.a.whack_has(rc::RETRANSMISSION, "retransmission"));
        let c = net.b.p.limit_counters();
        assert_eq!((c.half_open_evicted, c.half_open_late), (0, 0), "{c:?}");
        let isakmp = net.a.established_isakmp();
        if shared_ids {
            assert!(isakmp <= 16, "{isakmp}");
        } else {
            assert_eq!(isakmp, 40);
        }
        for n in 0..40 {
            assert!(net.a.done.contains(&(100 + n, 0)), "c{n}: {:?}", net.a.done);
        }
    }
}
