//! The datapath threads: one reader per TUN queue, one per raw socket (ESP, AH) and one for UDP
//! 4500. Each reader runs its batches to completion — transform through the sans-IO core, then
//! write (`sendmmsg`/UDP GSO to the physical interface, coalesced writes into ipsecN) — on its
//! own thread: no hand-offs between threads (docs/performance.md measured those as the largest
//! cost on small machines).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::klips::{
    gso_run, Decision, DevInfo, DropReason, Emit, Klips, PacketBuf, Parsed, Transmit, Verdict, Work,
};
use crate::sadb::SaRef;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::offload::{self, GroPlan, GroWrite, VnetHdr, VNET_HDR_LEN};

use super::net::{
    LlArrays, MsgArrays, MsgArrays6, PacketSender, RawReceiver, RawReceiver6, RawSender, UdpMeta,
    UdpReceiver6, UdpSock, MAX_PKT,
};
use super::tun::TunQueue;

/// Frames or datagrams read per batch (one `recvmmsg`, or TUN reads until the queue is empty).
pub const BATCH: usize = 64;

/// Packet buffers of a TUN reader: a batch's segments after TSO splitting.
const OUT_BUFS: usize = 256;

/// A TUN reader stops reading frames for a batch when fewer buffers than this are free (room
/// for one more 64 KB super-packet cut at a 536-byte MSS).
const OUT_RESERVE: usize = 128;

/// Seconds on the daemon's monotonic clock, the time base handed to the sans-IO cores.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock(Instant::now())
    }

    /// Seconds since the clock started.
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_secs()
    }

    /// Milliseconds since the clock started (the keying daemon's time base).
    pub fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// One ipsecN device with its TUN queues and the raw socket for its physical interface.
#[derive(Debug)]
pub struct DevRuntime {
    /// Facts for the sans-IO core.
    pub info: DevInfo,
    /// The TUN queues (one reader thread each).
    pub queues: Vec<TunQueue>,
    /// Sender bound to the physical interface.
    pub sender: Arc<RawSender>,
}

/// An IKE datagram that arrived on UDP 4500 (for the keying daemon).
pub type IkeDatagram = super::keying::IkeIn;

/// Handle on the running datapath threads.
#[derive(Debug)]
pub struct Datapath {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Datapath {
    /// Asks every thread to stop and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn spawn<F: FnOnce() + Send + 'static>(name: String, f: F) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

/// What every reader needs to write results: the physical senders (raw socket per device,
/// UDP GSO), the TUN queues, the local sender for ICMP errors, the keying daemon's channel.
#[derive(Clone)]
struct Outputs {
    k: Arc<Klips>,
    senders: Vec<Arc<RawSender>>,
    ifx: Vec<u32>,
    udp: Option<Arc<UdpSock>>,
    local: Arc<RawSender>,
    tun: Vec<Arc<TunQueue>>,
    ike_tx: Option<Sender<IkeDatagram>>,
    /// Per device, with `espsend=packet`: the `AF_PACKET` sender and the physical interface's
    /// name (for its neighbour table).
    pkt: Vec<Option<(Arc<PacketSender>, String)>>,
}

/// One reader thread's writing side, with its reused arrays.
struct Sink {
    o: Outputs,
    msgs: MsgArrays,
    /// Indices of packets waiting for one `sendmmsg`, all for device `raw_dev`.
    raw: Vec<usize>,
    raw_dev: usize,
    /// Whether the packets in `raw` are ESP/AH the core built (they may leave by `AF_PACKET`).
    raw_ours: bool,
    gro: GroPlan,
    /// `espsend=packet`: arrays, the (index, next-hop MAC) of the packets leaving that way,
    /// and the next-hop MACs looked up (each again after a second).
    ll: LlArrays,
    via_ll: Vec<(usize, [u8; 6])>,
    macs: HashMap<Ipv4Addr, (Option<[u8; 6]>, Instant)>,
}

/// How long a next-hop MAC looked up for `espsend=packet` is used before it is looked up again
/// (an unresolved one: a fiftieth of it).
const MAC_TTL: Duration = Duration::from_secs(1);

impl Sink {
    fn new(o: Outputs) -> Sink {
        Sink {
            o,
            msgs: MsgArrays::new(BATCH),
            raw: Vec::with_capacity(OUT_BUFS),
            raw_dev: 0,
            raw_ours: false,
            gro: GroPlan::new(),
            ll: LlArrays::new(BATCH),
            via_ll: Vec::with_capacity(OUT_BUFS),
            macs: HashMap::new(),
        }
    }

