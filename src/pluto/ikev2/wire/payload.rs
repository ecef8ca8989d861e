//! Payloads: the generic payload header view [`PayloadPacket`], the zero-copy chain walker
//! [`PayloadIter`], the owned [`Payload`] enum and the Reprs of the simple payloads (SA, TS
//! and Notify have their own modules).
//!
//! Generic payload header (RFC 7296 3.2):
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! The critical bit only matters for payload types the receiver does not know: such a payload
//! is skipped when the bit is clear and makes the message fail with
//! [`ParseError::UnsupportedCriticalPayload`] when it is set (RFC 7296 2.5). Known payloads
//! ignore it and the RESERVED bits on receipt and are emitted with both clear.
//!
//! The Encrypted payloads (SK, SKF) end a chain: their next-payload field names the first
//! payload *inside* the ciphertext, so [`PayloadIter`] stops after them.

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::consts::{AuthMethod, CertEncoding, CfgType, ConfigAttrType, DhGroup};
use super::consts::{IdType, PayloadType, ProtocolId};
use super::error::{EmitError, ParseError};
use super::header::IkeSpi;
use super::notify::NotifyPayload;
use super::sa::SaPayload;
use super::ts::TsPayload;
use super::MAX_PAYLOADS;

/// Size of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;
/// Shortest nonce accepted and sent (RFC 7296 3.9).
pub const MIN_NONCE_LEN: usize = 16;
/// Longest nonce accepted and sent (RFC 7296 3.9).
pub const MAX_NONCE_LEN: usize = 256;
/// Most configuration attributes accepted in one CP payload.
pub const MAX_CONFIG_ATTRIBUTES: usize = 64;
/// The critical bit of the generic header's second octet.
pub const CRITICAL_BIT: u8 = 0x80;

/// Bounds-checked big-endian reader over a byte slice (never panics).
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| <[u8; N]>::try_from(b).ok())
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array::<2>().map(u16::from_be_bytes)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf;
        self.buf = &[];
        rest
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Zero-copy view of one generic-header structure (a payload).
///
/// Accessors never panic; [`PayloadPacket::new_checked`] guarantees the fields exist.
#[derive(Debug, Clone)]
pub struct PayloadPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PayloadPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        PayloadPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the generic header is there and that the payload length is at least the
    /// header size and no more than the buffer.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < GENERIC_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let plen = self.payload_length();
        if (plen as usize) < GENERIC_HEADER_LEN || plen as usize > len {
            return Err(ParseError::BadPayloadLength {
                payload_type: PayloadType::Unknown(0),
                length: plen,
            });
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

    /// Type of the next payload in the chain (of the first inner payload, for SK / SKF).
    pub fn next_payload(&self) -> PayloadType {
        PayloadType::from(self.byte(0))
    }

    /// True if the critical bit is set.
    pub fn critical(&self) -> bool {
        self.byte(1) & CRITICAL_BIT != 0
    }

    /// The seven RESERVED bits after the critical bit.
    pub fn reserved(&self) -> u8 {
        self.byte(1) & !CRITICAL_BIT
    }

    /// Payload length including the generic header.
    pub fn payload_length(&self) -> u16 {
        u16::from_be_bytes([self.byte(2), self.byte(3)])
    }

    /// The payload body (after the generic header, up to the payload length, clamped).
    pub fn body(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = (self.payload_length() as usize).min(buf.len());
        buf.get(GENERIC_HEADER_LEN..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> PayloadPacket<T> {
    /// Sets the next payload type (no-op on a too-short buffer, like every setter).
    pub fn set_next_payload(&mut self, value: PayloadType) {
        if let Some(b) = self.buffer.as_mut().get_mut(0) {
            *b = value.value();
        }
    }

    /// Sets or clears the critical bit (the RESERVED bits are cleared).
    pub fn set_critical(&mut self, critical: bool) {
        if let Some(b) = self.buffer.as_mut().get_mut(1) {
            *b = if critical { CRITICAL_BIT } else { 0 };
        }
    }

    /// Sets the payload length.
    pub fn set_payload_length(&mut self, value: u16) {
        if let Some(b) = self.buffer.as_mut().get_mut(2..4) {
            b.copy_from_slice(&value.to_be_bytes());
        }
    }
}

/// One generic-header structure split off the front of a buffer.
pub(crate) struct Split<'a> {
    /// Raw first octet (next payload / last substructure).
    pub(crate) next: u8,
    /// Second octet (critical bit and RESERVED).
    pub(crate) flags: u8,
    /// The structure, generic header included.
    pub(crate) this: &'a [u8],
    /// What follows it.
    pub(crate) rest: &'a [u8],
}

impl<'a> Split<'a> {
    /// The body after the 4-octet generic header.
    pub(crate) fn body(&self) -> &'a [u8] {
        self.this.get(GENERIC_HEADER_LEN..).unwrap_or(&[])
    }
}

/// Splits one generic-header structure (at least `min_len` bytes long) off the front of
/// `buf`; errors name `this_type`.
pub(crate) fn split_generic(
    buf: &[u8],
    this_type: PayloadType,
    min_len: usize,
) -> Result<Split<'_>, ParseError> {
    let mut r = Reader::new(buf);
    let (Some(next), Some(flags), Some(length)) = (r.u8(), r.u8(), r.u16()) else {
        return Err(ParseError::Truncated);
    };
    let len = length as usize;
    if len < min_len.max(GENERIC_HEADER_LEN) || len > buf.len() {
        return Err(ParseError::BadPayloadLength {
            payload_type: this_type,
            length,
        });
    }
    let (this, rest) = buf.split_at(len);
    Ok(Split {
        next,
        flags,
        this,
        rest,
    })
}

