//! Scenario tests: every exchange and failure mode, two engines back to back.

use super::*;
use crate::sadb::{Dir as SaDir, Sa, XformSpec};
use crate::said::{Proto, Shunt};

/// Checks that every outbound SA of `x` has a matching inbound SA on `y` (same SAID, same
/// keys) by passing an ESP packet (and comparing AH keys).
pub(super) fn sas_match(x: &Node, y: &Node) -> usize {
    let mut checked = 0;
    for (said, spec) in &x.sadb {
        if spec.dir != Some(SaDir::Out) || said.proto == Proto::Tun {
            continue;
        }
        // Under NAT the destinations differ (public vs private address): match on SPI.
        let peer = y
            .sadb
            .iter()
            .find(|(k, _)| k.proto == said.proto && k.spi == said.spi)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{said} missing on the peer"));
        assert_eq!(peer.dir, Some(SaDir::In));
        match (&spec.xform, &peer.xform) {
            (XformSpec::Esp { .. }, XformSpec::Esp { .. }) => {
                let out = Sa::new(spec, SaDir::Out, 0).expect("outbound SA builds");
                let inb = Sa::new(peer, SaDir::In, 0).expect("inbound SA builds");
                let (
                    crate::sadb::sa::Xform::Esp { crypto: co, .. },
                    crate::sadb::sa::Xform::Esp { crypto: ci, .. },
                ) = (&out.xform, &inb.xform)
                else {
                    panic!("not ESP");
                };
                let payload = b"hello through the tunnel, padded to something".to_vec();
                let iv = vec![7u8; co.iv_len()];
                let mut pkt = Vec::new();
                co.try_encapsulate(said.spi, 1, 4, &payload, &iv, &mut pkt)
                    .expect("encapsulate");
                let (nh, range) = ci.open(&mut pkt).expect("peer decrypts our ESP");
                assert_eq!(nh, 4);
                assert_eq!(&pkt[range], &payload[..]);
                assert_eq!(spec.encap.is_some(), peer.encap.is_some());
                checked += 1;
            }
            (
                XformSpec::Ah {
                    auth: a1,
                    authkey: k1,
                },
                XformSpec::Ah {
                    auth: a2,
                    authkey: k2,
                },
            ) => {
                assert_eq!(a1, a2);
                assert_eq!(k1, k2);
                checked += 1;
            }
            (XformSpec::Ipip, XformSpec::Ipip) | (XformSpec::Deflate, XformSpec::Deflate) => {}
            other => panic!("transform mismatch {other:?}"),
        }
    }
    checked
}

pub(super) fn assert_up(net: &Net) {
    assert_eq!(
        net.a.established_ipsec(),
        1,
        "A:\n{}\nB:\n{}",
        net.a.dump(),
        net.b.dump()
    );
    assert_eq!(net.b.established_ipsec(), 1, "B:\n{}", net.b.dump());
    assert!(sas_match(&net.a, &net.b) >= 1);
    assert!(sas_match(&net.b, &net.a) >= 1);
}

#[test]
fn psk_main_and_quick_mode_default_algorithms() {
    let mut net = psk_pair("");
    net.up_a("net");
    assert_up(&net);
    let a = &net.a;
    for (code, text) in [
        (104, "\"net\" #1: STATE_MAIN_I1: initiate"),
        (106, "\"net\" #1: STATE_MAIN_I2: sent MI2, expecting MR2"),
        (108, "\"net\" #1: STATE_MAIN_I3: sent MI3, expecting MR3"),
        (4, "\"net\" #1: STATE_MAIN_I4: ISAKMP SA established"),
        (112, "\"net\" #2: STATE_QUICK_I1: initiate"),
        (
            4,
            "\"net\" #2: STATE_QUICK_I2: sent QI2, IPsec SA established {ESP=>0x",
        ),
    ] {
        assert!(
            a.whack_has(code, text),
            "missing {code} {text}:\n{:?}",
            a.whack
        );
    }
    assert_eq!(a.done, vec![(1, 0)]);
    assert!(net
        .b
        .log_has("STATE_MAIN_R3: sent MR3, ISAKMP SA established"));
    assert!(net.b.log_has("STATE_QUICK_R2: IPsec SA established"));
    // Default suite: AES/SHA2/MODP2048 first.
    let st = net.a.p.sas.ikes().find_map(|s| s.exchange.v1()).unwrap();
    assert_eq!(
        st.choice.as_ref().unwrap().alg.name(),
        "AES_CBC_128-SHA2_256-MODP2048"
    );
    // Eroutes: tunnel group heads, updown prepare/route/up.
    let (op, src, dst, said) = net.a.eroutes.last().copied().unwrap();
    assert_eq!(op, ErouteOp::Add);
    assert_eq!(src.to_string(), "10.0.1.0/24");
    assert_eq!(dst.to_string(), "10.0.2.0/24");
    assert_eq!(said.proto, Proto::Tun);
    assert_eq!(net.a.updown, vec![Verb::Prepare, Verb::Route, Verb::Up]);
    // Groups are inner→outer and inbound first.
    let (_, sas, groups) = &net.a.installs[0];
    assert_eq!(groups[0][0].proto, Proto::Tun);
    assert_eq!(groups[0][1].proto, Proto::Esp);
    assert_eq!(sas[0].dir, Some(SaDir::In));
    assert!(sas[0].policy.is_some());
    // No key material in logs.
    for l in net.a.logs.iter().chain(net.b.logs.iter()) {
        assert!(!l.contains("a very secret phrase"), "{l}");
        assert!(!l.contains("SKEYID"), "{l}");
    }
}

