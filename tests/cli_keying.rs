//! A tunnel keyed entirely with the low-level commands (`ipsec spi`, `ipsec spigrp`,
//! `ipsec eroute`), as FreeS/WAN's `ipsec manual` does under the hood; lifetimes enforced.

mod common;

use common::*;

const K128: &str = "0x00112233445566778899aabbccddeeff";
const K160: &str = "0x0123456789abcdef0123456789abcdef01234567";

const EMPTY_CONF: &str = "version 2\nconfig setup\n\tinterfaces=%defaultroute\n";

/// Keys one direction pair on the gateway in `ns` whose address is `me`, peer `peer`.
#[allow(clippy::too_many_arguments)]
fn key_side(
    t: &Topo,
    ns: &str,
    me: &str,
    peer: &str,
    out_spi: &str,
    in_spi: &str,
    my_net: &str,
    peer_net: &str,
    life: &str,
) {
    let said = |p: &str, spi: &str, dst: &str| format!("{p}{spi}@{dst}");
    let tun_out = said("tun", out_spi, peer);
    let esp_out = said("esp", out_spi, peer);
    let tun_in = said("tun", in_spi, me);
    let esp_in = said("esp", in_spi, me);
    t.ipsec_ok(
        ns,
        &[
            "spi", "--said", &tun_out, "--ip4", "--src", me, "--dst", peer,
        ],
    );
    let mut args = vec![
        "spi",
        "--said",
        &esp_out,
        "--esp",
        "aes128-sha1",
        "--enckey",
        K128,
        "--authkey",
        K160,
        "--src",
        me,
    ];
    if !life.is_empty() {
        args.extend(["--life", life]);
    }
    t.ipsec_ok(ns, &args);
    t.ipsec_ok(ns, &["spigrp", "--said", &tun_out, &esp_out]);
    let policy = format!("{peer_net}->{my_net}");
    t.ipsec_ok(
        ns,
        &[
            "spi", "--said", &tun_in, "--ip4", "--src", peer, "--dst", me, "--policy", &policy,
        ],
    );
    t.ipsec_ok(
        ns,
        &[
            "spi",
            "--said",
            &esp_in,
            "--esp",
            "aes128-sha1",
            "--enckey",
            K128,
            "--authkey",
            K160,
            "--src",
            peer,
        ],
    );
    // The other grouping syntax: AF DST SPI PROTO …
    t.ipsec_ok(
        ns,
        &[
            "spigrp", "inet", me, in_spi, "tun", "inet", me, in_spi, "esp",
        ],
    );
    t.ipsec_ok(
        ns,
        &[
            "eroute", "--add", "--eraf", "inet", "--src", my_net, "--dst", peer_net, "--said",
            &tun_out,
        ],
    );
    ns_must(
        ns,
        &[
            "ip", "route", "replace", peer_net, "via", peer, "dev", "ipsec0", "onlink",
        ],
    );
}

#[test]
fn tunnel_from_spi_spigrp_eroute_with_packet_lifetime() {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    t.start_gateway(&ga, EMPTY_CONF);
    t.start_gateway(&gb, EMPTY_CONF);
    key_side(
        &t,
        &ga,
        "192.0.2.1",
        "192.0.2.2",
        "0x500",
        "0x501",
        "10.0.1.0/24",
        "10.0.2.0/24",
        "soft-packets=4,hard-packets=10",
    );
    key_side(
        &t,
        &gb,
        "192.0.2.2",
        "192.0.2.1",
        "0x501",
        "0x500",
        "10.0.2.0/24",
        "10.0.1.0/24",
        "",
    );

    let grp = t.ipsec_ok(&ga, &["spigrp"]);
    assert!(
        grp.contains("tun0x500@192.0.2.2 esp0x500@192.0.2.2 "),
        "{grp}"
    );
    assert!(
        grp.contains("tun0x501@192.0.2.1 esp0x501@192.0.2.1 "),
        "{grp}"
    );

    assert!(
        ping(&t.ha, "10.0.2.10", 3, 3),
        "ping failed\n{}",
        t.log(&ga)
    );
    let spi = t.ipsec_ok(&ga, &["spi"]);
    let esp_out = spi
        .lines()
        .find(|l| l.starts_with("esp0x500@192.0.2.2"))
        .unwrap();
    assert!(esp_out.contains("packets(3,4,10)"), "{esp_out}");
    let eroute = t.ipsec_ok(&ga, &["eroute"]);
    assert!(
        eroute.starts_with(
            "3          10.0.1.0/24        -> 10.0.2.0/24        => tun0x500@192.0.2.2"
        ),
        "{eroute}"
    );

    // Ten packets is the hard limit: of the next ten pings at most seven get through.
    assert!(!ping(&t.ha, "10.0.2.10", 10, 8));
    let look = t.ipsec_ok(&ga, &["look"]);
    assert!(look.contains("SA expired"), "{look}");
    assert!(
        t.log(&ga).contains("soft lifetime reached"),
        "{}",
        t.log(&ga)
    );
    // The expired SA is removed by the daemon's expiry timer.
    let mut gone = false;
    for _ in 0..30 {
        if !t.ipsec_ok(&ga, &["spi"]).contains("esp0x500@192.0.2.2") {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "expired SA still listed");
    // Traffic now hits an eroute whose SA is gone: dropped, never sent in clear.
    assert!(!ping(&t.ha, "10.0.2.10", 2, 1));
    let look = t.ipsec_ok(&ga, &["look"]);
    assert!(look.contains("eroute without SA"), "{look}");

    // Deleting a group member deletes the whole group; --clear empties the tables.
    t.ipsec_ok(&ga, &["spi", "--said", "esp0x501@192.0.2.1", "--del"]);
    let spi = t.ipsec_ok(&ga, &["spi"]);
    assert!(!spi.contains("tun0x501@192.0.2.1"), "{spi}");
    t.ipsec_ok(&ga, &["eroute", "--clear"]);
    t.ipsec_ok(&ga, &["spi", "--clear"]);
    assert_eq!(t.ipsec_ok(&ga, &["eroute"]), "");
    assert_eq!(t.ipsec_ok(&ga, &["spi"]), "");
}
