//! Parse and emit errors of the IKEv2 codec.

use core::fmt;

use super::consts::{NotifyType, PayloadType};

/// Why a datagram or payload chain could not be parsed.
///
/// Each variant tells the exchange handler enough to log the problem and, where RFC 7296 asks
/// for one, to pick the error notification of its response ([`ParseError::notify_type`]):
/// a major version above 2 ⇒ INVALID_MAJOR_VERSION, an unrecognised critical payload ⇒
/// UNSUPPORTED_CRITICAL_PAYLOAD, anything else ⇒ INVALID_SYNTAX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The buffer ends before the 28-byte header, before the length the header announces, or
    /// before a payload the chain announces.
    Truncated,
    /// The header's length field is smaller than the header itself.
    BadLength {
        /// The length field.
        length: u32,
    },
    /// Bytes follow the announced message length, or follow the last payload of the chain.
    TrailingGarbage {
        /// How many bytes are left over.
        extra: usize,
    },
    /// The major version is not 2. Above 2 ([`ParseError::is_invalid_major_version`]) the
    /// responder answers INVALID_MAJOR_VERSION (RFC 7296 2.5); below 2 it is an IKEv1 message
    /// that reached the IKEv2 codec. The minor version is ignored when the major is 2.
    UnsupportedVersion {
        /// Major version nibble.
        major: u8,
        /// Minor version nibble.
        minor: u8,
    },
    /// A payload's length field is smaller than the payload's fixed part or runs past the end of
    /// the enclosing buffer.
    BadPayloadLength {
        /// The payload concerned.
        payload_type: PayloadType,
        /// Its length field.
        length: u16,
    },
    /// The chain holds more than [`MAX_PAYLOADS`](super::MAX_PAYLOADS) payloads.
    TooManyPayloads,
    /// A payload's contents are inconsistent (bad substructure chain, count mismatch, SPI of the
    /// wrong size, nonce too short, too many proposals/transforms/selectors, bad padding, ...).
    MalformedPayload {
        /// The payload concerned (SA for proposals and transforms).
        payload_type: PayloadType,
        /// What is wrong, for the log.
        reason: &'static str,
    },
    /// A payload of a type this implementation does not know, with the critical bit set
    /// (RFC 7296 2.5): the message must be rejected, and a request answered with
    /// UNSUPPORTED_CRITICAL_PAYLOAD carrying the type ([`ParseError::notify_data`]).
    UnsupportedCriticalPayload {
        /// The raw payload type.
        payload_type: u8,
    },
    /// An encrypted message whose chain does not end with an SK or SKF payload.
    NotEncrypted,
}

impl ParseError {
    /// True for a major version above 2: answer INVALID_MAJOR_VERSION.
    pub fn is_invalid_major_version(&self) -> bool {
        matches!(self, ParseError::UnsupportedVersion { major, .. } if *major > 2)
    }

    /// The error notification RFC 7296 asks a responder to send for this error.
    pub fn notify_type(&self) -> NotifyType {
        match self {
            ParseError::UnsupportedVersion { .. } => NotifyType::InvalidMajorVersion,
            ParseError::UnsupportedCriticalPayload { .. } => NotifyType::UnsupportedCriticalPayload,
            _ => NotifyType::InvalidSyntax,
        }
    }

    /// The notification data that goes with [`notify_type`](Self::notify_type): the one-octet
    /// payload type for UNSUPPORTED_CRITICAL_PAYLOAD, nothing otherwise.
    pub fn notify_data(&self) -> Vec<u8> {
        match self {
            ParseError::UnsupportedCriticalPayload { payload_type } => vec![*payload_type],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated => f.write_str("message truncated"),
            ParseError::BadLength { length } => {
                write!(f, "IKEv2 header length {length} is smaller than the header")
            }
            ParseError::TrailingGarbage { extra } => {
                write!(f, "{extra} bytes of garbage after the message")
            }
            ParseError::UnsupportedVersion { major, minor } => {
                write!(f, "unsupported IKE version {major}.{minor}")
            }
            ParseError::BadPayloadLength {
                payload_type,
                length,
            } => write!(f, "bad length {length} of {payload_type} payload"),
            ParseError::TooManyPayloads => {
                write!(f, "more than {} payloads in message", super::MAX_PAYLOADS)
            }
            ParseError::MalformedPayload {
                payload_type,
                reason,
            } => write!(f, "malformed {payload_type} payload: {reason}"),
            ParseError::UnsupportedCriticalPayload { payload_type } => {
                write!(f, "unsupported critical payload of type {payload_type}")
            }
            ParseError::NotEncrypted => {
                f.write_str("message does not end with an Encrypted (SK or SKF) payload")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a Repr could not be written to the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitError {
    /// A length or count does not fit its field (payload over 65535 bytes, over 255 transforms,
    /// more fragments than allowed, ...). The string names the field.
    TooLong(&'static str),
    /// The Repr contradicts itself or the RFC (SPI of the wrong size for its protocol, nonce
    /// outside 16..=256 bytes, payload of type NONE, block size 0, ...). The string says what.
    Inconsistent(&'static str),
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::TooLong(what) => write!(f, "{what} too long for its field"),
            EmitError::Inconsistent(what) => write!(f, "inconsistent IKEv2 payload: {what}"),
            EmitError::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl std::error::Error for EmitError {}
