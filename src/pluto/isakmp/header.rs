//! The ISAKMP header (RFC 2408 3.1): zero-copy view [`Packet`] and owned [`Header`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                          Initiator Cookie                     !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                          Responder Cookie                     !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !  Next Payload ! MjVer ! MnVer ! Exchange Type !     Flags     !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                          Message ID                           !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                            Length                             !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::fmt;
use core::ops::BitOr;

use super::consts::{ExchangeType, PayloadType};
use super::error::{EmitError, ParseError};

/// Size of the ISAKMP header in bytes.
pub const HEADER_LEN: usize = 28;
/// The version byte of ISAKMP / IKEv1 (major 1, minor 0).
pub const ISAKMP_VERSION: u8 = 0x10;

mod field {
    use core::ops::Range;
    pub const ICOOKIE: Range<usize> = 0..8;
    pub const RCOOKIE: Range<usize> = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Range<usize> = 20..24;
    pub const LENGTH: Range<usize> = 24..28;
}

/// The ISAKMP header flags byte (RFC 2408 3.1). Unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(u8);

impl Flags {
    /// No flag set.
    pub const NONE: Flags = Flags(0);
    /// E: the body after the header is encrypted.
    pub const ENCRYPTION: Flags = Flags(0x01);
    /// C: commit bit (key exchange synchronisation).
    pub const COMMIT: Flags = Flags(0x02);
    /// A: authentication only (no encryption; unused in practice).
    pub const AUTH_ONLY: Flags = Flags(0x04);

    /// Flags from the raw byte.
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits)
    }

    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if the E (encryption) flag is set.
    pub const fn encrypted(self) -> bool {
        self.contains(Flags::ENCRYPTION)
    }

    /// Bits that RFC 2408 does not define (Pluto rejects them with INVALID_FLAGS).
    pub const fn unknown_bits(self) -> u8 {
        self.0 & !0x07
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Display for Flags {
    /// Pluto-style list, e.g. `ISAKMP_FLAG_ENCRYPTION+ISAKMP_FLAG_COMMIT`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.contains(Flags::ENCRYPTION) {
            parts.push("ISAKMP_FLAG_ENCRYPTION".into());
        }
        if self.contains(Flags::COMMIT) {
            parts.push("ISAKMP_FLAG_COMMIT".into());
        }
        if self.contains(Flags::AUTH_ONLY) {
            parts.push("ISAKMP_FLAG_AUTHONLY".into());
        }
        if self.unknown_bits() != 0 {
            parts.push(format!("0x{:02x}??", self.unknown_bits()));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("+"))
        }
    }
}

