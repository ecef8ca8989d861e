//! IKE fragmentation (RFC 7383), sans-IO: splitting an inner payload chain into SKF
//! plaintexts, and [`Reassembly`] of received fragments.
//!
//! A message too big for the path is sent as several messages, each with the same header
//! (message ID included) and one SKF payload carrying a slice of the inner chain, padded and
//! encrypted on its own (fresh IV each). Only fragment 1 names the first inner payload type.
//! The receiver checks each fragment's ICV *before* handing its decrypted, unpadded content
//! to [`Reassembly::add`]; when all have arrived the chain is parsed with
//! [`super::sk::parse_inner`].

use super::consts::PayloadType;
use super::error::EmitError;
use super::header::{Header, HEADER_LEN};
use super::payload::{GENERIC_HEADER_LEN, SKF_FIELDS_LEN};
use super::sk::{pad_plaintext, SealFrame, SkParams};

/// Default most fragments of one message (a 64 KiB message in 1 KiB fragments needs 64).
pub const MAX_FRAGMENTS: u16 = 64;
/// Default most octets of a reassembled inner chain.
pub const MAX_REASSEMBLED_LEN: usize = 64 * 1024;

/// Fragment Number and Total Fragments of an SKF payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Fragment number, from 1.
    pub number: u16,
    /// Total number of fragments.
    pub total: u16,
}

/// One fragment to send: its SKF fields and its padded plaintext (to be encrypted into a
/// [`SealFrame`], see [`FragmentPiece::frame`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentPiece {
    /// Number and total.
    pub info: FragmentInfo,
    /// The SKF payload's next-payload field: the first inner type in fragment 1, NONE after.
    pub first_inner: PayloadType,
    /// The padded plaintext (slice of the chain, padding, Pad Length).
    pub plaintext: Vec<u8>,
}

impl FragmentPiece {
    /// The message frame for this fragment (header with SKF, lengths filled in).
    pub fn frame(&self, header: &Header, params: &SkParams) -> Result<SealFrame, EmitError> {
        SealFrame::new(
            header,
            self.first_inner,
            Some(self.info),
            params.iv_len,
            self.plaintext.len(),
            params.icv_len,
        )
    }
}

/// Splits the inner chain `chain` (whose first payload is `first_inner`) into fragments whose
/// whole IKE messages are at most `max_message_len` octets (the UDP payload: without IP and
/// UDP headers, and without the non-ESP marker on port 4500, which the caller subtracts).
///
/// Every fragment but the last is filled up to the largest plaintext that fits; at least one
/// fragment is produced. Refused if not even one octet of chain fits, or if more than
/// `max_fragments` fragments would be needed.
pub fn fragment_plaintexts(
    first_inner: PayloadType,
    chain: &[u8],
    max_message_len: usize,
    params: &SkParams,
    max_fragments: u16,
) -> Result<Vec<FragmentPiece>, EmitError> {
    if !(1..=256).contains(&params.block_size) {
        return Err(EmitError::Inconsistent("block size outside 1..=256"));
    }
    let overhead = HEADER_LEN + GENERIC_HEADER_LEN + SKF_FIELDS_LEN + params.iv_len;
    let room = max_message_len
        .checked_sub(overhead)
        .and_then(|r| r.checked_sub(params.icv_len))
        .ok_or(EmitError::Inconsistent(
            "maximum fragment size below the overhead",
        ))?;
    // The ciphertext is a whole number of blocks; one octet of it is the Pad Length.
    let capacity = (room / params.block_size * params.block_size)
        .checked_sub(1)
        .filter(|&c| c > 0)
        .ok_or(EmitError::Inconsistent(
            "maximum fragment size below the overhead",
        ))?;
    let count = chain.len().div_ceil(capacity).max(1);
    let total = u16::try_from(count)
        .ok()
        .filter(|&t| t <= max_fragments)
        .ok_or(EmitError::TooLong("fragment count"))?;
    let mut pieces = Vec::with_capacity(count);
    for (i, number) in (1..=total).enumerate() {
        let start = i * capacity;
        let slice = chain
            .get(start..(start + capacity).min(chain.len()))
            .unwrap_or(&[]);
        pieces.push(FragmentPiece {
            info: FragmentInfo { number, total },
            first_inner: if number == 1 {
                first_inner
            } else {
                PayloadType::None
            },
            plaintext: pad_plaintext(slice, params.block_size)?,
        });
    }
    Ok(pieces)
}

/// Why a received fragment was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    /// Fragment number 0, total 0, or number above total (RFC 7383 2.6.2): the fragment is
    /// dropped, the reassembly goes on.
    InvalidNumber {
        /// Fragment number.
        number: u16,
        /// Total fragments.
        total: u16,
    },
    /// A fragment announcing fewer fragments than those being reassembled: a stale
    /// retransmission, dropped (RFC 7383 2.6.2). The reassembly goes on.
    StaleTotal {
        /// Its total.
        total: u16,
        /// The total being reassembled.
        current: u16,
    },
    /// The total is above the limit: the message cannot be reassembled and what was
    /// collected is discarded.
    TooManyFragments {
        /// The total announced.
        total: u16,
        /// The limit.
        max: u16,
    },
    /// The fragments add up to more than the size limit: what was collected is discarded.
    TooLarge {
        /// The limit in octets.
        max: usize,
    },
}