#[test]
fn status_lists_conns_and_states() {
    let mut net = psk_pair("");
    net.up_a("net");
    net.whack_a(9, WhackCmd::Status);
    let lines: Vec<&str> = net
        .a
        .whack
        .iter()
        .filter(|w| w.0 == 9)
        .map(|w| w.2.as_str())
        .collect();
    assert!(
        lines.contains(&"interface ipsec0/eth0 192.0.2.1"),
        "{lines:#?}"
    );
    assert!(lines.contains(&"%myid = (none)"));
    assert!(lines.contains(&"debug none"));
    assert!(
        lines.iter().any(|l| {
            l.starts_with(
        "\"net\": 10.0.1.0/24===192.0.2.1...198.51.100.7===10.0.2.0/24; erouted; eroute owner: #2"
    )
        }),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("policy: PSK+ENCRYPT+TUNNEL+PFS+UP")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "#2: \"net\" STATE_QUICK_I2 (sent QI2, IPsec SA established); EVENT_SA_REPLACE in "
        ) && l.ends_with("; newest IPSEC; eroute owner")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("#2: \"net\" esp.")
        && l.contains("@198.51.100.7 esp.")
        && l.contains("tun.")));
    assert!(net.a.done.contains(&(9, 0)));
}

pub(crate) fn rsa_keys(seed: u64) -> (crate::pluto::crypto::PrivateKey, String) {
    let mut rng = StdRng::seed_from_u64(seed);
    let k = crate::pluto::crypto::PrivateKey::generate_with_exponent(&mut rng, 1024, 3).unwrap();
    let body = k.to_secrets_body("test");
    (k, format!(": RSA {{\n{}\n\t}}\n", body.as_str()))
}

fn rsa_pair(west_key_for_east: Option<String>) -> Net {
    let (wk, wsec) = rsa_keys(11);
    let (ek, esec) = rsa_keys(12);
    let wpub = wk.public_key().to_text();
    let epub = ek.public_key().to_text();
    let west_seen_by_east = west_key_for_east.unwrap_or(wpub.clone());
    let wconf = conf(
        "net",
        &format!("\tauthby=rsasig\n\tleftid=@west\n\trightid=@east\n\tleftrsasigkey={wpub}\n\trightrsasigkey={epub}\n"),
    );
    let econf = conf(
        "net",
        &format!("\tauthby=rsasig\n\tleftid=@west\n\trightid=@east\n\tleftrsasigkey={west_seen_by_east}\n\trightrsasigkey={epub}\n"),
    );
    Net::new(
        Node::new(WEST, 1, &wconf, &wsec),
        Node::new(EAST, 2, &econf, &esec),
    )
}

#[test]
fn rsa_signatures_main_mode() {
    let mut net = rsa_pair(None);
    net.up_a("net");
    assert_up(&net);
    assert!(net.a.whack_has(4, "STATE_MAIN_I4: ISAKMP SA established"));
}

#[test]
fn rsa_wrong_key_is_refused() {
    let (other, _) = rsa_keys(99);
    let mut net = rsa_pair(Some(other.public_key().to_text()));
    net.up_a("net");
    assert_eq!(net.a.established_ipsec(), 0);
    assert!(
        net.b
            .log_has("Signature check (on @west) failed (wrong key?); tried *"),
        "{}",
        net.b.dump()
    );
    // B says so; A (keyingtries=%forever) sends nothing more in this attempt and starts the
    // next one when its retransmission timer fires, not at once (no burst of attempts).
    assert!(
        net.a.log_has("received notification INVALID_SIGNATURE")
            && net.a.log_has("no more retransmissions; the next keying attempt starts when the retransmission timer fires"),
        "{}",
        net.a.dump()
    );
    let sent = net.a.sent.len();
    net.advance_to(net.now + 9_000);
    assert_eq!(net.a.sent.len(), sent, "{}", net.a.dump());
    net.advance_to(net.now + 2_000);
    assert!(
        net.a
            .log_has("starting keying attempt 2 of an unlimited number"),
        "{}",
        net.a.dump()
    );
}

/// RSA keys shorter than 2048 bits load with a warning at their file:line (conn and secrets);
/// shorter than 1024 bits they are refused with an error at the keyword's line.
#[test]
fn short_rsa_keys_warned_or_refused() {
    let mut net = rsa_pair(None);
    net.up_a("net");
    assert_up(&net);
    for l in [
        "WARNING: /etc/ipsec.conf:11: leftrsasigkey: RSA key of 1024 bits is weak: keys shorter than 2048 bits should be replaced",
        "WARNING: /etc/ipsec.conf:12: rightrsasigkey: RSA key of 1024 bits is weak",
        "WARNING: /etc/ipsec.secrets:4: RSA key is only 1024 bits; keys shorter than 2048 bits are weak",
    ] {
        assert!(net.a.log_has(l), "{l}\n{}", net.a.dump());
    }
    // A 768-bit public key (a valid RFC 3110 blob) does not load.
    let mut blob = vec![1u8, 3];
    blob.extend(std::iter::repeat_n(0xd5u8, 96));
    let text = format!("0s{}", crate::config::ttodata::encode_base64(&blob));
    let c = conf("net", &format!("\tauthby=rsasig\n\tleftrsasigkey={text}\n"));
    let conf = crate::config::conf::IpsecConf::parse_str(&c, "/etc/ipsec.conf").unwrap();
    let cfg = crate::pluto::PlutoConfig {
        interfaces: vec![crate::pluto::Interface {
            virt: "ipsec0".into(),
            phys: "eth0".into(),
            addr: WEST.into(),
        }],
        ..crate::pluto::PlutoConfig::default()
    };
    let mut p = crate::pluto::Pluto::new(cfg, Box::new(StdRng::seed_from_u64(5)));
    let errs: Vec<String> = p.load_conns(&conf).iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errs,
        ["/etc/ipsec.conf:9: leftrsasigkey: RSA key of 768 bits is too short: at least 1024 bits are required (2048 or more recommended)"]
    );
}

#[test]
fn wrong_psk_is_refused() {
    let extra = "\tauthby=secret\n";
    let a = Node::new(WEST, 1, &conf("net", extra), PSK);
    let b = Node::new(
        EAST,
        2,
        &conf("net", extra),
        "192.0.2.1 198.51.100.7: PSK \"something else\"\n",
    );
    let mut net = Net::new(a, b);
    net.up_a("net");
    assert_eq!(net.b.established_isakmp(), 0);
    assert!(
        net.b
            .log_has("probable authentication failure (mismatch of preshared secrets?)")
            || net
                .b
                .log_has("received Hash Payload does not match computed value"),
        "{}",
        net.b.dump()
    );
}

