//! A small, fast hasher for the datapath's lookup maps (SAIDs, address pairs): a multiply-rotate
//! mix per word, like rustc's FxHash. The keys are SPIs and addresses of SAs and eroutes the
//! control plane installed, not attacker-chosen map keys, so DoS-resistant SipHash (std's
//! default, ~20 ns per lookup) buys nothing here.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The hasher (see the module documentation).
#[derive(Default, Clone, Copy, Debug)]
pub struct FastHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(26) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // Spread the high bits (where the multiply puts the entropy) into the low ones that
        // hashbrown uses for the bucket index.
        self.0 ^ (self.0 >> 29)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_sequential_keys() {
        let mut m: FastMap<(u32, u32), u32> = FastMap::default();
        for i in 0..10_000u32 {
            m.insert((i, i << 8), i);
        }
        for i in 0..10_000u32 {
            assert_eq!(m.get(&(i, i << 8)), Some(&i));
        }
        assert!(!m.contains_key(&(1, 1)));
    }
}
