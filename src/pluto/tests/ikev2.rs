//! IKEv2 between two engines: IKE_SA_INIT, IKE_AUTH with PSK and the first child SA,
//! INVALID_KE_PAYLOAD, refusals, CREATE_CHILD_SA rekey, Delete, liveness, retransmission,
//! and the `keyexchange=` / `ikev2=` choice.

use super::scenarios::{assert_up, sas_match};
use super::*;

/// West and east with the same PSK conn speaking IKEv2, `extra_a`/`extra_b` per side.
fn v2_pair(extra_a: &str, extra_b: &str) -> Net {
    psk_pair_each(
        &format!("\tkeyexchange=ikev2\n{extra_a}"),
        &format!("\tkeyexchange=ikev2\n{extra_b}"),
    )
}

#[test]
fn ikev2_psk_establishes_ike_and_child_sa() {
    let mut net = v2_pair("", "");
    net.up_a("net");
    assert_up(&net);
    let a = &net.a;
    for (code, text) in [
        (
            130,
            "\"net\" #1: STATE_V2_PARENT_I1: sent IKE_SA_INIT request",
        ),
        (131, "\"net\" #1: STATE_V2_PARENT_I2: sent IKE_AUTH request"),
        (
            4,
            "\"net\" #1: STATE_V2_ESTABLISHED_IKE_SA: IKE SA established",
        ),
        (
            4,
            "\"net\" #2: STATE_V2_ESTABLISHED_CHILD_SA: IPsec SA established {ESP=>0x",
        ),
    ] {
        assert!(
            a.whack_has(code, text),
            "missing {code} {text}:\n{:?}",
            a.whack
        );
    }
    assert_eq!(a.done, vec![(1, 0)]);
    assert!(net.b.log_has("STATE_V2_PARENT_R1"), "{}", net.b.dump());
    // Both sides' first IKE SA and child SA, Pluto-style, with the default suites.
    let st = net.a.status(net.now);
    assert!(
        st.iter()
            .any(|l| l.starts_with("#1: \"net\" STATE_V2_ESTABLISHED_IKE_SA (IKE SA established)")),
        "{st:#?}"
    );
    assert!(
        st.iter()
            .any(|l| l.starts_with("#2: \"net\" STATE_V2_ESTABLISHED_CHILD_SA")),
        "{st:#?}"
    );
    assert!(
        st.iter()
            .any(|l| l.contains("IKE algorithm newest: AES_GCM_16_256-SHA2_256-CURVE25519")),
        "{st:#?}"
    );
    let st = net.b.status(net.now);
    assert!(
        st.iter()
            .any(|l| l.starts_with("#1: \"net\" STATE_V2_ESTABLISHED_IKE_SA")),
        "{st:#?}"
    );
    // Routed into the tunnel and updown ran on both sides.
    for n in [&net.a, &net.b] {
        assert!(n
            .eroutes
            .iter()
            .any(|(_, _, _, said)| said.proto == crate::said::Proto::Tun));
        assert!(n.updown.contains(&Verb::Up), "{:?}", n.updown);
    }
    // A retransmitted IKE_AUTH request gets the same answer, not a second child SA.
    let auth = net
        .a
        .sent
        .iter()
        .find(|(_, _, _, d)| d.get(18) == Some(&35))
        .cloned()
        .unwrap();
    let before = net.b.sent.len();
    net.b.p.handle_datagram(net.now, auth.2, auth.1, &auth.3);
    net.run();
    assert_eq!(net.b.sent.len(), before + 1);
    assert_eq!(net.b.established_ipsec(), 1);
    assert_eq!(net.a.established_ipsec(), 1);
}

#[test]
fn ikev2_explicit_suites_and_chacha() {
    for (ike, esp) in [
        ("aes128-sha256-modp2048", "aes128-sha256"),
        ("aes256gcm16-prfsha384-ecp384", "aes256gcm16"),
        ("aes128-sha256-curve25519", "chacha20poly1305"),
    ] {
        let extra = format!("\tike={ike}\n\tesp={esp}\n");
        let mut net = v2_pair(&extra, &extra);
        net.up_a("net");
        assert_up(&net);
    }
}

#[test]
fn ikev2_invalid_ke_payload_retry() {
    // A offers Curve25519 first (its KE), B only MODP2048.
    let mut net = v2_pair("", "\tike=aes128-sha256-modp2048\n");
    net.up_a("net");
    assert_up(&net);
    assert!(
        net.b.log_has("sending INVALID_KE_PAYLOAD"),
        "{}",
        net.b.dump()
    );
    assert!(
        net.a
            .log_has("received INVALID_KE_PAYLOAD: responder wants MODP2048"),
        "{}",
        net.a.dump()
    );
    let st = net.a.status(net.now);
    assert!(
        st.iter()
            .any(|l| l.contains("IKE algorithm newest: AES_CBC_128-SHA2_256-MODP2048")),
        "{st:#?}"
    );
}

#[test]
fn ikev2_wrong_psk_is_authentication_failed_on_both_sides() {
    let extra = "\tauthby=secret\n\tkeyexchange=ikev2\n";
    let a = Node::new(WEST, 1, &conf("net", extra), PSK);
    let b = Node::new(
        EAST,
        2,
        &conf("net", extra),
        "192.0.2.1 198.51.100.7: PSK \"something else\"\n",
    );
    let mut net = Net::new(a, b);
    net.up_a("net");
    assert_eq!(net.a.established_isakmp(), 0);
    assert_eq!(net.b.established_isakmp(), 0);
    assert!(net.a.sadb.is_empty() && net.b.sadb.is_empty());
    assert!(net.b.log_has("AUTHENTICATION_FAILED"), "{}", net.b.dump());
    assert!(
        net.a
            .log_has("IKE_AUTH response: received AUTHENTICATION_FAILED notification"),
        "{}",
        net.a.dump()
    );
    assert_eq!(net.a.done.len(), 1);
    assert_ne!(net.a.done[0].1, 0);
    assert_eq!(net.a.p.sas.len(), 0);
    assert_eq!(net.b.p.sas.len(), 0);
}

#[test]
fn ikev2_no_proposal_chosen_on_both_sides() {
    let mut net = v2_pair(
        "\tike=aes128-sha256-modp2048\n",
        "\tike=aes256-sha1-modp2048\n",
    );
    net.up_a("net");
    assert_eq!(net.a.established_isakmp(), 0);
    assert!(
        net.b.log_has("sending NO_PROPOSAL_CHOSEN"),
        "{}",
        net.b.dump()
    );
    assert!(
        net.a
            .log_has("IKE_SA_INIT response: received NO_PROPOSAL_CHOSEN notification"),
        "{}",
        net.a.dump()
    );
    assert_eq!(net.b.p.sas.len(), 0);
    // The child SA's ESP suites can be refused too: the IKE SA stays, the child fails.
    let mut net = v2_pair("\tesp=aes128-sha256\n", "\tesp=aes256gcm16\n");
    net.up_a("net");
    assert_eq!(net.a.established_isakmp(), 1);
    assert_eq!(net.a.established_ipsec(), 0);
    assert!(
        net.a
            .log_has("child SA failed: received NO_PROPOSAL_CHOSEN notification"),
        "{}",
        net.a.dump()
    );
    assert!(
        net.b.log_has("no acceptable ESP proposal"),
        "{}",
        net.b.dump()
    );
}

#[test]
fn ikev2_retransmits_then_gives_up() {
    let mut net = v2_pair("\tkeyingtries=1\n", "");
    net.drop = Box::new(|d, _| d == Dir::BtoA);
    net.up_a("net");
    net.advance_to(80_000);
    assert!(
        net.a
            .whack_has(10, "STATE_V2_PARENT_I1: retransmission; will wait 20s"),
        "{:?}",
        net.a.whack
    );
    assert!(
        net.a
            .log_has("max number of retransmissions (2) reached STATE_V2_PARENT_I1"),
        "{}",
        net.a.dump()
    );
    assert_eq!(net.a.p.sas.len(), 0);
    // B's half-open state went too (its IKE_SA_INIT answer never arrived).
    assert_eq!(net.b.p.sas.len(), 0, "{}", net.b.dump());
}

