//! The eroute table: (source net, destination net) → SAID or shunt, most specific match wins
//! (spec 5.3, 8). Packet counts are live; `%hold` eroutes keep the newest packet.
//!
//! Specificity follows KLIPS' radix tree keyed on the concatenated (source, destination) pair:
//! a longer source prefix beats any destination prefix, then the longer destination prefix wins.
//! The table keeps its eroutes in hash maps per (source length, destination length) class for
//! the control plane (exact get, add, replace, delete, listing) and, for packets, an immutable
//! [`index::LpmIndex`] rebuilt after every change: a lookup costs one hash probe per source
//! prefix length present plus a binary search per covering source network, whatever the number
//! of classes. [`ErouteTable::view`] hands the read side out as cheap `Arc` clones, so the
//! datapath reads one consistent view per batch without holding the table's lock.
//!
//! The src/32 → dst/32 `%hold` eroutes a `%trap` creates for trapped packets are bounded: the
//! table remembers them in creation order and [`ErouteTable::add_trap_hold`] evicts the oldest
//! once there are more than the limit ([`DEFAULT_MAX_TRAP_HOLDS`] unless configured), so hosts
//! behind a `%trap` cannot grow the table without bound by sending to many destinations. They
//! are kept out of the index (whose rebuild costs O(eroutes)) in a small host-pair overlay that
//! lookups consult first: a src/32 → dst/32 pair is the most specific match there is.
//!
//! Changes that leave the index's set of networks alone cost no rebuild either: an eroute
//! replaced by one for the same networks (a `%trap` keyed into its SA group) takes its
//! predecessor's slot, and up to [`RECENT_MAX`] eroutes added since the last rebuild wait in a
//! small overlay probed per class (most specific first) and weighed against the index's answer
//! by specificity. The index is rebuilt when that overlay is full or an indexed eroute goes —
//! once per batch of changes at most.
//!
//! Both address families live in the table: an IPv4 eroute matches IPv4 packets and an IPv6
//! eroute IPv6 ones, each family with its own index (32-bit and 128-bit keys), so neither
//! family's lookups pay for the other's entries. An eroute mixing the families matches nothing
//! and [`ErouteTable::add`] refuses it.

pub mod index;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::addr::{Family, Subnet};
use crate::said::Said;

/// One eroute.
#[derive(Debug)]
pub struct Eroute {
    /// Source network.
    pub src: Subnet,
    /// Destination network.
    pub dst: Subnet,
    /// The SA group head or shunt this eroute sends matching packets to.
    pub said: Said,
    /// Packets matched so far.
    pub count: AtomicU64,
    /// For `%hold`: the newest packet held while waiting for keying.
    pub held: Mutex<Option<Vec<u8>>>,
    /// A `%hold` a `%trap` made for one trapped packet's (source, destination) pair: counted
    /// against the trap-hold limit.
    trap_hold: bool,
}

impl Eroute {
    /// A new eroute with a zero count.
    pub fn new(src: Subnet, dst: Subnet, said: Said) -> Eroute {
        Eroute {
            src,
            dst,
            said,
            count: AtomicU64::new(0),
            held: Mutex::new(None),
            trap_hold: false,
        }
    }

    /// Whether this is a `%hold` made by a `%trap` (see [`ErouteTable::add_trap_hold`]).
    pub fn is_trap_hold(&self) -> bool {
        self.trap_hold
    }

    /// Packets matched so far.
    pub fn packets(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `/proc/net/ipsec_eroute` line: `"%-10d %-18s -> %-18s => %s"`.
    pub fn proc_line(&self) -> String {
        format!(
            "{:<10} {:<18} -> {:<18} => {}",
            self.packets(),
            self.src.to_string(),
            self.dst.to_string(),
            self.said
        )
    }
}

type Key = (IpAddr, IpAddr);

/// How many `%hold` eroutes made by `%trap` may exist at once unless configured otherwise
/// ([`crate::klips::Klips::set_max_trap_holds`]). Each one waits for a negotiation and holds
/// one packet (up to an MTU), so this also bounds that memory (about 1.5 MB at 1024).
pub const DEFAULT_MAX_TRAP_HOLDS: usize = 1024;

/// The `%hold` eroutes made by `%trap`, oldest first. `order` may also hold entries for holds
/// that were since replaced or deleted; they are skipped, and pruned when they pile up.
#[derive(Debug, Default)]
struct TrapHolds {
    order: VecDeque<Weak<Eroute>>,
    /// How many trap holds are in the table now.
    live: usize,
}

type HoldMap = crate::fasthash::FastMap<Key, Arc<Eroute>>;

/// Shards of the host-pair overlay: a change copies one shard (a sixteenth of at most the
/// trap-hold limit), not the whole overlay, when a view still holds the old one.
const HOLD_SHARDS: usize = 16;

/// The host-pair overlay, sharded copy-on-write.
#[derive(Debug, Clone, Default)]
struct Holds {
    shards: [Arc<HoldMap>; HOLD_SHARDS],
    len: usize,
}

impl Holds {
    fn shard(k: &Key) -> usize {
        let (a, b) = (crate::addr::ip_bits(k.0), crate::addr::ip_bits(k.1));
        ((a ^ b ^ (b >> 8)) as usize) % HOLD_SHARDS
    }

