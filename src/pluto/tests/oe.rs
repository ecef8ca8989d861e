//! Opportunistic encryption between two engines, DNS answered by the test: the initiator
//! finds the gateway and key in the destination's reverse TXT record, the responder the
//! initiator's key in its own; a wrong published key fails authentication and ends in the
//! failure shunt; DNS failures (SERVFAIL, no record, bad key) are logged with the name asked
//! and end in the failure shunt.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::addr::Subnet;
use crate::dns::message::reverse_name;
use crate::dns::{Lookup, Rcode, Record, RrType};
use crate::klips::Acquire;
use crate::pluto::groups::{parse_group_file, PolicyGroups};
use crate::pluto::{ErouteOp, Output};
use crate::said::{Proto, Said, Shunt};

use super::scenarios::rsa_keys;
use super::{Node, EAST, WEST};

type Zone = HashMap<(String, RrType), Lookup>;

fn node(addr: Ipv4Addr, seed: u64, secrets: &str) -> Node {
    let gw = Ipv4Addr::new(addr.octets()[0], addr.octets()[1], addr.octets()[2], 254);
    let mut n = Node::with_cfg(addr, seed, "version 2\n", secrets, |c| {
        c.defaultroute = Some((addr.into(), gw.into()))
    });
    n.p.set_dns_available(true);
    let (e, _) = parse_group_file("0.0.0.0/0\n", Path::new("private-or-clear"), &|_| None);
    let mut g = PolicyGroups::default();
    g.groups.insert("private-or-clear".into(), e);
    n.p.load_policy_groups(g);
    n
}

fn txt_rdata(text: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for chunk in text.as_bytes().chunks(255) {
        v.push(chunk.len() as u8);
        v.extend_from_slice(chunk);
    }
    v
}

fn txt(zone: &mut Zone, addr: Ipv4Addr, gw: Ipv4Addr, key_b64: &str) {
    let name = reverse_name(addr);
    zone.insert(
        (name.clone(), RrType::Txt),
        Lookup::Answer(vec![Record {
            name,
            rtype: RrType::Txt,
            ttl: 300,
            rdata: txt_rdata(&format!("X-IPsec-Server(10)={gw} {key_b64}")),
            target: None,
        }]),
    );
}

/// A datagram in flight: (sent by A, local, remote, data).
type Flight = (bool, SocketAddr, SocketAddr, Vec<u8>);

/// Delivers datagrams between the two and answers DNS from `zone` until quiet; records
/// eroutes and logs.
fn pump(a: &mut Node, b: &mut Node, now: u64, zone: &Zone) {
    for _ in 0..1000 {
        let mut moved = false;
        let mut flights: Vec<Flight> = Vec::new();
        for (from_a, n) in [(true, &mut *a), (false, &mut *b)] {
            let mut dns = Vec::new();
            while let Some(o) = n.p.poll_output() {
                match o {
                    Output::Send {
                        local,
                        remote,
                        data,
                    } => {
                        n.sent.push((now, local, remote, data.clone()));
                        flights.push((from_a, local, remote, data));
                    }
                    Output::DnsLookup { id, name, qtype } => dns.push((id, name, qtype)),
                    Output::Eroute { op, src, dst, said } => n.eroutes.push((op, src, dst, said)),
                    Output::Log(l) => n.logs.push(l),
                    _ => {}
                }
            }
            for (id, name, qtype) in dns {
                moved = true;
                let r = zone
                    .get(&(name.clone(), qtype))
                    .cloned()
                    .unwrap_or(Lookup::NoRecord);
                n.p.handle_dns(now, id, &name, qtype, r);
            }
        }
        moved |= !flights.is_empty();
        for (from_a, local, remote, data) in flights {
            let to = if from_a { &mut *b } else { &mut *a };
            if remote.ip() == to.addr {
                to.p.handle_datagram(now, remote, local, &data);
            }
        }
        if !moved {
            return;
        }
    }
    panic!("never quiet");
}

