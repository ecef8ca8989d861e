//! The administrator's tools on running gateways in network namespaces: syslog tags,
//! facilities and files (`syslog=`, `plutostderrlog=`, `plutodebug=`, `whack --debug-*`,
//! `klipsdebug=`), systemd readiness (`NOTIFY_SOCKET`) and the unit file, `ipsec barf`,
//! `ipsec verify`, FreeS/WAN's command idioms, `leftfirewall=yes` with nftables, `ipsec status
//! --json` and the metrics endpoint.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PSK: &str = "admin tools shared secret 4f1d";

fn net_conf(setup: &str, body: &str) -> String {
    format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n{setup}\nconn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n{body}"
    )
}

fn psk_secrets(t: &Topo) {
    let line = format!("192.0.2.1 192.0.2.2 : PSK \"{PSK}\"\n");
    write_secrets(t, &t.ga.clone(), &line);
    write_secrets(t, &t.gb.clone(), &line);
}

/// A syslog socket the test listens on: every datagram received, in order.
struct SyslogSink {
    msgs: Arc<Mutex<Vec<String>>>,
    path: std::path::PathBuf,
}

impl SyslogSink {
    fn new(path: &Path) -> SyslogSink {
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path).expect("bind syslog socket");
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let m = msgs.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sock.recv(&mut buf) {
                m.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        SyslogSink {
            msgs,
            path: path.to_path_buf(),
        }
    }

    fn all(&self) -> Vec<String> {
        self.msgs.lock().unwrap().clone()
    }

    /// Waits until a message satisfies `f`; returns it.
    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut found = None;
        wait_until(Duration::from_secs(10), || {
            found = self.all().into_iter().find(|m| f(m));
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no syslog message {what}; got:\n{}", self.all().join("\n")))
    }
}

fn up(t: &Topo, ns: &str) {
    let o = t.ipsec(ns, &["auto", "--up", "net"]);
    assert!(
        o.status.success(),
        "auto --up failed: {}{}\nA:\n{}\nB:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        t.log(&t.ga),
        t.log(&t.gb)
    );
}

#[test]
fn syslog_tags_facilities_and_files() {
    let mut t = Topo::new();
    psk_secrets(&t);
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let sink_a = SyslogSink::new(&t.dir.path("a-log.sock"));
    let sink_b = SyslogSink::new(&t.dir.path("b-log.sock"));
    // B: Pluto's lines to a file (appended to, never truncated), start-up lines at local3.notice.
    let pluto_file = t.dir.path("b-pluto.log");
    std::fs::write(&pluto_file, "an earlier line\n").unwrap();
    let conf_b = net_conf(
        &format!(
            "\tsyslog=local3.notice\n\tplutostderrlog={}\n",
            pluto_file.display()
        ),
        "\tauto=add\n",
    );
    t.start_gateway_env(
        &gb,
        &conf_b,
        &[("RSWAN_SYSLOG_SOCKET", sink_b.path.to_str().unwrap())],
    );
    // A: defaults (ipsec_setup at daemon.error, pluto at authpriv), Pluto's klips debug class
    // and KLIPS eroute tracing.
    let conf_a = net_conf("\tplutodebug=klips\n\tklipsdebug=eroute\n", "\tauto=add\n");
    t.start_gateway_env(
        &ga,
        &conf_a,
        &[("RSWAN_SYSLOG_SOCKET", sink_a.path.to_str().unwrap())],
    );
    up(&t, &ga);

    // daemon (3) * 8 + error (3) = 27, tag without pid.
    sink_a.wait_for("ipsec_setup started at daemon.error", |m| {
        m.starts_with("<27>")
            && m.contains(" ipsec_setup: ...rswan IPsec ")
            && m.ends_with(" started")
    });
    // authpriv (10) * 8 + warning (4) = 84, tag pluto[pid].
    let est = sink_a.wait_for("pluto ISAKMP SA established at authpriv", |m| {
        m.starts_with("<84>") && m.contains("ISAKMP SA established")
    });
    let pid = t.ipsec_ok(&ga, &["setup", "status"]);
    let pid = pid
        .lines()
        .find_map(|l| l.strip_prefix("pluto pid "))
        .expect("pluto pid")
        .trim()
        .to_string();
    assert!(est.contains(&format!(" pluto[{pid}]: ")), "{est}");
    // plutodebug=klips: `| ` lines at authpriv.debug (87).
    sink_a.wait_for("plutodebug=klips line at authpriv.debug", |m| {
        m.starts_with("<87>") && m.contains(": | \"net\" #2: installing SAs")
    });
    // klipsdebug=eroute: the tunnel eroute, tag klips[pid], daemon.debug (31).
    sink_a.wait_for("klipsdebug=eroute trace", |m| {
        m.starts_with("<31>")
            && m.contains(&format!(" klips[{pid}]: klips_debug:eroute: "))
            && m.contains("10.0.1.0/24 -> 10.0.2.0/24 => tun0x")
    });
    // whack --debug-lifecycle switches a class on at run time.
    t.ipsec_ok(&ga, &["whack", "--debug-lifecycle"]);
    t.ipsec_ok(&ga, &["auto", "--down", "net"]);
    sink_a.wait_for("whack --debug-lifecycle line", |m| {
        m.starts_with("<87>") && m.contains("| deleting state #")
    });

    // B: start-up lines at local3.notice (19 * 8 + 5 = 157); Pluto's lines only in the file.
    sink_b.wait_for("ipsec_setup at syslog=local3.notice", |m| {
        m.starts_with("<157>") && m.contains(" ipsec_setup: Starting rswan IPsec ")
    });
    let file = std::fs::read_to_string(&pluto_file).unwrap();
    assert!(file.starts_with("an earlier line\n"), "{file}");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(
            &pluto_file
        )
        .unwrap()
        .contains("STATE_MAIN_R3")),
        "{}",
        std::fs::read_to_string(&pluto_file).unwrap()
    );
    let file = std::fs::read_to_string(&pluto_file).unwrap();
    for l in file.lines().skip(1) {
        // `2026-12-07 14:52:22.123 text`
        let b = l.as_bytes();
        assert!(
            l.len() > 24 && b[4] == b'-' && b[10] == b' ' && b[13] == b':' && b[19] == b'.',
            "line without timestamp: {l}"
        );
    }
    assert!(
        !sink_b.all().iter().any(|m| m.contains(" pluto[")),
        "plutostderrlog= still sent Pluto's lines to syslog: {:?}",
        sink_b.all()
    );
    for m in sink_a.all().iter().chain(sink_b.all().iter()) {
        assert!(!m.contains(PSK), "PSK in a log line: {m}");
    }
}

