//! The KLIPS half of rswan: the sans-IO datapath core. [`Klips`] holds the SADB, the eroute
//! table and the drop counters; `outbound` turns a packet read from ipsecN into packets to send
//! (or a shunt action), `inbound` turns ESP/AH/ESP-in-UDP from the network into packets to
//! deliver through ipsecN. Nothing here touches a device or socket: results are [`Emit`]s the
//! shell carries out. Time is passed in as seconds on the daemon's monotonic clock.

pub mod drops;
pub mod inbound;
pub mod outbound;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_channel::{Receiver, Sender};

use crate::eroute::ErouteTable;
use crate::sadb::Sadb;

pub use drops::{DropReason, DropStats};

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
    ident: AtomicU16,
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
        let (acquire_tx, acquire_rx) = crossbeam_channel::bounded(1024);
        let (event_tx, event_rx) = crossbeam_channel::bounded(1024);
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

    pub(crate) fn send_acquire(&self, a: Acquire) {
        let _ = self.acquire_tx.try_send(a);
    }

    pub(crate) fn send_event(&self, e: SaEvent) {
        let _ = self.event_tx.try_send(e);
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

    /// Removes SAs past their hard lifetime at `now` and reports soft/hard expiries.
    pub fn expire(&self, now: u64) -> usize {
        let dead = self.sadb_mut().expire(now);
        for sa in &dead {
            self.send_event(SaEvent::HardExpired(sa.said));
        }
        dead.len()
    }
}
