//! Payloads: the generic payload header view [`PayloadPacket`], the zero-copy chain walker
//! [`PayloadIter`], and the owned [`Payload`] Reprs of every IKEv1 payload except SA (which
//! lives in [`super::sa`]).
//!
//! Generic payload header (RFC 2408 3.2):
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ! Next Payload  !   RESERVED    !         Payload Length        !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! IKEv1 has no critical bit: the second byte is RESERVED. Known payloads ignore it when
//! parsing and emit 0; [`UnknownPayload::critical`] keeps its top bit (the IKEv2 critical
//! bit) so an engine can apply RFC 7296 rules, while RFC 2408 5.2 says an IKEv1 receiver
//! rejects any unknown payload type with INVALID_PAYLOAD_TYPE whatever that bit says.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::consts::{CertEncoding, Doi, IdType, NotifyType, PayloadType, ProtocolId};
use super::error::{EmitError, ParseError};
use super::sa::SaPayload;
use super::MAX_PAYLOADS;

/// Size of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

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

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf;
        self.buf = &[];
        rest
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf
    }
}

/// Zero-copy view of one generic-header structure (payload, proposal or transform).
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

    /// Type of the next payload in the chain.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType::from(self.byte(0))
    }

    /// The RESERVED byte (top bit = IKEv2 critical bit).
    pub fn reserved(&self) -> u8 {
        self.byte(1)
    }

    /// True if the top bit of the RESERVED byte (the IKEv2 critical bit) is set.
    pub fn critical(&self) -> bool {
        self.byte(1) & 0x80 != 0
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

    /// Sets the RESERVED byte.
    pub fn set_reserved(&mut self, value: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(1) {
            *b = value;
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
    /// Raw next-payload byte.
    pub(crate) next: u8,
    /// RESERVED byte.
    pub(crate) reserved: u8,
    /// The structure, generic header included.
    pub(crate) this: &'a [u8],
    /// What follows it.
    pub(crate) rest: &'a [u8],
}

/// Splits one generic-header structure of type `this_type` (at least `min_len` bytes long)
/// off the front of `buf`.
pub(crate) fn split_generic(
    buf: &[u8],
    this_type: PayloadType,
    min_len: usize,
) -> Result<Split<'_>, ParseError> {
    if buf.len() < GENERIC_HEADER_LEN {
        return Err(ParseError::Truncated);
    }
    let length = u16::from_be_bytes([buf[2], buf[3]]);
    let len = length as usize;
    if len < min_len.max(GENERIC_HEADER_LEN) || len > buf.len() {
        return Err(ParseError::BadPayloadLength {
            payload_type: this_type,
            length,
        });
    }
    let (this, rest) = buf.split_at(len);
    Ok(Split {
        next: buf[0],
        reserved: buf[1],
        this,
        rest,
    })
}

/// Appends a generic header plus `body` to `out`.
pub(crate) fn emit_generic(
    out: &mut Vec<u8>,
    next: PayloadType,
    reserved: u8,
    body: &[u8],
    what: &'static str,
) -> Result<(), EmitError> {
    let len =
        u16::try_from(body.len() + GENERIC_HEADER_LEN).map_err(|_| EmitError::TooLong(what))?;
    out.push(next.value());
    out.push(reserved);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// One payload of a chain, not yet interpreted: borrowed bytes and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// This payload's type (from the previous payload's, or the header's, next field).
    pub payload_type: PayloadType,
    /// Type of the payload that follows.
    pub next_payload: PayloadType,
    /// The RESERVED byte of the generic header.
    pub reserved: u8,
    /// Offset of the generic header from the start of the chain buffer.
    pub offset: usize,
    /// The whole payload: generic header and body.
    pub bytes: &'a [u8],
}

impl<'a> RawPayload<'a> {
    /// The body after the generic header (e.g. `SAi_b`, `IDii_b`, `Ni_b` of RFC 2409).
    pub fn body(&self) -> &'a [u8] {
        self.bytes.get(GENERIC_HEADER_LEN..).unwrap_or(&[])
    }

    /// Interprets the payload.
    pub fn parse(&self) -> Result<Payload, ParseError> {
        Payload::parse(self.payload_type, self.reserved, self.body())
    }
}

