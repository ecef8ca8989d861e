//! The KLIPS half of rswan: the sans-IO datapath core. [`Klips`] holds the SADB, the eroute
//! table and the drop counters; `outbound` turns a packet read from ipsecN into packets to send
//! (or a shunt action), `inbound` turns ESP/AH/ESP-in-UDP from the network into packets to
//! deliver through ipsecN. Nothing here touches a device or socket: results are [`Emit`]s the
//! shell carries out. Time is passed in as seconds on the daemon's monotonic clock.

pub mod drops;
#[cfg(test)]
mod events_tests;
pub mod inbound;
#[cfg(test)]
mod ipv6_tests;
pub mod outbound;
pub mod packet;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_channel::{Receiver, Sender};

use crate::eroute::{ErouteTable, ErouteView, DEFAULT_MAX_TRAP_HOLDS};
use crate::fasthash::FastMap;
use crate::sadb::{Sadb, SadbView};

pub use crate::addr::Family;
pub use drops::{DropReason, DropStats, Notice, NoticeStats};
pub use outbound::Decision;
pub use packet::{gso_run, GsoRun, PacketBuf, Parsed, Transmit, UdpFlow, Verdict, Work};

/// Acquires waiting for the keying daemon at most. Identical acquires are merged while they
/// wait; past this bound a new acquire is left to the keying daemon's shunt scan, which treats
/// a `%hold` it never heard of as an acquire ([`Notice::AcquireOverflow`]).
pub const EVENT_QUEUE_LEN: usize = 1024;

/// SA lifetime events waiting for the keying daemon at most. Each SA causes at most one soft
/// and one hard event (a repeat of a waiting one is merged), so this is only reached with tens
/// of thousands of SAs expiring while the keying daemon is stuck; beyond it an event is
/// counted as lost and a soft expiry is reported again by the SA's next packet.
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
        src: std::net::SocketAddr,
        /// Our address.
        dst: std::net::IpAddr,
        /// The IKE message.
        data: Vec<u8>,
    },
}

/// A request for keying produced by a `%trap` eroute (PF_KEY ACQUIRE in KLIPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Acquire {
    /// Packet source.
    pub src: IpAddr,
    /// Packet destination (the family of `src`).
    pub dst: IpAddr,
    /// IP protocol of the packet.
    pub proto: u8,
    /// Source port (TCP/UDP, else 0).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// An event for the keying daemon about an SA (soft lifetime reached, SA expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaEvent {
    /// A soft limit was crossed: time to rekey.
    SoftExpired(crate::said::Said),
    /// A hard limit was crossed: the SA is gone.
    HardExpired(crate::said::Said),
}

/// What the datapath core tells the keying daemon (its control output, beside the packets):
/// taken with [`Klips::take_events`] after [`Klips::event_doorbell`] rang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlipsEvent {
    /// A `%trap` eroute caught a packet.
    Acquire(Acquire),
    /// An SA reached a lifetime limit.
    Sa(SaEvent),
}

/// Facts about one ipsecN device the datapath needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// `ipsec0`, …
    pub name: String,
    /// The physical interface it is attached to.
    pub phys: String,
    /// The physical interface's IPv4 address (our address on that side; `0.0.0.0` if it has
    /// none).
    pub addr: Ipv4Addr,
    /// The physical interface's IPv6 address, if it has one.
    pub addr6: Option<Ipv6Addr>,
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

/// Everything the datapath reads, as one consistent, immutable view: taken once per batch
/// ([`Klips::tables`]) and read without locks while the control plane changes the tables
/// behind it (each change publishes a new view).
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// The eroutes.
    pub eroutes: ErouteView,
    /// The SAs with their groups.
    pub sas: SadbView,
    /// The ipsecN devices.
    pub devs: Arc<[DevInfo]>,
    /// The switches.
    pub params: Params,
}

impl DevInfo {
    /// Whether `ip` is this device's physical address (of either family).
    pub fn has(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => a == self.addr && !a.is_unspecified(),
            IpAddr::V6(a) => self.addr6 == Some(a),
        }
    }

    /// Our address of `family` on the physical interface, if it has one.
    pub fn local(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => (!self.addr.is_unspecified()).then_some(IpAddr::V4(self.addr)),
            Family::V6 => self.addr6.map(IpAddr::V6),
        }
    }
}

