//! IKE over IPv6 between two rswan gateways (the four-namespace topology with IPv6 added,
//! tests/common): IKEv1 and IKEv2 with IPv6 outer addresses and IPv6 (6-in-6) or IPv4 (4-in-6)
//! clients, and with IPv4 outer addresses and IPv6 clients (6-in-4), ping and a 10 MB TCP transfer whose hash matches while the gateway link shows only
//! IKE and ESP; `auto=route` keying on demand for an IPv6 destination; `auto --status` showing
//! the IPv6 conn and its states; an IPv6 Road Warrior; AAAA-only host names; an IPv6-only
//! public link (`interfaces=` naming it, `%defaultroute` from the IPv6 default route).

mod common;

use common::*;
use std::time::Duration;

const MARKER: &[u8] = b"RSWAN-IKE6-CLEARTEXT-MARKER-5e1a";
const SIZE: usize = 10 * 1024 * 1024 + 33;
const SECRETS: &str = "2001:db8::1 2001:db8::2 : PSK \"the shared secret of ike6.rs\"\n\
                       192.0.2.1 192.0.2.2 : PSK \"the IPv4 secret of ike6.rs\"\n";

/// `ipsec.conf` with conn `net` between 2001:db8::1 and 2001:db8::2 protecting `ls`/`rs`, plus
/// `body` lines.
fn conf(ls: &str, rs: &str, body: &str) -> String {
    format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\nconn net\n\tleft=2001:db8::1\n\tleftsubnet={ls}\n\tright=2001:db8::2\n\trightsubnet={rs}\n\tauthby=secret\n{body}"
    )
}

/// Both gateways with IPv6 added, B with `conf_b`, A with `conf_a`; nothing initiated yet.
fn pair(conf_a: &str, conf_b: &str) -> Topo {
    let mut t = Topo::new();
    t.add_ipv6();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    write_secrets(&t, &ga, SECRETS);
    write_secrets(&t, &gb, SECRETS);
    t.start_gateway(&gb, conf_b);
    t.start_gateway(&ga, conf_a);
    t
}

fn up_ok(t: &Topo, conn: &str) {
    let o = t.ipsec(&t.ga, &["auto", "--up", conn]);
    assert!(
        o.status.success(),
        "ipsec auto --up {conn}: {}{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        t.diag()
    );
}

/// Ping and a TCP transfer from host A to `dst` (host B) through the tunnel with matching
/// hash, while the capture on A's gateway link holds only IKE (UDP 500/4500) and ESP over IPv6
/// (and neighbour discovery), never the inner marker.
fn passes(t: &Topo, dst: &str) {
    passes_over(t, dst, " IP6 ")
}

/// [`passes`] with IKE and ESP over the outer family whose tcpdump tag is `outer` (" IP6 " or
/// " IP ").
fn passes_over(t: &Topo, dst: &str, outer: &str) {
    // IKEv1's QI2 is not acknowledged: the responder's tunnel eroute may follow a moment later.
    assert!(
        wait_until(Duration::from_secs(5), || t
            .ipsec_ok(&t.gb, &["eroute"])
            .contains("=> tun0x")),
        "responder has no tunnel eroute\n{}",
        t.diag()
    );
    assert!(
        wait_until(Duration::from_secs(5), || ping(&t.ha, dst, 1, 1)),
        "no ping to {dst} through the tunnel\n{}",
        t.diag()
    );
    let cap = Capture::start(&t.ga, &t.ga_out, &t.dir.path("link6.pcap"));
    let (got, text) = ping_replies(&t.ha, dst, 3, 3);
    assert_eq!(got, 3, "ping {dst}:\n{text}\n{}", t.diag());
    let port = 5300 + (std::process::id() % 500) as u16;
    let (sent, recv, n) = tcp_transfer(
        &t.ha,
        &t.hb,
        dst.parse::<std::net::IpAddr>().unwrap(),
        port,
        payload(SIZE, MARKER),
    );
    let (lines, raw) = cap.stop();
    assert_eq!(n, SIZE, "TCP transfer cut short\n{}", t.diag());
    assert_eq!(sent, recv, "TCP payload hash");
    assert!(!contains(&raw, MARKER), "inner cleartext on the wire");
    let mut esp = 0;
    for l in &lines {
        let ike = l.contains(".500 > ") || l.contains(".4500 > ") || l.contains("isakmp");
        let nd = is_ipv6_link_chatter(l);
        if l.contains("ESP(") {
            esp += 1;
            assert!(l.contains(outer), "ESP not over{outer}: {l}");
        } else if ike {
            assert!(l.contains(outer), "IKE not over{outer}: {l}");
        } else {
            assert!(nd || l.contains(" ARP"), "not IKE/ESP on the link: {l}");
        }
    }
    assert!(esp >= 200, "only {esp} ESP packets captured");
}

