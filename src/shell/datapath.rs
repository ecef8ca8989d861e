//! The datapath threads: one reader per TUN queue, one per raw socket (ESP, AH) and one for UDP
//! 4500. Each reader runs its batches to completion — transform through the sans-IO core, then
//! write (`sendmmsg`/UDP GSO to the physical interface, coalesced writes into ipsecN) — on its
//! own thread: no hand-offs between threads (docs/performance.md measured those as the largest
//! cost on small machines).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::klips::{DevInfo, DropReason, Emit, Klips};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::offload::{self, Coalescer, OffloadError, VnetHdr, VNET_HDR_LEN};

use super::net::{RawReceiver, RawSender, UdpSock, MAX_PKT};
use super::tun::TunQueue;

/// Packets per batch.
pub const BATCH: usize = 64;

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

/// A batch of (destination, packet) for one physical sender.
type NetBatch = Vec<(Ipv4Addr, Vec<u8>)>;

enum Job {
    Out {
        dev: usize,
        pkt: Vec<u8>,
    },
    In(Vec<u8>),
    InUdp {
        src: SocketAddrV4,
        dst: Ipv4Addr,
        pkt: Vec<u8>,
    },
}

enum TunOut {
    Pkt(Vec<u8>),
    RxDrop,
}

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

/// Writes transformed packets to one physical interface (raw socket, UDP GSO for ESP-in-UDP).
struct NetWriter {
    k: Arc<Klips>,
    sender: Arc<RawSender>,
    gso: Option<(Arc<UdpSock>, u32)>,
    raw: NetBatch,
}

impl NetWriter {
    fn write(&mut self, batch: NetBatch) {
        let failed = match &self.gso {
            Some((u, ifx)) => send_with_gso(&self.sender, u, *ifx, batch, &mut self.raw),
            None => self.sender.send_batch(&batch),
        };
        for _ in 0..failed {
            self.k.drops.count(DropReason::SendFailure, false);
        }
    }
}

/// Writes decrypted packets (coalesced into TCP super-packets when offloads are on) and
/// counted drops to one ipsecN device.
struct TunWriter {
    q: TunQueue,
    gro: Coalescer,
}

impl TunWriter {
    fn write(&mut self, batch: Vec<TunOut>) {
        let q = &self.q;
        for o in batch {
            match o {
                TunOut::Pkt(p) if q.offload() => self.gro.push(p),
                TunOut::Pkt(p) => {
                    let _ = q.send(&p);
                }
                TunOut::RxDrop => q.count_rx_drop(),
            }
        }
        // Consecutive TCP segments of one flow go to the kernel as one super-packet.
        self.gro.finish(|h, p| {
            let mut hb = [0u8; VNET_HDR_LEN];
            h.emit(&mut hb);
            let _ = q.send_gso(&hb, &p);
        });
    }
}

/// What a reader thread runs its batches through: the sans-IO core, then the writers, all on
/// the reader's own thread (run to completion: no hand-offs between threads).
struct Runner {
    k: Arc<Klips>,
    rng: StdRng,
    emits: Vec<Emit>,
    net: Vec<NetBatch>,
    tun: Vec<Vec<TunOut>>,
    ike_tx: Option<Sender<IkeDatagram>>,
    local: Arc<RawSender>,
    clock: Clock,
    net_out: Vec<NetWriter>,
    tun_out: Vec<TunWriter>,
}