    #[inline]
    fn get(&self, k: &Key) -> Option<&Arc<Eroute>> {
        if self.len == 0 {
            return None;
        }
        self.shards[Self::shard(k)].get(k)
    }

    fn insert(&mut self, k: Key, e: Arc<Eroute>) {
        if Arc::make_mut(&mut self.shards[Self::shard(&k)])
            .insert(k, e)
            .is_none()
        {
            self.len += 1;
        }
    }

    fn remove(&mut self, k: &Key) {
        if Arc::make_mut(&mut self.shards[Self::shard(k)])
            .remove(k)
            .is_some()
        {
            self.len -= 1;
        }
    }
}

/// The indexed eroutes (all but the trap holds) in index order. The indexes are shared
/// between views: an eroute replaced by one for the same networks only changes `entries`.
#[derive(Debug, Default, Clone)]
struct Indexed {
    /// The IPv4 eroutes' index.
    v4: Arc<index::LpmIndex<u32>>,
    /// The IPv6 eroutes' index.
    v6: Arc<index::LpmIndex<u128>>,
    entries: Vec<Arc<Eroute>>,
}

impl Indexed {
    #[inline]
    fn lookup(&self, src: IpAddr, dst: IpAddr) -> Option<u32> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.v4.lookup(u32::from(s), u32::from(d)),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.v6.lookup(u128::from(s), u128::from(d)),
            _ => None,
        }
    }
}

/// Most eroutes added since the index was built that wait in [`Recent`] before a rebuild.
pub const RECENT_MAX: usize = 64;

/// Eroutes added since the index was built (at most [`RECENT_MAX`]), by class, so an addition
/// does not rebuild the whole index at once.
#[derive(Debug, Clone, Default)]
struct Recent {
    /// Classes present, most specific first (as [`ErouteTable`]'s).
    classes: Vec<Class>,
    map: crate::fasthash::FastMap<(Class, Key), Arc<Eroute>>,
}

impl Recent {
    /// The most specific of these eroutes covering `src` → `dst`.
    #[inline]
    fn lookup(&self, src: IpAddr, dst: IpAddr) -> Option<&Arc<Eroute>> {
        if self.map.is_empty() {
            return None;
        }
        let f = Family::of(src);
        if Family::of(dst) != f {
            return None;
        }
        self.classes.iter().filter(|c| c.0 == f).find_map(|&c| {
            let k = (Subnet::new(src, c.1).ip(), Subnet::new(dst, c.2).ip());
            self.map.get(&(c, k))
        })
    }

    fn insert(&mut self, c: Class, k: Key, e: Arc<Eroute>) {
        if !self.classes.contains(&c) {
            let pos = self
                .classes
                .iter()
                .position(|x| *x < c)
                .unwrap_or(self.classes.len());
            self.classes.insert(pos, c);
        }
        self.map.insert((c, k), e);
    }

    fn remove(&mut self, c: Class, k: Key) {
        self.map.remove(&(c, k));
        if !self.map.keys().any(|(x, _)| *x == c) {
            self.classes.retain(|x| *x != c);
        }
    }
}

/// Whether `b` is more specific than `a`, both covering a packet: the longer source prefix,
/// then the longer destination prefix (KLIPS' radix order).
fn more_specific(a: &Eroute, b: &Eroute) -> bool {
    (b.src.len(), b.dst.len()) > (a.src.len(), a.dst.len())
}

/// A consistent read-only view of the table for packet lookups: a few `Arc`s, cheap to clone
/// and to keep for a batch while the table changes behind it.
#[derive(Debug, Clone, Default)]
pub struct ErouteView {
    indexed: Arc<Indexed>,
    holds: Holds,
    recent: Arc<Recent>,
}

