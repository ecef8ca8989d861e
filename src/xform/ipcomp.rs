//! IPComp with DEFLATE (RFC 3173 / RFC 2394), following KLIPS' policy (spec §8).
//!
//! Outbound, [`compress`] decides per packet whether compressing is worthwhile:
//! * payloads that are already ESP, AH or IPComp are never compressed, nor payloads under
//!   90 bytes (RFC 2394 §2); fragments must not be passed in (the caller checks the IP header);
//! * the result is used only if it saves at least 32 bytes and at least 1/16 of the payload,
//!   counting the 4-byte IPComp header (i.e. 32 bytes up to 512-byte payloads, 1/16 above);
//! * adaptively, after 8 consecutive unprofitable attempts the next 4 packets are sent without
//!   trying, and after each further 2 failures the next 8; one success resets this.
//!
//! When compression is not used the caller sends the payload unchanged, without an IPComp
//! header. Inbound, [`decompress`] checks the header (flags must be 0) and inflates with an
//! output cap, so a "decompression bomb" cannot make it produce more than 65535 bytes.
//!
//! The compressed data is raw DEFLATE (RFC 1951: no zlib header, no Adler-32), as RFC 2394
//! requires. KLIPS compressed with zlib's windowBits −11 (a 2 KiB window); the pure-Rust
//! `miniz_oxide` backend only offers the standard 32 KiB window, so for payloads over 2 KiB
//! back-references may reach further. Every inflater accepts that when it decompresses the
//! packet in one call into a large enough buffer (KLIPS, Linux XFRM and this module all do),
//! so plain raw deflate is used.
//!
//! Performance: the (de)compressor state (~200 KiB for deflate) and the scratch buffers are
//! kept per thread and reused, so no packet allocates them; resetting the deflate state still
//! costs a memset of its tables per packet.

use std::cell::RefCell;
use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Bytes of the IPComp header: next header, flags, CPI.
pub const IPCOMP_HEADER_LEN: usize = 4;
/// Payloads shorter than this are not compressed (RFC 2394 §2).
pub const IPCOMP_MIN_PAYLOAD: usize = 90;
/// Hard cap on decompressed output, whatever the caller asks for (the largest IPv4 packet).
pub const IPCOMP_MAX_OUT: usize = 65535;

/// IP protocol numbers whose payloads are never compressed (ESP, AH, IPComp).
const IPPROTO_ESP: u8 = 50;
const IPPROTO_AH: u8 = 51;
const IPPROTO_COMP: u8 = 108;

/// Consecutive failures before the first skip (KLIPS `IPCOMP_ADAPT_INITIAL_TRIES`).
const ADAPT_INITIAL_TRIES: u32 = 8;
/// Packets skipped after the initial failures (`IPCOMP_ADAPT_INITIAL_SKIP`).
const ADAPT_INITIAL_SKIP: u32 = 4;
/// Further failures before the next skip (`IPCOMP_ADAPT_SUBSEQ_TRIES`).
const ADAPT_SUBSEQ_TRIES: u32 = 2;
/// Packets skipped after further failures (`IPCOMP_ADAPT_SUBSEQ_SKIP`).
const ADAPT_SUBSEQ_SKIP: u32 = 8;

/// Per-SA adaptive compression state (outbound). Small and `Copy`; keep one per IPComp SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcompState {
    /// Consecutive unprofitable compression attempts (wraps back to 8 after each long skip).
    tries: u32,
    /// Packets still to be sent without trying.
    skip: u32,
}

impl IpcompState {
    /// Fresh state: compression is attempted on the next eligible packet.
    pub fn new() -> IpcompState {
        IpcompState::default()
    }

    /// Consecutive failed attempts counted so far (for display/debugging).
    pub fn failures(&self) -> u32 {
        self.tries
    }

    /// Eligible packets that will still be sent uncompressed without trying.
    pub fn skipping(&self) -> u32 {
        self.skip
    }

    fn record_failure(&mut self) {
        self.tries += 1;
        if self.tries == ADAPT_INITIAL_TRIES {
            self.skip = ADAPT_INITIAL_SKIP;
        } else if self.tries == ADAPT_INITIAL_TRIES + ADAPT_SUBSEQ_TRIES {
            self.skip = ADAPT_SUBSEQ_SKIP;
            self.tries = ADAPT_INITIAL_TRIES;
        }
    }