/// Appends a generic header plus `body` to `out`.
pub(crate) fn emit_generic(
    out: &mut Vec<u8>,
    next: u8,
    flags: u8,
    body: &[u8],
    what: &'static str,
) -> Result<(), EmitError> {
    let len = body
        .len()
        .checked_add(GENERIC_HEADER_LEN)
        .and_then(|l| u16::try_from(l).ok())
        .ok_or(EmitError::TooLong(what))?;
    out.push(next);
    out.push(flags);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// True for the payload types this codec interprets; any other type is skipped, or refused
/// when critical.
pub fn is_known_payload_type(t: PayloadType) -> bool {
    !matches!(t, PayloadType::None | PayloadType::Unknown(_))
}

/// One payload of a chain, not yet interpreted: borrowed bytes and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// This payload's type (from the previous payload's, or the header's, next field).
    pub payload_type: PayloadType,
    /// Type of the payload that follows; for SK / SKF, of the first payload inside.
    pub next_payload: PayloadType,
    /// The critical bit.
    pub critical: bool,
    /// Offset of the generic header from the start of the chain buffer.
    pub offset: usize,
    /// The whole payload: generic header and body.
    pub bytes: &'a [u8],
}

impl<'a> RawPayload<'a> {
    /// The body after the generic header (e.g. the "RestOfInitIDPayload" of RFC 7296 2.15).
    pub fn body(&self) -> &'a [u8] {
        self.bytes.get(GENERIC_HEADER_LEN..).unwrap_or(&[])
    }

    /// Interprets the payload: `Ok(None)` for an unknown type without the critical bit (to be
    /// skipped), [`ParseError::UnsupportedCriticalPayload`] for one with it.
    pub fn parse(&self) -> Result<Option<Payload>, ParseError> {
        if !is_known_payload_type(self.payload_type) {
            if self.critical {
                return Err(ParseError::UnsupportedCriticalPayload {
                    payload_type: self.payload_type.value(),
                });
            }
            return Ok(None);
        }
        Payload::parse(self.payload_type, self.next_payload, self.body()).map(Some)
    }
}

