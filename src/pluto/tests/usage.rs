//! SA usage reports (`rekey=no`, DPD, `used Ns ago`), `--status` completeness (algorithms,
//! pending Phase 2, bare shunts), the shunt scan and RESPONDER-LIFETIME.

use super::scenarios::assert_up;
use super::*;
use crate::pluto::ShuntEroute;
use crate::said::{Proto, Shunt};

fn ipsec_serials(n: &Node) -> Vec<SerialNo> {
    n.p.sas
        .children()
        .filter(|c| c.established)
        .map(|c| c.serial())
        .collect()
}

fn line_with<'a>(lines: &'a [String], pat: &str) -> Option<&'a String> {
    lines.iter().find(|l| l.contains(pat))
}

// ---------------------------------------------------------------------------------------------
// rekey=no: EVENT_SA_REPLACE_IF_USED.

const NO_REKEY: &str = "\trekey=no\n\tkeylife=120s\n\trekeymargin=30s\n\trekeyfuzz=0%\n";

#[test]
fn rekey_no_initiator_replaces_a_used_sa() {
    let mut net = psk_pair(NO_REKEY);
    net.up_a("net");
    let first = ipsec_serials(&net.a);
    assert_eq!(first.len(), 1, "{}", net.a.dump());
    // Spec 7: the initiator waits for EVENT_SA_REPLACE_IF_USED, the responder lets it expire.
    let st = net.a.status(net.now);
    let l = line_with(&st, &format!("#{}: \"net\" STATE_QUICK_I2", first[0])).unwrap();
    assert!(l.contains("; EVENT_SA_REPLACE_IF_USED in 90s"), "{l}");
    let l = line_with(&st, "#1: \"net\" STATE_MAIN_I4").unwrap();
    assert!(l.contains("; EVENT_SA_REPLACE_IF_USED in "), "{l}");
    let st = net.b.status(net.now);
    let l = line_with(&st, "STATE_QUICK_R2").unwrap();
    assert!(l.contains("; EVENT_SA_EXPIRE in 120s"), "{l}");
    assert!(line_with(&st, "policy: PSK+ENCRYPT+TUNNEL+PFS+DONTREKEY").is_some());
    // Traffic (outbound only is enough) within the last rekeymargin: replaced at 90 s.
    net.advance_to(70_000);
    net.a.use_sas(net.now, false, true, 0);
    net.advance_to(91_000);
    assert!(
        net.a
            .log_has(&format!("#{}: replacing stale IPsec SA: in use", first[0])),
        "{}",
        net.a.dump()
    );
    assert!(net.a.log_has(&format!(
        "initiating Quick Mode PSK+ENCRYPT+TUNNEL+PFS+DONTREKEY+UP to replace #{}",
        first[0]
    )));
    assert_eq!(net.a.established_ipsec(), 2, "{}", net.a.dump());
    // The old one expires at 120 s, the new one carries on.
    net.advance_to(125_000);
    assert_eq!(net.a.established_ipsec(), 1);
    assert_eq!(net.b.established_ipsec(), 1, "{}", net.b.dump());
    assert!(!ipsec_serials(&net.a).contains(&first[0]));
}

#[test]
fn rekey_no_idle_sa_expires() {
    let mut net = psk_pair(NO_REKEY);
    net.up_a("net");
    let first = ipsec_serials(&net.a)[0];
    // Used once, long before the margin: not a reason to rekey.
    net.advance_to(20_000);
    net.a.use_sas(net.now, true, true, 0);
    net.advance_to(91_000);
    assert!(
        net.a.log_has(&format!(
            "#{first}: not replacing stale IPsec SA: inactive for 70s"
        )),
        "{}",
        net.a.dump()
    );
    assert_eq!(net.a.established_ipsec(), 1);
    let st = net.a.status(net.now);
    let l = line_with(&st, &format!("#{first}: \"net\" STATE_QUICK_I2")).unwrap();
    assert!(l.contains("; EVENT_SA_EXPIRE in 29s"), "{l}");
    net.advance_to(125_000);
    assert_eq!(net.a.established_ipsec(), 0, "{}", net.a.dump());
    assert_eq!(net.b.established_ipsec(), 0, "{}", net.b.dump());
    assert!(net.a.sadb.is_empty() && net.b.sadb.is_empty());
}