#[test]
fn ikev2_down_deletes_on_both_sides() {
    let mut net = v2_pair("", "");
    net.up_a("net");
    assert_up(&net);
    let before = net.a.sent.len();
    net.whack_a(2, WhackCmd::Down("net".into()));
    assert!(net.a.sadb.is_empty());
    assert!(net.b.sadb.is_empty(), "{}", net.b.dump());
    assert_eq!(net.b.p.sas.len(), 0, "{}", net.b.dump());
    assert!(
        net.b.log_has("received Delete for IKE SA"),
        "{}",
        net.b.dump()
    );
    // One INFORMATIONAL request (the IKE SA's Delete closes its child SA): a second one
    // before the first is answered would exceed the peer's window (RFC 7296 2.3).
    assert_eq!(net.a.sent.len() - before, 1, "{}", net.a.dump());
    // And from B's side.
    let mut net = v2_pair("", "");
    net.up_a("net");
    net.whack_b(2, WhackCmd::Down("net".into()));
    assert!(net.a.sadb.is_empty(), "{}", net.a.dump());
    assert_eq!(net.a.p.sas.len(), 0, "{}", net.a.dump());
}

#[test]
fn ikev2_child_rekey_with_create_child_sa() {
    let extra = "\tkeylife=20m\n\trekeymargin=3m\n\trekeyfuzz=0%\n";
    let mut net = v2_pair(extra, extra);
    net.up_a("net");
    assert_up(&net);
    let first = net.a.p.conns["net"].newest_ipsec.unwrap();
    net.advance_to(18 * 60_000);
    assert!(
        net.a.log_has("initiating CREATE_CHILD_SA to replace #2"),
        "{}",
        net.a.dump()
    );
    let newest = net.a.p.conns["net"].newest_ipsec.unwrap();
    assert_ne!(newest, first);
    // Still one IKE SA on each side: the child SA was rekeyed over it.
    assert_eq!(net.a.established_isakmp(), 1);
    assert_eq!(net.b.established_isakmp(), 1);
    // The replaced child SA went at once (RFC 7296 2.8), on both sides, before its expiry.
    assert!(net.a.p.sas.child(first).is_none(), "{}", net.a.dump());
    assert_eq!(net.b.established_ipsec(), 1, "{}", net.b.dump());
    assert!(
        net.b.log_has("received Delete for this child SA"),
        "{}",
        net.b.dump()
    );
    // The old child SA expires and is deleted on both sides; the new one carries traffic.
    net.advance_to(21 * 60_000);
    assert_up(&net);
    assert!(sas_match(&net.a, &net.b) >= 1);
    // With PFS from the IKE SA's group.
    assert!(net.a.sent.iter().any(|(_, _, _, d)| d.get(18) == Some(&36)));
}

/// Whether IKEv2 message `m` is an INFORMATIONAL request (exchange type 37, the original
/// initiator's flag, not a response): a liveness check or a Delete.
fn is_informational_request(m: &[u8]) -> bool {
    m.get(18) == Some(&37) && m.get(19) == Some(&0x08)
}

/// From now on the network loses A's first INFORMATIONAL request to B, and only that one.
fn lose_first_informational_request_of_a(net: &mut Net) {
    let mut lost = false;
    net.drop = Box::new(move |d, m| {
        let first = d == Dir::AtoB && is_informational_request(m) && !lost;
        lost |= first;
        first
    });
}

/// A liveness check the network loses is sent again (RFC 7296 2.1: every request is
/// retransmitted until answered): the peer's message IDs stay in step, so a later exchange
/// (a forced child rekey) is still answered.
#[test]
fn ikev2_lost_liveness_check_keeps_message_ids_in_step() {
    let mut net = v2_pair("\tdpddelay=30s\n\tdpdtimeout=120s\n", "");
    net.up_a("net");
    assert_up(&net);
    lose_first_informational_request_of_a(&mut net);
    net.advance_to(40_000);
    let before = net.a.established_ipsec();
    let first = net.a.p.conns["net"].newest_ipsec;
    net.rekey_a(7, "net", false);
    net.advance_to(60_000);
    assert_ne!(
        net.a.p.conns["net"].newest_ipsec,
        first,
        "the rekey after a lost liveness check was not answered\n{}\n{}",
        net.a.dump(),
        net.b.dump()
    );
    assert!(net.a.established_ipsec() >= before);
    assert!(!net.a.log_has("declaring peer dead"), "{}", net.a.dump());
}

/// A child SA's Delete waits while a request of ours is unanswered on the IKE SA (RFC 7296
/// 2.3: a window of one) and goes once that request is answered.
#[test]
fn ikev2_delete_waits_for_the_outstanding_request() {
    let mut net = v2_pair("\tdpddelay=30s\n\tdpdtimeout=120s\n", "");
    net.up_a("net");
    assert_up(&net);
    let requests = |n: &Node| {
        n.sent
            .iter()
            .filter(|(_, _, _, d)| is_informational_request(d))
            .count()
    };
    // The first liveness check is lost: it stays outstanding until its retransmission.
    lose_first_informational_request_of_a(&mut net);
    net.advance_to(35_000);
    assert_eq!(requests(&net.a), 1, "{}", net.a.dump());
    let child = net.a.p.conns["net"].newest_ipsec.unwrap();
    net.whack_a(5, WhackCmd::DeleteState(child));
    assert_eq!(
        requests(&net.a),
        1,
        "a Delete went out beside the unanswered request\n{}",
        net.a.dump()
    );
    net.advance_to(45_000);
    assert_eq!(
        requests(&net.a),
        3,
        "retransmission, then the Delete\n{}",
        net.a.dump()
    );
    assert!(
        net.b.log_has("received Delete for this child SA"),
        "{}",
        net.b.dump()
    );
    assert!(net.b.sadb.is_empty(), "{}", net.b.dump());
}

#[test]
fn ikev2_liveness_declares_a_dead_peer() {
    let mut net = v2_pair("\tdpdaction=clear\n\tdpddelay=30s\n\tdpdtimeout=120s\n", "");
    net.up_a("net");
    assert_up(&net);
    net.advance_to(65_000);
    assert_eq!(net.a.established_ipsec(), 1, "liveness keeps a live peer");
    // Liveness checks are empty INFORMATIONAL requests (exchange type 37).
    assert!(net
        .a
        .sent
        .iter()
        .any(|(_, _, _, d)| is_informational_request(d)));
    net.drop = Box::new(|d, _| d == Dir::BtoA);
    net.advance_to(65_000 + 130_000);
    assert!(
        net.a
            .log_has("DPD: No response from peer - declaring peer dead"),
        "{}",
        net.a.dump()
    );
    assert_eq!(net.a.established_ipsec(), 0);
}

#[test]
fn keyexchange_decides_the_version_both_ways() {
    // Nothing said: IKEv1 out (FreeS/WAN files keep working), either version in.
    let mut net = psk_pair_each("", "");
    net.up_a("net");
    assert_up(&net);
    assert!(net.a.log_has("STATE_MAIN_I4"), "{}", net.a.dump());
    let mut net = psk_pair_each("\tkeyexchange=ikev2\n", "");
    net.up_a("net");
    assert_up(&net);
    // The config setup knob makes IKEv2 the default.
    let a = Node::with_cfg(WEST, 1, &conf("net", "\tauthby=secret\n"), PSK, |c| {
        c.ike_version = crate::pluto::version::IkeVersion::V2
    });
    let b = Node::new(EAST, 2, &conf("net", "\tauthby=secret\n"), PSK);
    let mut net = Net::new(a, b);
    net.up_a("net");
    assert_up(&net);
    assert!(net.b.log_has("STATE_V2_PARENT_R1"), "{}", net.b.dump());
    // Restricted responders refuse the other version.
    for (a_extra, b_extra, refusal) in [
        (
            "",
            "\tikev2=insist\n",
            "initial Main Mode message received on",
        ),
        (
            "\tkeyexchange=ikev2\n",
            "\tkeyexchange=ikev1\n",
            "IKEv2 IKE_SA_INIT received on",
        ),
        (
            "\tikev2=propose\n",
            "\tikev2=never\n",
            "IKEv2 IKE_SA_INIT received on",
        ),
    ] {
        let a = Node::new(
            WEST,
            1,
            &conf(
                "net",
                &format!("\tauthby=secret\n\tkeyingtries=1\n{a_extra}"),
            ),
            PSK,
        );
        let b = Node::new(
            EAST,
            2,
            &conf("net", &format!("\tauthby=secret\n{b_extra}")),
            PSK,
        );
        let mut net = Net::new(a, b);
        net.up_a("net");
        assert_eq!(net.b.p.sas.len(), 0);
        assert!(
            net.b.log_has(refusal),
            "{a_extra} {b_extra}: {}",
            net.b.dump()
        );
    }
    // ikev2=permit: IKEv1 out, both in.
    let mut net = psk_pair_each("\tikev2=permit\n", "\tikev2=insist\n");
    net.up_a("net");
    assert_eq!(net.a.established_ipsec(), 0);
    net.whack_b(
        1,
        WhackCmd::Up {
            name: "net".into(),
            asynchronous: false,
        },
    );
    assert_eq!(net.b.established_ipsec(), 1, "{}", net.b.dump());
}