/// Zero-copy walker over a payload chain, following next-payload fields from `first`.
///
/// Yields at most [`MAX_PAYLOADS`] payloads (then `Err(TooManyPayloads)`); stops after the
/// first error and after an SK or SKF payload. After it returns `None`,
/// [`offset`](Self::offset) is where the chain ended (anything after it is trailing data).
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    buf: &'a [u8],
    offset: usize,
    next: PayloadType,
    count: usize,
    done: bool,
}

impl<'a> PayloadIter<'a> {
    /// Walks `buf` (a message body or decrypted chain) whose first payload is of type `first`.
    pub fn new(first: PayloadType, buf: &'a [u8]) -> Self {
        PayloadIter {
            buf,
            offset: 0,
            next: first,
            count: 0,
            done: false,
        }
    }

    /// Offset just past the last payload yielded so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes after the last payload yielded so far.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.offset..).unwrap_or(&[])
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next == PayloadType::None {
            return None;
        }
        if self.count >= MAX_PAYLOADS {
            self.done = true;
            return Some(Err(ParseError::TooManyPayloads));
        }
        match split_generic(self.remaining(), self.next, GENERIC_HEADER_LEN) {
            Ok(split) => {
                let raw = RawPayload {
                    payload_type: self.next,
                    next_payload: PayloadType::from(split.next),
                    critical: split.flags & CRITICAL_BIT != 0,
                    offset: self.offset,
                    bytes: split.this,
                };
                self.offset += split.this.len();
                self.count += 1;
                if matches!(
                    raw.payload_type,
                    PayloadType::Encrypted | PayloadType::EncryptedFragment
                ) {
                    self.done = true;
                } else {
                    self.next = raw.next_payload;
                }
                Some(Ok(raw))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// An SPI as carried by a proposal or notification: its size decides the variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Spi {
    /// No SPI (size 0: the initial IKE_SA_INIT proposal, most notifications).
    None,
    /// An IKE SA SPI (size 8: IKE SA rekey proposals).
    Ike(IkeSpi),
    /// An AH or ESP SPI (size 4).
    Child(u32),
    /// Any other size, kept as received.
    Other(Vec<u8>),
}

impl Spi {
    /// Decodes `bytes` by their length.
    pub fn from_bytes(bytes: &[u8]) -> Spi {
        match bytes.len() {
            0 => Spi::None,
            4 => Spi::Child(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
            8 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(bytes);
                Spi::Ike(IkeSpi(a))
            }
            _ => Spi::Other(bytes.to_vec()),
        }
    }

    /// Size in octets.
    pub fn len(&self) -> usize {
        match self {
            Spi::None => 0,
            Spi::Ike(_) => 8,
            Spi::Child(_) => 4,
            Spi::Other(b) => b.len(),
        }
    }

    /// True for [`Spi::None`] (or an empty `Other`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the SPI bytes.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        match self {
            Spi::None => {}
            Spi::Ike(s) => out.extend_from_slice(&s.0),
            Spi::Child(s) => out.extend_from_slice(&s.to_be_bytes()),
            Spi::Other(b) if matches!(b.len(), 0 | 4 | 8) => {
                return Err(EmitError::Inconsistent(
                    "SPI of size 0, 4 or 8 in Spi::Other",
                ))
            }
            Spi::Other(b) => out.extend_from_slice(b),
        }
        Ok(())
    }

    /// The size octet, checked.
    pub(crate) fn size_octet(&self) -> Result<u8, EmitError> {
        u8::try_from(self.len()).map_err(|_| EmitError::TooLong("SPI"))
    }
}

/// Key Exchange payload (RFC 7296 3.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KePayload {
    /// The Diffie-Hellman group of the public value.
    pub group: DhGroup,
    /// The public value (g^x, an EC point, an X25519 key ...).
    pub data: Vec<u8>,
}