fn acquire(n: &mut Node, now: u64, dst: Ipv4Addr) {
    let src = n.addr;
    n.p.handle_acquire(
        now,
        Acquire {
            src,
            dst: dst.into(),
            proto: 1,
            sport: 0,
            dport: 0,
        },
    );
}

fn shunt(s: Shunt) -> Said {
    Said::new(Proto::Int, s.spi(), Ipv4Addr::UNSPECIFIED)
}

struct Pair {
    a: Node,
    b: Node,
    zone: Zone,
}

fn pair(west_key_in_dns: Option<String>) -> Pair {
    let (wk, wsec) = rsa_keys(21);
    let (ek, esec) = rsa_keys(22);
    let mut zone = Zone::new();
    let wpub = west_key_in_dns.unwrap_or_else(|| wk.public_key().to_text());
    txt(&mut zone, WEST, WEST, wpub.trim_start_matches("0s"));
    txt(&mut zone, EAST, EAST, &key_b64(&ek));
    Pair {
        a: node(WEST, 1, &wsec),
        b: node(EAST, 2, &esec),
        zone,
    }
}

#[test]
fn opportunistic_tunnel_with_keys_from_dns() {
    let mut p = pair(None);
    p.a.p.check_own_oe_keys();
    pump(&mut p.a, &mut p.b, 500, &p.zone);
    assert!(
        p.a.log_has("our key for 192.0.2.1 is published in DNS (1.2.0.192.in-addr.arpa)"),
        "{}",
        p.a.dump()
    );
    acquire(&mut p.a, 1000, EAST);
    pump(&mut p.a, &mut p.b, 1000, &p.zone);
    assert_eq!(p.a.established_ipsec(), 1, "{}", p.a.dump());
    assert_eq!(p.b.established_ipsec(), 1, "{}", p.b.dump());
    // The packet's %hold (WEST/32 -> EAST/32) is replaced by the tunnel.
    let pair = (Subnet::host(WEST), Subnet::host(EAST));
    assert!(
        p.a.eroutes
            .iter()
            .any(|(op, s, d, said)| *op == ErouteOp::Replace
                && (*s, *d) == pair
                && said.proto == Proto::Tun),
        "{:?}",
        p.a.eroutes
    );
    assert!(p.a.log_has("opportunistic gateway 198.51.100.7 for 198.51.100.7 found in DNS (7.100.51.198.in-addr.arpa)"));
    assert!(
        p.b.log_has("found in DNS (1.2.0.192.in-addr.arpa)"),
        "{}",
        p.b.dump()
    );
    let st = p.a.status(2000).join("\n");
    assert!(
        st.contains("#2: \"private-or-clear#0.0.0.0/0\"[1] 198.51.100.7 STATE_QUICK_I2"),
        "{st}"
    );
    assert!(
        st.contains("\"private-or-clear#0.0.0.0/0\"[1]: 192.0.2.1---192.0.2.254...198.51.100.7; erouted; eroute owner: #2"),
        "{st}"
    );
    // A second packet to the same destination starts nothing new.
    let sent = p.a.sent.len();
    acquire(&mut p.a, 3000, EAST);
    pump(&mut p.a, &mut p.b, 3000, &p.zone);
    assert_eq!(p.a.sent.len(), sent);
}

