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
