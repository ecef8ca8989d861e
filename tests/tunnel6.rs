//! IPv6 through manually keyed tunnels between two rswan gateways (the four-namespace topology
//! with IPv6 added, tests/common): 6-in-6, 4-in-6 and 6-in-4 ESP with ping and a 10 MB TCP transfer
//! whose hash matches while the gateway link shows only ESP, AH over IPv6, `%reject`
//! answering ICMPv6 administratively prohibited, and path MTU discovery through the tunnel.

mod common;
mod support;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;
use support::{daemon_alive, drops, wait_for};

const KEYS: &str = "\tesp=aes128-sha1\n\tespenckey=0x00112233445566778899aabbccddeeff\n\tespauthkey=0x0123456789abcdef0123456789abcdef01234567\n";

fn conf(left: &str, right: &str, ls: &str, rs: &str, body: &str) -> String {
    format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\nconn net\n\tleft={left}\n\tleftsubnet={ls}\n\tright={right}\n\trightsubnet={rs}\n\tspibase=0x200\n\tauto=manual\n{body}"
    )
}

fn topo(conf: &str) -> Topo {
    let mut t = Topo::new();
    t.add_ipv6();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    t.start_gateway(&ga, conf);
    t.start_gateway(&gb, conf);
    t
}

/// Ping and a TCP transfer from host A to host B's `dst` pass; the capture on the gateway
/// link holds only `wire` packets (ESP or AH of the outer family), no cleartext marker.
fn passes(t: &Topo, dst: &str, wire: &str) {
    let cap = Capture::start(&t.ga, &t.ga_out, &t.dir.path("link.pcap"));
    let (got, text) = ping_replies(&t.ha, dst, 3, 3);
    assert_eq!(
        got,
        3,
        "ping {dst}:\n{text}\n{}\n{}",
        t.log(&t.ga),
        t.log(&t.gb)
    );
    let marker = b"rswan-ipv6-cleartext-marker";
    let (sent, recv, n) = tcp_transfer(
        &t.ha,
        &t.hb,
        dst.parse::<std::net::IpAddr>().unwrap(),
        5001,
        payload(10 << 20, marker),
    );
    assert_eq!(n, 10 << 20, "TCP transfer cut short");
    assert_eq!(sent, recv, "TCP payload hash");
    let (lines, raw) = cap.stop();
    assert!(
        !contains(&raw, marker),
        "cleartext on the gateway link\n{}\n{}",
        t.log(&t.ga),
        ns_must(&t.ga, &["ip", "-6", "route", "show", "table", "all"])
    );
    let odd: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains(wire) && !l.contains("ICMP6") && !l.contains("ARP"))
        .collect();
    assert!(odd.is_empty(), "not {wire} on the link: {odd:?}");
    assert!(lines.iter().any(|l| l.contains(wire)), "no {wire} seen");
}

#[test]
fn manual_6in6_ping_and_tcp() {
    let t = topo(&conf(
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        KEYS,
    ));
    passes(&t, "2001:db8:2::10", "ESP");
    // Fail closed for IPv6 too: the subnet is routed into ipsec0 in table 115 with a
    // blackhole behind it, and the rule puts that table first for everything but rswan's own.
    let rules = ns_must(&t.ga, &["ip", "-6", "rule"]);
    assert!(
        rules.contains("not from all fwmark 0x115 lookup 115"),
        "{rules}"
    );
    let t115 = ns_must(&t.ga, &["ip", "-6", "route", "show", "table", "115"]);
    assert!(t115.contains("2001:db8:2::/64 dev ipsec0"), "{t115}");
    assert!(t115.contains("blackhole 2001:db8:2::/64"), "{t115}");
    let look = t.ipsec_ok(&t.ga, &["look"]);
    assert!(
        look.contains("2001:db8:1::/64    -> 2001:db8:2::/64    => tun0x200@2001:db8::2"),
        "{look}"
    );
}

#[test]
fn manual_4in6_ping_and_tcp() {
    let t = topo(&conf(
        "2001:db8::1",
        "2001:db8::2",
        "10.0.1.0/24",
        "10.0.2.0/24",
        KEYS,
    ));
    passes(&t, "10.0.2.10", "ESP");
}

#[test]
fn manual_6in4_ping_and_tcp() {
    let t = topo(&conf(
        "192.0.2.1",
        "192.0.2.2",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        KEYS,
    ));
    passes(&t, "2001:db8:2::10", "ESP");
}