/// A gateway run in the foreground as systemd runs it (`ipsec setup start --nofork` with
/// `NOTIFY_SOCKET`): READY=1 arrives once the conns are loaded, STOPPING=1 at the stop.
#[test]
fn systemd_readiness_after_conns_are_loaded() {
    let t = Topo::new();
    psk_secrets(&t);
    let ga = t.ga.clone();
    let conf = t.dir.path("a.conf");
    let conf_text = net_conf(
        "",
        "\tauto=route\n\nconn other\n\tleft=192.0.2.1\n\tright=192.0.2.9\n\tauthby=secret\n\tauto=add\n",
    );
    std::fs::write(&conf, conf_text).unwrap();
    let rundir = t.dir.path("a.run");
    let notify = t.dir.path("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let secrets = t.dir.path(&format!("{ga}.secrets"));
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &ga, ipsec_bin(), "--config"])
        .arg(&conf)
        .arg("--secrets")
        .arg(&secrets)
        .arg("--rundir")
        .arg(&rundir)
        .args(["setup", "start", "--nofork"])
        .env("NOTIFY_SOCKET", &notify)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("no notification from the daemon");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    assert!(msg.contains("MAINPID="), "{msg}");
    // At READY=1 the conns are loaded and the auto=route one is routed.
    let ipsec = |args: &[&str]| {
        let mut a = vec![ipsec_bin(), "--rundir", rundir.to_str().unwrap()];
        a.extend_from_slice(args);
        ns_run(&ga, &a)
    };
    let st = String::from_utf8_lossy(&ipsec(&["auto", "--status"]).stdout).into_owned();
    assert!(st.contains("\"net\": 10.0.1.0/24===192.0.2.1"), "{st}");
    assert!(st.contains("\"other\": 192.0.2.1"), "{st}");
    let er = String::from_utf8_lossy(&ipsec(&["eroute"]).stdout).into_owned();
    assert!(
        er.contains("10.0.1.0/24        -> 10.0.2.0/24        => %trap"),
        "{er}"
    );
    // ExecReload.
    assert!(ipsec(&["auto", "--rereadall"]).status.success());
    // SIGTERM (systemd's stop): STOPPING=1, exit 0.
    let pid = std::fs::read_to_string(rundir.join("pluto.pid")).unwrap();
    let pid: i32 = pid.trim().parse().unwrap();
    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let n = sock.recv(&mut buf).expect("no STOPPING=1");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// The unit file is valid for systemd (checked by `systemd-analyze verify` with the binary