impl Tables {
    /// Index of the device whose address is `addr` (0 if none matches).
    pub fn dev_for_addr(&self, addr: impl Into<IpAddr>) -> usize {
        let addr = addr.into();
        self.devs.iter().position(|d| d.has(addr)).unwrap_or(0)
    }

    /// Whether `addr` is one of our physical addresses.
    pub fn is_local(&self, addr: impl Into<IpAddr>) -> bool {
        let addr = addr.into();
        self.devs.iter().any(|d| d.has(addr))
    }
}

/// Events waiting for the keying daemon, oldest first, each at most once.
#[derive(Debug, Default)]
struct Pending {
    acquires: VecDeque<Acquire>,
    acquire_set: FastMap<Acquire, ()>,
    sa: VecDeque<SaEvent>,
    sa_set: FastMap<SaEvent, ()>,
    /// Hard expiries that found the queue full: the SAs are already gone from the SADB, so no
    /// packet will report them again; [`Klips::expire`] retries them. At most one per SA that
    /// died, so bounded by the SADB.
    hard_retry: Vec<crate::said::Said>,
}

/// The datapath core shared by all datapath threads.
#[derive(Debug)]
pub struct Klips {
    sadb: RwLock<Sadb>,
    eroutes: RwLock<ErouteTable>,
    devs: RwLock<Vec<DevInfo>>,
    params: RwLock<Params>,
    /// The view the datapath reads (replaced, never modified, by each change).
    tables: RwLock<Arc<Tables>>,
    /// Drop counters by reason.
    pub drops: DropStats,
    pending: Mutex<Pending>,
    doorbell_tx: Sender<()>,
    doorbell_rx: Receiver<()>,
    /// Counters of bounds hit and events merged.
    pub notices: NoticeStats,
    notice_log: Mutex<[NoticeLog; Notice::ALL.len()]>,
    max_trap_holds: AtomicUsize,
    ident: AtomicU16,
    /// Packets sent through the `AF_PACKET` socket of `espsend=packet` (`shell::datapath`).
    pub sent_by_packet: AtomicU64,
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

/// Write access to the SADB; the datapath's view is republished when it is dropped.
pub struct SadbGuard<'a> {
    k: &'a Klips,
    g: RwLockWriteGuard<'a, Sadb>,
}

impl Deref for SadbGuard<'_> {
    type Target = Sadb;
    fn deref(&self) -> &Sadb {
        &self.g
    }
}

impl DerefMut for SadbGuard<'_> {
    fn deref_mut(&mut self) -> &mut Sadb {
        &mut self.g
    }
}

impl Drop for SadbGuard<'_> {
    fn drop(&mut self) {
        let v = self.g.view();
        self.k.publish(|t| t.sas = v);
    }
}

/// Write access to the eroute table; its index is rebuilt (if eroutes changed) and the
/// datapath's view republished when it is dropped.
pub struct ErouteGuard<'a> {
    k: &'a Klips,
    g: RwLockWriteGuard<'a, ErouteTable>,
}

impl Deref for ErouteGuard<'_> {
    type Target = ErouteTable;
    fn deref(&self) -> &ErouteTable {
        &self.g
    }
}

impl DerefMut for ErouteGuard<'_> {
    fn deref_mut(&mut self) -> &mut ErouteTable {
        &mut self.g
    }
}

impl Drop for ErouteGuard<'_> {
    fn drop(&mut self) {
        let v = self.g.view();
        self.k.publish(|t| t.eroutes = v);
    }
}

impl Klips {
    /// An empty datapath: no devices, SAs or eroutes (so everything is dropped).
    pub fn new() -> Klips {
        let (doorbell_tx, doorbell_rx) = crossbeam_channel::bounded(1);
        Klips {
            sadb: RwLock::new(Sadb::new()),
            eroutes: RwLock::new(ErouteTable::new()),
            devs: RwLock::new(Vec::new()),
            params: RwLock::new(Params::default()),
            tables: RwLock::new(Arc::new(Tables::default())),
            drops: DropStats::default(),
            pending: Mutex::new(Pending::default()),
            doorbell_tx,
            doorbell_rx,
            notices: NoticeStats::default(),
            notice_log: Mutex::new([NoticeLog::default(); Notice::ALL.len()]),
            max_trap_holds: AtomicUsize::new(DEFAULT_MAX_TRAP_HOLDS),
            ident: AtomicU16::new(rand::random()),
            sent_by_packet: AtomicU64::new(0),
        }
    }