impl core::fmt::Display for FragmentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FragmentError::InvalidNumber { number, total } => {
                write!(f, "invalid fragment #{number} of {total}")
            }
            FragmentError::StaleTotal { total, current } => {
                write!(
                    f,
                    "fragment of a {total}-fragment message while reassembling {current}"
                )
            }
            FragmentError::TooManyFragments { total, max } => {
                write!(f, "{total} fragments announced, at most {max} accepted")
            }
            FragmentError::TooLarge { max } => {
                write!(f, "fragmented message larger than {max} octets")
            }
        }
    }
}

impl std::error::Error for FragmentError {}

/// A reassembled message: the inner chain and its first payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// Type of the first inner payload (from fragment 1).
    pub first_inner: PayloadType,
    /// The inner chain, to parse with [`super::sk::parse_inner`].
    pub chain: Vec<u8>,
}

/// What [`Reassembly::add`] did with a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentStatus {
    /// Kept; more are missing.
    Incomplete {
        /// Fragments held.
        received: u16,
        /// Fragments expected.
        total: u16,
    },
    /// A fragment already held: ignored (a retransmission).
    Duplicate,
    /// That was the last missing fragment: the message, and the reassembly starts afresh.
    Complete(Reassembled),
}

/// Collects the fragments of one message (one per IKE SA and message ID, created by the
/// caller when the first fragment of a new request or response arrives).
///
/// Bounded: at most `max_fragments` fragments and `max_len` octets are held. A fragment with
/// a larger total than those held restarts the reassembly (the sender re-fragmented with a
/// smaller size, RFC 7383 2.6.2); one with a smaller total is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembly {
    max_fragments: u16,
    max_len: usize,
    total: u16,
    first_inner: PayloadType,
    pieces: Vec<Option<Vec<u8>>>,
    received: u16,
    len: usize,
}

impl Default for Reassembly {
    fn default() -> Self {
        Reassembly::new()
    }
}

impl Reassembly {
    /// A reassembly with the default limits ([`MAX_FRAGMENTS`], [`MAX_REASSEMBLED_LEN`]).
    pub fn new() -> Reassembly {
        Reassembly::with_limits(MAX_FRAGMENTS, MAX_REASSEMBLED_LEN)
    }

    /// A reassembly with the given limits.
    pub fn with_limits(max_fragments: u16, max_len: usize) -> Reassembly {
        Reassembly {
            max_fragments,
            max_len,
            total: 0,
            first_inner: PayloadType::None,
            pieces: Vec::new(),
            received: 0,
            len: 0,
        }
    }

    /// Fragments held.
    pub fn received(&self) -> u16 {
        self.received
    }

    /// Total fragments expected (0 before the first fragment).
    pub fn total(&self) -> u16 {
        self.total
    }

    /// Octets held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// Discards everything held.
    pub fn reset(&mut self) {
        self.total = 0;
        self.first_inner = PayloadType::None;
        self.pieces = Vec::new();
        self.received = 0;
        self.len = 0;
    }

    /// Adds an authenticated, decrypted fragment: `info` and `next_payload` from its SKF
    /// payload, `content` its plaintext without padding.
    pub fn add(
        &mut self,
        info: FragmentInfo,
        next_payload: PayloadType,
        content: &[u8],
    ) -> Result<FragmentStatus, FragmentError> {
        let FragmentInfo { number, total } = info;
        if number == 0 || total == 0 || number > total {
            return Err(FragmentError::InvalidNumber { number, total });
        }
        if total > self.max_fragments {
            self.reset();
            return Err(FragmentError::TooManyFragments {
                total,
                max: self.max_fragments,
            });
        }
        if total < self.total {
            return Err(FragmentError::StaleTotal {
                total,
                current: self.total,
            });
        }
        if total > self.total {
            self.reset();
            self.total = total;
            self.pieces = vec![None; total as usize];
        }
        let Some(slot) = self.pieces.get_mut(number as usize - 1) else {
            return Err(FragmentError::InvalidNumber { number, total });
        };
        if slot.is_some() {
            return Ok(FragmentStatus::Duplicate);
        }
        let len = self.len.saturating_add(content.len());
        if len > self.max_len {
            self.reset();
            return Err(FragmentError::TooLarge { max: self.max_len });
        }
        *slot = Some(content.to_vec());
        self.len = len;
        self.received += 1;
        if number == 1 {
            self.first_inner = next_payload;
        }
        if self.received < self.total {
            return Ok(FragmentStatus::Incomplete {
                received: self.received,
                total: self.total,
            });
        }
        let mut chain = Vec::with_capacity(self.len);
        for piece in self.pieces.iter().flatten() {
            chain.extend_from_slice(piece);
        }
        let done = Reassembled {
            first_inner: self.first_inner,
            chain,
        };
        self.reset();
        Ok(FragmentStatus::Complete(done))
    }
}
