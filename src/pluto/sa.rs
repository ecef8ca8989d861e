//! The engine's SA records and their indexes.
//!
//! Two kinds of record share one serial space ([`SerialNo`], Pluto's `#N`):
//!
//! * [`IkeSa`]: an IKE SA (IKEv1: ISAKMP SA, Main Mode family) — endpoints, peer identity and
//!   authentication, NAT-T and liveness facts, retransmission data, and the version-specific
//!   exchange state ([`IkeExchange`]).
//! * [`ChildSa`]: a child SA (IKEv1: IPsec SA, Quick Mode family) — parent, clients, SPIs,
//!   the negotiated SAs ([`NegotiatedChild`]) once known, installed SAIDs, usage, and the
//!   version-specific negotiation state ([`ChildExchange`]).
//!
//! [`SaTable`] owns both and keeps the indexes the engine looks things up by: conn → SAs,
//! parent → children, initiator SPI (IKEv1 CKY-I) → IKE SAs, peer SPI → child SAs, and the
//! timer table ([`TimerTable`]). Records enter and leave only through [`SaTable::insert_ike`],
//! [`SaTable::insert_child`] and [`SaTable::remove`], and the indexed fields change only
//! through [`SaTable::set_conn`] and [`SaTable::set_peer_spis`], so the indexes cannot drift
//! from the records ([`SaTable::check_invariants`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use zeroize::Zeroizing;

use crate::addr::Subnet;
use crate::config::secrets::Id;
use crate::pluto::ids::{SerialNo, WhackClient};
use crate::pluto::install::NegotiatedChild;
use crate::pluto::proposal::AuthKind;
use crate::pluto::timers::TimerTable;
use crate::pluto::version::{ChildExchange, IkeExchange};
use crate::said::{Proto, Said};

/// NAT traversal facts of an IKE SA (RFC 3947 for IKEv1, RFC 7296 2.23 for IKEv2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatT {
    /// Both ends support NAT traversal (IKEv1: agreed through Vendor IDs).
    pub negotiated: bool,
    /// We are behind a NAT (or pretend to be: `forceencaps=yes`).
    pub we_behind: bool,
    /// The peer is behind a NAT (or pretends to be).
    pub peer_behind: bool,
    /// IKE moved to port 4500.
    pub floated: bool,
}

impl NatT {
    /// Whether ESP must be UDP-encapsulated.
    pub fn encapsulate(&self) -> bool {
        self.negotiated && (self.we_behind || self.peer_behind)
    }
}

/// Liveness of the peer of an IKE SA (IKEv1 DPD, RFC 3706; IKEv2 liveness checks). The
/// probe time itself is a [`TimerKind::Liveness`](crate::pluto::timers::TimerKind) timer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Liveness {
    /// The peer answers probes (IKEv1: it sent the DPD Vendor ID).
    pub peer_supports: bool,
    /// When we last heard from the peer (ms): an authenticated IKE message or inbound IPsec
    /// traffic ([`crate::pluto::Pluto::handle_sa_usage`]).
    pub last_heard: u64,
}

/// What an SA remembers for retransmission and duplicate detection.
#[derive(Debug, Clone, Default)]
pub struct Retransmission {
    /// Retransmissions of the current message so far.
    pub count: u32,
    /// The last message we sent (local, remote, the datagram as sent).
    pub last_sent: Option<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Datagrams of the same message sent before `last_sent`, to the same endpoints (IKEv2
    /// fragments, RFC 7383); resent with it.
    pub extra_sent: Vec<Vec<u8>>,
    /// The last message received (a duplicate is answered with `last_sent`).
    pub last_recv: Vec<u8>,
}

/// A child SA to negotiate once an IKE SA under way is established (IKEv1: the Quick Mode
/// after Main Mode; FreeS/WAN's pending phase 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingChild {
    /// Whack client to report to.
    pub whack: Option<WhackClient>,
    /// The child SA it replaces (rekey).
    pub replacing: Option<SerialNo>,
}

/// Our inbound SPIs and CPI of a child SA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spis {
    /// ESP SPI.
    pub esp: Option<u32>,
    /// AH SPI.
    pub ah: Option<u32>,
    /// IPComp CPI.
    pub cpi: Option<u16>,
}

/// The peer's inbound SPIs of a child SA (the ones we send to, named by its Deletes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerSpis {
    /// ESP SPI.
    pub esp: Option<u32>,
    /// AH SPI.
    pub ah: Option<u32>,
}