#[test]
fn keyexchange_and_ikev2_together_are_refused() {
    let mut p = Pluto::new(
        PlutoConfig {
            interfaces: vec![Interface {
                virt: "ipsec0".into(),
                phys: "eth0".into(),
                addr: WEST.into(),
            }],
            ..PlutoConfig::default()
        },
        Box::new(StdRng::seed_from_u64(1)),
    );
    let conf = IpsecConf::parse_str(
        &conf(
            "net",
            "\tauthby=secret\n\tkeyexchange=ikev1\n\tikev2=insist\n",
        ),
        "/etc/ipsec.conf",
    )
    .unwrap();
    let errs: Vec<String> = p.load_conns(&conf).iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("keyexchange=ikev1 and ikev2=insist both given"),
        "{errs:?}"
    );
}

#[test]
fn ikev2_nat_traversal_forceencaps_and_road_warrior_behind_nat() {
    let mut net = v2_pair("\tforceencaps=yes\n", "");
    net.up_a("net");
    assert_up(&net);
    for n in [&net.a, &net.b] {
        let esp = n.esp();
        assert_eq!(esp.encap.map(|e| e.sport), Some(4500));
    }
    // IKE_AUTH and later go to port 4500.
    assert!(net.a.sent.iter().skip(1).all(|s| s.1.port() == 4500));
    net.advance_to(25_000);
    assert!(net.a.keepalives >= 1);

    // A behind a NAT, B a Road-Warrior responder.
    let mut net = nat_road_warrior("\tkeyexchange=ikev2\n");
    net.up_a("rw");
    assert_up(&net);
    assert!(
        net.a.log_has("NAT-Traversal: we are behind a NAT"),
        "{}",
        net.a.dump()
    );
    assert!(net.b.log_has("NAT-Traversal: the peer is behind a NAT"));
    let esp = net.b.esp_out();
    assert_eq!(esp.encap.map(|e| e.dport), Some(5500));
    assert!(net.b.log_has("\"rw\"[1] 203.0.113.9 #"), "{}", net.b.dump());
    assert_eq!(
        net.b.p.conns["rw[1]"].that.client,
        crate::addr::Subnet::host(Ipv4Addr::new(10, 9, 0, 2))
    );
}

#[test]
fn ikev2_ike_sa_rekey_keeps_the_child_sas() {
    // A rekeys the IKE SA (its ikelifetime is shorter); then B does, on its own schedule.
    let mut net = v2_pair(
        "\tikelifetime=20m\n\trekeymargin=3m\n\trekeyfuzz=0%\n",
        "\tikelifetime=30m\n\trekeymargin=3m\n\trekeyfuzz=0%\n",
    );
    net.up_a("net");
    assert_up(&net);
    let child = net.a.p.conns["net"].newest_ipsec.unwrap();
    net.advance_to(18 * 60_000);
    assert!(
        net.a
            .log_has("initiating CREATE_CHILD_SA to rekey IKE SA #1"),
        "{}",
        net.a.dump()
    );
    assert!(
        net.b.log_has("IKE SA #1 rekeyed by the peer"),
        "{}",
        net.b.dump()
    );
    // One IKE SA each side (the old one deleted), the child SA moved under the new one.
    assert_eq!(net.a.p.sas.ikes().count(), 1, "{}", net.a.dump());
    assert_eq!(net.b.p.sas.ikes().count(), 1, "{}", net.b.dump());
    let new_a = net.a.p.conns["net"].newest_isakmp.unwrap();
    assert_ne!(new_a, SerialNo::new(1));
    assert_eq!(net.a.p.sas.child(child).unwrap().parent(), new_a);
    assert_eq!(net.a.p.conns["net"].newest_ipsec, Some(child));
    assert_up(&net);
    assert!(net
        .a
        .status(net.now)
        .iter()
        .any(|l| l.contains("STATE_V2_ESTABLISHED_IKE_SA")));
    // The new IKE SA carries further exchanges: a liveness check, Delete on --down.
    net.whack_a(2, WhackCmd::Down("net".into()));
    assert!(net.b.sadb.is_empty(), "{}", net.b.dump());
    assert_eq!(net.b.p.sas.len(), 0, "{}", net.b.dump());

    // B initiates the IKE SA rekey (A's lifetime is longer).
    let mut net = v2_pair(
        "\tikelifetime=40m\n\trekeymargin=3m\n\trekeyfuzz=0%\n",
        "\tikelifetime=20m\n\trekeymargin=3m\n\trekeyfuzz=0%\n",
    );
    net.up_a("net");
    net.advance_to(19 * 60_000);
    assert!(
        net.b
            .log_has("initiating CREATE_CHILD_SA to rekey IKE SA #1"),
        "{}",
        net.b.dump()
    );
    assert_eq!(net.a.p.sas.ikes().count(), 1, "{}", net.a.dump());
    assert_eq!(net.b.p.sas.ikes().count(), 1);
    assert_up(&net);
    // Another child SA over the rekeyed IKE SA (A is its responder now).
    net.whack_a(
        3,
        WhackCmd::Up {
            name: "net".into(),
            asynchronous: false,
        },
    );
    assert!(
        net.a.log_has("initiating CREATE_CHILD_SA"),
        "{}",
        net.a.dump()
    );
    assert_eq!(net.a.established_ipsec(), 2, "{}", net.a.dump());
    assert_eq!(net.b.established_ipsec(), 2, "{}", net.b.dump());
}

/// West and east authenticating with RSA keys (`leftrsasigkey`/`rightrsasigkey` and the
/// ipsec.secrets RSA blocks); east may know a wrong key for west.
fn v2_rsa_pair(west_key_for_east: Option<String>) -> Net {
    let (wk, wsec) = super::scenarios::rsa_keys(11);
    let (ek, esec) = super::scenarios::rsa_keys(12);
    let wpub = wk.public_key().to_text();
    let epub = ek.public_key().to_text();
    let seen = west_key_for_east.unwrap_or(wpub.clone());
    let both = "\tauthby=rsasig\n\tkeyexchange=ikev2\n\tleftid=@west\n\trightid=@east\n";
    Net::new(
        Node::new(
            WEST,
            1,
            &conf(
                "net",
                &format!("{both}\tleftrsasigkey={wpub}\n\trightrsasigkey={epub}\n"),
            ),
            &wsec,
        ),
        Node::new(
            EAST,
            2,
            &conf(
                "net",
                &format!("{both}\tleftrsasigkey={seen}\n\trightrsasigkey={epub}\n"),
            ),
            &esec,
        ),
    )
}