/// under test in place of /usr/sbin/ipsec) and says what the README promises.
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/ipsec.service"
    ))
    .unwrap();
    for want in [
        "\nType=notify\n",
        "\nExecStart=/usr/sbin/ipsec setup start --nofork\n",
        "\nExecReload=/usr/sbin/ipsec auto --rereadall\n",
        "\nRestart=on-failure\n",
    ] {
        assert!(unit.contains(want), "unit lacks {want:?}");
    }
    let dir = TempDir::new(&format!("{}unit", unique_prefix()));
    let f = dir.path("ipsec.service");
    std::fs::write(&f, unit.replace("/usr/sbin/ipsec", ipsec_bin())).unwrap();
    let o = run("systemd-analyze", &["verify", f.to_str().unwrap()]);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

const MANUAL_ENC: &str = "0x6a1f3b5c7d9e0f2a4b6c8d0e1f2a3b4c5d6e7f80112233445566778899aabbcc";
const MANUAL_AUTH: &str = "0x0123456789abcdef0123456789abcdef01234567";

/// Both gateways: the IKE conn `net` (PSK, `body`) and a manually keyed conn `man` whose keys
/// are in ipsec.conf; `net` is brought up.
fn pair_up(setup_a: &str, body: &str) -> Topo {
    let mut t = Topo::new();
    psk_secrets(&t);
    let man = format!(
        "\nconn man\n\tleft=192.0.2.1\n\tleftsubnet=10.9.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.9.2.0/24\n\tspibase=0x300\n\tesp=aes256-sha1\n\tespenckey={MANUAL_ENC}\n\tespauthkey={MANUAL_AUTH}\n\tauto=manual\n"
    );
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    t.start_gateway(&gb, &(net_conf("", body) + &man));
    t.start_gateway(&ga, &(net_conf(setup_a, body) + &man));
    up(&t, &ga);
    t
}

fn hex_of(key: &str) -> String {
    key.trim_start_matches("0x").to_string()
}

fn no_secrets(what: &str, text: &str) {
    for s in [PSK.to_string(), hex_of(MANUAL_ENC), hex_of(MANUAL_AUTH)] {
        assert!(
            !text.contains(&s),
            "{what} contains key material {s}:\n{text}"
        );
        // Also not split into 8-digit groups or upper case.
        assert!(
            !text.to_lowercase().contains(&s[..24]),
            "{what} contains key material"
        );
    }
}

#[test]
fn barf_has_every_section_and_no_key_material() {
    let t = pair_up("", "\tauto=add\n");
    let barf = t.ipsec_ok(&t.ga, &["barf"]);
    let sections = [
        "+ _________________________ version\n",
        "+ _________________________ ipsec/look\n",
        "+ _________________________ ipsec/status\n",
        "+ _________________________ /proc/net/ipsec_eroute\n",
        "+ _________________________ /proc/net/ipsec_spi\n",
        "+ _________________________ ip-addr-list\n",
        "+ _________________________ ip-route-list\n",
        "+ _________________________ ip-route-table-115\n",
        "+ _________________________ ip-rule-list\n",
        "+ _________________________ ip-s-link-ipsec\n",
        "+ _________________________ /proc/sys/net/ipv4/ip_forward\n",
        "+ _________________________ /proc/sys/net/ipv4/conf/star-rp_filter\n",
        "+ _________________________ nft-list-ruleset\n",
        "+ _________________________ ipsec/conf\n",
        "+ _________________________ ipsec/secrets\n",
        "+ _________________________ plog\n",
    ];
    let mut at = 0;
    for s in sections {
        let i = barf[at..]
            .find(s)
            .unwrap_or_else(|| panic!("barf lacks {s:?} (in order):\n{barf}"));
        at += i + s.len();
    }
    for want in [
        "Linux rswan ",
        "\"net\": 10.0.1.0/24===192.0.2.1",
        "STATE_QUICK_I2",
        "=> tun0x",
        "@192.0.2.2 ESP_AES256_HMAC_SHA1: dir=out",
        " refcount=",
        "not from all fwmark 0x115 lookup 115",
        "blackhole 10.0.2.0/24",
        "ipsec0: <",
        "RX:",
        "espenckey=[censored]",
        ": PSK [censored]",
        "ISAKMP SA established",
    ] {
        assert!(barf.contains(want), "barf lacks {want:?}:\n{barf}");
    }
    no_secrets("barf", &barf);
}

