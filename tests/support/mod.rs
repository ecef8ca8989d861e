//! Helpers shared by the datapath proof tests (bad input, shunts, interop, config errors):
//! reading `ipsec look` drop counters, polling, pcap parsing, building packets, and sending
//! raw ESP / UDP from inside a namespace.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::common::*;

/// Polls `f` every 20 ms until it returns true or `timeout` passes; returns the last result.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The drop counters listed by `ipsec look` after "drops:": (rx total, tx total, per reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drops {
    /// Inbound drops.
    pub rx: u64,
    /// Outbound drops.
    pub tx: u64,
    /// (reason text, count) for every non-zero reason.
    pub reasons: Vec<(String, u64)>,
}

impl Drops {
    /// The count for `reason` (0 if not listed).
    pub fn get(&self, reason: &str) -> u64 {
        self.reasons
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

/// Parses the "drops:" section of `ipsec look` output.
pub fn parse_drops(look: &str) -> Drops {
    let mut d = Drops::default();
    let mut lines = look.lines();
    for l in lines.by_ref() {
        if let Some(rest) = l.strip_prefix("drops: ") {
            let w: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(w.len(), 4, "bad drops line: {l}");
            d.rx = w[1].parse().unwrap();
            d.tx = w[3].parse().unwrap();
            break;
        }
    }
    for l in lines {
        let Some(body) = l.strip_prefix("  ") else {
            break;
        };
        let (text, n) = body.trim_end().rsplit_once(' ').expect("reason line");
        d.reasons
            .push((text.trim().to_string(), n.parse().expect("drop count")));
    }
    d
}

/// The drop counters of the gateway in `ns`.
pub fn drops(t: &Topo, ns: &str) -> Drops {
    parse_drops(&t.ipsec_ok(ns, &["look"]))
}

/// One packet from a pcap file: the IPv4 packet (link header stripped).
pub fn pcap_ipv4(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if raw.len() < 24 {
        return out;
    }
    let le = match raw[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a pcap file"),
    };
    let u32_at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32_at(raw, 20);
    let mut off = 24;
    while off + 16 <= raw.len() {
        let incl = u32_at(raw, off + 8) as usize;
        if off + 16 + incl > raw.len() {
            // A record still being written.
            break;
        }
        let data = &raw[off + 16..off + 16 + incl];
        off += 16 + incl;
        let ip = match linktype {
            // Ethernet
            1 if data.len() > 14 && data[12..14] == [0x08, 0x00] => &data[14..],
            // Linux cooked v1
            113 if data.len() > 16 && data[14..16] == [0x08, 0x00] => &data[16..],
            // Raw IP
            101 | 228 => data,
            _ => continue,
        };
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            continue;
        }
        out.push(ip.to_vec());
    }
    out
}

/// IPv4 header fields of a packet: (protocol, src, dst, header length).
pub fn ip_fields(p: &[u8]) -> (u8, Ipv4Addr, Ipv4Addr, usize) {
    (
        p[9],
        Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        usize::from(p[0] & 0x0f) * 4,
    )
}

/// An IPv4 packet `src → dst` with `protocol` and `payload`.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    let repr = rswan::wire::ipv4::Ipv4Repr {
        src,
        dst,
        protocol,
        tos: 0,
        ttl: 64,
        ident: 0x1234,
        dont_frag: false,
        payload_len: payload.len(),
    };
    assert!(repr.emit(&mut p));
    p[20..].copy_from_slice(payload);
    p
}

/// An ICMP echo request `src → dst` carrying `data`.
pub fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8u8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let c = rswan::wire::ipv4::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4_packet(src, dst, 1, &icmp)
}

/// A UDP datagram `src:sport → dst:dport` (checksum 0) in an IPv4 packet.
pub fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + data.len());
    u.extend_from_slice(&src.port().to_be_bytes());
    u.extend_from_slice(&dst.port().to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    ipv4_packet(*src.ip(), *dst.ip(), 17, &u)
}

/// Sends each of `payloads` as the payload of an IP packet with protocol `proto` (the kernel
/// builds the header) from namespace `ns` to `dst`.
pub fn send_ip(ns: &str, proto: u8, dst: Ipv4Addr, payloads: Vec<Vec<u8>>) {
    in_netns(ns, move || {
        let s = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(proto))),
        )
        .expect("raw socket");
        // Let the kernel fragment over-long datagrams.
        s.set_mtu_discover_dont().ok();
        for p in payloads {
            s.send_to(&p, &SockAddr::from(SocketAddrV4::new(dst, 0)))
                .expect("send raw");
        }
    });
}

/// Sends each of `datagrams` over UDP from namespace `ns` to `dst`.
pub fn send_udp(ns: &str, dst: SocketAddrV4, datagrams: Vec<Vec<u8>>) {
    in_netns(ns, move || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("udp socket");
        for d in datagrams {
            s.send_to(&d, dst).expect("send udp");
        }
    });
}

trait MtuDont {
    fn set_mtu_discover_dont(&self) -> std::io::Result<()>;
}