// ---------------------------------------------------------------------------------------------
// DPD: probe only a quiet peer; dpdtimeout from the last sign of life.

#[test]
fn dpd_probes_only_a_quiet_peer() {
    // Only A probes (B's ACKs and A's R_U_THEREs are the only Informationals).
    let a = Node::new(
        WEST,
        1,
        &conf(
            "net",
            "\tauthby=secret\n\tdpdaction=clear\n\tdpddelay=30s\n\tdpdtimeout=120s\n",
        ),
        PSK,
    );
    let b = Node::new(EAST, 2, &conf("net", "\tauthby=secret\n"), PSK);
    let mut net = Net::new(a, b);
    net.up_a("net");
    assert_up(&net);
    // Inbound traffic all along: no R_U_THERE at all.
    let t0 = net.now;
    net.advance_with(200_000, 5_000, |n| {
        let now = n.now;
        n.a.use_sas(now, true, false, 0);
    });
    assert_eq!(net.a.informationals_since(t0), 0, "{}", net.a.dump());
    // The peer stops answering IKE, but its traffic still arrives: alive, no probe.
    net.drop = Box::new(|d, _| d == Dir::BtoA);
    net.advance_with(300_000, 5_000, |n| {
        let now = n.now;
        n.a.use_sas(now, true, false, 0);
    });
    assert_eq!(net.a.informationals_since(t0), 0, "{}", net.a.dump());
    assert_eq!(net.a.established_ipsec(), 1);
    // Outbound traffic alone is no sign of life: probes start dpddelay after the last inbound
    // packet, and the peer is dead dpdtimeout after it (300 + 120 s).
    net.advance_with(419_000, 5_000, |n| {
        let now = n.now;
        n.a.use_sas(now, false, true, 0);
    });
    let probes = net.a.informationals_since(300_000);
    assert!(
        (3..=4).contains(&probes),
        "{probes} probes\n{}",
        net.a.dump()
    );
    assert!(!net.a.log_has("declaring peer dead"), "{}", net.a.dump());
    net.advance_to(421_000);
    assert!(
        net.a
            .log_has("DPD: No response from peer - declaring peer dead"),
        "{}",
        net.a.dump()
    );
    assert!(net.a.sadb.is_empty());
}

#[test]
fn dpd_ack_keeps_an_idle_peer() {
    // No traffic at all: probes every dpddelay, the ACKs keep the peer alive.
    let a = Node::new(
        WEST,
        1,
        &conf(
            "net",
            "\tauthby=secret\n\tdpdaction=clear\n\tdpddelay=30s\n\tdpdtimeout=120s\n",
        ),
        PSK,
    );
    let b = Node::new(EAST, 2, &conf("net", "\tauthby=secret\n"), PSK);
    let mut net = Net::new(a, b);
    net.up_a("net");
    net.advance_to(300_000);
    assert!(net.a.informationals_since(0) >= 9, "{}", net.a.dump());
    assert_eq!(net.a.established_ipsec(), 1);
    assert!(!net.a.log_has("declaring peer dead"));
}

// ---------------------------------------------------------------------------------------------
// --status.