    /// The next hop's MAC for `dst` on device `dev`'s interface, if `espsend=packet` is on and
    /// the peer is a resolved neighbour there.
    fn next_hop(&mut self, dev: usize, dst: Ipv4Addr, now: Instant) -> Option<[u8; 6]> {
        let Some(Some((_, phys))) = self.o.pkt.get(dev) else {
            return None;
        };
        if let Some(&(mac, at)) = self.macs.get(&dst) {
            // An unresolved peer is looked up again soon: the raw socket's sends make the
            // kernel resolve it meanwhile.
            let ttl = if mac.is_some() { MAC_TTL } else { MAC_TTL / 50 };
            if now.duration_since(at) < ttl {
                return mac;
            }
        }
        let mac = super::net::neighbour_mac(phys, dst);
        if self.macs.len() >= 1024 {
            self.macs.clear();
        }
        self.macs.insert(dst, (mac, now));
        mac
    }

    /// Sends the packets of `raw` whose next hop resolves through the device's `AF_PACKET`
    /// socket and leaves the rest in `raw` for the raw socket.
    fn flush_ll(&mut self, bufs: &[PacketBuf], verdicts: &[Verdict]) {
        let dev = self.raw_dev;
        let Some(Some((ps, _))) = self.o.pkt.get(dev).cloned() else {
            return;
        };
        let now = Instant::now();
        self.via_ll.clear();
        let mut k = 0;
        for i in 0..self.raw.len() {
            let n = self.raw[i];
            let mac = match &verdicts[n] {
                Verdict::Send(Transmit {
                    dst: IpAddr::V4(d),
                    udp: None,
                    ..
                }) => self.next_hop(dev, *d, now),
                _ => None,
            };
            match mac {
                Some(m) => self.via_ll.push((n, m)),
                None => {
                    self.raw[k] = n;
                    k += 1;
                }
            }
        }
        self.raw.truncate(k);
        if self.via_ll.is_empty() {
            return;
        }
        let pkts = self.via_ll.iter().map(|&(n, m)| (m, bufs[n].bytes()));
        let failed = ps.send_many(&mut self.ll, pkts);
        let sent = self.via_ll.len() - failed;
        self.o
            .k
            .sent_by_packet
            .fetch_add(sent as u64, Ordering::Relaxed);
        for _ in 0..failed {
            self.o.k.drops.count(DropReason::SendFailure, false);
        }
    }

    /// Sends an outbound batch as the core decided: runs of equal-size ESP-in-UDP datagrams of
    /// one flow (what a TCP super-packet becomes) as one UDP GSO send gathered from the
    /// buffers, everything else with `sendmmsg` on the device's raw socket, in order.
    /// Only the packets `sel` picks are sent; `ours` tells that they are ESP/AH the core built
    /// (only those may leave through `espsend=packet`'s socket, never a `%pass`ed packet).
    fn transmit(
        &mut self,
        bufs: &[PacketBuf],
        verdicts: &[Verdict],
        ours: bool,
        sel: impl Fn(usize) -> bool,
    ) {
        self.raw_ours = ours;
        let mut i = 0;
        while i < verdicts.len() {
            let Verdict::Send(tx) = &verdicts[i] else {
                i += 1;
                continue;
            };
            if !sel(i) {
                i += 1;
                continue;
            }
            if self.o.udp.is_some() {
                let run = gso_run(bufs, verdicts, i, &sel);
                if let Some(seg) = run.segment_size {
                    if self.send_gso(bufs, verdicts, i, run.end, seg) {
                        i = run.end;
                        continue;
                    }
                }
            }
            if tx.dev != self.raw_dev && !self.raw.is_empty() {
                self.flush_raw(bufs, verdicts);
            }
            self.raw_dev = tx.dev;
            self.raw.push(i);
            i += 1;
        }
        self.flush_raw(bufs, verdicts);
    }

