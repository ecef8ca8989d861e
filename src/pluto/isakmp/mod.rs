//! ISAKMP / IKEv1 message codec (RFC 2408, 2407, 2409, 3947, 3706), smoltcp-style.
//!
//! * Zero-copy views that validate lengths: [`Packet`] (header + body) and [`PayloadPacket`]
//!   (generic payload header), and the chain walker [`PayloadIter`] yielding [`RawPayload`]s
//!   with their offsets (for hashes over raw bytes such as `SAi_b`).
//! * Owned Reprs that parse and emit: [`Header`], [`Payload`] and the per-payload structs,
//!   [`Message`].
//! * [`parse_message`] for whole datagrams; for encrypted messages, [`Header::parse_datagram`]
//!   then (after decryption by the IKEv1 layer) [`parse_decrypted_payloads`].
//! * NAT-T framing helpers in [`natt`].
//!
//! Parsing never panics, never recurses (nesting is fixed: SA → Proposal → Transform →
//! Attribute, each a loop with a cap), and allocates at most in proportion to the input.
//!
//! Hashes and signatures must be computed over the bytes *as received*: use
//! [`RawPayload::body`] rather than re-emitting a parsed payload.

#[macro_use]
pub mod consts;
pub mod error;
pub mod header;
pub mod message;
pub mod natt;
pub mod payload;
pub mod sa;

#[cfg(test)]
mod tests;

pub use consts::*;
pub use error::{EmitError, ParseError};
pub use header::{Flags, Header, Packet, HEADER_LEN, ISAKMP_VERSION};
pub use message::{
    emit_payloads, parse_decrypted_payloads, parse_message, parse_payloads, Message, MessageBody,
    MAX_DECRYPTED_PADDING,
};
pub use payload::{
    CertPayload, DeletePayload, IdPayload, Identification, NatDPayload, NatOaPayload,
    NotificationPayload, Payload, PayloadIter, PayloadPacket, RawPayload, UnknownPayload,
    GENERIC_HEADER_LEN,
};
pub use sa::{
    AttrValue, Attribute, Proposal, SaPayload, Transform, MAX_ATTRIBUTES, MAX_PROPOSALS,
    MAX_TRANSFORMS,
};

/// Most payloads accepted in one message (top-level chain).
pub const MAX_PAYLOADS: usize = 64;
