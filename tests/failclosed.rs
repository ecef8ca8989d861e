//! Fail closed (issue: cleartext after a crash): while a conn is routed or up, traffic for its
//! remote subnet never leaves gateway A in clear — not after `kill -9` of the daemon, not when
//! ipsecN itself is gone as well (the blackhole fallback), not during `ipsec setup restart` under
//! a TCP transfer — and `ipsec setup start` adopts what the dead daemon left, so the tunnel and
//! the traffic come back. `ipsec setup stop` removes it all, also when no daemon runs.
//!
//! Gateway A's default route leads out of its public interface (to gateway B, which forwards),
//! so without the fail-closed objects every leaked packet would reach host B in clear: the
//! capture on the public link must hold no packet addressed to 10.0.2.0/24.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const PSK: &str = "fail closed test secret";

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn conf(auto: &str) -> String {
    format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\nconn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n\tauto={auto}\n"
    )
}

/// Gateway B answers (auto=add); gateway A keys on start (auto=start).
fn pair() -> Topo {
    let mut t = Topo::new();
    for ns in [t.ga.clone(), t.gb.clone()] {
        use std::os::unix::fs::PermissionsExt;
        let f = t.dir.path(&format!("{ns}.secrets"));
        std::fs::write(&f, format!("192.0.2.1 192.0.2.2 : PSK \"{PSK}\"\n")).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    t.start_gateway(&gb, &conf("add"));
    t.start_gateway(&ga, &conf("start"));
    t
}

fn tunnel_up(t: &Topo) -> bool {
    wait_until(Duration::from_secs(20), || ping(&t.ha, "10.0.2.10", 1, 1))
}

/// Packets on the public link addressed to the protected subnet: cleartext leaks.
fn leaks(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("> 10.0.2."))
        .cloned()
        .collect()
}

fn daemon_pid(t: &Topo, ns: &str) -> i32 {
    let rundir = t.dir.path(&format!("{ns}.run"));
    std::fs::read_to_string(rundir.join("pluto.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn kill9(t: &Topo, ns: &str) {
    let pid = daemon_pid(t, ns);
    // SAFETY: kill(2) on the test's own gateway daemon.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(
        wait_until(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))),
        "daemon {pid} survived SIGKILL"
    );
}

