//! Road-warrior client claims (issue 7, item 2) between real rswan gateways in network
//! namespaces: a road warrior holding the `%any` PSK claims a /32 inside another conn's remote
//! subnet and gets nothing; the other conn's eroute, routes and SAs stay as they were.
//!
//! Gateway B (192.0.2.2, 10.0.2.0/24) has "net" up with gateway A (10.0.1.0/24) and a
//! Road-Warrior template "rw" (`right=%any`, `%any` PSK, `virtual_private=%v4:10.0.0.0/8`). The
//! road warrior sits behind gateway A at 198.51.100.7 and says it is behind a NAT
//! (`forceencaps=yes`), so a private client inside virtual_private= is acceptable to B — except
//! one overlapping net's 10.0.1.0/24.

mod common;

use common::*;
use std::time::Duration;

const NET_PSK: &str = "net secret of peer_claims.rs";
const RW_PSK: &str = "road warrior secret of peer_claims.rs";

/// `ipsec.conf` of gateways A and B: conn "net" plus `more` (whole conn sections).
fn gateway_conf(setup: &str, more: &str) -> String {
    format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n{setup}\nconn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n{more}"
    )
}

/// A road-warrior conn of the road warrior (ID @mallory) claiming `client`.
fn rw_conn(name: &str, client: &str) -> String {
    format!(
        "conn {name}\n\tleft={ROAD_WARRIOR}\n\tleftid=@mallory\n\tleftsubnet={client}\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tforceencaps=yes\n\tauto=add\n"
    )
}

/// `ipsec eroute` without the packet counts, sorted.
fn eroutes(t: &Topo, ns: &str) -> Vec<String> {
    let mut v: Vec<String> = t
        .ipsec_ok(ns, &["eroute"])
        .lines()
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

/// The main routing table.
fn routes(ns: &str) -> String {
    ns_must(ns, &["ip", "route", "show"])
}

/// `ipsec spi` SAIDs, sorted.
fn saids(t: &Topo, ns: &str) -> Vec<String> {
    let mut v: Vec<String> = t
        .ipsec_ok(ns, &["spi"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    v.sort();
    v
}

fn up(t: &Topo, ns: &str, args: &[&str]) {
    let o = t.ipsec(ns, args);
    assert!(
        o.status.success(),
        "ipsec {} failed: {}{}\nlog {ns}:\n{}\nlog B:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        t.log(ns),
        t.log(&t.gb)
    );
}

#[test]
fn road_warrior_claiming_inside_another_conns_subnet_gets_nothing() {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let rw = t.add_road_warrior();
    write_secrets(
        &t,
        &ga,
        &format!("192.0.2.1 192.0.2.2 : PSK \"{NET_PSK}\"\n"),
    );
    write_secrets(
        &t,
        &gb,
        &format!("192.0.2.1 192.0.2.2 : PSK \"{NET_PSK}\"\n192.0.2.2 %any : PSK \"{RW_PSK}\"\n"),
    );
    write_secrets(
        &t,
        &rw,
        &format!("{ROAD_WARRIOR} 192.0.2.2 : PSK \"{RW_PSK}\"\n"),
    );
    t.start_gateway(
        &gb,
        &gateway_conf(
            "\tvirtual_private=%v4:10.0.0.0/8\n",
            "conn rw\n\tleft=192.0.2.2\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n",
        ),
    );
    t.start_gateway(&ga, &gateway_conf("", ""));
    t.start_gateway(
        &rw,
        &format!(
            "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\n{}{}",
            rw_conn("good", "10.9.0.5/32"),
            rw_conn("evil", "10.0.1.5/32")
        ),
    );
    up(&t, &ga, &["auto", "--up", "net"]);
    assert!(
        wait_until(Duration::from_secs(5), || eroutes(&t, &gb)
            .iter()
            .any(|l| l.starts_with("10.0.2.0/24 -> 10.0.1.0/24 => tun0x"))),
        "{:?}",
        eroutes(&t, &gb)
    );
    // The road warrior gets the private client virtual_private= allows (it can negotiate).
    up(&t, &rw, &["auto", "--up", "good"]);
    assert!(
        wait_until(Duration::from_secs(5), || eroutes(&t, &gb)
            .iter()
            .any(|l| l.starts_with("10.0.2.0/24 -> 10.9.0.5/32 => tun0x"))),
        "{:?}\n{}",
        eroutes(&t, &gb),
        t.log(&gb)
    );
    let (eroutes_before, routes_before, saids_before) =
        (eroutes(&t, &gb), routes(&gb), saids(&t, &gb));
    assert!(
        routes_before
            .lines()
            .any(|l| l.starts_with("10.0.1.0/24 ") && l.contains(" dev ipsec0")),
        "{routes_before}"
    );
    // It claims 10.0.1.5/32, inside net's remote subnet (and inside virtual_private=).
    up(&t, &rw, &["auto", "--asynchronous", "--up", "evil"]);
    let refusal = format!("cannot respond to IPsec SA request because no connection is known for 10.0.2.0/24===192.0.2.2[192.0.2.2]...{ROAD_WARRIOR}[@mallory]===10.0.1.5/32");
    assert!(
        wait_until(Duration::from_secs(10), || t.log(&gb).contains(&refusal)),
        "{}",
        t.log(&gb)
    );
    assert!(
        t.log(&gb)
            .contains("peer client 10.0.1.5/32 overlaps the peer client of \"net\""),
        "{}",
        t.log(&gb)
    );
    // Give a wrongly accepted claim the time to show up, then compare.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(eroutes(&t, &gb), eroutes_before, "{}", t.log(&gb));
    assert_eq!(routes(&gb), routes_before, "{}", t.log(&gb));
    assert_eq!(saids(&t, &gb), saids_before, "{}", t.log(&gb));
    assert!(!routes(&gb).contains("10.0.1.5"));
    // net still carries traffic.
    assert!(
        ping(&t.ha, "10.0.2.10", 3, 3),
        "{}\n{}",
        t.log(&ga),
        t.log(&gb)
    );
}
