//! Parse and emit errors of the ISAKMP codec.

use core::fmt;

use super::consts::PayloadType;

/// Why a datagram or payload chain could not be parsed.
///
/// Each variant tells the state machine enough to log the problem the way Pluto does and, where
/// the RFC asks for one, to pick the notification to send (e.g. `UnsupportedVersion` ⇒
/// `INVALID_MAJOR_VERSION`, `BadPayloadLength`/`MalformedPayload` ⇒ `PAYLOAD_MALFORMED`).
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
    /// The ISAKMP version is not 1.0 (IKEv2 is 2.0).
    UnsupportedVersion {
        /// Major version nibble.
        major: u8,
        /// Minor version nibble.
        minor: u8,
    },
    /// A payload's length field is smaller than the payload's fixed part or runs past the end of
    /// the enclosing buffer.
    BadPayloadLength {
        /// The payload (or substructure: proposal, transform) concerned.
        payload_type: PayloadType,
        /// Its length field.
        length: u16,
    },
    /// The chain holds more than [`MAX_PAYLOADS`](super::MAX_PAYLOADS) payloads.
    TooManyPayloads,
    /// A payload's contents are inconsistent (bad substructure chain, count mismatch, attribute
    /// running past the end, too many proposals/transforms/attributes, ...).
    MalformedPayload {
        /// The payload (or substructure) concerned.
        payload_type: PayloadType,
        /// What is wrong, for the log.
        reason: &'static str,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated => f.write_str("message truncated"),
            ParseError::BadLength { length } => {
                write!(
                    f,
                    "ISAKMP header length {length} is smaller than the header"
                )
            }
            ParseError::TrailingGarbage { extra } => {
                write!(f, "{extra} bytes of garbage after the message")
            }
            ParseError::UnsupportedVersion { major, minor } => {
                write!(f, "unsupported ISAKMP version {major}.{minor}")
            }
            ParseError::BadPayloadLength {
                payload_type,
                length,
            } => {
                write!(f, "bad length {length} of {payload_type} payload")
            }
            ParseError::TooManyPayloads => {
                write!(f, "more than {} payloads in message", super::MAX_PAYLOADS)
            }
            ParseError::MalformedPayload {
                payload_type,
                reason,
            } => {
                write!(f, "malformed {payload_type} payload: {reason}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a Repr could not be written to the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitError {
    /// A length or count does not fit its field (payload over 65535 bytes, over 255 transforms,
    /// SPI over 255 bytes, ...). The string names the field.
    TooLong(&'static str),
    /// The Repr contradicts itself (e.g. Delete SPIs of a size other than `spi_size`, attribute
    /// type over 0x7fff, an `Unknown` payload whose type is NONE). The string says what.
    Inconsistent(&'static str),
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::TooLong(what) => write!(f, "{what} too long for its field"),
            EmitError::Inconsistent(what) => write!(f, "inconsistent payload: {what}"),
            EmitError::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl std::error::Error for EmitError {}