/// `ipsec setup start` again in `ns` with the files the harness wrote.
fn restart_daemon(t: &Topo, ns: &str) -> String {
    let cfg = t.dir.path(&format!("{ns}.conf"));
    let sec = t.dir.path(&format!("{ns}.secrets"));
    let rundir = t.dir.path(&format!("{ns}.run"));
    let o = ns_run(
        ns,
        &[
            ipsec_bin(),
            "--config",
            cfg.to_str().unwrap(),
            "--secrets",
            sec.to_str().unwrap(),
            "--rundir",
            rundir.to_str().unwrap(),
            "setup",
            "start",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "setup start after the crash: {text}");
    text
}

/// rswan's fail-closed routes (table 115) and its routes in main (`proto 115`).
fn routes(ns: &str) -> String {
    ns_must(ns, &["ip", "route", "show", "table", "115"])
        + &ns_must(ns, &["ip", "route", "show", "proto", "115"])
}

#[test]
fn killed_daemon_leaks_nothing_and_start_adopts() {
    let t = pair();
    let ga = t.ga.clone();
    assert!(tunnel_up(&t), "no tunnel\n{}", t.log(&ga));
    let r = routes(&ga);
    assert!(
        r.contains("10.0.2.0/24 via 192.0.2.2 dev ipsec0") && r.contains("blackhole 10.0.2.0/24"),
        "route into ipsec0 and its blackhole fallback expected:\n{r}"
    );
    let cap = Capture::start(&ga, &t.ga_out, &t.dir.path("kill.pcap"));

    // 1. SIGKILL: ipsec0 (persistent) and its route stay; the kernel drops what it routes there.
    kill9(&t, &ga);
    let (got, out) = ping_replies(&t.ha, "10.0.2.10", 10, 1);
    assert_eq!(got, 0, "replies with the daemon dead:\n{out}");
    assert!(
        ns_must(&ga, &["ip", "link", "show", "ipsec0"]).contains("ipsec0"),
        "ipsec0 vanished with the daemon"
    );
    let dropped: u64 = ns_must(&ga, &["cat", "/sys/class/net/ipsec0/statistics/tx_dropped"])
        .trim()
        .parse()
        .unwrap();
    assert!(dropped >= 10, "kernel did not drop into ipsec0: {dropped}");

    // 2. Even without ipsec0 (deleted by hand) the blackhole fallback holds.
    ns_must(&ga, &["ip", "link", "del", "ipsec0"]);
    let (got, out) = ping_replies(&t.ha, "10.0.2.10", 5, 1);
    assert_eq!(got, 0, "replies without ipsec0:\n{out}");
    let r = routes(&ga);
    assert!(r.contains("blackhole 10.0.2.0/24"), "{r}");

    // 3. `setup start` cleans up after the dead daemon (stale pid file and socket), re-creates
    //    the device, and the tunnel and traffic come back.
    let text = restart_daemon(&t, &ga);
    assert!(tunnel_up(&t), "tunnel did not come back\n{}", t.log(&ga));
    let (leaked, _) = cap.stop();
    let l = leaks(&leaked);
    assert!(
        l.is_empty(),
        "cleartext on the public link:\n{}",
        l.join("\n")
    );
    assert!(
        text.contains("routed again") || t.log(&ga).contains("routed again"),
        "adoption not reported:\n{text}"
    );

    // 4. Killed again, this time with ipsec0 left: the next start adopts the device and reports
    //    what the kernel dropped meanwhile.
    kill9(&t, &ga);
    let (got, _) = ping_replies(&t.ha, "10.0.2.10", 3, 1);
    assert_eq!(got, 0);
    let text = restart_daemon(&t, &ga);
    assert!(
        text.contains("ipsec0 adopted from the previous daemon"),
        "no adoption line:\n{text}"
    );
    assert!(tunnel_up(&t), "tunnel did not come back\n{}", t.log(&ga));

    // 5. Killed once more, then `setup stop` with no daemon running removes device, routes and
    //    blackholes: the administrator's explicit way back to cleartext.
    kill9(&t, &ga);
    let o = t.ipsec(&ga, &["setup", "stop"]);
    assert!(o.status.success());
    assert_eq!(routes(&ga).trim(), "", "routes left after setup stop");
    assert!(
        !ns_must(&ga, &["ip", "rule"]).contains("lookup 115"),
        "rule left after setup stop"
    );
    assert!(!ns_run(&ga, &["ip", "link", "show", "ipsec0"])
        .status
        .success());
    // Without rswan's objects the same ping leaves in clear: the leak detector works.
    let cap = Capture::start(&ga, &t.ga_out, &t.dir.path("stopped.pcap"));
    let _ = ping_replies(&t.ha, "10.0.2.10", 2, 1);
    let (lines, _) = cap.stop();
    assert!(
        !leaks(&lines).is_empty(),
        "after setup stop traffic should follow the routing table again:\n{}",
        lines.join("\n")
    );
}

/// A TCP transfer paced over several seconds from host A to host B, while gateway A restarts.
#[test]
fn restart_under_tcp_transfer_leaks_nothing() {
    let t = pair();
    let ga = t.ga.clone();
    assert!(tunnel_up(&t), "no tunnel\n{}", t.log(&ga));
    let cap = Capture::start(&ga, &t.ga_out, &t.dir.path("restart.pcap"));

    const CHUNK: usize = 16 * 1024;
    const CHUNKS: usize = 120; // ~2 MB over ~6 s
    let data = payload(CHUNK * CHUNKS, b"FAILCLOSED-MARKER");
    let sent = hash(&data);
    let hb = t.hb.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        enter_netns(&hb);
        let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5301)).unwrap();
        tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    });
    rx.recv().unwrap();
    let ha = t.ha.clone();
    let client = std::thread::spawn(move || {
        enter_netns(&ha);
        let mut s = TcpStream::connect_timeout(
            &SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 10), 5301).into(),
            Duration::from_secs(10),
        )
        .expect("connect through the tunnel");
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        for c in data.chunks(CHUNK) {
            s.write_all(c).expect("send");
            std::thread::sleep(Duration::from_millis(50));
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    std::thread::sleep(Duration::from_millis(1500));
    let o = t.ipsec(&ga, &["setup", "restart"]);
    assert!(
        o.status.success(),
        "setup restart: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    client.join().expect("transfer through the restart");
    let got = server.join().unwrap();
    assert_eq!(got.len(), CHUNK * CHUNKS, "transfer incomplete");
    assert_eq!(hash(&got), sent, "transfer corrupted");
    let (lines, raw) = cap.stop();
    let l = leaks(&lines);
    assert!(l.is_empty(), "cleartext during restart:\n{}", l.join("\n"));
    assert!(!contains(&raw, b"FAILCLOSED-MARKER"), "payload in clear");
    let log = t.log(&ga);
    assert!(
        log.contains("Stopping rswan IPsec for a restart"),
        "restart did not keep state:\n{log}"
    );
}