#[test]
fn manual_ah_over_ipv6() {
    let t = topo(&conf(
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        "\tah=hmac-sha1-96\n\tahkey=0x0123456789abcdef0123456789abcdef01234567\n",
    ));
    let cap = Capture::start(&t.ga, &t.ga_out, &t.dir.path("ah.pcap"));
    let (got, text) = ping_replies(&t.ha, "2001:db8:2::10", 3, 3);
    assert_eq!(got, 3, "{text}\n{}", t.log(&t.ga));
    let (lines, _) = cap.stop();
    assert!(lines.iter().any(|l| l.contains("AH(spi=")), "{lines:?}");
}

/// `%reject` for an IPv6 destination answers the sender with ICMPv6 destination
/// unreachable, administratively prohibited.
#[test]
fn reject_answers_icmpv6() {
    let t = topo(&conf(
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        KEYS,
    ));
    t.ipsec_ok(
        &t.ga,
        &[
            "eroute",
            "--add",
            "--eraf",
            "inet6",
            "--src",
            "2001:db8:1::/64",
            "--dst",
            "2001:db8:3::/64",
            "--said",
            "%reject",
        ],
    );
    ns_must(
        &t.ga,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:3::/64",
            "dev",
            "ipsec0",
        ],
    );
    let (got, text) = ping_replies(&t.ha, "2001:db8:3::1", 1, 2);
    assert_eq!(got, 0);
    assert!(
        text.contains("Administratively prohibited") || text.contains("Admin prohibited"),
        "{text}\n{}",
        t.log(&t.ga)
    );
}

/// Hosts with a 9000-byte MTU: an oversized IPv6 packet gets Packet Too Big with the
/// tunnel's MTU, and TCP over the tunnel completes (path MTU discovery works through it).
#[test]
fn pmtu_through_the_ipv6_tunnel() {
    let t = topo(&conf(
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        KEYS,
    ));
    let p = &t.p;
    for (ns, dev) in [
        (&t.ha, format!("{p}a0")),
        (&t.ga, format!("{p}a1")),
        (&t.gb, format!("{p}b1")),
        (&t.hb, format!("{p}b0")),
    ] {
        ns_must(ns, &["ip", "link", "set", "dev", &dev, "mtu", "9000"]);
    }
    let o = ns_run(
        &t.ha,
        &[
            "ping",
            "-n",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "3000",
            "2001:db8:2::10",
        ],
    );
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        text.contains("Packet too big") || text.contains("mtu="),
        "no Packet Too Big: {text}"
    );
    let (sent, recv, n) = tcp_transfer(
        &t.ha,
        &t.hb,
        "2001:db8:2::10".parse::<Ipv6Addr>().unwrap(),
        5002,
        payload(2 << 20, b"pmtu"),
    );
    assert_eq!((n, sent), (2 << 20, recv));
}

/// ESP-in-UDP over IPv6 (`forceencaps=yes`): only UDP port 4500 on the link, with the UDP
/// checksum the receiving kernel verifies (a bad one would be dropped before rswan sees it).
#[test]
fn manual_esp_in_udp_over_ipv6() {
    let t = topo(&conf(
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        &format!("{KEYS}\tforceencaps=yes\n"),
    ));
    passes(&t, "2001:db8:2::10", ".4500: ");
}

/// `left=`/`right=` host names with only IPv6 addresses (AAAA, here from the namespaces'
/// `/etc/hosts`, which `ip netns exec` takes from `/etc/netns/NS/hosts`) resolve to them, and
/// the tunnel carries traffic; a conn that says `hostaddrfamily=ipv4` beside an IPv6 address
/// is refused at its line.
#[test]
fn ipv6_only_host_names() {
    let mut t = Topo::new();
    t.add_ipv6();
    let _etc = NetnsEtc::hosts(
        &[&t.ga, &t.gb],
        "2001:db8::1 gw-a6.rswan.test\n2001:db8::2 gw-b6.rswan.test\n",
    );
    let text = conf(
        "gw-a6.rswan.test",
        "gw-b6.rswan.test",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        KEYS,
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    t.start_gateway(&ga, &text);
    t.start_gateway(&gb, &text);
    passes(&t, "2001:db8:2::10", "ESP");
    let look = t.ipsec_ok(&t.ga, &["look"]);
    assert!(look.contains("=> tun0x200@2001:db8::2"), "{look}");

    let bad = "version 2\nconn odd\n\tleft=2001:db8::1\n\tright=2001:db8::2\n\thostaddrfamily=ipv4\n\tauto=ignore\n";
    let path = t.dir.path("odd.conf");
    std::fs::write(&path, bad).unwrap();
    let o = t.ipsec(
        &t.ga,
        &["--config", path.to_str().unwrap(), "auto", "--add", "odd"],
    );
    let err = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3: left=2001:db8::1 is not an IPv4 address (hostaddrfamily=ipv4)",
            path.display()
        )),
        "{err}"
    );
}