#[test]
fn explicit_algorithms_pfs_off_ah_ipcomp_gcm() {
    for extra in [
        "\tike=3des-sha1-modp1024\n\tesp=3des-md5\n\tpfs=no\n",
        "\tike=aes256-sha2_256-modp2048\n\tesp=aes256gcm16\n",
        "\tike=aes128-md5-modp1536\n\tesp=aes192-sha2_512\n",
        "\tesp=aes128-sha2_384\n\tcompress=yes\n",
        "\tauth=ah\n\tesp=aes128-sha1\n",
        "\tauth=ah\n\tcompress=yes\n\tpfsgroup=modp1536\n",
    ] {
        let mut net = psk_pair(extra);
        net.up_a("net");
        assert_up(&net);
        let p2 = net
            .a
            .p
            .sas
            .children()
            .find_map(|c| c.exchange.v1())
            .unwrap();
        let ch = p2.choice.as_ref().unwrap();
        if extra.contains("pfs=no") {
            assert!(ch.pfs.is_none() && p2.gxy.is_none());
        } else {
            assert!(ch.pfs.is_some(), "{extra}");
        }
        if extra.contains("compress") {
            assert!(ch.cpi.is_some(), "{extra}");
            assert!(net.a.whack_has(4, "IPCOMP=>0x"));
        }
        if extra.contains("auth=ah") {
            assert!(ch.ah.is_some() && ch.esp.unwrap().0.auth.is_none());
            assert!(net.a.whack_has(4, "AH=>0x"));
        }
        if extra.contains("gcm") {
            assert_eq!(ch.esp.unwrap().0.enc, crate::crypto::EncAlg::AesGcm16_256);
        }
    }
}

#[test]
fn transport_mode() {
    let c = format!("version 2\nconn t\n\tleft={WEST}\n\tright={EAST}\n\ttype=transport\n\tauthby=secret\n\tauto=add\n");
    let mut net = Net::new(Node::new(WEST, 1, &c, PSK), Node::new(EAST, 2, &c, PSK));
    net.up_a("t");
    assert_up(&net);
    assert!(net.a.sadb.keys().all(|s| s.proto != Proto::Tun));
    let (_, src, dst, said) = *net.a.eroutes.last().unwrap();
    assert_eq!(
        (src, dst, said.proto),
        (Subnet::host(WEST), Subnet::host(EAST), Proto::Esp)
    );
}

#[test]
fn proposal_mismatch_is_logged() {
    let a = Node::new(
        WEST,
        1,
        &conf(
            "net",
            "\tauthby=secret\n\tike=3des-md5-modp1024\n\tkeyingtries=1\n",
        ),
        PSK,
    );
    let b = Node::new(
        EAST,
        2,
        &conf("net", "\tauthby=secret\n\tike=aes256-sha2_256-modp2048\n"),
        PSK,
    );
    let mut net = Net::new(a, b);
    net.up_a("net");
    assert!(
        net.b
            .log_has("transform #0: 3DES_CBC_192-MD5-MODP1024 not in our ike= list"),
        "{}",
        net.b.dump()
    );
    assert!(net.b.log_has("no acceptable Oakley Transform"));
    assert!(net
        .a
        .log_has("ignoring unprotected informational payload, type NO_PROPOSAL_CHOSEN"));
    // Phase 2 mismatch.
    let mut net = psk_pair_each("\tesp=3des-md5\n\tkeyingtries=1\n", "\tesp=aes128-sha1\n");
    net.up_a("net");
    assert_eq!(net.a.established_isakmp(), 1);
    assert!(
        net.b.log_has("ESP 3des-md5 not in our esp= list") || net.b.log_has("not in our esp= list"),
        "{}",
        net.b.dump()
    );
    assert!(net.b.log_has("no acceptable transform"));
    assert!(net
        .a
        .log_has("received and ignored informational message type NO_PROPOSAL_CHOSEN"));
}

#[test]
fn retransmission_and_give_up() {
    let mut net = psk_pair("\tkeyingtries=1\n");
    net.drop = Box::new(|_, _| true);
    net.up_a("net");
    net.advance_to(200_000);
    let times: Vec<u64> = net.a.sent.iter().map(|s| s.0).collect();
    assert_eq!(times, vec![0, 10_000, 30_000], "{:?}", net.a.whack);
    assert!(net.a.whack_has(
        10,
        "\"net\" #1: STATE_MAIN_I1: retransmission; will wait 20s for response"
    ));
    assert!(net.a.whack_has(
        10,
        "\"net\" #1: STATE_MAIN_I1: retransmission; will wait 40s for response"
    ));
    assert!(net.a.whack_has(
        31,
        "\"net\" #1: max number of retransmissions (2) reached STATE_MAIN_I1.  No response (or no acceptable response) to our first IKE message"
    ));
    assert_eq!(net.a.done, vec![(1, 31)]);
    assert!(net.a.p.sas.is_empty());
    // keyingtries=3: three attempts, then give up.
    let mut net = psk_pair("\tkeyingtries=3\n");
    net.drop = Box::new(|_, _| true);
    net.up_a("net");
    net.advance_to(1_000_000);
    assert_eq!(net.a.sent.len(), 9);
    assert!(net.a.log_has("starting keying attempt 3 of at most 3"));
    assert!(net.a.p.sas.is_empty());
}

#[test]
fn rekey_is_make_before_break() {
    let mut net =
        psk_pair("\tkeylife=120s\n\tikelifetime=600s\n\trekeymargin=30s\n\trekeyfuzz=0%\n");
    net.up_a("net");
    assert_up(&net);
    let first: Vec<Said> = net.a.sadb.keys().copied().collect();
    net.advance_to(95_000);
    // New SAs exist and the eroute moved; old ones still there.
    assert_eq!(net.a.established_ipsec(), 2, "{}", net.a.dump());
    for s in &first {
        assert!(
            net.a.sadb.contains_key(s),
            "old SA {s} removed before expiry"
        );
    }
    let last = net.a.eroutes.last().unwrap();
    assert_eq!(last.0, ErouteOp::Replace);
    assert!(!first.contains(&last.3));
    assert!(sas_match(&net.a, &net.b) >= 2);
    net.advance_to(125_000);
    for s in &first {
        assert!(
            !net.a.sadb.contains_key(s),
            "old SA {s} survived its lifetime"
        );
    }
    assert_eq!(net.a.established_ipsec(), 1);
    assert_eq!(net.b.established_ipsec(), 1, "{}", net.b.dump());
    assert!(sas_match(&net.a, &net.b) >= 1);
    assert!(sas_match(&net.b, &net.a) >= 1);
}