#[test]
fn verify_ok_then_failed() {
    let t = pair_up("", "\tauto=add\n");
    let ga = t.ga.clone();
    for k in ["all", "default", "ipsec0"] {
        ns_must(
            &ga,
            &["sysctl", "-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")],
        );
    }
    let o = t.ipsec(&ga, &["verify"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "verify failed on a healthy gateway:\n{out}"
    );
    for want in [
        "Checking for TUN support (/dev/net/tun)",
        "Checking that pluto is running",
        "  Pluto listening for IKE on udp 500",
        "  Pluto listening for IKE/NAT-T on udp 4500",
        "Checking IP forwarding (net.ipv4.ip_forward)",
        "Checking rp_filter on ipsec0",
        "Checking the fail-closed rule (not fwmark 0x115 lookup 115)",
    ] {
        let l = out
            .lines()
            .find(|l| l.starts_with(want))
            .unwrap_or_else(|| panic!("no {want:?} line:\n{out}"));
        assert!(l.ends_with("[OK]"), "{l}\n{out}");
    }
    assert!(!out.contains("[FAILED]"), "{out}");
    // Strict reverse-path filtering on ipsec0.
    ns_must(&ga, &["sysctl", "-qw", "net.ipv4.conf.ipsec0.rp_filter=1"]);
    let o = t.ipsec(&ga, &["verify"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{out}");
    let l = out
        .lines()
        .find(|l| l.starts_with("Checking rp_filter on ipsec0"))
        .unwrap();
    assert!(l.ends_with("[FAILED]"), "{out}");
    ns_must(&ga, &["sysctl", "-qw", "net.ipv4.conf.ipsec0.rp_filter=0"]);
    // A missing secrets file.
    let secrets = t.dir.path(&format!("{ga}.secrets"));
    std::fs::rename(&secrets, t.dir.path("moved.secrets")).unwrap();
    let o = t.ipsec(&ga, &["--secrets", secrets.to_str().unwrap(), "verify"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "Checking {} permissions",
            secrets.file_name().unwrap().to_string_lossy()
        )) && l.ends_with("[FAILED]")),
        "{out}"
    );
}

/// An HTTP/1.0 GET from inside `ns`; Err if the connection is refused.
fn http_get(ns: &str, addr: &str) -> std::io::Result<String> {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    in_netns(ns, move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut b = String::new();
        s.read_to_string(&mut b)?;
        Ok(b)
    })
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(line_start))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum()
}

