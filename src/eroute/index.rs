//! The read side of the eroute table: an immutable index that answers "the most specific
//! (source, destination) entry covering this packet" with a few hash probes and one or two
//! binary searches, whatever the number of prefix-length classes.
//!
//! Built once per change of the table and then only read (the datapath holds it through an
//! `Arc` for a whole batch, without locks). Generic over the address width ([`Bits`]: `u32`
//! for IPv4 now; `u128` is implemented so IPv6 selectors slot in with the same code).
//!
//! Structure: every distinct source network present is a *node*. A packet's source finds its
//! most specific node by probing one hash table per source prefix length present (longest
//! first). Each node keeps its own destination networks flattened into sorted, disjoint
//! intervals labelled with the most specific destination covering them, and a link to the next
//! shorter source network that covers it. Lookup walks that chain from the most specific source
//! node outward and returns the first destination hit: exactly the order "longer source prefix
//! first, then longer destination prefix" (KLIPS' radix order, `ErouteTable`'s rule), because
//! the source networks covering an address are exactly the chain's nodes.

use std::fmt::Debug;

/// An address as an unsigned integer, most significant bit first.
pub trait Bits: Copy + Ord + Eq + Default + Debug {
    /// Bits in an address (32 or 128).
    const WIDTH: u8;
    /// The first `len` bits of `self` (host bits cleared).
    fn masked(self, len: u8) -> Self;
    /// The last address of the network `self/len` (host bits set).
    fn last(self, len: u8) -> Self;
    /// `self + 1`, or None at the top of the address space.
    fn succ(self) -> Option<Self>;
    /// `self - 1`, or None at 0.
    fn pred(self) -> Option<Self>;
    /// A well-mixed 64-bit hash of (`self`, `len`).
    fn hash(self, len: u8) -> u64;
}

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl Bits for u32 {
    const WIDTH: u8 = 32;
    fn masked(self, len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            self & (u32::MAX << (32 - u32::from(len.min(32))))
        }
    }
    fn last(self, len: u8) -> u32 {
        self.masked(len) | !(0u32.wrapping_sub(1).masked(len))
    }
    fn succ(self) -> Option<u32> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<u32> {
        self.checked_sub(1)
    }
    fn hash(self, len: u8) -> u64 {
        ((u64::from(self) << 8) | u64::from(len)).wrapping_mul(MIX)
    }
}

impl Bits for u128 {
    const WIDTH: u8 = 128;
    fn masked(self, len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            self & (u128::MAX << (128 - u32::from(len.min(128))))
        }
    }
    fn last(self, len: u8) -> u128 {
        self.masked(len) | !(u128::MAX.masked(len))
    }
    fn succ(self) -> Option<u128> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<u128> {
        self.checked_sub(1)
    }
    fn hash(self, len: u8) -> u64 {
        let folded = (self as u64) ^ ((self >> 64) as u64).rotate_left(29);
        (folded ^ u64::from(len)).wrapping_mul(MIX) ^ u64::from(len).wrapping_mul(MIX >> 7)
    }
}

const NONE: u32 = u32::MAX;

/// One source network with its destination intervals.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The next shorter source network present that covers this one (or NONE).
    parent: u32,
    /// This node's intervals: `starts[lo..hi]` / `ivals[lo..hi]`.
    lo: u32,
    hi: u32,
}

/// Open-addressing hash table (source length, source network) → node.
#[derive(Debug, Clone, Default)]
struct ProbeMap<A: Bits> {
    /// (network, length, node); length `u8::MAX` marks an empty slot.
    slots: Vec<(A, u8, u32)>,
    shift: u32,
}

impl<A: Bits> ProbeMap<A> {
    fn with_capacity(n: usize) -> ProbeMap<A> {
        let cap = (n * 2).next_power_of_two().max(8);
        ProbeMap {
            slots: vec![(A::default(), u8::MAX, NONE); cap],
            shift: 64 - cap.trailing_zeros(),
        }
    }

    fn insert(&mut self, a: A, len: u8, node: u32) {
        let mask = self.slots.len() - 1;
        let mut i = (a.hash(len) >> self.shift) as usize;
        loop {
            let s = &mut self.slots[i & mask];
            if s.1 == u8::MAX || (s.0 == a && s.1 == len) {
                *s = (a, len, node);
                return;
            }
            i += 1;
        }
    }

    #[inline]
    fn get(&self, a: A, len: u8) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = (a.hash(len) >> self.shift) as usize;
        loop {
            let s = &self.slots[i & mask];
            if s.1 == len && s.0 == a {
                return Some(s.2);
            }
            if s.1 == u8::MAX {
                return None;
            }
            i += 1;
        }
    }
}