/// The identity of an IDi / IDr payload (RFC 7296 3.5).
///
/// `Other` carries the types without a variant of their own (emitting it with one of the
/// types that has a variant is refused, so every identity has one encoding).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identification {
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_FQDN (bytes as sent, normally ASCII, no `@`).
    Fqdn(Vec<u8>),
    /// ID_RFC822_ADDR (`user@domain`, bytes as sent).
    Rfc822(Vec<u8>),
    /// ID_IPV6_ADDR.
    Ipv6(Ipv6Addr),
    /// ID_DER_ASN1_DN (DER bytes).
    DerAsn1Dn(Vec<u8>),
    /// ID_KEY_ID (opaque bytes).
    KeyId(Vec<u8>),
    /// Any other type, data kept.
    Other {
        /// The type.
        id_type: IdType,
        /// The data.
        data: Vec<u8>,
    },
}

impl Identification {
    /// The ID type octet.
    pub fn id_type(&self) -> IdType {
        match self {
            Identification::Ipv4(_) => IdType::Ipv4Addr,
            Identification::Fqdn(_) => IdType::Fqdn,
            Identification::Rfc822(_) => IdType::Rfc822Addr,
            Identification::Ipv6(_) => IdType::Ipv6Addr,
            Identification::DerAsn1Dn(_) => IdType::DerAsn1Dn,
            Identification::KeyId(_) => IdType::KeyId,
            Identification::Other { id_type, .. } => *id_type,
        }
    }

    /// The identification data.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Identification::Ipv4(a) => a.octets().to_vec(),
            Identification::Ipv6(a) => a.octets().to_vec(),
            Identification::Fqdn(d)
            | Identification::Rfc822(d)
            | Identification::DerAsn1Dn(d)
            | Identification::KeyId(d)
            | Identification::Other { data: d, .. } => d.clone(),
        }
    }

    fn parse(body: &[u8], payload_type: PayloadType) -> Result<Identification, ParseError> {
        let mut r = Reader::new(body);
        let id_type = IdType::from(r.u8().ok_or_else(|| too_short(payload_type, body))?);
        r.take(3).ok_or_else(|| too_short(payload_type, body))?;
        let data = r.rest();
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type,
            reason,
        };
        Ok(match id_type {
            IdType::Ipv4Addr => Identification::Ipv4(Ipv4Addr::from(
                <[u8; 4]>::try_from(data).map_err(|_| malformed("ID_IPV4_ADDR not 4 octets"))?,
            )),
            IdType::Ipv6Addr => Identification::Ipv6(Ipv6Addr::from(
                <[u8; 16]>::try_from(data).map_err(|_| malformed("ID_IPV6_ADDR not 16 octets"))?,
            )),
            IdType::Fqdn => Identification::Fqdn(data.to_vec()),
            IdType::Rfc822Addr => Identification::Rfc822(data.to_vec()),
            IdType::DerAsn1Dn => Identification::DerAsn1Dn(data.to_vec()),
            IdType::KeyId => Identification::KeyId(data.to_vec()),
            other => Identification::Other {
                id_type: other,
                data: data.to_vec(),
            },
        })
    }

    /// The payload body: ID type, three RESERVED octets, data (the "RestOfInitIDPayload" /
    /// "RestOfRespIDPayload" that RFC 7296 2.15 signs, for our own ID).
    pub fn body_bytes(&self) -> Result<Vec<u8>, EmitError> {
        if let Identification::Other { id_type, .. } = self {
            if matches!(
                id_type,
                IdType::Ipv4Addr
                    | IdType::Ipv6Addr
                    | IdType::Fqdn
                    | IdType::Rfc822Addr
                    | IdType::DerAsn1Dn
                    | IdType::KeyId
            ) {
                return Err(EmitError::Inconsistent(
                    "Identification::Other with a type that has its own variant",
                ));
            }
        }
        let mut out = vec![self.id_type().value(), 0, 0, 0];
        out.extend_from_slice(&self.data());
        Ok(out)
    }
}