impl ErouteView {
    /// The most specific eroute covering a packet from `src` to `dst` (of one family).
    #[inline]
    pub fn lookup(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> Option<&Arc<Eroute>> {
        self.lookup_index(src, dst).map(|r| match r {
            Ok(i) => &self.indexed.entries[i],
            Err(e) => e,
        })
    }

    /// The indexed eroutes (trap holds excepted), in the order [`ErouteView::lookup_index`]
    /// numbers them.
    pub fn indexed(&self) -> &[Arc<Eroute>] {
        &self.indexed.entries
    }

    /// Like [`ErouteView::lookup`], also telling where the eroute sits: `Ok(i)` for the
    /// `i`-th of [`ErouteView::indexed`], `Err(e)` for one outside the index (a trap hold of
    /// the host-pair overlay, or one added since the index was built).
    #[inline]
    pub fn lookup_index(
        &self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
    ) -> Option<Result<usize, &Arc<Eroute>>> {
        let (s, d) = (src.into(), dst.into());
        if let Some(e) = self.holds.get(&(s, d)) {
            return Some(Err(e));
        }
        let hit = self.indexed.lookup(s, d).map(|i| i as usize);
        match (hit, self.recent.lookup(s, d)) {
            // The more specific of the two (recent entries never repeat indexed networks).
            (Some(i), Some(r)) if !more_specific(&self.indexed.entries[i], r) => Some(Ok(i)),
            (_, Some(r)) => Some(Err(r)),
            (i, None) => i.map(Ok),
        }
    }
}

/// The table of eroutes.
#[derive(Debug, Default)]
pub struct ErouteTable {
    /// Classes (family, source length, destination length), most specific first.
    classes: Vec<Class>,
    maps: HashMap<Class, HashMap<Key, Arc<Eroute>>>,
    trap_holds: TrapHolds,
    /// The read side: index over every eroute but the overlay's.
    view: ErouteView,
    /// The index misses changes made since it was built ([`ErouteTable::refresh`]).
    dirty: bool,
    /// Bumped whenever the index is rebuilt.
    generation: u64,
    /// Where each indexed eroute sits in the view's entries (valid while not `dirty`): an
    /// eroute replaced by one for the same networks takes its predecessor's place without a
    /// rebuild.
    pos: HashMap<(Class, Key), u32>,
}

/// An eroute's class: the family of its source, then (source length, destination length).
type Class = (Family, u8, u8);

fn class(src: &Subnet, dst: &Subnet) -> Class {
    (src.family(), src.len(), dst.len())
}

/// Whether `e` lives in the host-pair overlay instead of the index.
fn in_overlay(e: &Eroute) -> bool {
    e.trap_hold && e.src.is_host() && e.dst.is_host()
}

fn key(src: &Subnet, dst: &Subnet) -> Key {
    (src.ip(), dst.ip())
}

impl ErouteTable {
    /// An empty table.
    pub fn new() -> ErouteTable {
        ErouteTable::default()
    }