#[test]
fn down_deletes_on_both_sides() {
    let mut net = psk_pair("");
    net.up_a("net");
    assert_up(&net);
    net.whack_a(2, WhackCmd::Down("net".into()));
    assert!(net.a.sadb.is_empty());
    assert!(net.b.sadb.is_empty(), "{}", net.b.dump());
    assert_eq!(net.b.established_ipsec(), 0);
    assert_eq!(net.b.established_isakmp(), 0);
    assert!(net
        .b
        .log_has("received Delete SA payload: deleting IPSEC State"));
    // And from B's side.
    let mut net = psk_pair("");
    net.up_a("net");
    net.whack_b(2, WhackCmd::Down("net".into()));
    assert!(net.a.sadb.is_empty(), "{}", net.a.dump());
    assert_eq!(net.a.established_isakmp(), 0);
}

#[test]
fn dpd_clear_and_restart() {
    for (action, restart) in [("clear", false), ("restart", true)] {
        let mut net = psk_pair(&format!(
            "\tdpdaction={action}\n\tdpddelay=30s\n\tdpdtimeout=120s\n"
        ));
        net.up_a("net");
        assert_up(&net);
        net.advance_to(65_000);
        assert_eq!(net.a.established_ipsec(), 1, "DPD must keep a live peer");
        // B goes silent.
        net.drop = Box::new(|d, _| d == Dir::BtoA);
        let before = net.a.sent.len();
        net.advance_to(65_000 + 130_000);
        assert!(
            net.a
                .log_has("DPD: No response from peer - declaring peer dead"),
            "{}",
            net.a.dump()
        );
        if restart {
            assert!(net.a.log_has("DPD: Restarting Connection"));
            assert!(net.a.sent.len() > before + 3);
            assert!(net.a.log_has("initiating Main Mode"));
        } else {
            assert!(net.a.log_has("DPD: Clearing Connection"));
            assert!(net.a.sadb.is_empty());
            assert_eq!(net.a.eroutes.last().unwrap().0, ErouteOp::Delete);
        }
    }
}

#[test]
fn nat_t_forceencaps_and_real_nat() {
    let mut net = psk_pair("\tforceencaps=yes\n");
    net.up_a("net");
    assert_up(&net);
    let esp = net.a.esp();
    assert_eq!(esp.encap.map(|e| e.sport), Some(4500));
    assert!(net.a.sent.iter().skip(2).all(|s| s.1.port() == 4500));
    net.advance_to(25_000);
    assert!(net.a.keepalives >= 1);

    // A behind a NAT, B a Road-Warrior responder.
    let mut net = nat_road_warrior("");
    net.up_a("rw");
    assert_up(&net);
    assert!(
        net.a.log_has("NAT-Traversal: we are behind a NAT"),
        "{}",
        net.a.dump()
    );
    assert!(net.b.log_has("NAT-Traversal: peer is behind a NAT"));
    let esp = net.b.esp_out();
    assert_eq!(esp.encap.map(|e| e.dport), Some(5500));
    assert!(net.b.log_has("\"rw\"[1] 203.0.113.9 #"), "{}", net.b.dump());
}

#[test]
fn road_warrior_instance_and_no_connection() {
    let rw_b = format!(
        "version 2\nconn rw\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n"
    );
    let a = Node::new(
        WEST,
        1,
        &format!("version 2\nconn rw\n\tleft={WEST}\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n"),
        ": PSK \"rw secret\"\n",
    );
    let b = Node::new(EAST, 2, &rw_b, "198.51.100.7 %any : PSK \"rw secret\"\n");
    let mut net = Net::new(a, b);
    net.up_a("rw");
    assert_up(&net);
    assert!(net.b.p.conns.contains_key("rw[1]"));
    assert!(net
        .b
        .log_has("responding to Main Mode from unknown peer 192.0.2.1"));
    // Nobody authorized.
    let a = Node::new(
        WEST,
        1,
        &conf("net", "\tauthby=secret\n\tkeyingtries=1\n"),
        PSK,
    );
    let b = Node::new(EAST, 2, "version 2\n", PSK);
    let mut net = Net::new(a, b);
    net.up_a("net");
    assert!(net.b.log_has(
        "initial Main Mode message received on 198.51.100.7:500 but no connection has been authorized"
    ));
}

#[test]
fn switch_connection_on_peer_id_and_unknown_peer() {
    let secrets = ": PSK \"shared\"\n";
    let b_conf = format!(
        "version 2\nconn one\n\tleft={EAST}\n\tright={WEST}\n\trightid=@one\n\tauthby=secret\n\tauto=add\nconn two\n\tleft={EAST}\n\tright={WEST}\n\trightid=@two\n\tauthby=secret\n\trightsubnet=10.0.1.0/24\n\tauto=add\n"
    );
    let a_conf = format!(
        "version 2\nconn two\n\tleft={WEST}\n\tleftid=@two\n\tleftsubnet=10.0.1.0/24\n\tright={EAST}\n\tauthby=secret\n\tauto=add\n"
    );
    let mut net = Net::new(
        Node::new(WEST, 1, &a_conf, secrets),
        Node::new(EAST, 2, &b_conf, secrets),
    );
    net.up_a("two");
    assert!(
        net.b.log_has("switched from \"one\" to \"two\""),
        "{}",
        net.b.dump()
    );
    assert_up(&net);
    let a_conf = a_conf.replace("@two", "@three");
    let mut net = Net::new(
        Node::new(WEST, 1, &a_conf, secrets),
        Node::new(EAST, 2, &b_conf, secrets),
    );
    net.up_a("two");
    assert!(
        net.b.log_has("no suitable connection for peer '@three'"),
        "{}",
        net.b.dump()
    );
    // QM for subnets nobody configured.
    let a_conf2 = format!(
        "version 2\nconn x\n\tleft={WEST}\n\tleftid=@one\n\tleftsubnet=10.7.0.0/16\n\tright={EAST}\n\tauthby=secret\n\tauto=add\n\tkeyingtries=1\n"
    );
    let mut net = Net::new(
        Node::new(WEST, 1, &a_conf2, secrets),
        Node::new(EAST, 2, &b_conf, secrets),
    );
    net.up_a("x");
    assert!(
        net.b.log_has("cannot respond to IPsec SA request because no connection is known for 198.51.100.7[198.51.100.7]...192.0.2.1[@one]===10.7.0.0/16"),
        "{}",
        net.b.dump()
    );
}