#[test]
fn ikev2_rsa_signatures() {
    let mut net = v2_rsa_pair(None);
    net.up_a("net");
    assert_up(&net);
    // RFC 7427 Digital Signature (method 14) in both IKE_AUTH messages: both ends announced
    // SHA2-256 in SIGNATURE_HASH_ALGORITHMS.
    for n in [&net.a, &net.b] {
        let s = n.p.sas.ikes().next().unwrap();
        assert_eq!(s.auth, Some(crate::pluto::proposal::AuthKind::Rsa));
        assert_eq!(
            s.peer_id,
            Some(crate::config::secrets::Id::Fqdn(
                if n.addr == WEST { "east" } else { "west" }.into()
            ))
        );
    }
    // Wrong public key for west on east: AUTHENTICATION_FAILED on both sides.
    let (other, _) = super::scenarios::rsa_keys(99);
    let mut net = v2_rsa_pair(Some(other.public_key().to_text()));
    net.up_a("net");
    assert_eq!(net.a.established_ipsec(), 0);
    assert!(
        net.b.log_has(
            "AUTHENTICATION_FAILED: signature check (on @west) failed (wrong key?); tried *"
        ),
        "{}",
        net.b.dump()
    );
    assert!(
        net.a
            .log_has("IKE_AUTH response: received AUTHENTICATION_FAILED notification"),
        "{}",
        net.a.dump()
    );
}

#[test]
fn ikev2_cookies_under_load_keep_state_bounded_and_let_a_real_peer_in() {
    let b_conf = format!(
        "version 2\nconn rw\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n"
    );
    let a_conf = format!(
        "version 2\nconn rw\n\tleft={WEST}\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tkeyexchange=ikev2\n\tauto=add\n"
    );
    let secrets = ": PSK \"rw secret\"\n";
    // An IKE_SA_INIT request to replay from spoofed addresses.
    let mut x = Node::new(WEST, 7, &a_conf, secrets);
    x.p.whack(
        0,
        WhackClient(1),
        WhackCmd::Up {
            name: "rw".into(),
            asynchronous: true,
        },
    );
    let init = std::iter::from_fn(|| x.p.poll_output())
        .find_map(|o| match o {
            Output::Send { data, .. } => Some(data),
            _ => None,
        })
        .unwrap();
    let a = Node::new(WEST, 1, &a_conf, secrets);
    let b = Node::with_cfg(EAST, 2, &b_conf, secrets, |c| c.cookie_threshold = 3);
    let mut net = Net::new(a, b);
    let local = SocketAddrV4::new(EAST, 500);
    for i in 0..20u8 {
        let src = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, i), 500);
        net.b.p.handle_datagram(0, local, src, &init);
    }
    net.run();
    // Three half-open states, then COOKIEs only.
    assert_eq!(net.b.p.sas.len(), 3, "{}", net.b.dump());
    assert!(
        net.b
            .log_has("IKE_SA_INIT without a valid COOKIE; sending COOKIE"),
        "{}",
        net.b.dump()
    );
    let cookies = net
        .b
        .sent
        .iter()
        .filter(|(_, _, _, d)| {
            crate::pluto::ikev2::wire::parse_message(d).is_ok_and(|m| {
                m.notify(crate::pluto::ikev2::wire::NotifyType::Cookie)
                    .is_some()
            })
        })
        .count();
    assert_eq!(cookies, 17);
    // The real peer echoes the COOKIE and gets in.
    net.up_a("rw");
    assert_eq!(
        net.a.established_ipsec(),
        1,
        "{}\n{}",
        net.a.dump(),
        net.b.dump()
    );
    assert_eq!(net.b.established_ipsec(), 1);
    assert!(
        net.a.log_has("received COOKIE: responder under load"),
        "{}",
        net.a.dump()
    );
    // The spoofed half-open states time out.
    net.advance_to(120_000);
    assert_eq!(net.b.p.sas.ikes().filter(|s| !s.established).count(), 0);
}

#[test]
fn ikev2_initial_contact_clears_a_restarted_peers_stale_sas() {
    let mut net = v2_pair("", "");
    net.up_a("net");
    assert_up(&net);
    // A restarts (nothing kept) and comes back with INITIAL_CONTACT.
    net.a = Node::new(
        WEST,
        5,
        &conf("net", "\tauthby=secret\n\tkeyexchange=ikev2\n"),
        PSK,
    );
    net.up_a("net");
    assert!(
        net.b.log_has("sent INITIAL_CONTACT in #3"),
        "{}",
        net.b.dump()
    );
    assert_eq!(net.b.p.sas.ikes().count(), 1, "{}", net.b.dump());
    assert_up(&net);
}

#[test]
fn ikev2_initiator_accepts_a_narrowed_child_sa() {
    // B's policy is a /25 inside A's /24 on both sides.
    let a = Node::new(
        WEST,
        1,
        &conf("net", "\tauthby=secret\n\tkeyexchange=ikev2\n"),
        PSK,
    );
    let b = Node::new(
        EAST,
        2,
        "version 2\nconn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/25\n\tright=198.51.100.7\n\trightsubnet=10.0.2.128/25\n\tauthby=secret\n\tkeyexchange=ikev2\n\tauto=add\n",
        PSK,
    );
    let mut net = Net::new(a, b);
    net.up_a("net");
    assert_up(&net);
    assert!(
        net.a
            .log_has("responder narrowed the traffic selectors to 10.0.1.0/25===10.0.2.128/25"),
        "{}",
        net.a.dump()
    );
    let c = net.a.p.sas.children().next().unwrap();
    assert_eq!(c.peer_client.to_string(), "10.0.2.128/25");
    // A peer whose selectors are outside ours is refused.
    let b = Node::new(
        EAST,
        2,
        "version 2\nconn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=198.51.100.7\n\trightsubnet=10.0.3.0/24\n\tauthby=secret\n\tkeyexchange=ikev2\n\tauto=add\n",
        PSK,
    );
    let a = Node::new(
        WEST,
        1,
        &conf("net", "\tauthby=secret\n\tkeyexchange=ikev2\n"),
        PSK,
    );
    let mut net = Net::new(a, b);
    net.up_a("net");
    assert_eq!(net.a.established_ipsec(), 0);
    assert!(net.b.log_has("sending TS_UNACCEPTABLE"), "{}", net.b.dump());
}

#[test]
fn ikev2_fragmentation_of_large_messages() {
    let small = |c: &mut PlutoConfig| c.ike_fragment_size = 160;
    let both = "\tauthby=secret\n\tkeyexchange=ikev2\n";
    let a = Node::with_cfg(WEST, 1, &conf("net", both), PSK, small);
    let b = Node::with_cfg(EAST, 2, &conf("net", both), PSK, small);
    let mut net = Net::new(a, b);
    // The first fragment of A's IKE_AUTH request is lost once: A resends all of them.
    let mut lost = false;
    net.drop = Box::new(move |d, data| {
        let first_skf =
            d == Dir::AtoB && data.get(16) == Some(&53) && data.get(32..34) == Some(&[0, 1][..]);
        if first_skf && !lost {
            lost = true;
            return true;
        }
        false
    });
    net.up_a("net");
    net.advance_to(15_000);
    assert_up(&net);
    let skf = |n: &Node| {
        n.sent
            .iter()
            .filter(|(_, _, _, d)| d.get(16) == Some(&53))
            .count()
    };
    assert!(skf(&net.a) >= 4, "A sent {} fragments", skf(&net.a));
    assert!(skf(&net.b) >= 2, "B sent {} fragments", skf(&net.b));
    assert!(
        net.a.whack_has(10, "STATE_V2_PARENT_I2: retransmission"),
        "{:?}",
        net.a.whack
    );
    // Later exchanges are fragmented too: Delete.
    net.whack_a(2, WhackCmd::Down("net".into()));
    assert_eq!(net.b.p.sas.len(), 0, "{}", net.b.dump());
    // The default size: nothing is fragmented.
    let mut net = v2_pair("", "");
    net.up_a("net");
    assert_up(&net);
    assert_eq!(skf(&net.a) + skf(&net.b), 0);
}

