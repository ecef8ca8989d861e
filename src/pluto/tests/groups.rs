//! Policy groups: implicit conns, group files, instances with their shunts or `%trap`,
//! most specific selection, `--rereadgroups`, the `no_oe.conf` idiom, user group conns, and
//! opportunistic acquires falling back to the failure shunt.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::addr::Subnet;
use crate::klips::Acquire;
use crate::pluto::groups::{parse_group_entries, parse_group_file, PolicyGroups};
use crate::pluto::{ErouteOp, Output, WhackClient, WhackCmd};
use crate::said::{Said, Shunt};

use super::{Node, WEST};

const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

fn node(conf: &str) -> Node {
    Node::with_cfg(WEST, 7, conf, "", |c| {
        c.defaultroute = Some((WEST.into(), GW.into()))
    })
}

fn groups(files: &[(&str, &str)]) -> PolicyGroups {
    let mut g = PolicyGroups::default();
    for (name, text) in files {
        let (e, errs) = parse_group_file(text, Path::new(name), &|_| None);
        assert!(errs.is_empty(), "{errs:?}");
        g.groups.insert(name.to_string(), e);
    }
    g
}

/// Drains outputs: the eroute operations, and the logs into the node.
fn eroutes(n: &mut Node) -> Vec<(ErouteOp, Subnet, Subnet, Said)> {
    let mut v = Vec::new();
    while let Some(o) = n.p.poll_output() {
        match o {
            Output::Eroute { op, src, dst, said } => v.push((op, src, dst, said)),
            Output::Log(l) => n.logs.push(l),
            _ => {}
        }
    }
    v
}

fn net(s: &str) -> Subnet {
    s.parse().unwrap()
}

fn shunt(s: Shunt) -> Said {
    Said::new(crate::said::Proto::Int, s.spi(), Ipv4Addr::UNSPECIFIED)
}

fn me() -> Subnet {
    Subnet::host(WEST)
}

fn acquire(n: &mut Node, dst: Ipv4Addr) -> Vec<(ErouteOp, Subnet, Subnet, Said)> {
    n.p.handle_acquire(
        1000,
        Acquire {
            src: WEST.into(),
            dst: dst.into(),
            proto: 1,
            sport: 0,
            dport: 0,
        },
    );
    eroutes(n)
}

const FILES: &[(&str, &str)] = &[
    ("clear", "10.1.0.0/16\n"),
    ("block", "# nothing from here\n10.2.0.0/16\n"),
    ("private", "10.0.0.0/8\n"),
    ("private-or-clear", "0.0.0.0/0\n"),
    ("clear-or-private", ""),
];

#[test]
fn implicit_groups_route_instances_with_their_shunts_and_traps() {
    let mut n = node("version 2\n");
    let _ = eroutes(&mut n);
    // Without group files: the group conns are there, nothing is routed.
    let st = n.status(0).join("\n");
    for g in [
        "clear",
        "clear-or-private",
        "private-or-clear",
        "private",
        "block",
    ] {
        assert!(
            st.contains(&format!("\"{g}\": 192.0.2.1---192.0.2.254...")),
            "{st}"
        );
    }
    assert!(
        st.contains("\"private\": 192.0.2.1---192.0.2.254...%opportunisticgroup; unrouted"),
        "{st}"
    );
    assert!(
        st.contains("\"block\": 192.0.2.1---192.0.2.254...%group; unrouted"),
        "{st}"
    );
    assert!(st.contains("\"packetdefault\": 0.0.0.0/0===192.0.2.1---192.0.2.254...%opportunistic===0.0.0.0/0; unrouted"), "{st}");
    assert!(eroutes(&mut n).is_empty());

    n.p.load_policy_groups(groups(FILES));
    let e = eroutes(&mut n);
    let has = |dst: &str, s: Shunt| {
        e.iter()
            .any(|x| *x == (ErouteOp::Add, me(), net(dst), shunt(s)))
    };
    assert!(has("10.1.0.0/16", Shunt::Pass), "{e:?}");
    assert!(has("10.2.0.0/16", Shunt::Reject), "{e:?}");
    assert!(has("10.0.0.0/8", Shunt::Trap), "{e:?}");
    assert!(has("0.0.0.0/0", Shunt::Trap), "{e:?}");
    // packetdefault follows once an opportunistic group is routed.
    assert!(
        e.contains(&(ErouteOp::Add, Subnet::ANY, Subnet::ANY, shunt(Shunt::Trap))),
        "{e:?}"
    );
    let st = n.status(0).join("\n");
    assert!(st.contains("\"private#10.0.0.0/8\": 192.0.2.1---192.0.2.254...%opportunistic===10.0.0.0/8; prospective erouted; eroute owner: #0"), "{st}");
    assert!(st.contains("\"clear#10.1.0.0/16\": 192.0.2.1---192.0.2.254...%group===10.1.0.0/16; prospective erouted"), "{st}");
    assert!(st.contains("\"private#10.0.0.0/8\":   policy: RSASIG+ENCRYPT+TUNNEL+PFS+DONTREKEY+OPPORTUNISTIC+failureDROP+lKOD+rKOD; prio: 32,8"), "{st}");
    assert!(st.contains("\"private\":   policy: RSASIG+ENCRYPT+TUNNEL+PFS+DONTREKEY+OPPORTUNISTIC+GROUP+GROUTED+failureDROP+lKOD+rKOD"), "{st}");
    assert!(
        st.contains("\"block#10.2.0.0/16\":   policy: PFS+REJECT+NEVER_NEGOTIATE"),
        "{st}"
    );
    // OE cannot work here: said loudly.
    n.p.warn_oe_unusable();
    let _ = eroutes(&mut n);
    assert!(
        n.log_has("WARNING: opportunistic encryption cannot work (no DNS resolver"),
        "{}",
        n.dump()
    );
    assert!(n.log_has("\"private#10.0.0.0/8\""), "{}", n.dump());
}

