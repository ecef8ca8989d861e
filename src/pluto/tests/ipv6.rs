//! IKE over IPv6 between two engines: IKEv1 (Main and Quick Mode with ID_IPV6_ADDR and
//! ID_IPV6_ADDR_SUBNET client IDs) and IKEv2 (ID_IPV6_ADDR, TS_IPV6_ADDR_RANGE), with IPv6 or
//! IPv4 clients (6-in-6, 4-in-6), NAT-D over IPv6 and on-demand keying for an IPv6 acquire.

use super::scenarios::assert_up;
use super::*;
use crate::sadb::Dir as SaDir;
use crate::said::{Proto, Shunt};
use std::net::Ipv6Addr;

const WEST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const EAST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 7);
const PSK6: &str = "2001:db8::1 2001:db8:ffff::7: PSK \"a very secret phrase\"\n";

/// West and east over IPv6 with clients `ours`/`theirs` and `extra` lines for both.
fn v6_pair(ours: &str, theirs: &str, extra: &str) -> Net {
    let conf = format!(
        "version 2\nconn net\n\tleft={WEST6}\n\tleftsubnet={ours}\n\tright={EAST6}\n\trightsubnet={theirs}\n\tauthby=secret\n\tauto=add\n{extra}"
    );
    Net::new(
        Node::new(WEST6, 1, &conf, PSK6),
        Node::new(EAST6, 2, &conf, PSK6),
    )
}

/// Both directions' SAs run between the IPv6 hosts, and the tunnel eroute covers the clients.
fn assert_v6_tunnel(net: &Net, ours: &str, theirs: &str) {
    assert_up(net);
    for (n, me, peer) in [(&net.a, WEST6, EAST6), (&net.b, EAST6, WEST6)] {
        for spec in n.sadb.values() {
            let (src, dst) = match spec.dir {
                Some(SaDir::Out) => (me, peer),
                _ => (peer, me),
            };
            assert_eq!(spec.said.dst, IpAddr::V6(dst), "{}", n.dump());
            assert_eq!(spec.src, IpAddr::V6(src), "{}", n.dump());
        }
    }
    let (o, t): (Subnet, Subnet) = (ours.parse().unwrap(), theirs.parse().unwrap());
    let tunnel = |n: &Node, src: Subnet, dst: Subnet| {
        n.eroutes
            .iter()
            .any(|e| (e.1, e.2) == (src, dst) && e.3.proto == Proto::Tun)
    };
    assert!(tunnel(&net.a, o, t), "A:\n{}", net.a.dump());
    assert!(tunnel(&net.b, t, o), "B:\n{}", net.b.dump());
}

#[test]
fn ikev1_over_ipv6_with_ipv6_clients() {
    let mut net = v6_pair("2001:db8:1::/64", "2001:db8:2::/64", "");
    net.up_a("net");
    assert_v6_tunnel(&net, "2001:db8:1::/64", "2001:db8:2::/64");
    assert!(
        net.a
            .whack_has(4, "\"net\" #1: STATE_MAIN_I4: ISAKMP SA established"),
        "{}",
        net.a.dump()
    );
    // updown sees the IPv6 hosts and clients (PLUTO_* values; the default script routes the
    // peer client into ipsec0 by device).
    let env = net.a.p.conns["net"]
        .updown_info()
        .env(crate::updown::Verb::Up);
    for (k, v) in [
        ("PLUTO_VERB", "up-client"),
        ("PLUTO_ME", "2001:db8::1"),
        ("PLUTO_PEER", "2001:db8:ffff::7"),
        ("PLUTO_PEER_ID", "2001:db8:ffff::7"),
        ("PLUTO_MY_CLIENT", "2001:db8:1::/64"),
        ("PLUTO_PEER_CLIENT_NET", "2001:db8:2::"),
        ("PLUTO_PEER_CLIENT_MASK", "ffff:ffff:ffff:ffff::"),
        ("PLUTO_INTERFACE", "ipsec0"),
    ] {
        assert!(
            env.contains(&(k.to_string(), v.to_string())),
            "{k}: {env:?}"
        );
    }
    // The peer's ID is its IPv6 address (ID_IPV6_ADDR), as --status shows.
    let st = net.b.status(net.now).join("\n");
    assert!(st.contains("2001:db8::1"), "{st}");
    assert!(st.contains("2001:db8:1::/64"), "{st}");
}

