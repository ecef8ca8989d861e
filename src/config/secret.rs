//! [`Secret`]: a byte buffer for key material that is wiped when dropped and never printed.

use std::fmt;
use std::sync::atomic::{compiler_fence, Ordering};

/// Key material (pre-shared keys, RSA private parts, manual keys).
///
/// * The whole allocation (including spare capacity) is overwritten with zeros on drop, without
///   `unsafe`: the zeroing is followed by [`std::hint::black_box`] and a compiler fence so the
///   optimiser cannot drop the stores as dead.
/// * `Debug` prints `<secret N bytes>`, never the bytes; there is no `Display`.
/// * Equality is constant-time in the contents (lengths are not secret).
///
/// Growing the buffer through [`Secret::push`] never leaves stale copies behind: the old
/// allocation is wiped before it is freed.
pub struct Secret(Vec<u8>);

/// Overwrite every byte of `v`'s allocation with zeros and leave it empty.
fn wipe(v: &mut Vec<u8>) {
    let cap = v.capacity();
    v.clear();
    // Fills the entire existing allocation; never reallocates because `cap` is the capacity.
    v.resize(cap, 0);
    std::hint::black_box(v.as_mut_slice());
    compiler_fence(Ordering::SeqCst);
    v.clear();
}

impl Secret {
    /// Wrap an existing buffer (it is wiped when the `Secret` is dropped).
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// Copy `bytes` into a new exactly-sized secret buffer.
    pub fn from_slice(bytes: &[u8]) -> Secret {
        let mut v = Vec::with_capacity(bytes.len());
        v.extend_from_slice(bytes);
        Secret(v)
    }

    /// An empty secret that can take `n` bytes through [`Secret::push`] without reallocating.
    pub fn with_capacity(n: usize) -> Secret {
        Secret(Vec::with_capacity(n))
    }

    /// Append one byte; if the buffer must grow, the old allocation is wiped first.
    pub fn push(&mut self, b: u8) {
        if self.0.len() == self.0.capacity() {
            let mut bigger = Vec::with_capacity(self.0.capacity().saturating_mul(2).max(16));
            bigger.extend_from_slice(&self.0);
            wipe(&mut self.0);
            self.0 = bigger;
        }
        self.0.push(b);
    }

    /// The key bytes. Do not copy them into ordinary (non-wiping) buffers.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes of key material.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time (in the contents) comparison; different lengths compare unequal at once.
    pub fn ct_eq(&self, other: &Secret) -> bool {
        ct_eq_bytes(&self.0, &other.0)
    }

    /// Move the bytes out into a plain `Vec` (which will NOT be wiped); the secret is left empty.
    /// Only for data that is not actually sensitive (e.g. public RSA fields).
    pub(crate) fn into_plain(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// Constant-time equality of two byte strings of equal length (length itself is not hidden).
pub(crate) fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl Clone for Secret {
    fn clone(&self) -> Secret {
        Secret::from_slice(&self.0)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret {} bytes>", self.0.len())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Secret {
        Secret::new(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::from_slice(b"hunter2");
        assert_eq!(format!("{s:?}"), "<secret 7 bytes>");
        assert!(!format!("{s:#?}").contains("hunter2"));
        assert!(!format!("{s:?}").contains("104")); // no decimal byte dump either
    }

    #[test]
    fn equality_and_clone() {
        let a = Secret::from_slice(b"abc");
        let b = a.clone();
        assert_eq!(a, b);
        assert_ne!(a, Secret::from_slice(b"abd"));
        assert_ne!(a, Secret::from_slice(b"ab"));
        assert!(Secret::new(Vec::new()).is_empty());
    }

    #[test]
    fn push_grows_and_keeps_contents() {
        let mut s = Secret::with_capacity(1);
        for i in 0..100u8 {
            s.push(i);
        }
        assert_eq!(s.len(), 100);
        assert_eq!(s.as_bytes()[99], 99);
    }

    #[test]
    fn wipe_empties_without_reallocating() {
        let mut v = Vec::with_capacity(32);
        v.extend_from_slice(b"0123456789");
        let cap = v.capacity();
        let ptr = v.as_ptr();
        wipe(&mut v);
        assert!(v.is_empty());
        assert_eq!(v.capacity(), cap);
        assert_eq!(v.as_ptr(), ptr);
    }
}