/// An IKE SA (IKEv1: ISAKMP SA).
pub struct IkeSa {
    serial: SerialNo,
    conn: String,
    spi_i: [u8; 8],
    /// The responder's SPI (IKEv1: CKY-R; zero until known).
    pub spi_r: [u8; 8],
    /// We initiated.
    pub initiator: bool,
    /// Our endpoint.
    pub local: SocketAddr,
    /// The peer's endpoint.
    pub remote: SocketAddr,
    /// Authenticated and keyed (IKEv1: STATE_MAIN_I4 / STATE_MAIN_R3).
    pub established: bool,
    /// The peer's authenticated ID.
    pub peer_id: Option<Id>,
    /// The authentication method negotiated.
    pub auth: Option<AuthKind>,
    /// The pre-shared key the keys were made from (PSK authentication), to check conn
    /// switches against.
    pub psk: Option<Zeroizing<Vec<u8>>>,
    /// Negotiated lifetime (s).
    pub life: u64,
    /// Created at (ms).
    pub created: u64,
    /// Hard expiry (ms), 0 until established.
    pub expires_at: u64,
    /// NAT traversal.
    pub nat: NatT,
    /// Liveness of the peer.
    pub liveness: Liveness,
    /// Retransmission data.
    pub rtx: Retransmission,
    /// Whack client attached.
    pub whack: Option<WhackClient>,
    /// Keying attempt number.
    pub try_no: u32,
    /// A Road-Warrior template's SA, not yet instantiated for its peer.
    pub template: bool,
    /// The child SA to negotiate once established.
    pub pending_child: Option<PendingChild>,
    /// The version-specific exchange state.
    pub exchange: IkeExchange,
}

/// The fields of a new [`IkeSa`] that have no default.
pub struct NewIkeSa {
    /// Connection key.
    pub conn: String,
    /// Initiator SPI (IKEv1: CKY-I).
    pub spi_i: [u8; 8],
    /// Responder SPI (zero when not yet known).
    pub spi_r: [u8; 8],
    /// We initiate.
    pub initiator: bool,
    /// Our endpoint.
    pub local: SocketAddr,
    /// The peer's endpoint.
    pub remote: SocketAddr,
    /// Created at (ms).
    pub created: u64,
    /// The version-specific exchange state.
    pub exchange: IkeExchange,
}

impl IkeSa {
    /// A new, unestablished IKE SA numbered `serial`.
    pub fn new(serial: SerialNo, n: NewIkeSa) -> IkeSa {
        IkeSa {
            serial,
            conn: n.conn,
            spi_i: n.spi_i,
            spi_r: n.spi_r,
            initiator: n.initiator,
            local: n.local,
            remote: n.remote,
            established: false,
            peer_id: None,
            auth: None,
            psk: None,
            life: 0,
            created: n.created,
            expires_at: 0,
            nat: NatT::default(),
            liveness: Liveness::default(),
            rtx: Retransmission::default(),
            whack: None,
            try_no: 0,
            template: false,
            pending_child: None,
            exchange: n.exchange,
        }
    }

    /// `#N`.
    pub fn serial(&self) -> SerialNo {
        self.serial
    }

    /// The connection key.
    pub fn conn(&self) -> &str {
        &self.conn
    }

    /// The initiator's SPI (IKEv1: CKY-I).
    pub fn spi_i(&self) -> [u8; 8] {
        self.spi_i
    }
}

/// A child SA (IKEv1: IPsec SA).
pub struct ChildSa {
    serial: SerialNo,
    conn: String,
    parent: SerialNo,
    peer_spis: PeerSpis,
    /// We initiated.
    pub initiator: bool,
    /// Both directions installed (IKEv1: STATE_QUICK_I2 / STATE_QUICK_R2).
    pub established: bool,
    /// Our inbound SPIs and CPI (allocated from the engine's
    /// [`SpiAllocator`](crate::pluto::spi::SpiAllocator), released when the SA goes).
    pub our: Spis,
    /// Our client (traffic selector).
    pub our_client: Subnet,
    /// The peer's client (traffic selector).
    pub peer_client: Subnet,
    /// What was negotiated, once known: the SAs to install ([`crate::pluto::install`]).
    pub negotiated: Option<Box<NegotiatedChild>>,
    /// Installed inbound SAIDs (a group, inner→outer).
    pub inbound: Vec<Said>,
    /// Installed outbound SAIDs (a group, inner→outer).
    pub outbound: Vec<Said>,
    /// Negotiated lifetime (s).
    pub life: u64,
    /// The child SA this one replaces (rekey).
    pub replacing: Option<SerialNo>,
    /// Last time (ms) a packet from the peer used the inbound SAs, per the datapath's usage
    /// reports ([`crate::pluto::Pluto::handle_sa_usage`]).
    pub used_in: Option<u64>,
    /// Last time (ms) a packet was sent through the outbound SAs.
    pub used_out: Option<u64>,
    /// Created at (ms).
    pub created: u64,
    /// Hard expiry (ms), 0 until established.
    pub expires_at: u64,
    /// Retransmission data.
    pub rtx: Retransmission,
    /// Whack client attached.
    pub whack: Option<WhackClient>,
    /// Keying attempt number.
    pub try_no: u32,
    /// The version-specific negotiation state.
    pub exchange: ChildExchange,
}

