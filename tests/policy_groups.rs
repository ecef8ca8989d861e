//! Policy groups on a live gateway (spec 4): group files in the gateway's policies directory
//! become instances with their shunt or `%trap`; `block` drops with an ICMP packet-filtered
//! answer, `clear` passes, `private` drops what it cannot encrypt (no key record: this
//! gateway's name server does not answer: the lookup times out, not a hang),
//! `private-or-clear` lets it out in clear; `ipsec auto --rereadgroups`
//! after editing a group file changes behaviour without disturbing an established tunnel.

mod common;
mod support;

use std::fs;

use common::*;
use support::*;

const PSK: &str = "policy groups shared secret";

/// Gateway A's configuration: its own policies directory, a name server that never answers
/// (the discard port on loopback), a PSK net-to-net conn to gateway B.
fn conf_a() -> String {
    "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\tpolicygroupsdir=gA.policies\n\tdnsserver=127.0.0.1:9\n\n\
     conn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=start\n"
        .to_string()
}

fn conf_b() -> String {
    "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\n\
     conn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto=add\n"
        .to_string()
}

fn write_group(t: &Topo, name: &str, text: &str) {
    let d = t.dir.path("gA.policies");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name), text).unwrap();
}

fn eroute_to(t: &Topo, dst: &str) -> Option<String> {
    let out = t.ipsec_ok(&t.ga, &["eroute"]);
    out.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.len() == 6 && w[1] == "192.0.2.1/32" && w[3] == dst).then(|| w[5].to_string())
    })
}