/// Zero-copy view of an ISAKMP message (header fields and the body behind them).
///
/// Accessors never panic: on a buffer too short for a field they return zeros (use
/// [`Packet::new_checked`] to know the fields are really there).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, ParseError> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the whole header and at least the length the header
    /// announces (extra bytes after it are allowed here; [`Header::parse_datagram`] refuses
    /// them).
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let length = self.length();
        if (length as usize) < HEADER_LEN {
            return Err(ParseError::BadLength { length });
        }
        if length as usize > len {
            return Err(ParseError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, index: usize) -> u8 {
        self.buffer.as_ref().get(index).copied().unwrap_or(0)
    }

    fn array<const N: usize>(&self, start: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.buffer.as_ref().get(start..start + N) {
            out.copy_from_slice(src);
        }
        out
    }

    /// The initiator cookie (CKY-I).
    pub fn initiator_cookie(&self) -> [u8; 8] {
        self.array::<8>(field::ICOOKIE.start)
    }

    /// The responder cookie (CKY-R); all zero in the first message.
    pub fn responder_cookie(&self) -> [u8; 8] {
        self.array::<8>(field::RCOOKIE.start)
    }

    /// Type of the first payload.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType::from(self.byte(field::NEXT_PAYLOAD))
    }

    /// Major version (high nibble of the version byte).
    pub fn major_version(&self) -> u8 {
        self.byte(field::VERSION) >> 4
    }

    /// Minor version (low nibble of the version byte).
    pub fn minor_version(&self) -> u8 {
        self.byte(field::VERSION) & 0x0f
    }

    /// Exchange type.
    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType::from(self.byte(field::EXCHANGE))
    }

    /// Flags.
    pub fn flags(&self) -> Flags {
        Flags(self.byte(field::FLAGS))
    }

    /// Message ID (0 in phase 1).
    pub fn message_id(&self) -> u32 {
        u32::from_be_bytes(self.array::<4>(field::MESSAGE_ID.start))
    }

    /// Total message length announced by the header.
    pub fn length(&self) -> u32 {
        u32::from_be_bytes(self.array::<4>(field::LENGTH.start))
    }

    /// The body: bytes from the end of the header to the announced length (clamped to the
    /// buffer; empty if the buffer is shorter than the header).
    pub fn body(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = (self.length() as usize).min(buf.len());
        buf.get(HEADER_LEN..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_bytes(&mut self, start: usize, bytes: &[u8]) {
        if let Some(dst) = self.buffer.as_mut().get_mut(start..start + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    /// Sets the initiator cookie (no-op on a too-short buffer, like every setter).
    pub fn set_initiator_cookie(&mut self, value: [u8; 8]) {
        self.set_bytes(field::ICOOKIE.start, &value);
    }

    /// Sets the responder cookie.
    pub fn set_responder_cookie(&mut self, value: [u8; 8]) {
        self.set_bytes(field::RCOOKIE.start, &value);
    }

    /// Sets the first payload type.
    pub fn set_next_payload(&mut self, value: PayloadType) {
        self.set_bytes(field::NEXT_PAYLOAD, &[value.value()]);
    }

    /// Sets the raw version byte (major << 4 | minor).
    pub fn set_version(&mut self, value: u8) {
        self.set_bytes(field::VERSION, &[value]);
    }

    /// Sets the exchange type.
    pub fn set_exchange_type(&mut self, value: ExchangeType) {
        self.set_bytes(field::EXCHANGE, &[value.value()]);
    }

    /// Sets the flags.
    pub fn set_flags(&mut self, value: Flags) {
        self.set_bytes(field::FLAGS, &[value.bits()]);
    }

    /// Sets the message ID.
    pub fn set_message_id(&mut self, value: u32) {
        self.set_bytes(field::MESSAGE_ID.start, &value.to_be_bytes());
    }

    /// Sets the total length.
    pub fn set_length(&mut self, value: u32) {
        self.set_bytes(field::LENGTH.start, &value.to_be_bytes());
    }

    /// The body, mutable (bytes from the header's end to the announced length, clamped).
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = (self.length() as usize).min(self.buffer.as_ref().len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }
}

/// Owned ISAKMP header of a version 1.0 message; the length is derived when emitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// CKY-I.
    pub initiator_cookie: [u8; 8],
    /// CKY-R (zero in the first Main Mode message).
    pub responder_cookie: [u8; 8],
    /// Type of the first payload (of the plaintext, when encrypted).
    pub next_payload: PayloadType,
    /// Exchange type.
    pub exchange_type: ExchangeType,
    /// Flags (E, C, A).
    pub flags: Flags,
    /// Message ID (0 in phase 1, random per Quick Mode / Informational exchange).
    pub message_id: u32,
}

impl Header {
    /// Reads the header fields of a checked packet; refuses any version but 1.0.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Header, ParseError> {
        packet.check_len()?;
        Self::parse_fields(packet)
    }

    fn parse_fields<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Header, ParseError> {
        let (major, minor) = (packet.major_version(), packet.minor_version());
        if (major, minor) != (1, 0) {
            return Err(ParseError::UnsupportedVersion { major, minor });
        }
        Ok(Header {
            initiator_cookie: packet.initiator_cookie(),
            responder_cookie: packet.responder_cookie(),
            next_payload: packet.next_payload(),
            exchange_type: packet.exchange_type(),
            flags: packet.flags(),
            message_id: packet.message_id(),
        })
    }

    /// Parses the header of a whole UDP datagram (after any non-ESP marker) and returns it
    /// with the body (plaintext payload chain, or ciphertext when [`Flags::ENCRYPTION`] is
    /// set). The length field must match the datagram exactly.
    pub fn parse_datagram(datagram: &[u8]) -> Result<(Header, &[u8]), ParseError> {
        if datagram.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let packet = Packet::new_unchecked(datagram);
        let (major, minor) = (packet.major_version(), packet.minor_version());
        if (major, minor) != (1, 0) {
            return Err(ParseError::UnsupportedVersion { major, minor });
        }
        packet.check_len()?;
        let length = packet.length() as usize;
        if length < datagram.len() {
            return Err(ParseError::TrailingGarbage {
                extra: datagram.len() - length,
            });
        }
        let header = Self::parse_fields(&packet)?;
        Ok((header, datagram.get(HEADER_LEN..length).unwrap_or(&[])))
    }

    /// Writes the header, with version 1.0 and the given total length, into `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        length: u32,
    ) -> Result<(), EmitError> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(EmitError::BufferTooSmall);
        }
        packet.set_initiator_cookie(self.initiator_cookie);
        packet.set_responder_cookie(self.responder_cookie);
        packet.set_next_payload(self.next_payload);
        packet.set_version(ISAKMP_VERSION);
        packet.set_exchange_type(self.exchange_type);
        packet.set_flags(self.flags);
        packet.set_message_id(self.message_id);
        packet.set_length(length);
        Ok(())
    }

    /// The 28 header bytes for a message whose body is `body_len` bytes long.
    pub fn to_bytes(&self, body_len: usize) -> Result<[u8; HEADER_LEN], EmitError> {
        let total = body_len
            .checked_add(HEADER_LEN)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or(EmitError::TooLong("ISAKMP message"))?;
        let mut bytes = [0u8; HEADER_LEN];
        self.emit(&mut Packet::new_unchecked(&mut bytes[..]), total)?;
        Ok(bytes)
    }
}