impl fmt::Display for Identification {
    /// Pluto style: an address, `@fqdn`, `user@domain`, `@#hex` for a key ID; a DN and
    /// unknown types in hex with their type name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        match self {
            Identification::Ipv4(a) => write!(f, "{a}"),
            Identification::Ipv6(a) => write!(f, "{a}"),
            Identification::Fqdn(d) => write!(f, "@{}", String::from_utf8_lossy(d)),
            Identification::Rfc822(d) => f.write_str(&String::from_utf8_lossy(d)),
            Identification::KeyId(d) => write!(f, "@#{}", hex(d)),
            Identification::DerAsn1Dn(d) => write!(f, "ID_DER_ASN1_DN:{}", hex(d)),
            Identification::Other { id_type, data } => write!(f, "{id_type}:{}", hex(data)),
        }
    }
}

/// Certificate or Certificate Request payload (RFC 7296 3.6, 3.7); the data is opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertPayload {
    /// Certificate encoding / requested certificate type.
    pub encoding: CertEncoding,
    /// Certificate data, or concatenated SHA-1 hashes of CA public keys for a request.
    pub data: Vec<u8>,
}

/// Authentication payload (RFC 7296 3.8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthPayload {
    /// The method.
    pub method: AuthMethod,
    /// Authentication data (for [`AuthMethod::DigitalSignature`] see
    /// [`super::sigalg::SignatureAuth`]).
    pub data: Vec<u8>,
}

/// Delete payload (RFC 7296 3.11).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeletePayload {
    /// Delete the IKE SA this message belongs to (protocol IKE, no SPI).
    Ike,
    /// Delete Child SAs: the SPIs are the ones the *sender* expects on inbound packets.
    Child {
        /// [`ProtocolId::Esp`] or [`ProtocolId::Ah`].
        protocol: ProtocolId,
        /// The SPIs.
        spis: Vec<u32>,
    },
}

/// One configuration attribute of a CP payload (RFC 7296 3.15.1); the value is raw.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigAttribute {
    /// Attribute type (15 bits).
    pub attr_type: ConfigAttrType,
    /// Value (possibly empty, e.g. in a CFG_REQUEST).
    pub value: Vec<u8>,
}

/// Configuration payload (RFC 7296 3.15).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigPayload {
    /// Request, reply, set or ack.
    pub cfg_type: CfgType,
    /// Attributes in order (at most [`MAX_CONFIG_ATTRIBUTES`]).
    pub attributes: Vec<ConfigAttribute>,
}

/// Encrypted and Authenticated payload, SK (RFC 7296 3.14), as it travels: the IV, the
/// ciphertext and the ICV, whose split depends on the negotiated algorithms (see
/// [`super::sk`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptedPayload {
    /// Type of the first payload inside the ciphertext (the SK payload's next-payload field).
    pub first_inner: PayloadType,
    /// IV, ciphertext (with padding and pad length inside) and ICV.
    pub data: Vec<u8>,
}

/// Size of the fixed part of an SKF payload body: Fragment Number and Total Fragments.
pub const SKF_FIELDS_LEN: usize = 4;

/// Encrypted and Authenticated Fragment payload, SKF (RFC 7383 2.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptedFragmentPayload {
    /// Type of the first inner payload in fragment 1, [`PayloadType::None`] in the others.
    pub first_inner: PayloadType,
    /// Fragment number, from 1.
    pub number: u16,
    /// Total number of fragments (at least `number`).
    pub total: u16,
    /// IV, ciphertext (with padding and pad length inside) and ICV.
    pub data: Vec<u8>,
}

