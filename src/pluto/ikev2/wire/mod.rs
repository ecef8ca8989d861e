//! IKEv2 message codec (RFC 7296 section 3, RFC 7383, RFC 7427), smoltcp-style and sans-IO.
//!
//! * Zero-copy views that validate lengths: [`Packet`] (IKE header + body) and
//!   [`PayloadPacket`] (generic payload header), and the chain walker [`PayloadIter`] yielding
//!   [`RawPayload`]s with their offsets (AUTH signs payload bodies *as received*).
//! * Owned Reprs that parse and emit: [`Header`], [`Payload`] and the per-payload structs
//!   ([`SaPayload`], [`KePayload`], [`Identification`], [`AuthPayload`], [`NotifyPayload`],
//!   [`TsPayload`], ...), [`Message`].
//! * [`parse_message`] for cleartext messages (IKE_SA_INIT); for protected ones
//!   [`Protected::locate`] splits the SK / SKF payload into IV, ciphertext and ICV over the
//!   received bytes, and after decryption [`parse_decrypted`] strips the padding and parses
//!   the inner chain. [`SealFrame`] and [`inner_plaintext`] build protected messages.
//! * RFC 7383 fragmentation: [`fragment_plaintexts`] and [`Reassembly`].
//! * RFC 7427 signature algorithm identifiers: [`SignatureScheme`], [`SignatureAuth`].
//!
//! Version handling: a major version other than 2 fails with
//! [`ParseError::UnsupportedVersion`]; above 2 the engine answers INVALID_MAJOR_VERSION
//! ([`ParseError::is_invalid_major_version`]), reading the SPIs and message ID from the
//! [`Packet`] view. An unknown payload with the critical bit set fails with
//! [`ParseError::UnsupportedCriticalPayload`]; without it, it is skipped.
//!
//! Parsing never panics, never recurses (nesting is fixed: SA → Proposal → Transform →
//! Attribute, each a loop with a cap), and allocates at most in proportion to the input.

pub mod consts;
pub mod error;
pub mod frag;
pub mod header;
pub mod message;
pub mod notify;
pub mod payload;
pub mod sa;
pub mod sigalg;
pub mod sk;
pub mod ts;

#[cfg(test)]
mod tests;

pub use consts::*;
pub use error::{EmitError, ParseError};
pub use frag::{
    fragment_plaintexts, FragmentError, FragmentInfo, FragmentPiece, FragmentStatus, Reassembled,
    Reassembly, MAX_FRAGMENTS, MAX_REASSEMBLED_LEN,
};
pub use header::{Flags, Header, IkeSpi, Packet, HEADER_LEN, IKEV2_MAJOR, IKEV2_VERSION};
pub use message::{emit_payloads, find_notify, notifies, parse_message, parse_payloads, Message};
pub use notify::{decode_hash_algorithms, encode_hash_algorithms, NotifyPayload};
pub use payload::{
    AuthPayload, CertPayload, ConfigAttribute, ConfigPayload, DeletePayload,
    EncryptedFragmentPayload, EncryptedPayload, Identification, KePayload, Payload, PayloadIter,
    PayloadPacket, RawPayload, Spi, GENERIC_HEADER_LEN, MAX_CONFIG_ATTRIBUTES, MAX_NONCE_LEN,
    MIN_NONCE_LEN,
};
pub use sa::{
    AttrValue, Proposal, SaPayload, Transform, TransformAttribute, TransformId, MAX_PROPOSALS,
    MAX_TRANSFORMS, MAX_TRANSFORM_ATTRIBUTES,
};
pub use sigalg::{SignatureAuth, SignatureScheme, SIGNATURE_SCHEMES};
pub use sk::{
    emit_inner, inner_plaintext, pad_plaintext, parse_decrypted, parse_inner, strip_padding,
    Protected, SealFrame, SealParts, SkParams,
};
pub use ts::{AddrSelector, AddressRange, TrafficSelector, TsPayload, MAX_TRAFFIC_SELECTORS};

/// Most payloads accepted in one chain (top-level or inner).
pub const MAX_PAYLOADS: usize = 64;