#[test]
fn auto_route_and_acquire() {
    let mut net = psk_pair("");
    net.a = Node::new(
        WEST,
        1,
        &conf("net", "\tauthby=secret\n").replace("auto=add", "auto=route"),
        PSK,
    );
    net.run();
    let (op, _, _, said) = net.a.eroutes[0];
    assert_eq!(op, ErouteOp::Add);
    assert_eq!(said.shunt(), Some(Shunt::Trap));
    net.a.p.handle_acquire(
        net.now,
        crate::klips::Acquire {
            src: Ipv4Addr::new(10, 0, 1, 5).into(),
            dst: Ipv4Addr::new(10, 0, 2, 9).into(),
            proto: 1,
            sport: 0,
            dport: 0,
        },
    );
    net.run();
    assert_up(&net);
    // The conn's own (/24) eroute; the packet's narrow %hold is settled after it.
    let (op, _, _, said) = *net
        .a
        .eroutes
        .iter()
        .rev()
        .find(|e| e.1.len() == 24)
        .unwrap();
    assert_eq!(op, ErouteOp::Replace);
    assert_eq!(said.proto, Proto::Tun);
    // --down keeps the %trap.
    net.whack_a(5, WhackCmd::Down("net".into()));
    let (op, _, _, said) = *net.a.eroutes.last().unwrap();
    assert_eq!((op, said.shunt()), (ErouteOp::Replace, Some(Shunt::Trap)));
}

#[test]
fn acquire_narrow_hold_is_released_then_removed() {
    // The datapath holds a trapped packet in a src/32 -> dst/32 %hold; once the conn's SA is up
    // that hold must be pointed at the tunnel (releasing the packet) and deleted, else it
    // shadows the conn's /24 eroute for that host pair forever.
    let mut net = psk_pair("");
    net.a = Node::new(
        WEST,
        1,
        &conf("net", "\tauthby=secret\n").replace("auto=add", "auto=route"),
        PSK,
    );
    net.run();
    let acq = |dst: [u8; 4]| crate::klips::Acquire {
        src: Ipv4Addr::new(10, 0, 1, 5).into(),
        dst: Ipv4Addr::from(dst).into(),
        proto: 1,
        sport: 0,
        dport: 0,
    };
    net.a.p.handle_acquire(net.now, acq([10, 0, 2, 9]));
    // A second host pair trapped while negotiating.
    net.a.p.handle_acquire(net.now, acq([10, 0, 2, 8]));
    net.run();
    assert_up(&net);
    let head = net
        .a
        .eroutes
        .iter()
        .rev()
        .find(|e| e.1.len() == 24)
        .map(|e| e.3)
        .unwrap();
    assert_eq!(head.proto, Proto::Tun);
    for dst in [Ipv4Addr::new(10, 0, 2, 9), Ipv4Addr::new(10, 0, 2, 8)] {
        let narrow: Vec<_> = net
            .a
            .eroutes
            .iter()
            .filter(|e| e.1 == Subnet::host(Ipv4Addr::new(10, 0, 1, 5)) && e.2 == Subnet::host(dst))
            .map(|e| (e.0, e.3))
            .collect();
        assert_eq!(
            narrow,
            vec![
                (ErouteOp::Replace, head),
                (
                    ErouteOp::Delete,
                    Said::new(Proto::Int, Shunt::Hold.spi(), Ipv4Addr::UNSPECIFIED)
                )
            ],
            "{:?}",
            net.a.eroutes
        );
    }
    assert!(net.a.p.bare_shunts.is_empty());
    // An acquire that was queued while the SA came up is settled at once.
    let before = net.a.eroutes.len();
    net.a.p.handle_acquire(net.now, acq([10, 0, 2, 7]));
    net.run();
    let new: Vec<_> = net.a.eroutes[before..].iter().map(|e| (e.0, e.2)).collect();
    let h = Subnet::host(Ipv4Addr::new(10, 0, 2, 7));
    assert_eq!(new, vec![(ErouteOp::Replace, h), (ErouteOp::Delete, h)]);
    assert_eq!(net.a.established_ipsec(), 1, "no new negotiation");
}