#[test]
fn groups_block_clear_private_and_rereadgroups() {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    // Destinations on gateway B, all reached from gateway A itself (policy groups cover the
    // gateway's own traffic).
    ns_must(&gb, &["ip", "addr", "add", "10.0.2.99/32", "dev", "lo"]);
    ns_must(&gb, &["ip", "addr", "add", "10.0.2.98/32", "dev", "lo"]);
    write_group(&t, "clear", "# hosts we talk to in clear\n10.0.2.1\n");
    // A host name the namespace's /etc/hosts knows is taken from it (no DNS needed).
    let _etc = NetnsEtc::hosts(&[&ga], "10.0.2.97 blocked.rswan.test\n");
    write_group(&t, "block", "10.0.2.10/32\nblocked.rswan.test\n");
    write_group(&t, "private", "10.0.2.98/32\n");
    write_group(&t, "private-or-clear", "0.0.0.0/0\n");
    let secrets = format!("192.0.2.1 192.0.2.2 : PSK \"{PSK}\"\n");
    write_secrets(&t, &ga, &secrets);
    write_secrets(&t, &gb, &secrets);
    t.start_gateway(&gb, &conf_b());
    t.start_gateway(&ga, &conf_a());

    // OE is asked for but cannot work: said at start.
    assert!(
        wait_for(std::time::Duration::from_secs(5), || t
            .log(&ga)
            .contains("WARNING: opportunistic encryption cannot work")),
        "{}",
        t.log(&ga)
    );
    let st = t.ipsec_ok(&ga, &["auto", "--status"]);
    for l in [
        "\"block#10.0.2.10/32\": 192.0.2.1---192.0.2.2...%group===10.0.2.10/32; prospective erouted",
        "\"block#10.0.2.97/32\": 192.0.2.1---192.0.2.2...%group===10.0.2.97/32; prospective erouted",
        "\"clear#10.0.2.1/32\": 192.0.2.1---192.0.2.2...%group===10.0.2.1/32; prospective erouted",
        "\"private#10.0.2.98/32\": 192.0.2.1---192.0.2.2...%opportunistic===10.0.2.98/32; prospective erouted",
        "\"private-or-clear#0.0.0.0/0\": 192.0.2.1---192.0.2.2...%opportunistic===0.0.0.0/0; prospective erouted",
        "\"clear-or-private\": 192.0.2.1---192.0.2.2...%opportunisticgroup; unrouted",
    ] {
        assert!(st.contains(l), "missing {l}:\n{st}");
    }
    assert_eq!(eroute_to(&t, "10.0.2.10/32").as_deref(), Some("%reject"));
    assert_eq!(eroute_to(&t, "10.0.2.97/32").as_deref(), Some("%reject"));
    assert_eq!(eroute_to(&t, "10.0.2.1/32").as_deref(), Some("%pass"));
    assert_eq!(eroute_to(&t, "10.0.2.98/32").as_deref(), Some("%trap"));
    assert_eq!(eroute_to(&t, "0.0.0.0/0").as_deref(), Some("%trap"));

    // The net-to-net tunnel (auto=start) is up and carries host traffic.
    assert!(
        wait_for(std::time::Duration::from_secs(20), || ping(
            &t.ha,
            "10.0.2.10",
            1,
            1
        )),
        "tunnel never carried traffic:\n{}",
        t.log(&ga)
    );
    let owner = |t: &Topo| {
        t.ipsec_ok(&ga, &["auto", "--status"])
            .lines()
            .find(|l| l.starts_with("000 \"net\": "))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let net_before = owner(&t);
    assert!(
        net_before.contains("; erouted; eroute owner: #"),
        "{net_before}"
    );

    // block: no reply, an ICMP packet-filtered answer.
    let (got, out) = ping_out(&ga, "10.0.2.10", 2);
    assert_eq!(got, 0, "{out}");
    assert!(
        out.contains("Packet filtered"),
        "block gave no ICMP answer:\n{out}"
    );
    // clear: passes.
    let (got, out) = ping_out(&ga, "10.0.2.1", 3);
    assert!(got >= 2, "clear did not pass:\n{out}");
    // private without a key record (the lookup times out): dropped, and once DNS has given
    // up the failure shunt is a %drop eroute.
    let (got, out) = ping_out(&ga, "10.0.2.98", 3);
    assert_eq!(got, 0, "private let traffic out in clear:\n{out}");
    assert!(
        wait_until(std::time::Duration::from_secs(20), || eroute_to(
            &t,
            "10.0.2.98/32"
        )
        .as_deref()
            == Some("%drop")),
        "{}",
        t.log(&ga)
    );
    let (got, out) = ping_out(&ga, "10.0.2.98", 2);
    assert_eq!(got, 0, "private let traffic out in clear:\n{out}");
    // private-or-clear without a key record: out in clear (a %pass failure shunt).
    assert!(
        wait_until(std::time::Duration::from_secs(20), || ping(
            &ga,
            "10.0.2.99",
            1,
            1
        )),
        "private-or-clear did not fall back to clear:\n{}",
        t.log(&ga)
    );
    assert_eq!(eroute_to(&t, "10.0.2.99/32").as_deref(), Some("%pass"));
    assert!(
        t.log(&ga)
            .contains("DNS TXT 99.2.0.10.in-addr.arpa: timeout"),
        "{}",
        t.log(&ga)
    );
    let st = t.ipsec_ok(&ga, &["auto", "--status"]);
    assert!(
        st.contains("192.0.2.1/32:0 -0-> 10.0.2.99/32:0 => %pass"),
        "bare shunt missing:\n{st}"
    );
    assert!(
        t.log(&ga)
            .contains("\"private#10.0.2.98/32\": cannot encrypt 192.0.2.1 -> 10.0.2.98"),
        "{}",
        t.log(&ga)
    );

    // Edit: 10.0.2.1 moves from clear to block. --rereadgroups applies it; the tunnel stays.
    write_group(&t, "clear", "");
    write_group(&t, "block", "10.0.2.10/32\n10.0.2.1/32\n");
    t.ipsec_ok(&ga, &["auto", "--rereadgroups"]);
    assert_eq!(eroute_to(&t, "10.0.2.1/32").as_deref(), Some("%reject"));
    let (got, out) = ping_out(&ga, "10.0.2.1", 2);
    assert_eq!(got, 0, "{out}");
    assert!(out.contains("Packet filtered"), "{out}");
    assert_eq!(owner(&t), net_before, "--rereadgroups disturbed the tunnel");
    assert!(
        ping(&t.ha, "10.0.2.10", 2, 2),
        "tunnel traffic after --rereadgroups"
    );
}
