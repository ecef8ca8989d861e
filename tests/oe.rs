//! Opportunistic encryption with keys from a real DNS server (spec 7, RFC 4322): dnsmasq,
//! started by the test on the router between two rswan gateways, serves the reverse-map
//! records: the road warrior's key as FreeS/WAN's TXT `X-IPsec-Server(10)=GW KEY`, gateway B's
//! as an RFC 4025 IPSECKEY record. Both gateways have nothing but `private-or-clear
//! 0.0.0.0/0` (and, on the road warrior, one `private` host): their traffic to each other is
//! encrypted on demand (ping, a ≥10 MB TCP transfer, only ESP and IKE between them on the
//! wire); a destination without records goes out in clear under private-or-clear and is
//! dropped under private; `--rereadgroups` after adding a `block` entry rejects it without
//! touching the OE tunnel; with the DNS server stopped, a new destination gets the failure
//! shunt once the lookup times out (no hang); a wrong published key fails authentication at
//! once and ends in the failure shunt. `ipsec verify` asks the same DNS server for a
//! gateway's own key: [OK] when published, [FAILED] with another key or none. Host B behind
//! gateway B, delegated to it by its reverse TXT record, reaches the road warrior by OE.
//!
//! road warrior 198.51.100.7 —(198.51.100.1)— router (dnsmasq; 192.0.2.1) — gateway B 192.0.2.2

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const MARKER: &[u8] = b"RSWAN-OE-CLEARTEXT-MARKER-5b1e";
const SIZE: usize = 10 * 1024 * 1024 + 13;

/// A fresh RSA key in `file` (as `ipsec newhostkey` writes it); returns its base64 public key.
fn newkey(file: &Path) -> String {
    must(
        ipsec_bin(),
        &[
            "newhostkey",
            "--output",
            file.to_str().unwrap(),
            "--bits",
            "2048",
        ],
    );
    let out = must(
        ipsec_bin(),
        &["showhostkey", "--left", "--file", file.to_str().unwrap()],
    );
    out.lines()
        .find_map(|l| l.trim().strip_prefix("leftrsasigkey=0s"))
        .expect("showhostkey --left")
        .to_string()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64decode(s: &str) -> Vec<u8> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|x| *x == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn conf(policies: &str, dns: &str) -> String {
    format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\tpolicygroupsdir={policies}\n\tdnsserver={dns}\n"
    )
}

fn policies(t: &Topo, dir: &str, files: &[(&str, &str)]) {
    let d = t.dir.path(dir);
    fs::create_dir_all(&d).unwrap();
    for (n, text) in files {
        fs::write(d.join(n), text).unwrap();
    }
}

/// dnsmasq, killed when dropped (the test stops it mid-run).
struct Dnsmasq(std::process::Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The character-strings of the TXT record `ipsec showhostkey --txt ADDR` prints for the
/// key in `file` (split at the key, as it prints them).
fn txt_strings(file: &Path, addr: &str) -> Vec<String> {
    let txt = must(
        ipsec_bin(),
        &[
            "showhostkey",
            "--txt",
            addr,
            "--file",
            file.to_str().unwrap(),
        ],
    );
    let rr = txt
        .lines()
        .find(|l| l.contains("IN\tTXT"))
        .expect("TXT line");
    rr.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// dnsmasq in `ns`, listening on `listen`, serving `records` (its `--txt-record=`/`--dns-rr=`
/// options) and NXDOMAIN for the rest of the reverse map; queries logged to `log`.
fn start_dnsmasq(ns: &str, listen: &[&str], records: &[String], log: &Path) -> Dnsmasq {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "dnsmasq",
            "-k",
            "--conf-file=/dev/null",
        ])
        .args([
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--user=root",
        ])
        .args(listen.iter().map(|a| format!("--listen-address={a}")))
        .arg("--local=/in-addr.arpa/")
        .arg("--pid-file=")
        .arg("--log-queries")
        .arg(format!("--log-facility={}", log.display()))
        // dnsmasq takes a TXT record's strings comma-separated, unquoted on its command line.
        .args(records)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (scripts/install-deps installs dnsmasq-base)");
    let dns = Dnsmasq(child);
    let want = format!("{}:53", listen[0]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            String::from_utf8_lossy(&ns_run(ns, &["ss", "-uln"]).stdout).contains(&want)
        }),
        "dnsmasq did not start"
    );
    dns
}