#[test]
fn status_json_and_metrics_endpoint() {
    let port = 9100 + (std::process::id() % 800) as u16;
    let down = "\nconn down\n\tleft=192.0.2.1\n\tright=192.0.2.9\n\tauthby=secret\n\tauto=add\n\nconn off\n\tleft=192.0.2.1\n\tright=192.0.2.8\n\tauthby=secret\n\tauto=ignore\n";
    let t = pair_up(
        &format!("\tmetrics=192.0.2.1:{port}\n"),
        &format!("\tauto=add\n{down}"),
    );
    let ga = t.ga.clone();
    // JSON, validated against the documented schema.
    let json = t.ipsec_ok(&ga, &["status", "--json"]);
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/status-schema.json");
    let f = t.dir.path("status.json");
    std::fs::write(&f, &json).unwrap();
    let o = run(
        "python3",
        &[
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1]))); print('valid')",
            schema,
            f.to_str().unwrap(),
        ],
    );
    assert!(
        o.status.success(),
        "status --json does not match its schema: {}\n{json}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "\"schema\":\"rswan-status/1\"",
        "\"name\":\"net\",\"kind\":\"ike\",\"auto\":\"add\",\"loaded\":true,\"up\":true",
        "\"name\":\"down\",\"kind\":\"ike\",\"auto\":\"add\",\"loaded\":true,\"up\":false",
        "\"name\":\"off\",\"kind\":\"none\",\"auto\":\"ignore\",\"loaded\":false,\"up\":false",
        "\"name\":\"man\",\"kind\":\"manual\"",
        "\"state\":\"STATE_QUICK_I2\",\"established\":true",
        "\"said\":\"esp0x",
    ] {
        assert!(json.contains(want), "no {want} in\n{json}");
    }
    no_secrets("status --json", &json);
    // The endpoint, on 192.0.2.1 only.
    let before = http_get(&ga, &format!("192.0.2.1:{port}")).expect("metrics endpoint");
    assert!(before.starts_with("HTTP/1.0 200 OK\r\n"), "{before}");
    assert!(
        before.contains("\nrswan_conn_up{conn=\"down\",kind=\"ike\"} 0\n"),
        "{before}"
    );
    assert!(
        before.contains("\nrswan_conn_up{conn=\"net\",kind=\"ike\"} 1\n"),
        "{before}"
    );
    assert!(
        before.contains("\nrswan_conn_up{conn=\"off\",kind=\"none\"} 0\n"),
        "{before}"
    );
    assert!(
        http_get(&ga, &format!("127.0.0.1:{port}")).is_err(),
        "the endpoint answers on 127.0.0.1 too"
    );
    let out_bytes = |t: &str| metric(t, "rswan_sa_bytes_total{said=\"esp0x");
    let b0 = out_bytes(&before);
    assert!(
        ping(&t.ha, "10.0.2.10", 5, 3),
        "no traffic through the tunnel"
    );
    let after = http_get(&ga, &format!("192.0.2.1:{port}")).unwrap();
    assert!(
        out_bytes(&after) > b0,
        "ESP byte counters did not rise:\n{before}\n{after}"
    );
    // `ipsec metrics` prints the same exposition.
    let cli = t.ipsec_ok(&ga, &["metrics"]);
    assert!(cli.contains("# TYPE rswan_drops_total counter\n"), "{cli}");
    no_secrets("metrics", &after);
}