#[test]
fn ikev1_over_ipv6_with_ipv4_clients() {
    let mut net = v6_pair("10.0.1.0/24", "10.0.2.0/24", "");
    net.up_a("net");
    assert_v6_tunnel(&net, "10.0.1.0/24", "10.0.2.0/24");
}

#[test]
fn ikev2_over_ipv6_with_ipv6_clients() {
    let mut net = v6_pair(
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        "\tkeyexchange=ikev2\n",
    );
    net.up_a("net");
    assert_v6_tunnel(&net, "2001:db8:1::/64", "2001:db8:2::/64");
    assert!(
        net.a.log_has("STATE_V2_PARENT_I1") || net.a.whack_has(130, "IKE_SA_INIT"),
        "{}",
        net.a.dump()
    );
}

#[test]
fn ikev2_over_ipv6_with_ipv4_clients() {
    let mut net = v6_pair("10.0.1.0/24", "10.0.2.0/24", "\tkeyexchange=ikev2\n");
    net.up_a("net");
    assert_v6_tunnel(&net, "10.0.1.0/24", "10.0.2.0/24");
}

#[test]
fn ikev1_and_ikev2_over_ipv4_with_ipv6_clients() {
    for extra in ["", "\tkeyexchange=ikev2\n"] {
        let conf = format!(
            "version 2\nconn net\n\tleft={WEST}\n\tleftsubnet=2001:db8:1::/64\n\tright={EAST}\n\trightsubnet=2001:db8:2::/64\n\tauthby=secret\n\tauto=add\n{extra}"
        );
        let mut net = Net::new(
            Node::new(WEST, 1, &conf, PSK),
            Node::new(EAST, 2, &conf, PSK),
        );
        net.up_a("net");
        assert_up(&net);
        let (o, t): (Subnet, Subnet) = (
            "2001:db8:1::/64".parse().unwrap(),
            "2001:db8:2::/64".parse().unwrap(),
        );
        assert!(
            net.a
                .eroutes
                .iter()
                .any(|e| (e.1, e.2) == (o, t) && e.3.proto == Proto::Tun),
            "{}",
            net.a.dump()
        );
    }
}

/// NAT-D over IPv6 (RFC 3947, RFC 7296 2.23: hashes over the 16 address bytes): a Road
/// Warrior behind a NAT66 is detected, IKE moves to port 4500, ESP rides in UDP, and its private
/// client is admitted by `virtual_private=%v6:`.
#[test]
fn nat_detection_over_ipv6_moves_to_4500_and_encapsulates() {
    let private: Ipv6Addr = "fd00:9::2".parse().unwrap();
    for extra in ["", "\tkeyexchange=ikev2\n"] {
        let a = Node::new(
            private,
            1,
            &format!("version 2\nconn rw\n\tleft={private}\n\tright={EAST6}\n\trightsubnet=2001:db8:2::/64\n\tauthby=secret\n\tauto=add\n{extra}"),
            ": PSK \"rw secret\"\n",
        );
        let b = Node::with_cfg(
            EAST6,
            2,
            &format!("version 2\nconn rw\n\tleft={EAST6}\n\tleftsubnet=2001:db8:2::/64\n\tright=%any\n\tauthby=secret\n\tauto=add\n{extra}"),
            ": PSK \"rw secret\"\n",
            |c| {
                c.virtual_private =
                    crate::config::VirtualPrivate::parse("%v4:10.0.0.0/8,%v6:fd00::/8").unwrap()
            },
        );
        let mut net = Net::new(a, b);
        net.nat_a = true;
        net.nat_public = "2001:db8:ffff::99".parse().unwrap();
        net.up_a("rw");
        assert_up(&net);
        assert!(
            net.a.log_has("NAT-Traversal: we are behind a NAT") || net.a.log_has("behind a NAT"),
            "{}",
            net.a.dump()
        );
        let esp: Vec<_> = net
            .b
            .sadb
            .values()
            .filter(|s| s.said.proto == Proto::Esp)
            .collect();
        assert!(
            !esp.is_empty() && esp.iter().all(|s| s.encap.is_some()),
            "{}",
            net.b.dump()
        );
        assert!(
            net.a
                .sent
                .iter()
                .any(|(_, l, r, _)| l.port() == 4500 && r.port() == 4500 && l.is_ipv6()),
            "{}",
            net.a.dump()
        );
        let inst = net.b.p.conns.values().find(|c| c.instance != 0).unwrap();
        assert_eq!(inst.that.client, Subnet::host(private), "{}", net.b.dump());
    }
}