#[test]
fn most_specific_group_decides_the_failure_shunt() {
    let mut n = node("version 2\n");
    n.p.load_policy_groups(groups(FILES));
    let _ = eroutes(&mut n);
    let dst = Ipv4Addr::new(10, 9, 9, 9);
    // private#10.0.0.0/8 beats private-or-clear#0.0.0.0/0: without a record, drop.
    let e = acquire(&mut n, dst);
    assert!(
        e.contains(&(
            ErouteOp::Replace,
            me(),
            Subnet::host(dst),
            shunt(Shunt::Drop)
        )),
        "{e:?}"
    );
    let other = Ipv4Addr::new(203, 0, 113, 5);
    let e = acquire(&mut n, other);
    assert!(
        e.contains(&(
            ErouteOp::Replace,
            me(),
            Subnet::host(other),
            shunt(Shunt::Pass)
        )),
        "{e:?}"
    );
    assert!(
        n.log_has("\"private#10.0.0.0/8\": cannot encrypt 192.0.2.1 -> 10.9.9.9"),
        "{}",
        n.dump()
    );
    // The failure shunts are bare shunts in --status.
    let st = n.status(2000).join("\n");
    assert!(
        st.contains("192.0.2.1/32:0 -0-> 10.9.9.9/32:0 => %drop"),
        "{st}"
    );
    assert!(
        st.contains("192.0.2.1/32:0 -0-> 203.0.113.5/32:0 => %pass"),
        "{st}"
    );
}

#[test]
fn rereadgroups_changes_only_what_changed() {
    let mut n = node("version 2\n");
    n.p.load_policy_groups(groups(FILES));
    let _ = eroutes(&mut n);
    let mut files = FILES.to_vec();
    files[0] = ("clear", "");
    files[1] = ("block", "10.2.0.0/16\n10.3.0.0/16\n");
    n.p.whack(5000, WhackClient(1), WhackCmd::RereadGroups(groups(&files)));
    let e = eroutes(&mut n);
    assert_eq!(
        e,
        vec![
            (
                ErouteOp::Delete,
                me(),
                net("10.1.0.0/16"),
                shunt(Shunt::Trap)
            ),
            (
                ErouteOp::Add,
                me(),
                net("10.3.0.0/16"),
                shunt(Shunt::Reject)
            ),
        ],
        "only the removed and the added entry change"
    );
    assert!(n.p.conns.contains_key("block#10.2.0.0/16"));
    assert!(!n.p.conns.contains_key("clear#10.1.0.0/16"));
}

#[test]
fn no_oe_idiom_and_user_group_conns() {
    let conf = "version 2\n\
                conn block\n\tauto=ignore\n\
                conn private-or-clear\n\tauto=ignore\n\
                conn packetdefault\n\tauto=ignore\n\
                conn mine\n\tleft=%defaultroute\n\tright=%opportunisticgroup\n\tfailureshunt=reject\n\talso=oe-bits\n\tauto=route\n\
                conn oe-bits\n\tkeyingtries=2\n\trekey=no\n\
                conn blocked\n\tleft=%defaultroute\n\tright=%group\n\ttype=drop\n\tauthby=never\n\tauto=route\n";
    let mut n = node(conf);
    let mut files = FILES.to_vec();
    files.push(("mine", "198.51.100.0/24\n"));
    files.push(("blocked", "203.0.113.0/24\n"));
    n.p.load_policy_groups(groups(&files));
    let e = eroutes(&mut n);
    assert!(!n.p.conns.contains_key("block"));
    assert!(!n.p.conns.contains_key("private-or-clear"));
    assert!(
        !e.iter()
            .any(|x| x.2 == net("10.2.0.0/16") || x.2 == Subnet::ANY),
        "{e:?}"
    );
    assert!(
        e.contains(&(
            ErouteOp::Add,
            me(),
            net("198.51.100.0/24"),
            shunt(Shunt::Trap)
        )),
        "{e:?}"
    );
    assert!(
        e.contains(&(
            ErouteOp::Add,
            me(),
            net("203.0.113.0/24"),
            shunt(Shunt::Drop)
        )),
        "{e:?}"
    );
    assert_eq!(n.p.conns["mine#198.51.100.0/24"].keyingtries, 2);
    let peer = Ipv4Addr::new(198, 51, 100, 3);
    let e = acquire(&mut n, peer);
    assert!(
        e.contains(&(
            ErouteOp::Replace,
            me(),
            Subnet::host(peer),
            shunt(Shunt::Reject)
        )),
        "{e:?}"
    );
    // A group instance cannot be brought up by hand.
    n.p.whack(
        0,
        WhackClient(3),
        WhackCmd::Up {
            name: "mine#198.51.100.0/24".into(),
            asynchronous: false,
        },
    );
    let mut done = None;
    while let Some(o) = n.p.poll_output() {
        if let Output::WhackDone { status, .. } = o {
            done = Some(status);
        }
    }
    assert_eq!(done, Some(22));
}