#[test]
fn tshark_decrypts_with_the_exported_keys() {
    let mut t = Topo::new();
    psk_secrets(&t);
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let conf = net_conf(
        "",
        "\tike=aes128-sha1-modp2048\n\tesp=aes128-sha1\n\tauto=add\n",
    );
    // B keeps its tables up to date by itself (wiresharkkeys=).
    let auto_dir = t.dir.path("b-wireshark");
    t.start_gateway(
        &gb,
        &net_conf(
            &format!("\twiresharkkeys={}\n", auto_dir.display()),
            "\tike=aes128-sha1-modp2048\n\tesp=aes128-sha1\n\tauto=add\n",
        ),
    );
    assert!(
        t.log(&gb).contains("WARNING: wiresharkkeys="),
        "{}",
        t.log(&gb)
    );
    t.start_gateway(&ga, &conf);
    let cap = Capture::start(&ga, &t.ga_out, &t.dir.path("ike-esp.pcap"));
    up(&t, &ga);
    assert!(
        wait_until(Duration::from_secs(5), || ping(&t.ha, "10.0.2.10", 1, 1)),
        "no ping through the tunnel"
    );
    let (_, _) = cap.stop();
    let dir = t.dir.path("wireshark");
    let out = t.ipsec_ok(&ga, &["keys", "--wireshark", dir.to_str().unwrap()]);
    assert!(out.contains("2 ESP SAs, 1 IKE SAs"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    for f in ["esp_sa", "ikev1_decryption_table", "ikev2_decryption_table"] {
        let m = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600, "{f}");
    }
    assert!(t.log(&ga).contains(
        "WARNING: ipsec keys --wireshark: wrote the keys of 2 ESP SA(s) and 1 IKE SA(s)"
    ));
    let tshark = |filter: &str, with_keys: bool| -> String {
        let conf_dir = if with_keys {
            dir.clone()
        } else {
            t.dir.path("empty")
        };
        let _ = std::fs::create_dir_all(&conf_dir);
        let o = std::process::Command::new("tshark")
            .env("WIRESHARK_CONFIG_DIR", &conf_dir)
            .args(["-n", "-r"])
            .arg(t.dir.path("ike-esp.pcap"))
            .args(["-o", "esp.enable_encryption_decode:TRUE", "-Y", filter])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // ESP: the inner ICMP echo of host A.
    let icmp = tshark("icmp && ip.src == 10.0.1.10", true);
    assert!(
        icmp.contains("Echo (ping) request"),
        "ESP not decrypted:\n{icmp}"
    );
    assert!(tshark("icmp && ip.src == 10.0.1.10", false).is_empty());
    // IKEv1: the identities in the encrypted MI3/MR3 and the Quick Mode hashes.
    let ike = tshark("isakmp.id.type", true);
    assert!(!ike.is_empty(), "IKE not decrypted");
    assert!(tshark("isakmp.id.type", false).is_empty());
    // B wrote its own tables when the SAs came, and rewrites them when they go.
    let esp_lines = |d: &std::path::Path| {
        std::fs::read_to_string(d.join("esp_sa"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("\"IPv4\""))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(5), || esp_lines(&auto_dir) == 2),
        "{}",
        t.log(&gb)
    );
    t.ipsec_ok(&ga, &["auto", "--down", "net"]);
    assert!(
        wait_until(Duration::from_secs(5), || esp_lines(&auto_dir) == 0),
        "{}",
        t.log(&gb)
    );
}

fn ruleset(ns: &str) -> String {
    ns_must(ns, &["nft", "list", "ruleset"])
}

/// `leftfirewall=yes`: the conn's forwarding rules appear in nftables table `inet rswan`,
/// chain `forward`, when the tunnel comes up and vanish with the SA; the other side (no
/// `rightfirewall`) gets none.
#[test]
fn leftfirewall_rules_follow_the_sa() {
    let mut t = Topo::new();
    psk_secrets(&t);
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    let conf = net_conf("", "\tleftfirewall=yes\n\tauto=add\n");
    t.start_gateway(&gb, &conf);
    t.start_gateway(&ga, &conf);
    assert!(!ruleset(&ga).contains("rswan conn net"), "{}", ruleset(&ga));
    up(&t, &ga);
    let want_in = "iifname \"ipsec0\" ip saddr 10.0.2.0/24 ip daddr 10.0.1.0/24 counter packets";
    let want_out = "oifname \"ipsec0\" ip saddr 10.0.1.0/24 ip daddr 10.0.2.0/24 counter packets";
    let rs = ruleset(&ga);
    assert!(rs.contains("table inet rswan {"), "{rs}");
    assert!(rs.contains("chain forward {"), "{rs}");
    assert!(
        rs.contains(want_in) && rs.contains(want_out),
        "{rs}\n{}",
        t.log(&ga)
    );
    assert!(
        rs.contains("comment \"rswan conn net 10.0.2.0/24\""),
        "{rs}"
    );
    assert!(!ruleset(&gb).contains("rswan conn"), "{}", ruleset(&gb));
    // The rules count the tunnel's traffic.
    assert!(wait_until(Duration::from_secs(5), || ping(
        &t.ha,
        "10.0.2.10",
        1,
        1
    )));
    assert!(
        ruleset(&ga)
            .lines()
            .any(|l| l.contains("oifname \"ipsec0\"") && !l.contains("packets 0 ")),
        "{}",
        ruleset(&ga)
    );
    t.ipsec_ok(&ga, &["auto", "--down", "net"]);
    assert!(
        wait_until(Duration::from_secs(5), || !ruleset(&ga)
            .contains("rswan conn net")),
        "rules outlived the SA:\n{}",
        ruleset(&ga)
    );
    // Up again, then `ipsec setup stop` removes the table.
    up(&t, &ga);
    assert!(ruleset(&ga).contains(want_in));
    let o = t.setup_op(&ga, "stop");
    assert!(o.status.success());
    assert!(
        !ruleset(&ga).contains("table inet rswan"),
        "{}",
        ruleset(&ga)
    );
}