    /// One UDP GSO send of packets `i..j` (same flow, equal sizes but the last). False if it
    /// failed (the caller sends them through the raw socket instead).
    fn send_gso(
        &mut self,
        bufs: &[PacketBuf],
        verdicts: &[Verdict],
        i: usize,
        j: usize,
        seg: u16,
    ) -> bool {
        let Verdict::Send(tx) = &verdicts[i] else {
            return false;
        };
        let (Some(udp), Some(flow), std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) =
            (self.o.udp.clone(), tx.udp, tx.src, tx.dst)
        else {
            return false;
        };
        // Keep order: what went before this run leaves first.
        self.flush_raw(bufs, verdicts);
        let ifx = self.o.ifx.get(tx.dev).copied().unwrap_or(0);
        let parts = (i..j).map(|n| {
            let off = match &verdicts[n] {
                Verdict::Send(t) => t.payload_offset,
                _ => 0,
            };
            &bufs[n].bytes()[off..]
        });
        udp.send_gso_parts(
            parts,
            seg,
            src,
            ifx,
            tx.tos,
            SocketAddrV4::new(dst, flow.dport),
        )
        .is_ok()
    }

    fn flush_raw(&mut self, bufs: &[PacketBuf], verdicts: &[Verdict]) {
        if self.raw.is_empty() {
            return;
        }
        if self.raw_ours && self.o.pkt.iter().any(Option::is_some) {
            self.flush_ll(bufs, verdicts);
            if self.raw.is_empty() {
                return;
            }
        }
        let failed = match self.o.senders.get(self.raw_dev) {
            Some(s) => {
                let pkts = self.raw.iter().filter_map(|&n| match &verdicts[n] {
                    Verdict::Send(Transmit {
                        dst: std::net::IpAddr::V4(d),
                        ..
                    }) => Some((*d, bufs[n].bytes())),
                    _ => None,
                });
                let mut failed = s.send_many(&mut self.msgs, pkts);
                // IPv6 outer packets: one send each (no sendmmsg arrays for them yet).
                for &n in &self.raw {
                    if let Verdict::Send(Transmit {
                        dst: std::net::IpAddr::V6(d),
                        ..
                    }) = &verdicts[n]
                    {
                        if s.send6(*d, bufs[n].bytes()).is_err() {
                            failed += 1;
                        }
                    }
                }
                failed
            }
            None => self.raw.len(),
        };
        for _ in 0..failed {
            self.o.k.drops.count(DropReason::SendFailure, false);
        }
        self.raw.clear();
    }

    /// Writes the inner packets `bufs[b][r]` of `delivered` (device, buffer, range) into their
    /// ipsecN devices, consecutive TCP segments of a flow as one GSO super-packet whose
    /// payloads are gathered from where they were decrypted.
    fn deliver(&mut self, bufs: &[Vec<u8>], delivered: &[(usize, usize, usize, usize)]) {
        let ndev = self.o.tun.len();
        for dev in 0..ndev {
            let q = &self.o.tun[dev];
            let pkt = |k: usize| {
                let (_, b, s, e) = delivered[k];
                &bufs[b][s..e]
            };
            let mut any = false;
            for (k, d) in delivered.iter().enumerate() {
                if d.0 == dev {
                    any = true;
                    if q.offload() {
                        self.gro.push(k, pkt(k));
                    } else {
                        let _ = q.send(pkt(k));
                    }
                }
            }
            if !any || !q.offload() {
                continue;
            }
            self.gro.finish(pkt, |w| match w {
                GroWrite::Plain(k) => {
                    let _ = q.send_parts(&[0u8; VNET_HDR_LEN], [pkt(k)]);
                }
                GroWrite::Super {
                    vnet,
                    header,
                    members,
                } => {
                    let mut hb = [0u8; VNET_HDR_LEN];
                    vnet.emit(&mut hb);
                    let parts =
                        std::iter::once(header).chain(members.map(|(k, off)| &pkt(k)[off..]));
                    let _ = q.send_parts(&hb, parts);
                }
            });
        }
    }

