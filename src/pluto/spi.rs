//! Allocation of our inbound SPIs, IPIP pseudo-SPIs and IPComp CPIs (spec 7): inbound SPIs
//! at or above 0x1000 (random start, then sequential), tunnel pseudo-SPIs from 0x1001 up,
//! CPIs within 256–61439. 0x100–0xfff stay free for manual keying.

use std::collections::HashSet;

/// First SPI for automatic keying.
pub const MIN_SPI: u32 = 0x1000;
/// First IPIP pseudo-SPI.
pub const MIN_TUN_SPI: u32 = 0x1001;
/// CPI range (RFC 3173 leaves the rest to well-known or private use).
pub const CPI_RANGE: (u16, u16) = (256, 61439);

/// Hands out unique SPIs and CPIs.
#[derive(Debug, Clone)]
pub struct SpiAllocator {
    next_spi: u32,
    next_tun: u32,
    next_cpi: u16,
    used: HashSet<u32>,
    used_cpi: HashSet<u16>,
}

impl SpiAllocator {
    /// An allocator starting at `seed`-derived random points.
    pub fn new(seed_spi: u32, seed_cpi: u16) -> SpiAllocator {
        SpiAllocator {
            next_spi: MIN_SPI.max(seed_spi & 0x7fff_ffff),
            next_tun: MIN_TUN_SPI,
            next_cpi: CPI_RANGE.0 + seed_cpi % (CPI_RANGE.1 - CPI_RANGE.0),
            used: HashSet::new(),
            used_cpi: HashSet::new(),
        }
    }

    /// A fresh inbound ESP/AH SPI.
    pub fn spi(&mut self) -> u32 {
        loop {
            let v = self.next_spi;
            self.next_spi = if v >= 0xffff_fff0 { MIN_SPI } else { v + 1 };
            if self.used.insert(v) {
                return v;
            }
        }
    }

    /// A fresh IPIP pseudo-SPI.
    pub fn tun_spi(&mut self) -> u32 {
        let v = self.next_tun;
        self.next_tun = if v >= 0x7fff_ffff { MIN_TUN_SPI } else { v + 1 };
        v
    }

    /// A fresh CPI.
    pub fn cpi(&mut self) -> u16 {
        for _ in 0..=(CPI_RANGE.1 - CPI_RANGE.0) {
            let v = self.next_cpi;
            self.next_cpi = if v >= CPI_RANGE.1 { CPI_RANGE.0 } else { v + 1 };
            if self.used_cpi.insert(v) {
                return v;
            }
        }
        self.used_cpi.clear();
        self.next_cpi
    }

    /// Returns an SPI to the pool.
    pub fn release(&mut self, spi: u32) {
        self.used.remove(&spi);
    }

    /// Returns a CPI to the pool.
    pub fn release_cpi(&mut self, cpi: u16) {
        self.used_cpi.remove(&cpi);
    }
}