    fn record_success(&mut self) {
        self.tries = 0;
        self.skip = 0;
    }
}

/// What [`compress`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompressOutcome {
    /// `out` now holds the IPComp header and the compressed payload; send that with IP
    /// protocol 108.
    Compressed,
    /// Compression was tried and did not save enough (counts towards the adaptive skip);
    /// send the payload unchanged without an IPComp header. `out` is unchanged.
    NotWorthIt,
    /// Compression was not tried (ESP/AH/IPComp payload, payload under 90 bytes, or an
    /// adaptive skip); send the payload unchanged. `out` is unchanged.
    Skipped,
}

/// Why an inbound IPComp payload was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpcompError {
    /// Shorter than the 4-byte IPComp header.
    Truncated,
    /// The flags byte is not zero (RFC 3173 §2.2).
    BadFlags,
    /// The compressed data is not a complete, valid raw DEFLATE stream.
    Corrupt,
    /// Inflating would exceed the output cap (a decompression bomb or an oversized packet).
    TooBig,
}

impl fmt::Display for IpcompError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpcompError::Truncated => "IPComp packet truncated",
            IpcompError::BadFlags => "IPComp flags are not zero",
            IpcompError::Corrupt => "IPComp payload is not valid DEFLATE data",
            IpcompError::TooBig => "IPComp payload decompresses beyond the size limit",
        })
    }
}

impl std::error::Error for IpcompError {}

/// Minimum bytes compression must save (after the IPComp header) for a payload of `len`:
/// 32, or 1/16 of the payload if that is more (payloads over 512 bytes).
fn min_saving(len: usize) -> usize {
    32usize.max(len.div_ceil(16))
}

/// Largest compressed-data length worth sending for a payload of `len` bytes.
fn max_compressed_len(len: usize) -> Option<usize> {
    len.checked_sub(IPCOMP_HEADER_LEN + min_saving(len))
}