/// The fields of a new [`ChildSa`] that have no default.
pub struct NewChildSa {
    /// Connection key.
    pub conn: String,
    /// The IKE SA it is negotiated over.
    pub parent: SerialNo,
    /// We initiate.
    pub initiator: bool,
    /// Our inbound SPIs.
    pub our: Spis,
    /// Our client.
    pub our_client: Subnet,
    /// The peer's client.
    pub peer_client: Subnet,
    /// Created at (ms).
    pub created: u64,
    /// The version-specific negotiation state.
    pub exchange: ChildExchange,
}

impl ChildSa {
    /// A new, unestablished child SA numbered `serial`.
    pub fn new(serial: SerialNo, n: NewChildSa) -> ChildSa {
        ChildSa {
            serial,
            conn: n.conn,
            parent: n.parent,
            peer_spis: PeerSpis::default(),
            initiator: n.initiator,
            established: false,
            our: n.our,
            our_client: n.our_client,
            peer_client: n.peer_client,
            negotiated: None,
            inbound: Vec::new(),
            outbound: Vec::new(),
            life: 0,
            replacing: None,
            used_in: None,
            used_out: None,
            created: n.created,
            expires_at: 0,
            rtx: Retransmission::default(),
            whack: None,
            try_no: 0,
            exchange: n.exchange,
        }
    }

    /// `#N`.
    pub fn serial(&self) -> SerialNo {
        self.serial
    }

    /// The connection key.
    pub fn conn(&self) -> &str {
        &self.conn
    }

    /// The IKE SA it was negotiated over (it may be gone since).
    pub fn parent(&self) -> SerialNo {
        self.parent
    }

    /// The peer's inbound SPIs, once negotiated.
    pub fn peer_spis(&self) -> PeerSpis {
        self.peer_spis
    }

    /// Last use in either direction (ms), if any.
    pub fn last_used(&self) -> Option<u64> {
        self.used_in.max(self.used_out)
    }
}

/// A record taken out of the table.
pub enum Removed {
    /// An IKE SA.
    Ike(IkeSa),
    /// A child SA.
    Child(ChildSa),
}

/// Every SA record, its indexes and its timers.
pub struct SaTable {
    ikes: BTreeMap<SerialNo, IkeSa>,
    children: BTreeMap<SerialNo, ChildSa>,
    next_serial: SerialNo,
    by_conn: HashMap<String, BTreeSet<SerialNo>>,
    by_parent: HashMap<SerialNo, BTreeSet<SerialNo>>,
    by_spi_i: HashMap<[u8; 8], BTreeSet<SerialNo>>,
    by_peer_spi: HashMap<(Proto, u32), BTreeSet<SerialNo>>,
    /// IKE SAs with an authenticated peer ID, by that ID (`Id`'s own equality and hash) and the
    /// peer's address, as of their last re-filing.
    by_peer: HashMap<Id, HashMap<IpAddr, BTreeSet<SerialNo>>>,
    /// Where each IKE SA is filed in `by_peer`.
    peer_key: HashMap<SerialNo, (Id, IpAddr)>,
    /// IKE SAs in a half-open responder state ([`IkeExchange::half_open_responder`]), as of
    /// their last re-filing.
    half_open: BTreeSet<SerialNo>,
    /// IKE SAs handed out by [`SaTable::ike_mut`] since the last re-filing: their peer ID,
    /// address or exchange state may have changed, so they are re-filed before the next lookup
    /// by peer or of the half-open ones.
    peer_dirty: Vec<SerialNo>,
    /// The timers of every SA (cleared with the SA).
    pub timers: TimerTable,
}

/// Re-file the IKE SAs handed out mutably once this many have piled up without a lookup by
/// peer (keeps the list short when no lookup comes for a long time).
const PEER_DIRTY_MAX: usize = 256;

impl Default for SaTable {
    fn default() -> SaTable {
        SaTable::new()
    }
}

fn index_add<K: std::hash::Hash + Eq>(m: &mut HashMap<K, BTreeSet<SerialNo>>, k: K, s: SerialNo) {
    m.entry(k).or_default().insert(s);
}

fn index_remove<K: std::hash::Hash + Eq>(
    m: &mut HashMap<K, BTreeSet<SerialNo>>,
    k: &K,
    s: SerialNo,
) {
    if let Some(set) = m.get_mut(k) {
        set.remove(&s);
        if set.is_empty() {
            m.remove(k);
        }
    }
}

fn peer_spi_keys(p: PeerSpis) -> impl Iterator<Item = (Proto, u32)> {
    p.esp
        .map(|s| (Proto::Esp, s))
        .into_iter()
        .chain(p.ah.map(|s| (Proto::Ah, s)))
}

impl SaTable {
    /// An empty table; the first serial handed out is `#1`.
    pub fn new() -> SaTable {
        SaTable {
            ikes: BTreeMap::new(),
            children: BTreeMap::new(),
            next_serial: SerialNo::FIRST,
            by_conn: HashMap::new(),
            by_parent: HashMap::new(),
            by_spi_i: HashMap::new(),
            by_peer_spi: HashMap::new(),
            by_peer: HashMap::new(),
            peer_key: HashMap::new(),
            half_open: BTreeSet::new(),
            peer_dirty: Vec::new(),
            timers: TimerTable::default(),
        }
    }