    /// An inbound drop raises RX dropped on the device.
    fn rx_drop(&self, dev: usize) {
        if let Some(q) = self.o.tun.get(dev) {
            q.count_rx_drop();
        }
    }

    fn ike(&self, src: SocketAddr, dst: IpAddr, data: &[u8]) {
        if let Some(t) = &self.o.ike_tx {
            let _ = t.try_send(super::keying::IkeIn {
                local: SocketAddr::new(dst, 4500),
                remote: src,
                data: data.to_vec(),
            });
        }
    }

    /// Carries out the rare extra results of a batch (fragments, ICMP errors, IPComp output,
    /// replaced held packets).
    fn extras(&mut self, w: &mut Work) {
        for e in w.extra.drain(..) {
            match e {
                Emit::Net { dev, pkt } => {
                    let sent = match (self.o.senders.get(dev), dst_of(&pkt)) {
                        (Some(s), Some(dst)) => s.send(dst, &pkt).is_ok(),
                        _ => false,
                    };
                    if !sent {
                        self.o.k.drops.count(DropReason::SendFailure, false);
                    }
                }
                Emit::Tun { dev, pkt } => {
                    if let Some(q) = self.o.tun.get(dev) {
                        let _ = q.send(&pkt);
                    }
                }
                Emit::Local { pkt } => send_local(&self.o.k, &self.o.local, &pkt),
                Emit::Drop {
                    dev, inbound: true, ..
                } => self.rx_drop(dev),
                Emit::Drop { .. } => {}
                Emit::Ike { src, dst, data } => self.ike(src, dst, &data),
            }
        }
    }
}

/// Starts the threads: one reader per TUN queue, per raw socket (ESP, AH) and for UDP 4500,
/// each running its batches to completion.
pub fn start(
    klips: Arc<Klips>,
    devs: Vec<DevRuntime>,
    clock: Clock,
    udp: Option<Arc<UdpSock>>,
    udp6: Option<Arc<UdpReceiver6>>,
    ike_tx: Option<Sender<IkeDatagram>>,
    esp_packet: bool,
) -> io::Result<Datapath> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    // `espsend=packet`: an AF_PACKET socket per physical interface for the ESP we build.
    let mut pkt = Vec::with_capacity(devs.len());
    for d in &devs {
        pkt.push(if esp_packet {
            let ifx = super::netlink::ifindex(&d.info.phys)?;
            Some((Arc::new(PacketSender::new(ifx)?), d.info.phys.clone()))
        } else {
            None
        });
    }
    let outputs = Outputs {
        pkt,
        k: klips.clone(),
        senders: devs.iter().map(|d| d.sender.clone()).collect(),
        // Interface index 0 (unknown): no pinning of the GSO sends then.
        ifx: devs
            .iter()
            .map(|d| super::netlink::ifindex(&d.info.phys).unwrap_or(0))
            .collect(),
        udp: udp.clone(),
        // ICMP errors the gateway originates leave through the host's own routing.
        local: Arc::new(RawSender::new(None)?),
        tun: devs
            .iter()
            .map(|d| d.queues[0].try_clone().map(Arc::new))
            .collect::<io::Result<_>>()?,
        ike_tx,
    };
    // Segment buffers hold one packet of the largest ipsecN MTU.
    let seg_cap = devs
        .iter()
        .map(|d| d.info.mtu)
        .max()
        .unwrap_or(1500)
        .max(1500)
        + 64;