#[test]
fn ikev2_child_rekey_collision_leaves_one_new_child_sa() {
    let mut net = v2_pair("", "");
    net.up_a("net");
    assert_up(&net);
    let old = net.a.p.conns["net"].newest_ipsec.unwrap();
    // Both ends' datapaths report the soft lifetime at the same moment: both rekey.
    soft_expire_both(&mut net);
    net.run();
    for n in [&net.a, &net.b] {
        assert!(n.log_has("rekey collision with #"), "{}", n.dump());
    }
    // One new child SA on each side, the same one; the old one and the loser are gone.
    assert_up(&net);
    assert!(net.a.p.sas.child(old).is_none());
    let spis = |n: &Node| {
        let mut v: Vec<u32> = n
            .sadb
            .keys()
            .filter(|s| s.proto == crate::said::Proto::Esp)
            .map(|s| s.spi)
            .collect();
        v.sort();
        v
    };
    assert_eq!(spis(&net.a), spis(&net.b));
}

#[test]
fn ikev2_keys_for_wireshark_only_on_request() {
    let mut net = v2_pair("", "");
    net.up_a("net");
    assert_up(&net);
    let v = net.a.p.admin_view(false);
    assert!(v.ike_sas.iter().all(|s| s.keys.is_none()));
    assert_eq!(v.ike_sas[0].version, 2);
    let v = net.a.p.admin_view(true);
    let s = net.a.p.sas.ikes().next().unwrap();
    match &v.ike_sas[0].keys {
        Some(crate::admin::view::IkeKeys::V2(k)) => {
            assert_eq!(k.spi_i, s.spi_i());
            assert_eq!(k.spi_r, s.spi_r);
            let table = crate::admin::wireshark::ikev2_table(std::slice::from_ref(k));
            assert!(table.contains("AES-GCM"), "{}", table.as_str());
        }
        other => panic!("no IKEv2 keys: {other:?}"),
    }
}

/// The IKE SA and its child SA fall due for rekeying at the same moment: RFC 7296 2.3 allows
/// one request of ours outstanding (the peer's window is 1), so the second rekey waits for the
/// first one's response and both complete — none of the responses is dropped as unexpected.
#[test]
fn ikev2_simultaneous_ike_and_child_rekey_take_turns() {
    let extra = "\tikelifetime=20m\n\tkeylife=20m\n\trekeymargin=3m\n\trekeyfuzz=0%\n";
    let mut net = v2_pair(extra, "\tikelifetime=60m\n\tkeylife=60m\n");
    net.up_a("net");
    assert_up(&net);
    let child = net.a.p.conns["net"].newest_ipsec.unwrap();
    net.advance_to(18 * 60_000);
    assert!(
        net.a
            .log_has("initiating CREATE_CHILD_SA to rekey IKE SA #1"),
        "{}",
        net.a.dump()
    );
    assert!(
        !net.a.log_has("is outstanding; dropped"),
        "a response was dropped: {}",
        net.a.dump()
    );
    assert!(
        net.a.log_has("IKE SA established (rekeyed #1)"),
        "{}",
        net.a.dump()
    );
    assert!(
        net.a.log_has("waits for the outstanding exchange"),
        "the rekeys did not meet: {}",
        net.a.dump()
    );
    let new_ike = net.a.p.conns["net"].newest_isakmp.unwrap();
    assert_ne!(new_ike, SerialNo::new(1));
    let new_child = net.a.p.conns["net"].newest_ipsec.unwrap();
    assert_ne!(
        new_child,
        child,
        "the child SA was not rekeyed: {}",
        net.a.dump()
    );
    assert_eq!(net.a.p.sas.child(new_child).unwrap().parent(), new_ike);
    assert_eq!(net.a.p.sas.ikes().count(), 1, "{}", net.a.dump());
    assert_eq!(net.b.p.sas.ikes().count(), 1, "{}", net.b.dump());
    assert_up(&net);
}

/// `whack --rekey-ipsec` / `--rekey-ike` (Libreswan's forced rekey): long before any rekey
/// timer, CREATE_CHILD_SA replaces the newest child SA, then the IKE SA (the child SAs move
/// to the new IKE SA); the client gets its exit status at once; an unknown name is refused.
#[test]
fn ikev2_forced_rekey_of_child_and_ike_sa() {
    let mut net = v2_pair("", "");
    net.up_a("net");
    assert_up(&net);
    let (ike, child) = (
        net.a.p.conns["net"].newest_isakmp.unwrap(),
        net.a.p.conns["net"].newest_ipsec.unwrap(),
    );
    net.rekey_a(5, "net", false);
    assert!(
        net.a.log_has("forced rekey of IPsec SA"),
        "{}",
        net.a.dump()
    );
    assert!(
        net.a
            .log_has(&format!("initiating CREATE_CHILD_SA to replace #{child}")),
        "{}",
        net.a.dump()
    );
    let child2 = net.a.p.conns["net"].newest_ipsec.unwrap();
    assert_ne!(child2, child);
    assert_up(&net);
    net.rekey_a(6, "net", true);
    assert!(
        net.a.log_has(&format!(
            "initiating CREATE_CHILD_SA to rekey IKE SA #{ike}"
        )),
        "{}",
        net.a.dump()
    );
    let ike2 = net.a.p.conns["net"].newest_isakmp.unwrap();
    assert_ne!(ike2, ike);
    assert_eq!(net.a.p.sas.child(child2).unwrap().parent(), ike2);
    assert_eq!(net.a.p.sas.ikes().count(), 1, "{}", net.a.dump());
    assert_eq!(net.b.p.sas.ikes().count(), 1, "{}", net.b.dump());
    assert_up(&net);
    net.rekey_a(7, "nope", true);
    assert!(net.a.whack_has(21, "no connection named \"nope\""));
}

/// Both ends rekey the IKE SA at the same moment (RFC 7296 2.8.2): each answers the other's
/// CREATE_CHILD_SA normally, the exchange with the lowest of the four nonces made the redundant
/// IKE SA and its initiator deletes it. Both ends keep the same single new IKE SA, with the
/// child SA moved under it and its keys untouched.
#[test]
fn ikev2_ike_sa_rekey_collision_leaves_one_new_ike_sa() {
    // A (initiator) rekeys at 20m - 3m; B (responder, half the margin) at 20m - 6m/2.
    let mut net = v2_pair(
        "\tikelifetime=20m\n\trekeymargin=3m\n\trekeyfuzz=0%\n",
        "\tikelifetime=20m\n\trekeymargin=6m\n\trekeyfuzz=0%\n",
    );
    net.up_a("net");
    assert_up(&net);
    let child_a = net.a.p.conns["net"].newest_ipsec.unwrap();
    let child_b = net.b.p.conns["net"].newest_ipsec.unwrap();
    let sadb_a: Vec<_> = net.a.sadb.keys().copied().collect();
    net.advance_to(17 * 60_000 + 1_000);
    for n in [&net.a, &net.b] {
        assert!(
            n.log_has("initiating CREATE_CHILD_SA to rekey IKE SA #1"),
            "{}",
            n.dump()
        );
        assert!(n.log_has("IKE SA rekey collision over #1"), "{}", n.dump());
    }
    // Exactly one IKE SA on each side, the same one, and not the old one.
    assert_eq!(net.a.p.sas.ikes().count(), 1, "{}", net.a.dump());
    assert_eq!(net.b.p.sas.ikes().count(), 1, "{}", net.b.dump());
    let (ia, ib) = (
        net.a.p.sas.ikes().next().unwrap(),
        net.b.p.sas.ikes().next().unwrap(),
    );
    assert!(ia.established && ib.established);
    assert_eq!((ia.spi_i(), ia.spi_r), (ib.spi_i(), ib.spi_r));
    assert_ne!(ia.serial(), SerialNo::new(1));
    // The child SAs moved under it, their keys unchanged.
    assert_eq!(net.a.p.sas.child(child_a).unwrap().parent(), ia.serial());
    assert_eq!(net.b.p.sas.child(child_b).unwrap().parent(), ib.serial());
    let mut now_a: Vec<_> = net.a.sadb.keys().copied().collect();
    let mut before = sadb_a.clone();
    now_a.sort_by_key(|s| s.to_string());
    before.sort_by_key(|s| s.to_string());
    assert_eq!(now_a, before);
    assert_up(&net);
    // The survivor carries further exchanges: Delete on --down.
    net.whack_a(2, WhackCmd::Down("net".into()));
    assert!(net.b.sadb.is_empty(), "{}", net.b.dump());
    assert_eq!(net.b.p.sas.len(), 0, "{}", net.b.dump());
}