    /// The next serial number (IKE and child SAs share the space).
    pub fn new_serial(&mut self) -> SerialNo {
        let s = self.next_serial;
        self.next_serial = s.next();
        s
    }

    /// Adds an IKE SA.
    pub fn insert_ike(&mut self, sa: IkeSa) {
        let s = sa.serial;
        index_add(&mut self.by_conn, sa.conn.clone(), s);
        index_add(&mut self.by_spi_i, sa.spi_i, s);
        let key = sa.peer_id.clone().map(|id| (id, sa.remote.ip()));
        if sa.exchange.half_open_responder() {
            self.half_open.insert(s);
        }
        self.ikes.insert(s, sa);
        self.file_peer(s, key);
    }

    /// Adds a child SA.
    pub fn insert_child(&mut self, sa: ChildSa) {
        let s = sa.serial;
        index_add(&mut self.by_conn, sa.conn.clone(), s);
        index_add(&mut self.by_parent, sa.parent, s);
        for k in peer_spi_keys(sa.peer_spis) {
            index_add(&mut self.by_peer_spi, k, s);
        }
        self.children.insert(s, sa);
    }

    /// Takes a record out, with its index entries and timers.
    pub fn remove(&mut self, s: SerialNo) -> Option<Removed> {
        self.timers.clear_all(s);
        if let Some(sa) = self.ikes.remove(&s) {
            index_remove(&mut self.by_conn, &sa.conn, s);
            index_remove(&mut self.by_spi_i, &sa.spi_i, s);
            self.file_peer(s, None);
            self.half_open.remove(&s);
            return Some(Removed::Ike(sa));
        }
        let sa = self.children.remove(&s)?;
        index_remove(&mut self.by_conn, &sa.conn, s);
        index_remove(&mut self.by_parent, &sa.parent, s);
        for k in peer_spi_keys(sa.peer_spis) {
            index_remove(&mut self.by_peer_spi, &k, s);
        }
        Some(Removed::Child(sa))
    }

    /// Moves an SA to another connection (a responder's conn switch, an instance made for a
    /// Road Warrior).
    pub fn set_conn(&mut self, s: SerialNo, key: &str) {
        let old = if let Some(sa) = self.ikes.get_mut(&s) {
            std::mem::replace(&mut sa.conn, key.to_string())
        } else if let Some(sa) = self.children.get_mut(&s) {
            std::mem::replace(&mut sa.conn, key.to_string())
        } else {
            return;
        };
        index_remove(&mut self.by_conn, &old, s);
        index_add(&mut self.by_conn, key.to_string(), s);
    }

    /// Moves a child SA under another IKE SA (IKEv2: the IKE SA that rekeyed its parent
    /// inherits its child SAs, RFC 7296 2.18).
    pub fn set_parent(&mut self, s: SerialNo, parent: SerialNo) {
        let Some(sa) = self.children.get_mut(&s) else {
            return;
        };
        let old = std::mem::replace(&mut sa.parent, parent);
        index_remove(&mut self.by_parent, &old, s);
        index_add(&mut self.by_parent, parent, s);
    }

    /// Records the peer's inbound SPIs of a child SA.
    pub fn set_peer_spis(&mut self, s: SerialNo, spis: PeerSpis) {
        let Some(sa) = self.children.get_mut(&s) else {
            return;
        };
        let old = std::mem::replace(&mut sa.peer_spis, spis);
        for k in peer_spi_keys(old) {
            index_remove(&mut self.by_peer_spi, &k, s);
        }
        for k in peer_spi_keys(spis) {
            index_add(&mut self.by_peer_spi, k, s);
        }
    }

    /// An IKE SA.
    pub fn ike(&self, s: SerialNo) -> Option<&IkeSa> {
        self.ikes.get(&s)
    }

    /// An IKE SA, mutably (re-filed by peer before the next lookup by peer).
    pub fn ike_mut(&mut self, s: SerialNo) -> Option<&mut IkeSa> {
        if !self.ikes.contains_key(&s) {
            return None;
        }
        if self.peer_dirty.len() >= PEER_DIRTY_MAX {
            self.refile_peers();
        }
        if self.peer_dirty.last() != Some(&s) {
            self.peer_dirty.push(s);
        }
        self.ikes.get_mut(&s)
    }

    /// Files IKE SA `s` under `key` (peer ID and address) in the peer index, or nowhere.
    fn file_peer(&mut self, s: SerialNo, key: Option<(Id, IpAddr)>) {
        if self.peer_key.get(&s) == key.as_ref() {
            return;
        }
        if let Some((id, ip)) = self.peer_key.remove(&s) {
            if let Some(by_ip) = self.by_peer.get_mut(&id) {
                index_remove(by_ip, &ip, s);
                if by_ip.is_empty() {
                    self.by_peer.remove(&id);
                }
            }
        }
        if let Some((id, ip)) = key {
            index_add(self.by_peer.entry(id.clone()).or_default(), ip, s);
            self.peer_key.insert(s, (id, ip));
        }
    }