#[test]
fn status_used_ago_and_algorithms() {
    let mut net = psk_pair("");
    net.up_a("net");
    let serial = ipsec_serials(&net.a)[0];
    let st = net.a.status(net.now);
    let second = format!("#{serial}: \"net\" esp.");
    assert!(line_with(&st, &second).is_some(), "{st:#?}");
    assert!(line_with(&st, "used ").is_none(), "{st:#?}");
    net.advance_to(10_000);
    net.a.use_sas(net.now, true, false, 2_000);
    net.advance_to(15_000);
    let st = net.a.status(net.now);
    assert!(
        line_with(&st, &format!("#{serial}: \"net\" used 7s ago; esp.")).is_some(),
        "{st:#?}"
    );
    // A more recent outbound use wins.
    net.a.use_sas(net.now, false, true, 1_000);
    let st = net.a.status(net.now);
    assert!(
        line_with(&st, &format!("#{serial}: \"net\" used 1s ago; esp.")).is_some(),
        "{st:#?}"
    );
    // Openswan's algorithm block between the debug line and the conns, and the per-conn
    // newest-algorithm lines.
    let debug = st.iter().position(|l| l == "debug none").unwrap();
    assert_eq!(st[debug + 1], " ");
    assert_eq!(
        st[debug + 2],
        "algorithm ESP encrypt: id=3, name=ESP_3DES, ivlen=64, keysizemin=168, keysizemax=168"
    );
    for l in [
        "algorithm ESP encrypt: id=12, name=ESP_AES, ivlen=128, keysizemin=128, keysizemax=256",
        "algorithm ESP auth attr: id=2, name=AUTH_ALGORITHM_HMAC_SHA1, keysizemin=160, keysizemax=160",
        "algorithm IKE encrypt: id=5, name=OAKLEY_3DES_CBC, blocksize=8, keydeflen=192",
        "algorithm IKE encrypt: id=7, name=OAKLEY_AES_CBC, blocksize=16, keydeflen=128",
        "algorithm IKE hash: id=4, name=OAKLEY_SHA2_256, hashsize=32",
        "algorithm IKE dh group: id=14, name=OAKLEY_GROUP_MODP2048, bits=2048",
        "\"net\":   IKE algorithm newest: AES_CBC_128-SHA2_256-MODP2048",
        "\"net\":   ESP algorithm newest: AES_128-HMAC_SHA2_256; pfsgroup=<Phase1>",
    ] {
        assert!(st.iter().any(|x| x == l), "missing {l:?} in {st:#?}");
    }
    let last_alg = st
        .iter()
        .rposition(|l| l.starts_with("algorithm "))
        .unwrap();
    assert_eq!(st[last_alg + 1], " ");
    // Then the bounds and their hits, a spacer, and the conns.
    assert!(st[last_alg + 2].starts_with("limits: states "), "{st:#?}");
    assert!(st[last_alg + 3].starts_with("limits hit: "), "{st:#?}");
    assert_eq!(st[last_alg + 4], " ");
    assert!(
        st[last_alg + 5].starts_with("\"net\": 10.0.1.0/24"),
        "{st:#?}"
    );
    let newest = st
        .iter()
        .position(|l| l.starts_with("\"net\":   newest ISAKMP SA: #1"))
        .unwrap();
    assert!(st[newest + 1].contains("IKE algorithm newest"), "{st:#?}");
}

