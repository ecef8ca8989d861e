//! Message shapes strongSwan 5.9 (charon, IKEv1) sends that once tripped Pluto, found by
//! tests/interop_strongswan.rs, reproduced in memory.

use super::*;
use crate::pluto::timers::TimerKind;

/// Main Mode I1 exactly as charon 5.9.8 sent it with `reauth_time = 0` (IKEv1 proposals
/// `aes128-sha1-modp2048`, PSK): SA with OAKLEY_LIFE_DURATION **0** seconds, then the XAuth,
/// DPD, Cisco fragmentation, RFC 3947 and draft-02\n NAT-T vendor IDs.
const CHARON_MI1_LIFE_0: &str = "c395035ad94d94ba00000000000000000110020000000000000000b40d0000\
3800000001000000010000002c01010001000000240101000080010007800e0080800200028004000e80030001800b\
0001800c00000d00000c09002689dfd6b7120d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56e\
bce88525e7de7f00d6c2d3800000000d0000144a131c81070358455c5728f20e95452f0000001490cb80913ebb696e\
086381b5ec427b1f";

const GW_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const GW_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A responder for charon's MI1 was given a lifetime of 0 s (min(proposed, ikelifetime)), so
/// the ISAKMP SA expired the moment it was established and Pluto started replacing it, over
/// and over. A zero OAKLEY_LIFE_DURATION now counts as "not given": our ikelifetime applies.
#[test]
fn main_mode_life_duration_zero_is_no_limit() {
    let conf = format!(
        "version 2\nconn net\n\tleft={GW_A}\n\tleftsubnet=10.0.1.0/24\n\tright={GW_B}\n\t\
         rightsubnet=10.0.2.0/24\n\tauthby=secret\n\tike=aes128-sha1-modp2048\n\t\
         esp=aes128-sha1\n\tikelifetime=1h\n\tauto=add\n"
    );
    let mut a = Node::new(GW_A, 5, &conf, "192.0.2.1 192.0.2.2 : PSK \"x\"\n");
    a.p.handle_datagram(
        1000,
        SocketAddrV4::new(GW_A, 500),
        SocketAddrV4::new(GW_B, 500),
        &unhex(CHARON_MI1_LIFE_0),
    );
    let mut replies = 0;
    while let Some(o) = a.p.poll_output() {
        match o {
            Output::Send { remote, .. } => {
                assert_eq!(remote, SocketAddrV4::new(GW_B, 500).into());
                replies += 1;
            }
            Output::Log(l) => a.logs.push(l),
            _ => {}
        }
    }
    assert_eq!(replies, 1, "no MR1 for charon's MI1:\n{}", a.dump());
    let p1 = a.p.sas.ikes().next().expect("a Main Mode state");
    assert_eq!(p1.life, 3600, "lifetime of the ISAKMP SA to be");
}

/// The same end to end, for Main Mode and Quick Mode: the initiator (standing in for charon)
/// proposes 0 s lifetimes for both SAs; the responder's SAs live for its own ikelifetime and
/// keylife, and it schedules no replacement before then.
#[test]
fn zero_lifetimes_proposed_by_the_peer_are_no_limit() {
    let mut net = psk_pair("\tikelifetime=1h\n\tkeylife=2h\n");
    for c in net.a.p.conns.values_mut() {
        c.ikelifetime = 0;
        c.keylife = 0;
    }
    net.up_a("net");
    assert_eq!(net.b.established_ipsec(), 1, "B:\n{}", net.b.dump());
    let sas = net
        .b
        .p
        .sas
        .ikes()
        .map(|s| (s.serial(), s.life, s.expires_at, "ISAKMP"));
    let sas = sas.chain(
        net.b
            .p
            .sas
            .children()
            .map(|c| (c.serial(), c.life, c.expires_at, "IPsec")),
    );
    for (serial, life, expires_at, what) in sas {
        let want = if what == "ISAKMP" { 3600 } else { 7200 };
        assert_eq!(life, want, "{what} SA lifetime on the responder");
        assert!(
            expires_at >= net.now + want * 1000,
            "{what} SA expires at {} (now {})",
            expires_at,
            net.now
        );
        if let Some((at, ev)) = net.b.p.sas.timers.event(serial) {
            assert!(
                at > net.now + 60_000 || !matches!(ev, TimerKind::SaReplace | TimerKind::SaExpire),
                "{what} SA: {ev:?} at {at} (now {})",
                net.now
            );
        }
    }
    assert!(!net.b.log_has("expiring soon"), "{}", net.b.dump());
    assert!(!net.b.log_has("SA expired"), "{}", net.b.dump());
}

/// INITIAL_CONTACT went out in MI3 of every Main Mode, also when replacing the ISAKMP SA while
/// IPsec SAs lived on. strongSwan then destroyed its old IKE_SA and, silently, the CHILD_SAs
/// our IPsec SAs pointed at ("destroying duplicate IKE_SA for peer '…', received
/// INITIAL_CONTACT"): the tunnel went dark at the first ISAKMP rekey. Only the first contact
/// carries it now (the responder logs what it ignores, as FreeS/WAN did).
#[test]
fn initial_contact_only_on_first_contact() {
    const IC: &str = "ignoring informational payload, type IPSEC_INITIAL_CONTACT";
    let mut net =
        psk_pair("\tikelifetime=100s\n\tkeylife=300s\n\trekeymargin=20s\n\trekeyfuzz=0%\n");
    net.up_a("net");
    assert_eq!(net.b.established_ipsec(), 1, "{}", net.b.dump());
    assert_eq!(net.b.logs.iter().filter(|l| l.contains(IC)).count(), 1);
    // ISAKMP replacement at 80 s, with the IPsec SA still up.
    net.advance_to(85_000);
    assert_eq!(net.a.established_isakmp(), 2, "{}", net.a.dump());
    assert_eq!(net.b.established_isakmp(), 2, "{}", net.b.dump());
    assert_eq!(
        net.b.logs.iter().filter(|l| l.contains(IC)).count(),
        1,
        "INITIAL_CONTACT on the replacement:\n{}",
        net.b.dump()
    );
    // After everything is gone, the next Main Mode is a first contact again.
    net.whack_a(9, WhackCmd::Down("net".into()));
    assert_eq!(net.a.established_isakmp() + net.a.established_ipsec(), 0);
    net.up_a("net");
    assert_eq!(
        net.b.logs.iter().filter(|l| l.contains(IC)).count(),
        2,
        "{}",
        net.b.dump()
    );
}
