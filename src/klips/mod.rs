//! The KLIPS half of rswan: the sans-IO datapath core. [`Klips`] holds the SADB, the eroute
//! table and the drop counters; `outbound` turns a packet read from ipsecN into packets to send
//! (or a shunt action), `inbound` turns ESP/AH/ESP-in-UDP from the network into packets to
//! deliver through ipsecN. Nothing here touches a device or socket: results are [`Emit`]s the
//! shell carries out. Time is passed in as seconds on the daemon's monotonic clock.

pub mod drops;
pub mod inbound;
pub mod outbound;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::eroute::{ErouteTable, DEFAULT_MAX_TRAP_HOLDS};
use crate::sadb::Sadb;

pub use drops::{DropReason, DropStats, Notice, NoticeStats};

/// Capacity of the queues that carry acquires and SA lifetime events to the keying daemon.
pub const EVENT_QUEUE_LEN: usize = 1024;

/// SA lifetime events kept for a retry while the keying daemon's queue is full. Each SA causes
/// at most one soft and one hard event, so this is only reached with tens of thousands of SAs
/// expiring while the keying daemon is stuck; beyond it an event is counted as lost (a soft
/// expiry is then reported again by the SA's next packet).
pub const MAX_DEFERRED_SA_EVENTS: usize = 65_536;

/// Seconds between two log lines about the same kind of [`Notice`]: the first occurrence is
/// logged at once, later ones are summed into one line per interval.
pub const NOTICE_LOG_INTERVAL: u64 = 10;

/// What the shell must do with a processed packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Emit {
    /// Send this complete IPv4 packet out of device `dev`'s physical interface.
    Net {
        /// Index of the ipsecN device whose physical interface sends it.
        dev: usize,
        /// The packet, outer header included.
        pkt: Vec<u8>,
    },
    /// Deliver this IPv4 packet into the local stack through ipsecN `dev`.
    Tun {
        /// Index of the ipsecN device.
        dev: usize,
        /// The packet.
        pkt: Vec<u8>,
    },
    /// Send this IPv4 packet from the gateway's own IP stack, routed by the host's routing table
    /// (not bound to a physical interface, not into ipsecN): ICMP errors the gateway originates
    /// about packets routed into ipsecN (`%reject`, fragmentation needed), like KLIPS'
    /// `icmp_send`. Written into ipsecN instead, a packet from one of our own addresses would be
    /// dropped by the kernel as a martian.
    Local {
        /// The packet, IPv4 header included.
        pkt: Vec<u8>,
    },
    /// The packet was discarded (already counted in [`DropStats`]); inbound drops also raise RX
    /// dropped on ipsecN `dev`.
    Drop {
        /// Index of the ipsecN device charged with the drop.
        dev: usize,
        /// Why.
        reason: DropReason,
        /// It arrived from the network (as opposed to leaving through ipsecN).
        inbound: bool,
    },
    /// An IKE datagram arrived on UDP 4500 (non-ESP marker stripped): for the keying daemon.
    Ike {
        /// Sender.
        src: std::net::SocketAddrV4,
        /// Our address.
        dst: Ipv4Addr,
        /// The IKE message.
        data: Vec<u8>,
    },
}

/// A request for keying produced by a `%trap` eroute (PF_KEY ACQUIRE in KLIPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquire {
    /// Packet source.
    pub src: Ipv4Addr,
    /// Packet destination.
    pub dst: Ipv4Addr,
    /// IP protocol of the packet.
    pub proto: u8,
    /// Source port (TCP/UDP, else 0).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// An event for the keying daemon about an SA (soft lifetime reached, SA expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaEvent {
    /// A soft limit was crossed: time to rekey.
    SoftExpired(crate::said::Said),
    /// A hard limit was crossed: the SA is gone.
    HardExpired(crate::said::Said),
}

/// Facts about one ipsecN device the datapath needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// `ipsec0`, …
    pub name: String,
    /// The physical interface it is attached to.
    pub phys: String,
    /// The physical interface's IPv4 address (our address on that side).
    pub addr: Ipv4Addr,
    /// The physical interface's MTU.
    pub phys_mtu: usize,
    /// ipsecN's MTU.
    pub mtu: usize,
}

