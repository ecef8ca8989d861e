//! The IKE header (RFC 7296 3.1): zero-copy view [`Packet`] and owned [`Header`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::fmt;
use core::ops::BitOr;

use super::consts::{ExchangeType, PayloadType};
use super::error::{EmitError, ParseError};

/// Size of the IKE header in bytes.
pub const HEADER_LEN: usize = 28;
/// The version byte of IKEv2 (major 2, minor 0).
pub const IKEV2_VERSION: u8 = 0x20;
/// The major version this codec speaks.
pub const IKEV2_MAJOR: u8 = 2;

mod field {
    use core::ops::Range;
    pub const SPI_I: Range<usize> = 0..8;
    pub const SPI_R: Range<usize> = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Range<usize> = 20..24;
    pub const LENGTH: Range<usize> = 24..28;
}

/// An IKE SA SPI (8 octets, chosen by each side; the responder's is zero in the first
/// IKE_SA_INIT request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IkeSpi(pub [u8; 8]);

impl IkeSpi {
    /// The all-zero SPI (responder SPI of an IKE_SA_INIT request).
    pub const ZERO: IkeSpi = IkeSpi([0; 8]);

    /// True for the all-zero SPI.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }

    /// The SPI as a big-endian number.
    pub fn to_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// The SPI from a big-endian number.
    pub fn from_u64(value: u64) -> IkeSpi {
        IkeSpi(value.to_be_bytes())
    }
}

impl fmt::Display for IkeSpi {
    /// 16 hex digits, as strongSwan and Libreswan log SPIs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.to_u64())
    }
}

/// The IKE header flags byte (RFC 7296 3.1). Unknown bits are kept (senders clear them,
/// receivers ignore them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(u8);

impl Flags {
    /// No flag set.
    pub const NONE: Flags = Flags(0);
    /// I: sent by the original initiator of the IKE SA.
    pub const INITIATOR: Flags = Flags(0x08);
    /// V: the sender can speak a higher major version.
    pub const VERSION: Flags = Flags(0x10);
    /// R: this message is a response.
    pub const RESPONSE: Flags = Flags(0x20);

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

    /// True if the I (original initiator) flag is set.
    pub const fn initiator(self) -> bool {
        self.contains(Flags::INITIATOR)
    }

    /// True if the R (response) flag is set.
    pub const fn response(self) -> bool {
        self.contains(Flags::RESPONSE)
    }

    /// Bits RFC 7296 does not define.
    pub const fn unknown_bits(self) -> u8 {
        self.0 & !0x38
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Display for Flags {
    /// `I+R`-style list of the set flags, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.contains(Flags::INITIATOR) {
            parts.push("I".into());
        }
        if self.contains(Flags::VERSION) {
            parts.push("V".into());
        }
        if self.contains(Flags::RESPONSE) {
            parts.push("R".into());
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

/// Zero-copy view of an IKE message (header fields and the body behind them).
///
/// Accessors never panic: on a buffer too short for a field they return zeros (use
/// [`Packet::new_checked`] to know the fields are really there). The fields are readable
/// whatever the version, so that an INVALID_MAJOR_VERSION answer can echo the SPIs and
/// message ID.
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

    /// The IKE SA initiator's SPI.
    pub fn spi_i(&self) -> IkeSpi {
        IkeSpi(self.array::<8>(field::SPI_I.start))
    }

    /// The IKE SA responder's SPI (zero in the first IKE_SA_INIT request).
    pub fn spi_r(&self) -> IkeSpi {
        IkeSpi(self.array::<8>(field::SPI_R.start))
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

    /// Message ID.
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

    /// Sets the initiator's SPI (no-op on a too-short buffer, like every setter).
    pub fn set_spi_i(&mut self, value: IkeSpi) {
        self.set_bytes(field::SPI_I.start, &value.0);
    }

    /// Sets the responder's SPI.
    pub fn set_spi_r(&mut self, value: IkeSpi) {
        self.set_bytes(field::SPI_R.start, &value.0);
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

/// Owned IKE header of a version 2 message; the length is derived when emitting, the minor
/// version is ignored on receipt and sent as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// IKE SA initiator's SPI.
    pub spi_i: IkeSpi,
    /// IKE SA responder's SPI (zero in the first IKE_SA_INIT request).
    pub spi_r: IkeSpi,
    /// Type of the first payload (SK for encrypted messages).
    pub next_payload: PayloadType,
    /// Exchange type.
    pub exchange_type: ExchangeType,
    /// Flags (I, V, R).
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
}

fn check_version<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<(), ParseError> {
    let (major, minor) = (packet.major_version(), packet.minor_version());
    if major != IKEV2_MAJOR {
        return Err(ParseError::UnsupportedVersion { major, minor });
    }
    Ok(())
}

impl Header {
    /// Reads the header fields of a checked packet; refuses any major version but 2.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Header, ParseError> {
        packet.check_len()?;
        check_version(packet)?;
        Ok(Self::fields(packet))
    }

    fn fields<T: AsRef<[u8]>>(packet: &Packet<T>) -> Header {
        Header {
            spi_i: packet.spi_i(),
            spi_r: packet.spi_r(),
            next_payload: packet.next_payload(),
            exchange_type: packet.exchange_type(),
            flags: packet.flags(),
            message_id: packet.message_id(),
        }
    }

    /// Parses the header of a whole UDP datagram (after any non-ESP marker) and returns it
    /// with the body. The version is checked first (so a version-3 message of any length is
    /// reported as such), then the length field, which must match the datagram exactly.
    pub fn parse_datagram(datagram: &[u8]) -> Result<(Header, &[u8]), ParseError> {
        if datagram.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let packet = Packet::new_unchecked(datagram);
        check_version(&packet)?;
        packet.check_len()?;
        let length = packet.length() as usize;
        if length < datagram.len() {
            return Err(ParseError::TrailingGarbage {
                extra: datagram.len() - length,
            });
        }
        Ok((
            Self::fields(&packet),
            datagram.get(HEADER_LEN..length).unwrap_or(&[]),
        ))
    }

    /// Writes the header, with version 2.0 and the given total length, into `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        length: u32,
    ) -> Result<(), EmitError> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(EmitError::BufferTooSmall);
        }
        packet.set_spi_i(self.spi_i);
        packet.set_spi_r(self.spi_r);
        packet.set_next_payload(self.next_payload);
        packet.set_version(IKEV2_VERSION);
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
            .ok_or(EmitError::TooLong("IKE message"))?;
        let mut bytes = [0u8; HEADER_LEN];
        self.emit(&mut Packet::new_unchecked(&mut bytes[..]), total)?;
        Ok(bytes)
    }
}