    /// The datapath's view of every table as of now: take it once per batch.
    pub fn tables(&self) -> Arc<Tables> {
        read(&self.tables).clone()
    }

    /// Replaces the published view with a changed copy.
    fn publish(&self, f: impl FnOnce(&mut Tables)) {
        let mut w = write(&self.tables);
        let mut t = Tables::clone(&w);
        f(&mut t);
        *w = Arc::new(t);
    }

    /// Read access to the SADB (the control plane's copy).
    pub fn sadb(&self) -> RwLockReadGuard<'_, Sadb> {
        read(&self.sadb)
    }

    /// Write access to the SADB.
    pub fn sadb_mut(&self) -> SadbGuard<'_> {
        SadbGuard {
            k: self,
            g: write(&self.sadb),
        }
    }

    /// Read access to the eroute table (the control plane's copy).
    pub fn eroutes(&self) -> RwLockReadGuard<'_, ErouteTable> {
        read(&self.eroutes)
    }

    /// Write access to the eroute table.
    pub fn eroutes_mut(&self) -> ErouteGuard<'_> {
        ErouteGuard {
            k: self,
            g: write(&self.eroutes),
        }
    }

    /// The ipsecN devices.
    pub fn devs(&self) -> Vec<DevInfo> {
        read(&self.devs).clone()
    }

    /// Replaces the device list.
    pub fn set_devs(&self, devs: Vec<DevInfo>) {
        let mut w = write(&self.devs);
        *w = devs;
        let v: Arc<[DevInfo]> = w.clone().into();
        self.publish(|t| t.devs = v);
    }

    /// Current switches.
    pub fn params(&self) -> Params {
        *read(&self.params)
    }

    /// Replaces the switches.
    pub fn set_params(&self, p: Params) {
        *write(&self.params) = p;
        self.publish(|t| t.params = p);
    }

    /// Rings (holds one message) whenever [`Klips::take_events`] has something: the keying
    /// daemon waits on it.
    pub fn event_doorbell(&self) -> &Receiver<()> {
        &self.doorbell_rx
    }

    /// Moves the waiting events into `out`, SA lifetime events first, each kind oldest first.
    pub fn take_events(&self, out: &mut Vec<KlipsEvent>) {
        let mut p = self.pending.lock().unwrap_or_else(|x| x.into_inner());
        let p = &mut *p;
        out.extend(p.sa.drain(..).map(KlipsEvent::Sa));
        p.sa_set.clear();
        out.extend(p.acquires.drain(..).map(KlipsEvent::Acquire));
        p.acquire_set.clear();
    }

    /// Number of events waiting for the keying daemon.
    pub fn pending_events(&self) -> usize {
        let p = self.pending.lock().unwrap_or_else(|x| x.into_inner());
        p.sa.len() + p.acquires.len()
    }

    fn ring(&self) {
        // Full means a ring is already waiting to be noticed; disconnected cannot happen (we
        // own the receiver).
        let _ = self.doorbell_tx.try_send(());
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

    /// Queues an acquire for the keying daemon. One identical to an acquire still waiting is
    /// merged into it ([`Notice::AcquireMerged`]); past [`EVENT_QUEUE_LEN`] waiting acquires it
    /// is left to the shunt scan ([`Notice::AcquireOverflow`]): the `%hold` it was made for
    /// stays, and the keying daemon treats a hold it never heard of as an acquire.
    pub(crate) fn send_acquire(&self, a: Acquire) {
        let mut p = self.pending.lock().unwrap_or_else(|x| x.into_inner());
        if p.acquire_set.contains_key(&a) {
            self.notices.count(Notice::AcquireMerged);
            return;
        }
        if p.acquires.len() >= EVENT_QUEUE_LEN {
            self.notices.count(Notice::AcquireOverflow);
            return;
        }
        p.acquire_set.insert(a, ());
        p.acquires.push_back(a);
        drop(p);
        self.ring();
    }

    /// Queues an SA lifetime event for the keying daemon; one identical to an event still
    /// waiting is merged into it ([`Notice::SaEventMerged`]). Returns false only if it could
    /// not be kept ([`MAX_DEFERRED_SA_EVENTS`] waiting, [`Notice::SaEventLost`]): the caller
    /// must then report it again later.
    pub(crate) fn send_event(&self, e: SaEvent) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(|x| x.into_inner());
        if p.sa_set.contains_key(&e) {
            self.notices.count(Notice::SaEventMerged);
            return true;
        }
        if p.sa.len() >= MAX_DEFERRED_SA_EVENTS {
            self.notices.count(Notice::SaEventLost);
            return false;
        }
        p.sa_set.insert(e, ());
        p.sa.push_back(e);
        drop(p);
        self.ring();
        true
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
            Notice::AcquireMerged => format!(
                "klips: keying daemon busy: {new} acquire(s) merged into identical ones still queued ({total} since start)"
            ),
            Notice::AcquireOverflow => format!(
                "klips: keying daemon's queue full: {new} acquire(s) left to the next shunt scan, which picks up their %hold eroutes ({total} since start)"
            ),
            Notice::SaEventMerged => format!(
                "klips: keying daemon busy: {new} SA lifetime event(s) merged into identical ones still queued ({total} since start)"
            ),
            Notice::SaEventLost => format!(
                "klips: {new} SA lifetime event(s) could not be queued ({total} since start); soft expiries are reported again by the next packet, hard expiries by the next expiry pass"
            ),
        }
    }

    pub(crate) fn next_ident(&self) -> u16 {
        self.ident.fetch_add(1, Ordering::Relaxed)
    }

    /// Index of the device whose address is `addr` (0 if none matches).
    pub fn dev_for_addr(&self, addr: impl Into<IpAddr>) -> usize {
        let addr = addr.into();
        read(&self.devs)
            .iter()
            .position(|d| d.has(addr))
            .unwrap_or(0)
    }

    /// Whether `addr` is one of our physical addresses.
    pub fn is_local(&self, addr: impl Into<IpAddr>) -> bool {
        let addr = addr.into();
        read(&self.devs).iter().any(|d| d.has(addr))
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

    /// Removes SAs past their hard lifetime at `now` and reports their hard expiry. The shell
    /// calls this periodically.
    pub fn expire(&self, now: u64) -> usize {
        // Eroutes added since the eroute index was built join it (until then every lookup also
        // probes them by class).
        if self.eroutes().has_recent() {
            self.eroutes_mut().settle();
        }
        let dead = self.sadb_mut().expire(now);
        let mut retry = {
            let mut p = self.pending.lock().unwrap_or_else(|x| x.into_inner());
            std::mem::take(&mut p.hard_retry)
        };
        retry.extend(dead.iter().map(|sa| sa.said));
        retry.retain(|&said| !self.send_event(SaEvent::HardExpired(said)));
        if !retry.is_empty() {
            let mut p = self.pending.lock().unwrap_or_else(|x| x.into_inner());
            p.hard_retry.extend(retry);
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

    fn drain(k: &Klips) -> Vec<KlipsEvent> {
        let mut v = Vec::new();
        k.take_events(&mut v);
        v
    }

    fn acquire(i: u16) -> Acquire {
        Acquire {
            src: Ipv4Addr::new(10, 0, 1, 10).into(),
            dst: Ipv4Addr::new(10, 0, 2, (i % 250) as u8).into(),
            proto: 17,
            sport: 1000 + i,
            dport: 53,
        }
    }

    /// The keying daemon stalls while 20,000 SAs reach their soft lifetime (several times over)
    /// and hosts behind `%trap`s send thousands of packets: once it drains, every SA's expiry
    /// is there exactly once, in order; repeats and identical acquires were merged and
    /// counted; acquires past the bound were counted for the shunt scan. Nothing vanished.
    #[test]
    fn flooded_event_path_loses_no_expiry() {
        let k = Klips::new();
        let n = 20_000u32;
        for round in 0..3 {
            for i in 0..n {
                assert!(k.send_event(SaEvent::SoftExpired(said(i))), "round {round}");
                if i % 7 == 0 {
                    k.send_acquire(acquire((i % 2000) as u16));
                }
            }
        }
        for i in 0..100 {
            assert!(k.send_event(SaEvent::HardExpired(said(i))));
        }
        // The doorbell rang (once: it holds one ring).
        assert_eq!(k.event_doorbell().try_iter().count(), 1);
        assert_eq!(k.pending_events(), n as usize + 100 + EVENT_QUEUE_LEN);
        let got = drain(&k);
        let mut want: Vec<KlipsEvent> = (0..n)
            .map(|i| KlipsEvent::Sa(SaEvent::SoftExpired(said(i))))
            .collect();
        want.extend((0..100).map(|i| KlipsEvent::Sa(SaEvent::HardExpired(said(i)))));
        assert_eq!(&got[..want.len()], &want[..]);
        let acquires: Vec<Acquire> = got[want.len()..]
            .iter()
            .map(|e| match e {
                KlipsEvent::Acquire(a) => *a,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(acquires.len(), EVENT_QUEUE_LEN);
        let distinct: std::collections::HashSet<Acquire> = acquires.iter().copied().collect();
        assert_eq!(distinct.len(), EVENT_QUEUE_LEN);
        assert_eq!(k.notices.get(Notice::SaEventMerged), 2 * u64::from(n));
        assert_eq!(k.notices.get(Notice::SaEventLost), 0);
        let sent_acquires = 3 * n.div_ceil(7) as u64;
        assert_eq!(
            k.notices.get(Notice::AcquireMerged) + k.notices.get(Notice::AcquireOverflow),
            sent_acquires - EVENT_QUEUE_LEN as u64
        );
        assert!(k.notices.get(Notice::AcquireOverflow) > 0);
        assert!(drain(&k).is_empty());
        // Queued again after the drain: a new event is not "merged" into a delivered one.
        assert!(k.send_event(SaEvent::SoftExpired(said(1))));
        assert_eq!(
            drain(&k),
            vec![KlipsEvent::Sa(SaEvent::SoftExpired(said(1)))]
        );
        let lines = k.take_log_lines(5);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("40000 SA lifetime event(s) merged")),
            "{lines:?}"
        );
    }

    /// Past the bound an event is refused (counted as lost) so the caller reports it again: a
    /// soft expiry is re-sent by the SA's next packet once there is room.
    #[test]
    fn soft_expiry_is_reported_again_when_it_could_not_be_queued() {
        use crate::sadb::{Dir, KeyBytes, Sa, SaSpec, XformSpec};
        let k = Klips::new();
        k.set_devs(vec![DevInfo {
            name: "ipsec0".into(),
            phys: "eth0".into(),
            addr: Ipv4Addr::new(192, 0, 2, 1),
            addr6: None,
            phys_mtu: 1500,
            mtu: 1400,
        }]);
        let mut life = crate::sadb::lifetime::Lifetimes::default();
        life.packets.soft = 1;
        let spec = SaSpec {
            said: Said::new(Proto::Esp, 0x200, Ipv4Addr::new(192, 0, 2, 2)),
            src: Ipv4Addr::new(192, 0, 2, 1).into(),
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
        // Fill the queue.
        for i in 0..MAX_DEFERRED_SA_EVENTS as u32 {
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
        assert_eq!(drain(&k).len(), MAX_DEFERRED_SA_EVENTS);
        send();
        assert_eq!(
            drain(&k),
            vec![KlipsEvent::Sa(SaEvent::SoftExpired(spec.said))]
        );
        send();
        assert!(drain(&k).is_empty(), "reported once");
        assert_eq!(k.notices.get(Notice::SaEventLost), 2);
    }

    #[test]
    fn a_hard_expiry_that_finds_the_queue_full_is_retried() {
        use crate::sadb::{Dir, KeyBytes, Sa, SaSpec, XformSpec};
        let k = Klips::new();
        let mut life = crate::sadb::lifetime::Lifetimes::default();
        life.addtime.hard = 10;
        let spec = SaSpec {
            said: Said::new(Proto::Esp, 0x300, Ipv4Addr::new(192, 0, 2, 2)),
            src: Ipv4Addr::new(192, 0, 2, 1).into(),
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
        for i in 0..MAX_DEFERRED_SA_EVENTS as u32 {
            assert!(k.send_event(SaEvent::SoftExpired(said(i))));
        }
        assert_eq!(k.expire(20), 1);
        assert_eq!(k.notices.get(Notice::SaEventLost), 1);
        // The keying daemon catches up; the next expiry pass reports the hard expiry.
        assert_eq!(drain(&k).len(), MAX_DEFERRED_SA_EVENTS);
        assert_eq!(k.expire(30), 0);
        assert_eq!(
            drain(&k),
            vec![KlipsEvent::Sa(SaEvent::HardExpired(spec.said))]
        );
        assert_eq!(k.expire(40), 0);
        assert!(drain(&k).is_empty(), "reported once");
    }
}