/// An IKEv2 payload, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Security Association (33).
    Sa(SaPayload),
    /// Key Exchange (34).
    Ke(KePayload),
    /// Identification - Initiator (35).
    IdI(Identification),
    /// Identification - Responder (36).
    IdR(Identification),
    /// Certificate (37).
    Cert(CertPayload),
    /// Certificate Request (38).
    CertReq(CertPayload),
    /// Authentication (39).
    Auth(AuthPayload),
    /// Nonce (40), 16 to 256 octets.
    Nonce(Vec<u8>),
    /// Notify (41).
    Notify(NotifyPayload),
    /// Delete (42).
    Delete(DeletePayload),
    /// Vendor ID (43).
    VendorId(Vec<u8>),
    /// Traffic Selector - Initiator (44).
    TsI(TsPayload),
    /// Traffic Selector - Responder (45).
    TsR(TsPayload),
    /// Encrypted and Authenticated (46); always the last payload of a chain.
    Encrypted(EncryptedPayload),
    /// Configuration (47).
    Config(ConfigPayload),
    /// EAP (48), raw (rswan does not do EAP: such messages are refused).
    Eap(Vec<u8>),
    /// Encrypted and Authenticated Fragment (53); always the last payload of a chain.
    EncryptedFragment(EncryptedFragmentPayload),
}

pub(crate) fn too_short(payload_type: PayloadType, body: &[u8]) -> ParseError {
    ParseError::BadPayloadLength {
        payload_type,
        length: u16::try_from(body.len() + GENERIC_HEADER_LEN).unwrap_or(u16::MAX),
    }
}

fn check_nonce(len: usize) -> bool {
    (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&len)
}