#[test]
fn responder_holds_replies_until_qi2() {
    // Between QR1 and QI2 the responder already decrypts the initiator's traffic; the replies
    // must not leave in the clear: the peer client is routed at R1 with a %hold eroute, which
    // QI2 turns into the tunnel eroute.
    let hold = Said::new(Proto::Int, Shunt::Hold.spi(), Ipv4Addr::UNSPECIFIED);
    let mut net = psk_pair("");
    // Hold back QI2 (A's fifth message) for now.
    let sent_a = std::rc::Rc::new(std::cell::Cell::new(0));
    let (c, held) = (
        sent_a.clone(),
        std::rc::Rc::new(std::cell::RefCell::new(None)),
    );
    let h = held.clone();
    net.drop = Box::new(move |d, data| {
        if d == Dir::AtoB {
            c.set(c.get() + 1);
            if c.get() == 5 {
                *h.borrow_mut() = Some(data.to_vec());
                return true;
            }
        }
        false
    });
    net.up_a("net");
    assert_eq!(net.a.established_ipsec(), 1);
    assert_eq!(net.b.established_ipsec(), 0);
    assert_eq!(
        net.b.updown,
        vec![Verb::Prepare, Verb::Route],
        "{}",
        net.b.dump()
    );
    let (op, src, dst, said) = *net.b.eroutes.last().unwrap();
    assert_eq!((op, said), (ErouteOp::Add, hold));
    assert_eq!(
        (src.to_string(), dst.to_string()),
        ("10.0.2.0/24".into(), "10.0.1.0/24".into())
    );
    assert!(net
        .b
        .p
        .status_lines()
        .iter()
        .any(|l| l.contains("erouted HOLD")));
    // QI2 arrives: the hold becomes the tunnel.
    let qi2 = held.borrow_mut().take().unwrap();
    net.drop = Box::new(|_, _| false);
    let now = net.now;
    net.b.p.handle_datagram(
        now,
        SocketAddrV4::new(EAST, 500),
        SocketAddrV4::new(WEST, 500),
        &qi2,
    );
    net.run();
    assert_up(&net);
    let (op, _, _, said) = *net.b.eroutes.last().unwrap();
    assert_eq!(op, ErouteOp::Replace);
    assert_eq!(said.proto, Proto::Tun);
    assert_eq!(net.b.updown, vec![Verb::Prepare, Verb::Route, Verb::Up]);

    // QI2 never arrives: when the responder gives up on it, the hold and route go away.
    let mut net = psk_pair("");
    let c = std::rc::Rc::new(std::cell::Cell::new(0));
    let c2 = c.clone();
    net.drop = Box::new(move |d, _| {
        if d == Dir::AtoB {
            c2.set(c2.get() + 1);
            return c2.get() >= 5;
        }
        false
    });
    net.up_a("net");
    assert_eq!(
        net.b.eroutes.last().map(|e| (e.0, e.3)),
        Some((ErouteOp::Add, hold))
    );
    net.advance_to(300_000);
    assert_eq!(net.b.established_ipsec(), 0);
    assert_eq!(
        net.b.eroutes.last().map(|e| e.0),
        Some(ErouteOp::Delete),
        "{}",
        net.b.dump()
    );
    assert_eq!(net.b.updown.last(), Some(&Verb::Unroute));
    assert!(net
        .b
        .p
        .status_lines()
        .iter()
        .any(|l| l.contains("; unrouted; ")));
}

#[test]
fn half_open_flood_is_bounded() {
    let rw_b = format!(
        "version 2\nconn rw\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n"
    );
    let a = Node::new(
        WEST,
        1,
        &format!("version 2\nconn rw\n\tleft={WEST}\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n"),
        ": PSK \"rw secret\"\n",
    );
    let b = Node::new(EAST, 2, &rw_b, "198.51.100.7 %any : PSK \"rw secret\"\n");
    let mut net = Net::new(a, b);
    // Capture a real MI1 to replay from spoofed sources.
    net.drop = Box::new(|_, _| true);
    net.up_a("rw");
    let mi1 = net.a.sent[0].3.clone();
    net.a
        .p
        .whack(0, WhackClient(3), WhackCmd::Down("rw".into()));
    net.run();
    net.drop = Box::new(|_, _| false);
    let local = SocketAddrV4::new(EAST, 500);
    for i in 0..10_000u32 {
        let mut m = mi1.clone();
        m[..4].copy_from_slice(&i.to_be_bytes());
        let src = SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 500);
        net.b.p.handle_datagram(0, local, src, &m);
        while net.b.p.poll_output().is_some() {}
    }
    assert!(net.b.p.sas.len() <= 1024, "{} states", net.b.p.sas.len());
    net.a.sent.clear();
    net.up_a("rw");
    assert_eq!(net.a.established_ipsec(), 1, "{}", net.a.dump());
    assert!(net.b.p.sas.len() <= 1026);
}

#[test]
fn aggressive_mode_and_garbage_never_panic() {
    let mut net = psk_pair("");
    net.up_a("net");
    let captured: Vec<Vec<u8>> = net
        .a
        .sent
        .iter()
        .chain(net.b.sent.iter())
        .map(|s| s.3.clone())
        .collect();
    let mut am = captured[0].clone();
    am[18] = 4;
    net.b.p.handle_datagram(
        0,
        SocketAddrV4::new(EAST, 500),
        SocketAddrV4::new(WEST, 500),
        &am,
    );
    net.run();
    assert!(net.b.log_has("Aggressive Mode is not supported"));
    let mut rng = StdRng::seed_from_u64(42);
    use rand::Rng;
    for round in 0..20_000 {
        let base = &captured[round % captured.len()];
        let mut m = base.clone();
        let m = match rng.gen_range(0..5) {
            0 => {
                let n = rng.gen_range(0..m.len());
                m.truncate(n);
                m
            }
            1 => {
                for _ in 0..rng.gen_range(1..8) {
                    let i = rng.gen_range(0..m.len());
                    m[i] = rng.gen();
                }
                m
            }
            2 => {
                let i = rng.gen_range(28..m.len().max(29));
                if i < m.len() {
                    m[i] ^= 0xff;
                }
                m
            }
            3 => {
                m.extend((0..rng.gen_range(1..40)).map(|_| rng.gen::<u8>()));
                m
            }
            _ => (0..rng.gen_range(0..300))
                .map(|_| rng.gen::<u8>())
                .collect(),
        };
        let to_b = round % 2 == 0;
        let (node, local, remote) = if to_b {
            (
                &mut net.b,
                SocketAddrV4::new(EAST, 500),
                SocketAddrV4::new(WEST, 500),
            )
        } else {
            (
                &mut net.a,
                SocketAddrV4::new(WEST, 500),
                SocketAddrV4::new(EAST, 500),
            )
        };
        node.p.handle_datagram(0, local, remote, &m);
        while node.p.poll_output().is_some() {}
    }
    // Still serving: the SA is there and a new negotiation works.
    assert_eq!(net.a.established_ipsec(), 1);
    net.whack_a(7, WhackCmd::Down("net".into()));
    net.a.done.clear();
    net.up_a("net");
    assert!(net.a.done.contains(&(1, 0)), "{}", net.a.dump());
}

#[test]
fn failure_shunt_after_give_up() {
    let mut net = psk_pair("");
    net.a = Node::new(
        WEST,
        1,
        &conf(
            "net",
            "\tauthby=secret\n\tkeyingtries=1\n\tfailureshunt=passthrough\n",
        )
        .replace("auto=add", "auto=route"),
        PSK,
    );
    net.drop = Box::new(|_, _| true);
    net.run();
    net.whack_a(
        1,
        WhackCmd::Up {
            name: "net".into(),
            asynchronous: false,
        },
    );
    net.advance_to(100_000);
    let (op, _, _, said) = *net.a.eroutes.last().unwrap();
    assert_eq!((op, said.shunt()), (ErouteOp::Replace, Some(Shunt::Pass)));
    assert_eq!(net.a.done, vec![(1, 31)]);
}

