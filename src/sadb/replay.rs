//! The anti-replay window (RFC 4303 section 3.4.3, RFC 6479 ring bitmap).
//!
//! A window of size 0 is off (FreeS/WAN's default for manual SAs): every sequence number passes.
//! Otherwise sequence number 0 is refused, numbers above the highest seen advance the window,
//! and numbers at or below it pass only if inside the window and not yet seen. `check` is the
//! cheap test done before the ICV is verified; `update` commits after the ICV proved the packet
//! genuine (and re-checks, so two workers racing on one SA cannot both accept a duplicate).

/// The largest window rswan accepts. FreeS/WAN allowed 64; rswan allows more so peers that
/// reorder heavily (parallel senders) can be absorbed.
pub const MAX_WINDOW: u32 = 4096;

/// The window size used when an SA does not say (FreeS/WAN's Pluto default).
pub const DEFAULT_WINDOW: u32 = 64;

/// Why a sequence number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Sequence number 0 is never sent (RFC 4303).
    Zero,
    /// Below the left edge of the window.
    TooOld,
    /// Already received.
    Duplicate,
}

/// Anti-replay state for one inbound SA.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    size: u32,
    last: u32,
    ring: Vec<u64>,
}

impl ReplayWindow {
    /// A window of `size` packets (0 = off), clamped to [`MAX_WINDOW`].
    pub fn new(size: u32) -> ReplayWindow {
        let size = size.min(MAX_WINDOW);
        // One spare block so the block holding `last` and the oldest in-window block never alias.
        let blocks = if size == 0 {
            0
        } else {
            size.div_ceil(64) as usize + 1
        };
        ReplayWindow {
            size,
            last: 0,
            ring: vec![0; blocks],
        }
    }

    /// The configured window size (FreeS/WAN's `ooowin`).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Highest sequence number accepted so far (`seq=` in `ipsec spi`).
    pub fn last(&self) -> u32 {
        self.last
    }

    /// The 64 bits below and including `last`, bit 0 = `last` (`bit=` in `ipsec spi`).
    pub fn bitmap(&self) -> u64 {
        if self.size == 0 || self.last == 0 {
            return 0;
        }
        let mut v = 0u64;
        for i in 0..64u32.min(self.size) {
            match self.last.checked_sub(i) {
                Some(s) if s > 0 && self.is_set(s) => v |= 1 << i,
                _ => {}
            }
        }
        v
    }

    fn slot(&self, seq: u32) -> (usize, u64) {
        let block = (seq >> 6) as usize % self.ring.len();
        (block, 1u64 << (seq & 63))
    }

    fn is_set(&self, seq: u32) -> bool {
        let (b, m) = self.slot(seq);
        self.ring[b] & m != 0
    }

    /// Tests `seq` without changing state.
    pub fn check(&self, seq: u32) -> Result<(), ReplayError> {
        if self.size == 0 {
            return Ok(());
        }
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if seq > self.last {
            return Ok(());
        }
        if self.last - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        if self.is_set(seq) {
            return Err(ReplayError::Duplicate);
        }
        Ok(())
    }

    /// Re-checks `seq` and records it as received.
    pub fn update(&mut self, seq: u32) -> Result<(), ReplayError> {
        self.check(seq)?;
        if self.size == 0 {
            self.last = self.last.max(seq);
            return Ok(());
        }
        if seq > self.last {
            let n = self.ring.len() as u32;
            let old_block = self.last >> 6;
            let new_block = seq >> 6;
            let steps = (new_block - old_block).min(n);
            for i in 1..=steps {
                let b = (old_block.wrapping_add(i) % n) as usize;
                self.ring[b] = 0;
            }
            self.last = seq;
        }
        let (b, m) = self.slot(seq);
        self.ring[b] |= m;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_refused() {
        let w = ReplayWindow::new(64);
        assert_eq!(w.check(0), Err(ReplayError::Zero));
    }

    #[test]
    fn off_accepts_everything() {
        let mut w = ReplayWindow::new(0);
        assert!(w.update(5).is_ok());
        assert!(w.update(5).is_ok());
        assert!(w.update(0).is_ok());
        assert_eq!(w.last(), 5);
    }

    #[test]
    fn duplicates_and_reordering() {
        let mut w = ReplayWindow::new(64);
        for s in [1, 3, 2, 5, 4] {
            assert!(w.update(s).is_ok(), "seq {s}");
        }
        for s in 1..=5 {
            assert_eq!(w.update(s), Err(ReplayError::Duplicate), "seq {s}");
        }
        assert_eq!(w.last(), 5);
        assert_eq!(w.bitmap(), 0b11111);
    }

    #[test]
    fn window_edge() {
        let mut w = ReplayWindow::new(64);
        w.update(100).unwrap();
        // last - seq == 63: the oldest number still inside the window.
        assert!(w.check(37).is_ok());
        // last - seq == 64: just outside.
        assert_eq!(w.check(36), Err(ReplayError::TooOld));
        w.update(37).unwrap();
        assert_eq!(w.update(37), Err(ReplayError::Duplicate));
        // advancing by exactly the window size forgets everything behind
        w.update(164).unwrap();
        assert_eq!(w.check(100), Err(ReplayError::TooOld));
        assert!(w.check(101).is_ok());
    }

    #[test]
    fn big_jump_clears_ring() {
        let mut w = ReplayWindow::new(128);
        for s in 1..=128 {
            w.update(s).unwrap();
        }
        w.update(100_000).unwrap();
        // Numbers within the new window were never seen even though their ring bits were reused.
        for s in (100_000 - 127)..100_000 {
            assert!(w.check(s).is_ok(), "seq {s}");
        }
    }

    #[test]
    fn wrap_at_top_of_sequence_space() {
        let mut w = ReplayWindow::new(64);
        w.update(u32::MAX).unwrap();
        assert_eq!(w.update(u32::MAX), Err(ReplayError::Duplicate));
        assert!(w.update(u32::MAX - 63).is_ok());
        // Sequence numbers do not wrap (no ESN in IKEv1): 1 after 2^32-1 is ancient.
        assert_eq!(w.check(1), Err(ReplayError::TooOld));
    }

    #[test]
    fn large_window_absorbs_parallel_sender_reordering() {
        let mut w = ReplayWindow::new(1024);
        // Two workers each sent a batch of 512: the later batch arrived first.
        for s in 513..=1024 {
            w.update(s).unwrap();
        }
        for s in 1..=512 {
            w.update(s).unwrap();
        }
        assert_eq!(w.update(700), Err(ReplayError::Duplicate));
    }

    #[test]
    fn clamped_to_max() {
        assert_eq!(ReplayWindow::new(1 << 20).size(), MAX_WINDOW);
    }
}