/// Whether `data` is a CREATE_CHILD_SA request (`response`: a response) sent by the IKE SA's
/// responder (`from_initiator`: by its initiator).
fn is_ccsa(data: &[u8], from_initiator: bool, response: bool) -> bool {
    let flags = data.get(19).copied().unwrap_or(0);
    data.get(18) == Some(&36)
        && (flags & 0x08 != 0) == from_initiator
        && (flags & 0x20 != 0) == response
}

/// The ESP SPIs a node has installed, sorted.
fn esp_spis(n: &Node) -> Vec<u32> {
    let mut v: Vec<u32> = n
        .sadb
        .keys()
        .filter(|s| s.proto == crate::said::Proto::Esp)
        .map(|s| s.spi)
        .collect();
    v.sort();
    v
}

/// Both ends' datapaths report the child SA's soft expiry at the same moment.
fn soft_expire_both(net: &mut Net) {
    let (sa, sb) = (net.a.esp_out().said, net.b.esp_out().said);
    let now = net.now;
    net.a
        .p
        .handle_sa_event(now, crate::klips::SaEvent::SoftExpired(sa));
    net.b
        .p
        .handle_sa_event(now, crate::klips::SaEvent::SoftExpired(sb));
}

/// Child SA rekey collisions whose requests do not cross cleanly (RFC 7296 2.8.1, 2.25): B's
/// request is lost once, so A's rekey completes and A deletes the old child SA before B's
/// retransmitted request for it arrives (A answers CHILD_SA_NOT_FOUND and B drops its rekey);
/// or A's response is lost once, so A learns of the collision only after B already deleted
/// the old child SA. Either way both ends keep exactly one, the same, child SA.
#[test]
fn ikev2_child_rekey_collision_when_requests_do_not_cross() {
    // B's CREATE_CHILD_SA request is lost once.
    let mut net = v2_pair("", "");
    net.up_a("net");
    assert_up(&net);
    let old = net.a.p.conns["net"].newest_ipsec.unwrap();
    let mut lost = false;
    net.drop = Box::new(move |d, data| {
        if d == Dir::BtoA && is_ccsa(data, false, false) && !lost {
            lost = true;
            return true;
        }
        false
    });
    soft_expire_both(&mut net);
    net.advance_to(net.now + 60_000);
    assert!(
        net.a
            .log_has("which we no longer have; sending CHILD_SA_NOT_FOUND"),
        "{}",
        net.a.dump()
    );
    assert!(
        net.b.log_has(
            "answered with CHILD_SA_NOT_FOUND: the peer replaced it already; dropping ours"
        ),
        "{}",
        net.b.dump()
    );
    assert!(net.a.p.sas.child(old).is_none());
    assert_up(&net);
    assert_eq!(net.a.p.sas.children().count(), 1, "{}", net.a.dump());
    assert_eq!(net.b.p.sas.children().count(), 1, "{}", net.b.dump());
    assert_eq!(esp_spis(&net.a), esp_spis(&net.b));
    assert_eq!(esp_spis(&net.a).len(), 2);

    // B deleted the child SA (its Delete is lost) when A rekeys it: CHILD_SA_NOT_FOUND, and A
    // negotiates a fresh child SA instead, dropping its stale one.
    let mut net = v2_pair("", "");
    net.up_a("net");
    assert_up(&net);
    let old = net.a.p.conns["net"].newest_ipsec.unwrap();
    let mut lost = false;
    net.drop = Box::new(move |d, data| {
        if d == Dir::BtoA && data.get(18) == Some(&37) && !lost {
            lost = true;
            return true;
        }
        false
    });
    let out_b = net.b.esp_out().said;
    let out_a = net.a.esp_out().said;
    let now = net.now;
    net.b
        .p
        .handle_sa_event(now, crate::klips::SaEvent::HardExpired(out_b));
    net.run();
    assert_eq!(net.b.established_ipsec(), 0);
    net.a
        .p
        .handle_sa_event(now, crate::klips::SaEvent::SoftExpired(out_a));
    net.run();
    assert!(
        net.a.log_has(
            "answered with CHILD_SA_NOT_FOUND: the peer deleted it; negotiating a new child SA"
        ),
        "{}",
        net.a.dump()
    );
    assert!(net.a.p.sas.child(old).is_none());
    assert_up(&net);
    assert_eq!(esp_spis(&net.a), esp_spis(&net.b));

    // A's CREATE_CHILD_SA response is lost once, for several seeds (so that both ends'
    // exchanges are the one with the lowest nonce in some runs).
    let mut outcomes = std::collections::HashSet::new();
    for seed in 0..8u64 {
        let extra = "\tauthby=secret\n\tkeyexchange=ikev2\n";
        let mut net = Net::new(
            Node::new(WEST, 10 + 2 * seed, &conf("net", extra), PSK),
            Node::new(EAST, 11 + 2 * seed, &conf("net", extra), PSK),
        );
        net.up_a("net");
        assert_up(&net);
        let mut lost = false;
        net.drop = Box::new(move |d, data| {
            if d == Dir::BtoA && is_ccsa(data, false, true) && !lost {
                lost = true;
                return true;
            }
            false
        });
        soft_expire_both(&mut net);
        net.advance_to(net.now + 60_000);
        assert!(
            net.a.whack_has(10, "STATE_V2_NEW_CHILD_I1: retransmission")
                || net.a.log_has("STATE_V2_NEW_CHILD_I1: retransmission"),
            "{}",
            net.a.dump()
        );
        assert!(net.b.log_has("rekey collision with #"), "{}", net.b.dump());
        let b_lost = net.b.log_has("has the lowest nonce; deleting it");
        if !b_lost {
            // A's exchange has the lowest nonce: A finds out only once its retransmitted
            // request is answered, after B deleted the old child SA.
            assert!(
                net.a.log_has("has the lowest nonce; deleting it"),
                "{}",
                net.a.dump()
            );
        }
        outcomes.insert(b_lost);
        assert_eq!(
            net.a.p.sas.children().count(),
            1,
            "seed {seed}: {}",
            net.a.dump()
        );
        assert_eq!(
            net.b.p.sas.children().count(),
            1,
            "seed {seed}: {}",
            net.b.dump()
        );
        assert_up(&net);
        assert_eq!(esp_spis(&net.a), esp_spis(&net.b));
    }
    assert_eq!(outcomes.len(), 2, "one side's exchange always lost");
}