impl MtuDont for Socket {
    fn set_mtu_discover_dont(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let v: libc::c_int = libc::IP_PMTUDISC_DONT;
        // SAFETY: IP_MTU_DISCOVER takes an int; the pointer and size describe `v`.
        let r = unsafe {
            libc::setsockopt(
                self.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                &v as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// Decodes a `0x…` hex key.
pub fn key(hex: &str) -> Vec<u8> {
    hex::decode(hex.trim_start_matches("0x")).unwrap()
}

/// True if the daemon in `ns` answers and its log shows no panic.
pub fn daemon_alive(t: &Topo, ns: &str) -> bool {
    t.ipsec(ns, &["look"]).status.success() && !t.log(ns).contains("panicked")
}

/// A packet capture (tcpdump in `--immediate-mode`, so even a capture of a few packets that is
/// stopped right away has them on disk).
pub struct Cap {
    child: std::process::Child,
    /// The pcap file.
    pub file: std::path::PathBuf,
}

impl Cap {
    /// Starts `tcpdump -i dev -w file [filter]` in `ns` and waits until it is listening.
    pub fn start(ns: &str, dev: &str, file: &std::path::Path, filter: &[&str]) -> Cap {
        let errfile = file.with_extension("err");
        let child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "tcpdump",
                "-Z",
                "root",
                "--immediate-mode",
            ])
            .args(["-i", dev, "-nn", "-U", "-s", "0", "-w"])
            .arg(file)
            .args(filter)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&errfile).unwrap())
            .spawn()
            .expect("tcpdump");
        let ok = wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&errfile)
                .unwrap_or_default()
                .contains("listening")
        });
        assert!(ok, "tcpdump did not start");
        Cap {
            child,
            file: file.to_path_buf(),
        }
    }

    /// The IPv4 packets written so far (the capture keeps running).
    pub fn so_far(&self) -> Vec<Vec<u8>> {
        pcap_ipv4(&std::fs::read(&self.file).unwrap_or_default())
    }

    /// Waits up to `timeout` until `pred` holds for the packets captured so far.
    pub fn wait(&self, timeout: Duration, pred: impl Fn(&[Vec<u8>]) -> bool) -> bool {
        wait_for(timeout, || pred(&self.so_far()))
    }

    /// Stops the capture; returns the IPv4 packets captured.
    pub fn stop(mut self) -> Vec<Vec<u8>> {
        // Packets already sent are on the wire; let tcpdump write the last ones.
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        pcap_ipv4(&std::fs::read(&self.file).unwrap_or_default())
    }

    /// tcpdump's one-line summaries of the capture file.
    pub fn text(file: &std::path::Path) -> Vec<String> {
        must("tcpdump", &["-nn", "-r", file.to_str().unwrap()])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Cap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pings `dst` from `ns` (`count` requests 0.2 s apart, waiting 1 s for late replies); returns
/// the number of replies and ping's output.
pub fn ping_out(ns: &str, dst: &str, count: u32) -> (u32, String) {
    ping_replies(ns, dst, count, 1)
}

/// A UDP listener bound inside a namespace, collecting datagrams on a background thread.
pub struct UdpSink {
    rx: std::sync::mpsc::Receiver<(std::net::SocketAddr, Vec<u8>)>,
}

impl UdpSink {
    /// Binds `0.0.0.0:port` in `ns`.
    pub fn bind(ns: &str, port: u16) -> UdpSink {
        Self::bind_at(ns, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())
    }

    /// Binds `[::]:port` in `ns` (IPv6 only).
    pub fn bind6(ns: &str, port: u16) -> UdpSink {
        Self::bind_at(
            ns,
            std::net::SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, port, 0, 0).into(),
        )
    }

    fn bind_at(ns: &str, at: std::net::SocketAddr) -> UdpSink {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (tx, rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        std::thread::spawn(move || {
            enter_netns(&ns);
            let s = UdpSocket::bind(at).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = vec![0u8; 65536];
            loop {
                match s.recv_from(&mut buf) {
                    Ok((n, a)) => {
                        if tx.send((a, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(_) => {
                        // Timeout: stop once the test has dropped the sink.
                        let none = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into();
                        if tx.send((none, Vec::new())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        ready_rx.recv().unwrap();
        UdpSink { rx }
    }

    /// Datagrams received within `wait` (the whole time is waited out, to catch extras).
    pub fn collect(&self, wait: Duration) -> Vec<Vec<u8>> {
        let t0 = Instant::now();
        let mut v = Vec::new();
        while let Some(left) = wait.checked_sub(t0.elapsed()) {
            match self.rx.recv_timeout(left) {
                Ok((a, d)) if a.port() != 0 => v.push(d),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        v
    }

    /// Waits up to `timeout` for `n` datagrams; returns what arrived.
    pub fn wait_n(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let t0 = Instant::now();
        let mut v = Vec::new();
        while v.len() < n {
            let Some(left) = timeout.checked_sub(t0.elapsed()) else {
                break;
            };
            match self.rx.recv_timeout(left) {
                Ok((a, d)) if a.port() != 0 => v.push(d),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        v
    }
}

/// Sends UDP datagrams from `ns` (from one socket, so one source port) to `dst`, returning the
/// source port used.
pub fn send_udp_from(
    ns: &str,
    dst: impl Into<std::net::SocketAddr>,
    datagrams: Vec<Vec<u8>>,
) -> u16 {
    let dst: std::net::SocketAddr = dst.into();
    in_netns(ns, move || {
        let any = if dst.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let s = UdpSocket::bind(any).expect("udp socket");
        for d in datagrams {
            s.send_to(&d, dst).expect("send udp");
        }
        s.local_addr().unwrap().port()
    })
}
