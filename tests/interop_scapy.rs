//! Wire-format interop with an independent ESP implementation, scapy's
//! `SecurityAssociation` (Debian's python3-scapy): (a) scapy decrypts the ESP rswan puts on the
//! wire, (b) rswan accepts ESP that scapy builds, (c) the same for ESP-in-UDP (RFC 3948) and
//! transport mode.

mod common;
mod support;

use std::path::Path;
use std::time::Duration;

use common::*;
use support::*;

const K128: &str = "0x00112233445566778899aabbccddeeff";
const K160: &str = "0x0123456789abcdef0123456789abcdef01234567";
const SALT: &str = "01020304";
const PYTHON: &str = "/usr/bin/python3";
/// Fill pattern for ping's payload ("rswa"), looked for inside the decrypted packets.
const PATTERN: &str = "72737761";

const SCRIPT: &str = r#"
import sys, binascii, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, UDP, ICMP, ESP, Raw, rdpcap, send, conf
from scapy.layers.ipsec import SecurityAssociation

conf.verb = 0

def sa(spi, alg, enckey, authkey, tunnel, src, dst, natt):
    kw = {}
    if alg == "cbc":
        kw = dict(crypt_algo="AES-CBC", crypt_key=binascii.unhexlify(enckey),
                  auth_algo="HMAC-SHA1-96", auth_key=binascii.unhexlify(authkey))
    else:
        kw = dict(crypt_algo="AES-GCM", crypt_key=binascii.unhexlify(enckey),
                  auth_algo="NULL", auth_key=None)
    if tunnel == "tunnel":
        kw["tunnel_header"] = IP(src=src, dst=dst)
    if natt == "natt":
        kw["nat_t_header"] = UDP(sport=4500, dport=4500)
    return SecurityAssociation(ESP, spi=spi, **kw)

def decrypt(pcap, alg, enckey, authkey, tunnel):
    # Gateway A = 192.0.2.1 sends SPI 0x200 to B; B sends SPI 0x201 to A.
    sas = {}
    for spi, src, dst in ((0x200, "192.0.2.1", "192.0.2.2"), (0x201, "192.0.2.2", "192.0.2.1")):
        sas[spi] = sa(spi, alg, enckey, authkey, tunnel, src, dst, "no")
    for p in rdpcap(pcap):
        if not p.haslayer(IP) or not p.haslayer(ESP):
            continue
        ip = p[IP]
        esp = p[ESP]
        if ip.haslayer(UDP):
            udp = ip[UDP]
            if udp.len != ip.len - ip.ihl * 4 or udp.sport != 4500 or udp.dport != 4500:
                print("bad-udp-header %d %d %d" % (udp.len, udp.sport, udp.dport))
                continue
            # ESP-in-UDP: hand scapy the ESP with a plain outer header.
            ip = IP(src=ip.src, dst=ip.dst, proto=50) / ESP(bytes(esp))
        else:
            ip = IP(bytes(ip))
        if esp.spi not in sas:
            print("unknown-spi %x" % esp.spi)
            continue
        try:
            inner = sas[esp.spi].decrypt(ip)
        except Exception as e:
            print("fail %x %d %s" % (esp.spi, esp.seq, type(e).__name__))
            continue
        if not isinstance(inner, IP):
            inner = IP(bytes(inner))
        icmp_type = inner[ICMP].type if inner.haslayer(ICMP) else -1
        marker = b"rswarswa" in bytes(inner)
        print("ok %x %d %s %s %d %d %s" % (esp.spi, esp.seq, inner.src, inner.dst, inner.proto,
                                          icmp_type, "marker" if marker else "nomarker"))