    /// Number of eroutes.
    pub fn len(&self) -> usize {
        self.maps.values().map(HashMap::len).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The eroute with exactly these networks.
    pub fn get(&self, src: &Subnet, dst: &Subnet) -> Option<&Arc<Eroute>> {
        self.maps.get(&class(src, dst))?.get(&key(src, dst))
    }

    /// Adds an eroute; fails if one with the same networks exists (`--add`) or if its networks
    /// are of different families.
    pub fn add(&mut self, e: Eroute) -> Result<Arc<Eroute>, String> {
        if e.src.family() != e.dst.family() {
            return Err(format!(
                "eroute {} -> {} mixes {} and {} networks",
                e.src,
                e.dst,
                e.src.family(),
                e.dst.family()
            ));
        }
        if self.get(&e.src, &e.dst).is_some() {
            return Err(format!("eroute {} -> {} already exists", e.src, e.dst));
        }
        Ok(self.insert(e).0)
    }

    /// Adds or replaces (`--replace`). Returns the new eroute and the one it replaced, whose held
    /// packet the caller may now send.
    pub fn replace(&mut self, e: Eroute) -> (Arc<Eroute>, Option<Arc<Eroute>>) {
        self.insert(e)
    }

    /// Installs the `%hold` eroute `src` → `dst` (`said` is `%hold`) that a `%trap` makes for
    /// a trapped packet, replacing whatever had exactly these networks. If that makes more than
    /// `limit` (at least 1) such holds, the oldest ones are deleted and returned: their held
    /// packets are lost, and a negotiation waiting for one finds no hold to release.
    pub fn add_trap_hold(
        &mut self,
        src: Subnet,
        dst: Subnet,
        said: Said,
        limit: usize,
    ) -> (Arc<Eroute>, Vec<Arc<Eroute>>) {
        let mut e = Eroute::new(src, dst, said);
        e.trap_hold = true;
        let (new, _) = self.insert(e);
        self.trap_holds.order.push_back(Arc::downgrade(&new));
        let mut evicted = Vec::new();
        while self.trap_holds.live > limit.max(1) {
            let Some(oldest) = self.trap_holds.order.pop_front() else {
                break;
            };
            if let Some(old) = self.live_trap_hold(&oldest) {
                self.delete(&old.src, &old.dst);
                evicted.push(old);
            }
        }
        // Replaced or deleted holds leave dead entries behind: prune them before they
        // outnumber the live ones, so the queue stays proportional to the limit.
        if self.trap_holds.order.len() > 2 * self.trap_holds.live + 64 {
            let order = std::mem::take(&mut self.trap_holds.order);
            self.trap_holds.order = order
                .into_iter()
                .filter(|w| self.live_trap_hold(w).is_some())
                .collect();
        }
        (new, evicted)
    }

    /// The trap hold `w` points to, if it is still the table's eroute for its networks.
    fn live_trap_hold(&self, w: &Weak<Eroute>) -> Option<Arc<Eroute>> {
        let e = w.upgrade()?;
        let cur = self.get(&e.src, &e.dst)?;
        Arc::ptr_eq(cur, &e).then_some(e)
    }

    /// Number of `%hold` eroutes made by `%trap` in the table.
    pub fn trap_holds(&self) -> usize {
        self.trap_holds.live
    }

    fn insert(&mut self, e: Eroute) -> (Arc<Eroute>, Option<Arc<Eroute>>) {
        let class = class(&e.src, &e.dst);
        let k = key(&e.src, &e.dst);
        let e = Arc::new(e);
        let map = self.maps.entry(class).or_insert_with(|| {
            let pos = self
                .classes
                .iter()
                .position(|c| *c < class)
                .unwrap_or(self.classes.len());
            self.classes.insert(pos, class);
            HashMap::new()
        });
        let old = map.insert(k, e.clone());
        if e.trap_hold {
            self.trap_holds.live += 1;
        }
        if old.as_ref().is_some_and(|o| o.trap_hold) {
            self.trap_holds.live -= 1;
        }
        let mut reindex = !in_overlay(&e);
        let recent = self.view.recent.map.contains_key(&(class, k));
        match &old {
            Some(o) if in_overlay(o) => {
                self.view.holds.remove(&k);
            }
            // It waited in the recent overlay: it stays there (or moves to the host-pair one).
            Some(_) if recent => {
                let r = Arc::make_mut(&mut self.view.recent);
                if in_overlay(&e) {
                    r.remove(class, k);
                } else {
                    r.insert(class, k, e.clone());
                }
                reindex = false;
            }
            // Same networks, both indexed, index current: the new eroute takes the old one's
            // place in the entries (e.g. %trap replaced by the SA group once keyed), and the
            // index itself stands — no O(eroutes) rebuild.
            Some(_) if !in_overlay(&e) && !self.dirty => match self.pos.get(&(class, k)) {
                Some(&p) => {
                    Arc::make_mut(&mut self.view.indexed).entries[p as usize] = e.clone();
                    reindex = false;
                }
                None => reindex = true,
            },
            Some(_) => reindex = true,
            // A new pair of networks waits in the recent overlay while there is room.
            None if reindex && !self.dirty && self.view.recent.map.len() < RECENT_MAX => {
                Arc::make_mut(&mut self.view.recent).insert(class, k, e.clone());
                reindex = false;
            }
            None => {}
        }
        if in_overlay(&e) {
            self.view.holds.insert(k, e.clone());
        }
        if reindex {
            self.dirty = true;
        }
        (e, old)
    }

    /// Whether eroutes added since the index was built still wait outside it.
    pub fn has_recent(&self) -> bool {
        !self.view.recent.map.is_empty()
    }

    /// Folds the eroutes added since the index was built into it (the next [`view`] rebuilds),
    /// so the datapath stops probing them separately: the shell calls this now and then.
    ///
    /// [`view`]: ErouteTable::view
    pub fn settle(&mut self) {
        if self.has_recent() {
            self.dirty = true;
        }
    }

    /// Rebuilds the index if eroutes changed since it was built: once per batch of changes
    /// (the datapath's table guard calls it when the writer is done), not once per change.
    pub fn refresh(&mut self) {
        if self.dirty {
            self.reindex();
        }
    }

    /// Rebuilds the index from every eroute outside the overlay.
    fn reindex(&mut self) {
        self.pos.clear();
        let mut entries: Vec<Arc<Eroute>> = Vec::new();
        for (c, m) in &self.maps {
            for (k, e) in m.iter().filter(|(_, e)| !in_overlay(e)) {
                self.pos.insert((*c, *k), entries.len() as u32);
                entries.push(e.clone());
            }
        }
        let pairs = || entries.iter().enumerate().map(|(i, e)| (i as u32, e));
        let v4 = index::LpmIndex::build(pairs().filter_map(|(value, e)| {
            match (e.src.ip(), e.dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => Some(index::Entry {
                    src: u32::from(s),
                    src_len: e.src.len(),
                    dst: u32::from(d),
                    dst_len: e.dst.len(),
                    value,
                }),
                _ => None,
            }
        }));
        let v6 = index::LpmIndex::build(pairs().filter_map(|(value, e)| {
            match (e.src.ip(), e.dst.ip()) {
                (IpAddr::V6(s), IpAddr::V6(d)) => Some(index::Entry {
                    src: u128::from(s),
                    src_len: e.src.len(),
                    dst: u128::from(d),
                    dst_len: e.dst.len(),
                    value,
                }),
                _ => None,
            }
        }));
        self.view.indexed = Arc::new(Indexed {
            v4: Arc::new(v4),
            v6: Arc::new(v6),
            entries,
        });
        self.view.recent = Arc::default();
        self.dirty = false;
        self.generation += 1;
    }

    /// The read side for packet lookups, as of now (rebuilding the index first if needed).
    pub fn view(&mut self) -> ErouteView {
        self.refresh();
        self.view.clone()
    }

    /// Bumped whenever the index is rebuilt (not for trap-hold changes, which the overlay takes
    /// at once).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Deletes the eroute with exactly these networks.
    pub fn delete(&mut self, src: &Subnet, dst: &Subnet) -> Option<Arc<Eroute>> {
        let class = class(src, dst);
        let map = self.maps.get_mut(&class)?;
        let k = key(src, dst);
        let old = map.remove(&k);
        if map.is_empty() {
            self.maps.remove(&class);
            self.classes.retain(|c| *c != class);
        }
        if old.as_ref().is_some_and(|o| o.trap_hold) {
            self.trap_holds.live -= 1;
        }
        match &old {
            Some(o) if in_overlay(o) => {
                self.view.holds.remove(&k);
            }
            Some(_) if self.view.recent.map.contains_key(&(class, k)) => {
                Arc::make_mut(&mut self.view.recent).remove(class, k);
            }
            Some(_) => self.dirty = true,
            None => {}
        }
        old
    }

    /// Removes every eroute.
    pub fn clear(&mut self) {
        self.maps.clear();
        self.classes.clear();
        self.trap_holds = TrapHolds::default();
        self.view = ErouteView::default();
        self.pos.clear();
        self.dirty = false;
        self.generation += 1;
    }

    /// The most specific eroute covering a packet from `src` to `dst`: through the index when
    /// it is up to date, else by probing each (source length, destination length) class in
    /// order of specificity.
    pub fn lookup(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> Option<&Arc<Eroute>> {
        let (src, dst) = (src.into(), dst.into());
        if !self.dirty {
            return self.view.lookup(src, dst);
        }
        let f = Family::of(src);
        if Family::of(dst) != f {
            return None;
        }
        self.classes
            .iter()
            .filter(|c| c.0 == f)
            .find_map(|&(_, sl, dl)| {
                let k = (Subnet::new(src, sl).ip(), Subnet::new(dst, dl).ip());
                self.maps.get(&(f, sl, dl))?.get(&k)
            })
    }

    /// Every eroute, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Eroute>> {
        self.maps.values().flat_map(HashMap::values)
    }

    /// Every eroute, sorted by source then destination address (as `ipsec look` lists them).
    pub fn sorted(&self) -> Vec<Arc<Eroute>> {
        let mut v: Vec<_> = self
            .maps
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        v.sort_by_key(|e| (e.src, e.dst));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::said::{Proto, Shunt};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn net(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    fn shunt(s: Shunt) -> Said {
        Said::new(Proto::Int, s.spi(), Ipv4Addr::UNSPECIFIED)
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn most_specific_wins() {
        let mut t = ErouteTable::new();
        t.add(Eroute::new(
            net("0.0.0.0/0"),
            net("0.0.0.0/0"),
            shunt(Shunt::Drop),
        ))
        .unwrap();
        t.add(Eroute::new(
            net("10.0.1.0/24"),
            net("10.0.2.0/24"),
            shunt(Shunt::Trap),
        ))
        .unwrap();
        t.add(Eroute::new(
            net("10.0.1.0/24"),
            net("10.0.2.7/32"),
            shunt(Shunt::Pass),
        ))
        .unwrap();
        t.add(Eroute::new(
            net("10.0.1.5/32"),
            net("0.0.0.0/0"),
            shunt(Shunt::Reject),
        ))
        .unwrap();
        for _ in 0..2 {
            let said = |s, d| t.lookup(ip(s), ip(d)).unwrap().said.shunt().unwrap();
            assert_eq!(said("10.0.1.9", "10.0.2.9"), Shunt::Trap);
            assert_eq!(said("10.0.1.9", "10.0.2.7"), Shunt::Pass);
            // a longer source prefix beats a longer destination prefix (KLIPS radix order)
            assert_eq!(said("10.0.1.5", "10.0.2.7"), Shunt::Reject);
            assert_eq!(said("192.168.0.1", "8.8.8.8"), Shunt::Drop);
            t.refresh();
        }
    }

    /// An eroute replaced by one for the same networks (a `%trap` keyed into an SA group)
    /// takes its predecessor's place in the view without an index rebuild; a view taken before
    /// keeps the old one; a new pair of networks still rebuilds.
    #[test]
    fn same_networks_replacement_keeps_the_index() {
        let mut t = ErouteTable::new();
        for i in 0..50 {
            let (s, d) = (format!("10.{i}.0.0/16"), format!("10.{}.0.0/16", 100 + i));
            t.add(Eroute::new(net(&s), net(&d), shunt(Shunt::Trap)))
                .unwrap();
        }
        t.add(Eroute::new(
            net("0.0.0.0/0"),
            net("0.0.0.0/0"),
            shunt(Shunt::Drop),
        ))
        .unwrap();
        let before = t.view();
        let g = t.generation();
        let esp = Said::new(Proto::Esp, 0x1234, ip("192.0.2.2"));
        t.replace(Eroute::new(net("10.7.0.0/16"), net("10.107.0.0/16"), esp));
        let after = t.view();
        assert_eq!(t.generation(), g, "the index was rebuilt");
        let (s, d) = (ip("10.7.1.1"), ip("10.107.2.2"));
        assert_eq!(after.lookup(s, d).unwrap().said, esp);
        assert_eq!(t.lookup(s, d).unwrap().said, esp);
        assert_eq!(before.lookup(s, d).unwrap().said.shunt(), Some(Shunt::Trap));
        let said = |v: &ErouteView, s: &str, d: &str| v.lookup(ip(s), ip(d)).unwrap().said;
        assert_eq!(
            said(&after, "10.8.1.1", "10.108.1.1").shunt(),
            Some(Shunt::Trap)
        );
        assert_eq!(
            said(&after, "1.1.1.1", "2.2.2.2").shunt(),
            Some(Shunt::Drop)
        );
        // A new pair of networks waits beside the index until it settles into a new one.
        t.add(Eroute::new(net("10.7.0.0/16"), net("10.200.0.0/16"), esp))
            .unwrap();
        let v = t.view();
        assert_eq!(t.generation(), g);
        assert!(t.has_recent());
        assert_eq!(said(&v, "10.7.1.1", "10.200.0.1"), esp);
        assert_eq!(said(&v, "10.7.1.1", "10.107.2.2"), esp);
        t.settle();
        let v = t.view();
        assert!(t.generation() > g);
        assert!(!t.has_recent());
        assert_eq!(said(&v, "10.7.1.1", "10.200.0.1"), esp);
        // And replacing after that rebuild uses the new positions.
        let esp2 = Said::new(Proto::Esp, 0x5678, ip("192.0.2.2"));
        t.replace(Eroute::new(net("10.9.0.0/16"), net("10.109.0.0/16"), esp2));
        let v = t.view();
        assert_eq!(said(&v, "10.9.0.1", "10.109.0.1"), esp2);
        assert_eq!(said(&v, "10.7.1.1", "10.200.0.1"), esp);
        assert_eq!(
            said(&v, "10.8.0.1", "10.108.0.1").shunt(),
            Some(Shunt::Trap)
        );
    }

    /// Random adds, replacements and deletions over networks of several classes (both
    /// families): after each step the view (index, slots replaced in place, recent overlay) and
    /// the table answer every probe like a brute-force most-specific search over all eroutes;
    /// the recent overlay never exceeds its bound.
    #[test]
    fn lookups_agree_with_brute_force_through_changes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut t = ErouteTable::new();
        let lens = [0u8, 8, 16, 24, 32];
        let v4 = |rng: &mut rand::rngs::StdRng| {
            IpAddr::from(Ipv4Addr::new(
                10,
                rng.gen_range(0..3),
                rng.gen_range(0..3),
                rng.gen_range(0..3),
            ))
        };
        let v6 = |rng: &mut rand::rngs::StdRng| {
            IpAddr::from(Ipv6Addr::new(
                0x2001,
                0xdb8,
                rng.gen_range(0..3),
                0,
                0,
                0,
                0,
                rng.gen_range(0..3),
            ))
        };
        let pick = |rng: &mut rand::rngs::StdRng, six: bool| {
            let a = if six { v6(rng) } else { v4(rng) };
            let l = lens[rng.gen_range(0..lens.len())] * if six { 4 } else { 1 };
            Subnet::new(a, l)
        };
        let brute = |t: &ErouteTable, s: IpAddr, d: IpAddr| {
            t.iter()
                .filter(|e| e.src.contains(s) && e.dst.contains(d))
                .max_by_key(|e| (e.src.len(), e.dst.len()))
                .map(|e| e.said)
        };
        let mut live: Vec<(Subnet, Subnet)> = Vec::new();
        for step in 0..3000u32 {
            let six = rng.gen_bool(0.3);
            match rng.gen_range(0..10) {
                0..=4 => {
                    let (s, d) = (pick(&mut rng, six), pick(&mut rng, six));
                    let said = Said::new(Proto::Esp, 0x100 + step, ip("192.0.2.2"));
                    t.replace(Eroute::new(s, d, said));
                    live.push((s, d));
                }
                5..=7 if !live.is_empty() => {
                    let (s, d) = live[rng.gen_range(0..live.len())];
                    let said = Said::new(Proto::Esp, 0x10000 + step, ip("192.0.2.2"));
                    t.replace(Eroute::new(s, d, said));
                }
                8 if !live.is_empty() => {
                    let (s, d) = live.swap_remove(rng.gen_range(0..live.len()));
                    t.delete(&s, &d);
                }
                _ => t.settle(),
            }
            let v = t.view();
            assert!(v.recent.map.len() <= RECENT_MAX);
            for _ in 0..20 {
                let six = rng.gen_bool(0.3);
                let (s, d) = if six {
                    (v6(&mut rng), v6(&mut rng))
                } else {
                    (v4(&mut rng), v4(&mut rng))
                };
                let want = brute(&t, s, d);
                assert_eq!(
                    v.lookup(s, d).map(|e| e.said),
                    want,
                    "step {step}: {s} -> {d}"
                );
                assert_eq!(
                    t.lookup(s, d).map(|e| e.said),
                    want,
                    "step {step}: {s} -> {d}"
                );
                let by_index = v.lookup_index(s, d).map(|r| match r {
                    Ok(i) => v.indexed()[i].said,
                    Err(e) => e.said,
                });
                assert_eq!(by_index, want, "step {step}: {s} -> {d}");
            }
        }
    }

    #[test]
    fn no_match_without_default() {
        let mut t = ErouteTable::new();
        t.add(Eroute::new(
            net("10.0.1.0/24"),
            net("10.0.2.0/24"),
            shunt(Shunt::Pass),
        ))
        .unwrap();
        assert!(t.lookup(ip("10.0.3.1"), ip("10.0.2.1")).is_none());
    }

    #[test]
    fn add_replace_delete() {
        let mut t = ErouteTable::new();
        let (s, d) = (net("10.0.1.0/24"), net("10.0.2.0/24"));
        t.add(Eroute::new(s, d, shunt(Shunt::Hold))).unwrap();
        assert!(t.add(Eroute::new(s, d, shunt(Shunt::Pass))).is_err());
        let (_, old) = t.replace(Eroute::new(s, d, shunt(Shunt::Pass)));
        assert_eq!(old.unwrap().said.shunt(), Some(Shunt::Hold));
        assert_eq!(t.len(), 1);
        assert!(t.delete(&s, &d).is_some());
        assert!(t.is_empty());
        assert!(t.classes.is_empty());
    }

    #[test]
    fn ten_thousand_eroutes() {
        let mut t = ErouteTable::new();
        for i in 0..10_000u32 {
            let src = Subnet::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24);
            let dst = Subnet::new(Ipv4Addr::from(0xac10_0000 + (i << 8)), 24);
            t.add(Eroute::new(
                src,
                dst,
                Said::new(Proto::Tun, 0x1000 + i, ip("192.0.2.2")),
            ))
            .unwrap();
        }
        // Class walk (index not rebuilt yet), then the index, then a view kept across a change.
        for pass in 0..2 {
            for i in (0..10_000u32).step_by(97) {
                let e = t
                    .lookup(
                        Ipv4Addr::from(0x0a00_0005 + (i << 8)),
                        Ipv4Addr::from(0xac10_0009 + (i << 8)),
                    )
                    .unwrap();
                assert_eq!(e.said.spi, 0x1000 + i, "pass {pass}");
            }
            t.refresh();
        }
        let view = t.view();
        t.delete(
            &Subnet::new(Ipv4Addr::from(0x0a00_0000), 24),
            &Subnet::new(Ipv4Addr::from(0xac10_0000), 24),
        );
        let (a, b) = (Ipv4Addr::from(0x0a00_0001), Ipv4Addr::from(0xac10_0001));
        assert!(view.lookup(a, b).is_some(), "a view does not change");
        assert!(t.lookup(a, b).is_none());
        assert!(t.view().lookup(a, b).is_none());
        assert_eq!(t.len(), 9_999);
    }

    fn host_pair(i: u32) -> (Subnet, Subnet) {
        (
            Subnet::host(ip("10.0.1.10")),
            Subnet::host(Ipv4Addr::from(0x0a00_0200 + i)),
        )
    }

    #[test]
    fn trap_holds_are_bounded_oldest_evicted_first() {
        let mut t = ErouteTable::new();
        t.add(Eroute::new(
            net("10.0.1.0/24"),
            net("10.0.2.0/24"),
            shunt(Shunt::Trap),
        ))
        .unwrap();
        for i in 0..4 {
            let (s, d) = host_pair(i);
            let (e, evicted) = t.add_trap_hold(s, d, shunt(Shunt::Hold), 4);
            assert!(e.is_trap_hold());
            assert!(evicted.is_empty());
        }
        assert_eq!((t.trap_holds(), t.len()), (4, 5));
        let (s, d) = host_pair(4);
        let (_, evicted) = t.add_trap_hold(s, d, shunt(Shunt::Hold), 4);
        assert_eq!(evicted.len(), 1);
        assert_eq!((evicted[0].src, evicted[0].dst), host_pair(0));
        assert!(t.get(&host_pair(0).0, &host_pair(0).1).is_none());
        assert_eq!((t.trap_holds(), t.len()), (4, 5));
        // The pair falls back to the %trap below it (which traps again): never uncovered.
        assert_eq!(
            t.lookup(ip("10.0.1.10"), ip("10.0.2.0"))
                .unwrap()
                .said
                .shunt(),
            Some(Shunt::Trap)
        );
        // The configured %trap itself is never evicted.
        for i in 5..100 {
            let (s, d) = host_pair(i);
            t.add_trap_hold(s, d, shunt(Shunt::Hold), 4);
        }
        assert_eq!((t.trap_holds(), t.len()), (4, 5));
        assert!(t.get(&net("10.0.1.0/24"), &net("10.0.2.0/24")).is_some());
        for i in 96..100 {
            assert!(t.get(&host_pair(i).0, &host_pair(i).1).is_some(), "{i}");
        }
    }

    /// A hold that keying replaced (by the tunnel eroute) or deleted no longer counts and is
    /// never evicted later; the queue of remembered holds stays small.
    #[test]
    fn replaced_or_deleted_trap_holds_leave_the_count() {
        let mut t = ErouteTable::new();
        let tunnel = Said::new(Proto::Tun, 0x1000, ip("192.0.2.2"));
        for i in 0..3 {
            let (s, d) = host_pair(i);
            t.add_trap_hold(s, d, shunt(Shunt::Hold), 3);
        }
        let (s0, d0) = host_pair(0);
        t.replace(Eroute::new(s0, d0, tunnel));
        let (s1, d1) = host_pair(1);
        t.delete(&s1, &d1);
        assert_eq!(t.trap_holds(), 1);
        // Two more fit; a third evicts the oldest live hold (pair 2), not the tunnel eroute.
        for i in 3..5 {
            let (s, d) = host_pair(i);
            assert!(t.add_trap_hold(s, d, shunt(Shunt::Hold), 3).1.is_empty());
        }
        let (s, d) = host_pair(5);
        let (_, ev) = t.add_trap_hold(s, d, shunt(Shunt::Hold), 3);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].src, ev[0].dst), host_pair(2));
        assert_eq!(t.get(&s0, &d0).unwrap().said, tunnel);
        // Churn: holds made and replaced over and over do not grow the queue.
        for i in 10..10_000 {
            let (s, d) = host_pair(i);
            t.add_trap_hold(s, d, shunt(Shunt::Hold), 3);
            t.replace(Eroute::new(s, d, tunnel));
            t.delete(&s, &d);
        }
        assert!(t.trap_holds.order.len() <= 2 * t.trap_holds() + 65);
        t.clear();
        assert_eq!(t.trap_holds(), 0);
    }