/// Zero-copy walker over a payload chain, following next-payload fields from `first`.
///
/// Yields at most [`MAX_PAYLOADS`] payloads (then `Err(TooManyPayloads)`); stops after the
/// first error. After it returns `None`, [`offset`](Self::offset) is where the chain ended
/// (anything after it is trailing data or padding).
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    buf: &'a [u8],
    offset: usize,
    next: PayloadType,
    count: usize,
    failed: bool,
}

impl<'a> PayloadIter<'a> {
    /// Walks `buf` (a message body) whose first payload is of type `first`.
    pub fn new(first: PayloadType, buf: &'a [u8]) -> Self {
        PayloadIter {
            buf,
            offset: 0,
            next: first,
            count: 0,
            failed: false,
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
        if self.failed || self.next == PayloadType::None {
            return None;
        }
        if self.count >= MAX_PAYLOADS {
            self.failed = true;
            return Some(Err(ParseError::TooManyPayloads));
        }
        match split_generic(self.remaining(), self.next, GENERIC_HEADER_LEN) {
            Ok(split) => {
                let bytes = split.this;
                let raw = RawPayload {
                    payload_type: self.next,
                    next_payload: PayloadType::from(split.next),
                    reserved: split.reserved,
                    offset: self.offset,
                    bytes,
                };
                self.offset += bytes.len();
                self.next = raw.next_payload;
                self.count += 1;
                Some(Ok(raw))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// ID payload of the IPsec DOI (RFC 2407 4.6.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdPayload {
    /// Identification type.
    pub id_type: IdType,
    /// IP protocol (0 = any; Pluto uses 17/500 in phase 1 for some peers, usually 0/0).
    pub protocol: u8,
    /// Port (0 = any).
    pub port: u16,
    /// Identification data.
    pub data: Vec<u8>,
}

/// A decoded IPsec DOI identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identification {
    /// ID_IPV4_ADDR.
    Ipv4Addr(Ipv4Addr),
    /// ID_FQDN (bytes as sent, normally ASCII, no `@`).
    Fqdn(Vec<u8>),
    /// ID_USER_FQDN (`user@domain`, bytes as sent).
    UserFqdn(Vec<u8>),
    /// ID_IPV4_ADDR_SUBNET.
    Ipv4Subnet {
        /// Network address.
        addr: Ipv4Addr,
        /// Netmask.
        mask: Ipv4Addr,
    },
    /// ID_IPV4_ADDR_RANGE.
    Ipv4Range {
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
    },
    /// ID_IPV6_ADDR.
    Ipv6Addr(Ipv6Addr),
    /// ID_IPV6_ADDR_SUBNET.
    Ipv6Subnet {
        /// Network address.
        addr: Ipv6Addr,
        /// Mask.
        mask: Ipv6Addr,
    },
    /// ID_IPV6_ADDR_RANGE.
    Ipv6Range {
        /// First address.
        start: Ipv6Addr,
        /// Last address.
        end: Ipv6Addr,
    },
    /// ID_DER_ASN1_DN (DER bytes).
    DerAsn1Dn(Vec<u8>),
    /// ID_KEY_ID (opaque).
    KeyId(Vec<u8>),
    /// Any other type, data kept.
    Other {
        /// The type.
        id_type: IdType,
        /// The data.
        data: Vec<u8>,
    },
}

fn v4(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

fn v6(b: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from)
}

impl IdPayload {
    /// Builds an ID payload for `id` with the given protocol and port.
    pub fn new(id: &Identification, protocol: u8, port: u16) -> IdPayload {
        let (id_type, data) = match id {
            Identification::Ipv4Addr(a) => (IdType::Ipv4Addr, a.octets().to_vec()),
            Identification::Fqdn(d) => (IdType::Fqdn, d.clone()),
            Identification::UserFqdn(d) => (IdType::UserFqdn, d.clone()),
            Identification::Ipv4Subnet { addr, mask } => (
                IdType::Ipv4AddrSubnet,
                [addr.octets(), mask.octets()].concat(),
            ),
            Identification::Ipv4Range { start, end } => (
                IdType::Ipv4AddrRange,
                [start.octets(), end.octets()].concat(),
            ),
            Identification::Ipv6Addr(a) => (IdType::Ipv6Addr, a.octets().to_vec()),
            Identification::Ipv6Subnet { addr, mask } => (
                IdType::Ipv6AddrSubnet,
                [addr.octets(), mask.octets()].concat(),
            ),
            Identification::Ipv6Range { start, end } => (
                IdType::Ipv6AddrRange,
                [start.octets(), end.octets()].concat(),
            ),
            Identification::DerAsn1Dn(d) => (IdType::DerAsn1Dn, d.clone()),
            Identification::KeyId(d) => (IdType::KeyId, d.clone()),
            Identification::Other { id_type, data } => (*id_type, data.clone()),
        };
        IdPayload {
            id_type,
            protocol,
            port,
            data,
        }
    }

    /// Decodes the data according to the type; `None` if an address type has the wrong length.
    pub fn identification(&self) -> Option<Identification> {
        let d = &self.data[..];
        Some(match self.id_type {
            IdType::Ipv4Addr => Identification::Ipv4Addr(v4(d)?),
            IdType::Fqdn => Identification::Fqdn(d.to_vec()),
            IdType::UserFqdn => Identification::UserFqdn(d.to_vec()),
            IdType::Ipv4AddrSubnet if d.len() == 8 => Identification::Ipv4Subnet {
                addr: v4(&d[..4])?,
                mask: v4(&d[4..])?,
            },
            IdType::Ipv4AddrRange if d.len() == 8 => Identification::Ipv4Range {
                start: v4(&d[..4])?,
                end: v4(&d[4..])?,
            },
            IdType::Ipv6Addr => Identification::Ipv6Addr(v6(d)?),
            IdType::Ipv6AddrSubnet if d.len() == 32 => Identification::Ipv6Subnet {
                addr: v6(&d[..16])?,
                mask: v6(&d[16..])?,
            },
            IdType::Ipv6AddrRange if d.len() == 32 => Identification::Ipv6Range {
                start: v6(&d[..16])?,
                end: v6(&d[16..])?,
            },
            IdType::Ipv4AddrSubnet
            | IdType::Ipv4AddrRange
            | IdType::Ipv6AddrSubnet
            | IdType::Ipv6AddrRange => return None,
            IdType::DerAsn1Dn => Identification::DerAsn1Dn(d.to_vec()),
            IdType::KeyId => Identification::KeyId(d.to_vec()),
            other => Identification::Other {
                id_type: other,
                data: d.to_vec(),
            },
        })
    }
}

/// Certificate or Certificate Request payload (RFC 2408 3.9, 3.10); the data is opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertPayload {
    /// Certificate encoding / requested certificate type.
    pub encoding: CertEncoding,
    /// Certificate data, or certificate authority (DER DN) for a request.
    pub data: Vec<u8>,
}

/// Notification payload (RFC 2408 3.14).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotificationPayload {
    /// DOI (1 = IPsec).
    pub doi: Doi,
    /// Protocol the notification is about.
    pub protocol: ProtocolId,
    /// SPI (size given by its length: 0, 4, or 16 for ISAKMP cookies).
    pub spi: Vec<u8>,
    /// Notify message type.
    pub notify_type: NotifyType,
    /// Notification data (e.g. the 4-byte DPD sequence number).
    pub data: Vec<u8>,
}

/// Delete payload (RFC 2408 3.15).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeletePayload {
    /// DOI (1 = IPsec).
    pub doi: Doi,
    /// Protocol of the SAs deleted.
    pub protocol: ProtocolId,
    /// Size of each SPI (4 for AH/ESP, 16 for ISAKMP: both cookies).
    pub spi_size: u8,
    /// The SPIs, each `spi_size` bytes.
    pub spis: Vec<Vec<u8>>,
}