#[test]
fn status_pending_phase2_and_bare_shunts() {
    let mut net = psk_pair("");
    net.a = Node::new(
        WEST,
        1,
        &conf("net", "\tauthby=secret\n").replace("auto=add", "auto=route"),
        PSK,
    );
    // The peer does not answer yet.
    net.drop = Box::new(|_, _| true);
    net.run();
    net.a.p.handle_acquire(
        net.now,
        crate::klips::Acquire {
            src: Ipv4Addr::new(10, 0, 1, 5).into(),
            dst: Ipv4Addr::new(10, 0, 2, 9).into(),
            proto: 6,
            sport: 4000,
            dport: 80,
        },
    );
    net.run();
    let st = net.a.status(net.now);
    let i = st
        .iter()
        .position(|l| l.starts_with("#1: \"net\" STATE_MAIN_I1"))
        .unwrap_or_else(|| panic!("{st:#?}"));
    assert_eq!(st[i + 1], "#1: pending Phase 2 for \"net\" replacing #0");
    assert_eq!(st[i + 2], " ");
    assert_eq!(
        st[i + 3],
        "10.0.1.5/32:0 -0-> 10.0.2.9/32:0 => %hold 0    acquire"
    );
    assert_eq!(st[i + 4], " ");
    assert_eq!(st.len(), i + 5);
    // Once up, the pending line and the bare %hold are gone.
    net.drop = Box::new(|_, _| false);
    net.advance_to(11_000);
    assert_up(&net);
    let st = net.a.status(net.now);
    assert!(line_with(&st, "pending Phase 2").is_none(), "{st:#?}");
    assert!(line_with(&st, "%hold").is_none(), "{st:#?}");
    assert_eq!(st.last().map(String::as_str), Some(" "));
    assert!(
        st[st.len() - 2].starts_with("#1: \"net\" STATE_MAIN_I4"),
        "{st:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Stale shunts (spec 4).

fn acq(src: [u8; 4], dst: [u8; 4]) -> crate::klips::Acquire {
    crate::klips::Acquire {
        src: Ipv4Addr::from(src).into(),
        dst: Ipv4Addr::from(dst).into(),
        proto: 1,
        sport: 0,
        dport: 0,
    }
}

fn hold_said() -> Said {
    Said::new(Proto::Int, Shunt::Hold.spi(), Ipv4Addr::UNSPECIFIED)
}

fn h(a: [u8; 4]) -> Subnet {
    Subnet::host(Ipv4Addr::from(a))
}

/// A shunt scan report: the conn's %trap plus `holds`.
fn scan(holds: &[([u8; 4], [u8; 4])]) -> Vec<ShuntEroute> {
    let mut v = vec![ShuntEroute {
        src: "10.0.1.0/24".parse().unwrap(),
        dst: "10.0.2.0/24".parse().unwrap(),
        shunt: Shunt::Trap,
        packets: 3,
    }];
    v.extend(holds.iter().map(|(s, d)| ShuntEroute {
        src: h(*s),
        dst: h(*d),
        shunt: Shunt::Hold,
        packets: 1,
    }));
    v
}

const UNCOVERED: &str =
    "10.0.1.5/32:0 -0-> 10.0.2.9/32:0 => %hold 0    no routed connection covers it";

#[test]
fn uncovered_acquire_hold_is_kept_until_the_next_scan() {
    // The conn is only added (no %trap of its own): an acquire for its subnets (a %trap made
    // with `ipsec eroute`, or one left from an unrouted conn) finds no routed conn.
    let mut net = psk_pair("");
    net.a.p.cfg.shunt_scan_interval = 2;
    net.a.p.next_shunt_scan = 2_000;
    net.a
        .p
        .handle_acquire(net.now, acq([10, 0, 1, 5], [10, 0, 2, 9]));
    net.run();
    assert!(net.a.eroutes.is_empty(), "{:?}", net.a.eroutes);
    assert!(net.a.log_has(
        "acquire from 10.0.1.5 to 10.0.2.9: no routed connection covers it; %hold kept as a bare shunt until the next shunt scan"
    ));
    assert!(net.a.p.sas.is_empty());
    let st = net.a.status(net.now);
    assert!(st.iter().any(|l| l == UNCOVERED), "{st:#?}");
    // Not yet a full interval old at the first scan; deleted by the next.
    net.advance_to(1_500);
    net.a
        .p
        .handle_shunt_scan(net.now, &scan(&[([10, 0, 1, 5], [10, 0, 2, 9])]));
    net.run();
    assert!(net.a.eroutes.is_empty(), "{:?}", net.a.eroutes);
    net.advance_to(3_500);
    net.a
        .p
        .handle_shunt_scan(net.now, &scan(&[([10, 0, 1, 5], [10, 0, 2, 9])]));
    net.run();
    assert_eq!(
        net.a.eroutes,
        [(
            ErouteOp::Delete,
            h([10, 0, 1, 5]),
            h([10, 0, 2, 9]),
            hold_said()
        )]
    );
    assert!(net.a.log_has(
        "expire bare shunt 10.0.1.5/32:0 -0-> 10.0.2.9/32:0 => %hold (no routed connection covers it)"
    ));
    assert!(net.a.p.bare_shunts.is_empty());
    // Replaced by hand meanwhile: forgotten, not deleted.
    net.a
        .p
        .handle_acquire(net.now, acq([10, 0, 1, 5], [10, 0, 2, 8]));
    net.advance_to(7_000);
    let before = net.a.eroutes.len();
    let mut v = scan(&[]);
    v.push(ShuntEroute {
        src: h([10, 0, 1, 5]),
        dst: h([10, 0, 2, 8]),
        shunt: Shunt::Pass,
        packets: 0,
    });
    net.a.p.handle_shunt_scan(net.now, &v);
    net.run();
    assert_eq!(net.a.eroutes.len(), before);
    assert!(net.a.p.bare_shunts.is_empty());
}

#[test]
fn uncovered_hold_is_taken_over_by_a_conn() {
    // Routing a conn that covers it starts the negotiation the packet waits for, and the
    // packet is released into the tunnel.
    let mut net = psk_pair("");
    net.a
        .p
        .handle_acquire(net.now, acq([10, 0, 1, 5], [10, 0, 2, 9]));
    net.run();
    net.whack_a(3, WhackCmd::Route("net".into()));
    assert!(
        net.a.log_has(
            "\"net\": initiate on demand from 10.0.1.5:0 to 10.0.2.9:0 because: %hold found"
        ),
        "{}",
        net.a.dump()
    );
    assert_up(&net);
    let head = net
        .a
        .eroutes
        .iter()
        .rev()
        .find(|e| e.1.len() == 24)
        .unwrap()
        .3;
    let narrow: Vec<_> = net
        .a
        .eroutes
        .iter()
        .filter(|e| e.1 == h([10, 0, 1, 5]))
        .map(|e| (e.0, e.3))
        .collect();
    assert_eq!(
        narrow,
        [(ErouteOp::Replace, head), (ErouteOp::Delete, hold_said())]
    );
    assert!(net.a.p.bare_shunts.is_empty());
    // `--up` of an added conn releases an uncovered hold it covers through the tunnel.
    let mut net = psk_pair("");
    net.a
        .p
        .handle_acquire(net.now, acq([10, 0, 1, 5], [10, 0, 2, 9]));
    net.run();
    net.up_a("net");
    assert_up(&net);
    let narrow: Vec<_> = net
        .a
        .eroutes
        .iter()
        .filter(|e| e.1 == h([10, 0, 1, 5]))
        .map(|e| (e.0, e.3.proto))
        .collect();
    assert_eq!(
        narrow,
        [
            (ErouteOp::Replace, Proto::Tun),
            (ErouteOp::Delete, Proto::Int)
        ]
    );
    assert!(net.a.p.bare_shunts.is_empty());
}

#[test]
fn shunt_scan_handles_orphaned_holds_and_expires_bare_shunts() {
    let mut net = psk_pair("");
    net.a = Node::new(
        WEST,
        1,
        &conf("net", "\tauthby=secret\n\tkeyingtries=%forever\n").replace("auto=add", "auto=route"),
        PSK,
    );
    net.a.p.cfg.shunt_scan_interval = 2;
    net.a.p.next_shunt_scan = 2_000;
    net.drop = Box::new(|_, _| true);
    net.run();
    assert!(!net.a.p.shunt_scan_due(1_000));
    assert!(net.a.p.shunt_scan_due(2_000));
    net.advance_to(2_000);
    // Two %holds Pluto never heard of (their acquires were lost): one the routed conn covers,
    // one nobody does.
    let before = net.a.eroutes.len();
    let both = [
        ([10, 0, 1, 5], [10, 0, 2, 9]),
        ([10, 0, 1, 5], [10, 9, 9, 9]),
    ];
    net.a.p.handle_shunt_scan(net.now, &scan(&both));
    net.run();
    assert!(!net.a.p.shunt_scan_due(3_000));
    assert!(
        net.a.log_has(
            "\"net\": initiate on demand from 10.0.1.5:0 to 10.0.2.9:0 because: %hold found"
        ),
        "{}",
        net.a.dump()
    );
    assert_eq!(
        net.a.p.sas.len(),
        1,
        "Main Mode started for the covered one"
    );
    assert_eq!(net.a.eroutes.len(), before);
    let st = net.a.status(net.now);
    for l in [
        "10.0.1.5/32:0 -0-> 10.0.2.9/32:0 => %hold 0    acquire",
        "10.0.1.5/32:0 -0-> 10.9.9.9/32:0 => %hold 0    no routed connection covers it",
    ] {
        assert!(st.iter().any(|x| x == l), "missing {l:?} in {st:#?}");
    }
    // The uncovered one goes at the next scan; the one waiting for the negotiation when it is
    // older than SHUNT_PATIENCE (7.5 intervals = 15 s) without a new acquire for it (the %trap
    // catches the next packet).
    for t in [4_000, 8_000, 12_000, 16_000, 18_000] {
        net.advance_to(t);
        let before = net.a.eroutes.len();
        // The datapath lists what is left: after 4 s only the covered pair's %hold.
        let left = if t == 4_000 { &both[..] } else { &both[..1] };
        net.a.p.handle_shunt_scan(net.now, &scan(left));
        net.run();
        let new = &net.a.eroutes[before..];
        match t {
            4_000 => assert_eq!(
                new,
                [(
                    ErouteOp::Delete,
                    h([10, 0, 1, 5]),
                    h([10, 9, 9, 9]),
                    hold_said()
                )]
            ),
            18_000 => assert_eq!(
                new,
                [(
                    ErouteOp::Delete,
                    h([10, 0, 1, 5]),
                    h([10, 0, 2, 9]),
                    hold_said()
                )]
            ),
            _ => assert!(new.is_empty(), "at {t}: {new:?}"),
        }
    }
    assert!(net
        .a
        .log_has("expire bare shunt 10.0.1.5/32:0 -0-> 10.0.2.9/32:0 => %hold (acquire)"));
    // The negotiation for the covered pair goes on (keyingtries=%forever).
    assert_eq!(net.a.p.sas.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// RESPONDER-LIFETIME (RFC 2407 4.6.3.1).

#[test]
fn responder_lifetime_is_sent_and_honoured() {
    let mut net = psk_pair_each("\tkeylife=3600s\n\trekeyfuzz=0%\n", "\tkeylife=600s\n");
    net.up_a("net");
    assert_up(&net);
    assert!(
        net.b.log_has(
            "IPsec SA lifetime shortened to 600s (peer proposed 3600s): sending RESPONDER-LIFETIME"
        ),
        "{}",
        net.b.dump()
    );
    assert!(
        net.a
            .log_has("received RESPONDER-LIFETIME: IPsec SA lifetime 600s"),
        "{}",
        net.a.dump()
    );
    let p2 = |n: &Node| {
        n.p.sas
            .children()
            .map(|c| (c.life, c.expires_at))
            .next()
            .unwrap()
    };
    assert_eq!(p2(&net.b).0, 600);
    assert_eq!(p2(&net.a), (600, net.now + 600_000));
    // The initiator rekeys before the responder's lifetime runs out (rekeymargin 540 s).
    let st = net.a.status(net.now);
    assert!(
        line_with(&st, "STATE_QUICK_I2").is_some_and(|l| l.contains("EVENT_SA_REPLACE in 60s")),
        "{st:#?}"
    );
    // Not shortened: no notification.
    let mut net = psk_pair("");
    net.up_a("net");
    assert!(!net.b.log_has("RESPONDER-LIFETIME"));
    assert!(!net.a.log_has("RESPONDER-LIFETIME"));
    assert_eq!(p2(&net.a).0, 28800);
}
