//! The eroute table: (source net, destination net) → SAID or shunt, most specific match wins
//! (spec 5.3, 8). Packet counts are live; `%hold` eroutes keep the newest packet.
//!
//! Specificity follows KLIPS' radix tree keyed on the concatenated (source, destination) pair:
//! a longer source prefix beats any destination prefix, then the longer destination prefix wins.
//! Lookup probes one hash map per distinct (source length, destination length) class present, in
//! that order, so its cost depends on the number of classes (few in practice), not on the number
//! of eroutes.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::addr::Subnet;
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
        }
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

type Key = (u32, u32);

/// The table of eroutes.
#[derive(Debug, Default)]
pub struct ErouteTable {
    /// Classes (source length, destination length), most specific first.
    classes: Vec<(u8, u8)>,
    maps: HashMap<(u8, u8), HashMap<Key, Arc<Eroute>>>,
}

fn key(src: &Subnet, dst: &Subnet) -> Key {
    (u32::from(src.addr()), u32::from(dst.addr()))
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
        self.maps.get(&(src.len(), dst.len()))?.get(&key(src, dst))
    }

    /// Adds an eroute; fails if one with the same networks exists (`--add`).
    pub fn add(&mut self, e: Eroute) -> Result<Arc<Eroute>, String> {
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

    fn insert(&mut self, e: Eroute) -> (Arc<Eroute>, Option<Arc<Eroute>>) {
        let class = (e.src.len(), e.dst.len());
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
        (e, old)
    }

    /// Deletes the eroute with exactly these networks.
    pub fn delete(&mut self, src: &Subnet, dst: &Subnet) -> Option<Arc<Eroute>> {
        let class = (src.len(), dst.len());
        let map = self.maps.get_mut(&class)?;
        let old = map.remove(&key(src, dst));
        if map.is_empty() {
            self.maps.remove(&class);
            self.classes.retain(|c| *c != class);
        }
        old
    }

    /// Removes every eroute.
    pub fn clear(&mut self) {
        self.maps.clear();
        self.classes.clear();
    }

    /// The most specific eroute covering a packet from `src` to `dst`.
    pub fn lookup(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Option<&Arc<Eroute>> {
        let (s, d) = (u32::from(src), u32::from(dst));
        self.classes.iter().find_map(|&(sl, dl)| {
            let k = (
                s & crate::addr::prefix_mask(sl),
                d & crate::addr::prefix_mask(dl),
            );
            self.maps.get(&(sl, dl))?.get(&k)
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
        let said = |s, d| t.lookup(ip(s), ip(d)).unwrap().said.shunt().unwrap();
        assert_eq!(said("10.0.1.9", "10.0.2.9"), Shunt::Trap);
        assert_eq!(said("10.0.1.9", "10.0.2.7"), Shunt::Pass);
        // a longer source prefix beats a longer destination prefix (KLIPS radix order)
        assert_eq!(said("10.0.1.5", "10.0.2.7"), Shunt::Reject);
        assert_eq!(said("192.168.0.1", "8.8.8.8"), Shunt::Drop);
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
        for i in (0..10_000u32).step_by(97) {
            let e = t
                .lookup(
                    Ipv4Addr::from(0x0a00_0005 + (i << 8)),
                    Ipv4Addr::from(0xac10_0009 + (i << 8)),
                )
                .unwrap();
            assert_eq!(e.said.spi, 0x1000 + i);
        }
        assert_eq!(t.len(), 10_000);
    }

    #[test]
    fn proc_line_format() {
        let e = Eroute::new(net("10.0.1.0/24"), net("10.0.2.0/24"), shunt(Shunt::Trap));
        assert_eq!(
            e.proc_line(),
            "0          10.0.1.0/24        -> 10.0.2.0/24        => %trap"
        );
    }
}