def inject(alg, enckey, authkey, tunnel, natt, first_seq, count, port):
    # scapy 2.5's nat_t_header leaves the UDP length at 8 (it is computed before the ESP is
    # attached), so encapsulate by hand: the UDP header is not covered by the ICV anyway.
    s = sa(0x201, alg, enckey, authkey, tunnel, "192.0.2.2", "192.0.2.1", "no")
    for i in range(count):
        if tunnel == "tunnel":
            inner = IP(src="10.0.2.10", dst="10.0.1.10") / UDP(sport=5555, dport=port) / Raw(b"scapy-%d" % i)
        else:
            inner = IP(src="192.0.2.2", dst="192.0.2.1") / UDP(sport=5555, dport=port) / Raw(b"scapy-%d" % i)
        pkt = s.encrypt(inner, seq_num=first_seq + i)
        if natt == "natt":
            pkt = IP(src="192.0.2.2", dst="192.0.2.1") / UDP(sport=4500, dport=4500, chksum=0) / Raw(bytes(pkt[ESP]))
        send(pkt)
    print("sent %d" % count)

if sys.argv[1] == "decrypt":
    decrypt(*sys.argv[2:7])
else:
    a = sys.argv[2:]
    inject(a[0], a[1], a[2], a[3], a[4], int(a[5]), int(a[6]), int(a[7]))
"#;

struct Alg {
    name: &'static str,
    enckey: String,
    authkey: String,
    conf: String,
}

fn cbc() -> Alg {
    Alg {
        name: "cbc",
        enckey: K128[2..].into(),
        authkey: K160[2..].into(),
        conf: format!("\tesp=aes128-sha1\n\tespenckey={K128}\n\tespauthkey={K160}\n"),
    }
}

fn gcm() -> Alg {
    Alg {
        name: "gcm",
        enckey: format!("{}{SALT}", &K128[2..]),
        authkey: "00".into(),
        conf: format!("\tesp=aes128gcm16\n\tespenckey={K128}{SALT}\n"),
    }
}

fn script(t: &Topo) -> String {
    let p = t.dir.path("sa.py");
    std::fs::write(&p, SCRIPT).unwrap();
    p.display().to_string()
}

fn python(ns: &str, args: &[&str]) -> String {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} missing: run scripts/install-deps (python3-scapy)"
    );
    let mut a = vec![PYTHON];
    a.extend_from_slice(args);
    let o = ns_run(ns, &a);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "python {args:?} failed:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// (a): both gateways run rswan; a ping crosses the tunnel while the middle link is captured,
/// then scapy decrypts every ESP packet with the configured keys.
fn scapy_decrypts(conf: &str, alg: &Alg, tunnel: bool) {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    t.start_gateway(&ga, conf);
    t.start_gateway(&gb, conf);
    let pcap = t.dir.path("rswan.pcap");
    let cap = Cap::start(&ga, &t.ga_out, &pcap, &[]);
    let (src_ns, dst) = if tunnel {
        (t.ha.clone(), "10.0.2.10")
    } else {
        (ga.clone(), "192.0.2.2")
    };
    let o = ns_run(
        &src_ns,
        &[
            "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-p", PATTERN, dst,
        ],
    );
    // All six ESP packets (3 requests, 3 replies) on disk before the capture stops.
    cap.wait(Duration::from_secs(5), |pkts| {
        pkts.iter()
            .filter(|p| matches!(ip_fields(p).0, 17 | 50))
            .count()
            >= 6
    });
    let pkts = cap.stop();
    let ping_out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "ping failed:\n{ping_out}\n{}",
        t.log(&ga)
    );
    assert!(!pkts.is_empty());
    let sc = script(&t);
    let mode = if tunnel { "tunnel" } else { "transport" };
    let out = python(
        &ga,
        &[
            &sc,
            "decrypt",
            pcap.to_str().unwrap(),
            alg.name,
            &alg.enckey,
            &alg.authkey,
            mode,
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with("ok ")),
        "scapy could not decrypt rswan's ESP:\n{out}"
    );
    let (a, b) = if tunnel {
        ("10.0.1.10", "10.0.2.10")
    } else {
        ("192.0.2.1", "192.0.2.2")
    };
    let requests = format!("ok 200 _ {a} {b} 1 8 marker");
    let replies = format!("ok 201 _ {b} {a} 1 0 marker");
    let matching = |want: &str| {
        lines
            .iter()
            .filter(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let v: Vec<&str> = want.split_whitespace().collect();
                w.len() == v.len() && w.iter().zip(&v).all(|(x, y)| *y == "_" || x == y)
            })
            .count()
    };
    assert_eq!(
        matching(&requests),
        3,
        "echo requests A→B decrypted:\n{out}"
    );
    assert_eq!(matching(&replies), 3, "echo replies B→A decrypted:\n{out}");
}