    for (i, d) in devs.into_iter().enumerate() {
        for (qi, q) in d.queues.into_iter().enumerate() {
            let o = outputs.clone();
            let stop = stop.clone();
            threads.push(spawn(format!("tun-r{i}.{qi}"), move || {
                tun_reader(o, i, q, seg_cap, clock, stop)
            })?);
        }
    }
    for proto in [ipv4::proto::ESP, ipv4::proto::AH] {
        let sock = RawReceiver::new(proto)?;
        set_timeout(sock.fd())?;
        let o = outputs.clone();
        let stop = stop.clone();
        threads.push(spawn(format!("raw-r{proto}"), move || {
            raw_reader(sock, o, clock, stop)
        })?);
    }
    // IPv6 ESP and AH, where the kernel has IPv6.
    for proto in [ipv4::proto::ESP, ipv4::proto::AH] {
        let Ok(sock) = RawReceiver6::new(proto) else {
            continue;
        };
        set_timeout(sock.fd())?;
        let o = outputs.clone();
        let stop = stop.clone();
        threads.push(spawn(format!("raw6-r{proto}"), move || {
            raw6_reader(sock, o, clock, stop)
        })?);
    }
    // ESP-in-UDP (and NAT-T IKE) from IPv6 peers, beside the IPv4 socket.
    if udp.is_some() {
        if let Some(sock) = udp6 {
            set_timeout(sock.fd())?;
            sock.enable_gro();
            let o = outputs.clone();
            let stop = stop.clone();
            threads.push(spawn("udp6-r4500".into(), move || {
                udp6_reader(sock, o, clock, stop)
            })?);
        }
    }
    if let Some(u) = udp {
        set_timeout(u.fd())?;
        u.enable_gro();
        let o = outputs.clone();
        let stop = stop.clone();
        threads.push(spawn("udp-r4500".into(), move || {
            udp_reader(u, o, clock, stop)
        })?);
    }
    Ok(Datapath { stop, threads })
}

fn set_timeout(fd: i32) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: SO_RCVTIMEO takes a struct timeval; the pointer and size describe `tv`.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The destination of an IPv4 or IPv6 packet.
pub(crate) fn dst_of(pkt: &[u8]) -> Option<std::net::IpAddr> {
    match pkt.first()? >> 4 {
        4 => Ipv4Packet::new_checked(pkt).ok().map(|p| p.dst().into()),
        6 => crate::wire::ipv6::Ipv6Packet::new_checked(pkt)
            .ok()
            .map(|p| p.dst().into()),
        _ => None,
    }
}

/// Sends a packet the gateway originates (an ICMP or ICMPv6 error) through the host's routing.
pub(crate) fn send_local(k: &Klips, local: &RawSender, pkt: &[u8]) {
    let sent = dst_of(pkt).is_some_and(|d| local.send(d, pkt).is_ok());
    if !sent {
        k.drops.count(DropReason::SendFailure, false);
    }
}

/// One TUN queue's reader: reads frames until the queue is empty (or a batch is full), cuts
/// TSO super-packets into segment buffers (the one copy), runs them through the core in place
/// and sends them. A lone packet goes out at once: nothing waits for a batch to fill.
fn tun_reader(
    o: Outputs,
    dev: usize,
    q: TunQueue,
    seg_cap: usize,
    clock: Clock,
    stop: Arc<AtomicBool>,
) {
    let k = o.k.clone();
    let mut sink = Sink::new(o);
    let mut rng = StdRng::from_entropy();
    let mut work = Work::default();
    let fd = q.fd();
    // SAFETY: fcntl on a descriptor we own, setting O_NONBLOCK.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let mut rx = vec![0u8; VNET_HDR_LEN + MAX_PKT];
    let mut pool: Vec<PacketBuf> = (0..OUT_BUFS).map(|_| PacketBuf::new(seg_cap)).collect();
    let mut verdicts: Vec<Verdict> = Vec::with_capacity(OUT_BUFS);
    let mut tunnel: Vec<Option<(SaRef, Parsed)>> = Vec::with_capacity(OUT_BUFS);
    let mut mine = vec![false; OUT_BUFS];
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd for at most 200 ms.
        let r = unsafe { libc::poll(&mut pfd, 1, 200) };
        if r <= 0 {
            continue;
        }
        let mut n = 0;
        let mut frames = 0;
        while frames < BATCH && n + OUT_RESERVE <= OUT_BUFS {
            let len = match q.recv(&mut rx) {
                Ok(len) if len > 0 => len,
                _ => break,
            };
            frames += 1;
            let got = if q.offload() {
                // A TCP super-packet (TSO) becomes MTU-size segments here.
                VnetHdr::parse(&rx[..len])
                    .ok_or(offload::SplitError::Offload(
                        offload::OffloadError::Malformed,
                    ))
                    .and_then(|h| offload::split_into(&h, &rx[VNET_HDR_LEN..len], &mut pool[n..]))
            } else if pool[n].fill(&rx[..len]) {
                Ok(1)
            } else {
                Err(offload::SplitError::NoRoom)
            };
            match got {
                Ok(c) => n += c,
                Err(offload::SplitError::NoRoom) => k.drops.count(DropReason::Oversize, false),
                Err(_) => k.drops.count(DropReason::NoEroute, false),
            }
        }
        if n == 0 {
            continue;
        }
        let t = k.tables();
        let now = clock.now();
        // One parse and one lookup per packet; shunts are done at once, packets for an SA
        // group wait (with their group and parsed header) for the group's transmit lock.
        verdicts.clear();
        tunnel.clear();
        for b in &mut pool[..n] {
            match k.outbound_classify(&t, dev, b, &mut work) {
                Decision::Done(v) => {
                    verdicts.push(v);
                    tunnel.push(None);
                }
                Decision::Tunnel { sa, h } => {
                    verdicts.push(Verdict::Done);
                    tunnel.push(Some((sa.clone(), h)));
                }
            }
        }
        sink.transmit(&pool[..n], &verdicts, false, |i| tunnel[i].is_none());
        // Group by group: under its transmit lock, number, encrypt and send its packets, so
        // readers of other queues of this device never interleave its sequence numbers.
        for i in 0..n {
            let Some((head, _)) = &tunnel[i] else {
                continue;
            };
            let head = head.group[0].clone();
            let _tx = head.tx.lock().unwrap_or_else(|p| p.into_inner());
            for j in i..n {
                let Some((sa, h)) = &tunnel[j] else {
                    continue;
                };
                if !Arc::ptr_eq(&sa.group[0], &head) {
                    continue;
                }
                let (sa, h) = (sa.clone(), *h);
                verdicts[j] =
                    k.outbound_finish(&t, &sa, &h, dev, &mut pool[j], now, &mut rng, &mut work);
                mine[j] = true;
                tunnel[j] = None;
            }
            sink.transmit(&pool[..n], &verdicts, true, |x| mine[x]);
            mine[i..n].iter_mut().for_each(|m| *m = false);
        }
        drop(t);
        sink.extras(&mut work);
    }
}