/// The scene of the OE tests: the road warrior and gateway B, each with a fresh RSA key in its
/// ipsec.secrets; [`Scene::start`] starts dnsmasq on the router (B's IPSECKEY record plus the
/// test's own records) and both gateways.
struct Scene {
    /// dnsmasq, stopped before the namespaces go (and by [`Scene::stop_dns`]).
    dns: std::sync::Mutex<Option<Dnsmasq>>,
    t: Topo,
    rw: String,
    router: String,
    gb: String,
    /// The road warrior's and B's key files, and the road warrior's and B's public keys.
    krw: PathBuf,
    kb: PathBuf,
    pub_rw: String,
    pub_b: String,
    /// dnsmasq's query log.
    log: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let mut t = Topo::new();
        let rw = t.add_road_warrior();
        let (router, gb) = (t.ga.clone(), t.gb.clone());
        let (krw, kb) = (t.dir.path("rw.key"), t.dir.path("b.key"));
        let (pub_rw, pub_b) = (newkey(&krw), newkey(&kb));
        write_secrets(&t, &rw, &fs::read_to_string(&krw).unwrap());
        write_secrets(&t, &gb, &fs::read_to_string(&kb).unwrap());
        let log = t.dir.path("dnsmasq.log");
        Scene {
            dns: std::sync::Mutex::new(None),
            t,
            rw,
            router,
            gb,
            krw,
            kb,
            pub_rw,
            pub_b,
            log,
        }
    }

    /// dnsmasq on the router serving `records` and B's IPSECKEY record (gateway 192.0.2.2, RSA
    /// key); policy files `rw_groups` for the road warrior and `private-or-clear 0.0.0.0/0`
    /// for B; both gateways with the router as their name server.
    fn start(&mut self, mut records: Vec<String>, rw_groups: &[(&str, &str)]) {
        let mut ipseckey = vec![10u8, 1, 2, 192, 0, 2, 2];
        ipseckey.extend_from_slice(&b64decode(&self.pub_b));
        records.push(format!(
            "--dns-rr=2.2.0.192.in-addr.arpa,45,{}",
            hex(&ipseckey)
        ));
        let dns = start_dnsmasq(
            &self.router,
            &["192.0.2.1", "198.51.100.1"],
            &records,
            &self.log,
        );
        *self.dns.lock().unwrap() = Some(dns);
        policies(&self.t, "rw.policies", rw_groups);
        policies(
            &self.t,
            "gB.policies",
            &[("private-or-clear", "0.0.0.0/0\n")],
        );
        let (gb, rw) = (self.gb.clone(), self.rw.clone());
        self.t.start_gateway(&gb, &conf("gB.policies", "192.0.2.1"));
        self.t
            .start_gateway(&rw, &conf("rw.policies", "198.51.100.1"));
    }

    /// The road warrior's reverse-map TXT record with the key in `key` (its own, or another).
    fn rw_txt(&self, key: &Path) -> String {
        format!(
            "--txt-record=7.100.51.198.in-addr.arpa,{}",
            txt_strings(key, "198.51.100.7").join(",")
        )
    }

    fn stop_dns(&self) {
        self.dns.lock().unwrap().take();
    }

    /// Both gateways' logs and status and dnsmasq's log, for failure messages.
    fn diag(&self) -> String {
        let t = &self.t;
        format!(
            "===== road warrior:\n{}\n{}\n===== B:\n{}\n{}\n===== dnsmasq:\n{}",
            t.log(&self.rw),
            t.ipsec_ok(&self.rw, &["auto", "--status"]),
            t.log(&self.gb),
            t.ipsec_ok(&self.gb, &["auto", "--status"]),
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

fn eroute_said(t: &Topo, ns: &str, src: &str, dst: &str) -> Option<String> {
    let out = t.ipsec_ok(ns, &["eroute"]);
    out.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.len() == 6 && w[1] == src && w[3] == dst).then(|| w[5].to_string())
    })
}