/// Datapath switches from `config setup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Zero the outer TOS (`hidetos=yes`, default) instead of copying the inner one.
    pub hidetos: bool,
    /// Send ICMP fragmentation-needed when a DF packet exceeds ipsecN's MTU (`fragicmp`).
    pub fragicmp: bool,
    /// Skip the tunnel-exit address check (global `disablearrivalcheck`).
    pub disable_arrival_check: bool,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            hidetos: true,
            fragicmp: true,
            disable_arrival_check: false,
        }
    }
}

/// The datapath core shared by all datapath threads.
#[derive(Debug)]
pub struct Klips {
    sadb: RwLock<Sadb>,
    eroutes: RwLock<ErouteTable>,
    devs: RwLock<Vec<DevInfo>>,
    params: RwLock<Params>,
    /// Drop counters by reason.
    pub drops: DropStats,
    acquire_tx: Sender<Acquire>,
    acquire_rx: Receiver<Acquire>,
    event_tx: Sender<SaEvent>,
    event_rx: Receiver<SaEvent>,
    /// SA events that found the queue full, oldest first, for [`Klips::expire`] to retry.
    deferred: Mutex<VecDeque<SaEvent>>,
    /// Counters of bounds hit and queues found full.
    pub notices: NoticeStats,
    notice_log: Mutex<[NoticeLog; Notice::ALL.len()]>,
    max_trap_holds: AtomicUsize,
    ident: AtomicU16,
}

/// What was last logged about one kind of [`Notice`].
#[derive(Debug, Default, Clone, Copy)]
struct NoticeLog {
    /// When (daemon clock, seconds), if ever.
    at: Option<u64>,
    /// The counter's value then.
    count: u64,
}

impl Default for Klips {
    fn default() -> Klips {
        Klips::new()
    }
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Klips {
    /// An empty datapath: no devices, SAs or eroutes (so everything is dropped).
    pub fn new() -> Klips {
        let (acquire_tx, acquire_rx) = crossbeam_channel::bounded(EVENT_QUEUE_LEN);
        let (event_tx, event_rx) = crossbeam_channel::bounded(EVENT_QUEUE_LEN);
        Klips {
            sadb: RwLock::new(Sadb::new()),
            eroutes: RwLock::new(ErouteTable::new()),
            devs: RwLock::new(Vec::new()),
            params: RwLock::new(Params::default()),
            drops: DropStats::default(),
            acquire_tx,
            acquire_rx,
            event_tx,
            event_rx,
            deferred: Mutex::new(VecDeque::new()),
            notices: NoticeStats::default(),
            notice_log: Mutex::new([NoticeLog::default(); Notice::ALL.len()]),
            max_trap_holds: AtomicUsize::new(DEFAULT_MAX_TRAP_HOLDS),
            ident: AtomicU16::new(rand::random()),
        }
    }

    /// Read access to the SADB.
    pub fn sadb(&self) -> RwLockReadGuard<'_, Sadb> {
        read(&self.sadb)
    }