/// `ikev2=propose`: IKEv2 first; a peer that never answers IKE_SA_INIT, or answers in a way
/// that shows it does not speak IKEv2 (an IKEv1 message, INVALID_MAJOR_VERSION), gets IKEv1
/// Main Mode for that keying attempt. `ikev2=insist` never falls back.
#[test]
fn ikev2_propose_falls_back_to_ikev1_and_insist_does_not() {
    let pair = |a_extra: &str| {
        Net::new(
            Node::new(
                WEST,
                1,
                &conf("net", &format!("\tauthby=secret\n{a_extra}")),
                PSK,
            ),
            Node::new(
                EAST,
                2,
                &conf("net", "\tauthby=secret\n\tikev2=never\n"),
                PSK,
            ),
        )
    };
    // B ignores IKE_SA_INIT (IKEv1 only for this conn): after the retransmissions, Main Mode.
    let mut net = pair("\tikev2=propose\n");
    net.up_a("net");
    assert_eq!(net.a.established_ipsec(), 0);
    net.advance_to(75_000);
    assert_up(&net);
    assert!(
        net.a.log_has("no answer to IKE_SA_INIT: the peer does not speak IKEv2; falling back to IKEv1 Main Mode for this attempt"),
        "{}",
        net.a.dump()
    );
    assert!(net.a.log_has("STATE_MAIN_I4"), "{}", net.a.dump());
    assert_eq!(net.a.done, vec![(1, 0)], "{:?}", net.a.whack);
    assert_eq!(net.a.p.sas.ikes().count(), 1);

    // An answer that is not IKEv2 at all, or INVALID_MAJOR_VERSION: at once.
    let ikev1_answer = |spi_i: &[u8]| {
        let mut m = spi_i.to_vec();
        m.extend([0u8; 8]);
        // Notification, version 1.0, Informational, no flags, message ID 0, length 40.
        m.extend([11, 0x10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 40]);
        // Notification payload: DOI 1, protocol ISAKMP, no SPI, INVALID-MAJOR-VERSION (5).
        m.extend([0, 0, 0, 12, 0, 0, 0, 1, 1, 0, 0, 5]);
        m
    };
    let ikev2_answer = |spi_i: &[u8]| {
        use crate::pluto::ikev2::wire;
        wire::Message {
            header: wire::Header {
                spi_i: wire::IkeSpi(spi_i.try_into().unwrap()),
                spi_r: wire::IkeSpi::ZERO,
                next_payload: wire::PayloadType::None,
                exchange_type: wire::ExchangeType::IkeSaInit,
                flags: wire::Flags::RESPONSE,
                message_id: 0,
            },
            payloads: vec![wire::Payload::Notify(wire::NotifyPayload::new(
                wire::NotifyType::InvalidMajorVersion,
                Vec::new(),
            ))],
        }
        .to_bytes()
        .unwrap()
    };
    type Answer = Box<dyn Fn(&[u8]) -> Vec<u8>>;
    let answers: [(Answer, &str); 2] = [
        (
            Box::new(ikev1_answer),
            "IKE_SA_INIT answered with an IKEv1 message",
        ),
        (
            Box::new(ikev2_answer),
            "IKE_SA_INIT answered with INVALID_MAJOR_VERSION",
        ),
    ];
    for (answer, why) in answers {
        let mut net = pair("\tikev2=propose\n");
        // IKEv2 from A never reaches B; the answer is forged as B's.
        net.drop = Box::new(|d, data| d == Dir::AtoB && data.get(17) == Some(&0x20));
        net.up_a("net");
        let init = net.a.sent[0].3.clone();
        assert_eq!(init[17], 0x20);
        let reply = answer(&init[..8]);
        net.a.p.handle_datagram(
            net.now,
            SocketAddrV4::new(WEST, 500),
            SocketAddrV4::new(EAST, 500),
            &reply,
        );
        net.run();
        assert!(
            net.a
                .log_has(&format!("{why}: the peer does not speak IKEv2")),
            "{}",
            net.a.dump()
        );
        assert_up(&net);
        assert!(net.a.log_has("STATE_MAIN_I4"), "{}", net.a.dump());
    }

    // Nothing IKEv1 can negotiate in ike=: no fallback either.
    let mut net = pair("\tikev2=propose\n\tike=aes256gcm16-prfsha384-ecp384\n\tkeyingtries=1\n");
    net.up_a("net");
    net.advance_to(75_000);
    assert!(
        net.a
            .log_has("but ike= lists no suite IKEv1 can negotiate: no fallback to IKEv1"),
        "{}",
        net.a.dump()
    );
    assert!(!net.a.log_has("STATE_MAIN_I1"), "{}", net.a.dump());

    // ikev2=insist: no fallback, whatever happens.
    let mut net = pair("\tikev2=insist\n\tkeyingtries=1\n");
    net.up_a("net");
    let init = net.a.sent[0].3.clone();
    net.a.p.handle_datagram(
        net.now,
        SocketAddrV4::new(WEST, 500),
        SocketAddrV4::new(EAST, 500),
        &ikev1_answer(&init[..8]),
    );
    net.advance_to(75_000);
    assert!(!net.a.log_has("falling back"), "{}", net.a.dump());
    assert!(!net.a.log_has("STATE_MAIN_I1"), "{}", net.a.dump());
    assert_eq!(net.a.established_ipsec(), 0);
    assert!(
        net.a
            .log_has("max number of retransmissions (2) reached STATE_V2_PARENT_I1"),
        "{}",
        net.a.dump()
    );
}

/// `reauth=yes`: an IKE SA due for replacement is reauthenticated make-before-break — a new
/// IKE_SA_INIT and IKE_AUTH (without INITIAL_CONTACT, so the peer keeps the old IKE SA
/// meanwhile), every child SA under the old IKE SA recreated over the new one, then the old
/// IKE SA deleted. `reauth=no` (the default) rekeys with CREATE_CHILD_SA
/// (`ikev2_ike_sa_rekey_keeps_the_child_sas`).
#[test]
fn ikev2_reauth_yes_reauthenticates_make_before_break() {
    let net2 = format!(
        "conn net2\n\tleft={WEST}\n\tleftsubnet=10.0.3.0/24\n\tright={EAST}\n\trightsubnet=10.0.4.0/24\n\tauthby=secret\n\tkeyexchange=ikev2\n\tauto=add\n"
    );
    let a_extra = "\tauthby=secret\n\tkeyexchange=ikev2\n\tikelifetime=20m\n\trekeymargin=3m\n\trekeyfuzz=0%\n\treauth=yes\n";
    let b_extra = "\tauthby=secret\n\tkeyexchange=ikev2\n\tikelifetime=60m\n";
    let mut net = Net::new(
        Node::new(WEST, 1, &(conf("net", a_extra) + &net2), PSK),
        Node::new(EAST, 2, &(conf("net", b_extra) + &net2), PSK),
    );
    net.up_a("net");
    net.whack_a(
        2,
        WhackCmd::Up {
            name: "net2".into(),
            asynchronous: false,
        },
    );
    assert_eq!(net.a.established_ipsec(), 2, "{}", net.a.dump());
    assert_eq!(net.b.established_ipsec(), 2, "{}", net.b.dump());
    let first: Vec<SerialNo> = net.a.p.sas.children().map(|c| c.serial()).collect();
    let first_b: Vec<SerialNo> = net.b.p.sas.children().map(|c| c.serial()).collect();
    let inits = |n: &Node| {
        n.logs
            .iter()
            .filter(|l| l.contains("responding to IKE_SA_INIT"))
            .count()
    };
    assert_eq!(inits(&net.b), 1);
    net.advance_to(18 * 60_000);
    assert!(
        net.a
            .log_has("initiating IKEv2 IKE SA to reauthenticate #1 (reauth=yes)"),
        "{}",
        net.a.dump()
    );
    assert!(!net.a.log_has("to rekey IKE SA"), "{}", net.a.dump());
    assert_eq!(inits(&net.b), 2, "{}", net.b.dump());
    assert!(!net.b.log_has("sent INITIAL_CONTACT"), "{}", net.b.dump());
    assert!(net.a.log_has("reauthenticated as #"), "{}", net.a.dump());
    // One IKE SA each side, the new one; both child SAs recreated under it, the old ones gone.
    for (n, old_children) in [(&net.a, &first), (&net.b, &first_b)] {
        assert_eq!(n.p.sas.ikes().count(), 1, "{}", n.dump());
        let ike = n.p.sas.ikes().next().unwrap();
        assert!(ike.established);
        assert_ne!(ike.serial(), SerialNo::new(1));
        assert_eq!(n.established_ipsec(), 2, "{}", n.dump());
        assert_eq!(n.p.sas.children().count(), 2, "{}", n.dump());
        for c in n.p.sas.children() {
            assert!(!old_children.contains(&c.serial()), "{}", n.dump());
            if n.addr == WEST {
                assert_eq!(c.parent(), ike.serial());
            }
        }
    }
    assert_eq!(esp_spis(&net.a), esp_spis(&net.b));
    assert_eq!(esp_spis(&net.a).len(), 4);
    assert!(sas_match(&net.a, &net.b) >= 2);
    assert!(sas_match(&net.b, &net.a) >= 2);
    // Both conns stay routed into their (new) tunnels.
    assert_eq!(
        net.a.p.conns["net"].newest_ipsec,
        net.a.p.conns["net"].eroute_owner
    );
    assert!(net.a.p.conns["net2"].newest_ipsec.is_some());

    // reauth= is checked at its file:line, and ignored (with one warning) for IKEv1.
    let mut p = Pluto::new(PlutoConfig::default(), Box::new(StdRng::seed_from_u64(1)));
    let bad = IpsecConf::parse_str(&conf("net", "\treauth=sometimes\n"), "/etc/ipsec.conf");
    let e = bad
        .map(|c| p.load_conns(&c))
        .map_or_else(|e| e.to_string(), |v| format!("{v:?}"));
    assert!(
        e.contains("/etc/ipsec.conf:") && e.contains("illegal reauth value \"sometimes\""),
        "{e}"
    );
    let mut net = Net::new(
        Node::new(
            WEST,
            1,
            &conf(
                "net",
                "\tauthby=secret\n\tkeyexchange=ikev1\n\treauth=yes\n",
            ),
            PSK,
        ),
        Node::new(EAST, 2, &conf("net", "\tauthby=secret\n"), PSK),
    );
    net.run();
    let warned = net
        .a
        .logs
        .iter()
        .filter(|l| l.contains("reauth= applies to IKEv2 only; ignored for this IKEv1 connection"))
        .count();
    assert_eq!(warned, 1, "{}", net.a.dump());
    assert!(net.a.log_has("/etc/ipsec.conf:"), "{}", net.a.dump());
}