#[test]
fn private_or_clear_encrypts_on_demand_with_keys_from_dns() {
    let mut sc = Scene::new();
    // The DNS server on the router: the road warrior's TXT record (split at the key as
    // showhostkey --txt prints it), gateway B's IPSECKEY record, and NXDOMAIN for the rest of
    // the reverse map.
    let strings = txt_strings(&sc.krw, "198.51.100.7");
    assert!(strings[1..].concat().contains(&sc.pub_rw));
    sc.start(
        vec![sc.rw_txt(&sc.krw)],
        &[
            ("private-or-clear", "0.0.0.0/0\n"),
            ("private", "10.0.2.10/32\n"),
        ],
    );
    let (t, rw, router, gb) = (&sc.t, sc.rw.clone(), sc.router.clone(), sc.gb.clone());
    // Each checked at start that DNS publishes its own key (B's only as IPSECKEY).
    assert!(
        wait_until(Duration::from_secs(5), || t.log(&rw).contains(
            "our key for 198.51.100.7 is published in DNS (7.100.51.198.in-addr.arpa)"
        ) && t.log(&gb).contains(
            "our key for 192.0.2.2 is published in DNS (2.2.0.192.in-addr.arpa)"
        )),
        "{}",
        sc.diag()
    );
    assert!(
        !t.log(&rw).contains("opportunistic encryption cannot work"),
        "{}",
        sc.diag()
    );

    // The first packet is trapped; OE finds B's gateway and key and negotiates.
    assert!(
        wait_until(Duration::from_secs(30), || ping(&rw, "192.0.2.2", 1, 1)),
        "no ping to B\n{}",
        sc.diag()
    );
    assert!(
        wait_until(Duration::from_secs(10), || eroute_said(
            t,
            &rw,
            "198.51.100.7/32",
            "192.0.2.2/32"
        )
        .is_some_and(|s| s.starts_with("tun0x"))
            && eroute_said(t, &gb, "192.0.2.2/32", "198.51.100.7/32")
                .is_some_and(|s| s.starts_with("tun0x"))),
        "no OE tunnel eroutes\n{}",
        sc.diag()
    );
    let st = t.ipsec_ok(&rw, &["auto", "--status"]);
    assert!(
        st.contains("\"private-or-clear#0.0.0.0/0\"[1] 192.0.2.2 STATE_QUICK_I2"),
        "{st}\n{}",
        sc.diag()
    );
    assert!(
        t.log(&gb).contains("key *")
            && t.log(&gb)
                .contains("found in DNS (7.100.51.198.in-addr.arpa)"),
        "responder did not take the initiator's key from DNS\n{}",
        sc.diag()
    );

    // Ping and a TCP transfer, with only IKE and ESP between the two on the wire.
    let (got, out) = ping_replies(&rw, "192.0.2.2", 3, 2);
    assert_eq!(got, 3, "{out}");
    let cap = Capture::start(&router, &format!("{}r1", t.p), &t.dir.path("oe.pcap"));
    let port = 5300 + (std::process::id() % 500) as u16;
    let (sent, recv, n) = tcp_transfer(
        &rw,
        &gb,
        std::net::Ipv4Addr::new(192, 0, 2, 2),
        port,
        payload(SIZE, MARKER),
    );
    let (lines, raw) = cap.stop();
    assert_eq!((n, sent), (SIZE, recv), "transfer through the OE tunnel");
    let between: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("198.51.100.7") && l.contains("192.0.2.2"))
        .collect();
    let esp = between.iter().filter(|l| l.contains("ESP(")).count();
    let clear: Vec<&&String> = between
        .iter()
        .filter(|l| !(l.contains("ESP(") || l.contains(".500 > ") || l.contains(".4500 > ")))
        .collect();
    assert!(
        clear.is_empty() && esp > 200,
        "cleartext or too little ESP: {clear:?} ({esp} ESP)"
    );
    assert!(!contains(&raw, MARKER), "cleartext marker on the wire");

    // No records for gateway B's inner address: private-or-clear lets it out in clear.
    assert!(
        wait_until(Duration::from_secs(15), || ping(&rw, "10.0.2.1", 1, 1)),
        "private-or-clear without a record did not pass in clear\n{}",
        sc.diag()
    );
    assert_eq!(
        eroute_said(t, &rw, "198.51.100.7/32", "10.0.2.1/32").as_deref(),
        Some("%pass")
    );
    assert!(
        t.log(&rw)
            .contains("no TXT X-IPsec-Server or IPSECKEY record for 1.2.0.10.in-addr.arpa"),
        "{}",
        sc.diag()
    );
    // ... and `private` drops it.
    let (got, out) = ping_replies(&rw, "10.0.2.10", 3, 1);
    assert_eq!(
        got, 0,
        "private let a destination without records out in clear: {out}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || eroute_said(
            t,
            &rw,
            "198.51.100.7/32",
            "10.0.2.10/32"
        )
        .as_deref()
            == Some("%drop")),
        "{}",
        sc.diag()
    );

    // Edit the road warrior's groups: block 10.0.2.97. --rereadgroups rejects it; the OE
    // tunnel (same IPsec SA) carries on.
    ns_must(&gb, &["ip", "addr", "add", "10.0.2.97/32", "dev", "lo"]);
    ns_must(&gb, &["ip", "addr", "add", "10.0.2.96/32", "dev", "lo"]);
    let sa_line = |t: &Topo| {
        t.ipsec_ok(&rw, &["auto", "--status"])
            .lines()
            .find(|l| l.contains("STATE_QUICK_I2"))
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
    };
    let before = sa_line(t);
    assert!(before.is_some());
    policies(t, "rw.policies", &[("block", "10.0.2.97/32\n")]);
    t.ipsec_ok(&rw, &["auto", "--rereadgroups"]);
    let (got, out) = ping_replies(&rw, "10.0.2.97", 2, 1);
    assert!(got == 0 && out.contains("Packet filtered"), "{out}");
    assert_eq!(sa_line(t), before, "--rereadgroups disturbed the OE tunnel");
    let (got, out) = ping_replies(&rw, "192.0.2.2", 2, 2);
    assert_eq!(got, 2, "{out}");

    // The DNS server goes away: a new destination's lookup times out into the failure shunt
    // (%pass under private-or-clear), no hang.
    sc.stop_dns();
    assert!(
        wait_until(Duration::from_secs(30), || ping(&rw, "10.0.2.96", 1, 1)),
        "no fallback after the DNS server stopped\n{}",
        sc.diag()
    );
    assert!(
        t.log(&rw)
            .contains("DNS TXT 96.2.0.10.in-addr.arpa: timeout"),
        "{}",
        sc.diag()
    );
    assert_eq!(
        eroute_said(t, &rw, "198.51.100.7/32", "10.0.2.96/32").as_deref(),
        Some("%pass")
    );
}

