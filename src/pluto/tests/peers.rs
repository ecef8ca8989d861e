//! What an authenticated peer may claim and delete (`peer_policy`): Road-Warrior client
//! claims, conn switches over an existing ISAKMP SA, and Deletes from another peer.

use super::scenarios::assert_up;
use super::*;
use crate::config::secrets::Id;
use crate::config::VirtualPrivate;
use crate::pluto::connection::Routing;
use crate::pluto::isakmp::{DeletePayload, Doi, Payload, ProtocolId};
use crate::said::Proto;

/// The peer of B's site-to-site conn "net" (another gateway than the road warriors).
const NETPEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

fn s(x: &str) -> Subnet {
    x.parse().unwrap()
}

/// What B has done to SAs, eroutes and routes: (installs, eroutes, deleted, updown,
/// established IPsec SAs).
fn touched(n: &Node) -> (usize, usize, usize, usize, usize) {
    (
        n.installs.len(),
        n.eroutes.len(),
        n.deleted.len(),
        n.updown.len(),
        n.established_ipsec(),
    )
}

/// B's conns: "net" (10.0.2.0/24 ↔ 10.0.1.0/24 behind NETPEER), the host-only Road-Warrior
/// template "rw", "rwsub" (peer client exactly 10.0.5.0/24) and "rwwide" (10.0.0.0/16, which
/// overlaps net's), all three with a `%any` PSK.
fn gateway_conf() -> String {
    let rw = |name: &str, extra: &str| {
        format!("conn {name}\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n{extra}\tauthby=secret\n\tauto=add\n")
    };
    format!(
        "version 2\nconn net\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright={NETPEER}\n\trightsubnet=10.0.1.0/24\n\tauthby=secret\n\tauto=add\n{}{}{}",
        rw("rw", ""),
        rw("rwsub", "\trightsubnet=10.0.5.0/24\n"),
        rw("rwwide", "\trightsubnet=10.0.0.0/16\n"),
    )
}

const GATEWAY_SECRETS: &str =
    "198.51.100.7 192.0.2.99 : PSK \"net secret\"\n198.51.100.7 %any : PSK \"rw secret\"\n";

/// Gateway B with `virtual_private=vp` and its conn "net" up with NETPEER; returns B and the
/// time.
fn gateway_with_net_up(vp: &str) -> (Node, u64) {
    let vp = VirtualPrivate::parse(vp).unwrap();
    let b = Node::with_cfg(EAST, 2, &gateway_conf(), GATEWAY_SECRETS, |c| {
        c.virtual_private = vp
    });
    let p = Node::new(
        NETPEER,
        3,
        &format!("version 2\nconn net\n\tleft={NETPEER}\n\tleftsubnet=10.0.1.0/24\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n"),
        "192.0.2.99 198.51.100.7 : PSK \"net secret\"\n",
    );
    let mut net = Net::new(p, b);
    net.up_a("net");
    assert_up(&net);
    assert_eq!(net.b.p.conns["net"].routing, Routing::Erouted);
    (net.b, net.now)
}