    /// Write access to the SADB.
    pub fn sadb_mut(&self) -> RwLockWriteGuard<'_, Sadb> {
        write(&self.sadb)
    }

    /// Read access to the eroute table.
    pub fn eroutes(&self) -> RwLockReadGuard<'_, ErouteTable> {
        read(&self.eroutes)
    }

    /// Write access to the eroute table.
    pub fn eroutes_mut(&self) -> RwLockWriteGuard<'_, ErouteTable> {
        write(&self.eroutes)
    }

    /// The ipsecN devices.
    pub fn devs(&self) -> Vec<DevInfo> {
        read(&self.devs).clone()
    }

    /// Replaces the device list.
    pub fn set_devs(&self, devs: Vec<DevInfo>) {
        *write(&self.devs) = devs;
    }

    /// Current switches.
    pub fn params(&self) -> Params {
        *read(&self.params)
    }

    /// Replaces the switches.
    pub fn set_params(&self, p: Params) {
        *write(&self.params) = p;
    }

    /// The channel on which `%trap` eroutes deliver acquires to the keying daemon.
    pub fn acquires(&self) -> &Receiver<Acquire> {
        &self.acquire_rx
    }

    /// The channel of SA lifetime events for the keying daemon.
    pub fn sa_events(&self) -> &Receiver<SaEvent> {
        &self.event_rx
    }

    /// How many `%hold` eroutes made by `%trap` may exist at once (default
    /// [`DEFAULT_MAX_TRAP_HOLDS`]; at least 1).
    pub fn max_trap_holds(&self) -> usize {
        self.max_trap_holds.load(Ordering::Relaxed)
    }

    /// Sets the trap-hold limit (for a `config setup` setting); 0 counts as 1. Existing holds
    /// above a lowered limit are evicted by the next trap.
    pub fn set_max_trap_holds(&self, n: usize) {
        self.max_trap_holds.store(n.max(1), Ordering::Relaxed);
    }

    /// Queues an acquire for the keying daemon. When its queue is full the acquire is counted
    /// as lost ([`Notice::AcquireLost`]); the `%hold` it was made for stays, and the keying
    /// daemon's shunt scan treats a hold it never heard of as an acquire.
    pub(crate) fn send_acquire(&self, a: Acquire) {
        if self.acquire_tx.try_send(a).is_err() {
            self.notices.count(Notice::AcquireLost);
        }
    }

    /// Queues an SA lifetime event for the keying daemon, after any deferred ones (so they
    /// arrive in order). When the queue is full the event is kept for a retry by
    /// [`Klips::expire`] ([`Notice::SaEventDeferred`]). Returns false only if it could not even
    /// be kept ([`MAX_DEFERRED_SA_EVENTS`], [`Notice::SaEventLost`]): the caller must then
    /// report it again later.
    pub(crate) fn send_event(&self, e: SaEvent) -> bool {
        let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        if deferred.is_empty() {
            match self.event_tx.try_send(e) {
                Ok(()) => return true,
                Err(TrySendError::Full(_)) => {}
                // The keying daemon is gone: nobody will ever read it.
                Err(TrySendError::Disconnected(_)) => return true,
            }
        } else {
            Self::flush(&self.event_tx, &mut deferred);
            if deferred.is_empty() && self.event_tx.try_send(e).is_ok() {
                return true;
            }
        }
        if deferred.len() >= MAX_DEFERRED_SA_EVENTS {
            self.notices.count(Notice::SaEventLost);
            return false;
        }
        deferred.push_back(e);
        self.notices.count(Notice::SaEventDeferred);
        true
    }

    /// Moves deferred SA events into the queue, oldest first, as far as it has room.
    fn flush(tx: &Sender<SaEvent>, deferred: &mut VecDeque<SaEvent>) {
        while let Some(&e) = deferred.front() {
            if tx.try_send(e).is_err() {
                break;
            }
            deferred.pop_front();
        }
    }

    /// Retries the SA events that found the keying daemon's queue full.
    pub fn retry_sa_events(&self) {
        let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        Self::flush(&self.event_tx, &mut deferred);
    }

    /// Number of SA events waiting for a retry.
    pub fn deferred_sa_events(&self) -> usize {
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Log lines about the [`Notice`]s counted since the last call, at a bounded rate: for each
    /// kind, a line as soon as it first occurs, then at most one line per
    /// [`NOTICE_LOG_INTERVAL`] seconds summing up what happened since the previous line. The
    /// shell calls this periodically with the daemon clock and logs what it returns.
    pub fn take_log_lines(&self, now: u64) -> Vec<String> {
        let mut log = self.notice_log.lock().unwrap_or_else(|p| p.into_inner());
        let mut lines = Vec::new();
        for (n, last) in Notice::ALL.iter().zip(log.iter_mut()) {
            let total = self.notices.get(*n);
            let new = total.saturating_sub(last.count);
            if new == 0 || last.at.is_some_and(|t| now < t + NOTICE_LOG_INTERVAL) {
                continue;
            }
            lines.push(self.notice_line(*n, new, total));
            *last = NoticeLog {
                at: Some(now),
                count: total,
            };
        }
        lines
    }

    fn notice_line(&self, n: Notice, new: u64, total: u64) -> String {
        match n {
            Notice::HoldEvicted => format!(
                "klips: %trap hold limit ({}) reached: {new} oldest %hold eroute(s) evicted ({total} since start)",
                self.max_trap_holds()
            ),
            Notice::AcquireLost => format!(
                "klips: keying daemon's queue full: {new} acquire(s) lost ({total} since start); the next shunt scan picks up their %hold eroutes"
            ),
            Notice::SaEventDeferred => format!(
                "klips: keying daemon's queue full: {new} SA lifetime event(s) delayed for a retry ({total} since start)"
            ),
            Notice::SaEventLost => format!(
                "klips: {new} SA lifetime event(s) could not be queued even for a retry ({total} since start); soft expiries are reported again by the next packet"
            ),
        }
    }

    pub(crate) fn next_ident(&self) -> u16 {
        self.ident.fetch_add(1, Ordering::Relaxed)
    }

    /// Index of the device whose address is `addr` (0 if none matches).
    pub fn dev_for_addr(&self, addr: Ipv4Addr) -> usize {
        read(&self.devs)
            .iter()
            .position(|d| d.addr == addr)
            .unwrap_or(0)
    }

    /// Whether `addr` is one of our physical addresses.
    pub fn is_local(&self, addr: Ipv4Addr) -> bool {
        read(&self.devs).iter().any(|d| d.addr == addr)
    }

    /// Counts and reports a packet discarded on its way out through ipsecN.
    pub(crate) fn drop_out(&self, dev: usize, reason: DropReason, out: &mut Vec<Emit>) {
        self.drops.count(reason, false);
        out.push(Emit::Drop {
            dev,
            reason,
            inbound: false,
        });
    }

    /// Counts and reports a packet from the network that was discarded.
    pub(crate) fn drop_in(&self, dev: usize, reason: DropReason, out: &mut Vec<Emit>) {
        self.drops.count(reason, true);
        out.push(Emit::Drop {
            dev,
            reason,
            inbound: true,
        });
    }

    /// Retries deferred SA events, then removes SAs past their hard lifetime at `now` and
    /// reports their hard expiry. The shell calls this periodically.
    pub fn expire(&self, now: u64) -> usize {
        self.retry_sa_events();
        let dead = self.sadb_mut().expire(now);
        for sa in &dead {
            self.send_event(SaEvent::HardExpired(sa.said));
        }
        dead.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::said::{Proto, Said};

    fn said(i: u32) -> Said {
        Said::new(Proto::Esp, 0x1000 + i, Ipv4Addr::new(192, 0, 2, 2))
    }

    fn drain(k: &Klips) -> Vec<SaEvent> {
        k.sa_events().try_iter().collect()
    }

    /// With the keying daemon's queue full, SA events are kept and delivered in order once it
    /// has room again; nothing is lost.
    #[test]
    fn sa_events_survive_a_full_queue() {
        let k = Klips::new();
        let n = EVENT_QUEUE_LEN as u32 + 10;
        for i in 0..n {
            assert!(k.send_event(SaEvent::SoftExpired(said(i))));
        }
        assert_eq!(k.deferred_sa_events(), 10);
        assert_eq!(k.notices.get(Notice::SaEventDeferred), 10);
        // A later event queues behind the deferred ones, even when there is room.
        let first = drain(&k);
        assert_eq!(first.len(), EVENT_QUEUE_LEN);
        assert!(k.send_event(SaEvent::HardExpired(said(999))));
        // The periodic timer retries.
        assert_eq!(k.expire(0), 0);
        let mut got = first;
        got.extend(drain(&k));
        let mut want: Vec<SaEvent> = (0..n).map(|i| SaEvent::SoftExpired(said(i))).collect();
        want.push(SaEvent::HardExpired(said(999)));
        assert_eq!(got, want);
        assert_eq!(k.deferred_sa_events(), 0);
        assert_eq!(k.notices.get(Notice::SaEventLost), 0);
        let lines = k.take_log_lines(5);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("10 SA lifetime event(s) delayed"),
            "{lines:?}"
        );
    }

    /// Past the retry bound an event is refused (counted as lost) so the caller reports it
    /// again: a soft expiry is re-sent by the SA's next packet once there is room.
    #[test]
    fn soft_expiry_is_reported_again_when_it_could_not_be_queued() {
        use crate::sadb::{Dir, KeyBytes, Sa, SaSpec, XformSpec};
        let k = Klips::new();
        k.set_devs(vec![DevInfo {
            name: "ipsec0".into(),
            phys: "eth0".into(),
            addr: Ipv4Addr::new(192, 0, 2, 1),
            phys_mtu: 1500,
            mtu: 1400,
        }]);
        let mut life = crate::sadb::lifetime::Lifetimes::default();
        life.packets.soft = 1;
        let spec = SaSpec {
            said: Said::new(Proto::Esp, 0x200, Ipv4Addr::new(192, 0, 2, 2)),
            src: Ipv4Addr::new(192, 0, 2, 1),
            dir: Some(Dir::Out),
            xform: XformSpec::Esp {
                enc: crate::crypto::EncAlg::AesGcm16_128,
                enckey: KeyBytes(vec![7; 20]),
                auth: None,
                authkey: KeyBytes(Vec::new()),
            },
            replay_window: 0,
            life,
            encap: None,
            policy: None,
        };
        k.sadb_mut()
            .add(Sa::new(&spec, Dir::Out, 0).unwrap())
            .unwrap();
        k.eroutes_mut().replace(crate::eroute::Eroute::new(
            "10.0.1.0/24".parse().unwrap(),
            "10.0.2.0/24".parse().unwrap(),
            spec.said,
        ));
        // Fill the queue and the retry queue.
        for i in 0..(EVENT_QUEUE_LEN + MAX_DEFERRED_SA_EVENTS) as u32 {
            assert!(k.send_event(SaEvent::HardExpired(said(i))));
        }
        let mut pkt = vec![0u8; 28];
        crate::wire::ipv4::Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 1, 10),
            dst: Ipv4Addr::new(10, 0, 2, 10),
            protocol: crate::wire::ipv4::proto::UDP,
            tos: 0,
            ttl: 64,
            ident: 1,
            dont_frag: false,
            payload_len: 8,
        }
        .emit(&mut pkt);
        let send = || {
            let mut out = Vec::new();
            k.outbound(0, &pkt, 0, &mut rand::thread_rng(), &mut out);
            assert!(matches!(out[..], [Emit::Net { .. }]), "{out:?}");
        };
        send();
        assert_eq!(k.notices.get(Notice::SaEventLost), 1);
        send();
        assert_eq!(k.notices.get(Notice::SaEventLost), 2);
        // The keying daemon catches up: the next packet's soft expiry gets through.
        while k.sa_events().try_recv().is_ok() || k.deferred_sa_events() > 0 {
            k.retry_sa_events();
        }
        send();
        assert_eq!(drain(&k), vec![SaEvent::SoftExpired(spec.said)]);
        send();
        assert!(drain(&k).is_empty(), "reported once");
        assert_eq!(k.notices.get(Notice::SaEventLost), 2);
    }

    /// Acquires that find the queue full are counted.
    #[test]
    fn lost_acquires_are_counted() {
        let k = Klips::new();
        let a = Acquire {
            src: Ipv4Addr::new(10, 0, 1, 10),
            dst: Ipv4Addr::new(10, 0, 2, 10),
            proto: 17,
            sport: 1,
            dport: 2,
        };
        for _ in 0..EVENT_QUEUE_LEN + 3 {
            k.send_acquire(a);
        }
        assert_eq!(k.notices.get(Notice::AcquireLost), 3);
        assert_eq!(k.acquires().len(), EVENT_QUEUE_LEN);
        let lines = k.take_log_lines(0);
        assert!(lines[0].contains("3 acquire(s) lost"), "{lines:?}");
    }
}