/// A peer whose published key is wrong: the road warrior's TXT record carries another key
/// than the one in its ipsec.secrets. Its OE negotiation with B fails authentication — B
/// cannot check the road warrior's signature and says so (INVALID_SIGNATURE), and the road
/// warrior gives up at once instead of retransmitting for minutes — and falls back to the
/// failure shunt: `%pass` in `ipsec eroute`, the ping answered, in clear on the wire. (B's
/// own OE attempt for the reply fails the same way at MR3 and passes in clear too.)
#[test]
fn wrong_published_key_falls_back_to_the_failure_shunt() {
    let mut sc = Scene::new();
    // The road warrior's reverse map publishes another key; B's IPSECKEY is right.
    let kother = sc.t.dir.path("other.key");
    newkey(&kother);
    sc.start(
        vec![sc.rw_txt(&kother)],
        &[("private-or-clear", "0.0.0.0/0\n")],
    );
    let (t, rw, router, gb) = (&sc.t, sc.rw.clone(), sc.router.clone(), sc.gb.clone());
    let cap = Capture::start(&router, &format!("{}r1", t.p), &t.dir.path("wrongkey.pcap"));
    // Within seconds, not the minutes retransmissions would take.
    assert!(
        wait_until(Duration::from_secs(20), || ping(&rw, "192.0.2.2", 1, 1)),
        "no ping to B through the failure shunt\n{}",
        sc.diag()
    );
    let log_rw = t.log(&rw);
    let log_b = t.log(&gb);
    assert!(
        log_b.contains("Signature check (on 198.51.100.7) failed (wrong key?)")
            && log_b.contains("sending notification INVALID_SIGNATURE"),
        "{}",
        sc.diag()
    );
    assert!(
        log_rw.contains("received notification INVALID_SIGNATURE: the peer cannot authenticate us"),
        "{}",
        sc.diag()
    );
    assert!(
        log_rw.contains(
            "cannot encrypt 198.51.100.7 -> 192.0.2.2 opportunistically (negotiation failed); failure shunt %pass"
        ),
        "{}",
        sc.diag()
    );
    assert_eq!(
        eroute_said(t, &rw, "198.51.100.7/32", "192.0.2.2/32").as_deref(),
        Some("%pass"),
        "{}",
        sc.diag()
    );
    // Traffic follows the failure shunt: answered, in clear, no ESP.
    let (got, out) = ping_replies(&rw, "192.0.2.2", 3, 2);
    assert_eq!(got, 3, "{out}");
    let (lines, _) = cap.stop();
    let between: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("198.51.100.7") && l.contains("192.0.2.2"))
        .collect();
    assert!(
        between
            .iter()
            .any(|l| l.contains("198.51.100.7 > 192.0.2.2: ICMP echo request")),
        "{between:#?}"
    );
    assert!(!between.iter().any(|l| l.contains("ESP(")), "{between:#?}");
    assert!(
        t.ipsec_ok(&rw, &["auto", "--status"])
            .contains("198.51.100.7/32:0 -0-> 192.0.2.2/32:0 => %pass"),
        "{}",
        sc.diag()
    );
}