/// One entry to index: source network, destination network, and the caller's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<A> {
    /// Source network address (host bits may be set; they are cleared).
    pub src: A,
    /// Source prefix length.
    pub src_len: u8,
    /// Destination network address.
    pub dst: A,
    /// Destination prefix length.
    pub dst_len: u8,
    /// What a lookup that selects this entry returns.
    pub value: u32,
}

/// The immutable most-specific-match index (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct LpmIndex<A: Bits> {
    /// Source prefix lengths present, longest first.
    src_lens: Vec<u8>,
    src_map: ProbeMap<A>,
    nodes: Vec<Node>,
    /// Interval starts of all nodes, each node's run sorted.
    starts: Vec<A>,
    /// (interval end, value), parallel to `starts`.
    ivals: Vec<(A, u32)>,
}

impl<A: Bits> LpmIndex<A> {
    /// Builds the index. Entries with the same (source, destination) networks must not repeat
    /// (the table guarantees it); if they do, one of them wins.
    pub fn build(entries: impl IntoIterator<Item = Entry<A>>) -> LpmIndex<A> {
        let mut v: Vec<Entry<A>> = entries
            .into_iter()
            .map(|e| Entry {
                src: e.src.masked(e.src_len),
                src_len: e.src_len.min(A::WIDTH),
                dst: e.dst.masked(e.dst_len),
                dst_len: e.dst_len.min(A::WIDTH),
                value: e.value,
            })
            .collect();
        // Group by source network; within one, destinations by address then length (a
        // covering network before the networks it covers).
        v.sort_unstable_by(|a, b| {
            (a.src_len, a.src, a.dst, a.dst_len).cmp(&(b.src_len, b.src, b.dst, b.dst_len))
        });
        let mut src_lens: Vec<u8> = v.iter().map(|e| e.src_len).collect();
        src_lens.dedup();
        src_lens.reverse();
        let mut idx = LpmIndex {
            src_lens,
            src_map: ProbeMap::default(),
            nodes: Vec::new(),
            starts: Vec::with_capacity(v.len() * 2),
            ivals: Vec::with_capacity(v.len() * 2),
        };
        let mut groups: Vec<(A, u8, usize, usize)> = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let (s, l) = (v[i].src, v[i].src_len);
            let mut j = i + 1;
            while j < v.len() && v[j].src == s && v[j].src_len == l {
                j += 1;
            }
            groups.push((s, l, i, j));
            i = j;
        }
        idx.src_map = ProbeMap::with_capacity(groups.len());
        for (n, &(s, l, a, b)) in groups.iter().enumerate() {
            idx.src_map.insert(s, l, n as u32);
            let lo = idx.starts.len() as u32;
            flatten(&v[a..b], &mut idx.starts, &mut idx.ivals);
            idx.nodes.push(Node {
                parent: NONE,
                lo,
                hi: idx.starts.len() as u32,
            });
        }
        for (n, &(s, l, _, _)) in groups.iter().enumerate() {
            let parent = idx
                .src_lens
                .iter()
                .filter(|&&pl| pl < l)
                .find_map(|&pl| idx.src_map.get(s.masked(pl), pl));
            idx.nodes[n].parent = parent.unwrap_or(NONE);
        }
        idx
    }

    /// The value of the most specific entry whose networks contain `src` and `dst`.
    #[inline]
    pub fn lookup(&self, src: A, dst: A) -> Option<u32> {
        let mut node = self
            .src_lens
            .iter()
            .find_map(|&l| self.src_map.get(src.masked(l), l))?;
        loop {
            let n = self.nodes[node as usize];
            let (lo, hi) = (n.lo as usize, n.hi as usize);
            let i = self.starts[lo..hi].partition_point(|&x| x <= dst);
            if i > 0 {
                let (end, value) = self.ivals[lo + i - 1];
                if dst <= end {
                    return Some(value);
                }
            }
            if n.parent == NONE {
                return None;
            }
            node = n.parent;
        }
    }

    /// Number of distinct source networks.
    pub fn source_networks(&self) -> usize {
        self.nodes.len()
    }
}