/// With ipsec0's MTU raised to the link's (`overridemtu=1500`), full-size TCP segments no
/// longer fit the link once inside ESP over IPv6: the gateway, as the outer packets' source,
/// sends them as IPv6 fragments (no router on the way would), the peer's kernel reassembles
/// them, and the transfer completes with its hash. Without source fragmentation every full
/// segment was dropped as oversize and the transfer stalled.
#[test]
fn outer_ipv6_fragments_carry_full_size_segments() {
    let text = conf(
        "2001:db8::1",
        "2001:db8::2",
        "10.0.1.0/24",
        "10.0.2.0/24",
        KEYS,
    )
    .replace(
        "interfaces=%defaultroute\n",
        "interfaces=%defaultroute\n\toverridemtu=1500\n",
    );
    let t = topo(&text);
    let cap = Capture::start(&t.ga, &t.ga_out, &t.dir.path("link.pcap"));
    let marker = b"rswan-ipv6-fragment-marker";
    let (sent, recv, n) = tcp_transfer(
        &t.ha,
        &t.hb,
        "10.0.2.10".parse::<std::net::IpAddr>().unwrap(),
        5003,
        payload(4 << 20, marker),
    );
    assert_eq!((n, sent), (4 << 20, recv), "{}", t.log(&t.ga));
    let (lines, raw) = cap.stop();
    assert!(!contains(&raw, marker), "cleartext on the gateway link");
    assert!(
        lines.iter().any(|l| l.contains("frag (")),
        "no IPv6 fragments on the link: {:?}",
        &lines[..lines.len().min(5)]
    );
    let odd: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("ESP") && !l.contains("frag (") && !l.contains("ICMP6"))
        .collect();
    assert!(odd.is_empty(), "not ESP on the link: {odd:?}");
}

/// Bad IPv6 input from gateway B's namespace — ESP with an unknown SPI, ESP cut short — is
/// counted under its reason in `ipsec look`, raises RX dropped on ipsec0 by as many, and
/// leaves the daemon and the tunnel working.
#[test]
fn bad_ipv6_input_is_dropped_and_counted() {
    let t = topo(&conf(
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        KEYS,
    ));
    let (got, text) = ping_replies(&t.ha, "2001:db8:2::10", 2, 3);
    assert_eq!(got, 2, "{text}");
    let inject = |pkts: Vec<Vec<u8>>| {
        in_netns(&t.gb, move || {
            use socket2::{Domain, Protocol, SockAddr, Socket, Type};
            let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(50))).unwrap();
            let to = SockAddr::from(std::net::SocketAddrV6::new(
                "2001:db8::1".parse().unwrap(),
                0,
                0,
                0,
            ));
            for p in pkts {
                s.send_to(&p, &to).unwrap();
            }
        })
    };
    for (what, reason, pkts) in [
        (
            "unknown SPI",
            "no SA",
            (0..3)
                .map(|i| {
                    let mut p = vec![0u8; 64];
                    p[..4].copy_from_slice(&0xdead_0000u32.to_be_bytes());
                    p[7] = i + 1;
                    p
                })
                .collect::<Vec<_>>(),
        ),
        ("truncated ESP", "truncated", vec![vec![0, 0, 2, 1]; 2]),
    ] {
        let n = pkts.len() as u64;
        let before = drops(&t, &t.ga);
        let rx0 = rx_dropped(&t.ga, "ipsec0");
        inject(pkts);
        let reached = wait_for(Duration::from_secs(5), || {
            drops(&t, &t.ga).get(reason) >= before.get(reason) + n
                && rx_dropped(&t.ga, "ipsec0") >= rx0 + n
        });
        let after = drops(&t, &t.ga);
        assert!(
            reached,
            "{what}: {before:?} -> {after:?}\n{}",
            t.ipsec_ok(&t.ga, &["look"])
        );
        assert_eq!(after.get(reason) - before.get(reason), n, "{what}");
        assert_eq!(rx_dropped(&t.ga, "ipsec0") - rx0, n, "{what}: RX dropped");
    }
    assert!(daemon_alive(&t, &t.ga));
    let (got, text) = ping_replies(&t.ha, "2001:db8:2::10", 2, 3);
    assert_eq!(got, 2, "tunnel after bad input: {text}");
}

/// IPComp inside ESP over IPv6: compressible traffic passes and the comp SAs are listed.
#[test]
fn manual_ipcomp_over_ipv6() {
    let t = topo(&conf(
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8:1::/64",
        "2001:db8:2::/64",
        &format!("{KEYS}\tcompress=yes\n"),
    ));
    passes(&t, "2001:db8:2::10", "ESP");
    let spi = t.ipsec_ok(&t.ga, &["spi"]);
    assert!(spi.contains("comp0x200@2001:db8::2"), "{spi}");
}