/// `ipsec verify` checks the OE DNS records of a gateway whose `private-or-clear` group has
/// an entry: it asks the name server of `dnsserver=` for the reverse map of the gateway's
/// address (as an OE peer would) and compares the key with the one in ipsec.secrets — [OK]
/// with it published, [FAILED] with another key or no record.
#[test]
fn verify_checks_our_key_in_dns() {
    let mut t = Topo::new();
    let (router, gb) = (t.ga.clone(), t.gb.clone());
    let (kb, kother) = (t.dir.path("b.key"), t.dir.path("other.key"));
    newkey(&kb);
    newkey(&kother);
    write_secrets(&t, &gb, &fs::read_to_string(&kb).unwrap());
    policies(
        &t,
        "gB.policies",
        &[("private-or-clear", "203.0.113.0/24\n")],
    );
    t.start_gateway(&gb, &conf("gB.policies", "192.0.2.1"));
    let log = t.dir.path("dnsmasq.log");
    let oe_line = |t: &Topo| {
        let out = String::from_utf8_lossy(&t.ipsec(&gb, &["verify"]).stdout).into_owned();
        let line = out
            .lines()
            .find(|l| l.starts_with("Opportunistic Encryption DNS checks"))
            .unwrap_or_else(|| panic!("no OE line:\n{out}"))
            .to_string();
        (line, out)
    };
    let record = |key: &Path| {
        vec![format!(
            "--txt-record=2.2.0.192.in-addr.arpa,{}",
            txt_strings(key, "192.0.2.2").join(",")
        )]
    };

    // Our key published in the reverse map.
    let dns = start_dnsmasq(&router, &["192.0.2.1"], &record(&kb), &log);
    let (line, out) = oe_line(&t);
    assert!(line.ends_with("[OK]"), "{out}");
    assert!(
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("query[TXT] 2.2.0.192.in-addr.arpa from 192.0.2.2"),
        "verify did not ask the configured name server"
    );
    drop(dns);

    // Another key published.
    let dns = start_dnsmasq(&router, &["192.0.2.1"], &record(&kother), &log);
    let (line, out) = oe_line(&t);
    assert!(line.ends_with("[FAILED]"), "{out}");
    assert!(
        out.contains("2.2.0.192.in-addr.arpa: published key does not match ours"),
        "{out}"
    );
    drop(dns);

    // No record.
    let _dns = start_dnsmasq(&router, &["192.0.2.1"], &[], &log);
    let (line, out) = oe_line(&t);
    assert!(line.ends_with("[FAILED]"), "{out}");
    assert!(
        out.contains(
            "no X-IPsec-Server record for 2.2.0.192.in-addr.arpa: publish `ipsec showhostkey --txt 192.0.2.2`"
        ),
        "{out}"
    );
}