/// Handles an inbound verdict for the packet at `bufs[b][base..]`: remembers a delivery, raises
/// RX dropped, or passes IKE on.
fn inbound_result(
    sink: &Sink,
    v: Verdict,
    b: usize,
    base: usize,
    data: &[u8],
    delivered: &mut Vec<(usize, usize, usize, usize)>,
) {
    match v {
        Verdict::Deliver { dev, at } => delivered.push((dev, b, base + at.start, base + at.end)),
        Verdict::Drop {
            dev, inbound: true, ..
        } => sink.rx_drop(dev),
        Verdict::Ike { src, dst, at } => sink.ike(src, dst, &data[at]),
        _ => {}
    }
}

/// The ESP or AH raw socket's reader: `recvmmsg`, decryption in the receive buffers, delivery
/// into ipsecN gathered from there.
fn raw_reader(sock: RawReceiver, o: Outputs, clock: Clock, stop: Arc<AtomicBool>) {
    let mut msgs = MsgArrays::new(BATCH);
    socket_reader(o, clock, stop, MAX_PKT, |bufs, lens, metas| {
        metas.clear();
        sock.recv_with(&mut msgs, bufs, lens)
    });
}

/// The IPv6 ESP or AH raw socket's reader: as [`raw_reader`], each packet's IPv6 header rebuilt
/// in front of it.
fn raw6_reader(sock: RawReceiver6, o: Outputs, clock: Clock, stop: Arc<AtomicBool>) {
    const H: usize = crate::wire::ipv6::HEADER_LEN;
    let mut msgs = MsgArrays6::new(BATCH);
    // Their addresses are in the rebuilt headers: none go to the loop, which then takes each
    // buffer as one raw packet.
    let mut addrs = Vec::with_capacity(BATCH);
    socket_reader(o, clock, stop, H + MAX_PKT, |bufs, lens, metas| {
        metas.clear();
        sock.recv_with(&mut msgs, bufs, lens, &mut addrs)
    });
}