#[test]
fn same_network_in_two_groups_keeps_the_first() {
    let mut n = node("version 2\n");
    n.p.load_policy_groups(groups(&[
        ("block", "10.5.0.0/16\n"),
        ("clear", "10.5.0.0/16\n"),
    ]));
    let e = eroutes(&mut n);
    assert_eq!(
        e.iter().filter(|x| x.2 == net("10.5.0.0/16")).count(),
        1,
        "{e:?}"
    );
    assert!(
        n.log_has("10.5.0.0/16 is already in policy group \"block\""),
        "{}",
        n.dump()
    );
}

/// Host names in group files are resolved through the DNS resolver (the daemon never waits
/// for DNS): the networks' instances come at once, a name's when its answer arrives; a name
/// that does not resolve is logged with its file:line and skipped; `--rereadgroups` keeps a
/// resolved name's instance (and its eroute) while the new answer is awaited.
#[test]
fn group_file_host_names_resolve_asynchronously() {
    use crate::dns::{Lookup, Record, RrType};
    let mut n = node("version 2\n");
    n.p.set_dns_available(true);
    let _ = eroutes(&mut n);
    let text = "gw.example.net\n10.9.0.0/16\nnowhere.example.net\n";
    let path = Path::new("/etc/ipsec.d/policies/private");
    type Lookups = Vec<(crate::dns::LookupId, String, RrType)>;
    let load = |n: &mut Node| -> (Vec<(ErouteOp, Subnet, Subnet, Said)>, Lookups) {
        let (e, h, errs) = parse_group_entries(text, path);
        assert!(errs.is_empty(), "{errs:?}");
        let mut g = PolicyGroups::default();
        g.groups.insert("private".into(), e);
        g.hosts.insert("private".into(), h);
        n.p.load_policy_groups(g);
        let (mut er, mut dns) = (Vec::new(), Vec::new());
        while let Some(o) = n.p.poll_output() {
            match o {
                Output::Eroute { op, src, dst, said } => er.push((op, src, dst, said)),
                Output::DnsLookup { id, name, qtype } => dns.push((id, name, qtype)),
                Output::Log(l) => n.logs.push(l),
                _ => {}
            }
        }
        (er, dns)
    };
    let trap = shunt(Shunt::Trap);
    let (er, dns) = load(&mut n);
    assert!(
        er.contains(&(ErouteOp::Add, me(), net("10.9.0.0/16"), trap)),
        "{er:?}"
    );
    assert!(!n.p.conns.contains_key("private#198.51.100.9/32"));
    let asked: Vec<(&str, RrType)> = dns.iter().map(|(_, m, q)| (m.as_str(), *q)).collect();
    assert_eq!(
        asked,
        [
            ("gw.example.net", RrType::A),
            ("nowhere.example.net", RrType::A)
        ]
    );
    let answer = |name: &str| {
        if name == "gw.example.net" {
            Lookup::Answer(vec![Record {
                name: name.to_string(),
                rtype: RrType::A,
                ttl: 60,
                rdata: vec![198, 51, 100, 9],
                target: None,
            }])
        } else {
            Lookup::NoRecord
        }
    };
    for (id, name, q) in dns {
        n.p.handle_dns(2000, id, &name, q, answer(&name));
    }
    let er = eroutes(&mut n);
    assert_eq!(
        er,
        [(ErouteOp::Add, me(), net("198.51.100.9/32"), trap)],
        "{}",
        n.dump()
    );
    assert!(n.p.conns.contains_key("private#198.51.100.9/32"));
    assert!(
        n.log_has("WARNING: /etc/ipsec.d/policies/private:3: \"nowhere.example.net\": host name does not resolve to an IPv4 address (DNS A nowhere.example.net: no record); skipped"),
        "{}",
        n.dump()
    );
    // --rereadgroups: nothing moves while the names are asked again; the same answer changes
    // nothing either.
    let (er, dns) = load(&mut n);
    assert!(er.is_empty(), "{er:?}");
    assert!(n.p.conns.contains_key("private#198.51.100.9/32"));
    assert_eq!(dns.len(), 2);
    for (id, name, q) in dns {
        n.p.handle_dns(3000, id, &name, q, answer(&name));
    }
    assert!(eroutes(&mut n).is_empty());
    assert!(n.p.conns.contains_key("private#198.51.100.9/32"));
}