impl Runner {
    /// Transforms one batch and writes every result.
    fn run(&mut self, batch: &mut Vec<Job>) {
        let now = self.clock.now();
        let k = &self.k;
        self.emits.clear();
        for job in batch.drain(..) {
            match job {
                Job::Out { dev, pkt } => k.outbound(dev, &pkt, now, &mut self.rng, &mut self.emits),
                Job::In(pkt) => k.inbound(&pkt, now, &mut self.emits),
                Job::InUdp { src, dst, pkt } => k.inbound_udp(src, dst, &pkt, now, &mut self.emits),
            }
        }
        for e in self.emits.drain(..) {
            match e {
                Emit::Net { dev, pkt } => {
                    if let (Some(v), Ok(p)) = (self.net.get_mut(dev), Ipv4Packet::new_checked(&pkt))
                    {
                        let dst = p.dst();
                        v.push((dst, pkt));
                    }
                }
                Emit::Tun { dev, pkt } => {
                    if let Some(v) = self.tun.get_mut(dev) {
                        v.push(TunOut::Pkt(pkt));
                    }
                }
                Emit::Local { pkt } => send_local(k, &self.local, &pkt),
                Emit::Drop { dev, inbound, .. } => {
                    if inbound {
                        if let Some(v) = self.tun.get_mut(dev) {
                            v.push(TunOut::RxDrop);
                        }
                    }
                }
                Emit::Ike { src, dst, data } => {
                    if let Some(t) = &self.ike_tx {
                        let _ = t.try_send(super::keying::IkeIn {
                            local: SocketAddrV4::new(dst, 4500),
                            remote: src,
                            data,
                        });
                    }
                }
            }
        }
        for (v, w) in self.net.iter_mut().zip(&mut self.net_out) {
            if !v.is_empty() {
                w.write(std::mem::take(v));
            }
        }
        for (v, w) in self.tun.iter_mut().zip(&mut self.tun_out) {
            if !v.is_empty() {
                w.write(std::mem::take(v));
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
    ike_tx: Option<Sender<IkeDatagram>>,
) -> io::Result<Datapath> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let ndev = devs.len();

    // What every writer needs, per device: the physical sender (+ UDP GSO) and a TUN queue.
    let net_parts: Vec<_> = devs
        .iter()
        .map(|d| {
            // Interface index 0 (unknown): no pinning of the GSO sends then.
            let ifx = super::netlink::ifindex(&d.info.phys).unwrap_or(0);
            let gso = udp.clone().map(|u| (u, ifx));
            (d.sender.clone(), gso)
        })
        .collect();
    let tun_queues: Vec<TunQueue> = devs
        .iter()
        .map(|d| d.queues[0].try_clone())
        .collect::<io::Result<_>>()?;
    // ICMP errors the gateway originates leave through the host's own routing.
    let local = Arc::new(RawSender::new(None)?);
    let runner = || -> io::Result<Runner> {
        let net_out = net_parts
            .iter()
            .map(|(sender, gso)| NetWriter {
                k: klips.clone(),
                sender: sender.clone(),
                gso: gso.clone(),
                raw: Vec::new(),
            })
            .collect();
        let tun_out = tun_queues
            .iter()
            .map(|q| {
                Ok(TunWriter {
                    q: q.try_clone()?,
                    gro: Coalescer::new(),
                })
            })
            .collect::<io::Result<_>>()?;
        Ok(Runner {
            k: klips.clone(),
            rng: StdRng::from_entropy(),
            emits: Vec::with_capacity(BATCH * 2),
            net: vec![Vec::new(); ndev],
            tun: (0..ndev).map(|_| Vec::new()).collect(),
            ike_tx: ike_tx.clone(),
            local: local.clone(),
            clock,
            net_out,
            tun_out,
        })
    };

    // Readers.
    for (i, d) in devs.into_iter().enumerate() {
        for (qi, q) in d.queues.into_iter().enumerate() {
            let k = klips.clone();
            let r = runner()?;
            let stop = stop.clone();
            threads.push(spawn(format!("tun-r{i}.{qi}"), move || {
                tun_reader(k, i, q, r, stop)
            })?);
        }
    }
    for proto in [ipv4::proto::ESP, ipv4::proto::AH] {
        let sock = RawReceiver::new(proto)?;
        set_timeout(sock.fd())?;
        let r = runner()?;
        let stop = stop.clone();
        threads.push(spawn(format!("raw-r{proto}"), move || {
            raw_reader(sock, r, stop)
        })?);
    }
    if let Some(u) = udp.clone() {
        set_timeout(u.fd())?;
        u.enable_gro();
        let r = runner()?;
        let stop = stop.clone();
        threads.push(spawn("udp-r4500".into(), move || udp_reader(u, r, stop))?);
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

/// Sends a packet the gateway originates (an ICMP error) through the host's routing.
pub(crate) fn send_local(k: &Klips, local: &RawSender, pkt: &[u8]) {
    let sent = Ipv4Packet::new_checked(pkt).is_ok_and(|p| local.send(p.dst(), pkt).is_ok());
    if !sent {
        k.drops.count(DropReason::SendFailure, false);
    }
}

fn tun_reader(k: Arc<Klips>, dev: usize, q: TunQueue, mut r: Runner, stop: Arc<AtomicBool>) {
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    let fd = q.fd();
    // SAFETY: fcntl on a descriptor we own, setting O_NONBLOCK.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let mut buf = vec![0u8; MAX_PKT];
    let mut pkts = Vec::with_capacity(64);
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd for at most 200 ms.
        let n = unsafe { libc::poll(&mut pfd, 1, 200) };
        if n <= 0 {
            continue;
        }
        let mut got = 0;
        while got < BATCH {
            match q.recv(&mut buf) {
                Ok(len) if len > 0 => {
                    pkts.clear();
                    if q.offload() {
                        // A TCP super-packet (TSO) becomes MTU-size segments here.
                        let split = VnetHdr::parse(&buf[..len])
                            .ok_or(OffloadError::Malformed)
                            .and_then(|h| offload::split(&h, &buf[VNET_HDR_LEN..len], &mut pkts));
                        if split.is_err() {
                            k.drops.count(DropReason::NoEroute, false);
                            continue;
                        }
                    } else {
                        pkts.push(buf[..len].to_vec());
                    }
                    batch.extend(pkts.drain(..).map(|pkt| Job::Out { dev, pkt }));
                    got += 1;
                }
                _ => break,
            }
        }
        r.run(&mut batch);
    }
}

fn raw_reader(sock: RawReceiver, mut r: Runner, stop: Arc<AtomicBool>) {
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; MAX_PKT]).collect();
    let mut lens = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        let Ok(got) = sock.recv_batch(&mut bufs, &mut lens) else {
            continue;
        };
        for (b, &len) in bufs.iter().zip(&lens).take(got) {
            batch.push(Job::In(b[..len].to_vec()));
        }
        r.run(&mut batch);
    }
}