impl Payload {
    /// The payload type this Repr is emitted as.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::Sa,
            Payload::Ke(_) => PayloadType::Ke,
            Payload::IdI(_) => PayloadType::IdI,
            Payload::IdR(_) => PayloadType::IdR,
            Payload::Cert(_) => PayloadType::Cert,
            Payload::CertReq(_) => PayloadType::CertReq,
            Payload::Auth(_) => PayloadType::Auth,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notify(_) => PayloadType::Notify,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::VendorId(_) => PayloadType::VendorId,
            Payload::TsI(_) => PayloadType::TsI,
            Payload::TsR(_) => PayloadType::TsR,
            Payload::Encrypted(_) => PayloadType::Encrypted,
            Payload::Config(_) => PayloadType::Config,
            Payload::Eap(_) => PayloadType::Eap,
            Payload::EncryptedFragment(_) => PayloadType::EncryptedFragment,
        }
    }

    /// Interprets the body (without generic header) of a known payload of type
    /// `payload_type`; `next_payload` is the generic header's first octet (only SK and SKF
    /// keep it: it names their first inner payload). Unknown types are refused as malformed:
    /// use [`RawPayload::parse`] to apply the critical-bit rule.
    pub fn parse(
        payload_type: PayloadType,
        next_payload: PayloadType,
        body: &[u8],
    ) -> Result<Payload, ParseError> {
        let mut r = Reader::new(body);
        let short = || too_short(payload_type, body);
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type,
            reason,
        };
        let payload = match payload_type {
            PayloadType::Sa => Payload::Sa(SaPayload::parse(body)?),
            PayloadType::Ke => {
                let group = DhGroup::from(r.u16().ok_or_else(short)?);
                r.u16().ok_or_else(short)?; // RESERVED
                Payload::Ke(KePayload {
                    group,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::IdI => Payload::IdI(Identification::parse(body, payload_type)?),
            PayloadType::IdR => Payload::IdR(Identification::parse(body, payload_type)?),
            PayloadType::Cert | PayloadType::CertReq => {
                let cert = CertPayload {
                    encoding: CertEncoding::from(r.u8().ok_or_else(short)?),
                    data: r.rest().to_vec(),
                };
                if payload_type == PayloadType::Cert {
                    Payload::Cert(cert)
                } else {
                    Payload::CertReq(cert)
                }
            }
            PayloadType::Auth => {
                let method = AuthMethod::from(r.u8().ok_or_else(short)?);
                r.take(3).ok_or_else(short)?;
                Payload::Auth(AuthPayload {
                    method,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::Nonce => {
                if !check_nonce(body.len()) {
                    return Err(malformed("nonce shorter than 16 or longer than 256 octets"));
                }
                Payload::Nonce(body.to_vec())
            }
            PayloadType::Notify => Payload::Notify(NotifyPayload::parse(body)?),
            PayloadType::Delete => {
                let protocol = ProtocolId::from(r.u8().ok_or_else(short)?);
                let spi_size = r.u8().ok_or_else(short)?;
                let count = r.u16().ok_or_else(short)?;
                let rest = r.rest();
                match (protocol, spi_size) {
                    (ProtocolId::Ike, 0) => {
                        if count != 0 || !rest.is_empty() {
                            return Err(malformed("IKE SA delete with SPIs"));
                        }
                        Payload::Delete(DeletePayload::Ike)
                    }
                    (ProtocolId::Ah | ProtocolId::Esp, 4) => {
                        if count as usize * 4 != rest.len() {
                            return Err(malformed(
                                "SPI count and size do not match the payload length",
                            ));
                        }
                        let spis = rest
                            .chunks_exact(4)
                            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                            .collect();
                        Payload::Delete(DeletePayload::Child { protocol, spis })
                    }
                    (ProtocolId::Ike | ProtocolId::Ah | ProtocolId::Esp, _) => {
                        return Err(malformed("SPI size wrong for the protocol"))
                    }
                    _ => return Err(malformed("unknown protocol")),
                }
            }
            PayloadType::VendorId => Payload::VendorId(body.to_vec()),
            PayloadType::TsI => Payload::TsI(TsPayload::parse(body, payload_type)?),
            PayloadType::TsR => Payload::TsR(TsPayload::parse(body, payload_type)?),
            PayloadType::Encrypted => Payload::Encrypted(EncryptedPayload {
                first_inner: next_payload,
                data: body.to_vec(),
            }),
            PayloadType::EncryptedFragment => {
                let number = r.u16().ok_or_else(short)?;
                let total = r.u16().ok_or_else(short)?;
                if number == 0 || total == 0 || number > total {
                    return Err(malformed("fragment number 0, or above total fragments"));
                }
                Payload::EncryptedFragment(EncryptedFragmentPayload {
                    first_inner: next_payload,
                    number,
                    total,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::Config => {
                let cfg_type = CfgType::from(r.u8().ok_or_else(short)?);
                r.take(3).ok_or_else(short)?;
                let mut attributes = Vec::new();
                while !r.is_empty() {
                    if attributes.len() >= MAX_CONFIG_ATTRIBUTES {
                        return Err(malformed("too many configuration attributes"));
                    }
                    let (Some(t), Some(len)) = (r.u16(), r.u16()) else {
                        return Err(malformed("configuration attribute header truncated"));
                    };
                    let value = r
                        .take(len as usize)
                        .ok_or(malformed("configuration attribute runs past the payload"))?;
                    attributes.push(ConfigAttribute {
                        attr_type: ConfigAttrType::from(t & 0x7fff),
                        value: value.to_vec(),
                    });
                }
                Payload::Config(ConfigPayload {
                    cfg_type,
                    attributes,
                })
            }
            PayloadType::Eap => Payload::Eap(body.to_vec()),
            PayloadType::None | PayloadType::Unknown(_) => {
                return Err(malformed("payload type this codec does not know"))
            }
        };
        Ok(payload)
    }

    /// Appends the body (without generic header) to `out`.
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        match self {
            Payload::Sa(sa) => sa.emit_body(out)?,
            Payload::Ke(ke) => {
                out.extend_from_slice(&ke.group.value().to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&ke.data);
            }
            Payload::IdI(id) | Payload::IdR(id) => out.extend_from_slice(&id.body_bytes()?),
            Payload::Cert(c) | Payload::CertReq(c) => {
                out.push(c.encoding.value());
                out.extend_from_slice(&c.data);
            }
            Payload::Auth(a) => {
                out.extend_from_slice(&[a.method.value(), 0, 0, 0]);
                out.extend_from_slice(&a.data);
            }
            Payload::Nonce(n) => {
                if !check_nonce(n.len()) {
                    return Err(EmitError::Inconsistent(
                        "nonce shorter than 16 or longer than 256 octets",
                    ));
                }
                out.extend_from_slice(n);
            }
            Payload::Notify(n) => n.emit_body(out)?,
            Payload::Delete(DeletePayload::Ike) => {
                out.extend_from_slice(&[ProtocolId::Ike.value(), 0, 0, 0]);
            }
            Payload::Delete(DeletePayload::Child { protocol, spis }) => {
                if !matches!(protocol, ProtocolId::Ah | ProtocolId::Esp) {
                    return Err(EmitError::Inconsistent("Child SA delete not for AH or ESP"));
                }
                let count = u16::try_from(spis.len())
                    .map_err(|_| EmitError::TooLong("Delete SPI count"))?;
                out.extend_from_slice(&[protocol.value(), 4]);
                out.extend_from_slice(&count.to_be_bytes());
                for spi in spis {
                    out.extend_from_slice(&spi.to_be_bytes());
                }
            }
            Payload::VendorId(d) | Payload::Eap(d) => out.extend_from_slice(d),
            Payload::TsI(ts) | Payload::TsR(ts) => ts.emit_body(out)?,
            Payload::Encrypted(sk) => out.extend_from_slice(&sk.data),
            Payload::EncryptedFragment(skf) => {
                if skf.number == 0 || skf.total == 0 || skf.number > skf.total {
                    return Err(EmitError::Inconsistent(
                        "fragment number 0, or above total fragments",
                    ));
                }
                out.extend_from_slice(&skf.number.to_be_bytes());
                out.extend_from_slice(&skf.total.to_be_bytes());
                out.extend_from_slice(&skf.data);
            }
            Payload::Config(cp) => {
                if cp.attributes.len() > MAX_CONFIG_ATTRIBUTES {
                    return Err(EmitError::TooLong("configuration attribute count"));
                }
                out.extend_from_slice(&[cp.cfg_type.value(), 0, 0, 0]);
                for a in &cp.attributes {
                    let t = a.attr_type.value();
                    if t > 0x7fff {
                        return Err(EmitError::Inconsistent(
                            "configuration attribute type over 0x7fff",
                        ));
                    }
                    let len = u16::try_from(a.value.len())
                        .map_err(|_| EmitError::TooLong("configuration attribute"))?;
                    out.extend_from_slice(&t.to_be_bytes());
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&a.value);
                }
            }
        }
        Ok(())
    }

    /// The body bytes (without generic header).
    pub fn body_bytes(&self) -> Result<Vec<u8>, EmitError> {
        let mut out = Vec::new();
        self.emit_body(&mut out)?;
        Ok(out)
    }

    /// The value of this payload's next-payload field when `next` follows it: `next` for
    /// ordinary payloads, the first inner payload for SK and SKF.
    pub fn next_field(&self, next: PayloadType) -> PayloadType {
        match self {
            Payload::Encrypted(sk) => sk.first_inner,
            Payload::EncryptedFragment(skf) => skf.first_inner,
            _ => next,
        }
    }

    /// Appends the whole payload (generic header, critical bit clear, then body) with the
    /// next-payload field set to `next` (ignored for SK and SKF: see
    /// [`next_field`](Self::next_field)).
    pub fn emit(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), EmitError> {
        let body = self.body_bytes()?;
        emit_generic(out, self.next_field(next).value(), 0, &body, "payload")
    }
}