#[test]
fn wrong_key_in_dns_fails_into_the_failure_shunt() {
    let (other, _) = rsa_keys(99);
    let mut p = pair(Some(other.public_key().to_text()));
    // Start-up check: the key DNS publishes for us is not ours.
    p.a.p.check_own_oe_keys();
    pump(&mut p.a, &mut p.b, 500, &p.zone);
    assert!(p.a.log_has("WARNING: opportunistic encryption cannot work: DNS publishes no key of ours for 192.0.2.1"), "{}", p.a.dump());
    acquire(&mut p.a, 1000, EAST);
    pump(&mut p.a, &mut p.b, 1000, &p.zone);
    assert!(
        p.b.log_has("Signature check (on 192.0.2.1) failed (wrong key?)"),
        "{}",
        p.b.dump()
    );
    // B says so (INVALID_SIGNATURE, protected with the phase-1 keys) and A gives up at once,
    // without waiting for its retransmissions to run out: no time has passed, and the %hold
    // is already %pass.
    assert!(
        p.b.log_has("failed (wrong key?); tried *")
            && p.b.log_has("sending notification INVALID_SIGNATURE"),
        "{}",
        p.b.dump()
    );
    assert!(
        p.a.log_has("received notification INVALID_SIGNATURE: the peer cannot authenticate us"),
        "{}",
        p.a.dump()
    );
    assert_eq!(p.a.established_ipsec(), 0);
    assert!(p.a.p.sas.is_empty(), "{}", p.a.dump());
    assert!(
        p.a.eroutes.contains(&(
            ErouteOp::Replace,
            Subnet::host(WEST),
            Subnet::host(EAST),
            shunt(Shunt::Pass)
        )),
        "{}",
        p.a.dump()
    );
    assert!(
        p.a.log_has(
            "cannot encrypt 192.0.2.1 -> 198.51.100.7 opportunistically (negotiation failed)"
        ),
        "{}",
        p.a.dump()
    );
    assert!(
        !p.a.p.conns.keys().any(|k| k.ends_with("[1]")),
        "instance removed"
    );
}

/// The mirror case: the responder's published key is wrong. The initiator's check of MR3
/// fails; MR3 is the responder's last message, so the initiator gives up at once (failure
/// shunt) and tells the responder, which deletes the ISAKMP SA it thought established.
#[test]
fn wrong_responder_key_in_dns_fails_at_once() {
    let (other, _) = rsa_keys(98);
    let mut p = pair(None);
    txt(&mut p.zone, EAST, EAST, &key_b64(&other));
    acquire(&mut p.a, 1000, EAST);
    pump(&mut p.a, &mut p.b, 1000, &p.zone);
    assert!(
        p.a.log_has("failed (wrong key?); tried *")
            && p.a.log_has("sending notification INVALID_SIGNATURE"),
        "{}",
        p.a.dump()
    );
    assert!(
        p.a.eroutes.contains(&(
            ErouteOp::Replace,
            Subnet::host(WEST),
            Subnet::host(EAST),
            shunt(Shunt::Pass)
        )),
        "{}",
        p.a.dump()
    );
    assert!(p.a.p.sas.is_empty(), "{}", p.a.dump());
    assert!(
        p.b.log_has("received notification INVALID_SIGNATURE: the peer cannot authenticate us (wrong key published?); deleting ISAKMP SA"),
        "{}",
        p.b.dump()
    );
    assert!(p.b.p.sas.is_empty(), "{}", p.b.dump());
    assert!(
        !p.b.p.conns.keys().any(|k| k.ends_with("[1]")),
        "responder instance removed"
    );
}

#[test]
fn dns_failures_are_logged_with_the_name_and_end_in_the_failure_shunt() {
    let mut p = pair(None);
    let sf = Ipv4Addr::new(10, 9, 0, 9);
    let bad = Ipv4Addr::new(10, 9, 0, 10);
    let none = Ipv4Addr::new(10, 9, 0, 11);
    p.zone.insert(
        (reverse_name(sf), RrType::Txt),
        Lookup::ServerError(Rcode::ServFail),
    );
    txt(&mut p.zone, bad, bad, "AQID");
    for (dst, why) in [
        (sf, "DNS TXT 9.0.9.10.in-addr.arpa: server error SERVFAIL"),
        (bad, "bad RSA key in DNS for 10.0.9.10.in-addr.arpa"),
        (
            none,
            "no TXT X-IPsec-Server or IPSECKEY record for 11.0.9.10.in-addr.arpa",
        ),
    ] {
        acquire(&mut p.a, 1000, dst);
        pump(&mut p.a, &mut p.b, 1000, &p.zone);
        assert!(p.a.log_has(why), "{why}\n{}", p.a.dump());
        assert!(
            p.a.eroutes.contains(&(
                ErouteOp::Replace,
                Subnet::host(WEST),
                Subnet::host(dst),
                shunt(Shunt::Pass)
            )),
            "{dst}: {:?}",
            p.a.eroutes
        );
    }
    let st = p.a.status(2000).join("\n");
    assert!(
        st.contains("192.0.2.1/32:0 -0-> 10.9.0.9/32:0 => %pass"),
        "{st}"
    );
}