#[test]
fn isakmp_rekey_keeps_ipsec_working() {
    let mut net =
        psk_pair("\tikelifetime=100s\n\tkeylife=300s\n\trekeymargin=20s\n\trekeyfuzz=0%\n");
    net.up_a("net");
    assert_up(&net);
    net.advance_to(85_000);
    assert_eq!(net.a.established_isakmp(), 2, "{}", net.a.dump());
    assert!(
        net.a
            .log_has("\"net\" #3: initiating Main Mode to replace #1"),
        "{}",
        net.a.dump()
    );
    net.advance_to(105_000);
    assert_eq!(net.a.established_isakmp(), 1);
    assert_eq!(net.b.established_isakmp(), 1, "{}", net.b.dump());
    assert_eq!(net.a.established_ipsec(), 1);
    // IPsec rekey now runs over the new ISAKMP SA.
    net.advance_to(290_000);
    assert!(net.a.established_ipsec() >= 1);
    assert!(sas_match(&net.a, &net.b) >= 1);
    assert!(sas_match(&net.b, &net.a) >= 1);
}

#[test]
fn whack_codes() {
    let mut net = psk_pair("");
    let sec = IpsecConf::parse_str(&conf("net", "\tauthby=secret\n"), "/x")
        .unwrap()
        .conns[0]
        .clone();
    net.whack_a(1, WhackCmd::Add(sec.clone()));
    assert!(net
        .a
        .whack_has(20, "attempt to redefine connection \"net\""));
    assert_eq!(net.a.done.last(), Some(&(1, 20)));
    net.whack_a(
        2,
        WhackCmd::Up {
            name: "nope".into(),
            asynchronous: false,
        },
    );
    assert_eq!(net.a.done.last(), Some(&(2, 21)));
    net.whack_a(3, WhackCmd::Replace(sec));
    assert_eq!(net.a.done.last(), Some(&(3, 0)));
    net.whack_a(4, WhackCmd::Route("net".into()));
    assert_eq!(net.a.done.last(), Some(&(4, 0)));
    assert_eq!(net.a.eroutes.last().unwrap().3.shunt(), Some(Shunt::Trap));
    net.whack_a(5, WhackCmd::Unroute("net".into()));
    assert_eq!(net.a.eroutes.last().unwrap().0, ErouteOp::Delete);
    let mut bad = IpsecConf::parse_str(&conf("other", "\tauthby=secret\n"), "/x")
        .unwrap()
        .conns[0]
        .clone();
    bad.params.set(
        "left",
        crate::config::conf::Value::new("192.0.2.99", "/x", 1),
    );
    net.whack_a(6, WhackCmd::Add(bad));
    assert_eq!(net.a.done.last(), Some(&(6, 22)));
    net.whack_a(
        7,
        WhackCmd::Up {
            name: "net".into(),
            asynchronous: true,
        },
    );
    assert_eq!(net.a.done.last(), Some(&(7, 0)));
    assert_up(&net);
    net.whack_a(8, WhackCmd::Delete("net".into()));
    assert!(net.a.sadb.is_empty());
    assert!(net.a.p.sas.is_empty());
}

#[test]
fn uniqueids_releases_the_old_peer_address() {
    let rw_a = |me: Ipv4Addr| {
        format!("version 2\nconn rw\n\tleft={me}\n\tleftid=@roadie\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n")
    };
    let rw_b = format!("version 2\nconn rw\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n");
    let sec_b = "198.51.100.7 %any : PSK \"rw secret\"\n";
    let sec_a = ": PSK \"rw secret\"\n";
    let mut net = Net::new(
        Node::new(WEST, 1, &rw_a(WEST), sec_a),
        Node::new(EAST, 2, &rw_b, sec_b),
    );
    net.up_a("rw");
    assert_up(&net);
    let Net { b, now, .. } = net;
    let other = Ipv4Addr::new(192, 0, 2, 50);
    let mut net = Net::new(Node::new(other, 3, &rw_a(other), sec_a), b);
    net.now = now;
    net.up_a("rw");
    assert_eq!(net.a.established_ipsec(), 1);
    assert!(
        net.b.log_has("for the same peer ID (uniqueids)"),
        "{}",
        net.b.dump()
    );
    assert_eq!(net.b.established_ipsec(), 1);
    assert!(net.b.p.conns.contains_key("rw[2]") && !net.b.p.conns.contains_key("rw[1]"));
}

#[test]
fn lost_replies_are_answered_by_resending() {
    // Lose B's first MR1, MR2 and QR1: A retransmits and B answers each duplicate with
    // its last message.
    for lose in [0usize, 1, 2, 3] {
        let mut net = psk_pair("");
        let mut n = 0usize;
        net.drop = Box::new(move |d, _| {
            if d == Dir::BtoA {
                n += 1;
                return n - 1 == lose;
            }
            false
        });
        net.up_a("net");
        net.advance_to(15_000);
        assert_up(&net);
        assert!(net
            .a
            .whack_has(10, "retransmission; will wait 20s for response"));
    }
}

#[test]
fn datapath_soft_expiry_rekeys() {
    let mut net = psk_pair("");
    net.up_a("net");
    assert_up(&net);
    let out = *net
        .a
        .sadb
        .keys()
        .find(|s| s.proto == Proto::Esp && s.dst == EAST)
        .unwrap();
    net.a
        .p
        .handle_sa_event(net.now, crate::klips::SaEvent::SoftExpired(out));
    net.run();
    assert_eq!(net.a.established_ipsec(), 2, "{}", net.a.dump());
    net.a
        .p
        .handle_sa_event(net.now, crate::klips::SaEvent::HardExpired(out));
    net.run();
    assert_eq!(net.a.established_ipsec(), 1);
    assert!(sas_match(&net.a, &net.b) >= 1);
}

