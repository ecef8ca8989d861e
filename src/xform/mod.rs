//! IPsec transforms over byte buffers — ESP, AH and IPComp — as KLIPS applies them.
//!
//! Everything here is sans-IO: no sockets, no clocks, no randomness (callers pass IVs), no
//! global state other than per-thread (de)compression buffers. Keyed objects come from a
//! [`crate::crypto::CryptoProvider`], so a faster backend can serve any transform.
//!
//! * [`esp`] — [`EspCrypto`]: ESP encapsulation and the inbound steps header → ICV check →
//!   decrypt + padding check (RFC 4303, 3602, 4106, 2403/2404/4868).
//! * [`ah`] — AH for IPv4 with the truncated HMACs (RFC 4302): [`ah_output`],
//!   [`ah_header`], [`ah_input`].
//! * [`ipcomp`] — IPComp DEFLATE with KLIPS' size and adaptive-skip rules (RFC 3173/2394):
//!   [`ipcomp::compress`], [`ipcomp::decompress`].
//!
//! Thread-safety: [`EspCrypto`] and the `Box<dyn Integrity>` used by AH are immutable and
//! `Send + Sync`; share them between datapath threads by reference or `Arc`. [`IpcompState`]
//! is per-SA mutable state (`&mut`), e.g. behind the SA's lock.

pub mod ah;
pub mod esp;
pub mod ipcomp;

pub use ah::{ah_header, ah_input, ah_output, AhError, AhInput};
pub use esp::{EspCrypto, EspError};
pub use ipcomp::{CompressOutcome, IpcompError, IpcompState};