/// `auto=route`: a packet to an IPv6 destination the conn covers is trapped, and its acquire
/// brings the tunnel up (the narrow %hold is settled).
#[test]
fn ipv6_acquire_negotiates_a_routed_conn() {
    for extra in ["", "\tkeyexchange=ikev2\n"] {
        let mut net = v6_pair("2001:db8:1::/64", "2001:db8:2::/64", extra);
        let conf = format!(
            "version 2\nconn net\n\tleft={WEST6}\n\tleftsubnet=2001:db8:1::/64\n\tright={EAST6}\n\trightsubnet=2001:db8:2::/64\n\tauthby=secret\n\tauto=route\n{extra}"
        );
        net.a = Node::new(WEST6, 1, &conf, PSK6);
        net.run();
        let (op, src, _, said) = net.a.eroutes[0];
        assert_eq!((op, said.shunt()), (ErouteOp::Add, Some(Shunt::Trap)));
        assert_eq!(src, "2001:db8:1::/64".parse().unwrap());
        net.a.p.handle_acquire(
            net.now,
            crate::klips::Acquire {
                src: "2001:db8:1::5".parse().unwrap(),
                dst: "2001:db8:2::9".parse().unwrap(),
                proto: 58,
                sport: 0,
                dport: 0,
            },
        );
        net.run();
        assert_v6_tunnel(&net, "2001:db8:1::/64", "2001:db8:2::/64");
        assert!(
            net.a.log_has("initiate on demand from 2001:db8:1::5"),
            "{}",
            net.a.dump()
        );
    }
}

/// A Road Warrior on IPv6: `right=%any` with an IPv6 `left=` instantiates for the peer.
#[test]
fn ipv6_road_warrior_instance() {
    let rw = format!(
        "version 2\nconn rw\n\tleft={EAST6}\n\tleftsubnet=2001:db8:2::/64\n\tright=%any\n\tauthby=secret\n\tauto=add\n"
    );
    let client = format!(
        "version 2\nconn rw\n\tleft={WEST6}\n\tright={EAST6}\n\trightsubnet=2001:db8:2::/64\n\tauthby=secret\n\tauto=add\n"
    );
    for extra in ["", "\tkeyexchange=ikev2\n"] {
        let secrets = "%any 2001:db8:ffff::7: PSK \"a very secret phrase\"\n";
        let mut net = Net::new(
            Node::new(WEST6, 1, &format!("{client}{extra}"), PSK6),
            Node::new(EAST6, 2, &format!("{rw}{extra}"), secrets),
        );
        net.up_a("rw");
        assert_up(&net);
        let inst = net
            .b
            .p
            .conns
            .values()
            .find(|c| c.instance != 0)
            .expect("an instance");
        assert_eq!(inst.that.host, Some(IpAddr::V6(WEST6)));
        assert_eq!(inst.that.client, Subnet::host(WEST6));
    }
}