/// A road warrior at WEST with ID `id` whose conn "rw" claims `client` (None: its host).
/// Each ID seeds its own random numbers (so its cookies differ from the others').
fn road_warrior(id: &str, client: Option<&str>, extra: &str) -> Node {
    let sub = client.map_or(String::new(), |c| format!("\tleftsubnet={c}\n"));
    let seed = id
        .bytes()
        .fold(5u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Node::new(
        WEST,
        seed,
        &format!("version 2\nconn rw\n\tleft={WEST}\n\tleftid={id}\n{sub}\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n{extra}"),
        ": PSK \"rw secret\"\n",
    )
}

/// Road warrior `rw` brings up its conn "rw" with gateway `b`.
fn attempt(b: Node, now: u64, rw: Node) -> Net {
    let mut net = Net::new(rw, b);
    net.now = now;
    net.whack_a(
        1,
        WhackCmd::Up {
            name: "rw".into(),
            asynchronous: true,
        },
    );
    net
}

/// Asserts that B refused the road warrior's Quick Mode for `claim` (after authenticating it):
/// nothing installed, erouted, routed or deleted since `before`, "net" untouched, FreeS/WAN's
/// refusal line logged.
fn assert_refused(net: &Net, before: (usize, usize, usize, usize, usize), claim: &str) {
    let b = &net.b;
    assert_eq!(net.a.established_isakmp(), 1, "{}", b.dump());
    assert_eq!(net.a.established_ipsec(), 0);
    assert_eq!(
        touched(b),
        before,
        "B changed SAs or eroutes:\n{}",
        b.dump()
    );
    let want = "cannot respond to IPsec SA request because no connection is known for 10.0.2.0/24===198.51.100.7[198.51.100.7]...192.0.2.1[";
    assert!(
        b.logs.iter().any(|l| l.contains("192.0.2.1 #")
            && l.contains(want)
            && l.ends_with(&format!("]==={claim}"))),
        "{}",
        b.dump()
    );
    let n = &b.p.conns["net"];
    assert_eq!(n.routing, Routing::Erouted);
    assert_eq!(n.that.client, s("10.0.1.0/24"));
    assert!(
        b.p.sas
            .child(n.eroute_owner.expect("an eroute owner"))
            .expect("the eroute owner's SA")
            .established
    );
}

/// No `rightsubnet=`, no NAT: only the peer's own address. A /32 inside another conn's
/// remote subnet gets nothing, and "net" keeps its SAs and eroute.
#[test]
fn host_only_template_gives_only_the_peers_own_address() {
    let (b, now) = gateway_with_net_up("%v4:10.0.0.0/8");
    let before = touched(&b);
    let net = attempt(b, now, road_warrior("@mallory", Some("10.0.1.5/32"), ""));
    assert_refused(&net, before, "10.0.1.5/32");
    // Its own address is fine.
    let Net { b, now, .. } = net;
    let net = attempt(b, now, road_warrior("@alice", None, ""));
    assert_eq!(net.a.established_ipsec(), 1, "{}", net.b.dump());
    assert!(net
        .b
        .eroutes
        .iter()
        .any(|e| e.0 == ErouteOp::Add && e.1 == s("10.0.2.0/24") && e.2 == s("192.0.2.1/32")));
}

/// A peer behind a NAT may name a private client within virtual_private=, but not one that
/// overlaps another conn's peer client, nor one outside virtual_private=.
#[test]
fn nated_road_warrior_claims_follow_virtual_private_and_avoid_other_conns() {
    let nat = "\tforceencaps=yes\n";
    // Inside virtual_private= but inside "net"'s 10.0.1.0/24: refused, net untouched.
    let (b, now) = gateway_with_net_up("%v4:10.0.0.0/8");
    let before = touched(&b);
    let net = attempt(b, now, road_warrior("@mallory", Some("10.0.1.5/32"), nat));
    assert!(
        net.b.log_has("NAT-Traversal: peer is behind a NAT"),
        "{}",
        net.b.dump()
    );
    assert_refused(&net, before, "10.0.1.5/32");
    assert!(
        net.b.log_has(
            "#3: peer client 10.0.1.5/32 overlaps the peer client of \"net\", another peer's; refused"
        ),
        "{}",
        net.b.dump()
    );
    // Outside virtual_private=: refused.
    let Net { b, now, .. } = net;
    let before = touched(&b);
    let net = attempt(b, now, road_warrior("@bob", Some("172.16.0.5/32"), nat));
    assert_refused(&net, before, "172.16.0.5/32");
    assert!(net.b.log_has(
        "peer client 172.16.0.5/32 of a peer behind a NAT is not within virtual_private="
    ));
    // Excluded from virtual_private=: refused.
    let (b, now) = gateway_with_net_up("%v4:10.0.0.0/8,%v4:!10.9.0.0/16");
    let before = touched(&b);
    let net = attempt(b, now, road_warrior("@carol", Some("10.9.0.5/32"), nat));
    assert_refused(&net, before, "10.9.0.5/32");
    // The default (no virtual_private=): nothing private.
    let (b, now) = gateway_with_net_up("");
    let before = touched(&b);
    let net = attempt(b, now, road_warrior("@dave", Some("10.9.0.5/32"), nat));
    assert_refused(&net, before, "10.9.0.5/32");
    // Allowed and free: the instance takes the client.
    let (b, now) = gateway_with_net_up("%v4:10.0.0.0/8,%v4:!10.0.1.0/24");
    let two = format!(
        "{nat}conn rw2\n\tleft={WEST}\n\tleftid=@erin\n\tleftsubnet=10.9.0.6/32\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n{nat}"
    );
    let mut net = attempt(b, now, road_warrior("@erin", Some("10.9.0.5/32"), &two));
    assert_eq!(net.b.established_ipsec(), 2, "{}", net.b.dump());
    let inst = net
        .b
        .p
        .conns
        .values()
        .find(|c| c.name == "rw" && c.instance != 0)
        .expect("an instance")
        .key();
    assert_eq!(net.b.p.conns[&inst].that.client, s("10.9.0.5/32"));
    // A second private client over the same ISAKMP SA is a new instance: the first keeps its
    // client and eroute.
    net.up_a("rw2");
    assert_eq!(net.b.established_ipsec(), 3, "{}", net.b.dump());
    assert_eq!(net.b.p.conns[&inst].that.client, s("10.9.0.5/32"));
    let clients: Vec<Subnet> = net
        .b
        .p
        .conns
        .values()
        .filter(|c| c.name == "rw" && c.instance != 0)
        .map(|c| c.that.client)
        .collect();
    assert!(clients.contains(&s("10.9.0.6/32")), "{clients:?}");
    assert!(!net
        .b
        .eroutes
        .iter()
        .any(|e| e.0 == ErouteOp::Delete && e.2 == s("10.9.0.5/32")));
}

/// `rightsubnet=` on a template: exactly that subnet (no narrowing), and not when it overlaps
/// another conn's peer client.
#[test]
fn template_subnet_must_match_exactly_and_not_overlap() {
    let (b, now) = gateway_with_net_up("");
    let before = touched(&b);
    let net = attempt(b, now, road_warrior("@frank", Some("10.0.5.0/25"), ""));
    assert_refused(&net, before, "10.0.5.0/25");
    let Net { b, now, .. } = net;
    let before = touched(&b);
    let net = attempt(b, now, road_warrior("@grace", Some("10.0.0.0/16"), ""));
    assert_refused(&net, before, "10.0.0.0/16");
    assert!(net.b.log_has(
        "peer client 10.0.0.0/16 overlaps the peer client of \"net\", another peer's; refused"
    ));
    let Net { b, now, .. } = net;
    let net = attempt(b, now, road_warrior("@heidi", Some("10.0.5.0/24"), ""));
    assert_eq!(net.a.established_ipsec(), 1, "{}", net.b.dump());
    assert!(net.b.p.conns.contains_key("rwsub[1]"), "{}", net.b.dump());
}

/// Openswan's `rightsubnet=vhost:`/`virtual:` are refused with a pointer to virtual_private=.
#[test]
fn vhost_subnets_are_refused_with_a_clear_error() {
    let conf = IpsecConf::parse_str(
        &format!("version 2\nconn rw\n\tleft={EAST}\n\tright=%any\n\trightsubnet=vhost:%no,%priv\n\tauto=add\n"),
        "/etc/ipsec.conf",
    )
    .unwrap();
    let cfg = PlutoConfig {
        interfaces: vec![Interface {
            virt: "ipsec0".into(),
            phys: "eth0".into(),
            addr: EAST.into(),
        }],
        ..PlutoConfig::default()
    };
    let (code, e) = crate::pluto::Connection::from_section(&conf.conns[0], &cfg).unwrap_err();
    assert_eq!(code, 32);
    assert_eq!(
        e.to_string(),
        "/etc/ipsec.conf:5: rightsubnet=vhost:%no,%priv: Openswan's vhost:/virtual: subnets are not supported; omit rightsubnet so that a peer behind a NAT may use a private client that virtual_private= (config setup) allows"
    );
}

// ---------------------------------------------------------------------------------------------
// Conn switches over an existing ISAKMP SA.

/// West has "net" and "sub2" with the same IDs (@west-net, @east-net): sub2's Quick Mode
/// rides on net's ISAKMP SA. East has "net" and the template "rw" (clients 10.0.3.0/24 ↔
/// 10.0.4.0/24) with `rw_conf` lines (IDs and authentication).
fn switch_pair(rw_conf: &str, east_secrets: &str, west_secrets: &str, net_auth: &str) -> Net {
    let ids = "\tleftid=@west-net\n\trightid=@east-net\n";
    let a_conf = format!(
        "{}conn sub2\n\tleft={WEST}\n\tleftsubnet=10.0.4.0/24\n\tright={EAST}\n\trightsubnet=10.0.3.0/24\n{ids}{net_auth}\tauto=add\n",
        conf("net", &format!("{ids}{net_auth}"))
    );
    let b_conf = format!(
        "{}conn rw\n\tleft={EAST}\n\tleftsubnet=10.0.3.0/24\n\tright=%any\n\trightsubnet=10.0.4.0/24\n{rw_conf}\tauto=add\n",
        conf("net", &format!("{ids}{net_auth}"))
    );
    let mut net = Net::new(
        Node::new(WEST, 1, &a_conf, west_secrets),
        Node::new(EAST, 2, &b_conf, east_secrets),
    );
    net.up_a("net");
    assert_up(&net);
    net.whack_a(
        2,
        WhackCmd::Up {
            name: "sub2".into(),
            asynchronous: true,
        },
    );
    assert_eq!(net.a.established_isakmp(), 1, "{}", net.a.dump());
    net
}

/// Asserts that East refused sub2's Quick Mode over net's ISAKMP SA.
fn assert_switch_refused(net: &Net) {
    assert_eq!(net.b.established_ipsec(), 1, "{}", net.b.dump());
    assert!(!net.b.p.conns.contains_key("rw[1]"));
    assert!(
        net.b.log_has("cannot respond to IPsec SA request because no connection is known for 10.0.3.0/24===198.51.100.7[@east-net]...192.0.2.1[@west-net]===10.0.4.0/24"),
        "{}",
        net.b.dump()
    );
}

/// PSK, `rightid=%any`: the template takes the Quick Mode only if it would have accepted the
/// ISAKMP SA itself: our ID, the peer's ID, and its secret for that peer being the PSK the
/// ISAKMP SA was authenticated with.
#[test]
fn quick_mode_switch_to_a_template_needs_the_isakmp_sas_psk_and_ids() {
    let west = "@west-net @east-net : PSK \"net secret\"\n";
    let east = "@east-net @west-net : PSK \"net secret\"\n";
    let psk = "\tauthby=secret\n";
    let rw = |ids: &str| format!("{ids}\tauthby=secret\n");
    // Same IDs, same secret: switched; the instance's peer ID is the ISAKMP SA's.
    let net = switch_pair(&rw("\tleftid=@east-net\n\trightid=%any\n"), east, west, psk);
    assert_eq!(net.b.established_ipsec(), 2, "{}", net.b.dump());
    assert_eq!(net.b.p.conns["rw[1]"].that.id, Id::Fqdn("west-net".into()));
    // Another secret for that peer (here: two equally specific ones that disagree).
    let other = format!("{east}@east-net %any : PSK \"road warrior secret\"\n");
    let net = switch_pair(
        &rw("\tleftid=@east-net\n\trightid=%any\n"),
        &other,
        west,
        psk,
    );
    assert_switch_refused(&net);
    // Another ID of ours (with its own secret): the peer authenticated another gateway.
    let other = format!("{east}@gateway-rw %any : PSK \"road warrior secret\"\n");
    let net = switch_pair(
        &rw("\tleftid=@gateway-rw\n\trightid=%any\n"),
        &other,
        west,
        psk,
    );
    assert_eq!(net.b.established_ipsec(), 1, "{}", net.b.dump());
    assert!(!net.b.p.conns.contains_key("rw[1]"));
    assert!(net
        .b
        .log_has("cannot respond to IPsec SA request because no connection is known for"));
    // A template for another peer ID.
    let net = switch_pair(
        &rw("\tleftid=@east-net\n\trightid=@someone-else\n"),
        east,
        west,
        psk,
    );
    assert_switch_refused(&net);
}

/// RSA, `rightid=%any`: another `rightrsasigkey=` than the one that verified the ISAKMP SA
/// refuses the switch; with the same key it is accepted.
#[test]
fn quick_mode_switch_to_a_template_needs_the_isakmp_sas_rsa_key() {
    let keys = |seed: u64| {
        let mut rng = StdRng::seed_from_u64(seed);
        let k =
            crate::pluto::crypto::PrivateKey::generate_with_exponent(&mut rng, 1024, 3).unwrap();
        let body = k.to_secrets_body("test");
        (
            k.public_key().to_text(),
            format!(": RSA {{\n{}\n\t}}\n", body.as_str()),
        )
    };
    let (wpub, wsec) = keys(11);
    let (epub, esec) = keys(12);
    let (opub, _) = keys(13);
    let net_auth = format!("\tauthby=rsasig\n\tleftrsasigkey={wpub}\n\trightrsasigkey={epub}\n");
    let rw = |k: &str| {
        format!("\tleftid=@east-net\n\trightid=%any\n\tauthby=rsasig\n\trightrsasigkey={k}\n")
    };
    let net = switch_pair(&rw(&wpub), &esec, &wsec, &net_auth);
    assert_eq!(net.b.established_ipsec(), 2, "{}", net.b.dump());
    assert!(net.b.p.conns.contains_key("rw[1]"));
    let net = switch_pair(&rw(&opub), &esec, &wsec, &net_auth);
    assert_switch_refused(&net);
}

// ---------------------------------------------------------------------------------------------
// Deletes.

/// B's outbound ESP SPI towards WEST (the SPI a Delete from WEST names).
fn esp_to_west(b: &Node) -> u32 {
    b.sadb
        .keys()
        .find(|s| s.proto == Proto::Esp && s.dst == WEST)
        .expect("an ESP SA to WEST")
        .spi
}

fn esp_delete(spis: &[u32]) -> Payload {
    Payload::Delete(DeletePayload {
        doi: Doi::Ipsec,
        protocol: ProtocolId::Esp,
        spi_size: 4,
        spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
    })
}

/// The newest established ISAKMP SA of a node.
fn isakmp_sa(n: &Node) -> SerialNo {
    n.p.sas
        .ikes()
        .filter(|s| s.established)
        .map(|s| s.serial())
        .max()
        .expect("an ISAKMP SA")
}

/// B with the host-only Road-Warrior template "rw" (`%any` PSK).
fn rw_gateway() -> Node {
    Node::new(
        EAST,
        2,
        &format!("version 2\nconn rw\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n"),
        "198.51.100.7 %any : PSK \"rw secret\"\n",
    )
}

/// A second road warrior at the same address, with another ID and its own ISAKMP SA, cannot
/// delete the first one's SAs (IPsec or ISAKMP); its refused Deletes are logged in one line per
/// payload however many SPIs they name. The first road warrior's own Delete still works.
#[test]
fn deletes_from_another_peer_at_the_same_address_are_ignored() {
    let mut net = Net::new(road_warrior("@alice", None, ""), rw_gateway());
    net.up_a("rw");
    assert_up(&net);
    let spi = esp_to_west(&net.b);
    let alice_p1 = net.b.p.conns["rw[1]"].newest_isakmp.expect("an ISAKMP SA");
    let cookies = {
        let p = net.b.p.sas.ike(alice_p1).unwrap();
        [p.spi_i(), p.spi_r].concat()
    };
    let Net {
        a: alice, b, now, ..
    } = net;
    // Mallory: same address, another ID, only an ISAKMP SA (her Quick Mode is lost).
    let mut net = Net::new(road_warrior("@mallory", None, ""), b);
    net.now = now;
    net.drop = Box::new(|d, data| d == Dir::AtoB && data.get(18) == Some(&32));
    net.whack_a(
        1,
        WhackCmd::Up {
            name: "rw".into(),
            asynchronous: true,
        },
    );
    assert_eq!(net.b.established_isakmp(), 2, "{}", net.b.dump());
    let mallory = isakmp_sa(&net.a);
    let logs_before = net.b.logs.len();
    let before = touched(&net.b);
    net.a.p.send_info(mallory, vec![esp_delete(&[spi])]);
    let many: Vec<u32> = (0..500).map(|i| spi.wrapping_add(i)).collect();
    net.a.p.send_info(mallory, vec![esp_delete(&many)]);
    net.a.p.send_info(
        mallory,
        vec![Payload::Delete(DeletePayload {
            doi: Doi::Ipsec,
            protocol: ProtocolId::Isakmp,
            spi_size: 16,
            spis: vec![cookies],
        })],
    );
    net.run();
    assert_eq!(net.b.established_ipsec(), 1, "{}", net.b.dump());
    assert!(net.b.p.sas.ike(alice_p1).is_some());
    assert_eq!(touched(&net.b), before);
    assert!(
        net.b.log_has(&format!(
            "ignoring Delete SA payload: ESP SA(0x{spi:08x}) not negotiated with this peer"
        )),
        "{}",
        net.b.dump()
    );
    assert!(net.b.log_has("ignoring Delete SA payload: ISAKMP SA(0x"));
    assert!(net.b.log_has("further SPIs beyond the first 64"));
    let new_lines = net.b.logs.len() - logs_before;
    assert!(new_lines <= 6, "{:?}", &net.b.logs[logs_before..]);
    // Alice's own Delete.
    let Net { b, now, .. } = net;
    let mut net = Net::new(alice, b);
    net.now = now;
    net.whack_a(2, WhackCmd::Down("rw".into()));
    assert_eq!(net.b.established_ipsec(), 0, "{}", net.b.dump());
    assert!(net.b.deleted.iter().any(|s| s.spi == spi));
}

/// The same authenticated peer may delete, over its new ISAKMP SA, an IPsec SA negotiated over
/// the ISAKMP SA it replaced: with a Road-Warrior template, and with a fixed-address conn whose
/// `rightid=%any` uses a `%any` PSK.
#[test]
fn deletes_over_a_replacement_isakmp_sa_are_honoured() {
    let fixed = Node::new(
        EAST,
        2,
        &format!("version 2\nconn rw\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright={WEST}\n\trightid=%any\n\trekey=no\n\tauthby=secret\n\tauto=add\n"),
        "198.51.100.7 %any : PSK \"rw secret\"\n",
    );
    for (b, conn) in [(rw_gateway(), "rw[1]"), (fixed, "rw")] {
        let mut net = Net::new(
            road_warrior(
                "@alice",
                None,
                "\tikelifetime=100s\n\tkeylife=300s\n\trekeymargin=20s\n\trekeyfuzz=0%\n",
            ),
            b,
        );
        net.up_a("rw");
        assert_up(&net);
        let old = net.b.p.conns[conn].newest_isakmp.expect("an ISAKMP SA");
        net.advance_to(85_000);
        assert_eq!(net.a.established_isakmp(), 2, "{}", net.a.dump());
        assert_eq!(net.b.established_isakmp(), 2, "{}", net.b.dump());
        let new = net.a.p.conns["rw"].newest_isakmp.expect("an ISAKMP SA");
        let parent = net
            .b
            .p
            .sas
            .children()
            .find(|c| c.established)
            .map(|c| c.parent());
        assert_eq!(parent, Some(old));
        let spi = esp_to_west(&net.b);
        net.a.p.send_info(new, vec![esp_delete(&[spi])]);
        net.run();
        assert_eq!(net.b.established_ipsec(), 0, "{}", net.b.dump());
        assert!(net
            .b
            .log_has("received Delete SA payload: deleting IPSEC State"));
    }
}
