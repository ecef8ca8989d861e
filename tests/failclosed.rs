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
    // Gone, or a zombie whose other threads have exited too (a zombie leader can show while
    // a datapath thread still holds the TUN queues open and takes a packet).
    assert!(
        wait_until(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()
            || (std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
                && std::fs::read_dir(format!("/proc/{pid}/task"))
                    .is_ok_and(|d| d.count() <= 1))),
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

/// The subnets of rswan's routes in `ns` (into ipsecN in main and table 115, and the
/// blackholes).
fn routed_nets(ns: &str) -> std::collections::BTreeSet<String> {
    // Table 115 does not exist before the first route: not an error here.
    let show = |args: &[&str]| String::from_utf8_lossy(&ns_run(ns, args).stdout).into_owned();
    let text = show(&["ip", "route", "show", "table", "115"])
        + &show(&["ip", "route", "show", "proto", "115"]);
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match w.next()? {
                "blackhole" | "unicast" => w.next(),
                first => Some(first),
            }
            .map(str::to_string)
        })
        .collect()
}

/// `kill -9` in the middle of a burst of routing (conns routed four at a time, several
/// hundred of them): the record the daemon leaves names every subnet it had routed — each
/// conn is recorded before its routes go in, one appended journal line per conn — and the
/// next start keeps them all routed.
#[test]
fn killed_during_a_burst_of_routing_the_record_covers_every_route() {
    const CONNS: usize = 400;
    let mut t = Topo::new();
    let ga = t.ga.clone();
    let mut conf =
        String::from("version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\nconn %default\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=192.0.2.2\n\tauthby=secret\n\tauto=add\n");
    for i in 0..CONNS {
        conf += &format!(
            "\nconn burst-{i}\n\trightsubnet=10.{}.{}.0/24\n",
            100 + i / 200,
            i % 200
        );
    }
    t.start_gateway(&ga, &conf);
    let record = t.dir.path(&format!("{ga}.run")).join("failclosed");

    // Four clients route the conns in parallel; the daemon dies while they are at it.
    let t = std::sync::Arc::new(t);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (t, ga, stop) = (t.clone(), ga.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in (w..CONNS).step_by(4) {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let _ = t.ipsec(&ga, &["auto", "--route", &format!("burst-{i}")]);
                }
            })
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(60), || routed_nets(&ga).len()
            >= CONNS / 3),
        "routing did not get going:\n{}",
        t.log(&ga)
    );
    kill9(&t, &ga);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let installed = routed_nets(&ga);
    assert!(
        installed.len() >= CONNS / 3,
        "only {} of {CONNS} subnets routed",
        installed.len()
    );
    let text = std::fs::read_to_string(&record).expect("no fail-closed record left");
    let recorded: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            ["route", "auto", _, net] => Some(net.to_string()),
            _ => None,
        })
        .collect();
    eprintln!(
        "killed with {} of {CONNS} subnets routed; the record names {}",
        installed.len(),
        recorded.len()
    );
    let missing: Vec<&String> = installed.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "routes the record does not cover: {missing:?}\nrecord:\n{text}"
    );

    // The next start re-routes what was recorded and sweeps nothing of it.
    let out = restart_daemon(&t, &ga);
    let after = routed_nets(&ga);
    let lost: Vec<&String> = installed.difference(&after).collect();
    assert!(
        lost.is_empty(),
        "routes lost over the restart: {lost:?}\n{out}"
    );
}