#[test]
fn ikev1_over_ipv6_6in6_ping_and_tcp() {
    let c = conf("2001:db8:1::/64", "2001:db8:2::/64", "\tauto=add\n");
    let t = pair(&c, &c);
    up_ok(&t, "net");
    passes(&t, "2001:db8:2::10");
    let st = t.ipsec_ok(&t.ga, &["auto", "--status"]);
    assert!(
        st.contains("\"net\": 2001:db8:1::/64===2001:db8::1") && st.contains("===2001:db8:2::/64"),
        "{st}"
    );
    assert!(
        st.contains("STATE_MAIN_I4") && st.contains("STATE_QUICK_I2"),
        "{st}"
    );
    let st = t.ipsec_ok(&t.gb, &["auto", "--status"]);
    assert!(st.contains("STATE_QUICK_R2"), "{st}");
    let er = t.ipsec_ok(&t.ga, &["eroute"]);
    assert!(
        er.contains("2001:db8:1::/64") && er.contains("@2001:db8::2"),
        "{er}"
    );
}

#[test]
fn ikev2_over_ipv6_6in6_ping_and_tcp() {
    let c = conf(
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        "\tkeyexchange=ikev2\n\tauto=add\n",
    );
    let t = pair(&c, &c);
    up_ok(&t, "net");
    passes(&t, "2001:db8:2::10");
    let st = t.ipsec_ok(&t.gb, &["auto", "--status"]);
    assert!(st.contains("STATE_V2_ESTABLISHED"), "{st}");
}

#[test]
fn ikev1_over_ipv6_4in6_ping_and_tcp() {
    let c = conf("10.0.1.0/24", "10.0.2.0/24", "\tauto=add\n");
    let t = pair(&c, &c);
    up_ok(&t, "net");
    passes(&t, "10.0.2.10");
}

#[test]
fn ikev2_over_ipv6_4in6_ping_and_tcp() {
    let c = conf(
        "10.0.1.0/24",
        "10.0.2.0/24",
        "\tkeyexchange=ikev2\n\tauto=add\n",
    );
    let t = pair(&c, &c);
    up_ok(&t, "net");
    passes(&t, "10.0.2.10");
}

/// 6-in-4 keyed by IKE: IPv4 gateways, IPv6 subnets, for IKEv1 (Quick Mode IDs
/// ID_IPV6_ADDR_SUBNET) and IKEv2 (TS_IPV6_ADDR_RANGE) in turn.
#[test]
fn ike_over_ipv4_6in4_ping_and_tcp() {
    for body in ["\tauto=add\n", "\tkeyexchange=ikev2\n\tauto=add\n"] {
        let c = conf("2001:db8:1::/64", "2001:db8:2::/64", body)
            .replace("left=2001:db8::1", "left=192.0.2.1")
            .replace("right=2001:db8::2", "right=192.0.2.2");
        let t = pair(&c, &c);
        up_ok(&t, "net");
        passes_over(&t, "2001:db8:2::10", " IP ");
        let er = t.ipsec_ok(&t.ga, &["eroute"]);
        assert!(
            er.contains("2001:db8:1::/64") && er.contains("@192.0.2.2"),
            "{er}"
        );
    }
}

/// `auto=route`: the `%trap` covers the IPv6 subnets; the first packet to an IPv6 destination
/// is trapped, its acquire keys the conn, and traffic then flows through the tunnel.
#[test]
fn auto_route_keys_on_demand_for_an_ipv6_destination() {
    let t = pair(
        &conf("2001:db8:1::/64", "2001:db8:2::/64", "\tauto=route\n"),
        &conf("2001:db8:1::/64", "2001:db8:2::/64", "\tauto=add\n"),
    );
    let er = t.ipsec_ok(&t.ga, &["eroute"]);
    assert!(
        er.contains("2001:db8:1::/64") && er.contains("=> %trap"),
        "{er}"
    );
    // The first ping is trapped (and held); the tunnel comes up on demand.
    assert!(
        wait_until(Duration::from_secs(15), || ping(
            &t.ha,
            "2001:db8:2::10",
            1,
            1
        )),
        "no tunnel on demand\n{}",
        t.diag()
    );
    assert!(
        t.log(&t.ga).contains("acquire: 2001:db8:1::10"),
        "{}",
        t.log(&t.ga)
    );
    let er = t.ipsec_ok(&t.ga, &["eroute"]);
    assert!(er.contains("=> tun0x") && !er.contains("%hold"), "{er}");
    passes(&t, "2001:db8:2::10");
}