/// NAT-D payload (RFC 3947 3.2): HASH(CKY-I | CKY-R | IP | Port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NatDPayload {
    /// The hash.
    pub hash: Vec<u8>,
    /// True when received (or to be sent) as the pre-RFC draft type 130.
    pub draft: bool,
}

/// NAT-OA payload (RFC 3947 5.1): an original address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NatOaPayload {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    pub id_type: IdType,
    /// The address bytes.
    pub address: Vec<u8>,
    /// True when received (or to be sent) as the pre-RFC draft type 131.
    pub draft: bool,
}

/// A payload of a type this codec does not interpret (or not valid at the top level, such as
/// a stray Proposal); its bytes are kept so the state machine can log and reject it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnknownPayload {
    /// The payload type as received.
    pub payload_type: PayloadType,
    /// Top bit of the RESERVED byte (IKEv2's critical bit; IKEv1 defines none).
    pub critical: bool,
    /// The body.
    pub data: Vec<u8>,
}

/// An IKEv1 payload, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Security Association (type 1).
    Sa(SaPayload),
    /// Key Exchange data, g^x (type 4).
    KeyExchange(Vec<u8>),
    /// Identification (type 5).
    Id(IdPayload),
    /// Certificate (type 6).
    Cert(CertPayload),
    /// Certificate Request (type 7).
    CertReq(CertPayload),
    /// Hash data (type 8).
    Hash(Vec<u8>),
    /// Signature data (type 9).
    Signature(Vec<u8>),
    /// Nonce data (type 10).
    Nonce(Vec<u8>),
    /// Notification (type 11).
    Notification(NotificationPayload),
    /// Delete (type 12).
    Delete(DeletePayload),
    /// Vendor ID (type 13).
    VendorId(Vec<u8>),
    /// NAT-D (type 20, or draft 130).
    NatD(NatDPayload),
    /// NAT-OA (type 21, or draft 131).
    NatOa(NatOaPayload),
    /// Any other type.
    Unknown(UnknownPayload),
}