fn udp_reader(sock: Arc<UdpSock>, mut r: Runner, stop: Arc<AtomicBool>) {
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; MAX_PKT]).collect();
    let mut lens = Vec::with_capacity(BATCH);
    let mut metas = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        let Ok(got) = sock.recv_batch(&mut bufs, &mut lens, &mut metas) else {
            continue;
        };
        for i in 0..got {
            // With UDP GRO one buffer may hold several datagrams of `seg` bytes each.
            let data = &bufs[i][..lens[i]];
            let seg = match metas[i].seg {
                0 => data.len().max(1),
                s => s,
            };
            for d in data.chunks(seg) {
                batch.push(Job::InUdp {
                    src: metas[i].src,
                    dst: metas[i].dst,
                    pkt: d.to_vec(),
                });
            }
        }
        r.run(&mut batch);
    }
}

/// Most datagrams in one UDP GSO send, and most bytes.
const GSO_MAX_SEGS: usize = 64;
const GSO_MAX_BYTES: usize = 60_000;

/// The UDP flow and payload of an outgoing ESP-in-UDP packet from port 4500.
fn udp_encap_parts(p: &[u8]) -> Option<((Ipv4Addr, SocketAddrV4), &[u8])> {
    let ihl = usize::from(*p.first()? & 0x0f) * 4;
    if p.len() < ihl + 8 || p[9] != ipv4::proto::UDP {
        return None;
    }
    let sport = u16::from_be_bytes([p[ihl], p[ihl + 1]]);
    if sport != 4500 {
        return None;
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let dport = u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]);
    Some(((src, SocketAddrV4::new(dst, dport)), &p[ihl + 8..]))
}

/// Sends a batch, turning runs of equal-size ESP-in-UDP datagrams of one flow (what a TCP
/// super-packet becomes) into single UDP GSO sends; everything else goes out through the raw
/// socket in order. Returns how many packets failed.
fn send_with_gso(
    raw_sender: &RawSender,
    udp: &UdpSock,
    ifx: u32,
    mut batch: NetBatch,
    raw: &mut NetBatch,
) -> usize {
    let mut failed = 0;
    let mut i = 0;
    let mut buf = Vec::new();
    while i < batch.len() {
        let Some((flow, first)) = udp_encap_parts(&batch[i].1) else {
            raw.push((batch[i].0, std::mem::take(&mut batch[i].1)));
            i += 1;
            continue;
        };
        let seg = first.len();
        let mut j = i + 1;
        let mut total = seg;
        while j < batch.len() && j - i < GSO_MAX_SEGS {
            match udp_encap_parts(&batch[j].1) {
                Some((f, pl))
                    if f == flow && pl.len() <= seg && total + pl.len() <= GSO_MAX_BYTES =>
                {
                    total += pl.len();
                    j += 1;
                    if pl.len() < seg {
                        break;
                    }
                }
                _ => break,
            }
        }
        if j - i < 2 || seg == 0 || seg > usize::from(u16::MAX) {
            raw.push((batch[i].0, std::mem::take(&mut batch[i].1)));
            i += 1;
            continue;
        }
        // Keep order: what went before this run leaves first.
        if !raw.is_empty() {
            failed += raw_sender.send_batch(raw);
            raw.clear();
        }
        buf.clear();
        for (_, p) in &batch[i..j] {
            if let Some((_, pl)) = udp_encap_parts(p) {
                buf.extend_from_slice(pl);
            }
        }
        let tos = batch[i].1[1];
        if udp
            .send_gso(&buf, seg as u16, flow.0, ifx, tos, flow.1)
            .is_err()
        {
            // Fall back to one datagram at a time through the raw socket.
            failed += raw_sender.send_batch(&batch[i..j]);
        }
        i = j;
    }
    if !raw.is_empty() {
        failed += raw_sender.send_batch(raw);
        raw.clear();
    }
    failed
}