    #[test]
    fn proc_line_format() {
        let e = Eroute::new(net("10.0.1.0/24"), net("10.0.2.0/24"), shunt(Shunt::Trap));
        assert_eq!(
            e.proc_line(),
            "0          10.0.1.0/24        -> 10.0.2.0/24        => %trap"
        );
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// IPv6 eroutes keep most-specific-match order, beside IPv4 ones that never match IPv6
    /// packets (nor the other way round), through the class walk and the index alike.
    #[test]
    fn ipv6_most_specific_wins_beside_ipv4() {
        let mut t = ErouteTable::new();
        for (s, d, sh) in [
            ("0.0.0.0/0", "0.0.0.0/0", Shunt::Drop),
            ("::/0", "::/0", Shunt::Pass),
            ("2001:db8:1::/48", "2001:db8:2::/48", Shunt::Trap),
            ("2001:db8:1::/48", "2001:db8:2::7/128", Shunt::Hold),
            ("2001:db8:1::5/128", "::/0", Shunt::Reject),
        ] {
            t.add(Eroute::new(net(s), net(d), shunt(sh))).unwrap();
        }
        for _ in 0..2 {
            let said = |s, d| t.lookup(ip6(s), ip6(d)).unwrap().said.shunt().unwrap();
            assert_eq!(said("2001:db8:1::9", "2001:db8:2::9"), Shunt::Trap);
            assert_eq!(said("2001:db8:1::9", "2001:db8:2::7"), Shunt::Hold);
            assert_eq!(said("2001:db8:1::5", "2001:db8:2::7"), Shunt::Reject);
            assert_eq!(said("2001:db8:9::1", "2001:db8:2::7"), Shunt::Pass);
            assert_eq!(said_v4(&t, "10.0.1.9", "10.0.2.9"), Shunt::Drop);
            assert!(t.lookup(ip("10.0.1.9"), ip6("2001:db8:2::9")).is_none());
            t.refresh();
        }
        // A trap hold of an IPv6 host pair goes to the overlay and wins.
        let (hs, hd) = (net("2001:db8:1::9"), net("2001:db8:2::9"));
        t.add_trap_hold(hs, hd, shunt(Shunt::Hold), 8);
        let e = t.view();
        let e = e
            .lookup(ip6("2001:db8:1::9"), ip6("2001:db8:2::9"))
            .unwrap();
        assert!(e.is_trap_hold());
        assert!(t.delete(&hs, &hd).is_some());
        assert_eq!(t.trap_holds(), 0);
    }

    fn said_v4(t: &ErouteTable, s: &str, d: &str) -> Shunt {
        t.lookup(ip(s), ip(d)).unwrap().said.shunt().unwrap()
    }

    #[test]
    fn mixed_families_are_refused() {
        let mut t = ErouteTable::new();
        let e = t
            .add(Eroute::new(
                net("10.0.1.0/24"),
                net("2001:db8::/32"),
                shunt(Shunt::Pass),
            ))
            .unwrap_err();
        assert!(e.contains("mixes IPv4 and IPv6"), "{e}");
        assert!(t.is_empty());
    }

    #[test]
    fn ten_thousand_ipv6_eroutes() {
        let mut t = ErouteTable::new();
        let base_s = u128::from(ip6("2001:db8:1::"));
        let base_d = u128::from(ip6("2001:db8:2::"));
        let tunnel = ip6("2001:db8:ffff::2");
        for i in 0..10_000u128 {
            let src = Subnet::new(Ipv6Addr::from(base_s + (i << 64)), 64);
            let dst = Subnet::new(Ipv6Addr::from(base_d + (i << 64)), 64);
            t.add(Eroute::new(
                src,
                dst,
                Said::new(Proto::Tun, 0x1000 + i as u32, tunnel),
            ))
            .unwrap();
            // the same number of IPv4 ones beside them
            let src = Subnet::new(Ipv4Addr::from(0x0a00_0000 + ((i as u32) << 8)), 24);
            let dst = Subnet::new(Ipv4Addr::from(0xac10_0000 + ((i as u32) << 8)), 24);
            t.add(Eroute::new(
                src,
                dst,
                Said::new(Proto::Tun, 0x9000 + i as u32, ip("192.0.2.2")),
            ))
            .unwrap();
        }
        for pass in 0..2 {
            for i in (0..10_000u128).step_by(97) {
                let e = t
                    .lookup(
                        Ipv6Addr::from(base_s + (i << 64) + 5),
                        Ipv6Addr::from(base_d + (i << 64) + 9),
                    )
                    .unwrap();
                assert_eq!(e.said.spi, 0x1000 + i as u32, "pass {pass}");
                assert_eq!(e.said.dst, IpAddr::V6(tunnel));
            }
            t.refresh();
        }
        assert_eq!(t.len(), 20_000);
    }
}