/// The UDP 4500 reader: `recvmmsg` with UDP GRO (one buffer may hold many datagrams of one
/// flow), decryption in place, delivery gathered from the buffers; IKE goes to Pluto.
fn udp_reader(sock: Arc<UdpSock>, o: Outputs, clock: Clock, stop: Arc<AtomicBool>) {
    let mut msgs = MsgArrays::new(BATCH);
    socket_reader(o, clock, stop, MAX_PKT, |bufs, lens, metas| {
        sock.recv_with(&mut msgs, bufs, lens, metas)
    });
}

/// The IPv6 UDP 4500 reader, as [`udp_reader`].
fn udp6_reader(sock: Arc<UdpReceiver6>, o: Outputs, clock: Clock, stop: Arc<AtomicBool>) {
    let mut msgs = MsgArrays6::new(BATCH);
    socket_reader(o, clock, stop, MAX_PKT, |bufs, lens, metas| {
        sock.recv_with(&mut msgs, bufs, lens, metas)
    });
}

/// The loop of every socket reader: `recv` fills buffers of `buf_len` bytes (lengths in
/// `lens`); with UDP metadata in `metas` each buffer is ESP-in-UDP (with UDP GRO, several
/// datagrams of [`UdpMeta::seg`] bytes each), without it one raw ESP/AH packet. Each goes
/// through the core in place, under one table view per batch, and is delivered into ipsecN
/// gathered from the buffers.
fn socket_reader(
    o: Outputs,
    clock: Clock,
    stop: Arc<AtomicBool>,
    buf_len: usize,
    mut recv: impl FnMut(&mut [Vec<u8>], &mut Vec<usize>, &mut Vec<UdpMeta>) -> io::Result<usize>,
) {
    let k = o.k.clone();
    let mut sink = Sink::new(o);
    let mut work = Work::default();
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; buf_len]).collect();
    let mut lens = Vec::with_capacity(BATCH);
    let mut metas = Vec::with_capacity(BATCH);
    let mut delivered = Vec::with_capacity(BATCH * 8);
    while !stop.load(Ordering::Relaxed) {
        let Ok(got) = recv(&mut bufs, &mut lens, &mut metas) else {
            continue;
        };
        let t = k.tables();
        let now = clock.now();
        delivered.clear();
        for b in 0..got {
            let len = lens[b];
            let Some(m) = metas.get(b).copied() else {
                let v = k.inbound_buf(&t, &mut bufs[b][..len], now, &mut work);
                inbound_result(&sink, v, b, 0, &bufs[b][..len], &mut delivered);
                continue;
            };
            // With UDP GRO one buffer holds several datagrams of `seg` bytes each.
            let seg = match m.seg {
                0 => len.max(1),
                s => s,
            };
            let mut off = 0;
            while off < len {
                let end = (off + seg).min(len);
                let d = &mut bufs[b][off..end];
                let v = k.inbound_udp_buf(&t, m.src, m.dst, d, now, &mut work);
                inbound_result(&sink, v, b, off, &bufs[b][off..end], &mut delivered);
                off = end;
            }
        }
        drop(t);
        sink.deliver(&bufs, &delivered);
        sink.extras(&mut work);
    }
}