/// A second conn between the same two hosts with the same IDs does its Quick Mode over the
/// first conn's ISAKMP SA (FreeS/WAN's `find_phase1_state`): one Main Mode for both. Its
/// Delete travels over that ISAKMP SA too.
#[test]
fn conns_with_the_same_hosts_and_ids_share_the_isakmp_sa() {
    let two = |n: &str| {
        format!(
            "{}\nconn net2\n\tleft={WEST}\n\tleftsubnet=10.0.3.0/24\n\tright={EAST}\n\trightsubnet=10.0.4.0/24\n\tauthby=secret\n\tauto=add\n",
            conf(n, "\tauthby=secret\n")
        )
    };
    let a = Node::new(WEST, 1, &two("net"), PSK);
    let b = Node::new(EAST, 2, &two("net"), PSK);
    let mut net = Net::new(a, b);
    net.up_a("net");
    net.up_a("net2");
    assert_eq!(net.a.established_isakmp(), 1, "{}", net.a.dump());
    assert_eq!(net.b.established_isakmp(), 1, "{}", net.b.dump());
    assert_eq!(net.a.established_ipsec(), 2, "{}", net.a.dump());
    assert_eq!(net.b.established_ipsec(), 2, "{}", net.b.dump());
    let mains = net
        .a
        .logs
        .iter()
        .filter(|l| l.contains("STATE_MAIN_I1: initiate"))
        .count();
    assert_eq!(mains, 1, "{:?}", net.a.logs);
    assert!(
        net.a.log_has("\"net2\" #3: STATE_QUICK_I1: initiate"),
        "{:?}",
        net.a.logs
    );
    assert!(
        net.b
            .logs
            .iter()
            .any(|l| l.contains("\"net2\"") && l.contains("STATE_QUICK_R2")),
        "{:?}",
        net.b.logs
    );
    assert!(sas_match(&net.a, &net.b) >= 2);
    // Down net2: its IPsec SA goes on both sides; net stays up.
    net.whack_a(2, WhackCmd::Down("net2".into()));
    net.run();
    assert_eq!(net.a.established_ipsec(), 1, "{}", net.a.dump());
    assert_eq!(net.b.established_ipsec(), 1, "{}", net.b.dump());
    assert_eq!(net.b.established_isakmp(), 1, "{}", net.b.dump());
    assert!(net.a.p.shared_ike_sa("net2").is_some());
}

/// Only a conn with the same IDs may use another conn's ISAKMP SA.
#[test]
fn a_conn_with_other_ids_does_not_share_the_isakmp_sa() {
    let conf_a = format!(
        "{}\nconn other\n\tleft={WEST}\n\tleftsubnet=10.0.3.0/24\n\tright={EAST}\n\trightid=@other.example\n\trightsubnet=10.0.4.0/24\n\tauthby=secret\n\tauto=add\n",
        conf("net", "\tauthby=secret\n")
    );
    let a = Node::new(WEST, 1, &conf_a, PSK);
    let b = Node::new(EAST, 2, &conf("net", "\tauthby=secret\n"), PSK);
    let mut net = Net::new(a, b);
    net.up_a("net");
    assert_eq!(net.a.established_isakmp(), 1, "{}", net.a.dump());
    assert_eq!(net.a.p.shared_ike_sa("other"), None);
}

/// When DPD declares the peer dead, the IPsec SAs other conns negotiated over that ISAKMP SA
/// go as well (their peer is the dead one).
#[test]
fn dpd_verdict_covers_conns_sharing_the_isakmp_sa() {
    let two = || {
        format!(
            "{}\nconn net2\n\tleft={WEST}\n\tleftsubnet=10.0.3.0/24\n\tright={EAST}\n\trightsubnet=10.0.4.0/24\n\tauthby=secret\n\tauto=add\n",
            conf(
                "net",
                "\tauthby=secret\n\tdpdaction=clear\n\tdpddelay=30s\n\tdpdtimeout=120s\n"
            )
        )
    };
    let mut net = Net::new(
        Node::new(WEST, 1, &two(), PSK),
        Node::new(EAST, 2, &two(), PSK),
    );
    net.up_a("net");
    net.up_a("net2");
    assert_eq!(net.a.established_isakmp(), 1, "{}", net.a.dump());
    assert_eq!(net.a.established_ipsec(), 2, "{}", net.a.dump());
    net.drop = Box::new(|d, _| d == Dir::BtoA);
    net.advance_to(200_000);
    assert!(
        net.a
            .log_has("DPD: No response from peer - declaring peer dead"),
        "{}",
        net.a.dump()
    );
    assert_eq!(net.a.established_ipsec(), 0, "{}", net.a.dump());
    assert!(net.a.sadb.is_empty(), "{:?}", net.a.sadb.keys());
}

/// `whack --rekey-ipsec` / `--rekey-ike` over IKEv1: a new Quick Mode replaces the IPsec SA
/// at once (make-before-break: the old one stays until it expires), and a new Main Mode the
/// ISAKMP SA; both ends agree on the new SAs.
#[test]
fn ikev1_forced_rekey() {
    let mut net = psk_pair("");
    net.up_a("net");
    assert_up(&net);
    let (isakmp, ipsec) = (
        net.a.p.conns["net"].newest_isakmp.unwrap(),
        net.a.p.conns["net"].newest_ipsec.unwrap(),
    );
    net.rekey_a(5, "net", false);
    let ipsec2 = net.a.p.conns["net"].newest_ipsec.unwrap();
    assert_ne!(ipsec2, ipsec, "{}", net.a.dump());
    assert_eq!(net.a.established_ipsec(), 2, "{}", net.a.dump());
    assert!(sas_match(&net.a, &net.b) >= 2);
    net.rekey_a(6, "net", true);
    let isakmp2 = net.a.p.conns["net"].newest_isakmp.unwrap();
    assert_ne!(isakmp2, isakmp, "{}", net.a.dump());
    assert!(net.a.p.sas.ike(isakmp2).is_some_and(|s| s.established));
    assert!(net.a.log_has("forced rekey of IKE SA"), "{}", net.a.dump());
    assert!(
        net.b.p.sas.ikes().filter(|s| s.established).count() >= 2,
        "{}",
        net.b.dump()
    );
    // The replaced IPsec SA lives on until its expiry (make-before-break).
    assert_eq!(net.b.established_ipsec(), 2, "{}", net.b.dump());
    assert!(sas_match(&net.b, &net.a) >= 2);
}