fn too_short(payload_type: PayloadType, body_len: usize) -> ParseError {
    ParseError::BadPayloadLength {
        payload_type,
        length: u16::try_from(body_len + GENERIC_HEADER_LEN).unwrap_or(u16::MAX),
    }
}

impl Payload {
    /// The payload type this Repr is emitted as.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::Sa,
            Payload::KeyExchange(_) => PayloadType::KeyExchange,
            Payload::Id(_) => PayloadType::Id,
            Payload::Cert(_) => PayloadType::Cert,
            Payload::CertReq(_) => PayloadType::CertReq,
            Payload::Hash(_) => PayloadType::Hash,
            Payload::Signature(_) => PayloadType::Signature,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notification(_) => PayloadType::Notification,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::VendorId(_) => PayloadType::VendorId,
            Payload::NatD(p) if p.draft => PayloadType::NatDDraft,
            Payload::NatD(_) => PayloadType::NatD,
            Payload::NatOa(p) if p.draft => PayloadType::NatOaDraft,
            Payload::NatOa(_) => PayloadType::NatOa,
            Payload::Unknown(p) => p.payload_type,
        }
    }

    /// Interprets the body (without generic header) of a payload of type `payload_type`;
    /// `reserved` is the generic header's RESERVED byte.
    pub fn parse(
        payload_type: PayloadType,
        reserved: u8,
        body: &[u8],
    ) -> Result<Payload, ParseError> {
        let mut r = Reader::new(body);
        let short = || too_short(payload_type, body.len());
        let payload = match payload_type {
            PayloadType::Sa => Payload::Sa(SaPayload::parse(body)?),
            PayloadType::KeyExchange => Payload::KeyExchange(body.to_vec()),
            PayloadType::Id => {
                let id_type = IdType::from(r.u8().ok_or_else(short)?);
                let protocol = r.u8().ok_or_else(short)?;
                let port = r.u16().ok_or_else(short)?;
                Payload::Id(IdPayload {
                    id_type,
                    protocol,
                    port,
                    data: r.rest().to_vec(),
                })
            }
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
            PayloadType::Hash => Payload::Hash(body.to_vec()),
            PayloadType::Signature => Payload::Signature(body.to_vec()),
            PayloadType::Nonce => Payload::Nonce(body.to_vec()),
            PayloadType::Notification => {
                let doi = Doi::from(r.u32().ok_or_else(short)?);
                let protocol = ProtocolId::from(r.u8().ok_or_else(short)?);
                let spi_size = r.u8().ok_or_else(short)?;
                let notify_type = NotifyType::from(r.u16().ok_or_else(short)?);
                let spi = r
                    .take(spi_size as usize)
                    .ok_or(ParseError::MalformedPayload {
                        payload_type,
                        reason: "SPI runs past the end of the payload",
                    })?;
                Payload::Notification(NotificationPayload {
                    doi,
                    protocol,
                    spi: spi.to_vec(),
                    notify_type,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::Delete => {
                let doi = Doi::from(r.u32().ok_or_else(short)?);
                let protocol = ProtocolId::from(r.u8().ok_or_else(short)?);
                let spi_size = r.u8().ok_or_else(short)?;
                let count = r.u16().ok_or_else(short)?;
                let rest = r.rest();
                let malformed = |reason| ParseError::MalformedPayload {
                    payload_type,
                    reason,
                };
                if spi_size == 0 && count != 0 {
                    return Err(malformed("SPIs of size 0"));
                }
                if count as usize * spi_size as usize != rest.len() {
                    return Err(malformed(
                        "SPI count and size do not match the payload length",
                    ));
                }
                let spis = if spi_size == 0 {
                    Vec::new()
                } else {
                    rest.chunks(spi_size as usize).map(<[u8]>::to_vec).collect()
                };
                Payload::Delete(DeletePayload {
                    doi,
                    protocol,
                    spi_size,
                    spis,
                })
            }
            PayloadType::VendorId => Payload::VendorId(body.to_vec()),
            PayloadType::NatD | PayloadType::NatDDraft => Payload::NatD(NatDPayload {
                hash: body.to_vec(),
                draft: payload_type == PayloadType::NatDDraft,
            }),
            PayloadType::NatOa | PayloadType::NatOaDraft => {
                let id_type = IdType::from(r.u8().ok_or_else(short)?);
                r.take(3).ok_or_else(short)?;
                Payload::NatOa(NatOaPayload {
                    id_type,
                    address: r.rest().to_vec(),
                    draft: payload_type == PayloadType::NatOaDraft,
                })
            }
            other => Payload::Unknown(UnknownPayload {
                payload_type: other,
                critical: reserved & 0x80 != 0,
                data: body.to_vec(),
            }),
        };
        Ok(payload)
    }

    /// Appends the body (without generic header) to `out`.
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        match self {
            Payload::Sa(sa) => sa.emit_body(out)?,
            Payload::KeyExchange(d)
            | Payload::Hash(d)
            | Payload::Signature(d)
            | Payload::Nonce(d)
            | Payload::VendorId(d) => out.extend_from_slice(d),
            Payload::Id(id) => {
                out.push(id.id_type.value());
                out.push(id.protocol);
                out.extend_from_slice(&id.port.to_be_bytes());
                out.extend_from_slice(&id.data);
            }
            Payload::Cert(c) | Payload::CertReq(c) => {
                out.push(c.encoding.value());
                out.extend_from_slice(&c.data);
            }
            Payload::Notification(n) => {
                let spi_size = u8::try_from(n.spi.len()).map_err(|_| EmitError::TooLong("SPI"))?;
                out.extend_from_slice(&n.doi.value().to_be_bytes());
                out.push(n.protocol.value());
                out.push(spi_size);
                out.extend_from_slice(&n.notify_type.value().to_be_bytes());
                out.extend_from_slice(&n.spi);
                out.extend_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                if d.spis.iter().any(|s| s.len() != d.spi_size as usize) {
                    return Err(EmitError::Inconsistent(
                        "Delete SPI of a size other than spi_size",
                    ));
                }
                if d.spi_size == 0 && !d.spis.is_empty() {
                    return Err(EmitError::Inconsistent("Delete SPIs of size 0"));
                }
                let count = u16::try_from(d.spis.len())
                    .map_err(|_| EmitError::TooLong("Delete SPI count"))?;
                out.extend_from_slice(&d.doi.value().to_be_bytes());
                out.push(d.protocol.value());
                out.push(d.spi_size);
                out.extend_from_slice(&count.to_be_bytes());
                for spi in &d.spis {
                    out.extend_from_slice(spi);
                }
            }
            Payload::NatD(n) => out.extend_from_slice(&n.hash),
            Payload::NatOa(n) => {
                out.push(n.id_type.value());
                out.extend_from_slice(&[0, 0, 0]);
                out.extend_from_slice(&n.address);
            }
            Payload::Unknown(u) => {
                if u.payload_type == PayloadType::None {
                    return Err(EmitError::Inconsistent("payload of type NONE"));
                }
                out.extend_from_slice(&u.data);
            }
        }
        Ok(())
    }

    /// The body bytes (without generic header), e.g. to compute `IDii_b` for HASH_I.
    pub fn body_bytes(&self) -> Result<Vec<u8>, EmitError> {
        let mut out = Vec::new();
        self.emit_body(&mut out)?;
        Ok(out)
    }

    /// Appends the whole payload (generic header with next payload `next`, then body).
    pub fn emit(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), EmitError> {
        let body = self.body_bytes()?;
        let reserved = match self {
            Payload::Unknown(u) if u.critical => 0x80,
            _ => 0,
        };
        emit_generic(out, next, reserved, &body, "payload")
    }
}