/// Appends the disjoint intervals of one node's destination networks (sorted by address, then
/// length; nested or disjoint as prefixes are), each labelled with the most specific network
/// covering it.
fn flatten<A: Bits>(v: &[Entry<A>], starts: &mut Vec<A>, ivals: &mut Vec<(A, u32)>) {
    let mut emit = |from: A, to: A, value: u32| {
        if from <= to {
            starts.push(from);
            ivals.push((to, value));
        }
    };
    // Open networks (end, value), innermost last; `cursor` = first address not yet emitted
    // (None once the top of the address space has been emitted).
    let mut stack: Vec<(A, u32)> = Vec::new();
    let mut cursor: Option<A> = None;
    for e in v {
        let (s, end) = (e.dst, e.dst.last(e.dst_len));
        while let Some(&(top_end, top_val)) = stack.last() {
            if top_end >= s {
                break;
            }
            if let Some(c) = cursor {
                emit(c, top_end, top_val);
            }
            cursor = top_end.succ();
            stack.pop();
        }
        if let (Some(&(_, top_val)), Some(c)) = (stack.last(), cursor) {
            if let Some(before) = s.pred() {
                emit(c, before, top_val);
            }
        }
        cursor = Some(s);
        stack.push((end, e.value));
    }
    while let Some((top_end, top_val)) = stack.pop() {
        if let Some(c) = cursor {
            emit(c, top_end, top_val);
        }
        cursor = top_end.succ();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn e(src: u32, src_len: u8, dst: u32, dst_len: u8, value: u32) -> Entry<u32> {
        Entry {
            src,
            src_len,
            dst,
            dst_len,
            value,
        }
    }

    /// The definition: among entries covering (s, d), the longest source, then the longest
    /// destination.
    fn slow(v: &[Entry<u32>], s: u32, d: u32) -> Option<u32> {
        v.iter()
            .filter(|e| s.masked(e.src_len) == e.src.masked(e.src_len))
            .filter(|e| d.masked(e.dst_len) == e.dst.masked(e.dst_len))
            .max_by_key(|e| (e.src_len, e.dst_len))
            .map(|e| e.value)
    }

    #[test]
    fn nested_destinations_flatten() {
        let v = vec![
            e(0, 0, 0, 0, 1),
            e(0, 0, 0x0a00_0000, 8, 2),
            e(0, 0, 0x0a01_0000, 16, 3),
            e(0, 0, 0x0a01_0200, 24, 4),
            e(0, 0, 0xffff_ffff, 32, 5),
        ];
        let idx = LpmIndex::build(v.clone());
        for d in [
            0u32,
            0x09ff_ffff,
            0x0a00_0000,
            0x0a00_ffff,
            0x0a01_0000,
            0x0a01_01ff,
            0x0a01_0200,
            0x0a01_02ff,
            0x0a01_0300,
            0x0aff_ffff,
            0x0b00_0000,
            0xffff_fffe,
            0xffff_ffff,
        ] {
            assert_eq!(idx.lookup(1, d), slow(&v, 1, d), "{d:08x}");
        }
    }

    /// Random tables with many prefix-length classes agree with the definition, for addresses
    /// drawn inside, at the edges of and outside the networks.
    #[test]
    fn agrees_with_the_definition() {
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..40 {
            let n = rng.gen_range(1..300);
            let mut v: Vec<Entry<u32>> = Vec::new();
            let base: u32 = if round % 2 == 0 { 0x0a00_0000 } else { 0 };
            while v.len() < n {
                let sl = rng.gen_range(0..=32u8);
                let dl = rng.gen_range(0..=32u8);
                let s = (base | (rng.gen::<u32>() & 0x00ff_ffff)).masked(sl);
                let d = (base | (rng.gen::<u32>() & 0x00ff_ffff)).masked(dl);
                if !v
                    .iter()
                    .any(|x| (x.src, x.src_len, x.dst, x.dst_len) == (s, sl, d, dl))
                {
                    let value = v.len() as u32;
                    v.push(e(s, sl, d, dl, value));
                }
            }
            let idx = LpmIndex::build(v.clone());
            for _ in 0..2000 {
                let pick = |rng: &mut StdRng, net: u32, len: u8| match rng.gen_range(0..4) {
                    0 => net.masked(len),
                    1 => net.last(len),
                    2 => net.masked(len) | (rng.gen::<u32>() & !u32::MAX.masked(len)),
                    _ => rng.gen(),
                };
                let a = v[rng.gen_range(0..v.len())];
                let b = v[rng.gen_range(0..v.len())];
                let s = pick(&mut rng, a.src, a.src_len);
                let d = pick(&mut rng, b.dst, b.dst_len);
                assert_eq!(idx.lookup(s, d), slow(&v, s, d), "{s:08x} -> {d:08x}");
            }
        }
    }

    #[test]
    fn empty_and_ipv6_width() {
        let idx: LpmIndex<u32> = LpmIndex::build(Vec::new());
        assert_eq!(idx.lookup(1, 2), None);
        let net = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128;
        let v = vec![
            Entry {
                src: net,
                src_len: 32,
                dst: 0,
                dst_len: 0,
                value: 1,
            },
            Entry {
                src: net,
                src_len: 64,
                dst: net | 1 << 64,
                dst_len: 64,
                value: 2,
            },
        ];
        let idx = LpmIndex::build(v);
        assert_eq!(idx.lookup(net | 5, 9), Some(1));
        assert_eq!(idx.lookup(net | 5, net | 1 << 64 | 3), Some(2));
        assert_eq!(idx.lookup(net | 1 << 64, net | 1 << 64 | 3), Some(1));
        assert_eq!(idx.lookup(1, net), None);
    }
}