/// `shuntlifetime=` (`config setup`): an OE failure shunt (no record under private-or-clear:
/// `%pass`) that carries no traffic is removed once it has been idle for the configured time,
/// not before and not at the next regular shunt scan after it.
#[test]
fn failure_shunt_expires_after_shuntlifetime() {
    let mut p = pair(None);
    p.a.p.cfg.shunt_lifetime = Some(300);
    let dst = Ipv4Addr::new(10, 9, 0, 11);
    acquire(&mut p.a, 1000, dst);
    pump(&mut p.a, &mut p.b, 1000, &p.zone);
    let (ours, his) = (Subnet::host(WEST), Subnet::host(dst));
    assert!(
        p.a.eroutes
            .contains(&(ErouteOp::Replace, ours, his, shunt(Shunt::Pass))),
        "{}",
        p.a.dump()
    );
    let delete = (ErouteOp::Delete, ours, his, shunt(Shunt::Pass));
    // The datapath's shunt eroutes at each scan: the failure shunt, no packets through it.
    let table = [crate::pluto::ShuntEroute {
        src: ours,
        dst: his,
        shunt: Shunt::Pass,
        packets: 0,
    }];
    let mut expired_at = None;
    for t in (2_000..=1_000_000).step_by(1000) {
        if !p.a.p.shunt_scan_due(t) {
            continue;
        }
        let left: &[crate::pluto::ShuntEroute] = if expired_at.is_some() { &[] } else { &table };
        p.a.p.handle_shunt_scan(t, left);
        pump(&mut p.a, &mut p.b, t, &p.zone);
        if expired_at.is_none() && p.a.eroutes.contains(&delete) {
            expired_at = Some(t);
        }
    }
    assert_eq!(expired_at, Some(301_000), "{}", p.a.dump());
    assert!(p
        .a
        .log_has("expire bare shunt 192.0.2.1/32:0 -0-> 10.9.0.11/32:0 => %pass (oe-failed:"));
    assert!(p.a.p.bare_shunts.is_empty());
}

/// A public key as the base64 of a TXT record (without `0s`).
fn key_b64(k: &crate::pluto::crypto::PrivateKey) -> String {
    k.public_key()
        .to_text()
        .trim_start_matches("0s")
        .to_string()
}