    /// Re-files the IKE SAs handed out mutably since the last time.
    fn refile_peers(&mut self) {
        let dirty = std::mem::take(&mut self.peer_dirty);
        for &s in &dirty {
            if self
                .ikes
                .get(&s)
                .is_some_and(|sa| sa.exchange.half_open_responder())
            {
                self.half_open.insert(s);
            } else {
                self.half_open.remove(&s);
            }
            let key = self
                .ikes
                .get(&s)
                .and_then(|sa| Some((sa.peer_id.clone()?, sa.remote.ip())));
            // A cheap check first: most handed-out SAs changed neither field.
            let same = match (&key, self.peer_key.get(&s)) {
                (None, None) => true,
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
            if !same {
                self.file_peer(s, key);
            }
        }
        self.peer_dirty = dirty;
        self.peer_dirty.clear();
    }

    /// The IKE SAs in a half-open responder state ([`IkeExchange::half_open_responder`];
    /// IKEv1 MainR1/MainR2, IKEv2 ParentR1), oldest first: the index, not a visit of every
    /// IKE SA.
    pub fn half_open_ikes(&mut self) -> impl DoubleEndedIterator<Item = &IkeSa> {
        self.refile_peers();
        self.half_open.iter().filter_map(|s| self.ikes.get(s))
    }

    /// The IKE SAs whose authenticated peer ID equals `id` (`Id`'s equality), oldest first.
    pub fn ikes_with_peer_id(&mut self, id: &Id) -> Vec<SerialNo> {
        self.refile_peers();
        let mut v: Vec<SerialNo> = self
            .by_peer
            .get(id)
            .into_iter()
            .flat_map(|by_ip| by_ip.values().flatten().copied())
            .collect();
        v.sort_unstable();
        v
    }

    /// The IKE SAs whose authenticated peer ID equals `id` and whose peer is at another
    /// address than `ip`, oldest first.
    pub fn ikes_with_peer_id_elsewhere(&mut self, id: &Id, ip: IpAddr) -> Vec<SerialNo> {
        self.refile_peers();
        let mut v: Vec<SerialNo> = self
            .by_peer
            .get(id)
            .into_iter()
            .flat_map(|by_ip| by_ip.iter())
            .filter(|(a, _)| **a != ip)
            .flat_map(|(_, set)| set.iter().copied())
            .collect();
        v.sort_unstable();
        v
    }

    /// A child SA.
    pub fn child(&self, s: SerialNo) -> Option<&ChildSa> {
        self.children.get(&s)
    }

    /// A child SA, mutably.
    pub fn child_mut(&mut self, s: SerialNo) -> Option<&mut ChildSa> {
        self.children.get_mut(&s)
    }

    /// Whether `s` is a live SA of either kind.
    pub fn contains(&self, s: SerialNo) -> bool {
        self.ikes.contains_key(&s) || self.children.contains_key(&s)
    }

    /// The connection of an SA.
    pub fn conn_of(&self, s: SerialNo) -> Option<&str> {
        self.ikes
            .get(&s)
            .map(|x| x.conn.as_str())
            .or_else(|| self.children.get(&s).map(|x| x.conn.as_str()))
    }

    /// The whack client of an SA, mutably.
    pub fn whack_mut(&mut self, s: SerialNo) -> Option<&mut Option<WhackClient>> {
        if let Some(sa) = self.ikes.get_mut(&s) {
            return Some(&mut sa.whack);
        }
        self.children.get_mut(&s).map(|c| &mut c.whack)
    }

    /// The retransmission data of an SA, mutably.
    pub fn rtx_mut(&mut self, s: SerialNo) -> Option<&mut Retransmission> {
        if let Some(sa) = self.ikes.get_mut(&s) {
            return Some(&mut sa.rtx);
        }
        self.children.get_mut(&s).map(|c| &mut c.rtx)
    }

    /// The retransmission data of an SA.
    pub fn rtx(&self, s: SerialNo) -> Option<&Retransmission> {
        self.ikes
            .get(&s)
            .map(|x| &x.rtx)
            .or_else(|| self.children.get(&s).map(|c| &c.rtx))
    }

    /// How many SAs of either kind.
    pub fn len(&self) -> usize {
        self.ikes.len() + self.children.len()
    }

    /// No SA at all.
    pub fn is_empty(&self) -> bool {
        self.ikes.is_empty() && self.children.is_empty()
    }

    /// Every IKE SA, oldest first.
    pub fn ikes(&self) -> impl DoubleEndedIterator<Item = &IkeSa> {
        self.ikes.values()
    }

    /// Every child SA, oldest first.
    pub fn children(&self) -> impl DoubleEndedIterator<Item = &ChildSa> {
        self.children.values()
    }

    /// Every serial, oldest first.
    pub fn serials(&self) -> Vec<SerialNo> {
        let mut v: Vec<SerialNo> = self
            .ikes
            .keys()
            .chain(self.children.keys())
            .copied()
            .collect();
        v.sort_unstable();
        v
    }

    /// The SAs of a connection, oldest first.
    pub fn of_conn(&self, key: &str) -> Vec<SerialNo> {
        self.by_conn
            .get(key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether a connection has any SA.
    pub fn conn_has_sas(&self, key: &str) -> bool {
        self.by_conn.contains_key(key)
    }

    /// The IKE SAs of a connection, oldest first.
    pub fn ikes_of_conn<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a IkeSa> + 'a {
        self.by_conn
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|s| self.ikes.get(s))
    }

    /// The child SAs of a connection, oldest first.
    pub fn children_of_conn<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a ChildSa> + 'a {
        self.by_conn
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|s| self.children.get(s))
    }

    /// The child SAs negotiated over IKE SA `parent`, oldest first.
    pub fn children_of(&self, parent: SerialNo) -> impl Iterator<Item = &ChildSa> {
        self.by_parent
            .get(&parent)
            .into_iter()
            .flatten()
            .filter_map(|s| self.children.get(s))
    }

    /// The IKE SAs with initiator SPI (IKEv1: CKY-I) `spi_i`, oldest first.
    pub fn by_spi_i(&self, spi_i: &[u8; 8]) -> impl Iterator<Item = &IkeSa> {
        self.by_spi_i
            .get(spi_i)
            .into_iter()
            .flatten()
            .filter_map(|s| self.ikes.get(s))
    }

    /// The child SAs whose peer's inbound SPI of `proto` (ESP or AH) is `spi`, oldest first.
    pub fn by_peer_spi(&self, proto: Proto, spi: u32) -> impl Iterator<Item = &ChildSa> {
        self.by_peer_spi
            .get(&(proto, spi))
            .into_iter()
            .flatten()
            .filter_map(|s| self.children.get(s))
    }

    /// Checks that every index entry names a live record that has that key, that every record
    /// is in each index it belongs to, and that no timer is armed for a gone SA.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut want_conn: HashMap<&str, BTreeSet<SerialNo>> = HashMap::new();
        let mut want_parent: HashMap<SerialNo, BTreeSet<SerialNo>> = HashMap::new();
        let mut want_spi: HashMap<[u8; 8], BTreeSet<SerialNo>> = HashMap::new();
        let mut want_peer: HashMap<(Proto, u32), BTreeSet<SerialNo>> = HashMap::new();
        for (s, sa) in &self.ikes {
            if sa.serial != *s {
                return Err(format!("IKE SA #{} filed under #{s}", sa.serial));
            }
            if self.children.contains_key(s) {
                return Err(format!("#{s} is both an IKE SA and a child SA"));
            }
            want_conn.entry(&sa.conn).or_default().insert(*s);
            want_spi.entry(sa.spi_i).or_default().insert(*s);
        }
        for (s, sa) in &self.children {
            if sa.serial != *s {
                return Err(format!("child SA #{} filed under #{s}", sa.serial));
            }
            want_conn.entry(&sa.conn).or_default().insert(*s);
            want_parent.entry(sa.parent).or_default().insert(*s);
            for k in peer_spi_keys(sa.peer_spis) {
                want_peer.entry(k).or_default().insert(*s);
            }
        }
        let conn: HashMap<&str, BTreeSet<SerialNo>> = self
            .by_conn
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if conn != want_conn {
            return Err(format!(
                "conn index {conn:?} does not match the records {want_conn:?}"
            ));
        }
        if self.by_parent != want_parent {
            return Err(format!(
                "parent index {:?} does not match the records {want_parent:?}",
                self.by_parent
            ));
        }
        if self.by_spi_i != want_spi {
            return Err("initiator SPI index does not match the records".into());
        }
        if self.by_peer_spi != want_peer {
            return Err(format!(
                "peer SPI index {:?} does not match the records {want_peer:?}",
                self.by_peer_spi
            ));
        }
        // The peer index: every IKE SA not waiting to be re-filed is filed under its current
        // peer ID and address, and the index holds exactly what `peer_key` says.
        for (s, sa) in &self.ikes {
            if self.peer_dirty.contains(s) {
                continue;
            }
            if sa.exchange.half_open_responder() != self.half_open.contains(s) {
                return Err(format!("IKE SA #{s} misfiled as half-open or not"));
            }
            let want = sa.peer_id.clone().map(|id| (id, sa.remote.ip()));
            if self.peer_key.get(s) != want.as_ref() {
                return Err(format!(
                    "IKE SA #{s} filed by peer as {:?}, is {want:?}",
                    self.peer_key.get(s)
                ));
            }
        }
        let filed: usize = self
            .by_peer
            .values()
            .flat_map(|by_ip| by_ip.values())
            .map(BTreeSet::len)
            .sum();
        if filed != self.peer_key.len()
            || self.peer_key.iter().any(|(s, (id, ip))| {
                !self.ikes.contains_key(s)
                    || !self
                        .by_peer
                        .get(id)
                        .and_then(|by_ip| by_ip.get(ip))
                        .is_some_and(|set| set.contains(s))
            })
        {
            return Err("peer index does not match the filed IKE SAs".into());
        }
        if self.half_open.iter().any(|s| !self.ikes.contains_key(s)) {
            return Err("a gone IKE SA is filed as half-open".into());
        }
        if let Some(s) = self.timers.serials().find(|s| !self.contains(*s)) {
            return Err(format!("timer armed for gone SA #{s}"));
        }
        self.timers.check_invariants()?;
        if self
            .ikes
            .keys()
            .chain(self.children.keys())
            .any(|s| *s >= self.next_serial)
        {
            return Err("a record's serial was never handed out".into());
        }
        Ok(())
    }
}