/// (b): only gateway A runs rswan; scapy in gateway B's namespace builds ESP toward A and a UDP
/// listener (on host A in tunnel mode, on gateway A in transport mode) must get the datagrams.
fn rswan_accepts_scapy(conf: &str, alg: &Alg, tunnel: bool, natt: bool) {
    let mut t = Topo::new();
    let ga = t.ga.clone();
    t.start_gateway(&ga, conf);
    let sink_ns = if tunnel { t.ha.clone() } else { ga.clone() };
    let sink = UdpSink::bind(&sink_ns, 9999);
    let sc = script(&t);
    let rx0 = rx_dropped(&ga, "ipsec0");
    python(
        &t.gb,
        &[
            &sc,
            "inject",
            alg.name,
            &alg.enckey,
            &alg.authkey,
            if tunnel { "tunnel" } else { "transport" },
            if natt { "natt" } else { "plain" },
            "1",
            "3",
            "9999",
        ],
    );
    let got = sink.wait_n(3, Duration::from_secs(5));
    let d = drops(&t, &ga);
    assert_eq!(
        got,
        vec![
            b"scapy-0".to_vec(),
            b"scapy-1".to_vec(),
            b"scapy-2".to_vec()
        ],
        "datagrams from scapy's ESP; drops {d:?}\n{}",
        t.log(&ga)
    );
    assert_eq!((d.rx, rx_dropped(&ga, "ipsec0") - rx0), (0, 0), "{d:?}");
    let spi = t.ipsec_ok(&ga, &["spi"]);
    let inbound = spi
        .lines()
        .find(|l| l.starts_with("esp0x201@192.0.2.1 "))
        .unwrap_or_else(|| panic!("no inbound ESP SA:\n{spi}"));
    assert!(inbound.contains(" seq=3 "), "{inbound}");
}

fn transport_conf(alg: &Alg, extra: &str) -> String {
    format!(
        "version 2\nconfig setup\n\tinterfaces=%defaultroute\nconn host\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\ttype=transport\n\tspibase=0x200\n{}{extra}\tauto=manual\n",
        alg.conf
    )
}

#[test]
fn scapy_decrypts_rswan_aes_cbc_sha1() {
    let a = cbc();
    scapy_decrypts(&manual_conf(&a.conf), &a, true);
}

#[test]
fn scapy_decrypts_rswan_aes_gcm() {
    let a = gcm();
    scapy_decrypts(&manual_conf(&a.conf), &a, true);
}

#[test]
fn scapy_decrypts_rswan_esp_in_udp() {
    let a = gcm();
    scapy_decrypts(
        &manual_conf(&format!("{}\tforceencaps=yes\n", a.conf)),
        &a,
        true,
    );
}

#[test]
fn scapy_decrypts_rswan_transport_mode() {
    let a = cbc();
    scapy_decrypts(&transport_conf(&a, ""), &a, false);
}

#[test]
fn rswan_accepts_scapy_aes_cbc_sha1() {
    let a = cbc();
    rswan_accepts_scapy(&manual_conf(&a.conf), &a, true, false);
}

#[test]
fn rswan_accepts_scapy_aes_gcm() {
    let a = gcm();
    rswan_accepts_scapy(&manual_conf(&a.conf), &a, true, false);
}

#[test]
fn rswan_accepts_scapy_esp_in_udp() {
    let a = gcm();
    rswan_accepts_scapy(
        &manual_conf(&format!("{}\tforceencaps=yes\n", a.conf)),
        &a,
        true,
        true,
    );
}

#[test]
fn rswan_accepts_scapy_transport_mode() {
    let a = cbc();
    rswan_accepts_scapy(&transport_conf(&a, ""), &a, false, false);
}