/// A Road Warrior over IPv6: gateway B's `right=%any` template (its secret indexed by its IPv6
/// address and `%any`) instantiates for gateway A at 2001:db8::1, `auto --status` shows the
/// instance with IPv6 hosts, and A's own traffic to host B goes through the tunnel.
#[test]
fn ipv6_road_warrior() {
    let mut t = Topo::new();
    t.add_ipv6();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    write_secrets(
        &t,
        &gb,
        "2001:db8::2 %any : PSK \"the shared secret of ike6.rs\"\n",
    );
    write_secrets(&t, &ga, SECRETS);
    t.start_gateway(
        &gb,
        "version 2\nconfig setup\n\tinterfaces=%defaultroute\nconn rw\n\tleft=2001:db8::2\n\tleftsubnet=2001:db8:2::/64\n\tright=%any\n\tauthby=secret\n\tauto=add\n",
    );
    t.start_gateway(
        &ga,
        "version 2\nconfig setup\n\tinterfaces=%defaultroute\nconn rw\n\tleft=2001:db8::1\n\tright=2001:db8::2\n\trightsubnet=2001:db8:2::/64\n\tauthby=secret\n\tauto=add\n",
    );
    let st = t.ipsec_ok(&gb, &["auto", "--status"]);
    assert!(
        st.contains("\"rw\": 2001:db8:2::/64===2001:db8::2...%any; unrouted"),
        "{st}"
    );
    up_ok(&t, "rw");
    let st = t.ipsec_ok(&gb, &["auto", "--status"]);
    assert!(
        st.contains("\"rw\"[1]: 2001:db8:2::/64===2001:db8::2...2001:db8::1; erouted"),
        "{st}\n{}",
        t.diag()
    );
    assert!(st.contains("\"rw\"[1] 2001:db8::1 STATE_MAIN_R3"), "{st}");
    assert!(
        wait_until(Duration::from_secs(5), || t
            .ipsec_ok(&gb, &["eroute"])
            .contains("-> 2001:db8::1/128")),
        "{}",
        t.ipsec_ok(&gb, &["eroute"])
    );
    // Gateway A itself is the road warrior: its packets leave from its public address.
    let ok = wait_until(Duration::from_secs(5), || {
        ns_run(
            &ga,
            &[
                "ping",
                "-6",
                "-n",
                "-c",
                "1",
                "-W",
                "1",
                "-I",
                "2001:db8::1",
                "2001:db8:2::10",
            ],
        )
        .status
        .success()
    });
    assert!(ok, "no ping from the road warrior\n{}", t.diag());
    let look = t.ipsec_ok(&gb, &["spi"]);
    assert!(look.contains("@2001:db8::1"), "{look}");
}

/// `left=`/`right=` host names with only AAAA records (here the namespace's `/etc/hosts`)
/// resolve to their IPv6 addresses when the conn loads, and IKEv2 runs over them.
#[test]
fn aaaa_only_host_names_in_left_and_right() {
    let mut t = Topo::new();
    t.add_ipv6();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let _etc = NetnsEtc::hosts(
        &[&ga, &gb],
        "127.0.0.1 localhost
2001:db8::1 gw-a6.rswan.test
2001:db8::2 gw-b6.rswan.test
",
    );
    let c = conf(
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        "\tkeyexchange=ikev2\n\tauto=add\n",
    )
    .replace("left=2001:db8::1", "left=gw-a6.rswan.test")
    .replace("right=2001:db8::2", "right=gw-b6.rswan.test");
    write_secrets(&t, &ga, SECRETS);
    write_secrets(&t, &gb, SECRETS);
    t.start_gateway(&gb, &c);
    t.start_gateway(&ga, &c);
    up_ok(&t, "net");
    let st = t.ipsec_ok(&ga, &["auto", "--status"]);
    assert!(
        st.contains("\"net\": 2001:db8:1::/64===2001:db8::1...2001:db8::2===2001:db8:2::/64"),
        "{st}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || ping(
            &t.ha,
            "2001:db8:2::10",
            1,
            1
        )),
        "{}",
        t.diag()
    );
}

/// Gateways whose public link has only IPv6: `interfaces=` names the IPv6-only interface (on
/// A) or comes from the IPv6 default route (`%defaultroute` on B, which has no IPv4 default
/// route), and A's `left=%defaultroute` resolves from the IPv6 default route because the
/// conn's other addresses are IPv6.
#[test]
fn ipv6_only_interfaces_and_defaultroute() {
    let mut t = Topo::new();
    t.add_ipv6();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    for (ns, dev) in [(&ga, t.ga_out.clone()), (&gb, t.gb_out.clone())] {
        must("ip", &["-n", ns, "-4", "addr", "flush", "dev", &dev]);
    }
    write_secrets(&t, &ga, SECRETS);
    write_secrets(&t, &gb, SECRETS);
    t.start_gateway(
        &gb,
        &conf("2001:db8:1::/64", "2001:db8:2::/64", "\tauto=add\n"),
    );
    let a = conf("2001:db8:1::/64", "2001:db8:2::/64", "\tauto=add\n")
        .replace(
            "interfaces=%defaultroute",
            &format!("interfaces=ipsec0={}", t.ga_out),
        )
        .replace("left=2001:db8::1", "left=%defaultroute");
    t.start_gateway(&ga, &a);
    up_ok(&t, "net");
    let st = t.ipsec_ok(&ga, &["auto", "--status"]);
    assert!(
        st.contains("interface ipsec0/") && st.contains(" 2001:db8::1\n"),
        "{st}"
    );
    assert!(
        st.contains("\"net\": 2001:db8:1::/64===2001:db8::1"),
        "{st}"
    );
    passes(&t, "2001:db8:2::10");
}