/// Panics if the table's indexes or timers drifted from its records (tests).
#[cfg(test)]
pub(crate) fn assert_consistent(t: &SaTable) {
    if let Err(e) = t.check_invariants() {
        panic!("SA table inconsistent: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::pluto::timers::TimerKind;
    use crate::pluto::version::testing::{child_x, ike_x};

    fn ep(n: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, n), 500))
    }

    fn ike(t: &mut SaTable, conn: &str, spi: u8) -> SerialNo {
        let s = t.new_serial();
        t.insert_ike(IkeSa::new(
            s,
            NewIkeSa {
                conn: conn.into(),
                spi_i: [spi; 8],
                spi_r: [0; 8],
                initiator: true,
                local: ep(1),
                remote: ep(2),
                created: 0,
                exchange: ike_x(),
            },
        ));
        s
    }

    fn child(t: &mut SaTable, conn: &str, parent: SerialNo) -> SerialNo {
        let s = t.new_serial();
        t.insert_child(ChildSa::new(
            s,
            NewChildSa {
                conn: conn.into(),
                parent,
                initiator: true,
                our: Spis::default(),
                our_client: Subnet::host(Ipv4Addr::new(10, 0, 0, 1)),
                peer_client: Subnet::host(Ipv4Addr::new(10, 0, 0, 2)),
                created: 0,
                exchange: child_x(),
            },
        ));
        s
    }

    #[test]
    fn serials_are_shared_and_increasing() {
        let mut t = SaTable::new();
        let a = ike(&mut t, "net", 1);
        let b = child(&mut t, "net", a);
        let c = ike(&mut t, "other", 2);
        assert_eq!((a.get(), b.get(), c.get()), (1, 2, 3));
        assert_eq!(t.serials(), vec![a, b, c]);
        assert_eq!(t.len(), 3);
        assert!(t.ike(b).is_none() && t.child(b).is_some());
        assert_consistent(&t);
    }

    /// The peer index (peer ID and address) agrees with a full scan of the IKE SAs after
    /// inserts, changes through `ike_mut` (ID set, peer moved), and removals.
    #[test]
    fn peer_lookups_agree_with_a_full_scan() {
        let mut t = SaTable::new();
        let ids: Vec<Id> = ["@peer-1", "@PEER-1.", "@peer-2", "%any", "192.0.2.9"]
            .iter()
            .map(|i| i.parse().unwrap())
            .collect();
        let mut all = Vec::new();
        for i in 0..40u8 {
            let s = ike(&mut t, &format!("c{}", i % 7), i);
            if i % 5 != 4 {
                let sa = t.ike_mut(s).unwrap();
                sa.peer_id = Some(ids[usize::from(i) % ids.len()].clone());
                sa.remote = ep(2 + i % 3);
            }
            all.push(s);
        }
        fn agree(t: &mut SaTable, ids: &[Id]) {
            for id in ids.iter().chain([&"@nobody".parse::<Id>().unwrap()]) {
                let want: Vec<SerialNo> = t
                    .ikes()
                    .filter(|s| s.peer_id.as_ref() == Some(id))
                    .map(IkeSa::serial)
                    .collect();
                assert_eq!(t.ikes_with_peer_id(id), want, "{id}");
                for n in 1..6 {
                    let ip = ep(n).ip();
                    let want: Vec<SerialNo> = t
                        .ikes()
                        .filter(|s| s.peer_id.as_ref() == Some(id) && s.remote.ip() != ip)
                        .map(IkeSa::serial)
                        .collect();
                    assert_eq!(t.ikes_with_peer_id_elsewhere(id, ip), want, "{id} {ip}");
                }
            }
            let want: Vec<SerialNo> = t
                .ikes()
                .filter(|s| s.exchange.half_open_responder())
                .map(IkeSa::serial)
                .collect();
            let got: Vec<SerialNo> = t.half_open_ikes().map(IkeSa::serial).collect();
            assert_eq!(got, want);
            assert_consistent(t);
        }
        use crate::pluto::ikev1::state::StateKind;
        let set_kind = |t: &mut SaTable, s: SerialNo, k: StateKind| {
            if let Some(x) = t.ike_mut(s).and_then(|sa| sa.exchange.v1_mut()) {
                x.kind = k;
            }
        };
        for (k, s) in all.iter().enumerate() {
            if k % 3 == 0 {
                set_kind(&mut t, *s, StateKind::MainR1);
            }
        }
        agree(&mut t, &ids);
        // Peers move, IDs change or go, SAs go, states advance; a change made while others are
        // pending.
        for s in all.iter().step_by(2) {
            set_kind(&mut t, *s, StateKind::MainR3);
        }
        for (k, s) in all.iter().enumerate() {
            match k % 4 {
                0 => t.ike_mut(*s).unwrap().remote = ep(5),
                1 => t.ike_mut(*s).unwrap().peer_id = Some(ids[(k + 1) % ids.len()].clone()),
                2 => t.ike_mut(*s).unwrap().peer_id = None,
                _ => {
                    t.remove(*s);
                }
            }
            if k % 9 == 0 {
                agree(&mut t, &ids);
            }
        }
        agree(&mut t, &ids);
        // More SAs handed out than are kept pending: re-filed on the way.
        let keep = all[0];
        for _ in 0..(3 * PEER_DIRTY_MAX) {
            for s in &all[..8] {
                if let Some(sa) = t.ike_mut(*s) {
                    sa.remote = ep(if sa.remote == ep(2) { 3 } else { 2 });
                }
            }
        }
        assert!(t.peer_dirty.len() <= PEER_DIRTY_MAX);
        assert!(t.ike(keep).is_some());
        agree(&mut t, &ids);
    }

    #[test]
    fn indexes_follow_inserts_moves_and_removals() {
        let mut t = SaTable::new();
        let p = ike(&mut t, "net", 7);
        let c1 = child(&mut t, "net", p);
        let c2 = child(&mut t, "net", p);
        assert_eq!(t.of_conn("net"), vec![p, c1, c2]);
        let kids: Vec<SerialNo> = t.children_of(p).map(ChildSa::serial).collect();
        assert_eq!(kids, vec![c1, c2]);
        assert_eq!(
            t.by_spi_i(&[7; 8]).map(IkeSa::serial).collect::<Vec<_>>(),
            vec![p]
        );

        t.set_peer_spis(
            c1,
            PeerSpis {
                esp: Some(0x1234),
                ah: Some(0x99),
            },
        );
        assert_eq!(t.by_peer_spi(Proto::Esp, 0x1234).count(), 1);
        assert_eq!(t.by_peer_spi(Proto::Ah, 0x99).count(), 1);
        t.set_peer_spis(
            c1,
            PeerSpis {
                esp: Some(0x5678),
                ah: None,
            },
        );
        assert_eq!(t.by_peer_spi(Proto::Esp, 0x1234).count(), 0);
        assert_eq!(t.by_peer_spi(Proto::Ah, 0x99).count(), 0);
        assert_consistent(&t);

        t.set_conn(c2, "net[1]");
        assert_eq!(t.of_conn("net"), vec![p, c1]);
        assert_eq!(t.of_conn("net[1]"), vec![c2]);
        assert_eq!(t.conn_of(c2), Some("net[1]"));
        assert_consistent(&t);

        t.timers.set(c1, TimerKind::SaReplace, 100);
        t.timers.set(p, TimerKind::Liveness, 50);
        assert!(matches!(t.remove(c1), Some(Removed::Child(_))));
        assert_eq!(t.by_peer_spi(Proto::Esp, 0x5678).count(), 0);
        assert_eq!(t.timers.next_due(), Some(50));
        assert_consistent(&t);
        assert!(matches!(t.remove(p), Some(Removed::Ike(_))));
        assert!(t.remove(p).is_none());
        // The child outlives its parent in the parent index until it goes too.
        assert_eq!(t.children_of(p).count(), 1);
        assert_eq!(t.timers.next_due(), None);
        assert_consistent(&t);
        t.remove(c2);
        assert!(t.is_empty());
        assert!(!t.conn_has_sas("net") && !t.conn_has_sas("net[1]"));
        assert_consistent(&t);
    }

    #[test]
    fn invariant_check_notices_drift() {
        let mut t = SaTable::new();
        let p = ike(&mut t, "net", 1);
        // A timer for an SA that is gone.
        t.timers.set(SerialNo::new(42), TimerKind::SaExpire, 5);
        assert!(t.check_invariants().is_err());
        t.timers.clear_all(SerialNo::new(42));
        assert_consistent(&t);
        // A stale conn index entry.
        t.by_conn.entry("ghost".into()).or_default().insert(p);
        assert!(t.check_invariants().is_err());
    }
}