thread_local! {
    /// Raw-deflate compressor reused by [`compress`] on this thread.
    static DEFLATE: RefCell<Option<Compress>> = const { RefCell::new(None) };
    /// Raw-inflate state reused by [`decompress`] on this thread.
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
    /// Output scratch space for both directions.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer grown to at least `len` bytes (or a fresh buffer
/// if the thread-local one is already borrowed).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// The deflate level: the fastest one. A gateway compresses every packet on the hot path, and on
/// packet-sized inputs level 1 keeps nearly all of the default level's savings.
const LEVEL: Compression = Compression::new(1);

/// Deflates `input` into `output`; returns the compressed length, or `None` if it does not
/// fit.
fn deflate_into(input: &[u8], output: &mut [u8]) -> Option<usize> {
    fn run(c: &mut Compress, input: &[u8], output: &mut [u8]) -> Option<usize> {
        c.reset();
        match c.compress(input, output, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => usize::try_from(c.total_out()).ok(),
            _ => None,
        }
    }
    DEFLATE.with(|d| match d.try_borrow_mut() {
        Ok(mut slot) => {
            let c = slot.get_or_insert_with(|| Compress::new(LEVEL, false));
            run(c, input, output)
        }
        Err(_) => run(&mut Compress::new(LEVEL, false), input, output),
    })
}

/// Inflates `input` into `output`; returns the decompressed length.
fn inflate_into(input: &[u8], output: &mut [u8]) -> Result<usize, IpcompError> {
    fn run(d: &mut Decompress, input: &[u8], output: &mut [u8]) -> Result<usize, IpcompError> {
        d.reset(false);
        let st = d.decompress(input, output, FlushDecompress::Finish);
        let produced = usize::try_from(d.total_out()).map_err(|_| IpcompError::TooBig)?;
        match st {
            Ok(Status::StreamEnd) => Ok(produced),
            Ok(_) if produced >= output.len() => Err(IpcompError::TooBig),
            Ok(_) | Err(_) => Err(IpcompError::Corrupt),
        }
    }
    INFLATE.with(|d| match d.try_borrow_mut() {
        Ok(mut slot) => {
            let dec = slot.get_or_insert_with(|| Decompress::new(false));
            run(dec, input, output)
        }
        Err(_) => run(&mut Decompress::new(false), input, output),
    })
}

/// Tries to compress an outbound payload (the IP payload in transport mode, the inner IP
/// packet in tunnel mode) whose IP protocol is `next_header`.
///
/// On [`CompressOutcome::Compressed`] appends to `out` the IPComp header (`next_header`,
/// flags 0, `cpi` big-endian) followed by the raw DEFLATE data; otherwise leaves `out` as it
/// was. Updates the adaptive `state` (see the module docs). Never called for IP fragments.
pub fn compress(
    state: &mut IpcompState,
    cpi: u16,
    next_header: u8,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> CompressOutcome {
    if matches!(next_header, IPPROTO_ESP | IPPROTO_AH | IPPROTO_COMP) {
        return CompressOutcome::Skipped;
    }
    if payload.len() < IPCOMP_MIN_PAYLOAD {
        return CompressOutcome::Skipped;
    }
    if state.skip > 0 {
        state.skip -= 1;
        return CompressOutcome::Skipped;
    }
    // Compress into a buffer only as large as a worthwhile result: deflate stops early on
    // incompressible data.
    let limit = match max_compressed_len(payload.len()) {
        Some(l) if l > 0 => l,
        _ => {
            state.record_failure();
            return CompressOutcome::NotWorthIt;
        }
    };
    let done = with_scratch(limit, |buf| {
        let n = deflate_into(payload, buf)?;
        out.reserve(IPCOMP_HEADER_LEN + n);
        out.push(next_header);
        out.push(0);
        out.extend_from_slice(&cpi.to_be_bytes());
        out.extend_from_slice(&buf[..n]);
        Some(())
    });
    match done {
        Some(()) => {
            state.record_success();
            CompressOutcome::Compressed
        }
        None => {
            state.record_failure();
            CompressOutcome::NotWorthIt
        }
    }
}

/// Reads (next header, CPI) from an IPComp header, checking its length and that the flags
/// are zero.
pub fn ipcomp_header(ipcomp: &[u8]) -> Result<(u8, u16), IpcompError> {
    match ipcomp {
        [nh, flags, c0, c1, ..] => {
            if *flags != 0 {
                return Err(IpcompError::BadFlags);
            }
            Ok((*nh, u16::from_be_bytes([*c0, *c1])))
        }
        _ => Err(IpcompError::Truncated),
    }
}

/// Decompresses an inbound IPComp payload: `ipcomp` is the IPComp header followed by the
/// compressed data. Appends the inflated payload to `out` and returns the next header.
///
/// At most `max_out` bytes (itself capped at [`IPCOMP_MAX_OUT`]) are produced; a stream that
/// would inflate to more fails with [`IpcompError::TooBig`] after bounded work. On error
/// `out` is unchanged.
pub fn decompress(ipcomp: &[u8], max_out: usize, out: &mut Vec<u8>) -> Result<u8, IpcompError> {
    let (next_header, _cpi) = ipcomp_header(ipcomp)?;
    let data = &ipcomp[IPCOMP_HEADER_LEN..];
    let cap = max_out.min(IPCOMP_MAX_OUT);
    with_scratch(cap, |buf| {
        let n = inflate_into(data, buf)?;
        out.extend_from_slice(&buf[..n]);
        Ok(next_header)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn text(len: usize) -> Vec<u8> {
        // Repetitive enough that even a 90-byte payload saves the required 32 bytes.
        b"Host: example.com\r\n"
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.gen()).collect()
    }

    #[test]
    fn round_trip() {
        for len in [90usize, 200, 512, 513, 1400, 8000, 60000] {
            let p = text(len);
            let mut st = IpcompState::new();
            let mut out = vec![0xab];
            assert_eq!(
                compress(&mut st, 0x1234, 6, &p, &mut out),
                CompressOutcome::Compressed,
                "len {len}"
            );
            assert_eq!(&out[..5], &[0xab, 6, 0, 0x12, 0x34]);
            assert!(out.len() - 1 + min_saving(len) <= len);
            assert_eq!(ipcomp_header(&out[1..]), Ok((6, 0x1234)));
            let mut back = vec![1, 2];
            assert_eq!(decompress(&out[1..], 65535, &mut back), Ok(6));
            assert_eq!(&back[..2], &[1, 2]);
            assert_eq!(&back[2..], &p[..]);
        }
    }

    #[test]
    fn output_is_raw_deflate() {
        let p = text(300);
        let mut out = Vec::new();
        compress(&mut IpcompState::new(), 7, 4, &p, &mut out);
        // Inflate with a fresh, independent raw inflater (no zlib header expected).
        let mut d = Decompress::new(false);
        let mut buf = vec![0u8; 1000];
        let st = d
            .decompress(&out[4..], &mut buf, FlushDecompress::Finish)
            .unwrap();
        assert_eq!(st, Status::StreamEnd);
        assert_eq!(&buf[..d.total_out() as usize], &p[..]);
        // And a zlib stream (with header) is not what we produce: 0x78 0x9c would start it.
        assert_ne!(&out[4..6], &[0x78, 0x9c]);
    }

    #[test]
    fn incompressible_is_not_worth_it() {
        let mut st = IpcompState::new();
        let mut out = vec![5];
        assert_eq!(
            compress(&mut st, 1, 17, &random(1000, 1), &mut out),
            CompressOutcome::NotWorthIt
        );
        assert_eq!(out, [5]);
        assert_eq!(st.failures(), 1);
    }

    #[test]
    fn threshold_rules() {
        assert_eq!(min_saving(90), 32);
        assert_eq!(min_saving(512), 32);
        assert_eq!(min_saving(513), 33);
        assert_eq!(min_saving(1600), 100);
        assert_eq!(min_saving(1601), 101);
        assert_eq!(max_compressed_len(100), Some(64));
        assert_eq!(max_compressed_len(1600), Some(1496));
        // Random data (which deflates to slightly more than its size) with a compressible tail
        // saving less than 32 bytes after the header is refused; with a longer tail it is
        // accepted.
        let mut st = IpcompState::new();
        let mut p = random(200, 2);
        p.extend_from_slice(&[0u8; 60]);
        assert_eq!(
            compress(&mut st, 1, 17, &p, &mut Vec::new()),
            CompressOutcome::NotWorthIt
        );
        let mut p = random(200, 2);
        p.extend_from_slice(&[0u8; 160]);
        assert_eq!(
            compress(&mut st, 1, 17, &p, &mut Vec::new()),
            CompressOutcome::Compressed
        );
    }

    #[test]
    fn small_and_ipsec_payloads_are_skipped() {
        let mut st = IpcompState::new();
        let mut out = Vec::new();
        assert_eq!(
            compress(&mut st, 1, 6, &text(89), &mut out),
            CompressOutcome::Skipped
        );
        assert_eq!(
            compress(&mut st, 1, 6, &text(90), &mut out),
            CompressOutcome::Compressed
        );
        out.clear();
        for nh in [50u8, 51, 108] {
            assert_eq!(
                compress(&mut st, 1, nh, &text(1000), &mut out),
                CompressOutcome::Skipped
            );
        }
        assert!(out.is_empty());
        assert_eq!(st, IpcompState::new());
    }

    #[test]
    fn adaptive_skip_counters() {
        use CompressOutcome::*;
        let mut st = IpcompState::new();
        let noise = random(1000, 3);
        let run = |st: &mut IpcompState, p: &[u8]| compress(st, 1, 17, p, &mut Vec::new());
        // 8 consecutive failures...
        for i in 0..8 {
            assert_eq!(run(&mut st, &noise), NotWorthIt, "attempt {i}");
        }
        // ...skip the next 4 packets (even compressible ones).
        assert_eq!(st.skipping(), 4);
        for _ in 0..4 {
            assert_eq!(run(&mut st, &text(1000)), Skipped);
        }
        assert_eq!(st.skipping(), 0);
        // Each further 2 failures: skip 8.
        for round in 0..3 {
            assert_eq!(run(&mut st, &noise), NotWorthIt, "round {round}");
            assert_eq!(st.skipping(), 0);
            assert_eq!(run(&mut st, &noise), NotWorthIt, "round {round}");
            assert_eq!(st.skipping(), 8);
            for _ in 0..8 {
                assert_eq!(run(&mut st, &noise), Skipped);
            }
        }
        // A small packet during a skip does not consume it.
        assert_eq!(run(&mut st, &noise), NotWorthIt);
        assert_eq!(run(&mut st, &noise), NotWorthIt);
        assert_eq!(st.skipping(), 8);
        assert_eq!(run(&mut st, &text(50)), Skipped);
        assert_eq!(st.skipping(), 8);
        for _ in 0..8 {
            assert_eq!(run(&mut st, &text(500)), Skipped);
        }
        // Success resets everything.
        assert_eq!(run(&mut st, &text(500)), Compressed);
        assert_eq!(st, IpcompState::new());
        for _ in 0..7 {
            assert_eq!(run(&mut st, &noise), NotWorthIt);
        }
        assert_eq!(run(&mut st, &text(500)), Compressed);
        assert_eq!(st.failures(), 0);
    }

    #[test]
    fn decompress_rejects_garbage_and_bad_headers() {
        let mut out = vec![3];
        assert_eq!(
            decompress(&[], 65535, &mut out),
            Err(IpcompError::Truncated)
        );
        assert_eq!(
            decompress(&[4, 0, 0], 65535, &mut out),
            Err(IpcompError::Truncated)
        );
        let mut good = Vec::new();
        compress(&mut IpcompState::new(), 9, 4, &text(500), &mut good);
        let mut bad = good.clone();
        bad[1] = 1;
        assert_eq!(
            decompress(&bad, 65535, &mut out),
            Err(IpcompError::BadFlags)
        );
        // Truncated deflate stream.
        assert_eq!(
            decompress(&good[..good.len() - 5], 65535, &mut out),
            Err(IpcompError::Corrupt)
        );
        // Reserved block type 3 is invalid DEFLATE.
        assert_eq!(
            decompress(&[4, 0, 0, 9, 0xff, 0xff, 0xff], 65535, &mut out),
            Err(IpcompError::Corrupt)
        );
        // Empty compressed data.
        assert_eq!(
            decompress(&[4, 0, 0, 9], 65535, &mut out),
            Err(IpcompError::Corrupt)
        );
        assert_eq!(out, [3]);
        // Random garbage never panics and never yields more than the cap.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3173);
        for _ in 0..2000 {
            let len = rng.gen_range(0..200);
            let mut g: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if len > 1 {
                g[1] = 0;
            }
            let mut o = Vec::new();
            if decompress(&g, 1500, &mut o).is_ok() {
                assert!(o.len() <= 1500);
            }
        }
    }

    #[test]
    fn bomb_is_capped() {
        // 16 MiB of zeros deflates to a few KiB.
        let zeros = vec![0u8; 16 << 20];
        let mut c = Compress::new(Compression::best(), false);
        let mut z = vec![0u8; 1 << 20];
        let st = c.compress(&zeros, &mut z, FlushCompress::Finish).unwrap();
        assert_eq!(st, Status::StreamEnd);
        z.truncate(c.total_out() as usize);
        let mut pkt = vec![4, 0, 0, 1];
        pkt.extend_from_slice(&z);
        let mut out = Vec::new();
        assert_eq!(decompress(&pkt, 65535, &mut out), Err(IpcompError::TooBig));
        assert!(out.is_empty());
        // The cap applies even if the caller asks for more.
        assert_eq!(
            decompress(&pkt, usize::MAX, &mut out),
            Err(IpcompError::TooBig)
        );
        // A stream of exactly the cap is fine; one byte over is not.
        let exact = text(1000);
        let mut cpkt = Vec::new();
        compress(&mut IpcompState::new(), 1, 4, &exact, &mut cpkt);
        assert_eq!(decompress(&cpkt, 1000, &mut out), Ok(4));
        assert_eq!(out, exact);
        assert_eq!(
            decompress(&cpkt, 999, &mut Vec::new()),
            Err(IpcompError::TooBig)
        );
    }

    #[test]
    fn error_display() {
        assert_eq!(
            IpcompError::BadFlags.to_string(),
            "IPComp flags are not zero"
        );
        assert_eq!(
            IpcompError::TooBig.to_string(),
            "IPComp payload decompresses beyond the size limit"
        );
    }
}