/// Traffic-selector narrowing (RFC 7296 2.9) reaches the datapath: the eroute and the SAs'
/// policy selectors are the narrowed pair, not the conn's full subnets — whether the
/// responder narrowed our proposal (A's conn says 10.0.0.0/16, B accepts 10.0.1.0/24) or we
/// as responder narrowed the initiator's (B proposes 10.0.1.0/24 to A's 10.0.0.0/16).
#[test]
fn ikev2_narrowed_selectors_are_installed_on_both_roles() {
    let wide = "version 2\nconn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.0.0/16\n\tright=198.51.100.7\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tkeyexchange=ikev2\n\tauto=add\n";
    let narrow = "version 2\nconn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=198.51.100.7\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tkeyexchange=ikev2\n\tauto=add\n";
    let west_narrow: Subnet = "10.0.1.0/24".parse().unwrap();
    let west_wide: Subnet = "10.0.0.0/16".parse().unwrap();
    let east: Subnet = "10.0.2.0/24".parse().unwrap();
    // A's SA eroutes and SA policies are on 10.0.1.0/24===10.0.2.0/24 only.
    let check_a = |a: &Node| {
        let tunnels: Vec<_> = a
            .eroutes
            .iter()
            .filter(|(_, _, _, said)| said.proto == crate::said::Proto::Tun)
            .collect();
        assert!(!tunnels.is_empty(), "{:?}", a.eroutes);
        for (op, src, dst, _) in &tunnels {
            assert_eq!((*src, *dst), (west_narrow, east), "{op:?}: {:?}", a.eroutes);
        }
        for s in a.sadb.values() {
            if let Some((from, to)) = s.policy {
                assert!(
                    (from, to) == (east, west_narrow) || (from, to) == (west_narrow, east),
                    "{s:?}"
                );
            }
        }
        assert!(a.sadb.values().any(|s| s.policy.is_some()));
        let c = a.p.sas.children().next().unwrap();
        assert_eq!((c.our_client, c.peer_client), (west_narrow, east));
        assert_eq!(a.p.conns["net"].this.client, west_wide);
    };
    let b_pair = |b: &Node| {
        b.eroutes
            .iter()
            .filter(|(_, _, _, said)| said.proto == crate::said::Proto::Tun)
            .all(|(_, src, dst, _)| (*src, *dst) == (east, west_narrow))
    };

    // The responder narrows A's proposal.
    let mut net = Net::new(
        Node::new(WEST, 1, wide, PSK),
        Node::new(EAST, 2, narrow, PSK),
    );
    net.up_a("net");
    assert_up(&net);
    assert!(
        net.a
            .log_has("responder narrowed the traffic selectors to 10.0.1.0/24===10.0.2.0/24"),
        "{}",
        net.a.dump()
    );
    check_a(&net.a);
    assert!(b_pair(&net.b), "{:?}", net.b.eroutes);
    // A child rekey replaces the eroute on the same narrowed pair.
    soft_expire_both(&mut net);
    net.run();
    assert_up(&net);
    check_a(&net.a);
    assert_eq!(
        net.a.eroutes.last().map(|e| (e.0, e.1)),
        Some((ErouteOp::Replace, west_narrow)),
        "{:?}",
        net.a.eroutes
    );
    // Down: the narrowed eroute goes.
    net.whack_a(2, WhackCmd::Down("net".into()));
    assert!(net.a.sadb.is_empty());
    assert_eq!(
        net.a.eroutes.last().map(|e| (e.0, e.1, e.2)),
        Some((ErouteOp::Delete, west_narrow, east)),
        "{:?}",
        net.a.eroutes
    );

    // A as responder narrows B's proposal of 10.0.1.0/24 inside its 10.0.0.0/16.
    let mut net = Net::new(
        Node::new(WEST, 1, wide, PSK),
        Node::new(EAST, 2, narrow, PSK),
    );
    net.whack_b(
        1,
        WhackCmd::Up {
            name: "net".into(),
            asynchronous: false,
        },
    );
    assert_up(&net);
    assert!(
        net.a.log_has("narrowed the traffic selectors to the peer's 10.0.1.0/24===10.0.2.0/24 (policy 10.0.0.0/16===10.0.2.0/24)"),
        "{}",
        net.a.dump()
    );
    check_a(&net.a);
    assert!(b_pair(&net.b), "{:?}", net.b.eroutes);
}

/// IKE SA rekey collision whose messages do not arrive in step: B's answer to A's rekey is
/// lost once, so A learns of B's decision first (B's Delete for the old IKE SA, or for the
/// redundant new one) and its own rekey is retransmitted or abandoned. For several seeds, so
/// that either exchange has the lowest nonce: both ends still keep one, the same, IKE SA with
/// the child SA under it.
#[test]
fn ikev2_ike_sa_rekey_collision_with_a_lost_answer() {
    let mut outcomes = std::collections::HashSet::new();
    for seed in 0..8u64 {
        let both = "\tauthby=secret\n\tkeyexchange=ikev2\n\tikelifetime=20m\n\trekeyfuzz=0%\n";
        let mut net = Net::new(
            Node::new(
                WEST,
                20 + 2 * seed,
                &conf("net", &format!("{both}\trekeymargin=3m\n")),
                PSK,
            ),
            Node::new(
                EAST,
                21 + 2 * seed,
                &conf("net", &format!("{both}\trekeymargin=6m\n")),
                PSK,
            ),
        );
        net.up_a("net");
        assert_up(&net);
        let child = net.a.p.conns["net"].newest_ipsec.unwrap();
        let mut lost = false;
        net.drop = Box::new(move |d, data| {
            if d == Dir::BtoA && is_ccsa(data, false, true) && !lost {
                lost = true;
                return true;
            }
            false
        });
        net.advance_to(17 * 60_000 + 3 * 60_000);
        assert!(
            net.b.log_has("IKE SA rekey collision over #1"),
            "{}",
            net.b.dump()
        );
        let b_lost = net.b.log_has("our exchange has the lowest nonce");
        if !b_lost {
            // B's exchange won and B deleted the old IKE SA before A's rekey was answered.
            assert!(
                net.a.log_has("IKE SA #1 is gone: abandoning its rekey"),
                "{}",
                net.a.dump()
            );
        }
        outcomes.insert(b_lost);
        for n in [&net.a, &net.b] {
            assert_eq!(n.p.sas.ikes().count(), 1, "seed {seed}: {}", n.dump());
        }
        let (ia, ib) = (
            net.a.p.sas.ikes().next().unwrap(),
            net.b.p.sas.ikes().next().unwrap(),
        );
        assert!(ia.established && ib.established);
        assert_eq!(
            (ia.spi_i(), ia.spi_r),
            (ib.spi_i(), ib.spi_r),
            "seed {seed}"
        );
        assert_ne!(ia.serial(), SerialNo::new(1));
        assert_eq!(net.a.p.sas.child(child).unwrap().parent(), ia.serial());
        assert_up(&net);
    }
    assert_eq!(outcomes.len(), 2, "one side's exchange always lost");
}