/// The client delegation cases both sides are tested with: the client's reverse TXT record
/// (gateway, key) naming A with A's key `wk`, another gateway, another key `other`, or none.
fn delegation_cases(
    wk: &crate::pluto::crypto::PrivateKey,
    other: &crate::pluto::crypto::PrivateKey,
) -> [(&'static str, Option<(Ipv4Addr, String)>); 4] {
    [
        ("delegated", Some((WEST, key_b64(wk)))),
        (
            "another gateway",
            Some((Ipv4Addr::new(192, 0, 2, 99), key_b64(wk))),
        ),
        ("another key", Some((WEST, key_b64(other)))),
        ("no record", None),
    ]
}

/// FreeS/WAN's client delegation, responder side: A negotiates for a client behind it
/// (a configured conn for 10.0.1.5/32; B has only `private-or-clear`). B, responding
/// opportunistically, accepts that client only when the client's reverse TXT record names A
/// as its gateway with the key that authenticated A; another gateway, another key or no
/// record is refused.
#[test]
fn responder_accepts_a_client_only_when_dns_delegates_it() {
    let client = Ipv4Addr::new(10, 0, 1, 5);
    let (wk, wsec) = rsa_keys(21);
    let (ek, _) = rsa_keys(22);
    let (other, _) = rsa_keys(97);
    let conf = format!(
        "version 2\nconn client\n\tleft={WEST}\n\tleftsubnet=10.0.1.5/32\n\tright={EAST}\n\tauthby=rsasig\n\tleftrsasigkey={}\n\trightrsasigkey={}\n\tauto=add\n",
        wk.public_key().to_text(),
        ek.public_key().to_text()
    );
    let cases = delegation_cases(&wk, &other);
    for (case, record) in cases {
        let mut p = pair(None);
        p.a = Node::new(WEST, 1, &conf, &wsec);
        let accepted = case == "delegated";
        if let Some((gw, key)) = record {
            txt(&mut p.zone, client, gw, &key);
        }
        p.a.p.whack(
            1000,
            crate::pluto::WhackClient(5),
            crate::pluto::WhackCmd::Up {
                name: "client".into(),
                asynchronous: true,
            },
        );
        pump(&mut p.a, &mut p.b, 1000, &p.zone);
        assert!(
            p.b.log_has("peer client 10.0.1.5/32 is not 192.0.2.1: asking DNS whether it delegates to 192.0.2.1 (TXT 5.1.0.10.in-addr.arpa)"),
            "{case}\n{}",
            p.b.dump()
        );
        let want = usize::from(accepted);
        assert_eq!(p.a.established_ipsec(), want, "{case}\n{}", p.b.dump());
        assert_eq!(p.b.established_ipsec(), want, "{case}\n{}", p.b.dump());
        if accepted {
            assert!(
                p.b.log_has("5.1.0.10.in-addr.arpa delegates 10.0.1.5/32 to 192.0.2.1 with the key that authenticated it"),
                "{}",
                p.b.dump()
            );
            let st = p.b.status(2000).join("\n");
            assert!(
                st.contains("192.0.2.2...192.0.2.1===10.0.1.5/32")
                    || st.contains("...192.0.2.1===10.0.1.5/32"),
                "{st}"
            );
        } else {
            assert!(
                p.b.log_has("peer client 10.0.1.5/32 refused: 5.1.0.10.in-addr.arpa has no X-IPsec-Server record naming 192.0.2.1 with the key that authenticated it"),
                "{case}\n{}",
                p.b.dump()
            );
            assert!(
                p.b.log_has(
                    "cannot respond to IPsec SA request because no connection is known for"
                ),
                "{case}\n{}",
                p.b.dump()
            );
        }
    }
}

fn key_record(zone: &mut Zone, name: &str, blob: &[u8]) {
    let mut rdata = vec![0x42, 0x00, 4, 1];
    rdata.extend_from_slice(blob);
    zone.insert(
        (name.to_string(), RrType::Key),
        Lookup::Answer(vec![Record {
            name: name.to_string(),
            rtype: RrType::Key,
            ttl: 300,
            rdata,
            target: None,
        }]),
    );
}

/// `leftrsasigkey=%dnsondemand` / `rightrsasigkey=%dnsondemand` for named peers: both keys
/// come from KEY records of the `@fqdn` IDs, looked up when `--up` asks (initiator) and when
/// Main Mode starts (responder).
#[test]
fn dnsondemand_keys_of_named_peers() {
    let (wk, wsec) = rsa_keys(31);
    let (ek, esec) = rsa_keys(32);
    let conf = super::conf(
        "net",
        "\tauthby=rsasig\n\tleftid=@west.example\n\trightid=@east.example\n\tleftrsasigkey=%dnsondemand\n\trightrsasigkey=%dnsondemand\n",
    );
    let mut a = Node::new(WEST, 1, &conf, &wsec);
    let mut b = Node::new(EAST, 2, &conf, &esec);
    a.p.set_dns_available(true);
    b.p.set_dns_available(true);
    let mut zone = Zone::new();
    key_record(&mut zone, "west.example", &wk.public_key().to_rfc3110());
    key_record(&mut zone, "east.example", &ek.public_key().to_rfc3110());
    a.p.whack(
        1000,
        crate::pluto::WhackClient(5),
        crate::pluto::WhackCmd::Up {
            name: "net".into(),
            asynchronous: true,
        },
    );
    pump(&mut a, &mut b, 1000, &zone);
    assert_eq!(a.established_ipsec(), 1, "{}", a.dump());
    assert!(a.log_has("\"net\": peer key *"), "{}", a.dump());
    assert!(a.log_has("found in DNS (east.example)"), "{}", a.dump());
    assert!(b.log_has("found in DNS (west.example)"), "{}", b.dump());
    let st = a.status(2000).join("\n");
    assert!(st.contains("+lKOD+rKOD"), "{st}");
}

/// `clear-or-private`: traffic leaves in clear (`%pass`), but OE from a peer is answered.
#[test]
fn clear_or_private_answers_opportunistic_encryption() {
    let mut p = pair(None);
    let (e, _) = parse_group_file("192.0.2.0/24\n", Path::new("clear-or-private"), &|_| None);
    let mut g = PolicyGroups::default();
    g.groups.insert("clear-or-private".into(), e);
    p.b.p.load_policy_groups(g);
    pump(&mut p.a, &mut p.b, 500, &p.zone);
    assert!(
        p.b.eroutes.contains(&(
            ErouteOp::Add,
            Subnet::host(EAST),
            "192.0.2.0/24".parse().unwrap(),
            shunt(Shunt::Pass)
        )),
        "{:?}",
        p.b.eroutes
    );
    acquire(&mut p.a, 1000, EAST);
    pump(&mut p.a, &mut p.b, 1000, &p.zone);
    assert_eq!(p.b.established_ipsec(), 1, "{}", p.b.dump());
    assert!(
        p.b.log_has(
            "\"clear-or-private#192.0.2.0/24\"[1] 192.0.2.1: responding to opportunistic Main Mode"
        ),
        "{}",
        p.b.dump()
    );
}

/// An opportunistic responder makes its instance for an unauthenticated first message: when
/// that half-open state is discarded, the instance goes too.
#[test]
fn responder_instance_goes_with_its_half_open_state() {
    let mut p = pair(None);
    acquire(&mut p.a, 1000, EAST);
    // Answer A's DNS until it sends MI1; deliver only that.
    let mut mi1 = None;
    for _ in 0..10 {
        let mut dns = Vec::new();
        while let Some(o) = p.a.p.poll_output() {
            match o {
                Output::DnsLookup { id, name, qtype } => dns.push((id, name, qtype)),
                Output::Send {
                    local,
                    remote,
                    data,
                } if mi1.is_none() => mi1 = Some((local, remote, data)),
                _ => {}
            }
        }
        for (id, name, qtype) in dns {
            let r = p
                .zone
                .get(&(name.clone(), qtype))
                .cloned()
                .unwrap_or(Lookup::NoRecord);
            p.a.p.handle_dns(1000, id, &name, qtype, r);
        }
    }
    let (local, remote, data) = mi1.expect("MI1");
    p.b.p.handle_datagram(1000, remote, local, &data);
    assert!(
        p.b.p.conns.keys().any(|k| k.ends_with("[1]")),
        "instance made at MI1"
    );
    while p.b.p.poll_output().is_some() {}
    while let Some(t) = p.b.p.poll_timeout() {
        if t > 600_000 {
            break;
        }
        p.b.p.handle_timeout(t);
        while p.b.p.poll_output().is_some() {}
    }
    assert_eq!(p.b.p.sas.len(), 0);
    assert!(
        !p.b.p.conns.keys().any(|k| k.ends_with("[1]")),
        "{:?}",
        p.b.p.conns.keys().collect::<Vec<_>>()
    );
}

/// FreeS/WAN's client delegation, initiator side ("Gateway for visible clients"): a packet
/// from host 10.0.1.5 behind A, trapped by `packetdefault` (leftsubnet=0.0.0.0/0), is
/// negotiated by A as itself in Main Mode with the host as its Quick Mode client — only when
/// the host's reverse TXT record names A as its gateway with A's key; otherwise it gets the
/// failure shunt at once and nothing is sent.
#[test]
fn initiator_negotiates_for_a_client_only_when_dns_delegates_it() {
    let client = Ipv4Addr::new(10, 0, 1, 5);
    let (wk, _) = rsa_keys(21);
    let (other, _) = rsa_keys(97);
    let cases = delegation_cases(&wk, &other);
    for (case, record) in cases {
        let mut p = pair(None);
        let accepted = case == "delegated";
        if let Some((gw, key)) = record {
            txt(&mut p.zone, client, gw, &key);
        }
        p.a.p.handle_acquire(
            1000,
            Acquire {
                src: client.into(),
                dst: EAST.into(),
                proto: 1,
                sport: 0,
                dport: 0,
            },
        );
        pump(&mut p.a, &mut p.b, 1000, &p.zone);
        assert!(
            p.a.log_has("10.0.1.5 is not our address: asking DNS whether it delegates to 192.0.2.1 (TXT 5.1.0.10.in-addr.arpa)"),
            "{case}\n{}",
            p.a.dump()
        );
        let want = usize::from(accepted);
        assert_eq!(p.a.established_ipsec(), want, "{case}\n{}", p.a.dump());
        assert_eq!(p.b.established_ipsec(), want, "{case}\n{}", p.b.dump());
        let pair = (Subnet::host(client), Subnet::host(EAST));
        if accepted {
            // Quick Mode with client IDs 10.0.1.5/32 <-> 198.51.100.7/32 on both sides.
            assert!(
                p.a.log_has("5.1.0.10.in-addr.arpa delegates 10.0.1.5 to 192.0.2.1: negotiating on its behalf"),
                "{}",
                p.a.dump()
            );
            assert!(
                p.b.log_has("5.1.0.10.in-addr.arpa delegates 10.0.1.5/32 to 192.0.2.1 with the key that authenticated it"),
                "{}",
                p.b.dump()
            );
            let st = p.a.status(2000).join("\n");
            assert!(
                st.contains("10.0.1.5/32===192.0.2.1---192.0.2.254...198.51.100.7; erouted"),
                "{st}"
            );
            let st = p.b.status(2000).join("\n");
            assert!(st.contains("...192.0.2.1===10.0.1.5/32; erouted"), "{st}");
            assert!(
                p.a.eroutes
                    .iter()
                    .any(|(op, s, d, said)| *op == ErouteOp::Replace
                        && (*s, *d) == pair
                        && said.proto == Proto::Tun),
                "{:?}",
                p.a.eroutes
            );
        } else {
            assert!(p.a.sent.is_empty(), "{case}: {:?}", p.a.sent);
            assert!(
                p.a.log_has("cannot encrypt 10.0.1.5 -> 198.51.100.7 opportunistically (10.0.1.5 is not delegated to 192.0.2.1"),
                "{case}\n{}",
                p.a.dump()
            );
            assert!(
                p.a.eroutes
                    .iter()
                    .any(|(op, s, d, said)| *op == ErouteOp::Replace
                        && (*s, *d) == pair
                        && *said == shunt(Shunt::Pass)),
                "{case}: {:?}",
                p.a.eroutes
            );
        }
    }
}