/// FreeS/WAN's "Gateway for visible clients": host B (10.0.2.10) behind gateway B reaches the
/// road warrior by opportunistic encryption. Host B's reverse-map TXT record names gateway B
/// (`ipsec showhostkey --txt 192.0.2.2` of B's key); gateway B, whose only policy is
/// `private-or-clear 0.0.0.0/0`, traps host B's packet through `packetdefault`, finds the
/// delegation in DNS and negotiates as itself with host B/32 as its Quick Mode client; the
/// road warrior accepts that client because the same record names B with the key that
/// authenticated it. Ping and a ≥10 MB TCP hash; only IKE and ESP between the gateways on the
/// wire, host B's address never in clear.
#[test]
fn host_behind_gateway_encrypts_when_dns_delegates_it() {
    let mut sc = Scene::new();
    sc.start(
        vec![
            sc.rw_txt(&sc.krw),
            // Host B delegated to gateway B.
            format!(
                "--txt-record=10.2.0.10.in-addr.arpa,{}",
                txt_strings(&sc.kb, "192.0.2.2").join(",")
            ),
        ],
        &[("private-or-clear", "0.0.0.0/0\n")],
    );
    let (t, rw, router, gb) = (&sc.t, sc.rw.clone(), sc.router.clone(), sc.gb.clone());
    let hb = t.hb.clone();
    let cap = Capture::start(&router, &format!("{}r1", t.p), &t.dir.path("client.pcap"));
    assert!(
        wait_until(Duration::from_secs(30), || ping(&hb, "198.51.100.7", 1, 1)),
        "no ping from host B\n{}",
        sc.diag()
    );
    assert!(
        wait_until(Duration::from_secs(10), || eroute_said(
            t,
            &gb,
            "10.0.2.10/32",
            "198.51.100.7/32"
        )
        .is_some_and(|s| s.starts_with("tun0x"))
            && eroute_said(t, &rw, "198.51.100.7/32", "10.0.2.10/32")
                .is_some_and(|s| s.starts_with("tun0x"))),
        "no OE tunnel eroutes for host B\n{}",
        sc.diag()
    );
    let (log_b, log_rw) = (t.log(&gb), t.log(&rw));
    assert!(
        log_b.contains(
            "10.0.2.10 is not our address: asking DNS whether it delegates to 192.0.2.2 (TXT 10.2.0.10.in-addr.arpa)"
        ) && log_b.contains(
            "10.2.0.10.in-addr.arpa delegates 10.0.2.10 to 192.0.2.2: negotiating on its behalf"
        ),
        "{}",
        sc.diag()
    );
    assert!(
        log_rw.contains(
            "10.2.0.10.in-addr.arpa delegates 10.0.2.10/32 to 192.0.2.2 with the key that authenticated it"
        ),
        "{}",
        sc.diag()
    );
    let (got, out) = ping_replies(&hb, "198.51.100.7", 3, 2);
    assert_eq!(got, 3, "{out}");
    let port = 5300 + (std::process::id() % 500) as u16 + 1;
    let (sent, recv, n) = tcp_transfer(
        &hb,
        &rw,
        std::net::Ipv4Addr::new(198, 51, 100, 7),
        port,
        payload(SIZE, MARKER),
    );
    let (lines, raw) = cap.stop();
    assert_eq!((n, sent), (SIZE, recv), "transfer through the OE tunnel");
    let esp = lines
        .iter()
        .filter(|l| l.contains("192.0.2.2") && l.contains("198.51.100.7") && l.contains("ESP("))
        .count();
    let clear: Vec<&String> = lines.iter().filter(|l| l.contains("10.0.2.10")).collect();
    assert!(
        clear.is_empty() && esp > 200,
        "cleartext or too little ESP: {clear:?} ({esp} ESP)"
    );
    assert!(!contains(&raw, MARKER), "cleartext marker on the wire");
}
