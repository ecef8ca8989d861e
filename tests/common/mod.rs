//! Test harness: network namespaces, veth links, rswan gateways and traffic helpers.
//! Every topology gets a unique name prefix and is torn down on drop (also when a test fails).
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `ipsec` binary under test.
pub fn ipsec_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ipsec")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique short prefix for names (interface names must stay under 16 bytes): the whole pid
/// in hex and a counter, with a separator, so that test binaries running at the same time never
/// share a prefix (`r{pid % 10000}{n}` did: pid …636 with n=10 and pid …6361 with n=0 both gave
/// `r63610`, and one test's teardown deleted the other's namespaces and scratch directory).
pub fn unique_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("r{:x}x{n}", std::process::id())
}

/// Runs a command, returning its output (never panics on failure to spawn: returns it in stderr).
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Runs a command that must succeed.
pub fn must(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `args` inside network namespace `ns`.
pub fn ns_run(ns: &str, args: &[&str]) -> Output {
    let mut a = vec!["netns", "exec", ns];
    a.extend_from_slice(args);
    run("ip", &a)
}

/// Runs `args` inside `ns`; it must succeed.
pub fn ns_must(ns: &str, args: &[&str]) -> String {
    let mut a = vec!["netns", "exec", ns];
    a.extend_from_slice(args);
    must("ip", &a)
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `/tmp/rswan-test-PREFIX`.
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rswan-test-{prefix}"));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A path inside.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RSWAN_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// host A (10.0.1.10) — gateway A (10.0.1.1 | 192.0.2.1) ==== (192.0.2.2 | 10.0.2.1) gateway B —
/// host B (10.0.2.10). Gateways route to each other by default route, forward IPv4.
pub struct Topo {
    /// Name prefix.
    pub p: String,
    /// Namespaces.
    pub ha: String,
    /// Gateway A's namespace.
    pub ga: String,
    /// Gateway B's namespace.
    pub gb: String,
    /// Host B's namespace.
    pub hb: String,
    /// Gateway A's interface on the middle link.
    pub ga_out: String,
    /// Gateway B's interface on the middle link.
    pub gb_out: String,
    /// Scratch files.
    pub dir: TempDir,
    gateways: Vec<(String, PathBuf)>,
    children: Vec<Child>,
    /// Namespaces added after [`Topo::new`] (deleted on drop).
    extra_ns: Vec<String>,
}

impl Topo {
    /// Builds the four namespaces and links.
    pub fn new() -> Topo {
        let p = unique_prefix();
        let t = Topo {
            ha: format!("{p}hA"),
            ga: format!("{p}gA"),
            gb: format!("{p}gB"),
            hb: format!("{p}hB"),
            ga_out: format!("{p}m0"),
            gb_out: format!("{p}m1"),
            dir: TempDir::new(&p),
            p,
            gateways: Vec::new(),
            children: Vec::new(),
            extra_ns: Vec::new(),
        };
        let p = &t.p;
        for n in [&t.ha, &t.ga, &t.gb, &t.hb] {
            must("ip", &["netns", "add", n]);
            must("ip", &["-n", n, "link", "set", "lo", "up"]);
        }
        let link = |a: &str, na: &str, b: &str, nb: &str| {
            must(
                "ip",
                &[
                    "link", "add", a, "netns", na, "type", "veth", "peer", "name", b, "netns", nb,
                ],
            );
        };
        link(&format!("{p}a0"), &t.ha, &format!("{p}a1"), &t.ga);
        link(&t.ga_out, &t.ga, &t.gb_out, &t.gb);
        link(&format!("{p}b1"), &t.gb, &format!("{p}b0"), &t.hb);
        let addr = |ns: &str, dev: &str, a: &str| {
            must("ip", &["-n", ns, "addr", "add", a, "dev", dev]);
            must("ip", &["-n", ns, "link", "set", dev, "up"]);
        };
        addr(&t.ha, &format!("{p}a0"), "10.0.1.10/24");
        addr(&t.ga, &format!("{p}a1"), "10.0.1.1/24");
        addr(&t.ga, &t.ga_out, "192.0.2.1/24");
        addr(&t.gb, &t.gb_out, "192.0.2.2/24");
        addr(&t.gb, &format!("{p}b1"), "10.0.2.1/24");
        addr(&t.hb, &format!("{p}b0"), "10.0.2.10/24");
        must(
            "ip",
            &["-n", &t.ha, "route", "add", "default", "via", "10.0.1.1"],
        );
        must(
            "ip",
            &["-n", &t.hb, "route", "add", "default", "via", "10.0.2.1"],
        );
        must(
            "ip",
            &["-n", &t.ga, "route", "add", "default", "via", "192.0.2.2"],
        );
        must(
            "ip",
            &["-n", &t.gb, "route", "add", "default", "via", "192.0.2.1"],
        );
        for g in [&t.ga, &t.gb] {
            ns_must(g, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        }
        t
    }

    /// Adds IPv6 beside IPv4 on every link: host A 2001:db8:1::10 — gateway A 2001:db8:1::1 |
    /// 2001:db8::1 ==== 2001:db8::2 | 2001:db8:2::1 gateway B — host B 2001:db8:2::10, with the
    /// same default routes and forwarding as IPv4 (addresses without duplicate detection, so
    /// they are usable at once).
    pub fn add_ipv6(&self) {
        let p = &self.p;
        let addr = |ns: &str, dev: &str, a: &str| {
            ns_must(
                ns,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
                ],
            );
            must(
                "ip",
                &["-n", ns, "-6", "addr", "add", a, "dev", dev, "nodad"],
            );
        };
        addr(&self.ha, &format!("{p}a0"), "2001:db8:1::10/64");
        addr(&self.ga, &format!("{p}a1"), "2001:db8:1::1/64");
        addr(&self.ga, &self.ga_out, "2001:db8::1/64");
        addr(&self.gb, &self.gb_out, "2001:db8::2/64");
        addr(&self.gb, &format!("{p}b1"), "2001:db8:2::1/64");
        addr(&self.hb, &format!("{p}b0"), "2001:db8:2::10/64");
        for (ns, via) in [
            (&self.ha, "2001:db8:1::1"),
            (&self.hb, "2001:db8:2::1"),
            (&self.ga, "2001:db8::2"),
            (&self.gb, "2001:db8::1"),
        ] {
            must(
                "ip",
                &["-n", ns, "-6", "route", "add", "default", "via", via],
            );
        }
        for g in [&self.ga, &self.gb] {
            ns_must(g, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        }
    }

    /// Writes `conf` and starts rswan in namespace `ns`. Returns the run directory.
    pub fn start_gateway(&mut self, ns: &str, conf: &str) -> PathBuf {
        self.start_gateway_env(ns, conf, &[])
    }

    /// [`Topo::start_gateway`] with extra environment variables for `ipsec setup start` (and
    /// so the daemon), e.g. `RSWAN_SYSLOG_SOCKET`.
    pub fn start_gateway_env(&mut self, ns: &str, conf: &str, env: &[(&str, &str)]) -> PathBuf {
        let cfg = self.dir.path(&format!("{ns}.conf"));
        fs::write(&cfg, conf).unwrap();
        let secrets = self.dir.path(&format!("{ns}.secrets"));
        if !secrets.exists() {
            fs::write(&secrets, "").unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&secrets, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let rundir = self.dir.path(&format!("{ns}.run"));
        let out = Command::new("ip")
            .args(["netns", "exec", ns, ipsec_bin(), "--config"])
            .arg(&cfg)
            .arg("--secrets")
            .arg(&secrets)
            .arg("--rundir")
            .arg(&rundir)
            .args(["setup", "start"])
            .envs(env.iter().copied())
            .output()
            .expect("cannot run ipsec setup start");
        let log = fs::read_to_string(rundir.join("rswan.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "gateway in {ns} did not start: {}{}\nlog:\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.gateways.push((ns.to_string(), rundir.clone()));
        rundir
    }

    /// Runs `ipsec ARGS` against the gateway in `ns`.
    pub fn ipsec(&self, ns: &str, args: &[&str]) -> Output {
        let rundir = &self
            .gateways
            .iter()
            .find(|(n, _)| n == ns)
            .expect("no gateway in that namespace")
            .1;
        let mut a = vec![ipsec_bin(), "--rundir", rundir.to_str().unwrap()];
        a.extend_from_slice(args);
        ns_run(ns, &a)
    }

    /// Runs `ipsec ARGS` in `ns`; it must succeed; returns stdout.
    pub fn ipsec_ok(&self, ns: &str, args: &[&str]) -> String {
        let o = self.ipsec(ns, args);
        assert!(
            o.status.success(),
            "ipsec {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Both gateways' logs, `ipsec look` and `ipsec auto --status`, for failure messages.
    pub fn diag(&self) -> String {
        let mut s = String::new();
        for ns in [&self.ga, &self.gb] {
            s.push_str(&format!(
                "===== {ns} log:\n{}\n----- look:\n{}\n----- status:\n{}\n",
                self.log(ns),
                String::from_utf8_lossy(&self.ipsec(ns, &["look"]).stdout),
                String::from_utf8_lossy(&self.ipsec(ns, &["auto", "--status"]).stdout),
            ));
        }
        s
    }

    /// The daemon log of the gateway in `ns`.
    pub fn log(&self, ns: &str) -> String {
        self.gateways
            .iter()
            .find(|(n, _)| n == ns)
            .map(|(_, r)| fs::read_to_string(r.join("rswan.log")).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Runs `ipsec setup OP` (`restart`, `stop`, `start`) for the gateway in `ns` with the
    /// configuration, secrets and run directory [`Topo::start_gateway`] gave it.
    pub fn setup_op(&self, ns: &str, op: &str) -> Output {
        let rundir = &self
            .gateways
            .iter()
            .find(|(n, _)| n == ns)
            .expect("no gateway in that namespace")
            .1;
        let cfg = self.dir.path(&format!("{ns}.conf"));
        let secrets = self.dir.path(&format!("{ns}.secrets"));
        ns_run(
            ns,
            &[
                ipsec_bin(),
                "--config",
                cfg.to_str().unwrap(),
                "--secrets",
                secrets.to_str().unwrap(),
                "--rundir",
                rundir.to_str().unwrap(),
                "setup",
                op,
            ],
        )
    }

    /// Keeps a background process to kill at teardown.
    pub fn adopt(&mut self, c: Child) {
        self.children.push(c);
    }

    /// A third host on the public side: namespace `{p}rw` at [`ROAD_WARRIOR`]/24 on a link to
    /// gateway A (198.51.100.1, which forwards), default route via gateway A, so it reaches
    /// gateway B (and B it) across A's public link. Returns the namespace name.
    pub fn add_road_warrior(&mut self) -> String {
        let (p, ns) = (&self.p, format!("{}rw", self.p));
        must("ip", &["netns", "add", &ns]);
        self.extra_ns.push(ns.clone());
        let (dev, peer) = (format!("{p}r0"), format!("{p}r1"));
        must(
            "ip",
            &[
                "link", "add", &dev, "netns", &ns, "type", "veth", "peer", "name", &peer, "netns",
                &self.ga,
            ],
        );
        for (n, d, a) in [
            (&ns, &dev, &format!("{ROAD_WARRIOR}/24")),
            (&self.ga, &peer, &"198.51.100.1/24".to_string()),
        ] {
            must("ip", &["-n", n, "addr", "add", a, "dev", d]);
            must("ip", &["-n", n, "link", "set", d, "up"]);
        }
        must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        must(
            "ip",
            &["-n", &ns, "route", "add", "default", "via", "198.51.100.1"],
        );
        ns
    }
}

/// The address of the host [`Topo::add_road_warrior`] adds.
pub const ROAD_WARRIOR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

impl Drop for Topo {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (ns, rundir) in &self.gateways {
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, ipsec_bin(), "--rundir"])
                .arg(rundir)
                .args(["setup", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // If `setup stop` could not run (e.g. the ipsec binary was being rebuilt by a
            // concurrent cargo build), the daemon would outlive its namespaces: kill it.
            let pid = fs::read_to_string(rundir.join("pluto.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                // Only if that pid is still this gateway's daemon (not a reused pid).
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if contains(&cmdline, rundir.to_string_lossy().as_bytes()) {
                    // SAFETY: kill(2) on our own gateway's daemon; it only sends a signal.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        for n in [&self.ha, &self.ga, &self.gb, &self.hb]
            .into_iter()
            .chain(&self.extra_ns)
        {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Moves the calling thread into network namespace `ns` (for in-process sockets).
pub fn enter_netns(ns: &str) {
    let f = fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a new thread inside `ns` and returns its result.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns);
        f()
    })
    .join()
    .expect("thread in netns panicked")
}

/// Pings `dst` from `ns`; true if at least `want` of `count` replies came back.
pub fn ping(ns: &str, dst: &str, count: u32, want: u32) -> bool {
    ping_replies(ns, dst, count, 2).0 >= want
}

/// Pings `dst` from `ns` (`count` requests 0.2 s apart, waiting `wait_s` seconds for each
/// reply); returns the number of replies and ping's output.
pub fn ping_replies(ns: &str, dst: &str, count: u32, wait_s: u32) -> (u32, String) {
    let o = ns_run(
        ns,
        &[
            "ping",
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            &wait_s.to_string(),
            dst,
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let got = text
        .lines()
        .find_map(|l| {
            l.split(',')
                .find(|p| p.contains("received"))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse::<u32>().ok())
        })
        .unwrap_or(0);
    (got, text)
}

/// A deterministic pseudo-random payload of `len` bytes containing `marker` every 4 KiB.
pub fn payload(len: usize, marker: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while v.len() < len {
        if v.len() % 4096 == 0 {
            v.extend_from_slice(marker);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
    }
    v.truncate(len);
    v
}

/// FNV-1a 64-bit hash (enough to compare transfers).
pub fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Sends `data` over TCP from namespace `from` to `to_addr:port` served in namespace `to`;
/// returns (sent hash, received hash, bytes received).
pub fn tcp_transfer(
    from: &str,
    to: &str,
    to_addr: impl Into<std::net::IpAddr>,
    port: u16,
    data: Vec<u8>,
) -> (u64, u64, usize) {
    let to_addr: std::net::IpAddr = to_addr.into();
    let (tx, rx) = std::sync::mpsc::channel();
    let to_ns = to.to_string();
    let server = std::thread::spawn(move || {
        enter_netns(&to_ns);
        let any: std::net::IpAddr = if to_addr.is_ipv6() {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        let l = TcpListener::bind(std::net::SocketAddr::new(any, port)).unwrap();
        tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    });
    rx.recv().unwrap();
    let sent = hash(&data);
    let from_ns = from.to_string();
    in_netns(&from_ns, move || {
        let mut s = TcpStream::connect_timeout(
            &std::net::SocketAddr::new(to_addr, port),
            Duration::from_secs(10),
        )
        .expect("connect through tunnel");
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&data).expect("send through tunnel");
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let got = server.join().unwrap();
    (sent, hash(&got), got.len())
}

/// A packet capture running in a namespace.
pub struct Capture {
    child: Child,
    /// The pcap file.
    pub file: PathBuf,
}

impl Capture {
    /// Starts `tcpdump -i dev -w file` in `ns` and waits until it is listening.
    pub fn start(ns: &str, dev: &str, file: &Path) -> Capture {
        let errfile = file.with_extension("err");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "tcpdump",
                "-Z",
                "root",
                "--immediate-mode",
                "-B",
                "65536",
                "-i",
                dev,
                "-nn",
                "-U",
                "-s",
                "0",
                "-w",
            ])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&errfile).unwrap())
            .spawn()
            .expect("tcpdump");
        // tcpdump prints "listening on" to stderr once ready.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10)
            && !fs::read_to_string(&errfile)
                .unwrap_or_default()
                .contains("listening")
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture {
            child,
            file: file.to_path_buf(),
        }
    }

    /// Stops the capture and returns tcpdump's one-line summaries and the raw file bytes.
    pub fn stop(mut self) -> (Vec<String>, Vec<u8>) {
        std::thread::sleep(Duration::from_millis(300));
        // SIGINT so tcpdump flushes and exits cleanly.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let text = must("tcpdump", &["-nn", "-r", self.file.to_str().unwrap()]);
        let raw = fs::read(&self.file).unwrap_or_default();
        (text.lines().map(str::to_owned).collect(), raw)
    }
}

/// True if `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A manual net-to-net connection between the topology's gateways with extra `body` lines.
pub fn manual_conf(body: &str) -> String {
    format!(
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\nconn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n\tspibase=0x200\n\tauto=manual\n{body}"
    )
}

/// RX dropped of `dev` in `ns` (from sysfs).
pub fn rx_dropped(ns: &str, dev: &str) -> u64 {
    ns_must(
        ns,
        &[
            "cat",
            &format!("/sys/class/net/{dev}/statistics/rx_dropped"),
        ],
    )
    .trim()
    .parse()
    .unwrap()
}

/// Polls `f` every 100 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
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

/// A new [`Topo`] with both gateways running: each one's `ipsec.secrets` written, gateway B
/// started first with `conf_b` (so it answers A's first message), then gateway A with
/// `conf_a`; nothing initiated yet.
pub fn gateway_pair(conf_a: &str, conf_b: &str, secrets_a: &str, secrets_b: &str) -> Topo {
    let mut t = Topo::new();
    let (ga, gb) = (t.ga.clone(), t.gb.clone());
    write_secrets(&t, &ga, secrets_a);
    write_secrets(&t, &gb, secrets_b);
    t.start_gateway(&gb, conf_b);
    t.start_gateway(&ga, conf_a);
    t
}

/// Writes `text` as the `ipsec.secrets` (mode 0600) of the gateway `ns` is going to run.
pub fn write_secrets(t: &Topo, ns: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let f = t.dir.path(&format!("{ns}.secrets"));
    std::fs::write(&f, text).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `newest IPsec SA: #N` of the first conn listing one in an `ipsec auto --status` report.
pub fn newest_ipsec(st: &str) -> u64 {
    newest(st, "newest IPsec SA: #")
}

/// `newest ISAKMP SA: #N` (IKEv1 ISAKMP SA or IKEv2 IKE SA) of the first conn listing one in
/// an `ipsec auto --status` report.
pub fn newest_isakmp(st: &str) -> u64 {
    newest(st, "newest ISAKMP SA: #")
}

fn newest(st: &str, label: &str) -> u64 {
    st.lines()
        .find_map(|l| l.split(label).nth(1))
        .and_then(|r| r.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label}N in\n{st}"))
}

/// `/etc/netns/NS/{hosts,resolv.conf}` for test namespaces (`ip netns exec` bind-mounts them
/// over `/etc`): the given hosts lines, and a name server on loopback that nobody runs, so an
/// unknown name fails at once instead of after timeouts. Removed on drop, also when a test
/// panics.
pub struct NetnsEtc(Vec<PathBuf>);

impl NetnsEtc {
    /// Writes `hosts` as `/etc/hosts` of each namespace in `namespaces`.
    pub fn hosts(namespaces: &[&str], hosts: &str) -> NetnsEtc {
        let mut etc = NetnsEtc(Vec::new());
        for ns in namespaces {
            let d = PathBuf::from(format!("/etc/netns/{ns}"));
            fs::create_dir_all(&d).unwrap();
            etc.0.push(d.clone());
            fs::write(d.join("hosts"), hosts).unwrap();
            fs::write(d.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        }
        etc
    }
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// Whether a tcpdump line is IPv6 link chatter (neighbour and router discovery, multicast
/// listener reports) that a capture of a link may carry besides the traffic under test.
pub fn is_ipv6_link_chatter(line: &str) -> bool {
    [
        "ICMP6, neighbor",
        "ICMP6, router",
        "ICMP6, multicast listener",
    ]
    .iter()
    .any(|k| line.contains(k))
}
