//! Whole messages: [`parse_message`], payload-chain parsing for decrypted bodies, emission.

use super::consts::PayloadType;
use super::error::{EmitError, ParseError};
use super::header::{Header, HEADER_LEN};
use super::payload::{Payload, PayloadIter};

/// Most trailing bytes tolerated after the last payload of a *decrypted* body.
///
/// IKEv1 encryption pads the plaintext to the cipher block size (Pluto with zeros); RFC 2409
/// does not bound the padding and neither Pluto nor strongSwan check its contents, so any
/// bytes are accepted up to this bound.
pub const MAX_DECRYPTED_PADDING: usize = 255;

/// The body of a message: payloads, or ciphertext when the E flag is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageBody {
    /// Plaintext payload chain.
    Payloads(Vec<Payload>),
    /// Encrypted body (E flag set), to be decrypted by the IKEv1 layer and then parsed with
    /// [`parse_decrypted_payloads`] starting at `header.next_payload`.
    Encrypted(Vec<u8>),
}

/// An ISAKMP message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// The header. When emitting a [`MessageBody::Payloads`] message, `next_payload` is
    /// replaced by the type of the first payload.
    pub header: Header,
    /// Payloads or ciphertext.
    pub body: MessageBody,
}

impl Message {
    /// The payloads (empty slice for an encrypted message).
    pub fn payloads(&self) -> &[Payload] {
        match &self.body {
            MessageBody::Payloads(p) => p,
            MessageBody::Encrypted(_) => &[],
        }
    }

    /// Serialises the message: header (length and first payload type filled in) and body.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmitError> {
        let mut header = self.header;
        let body = match &self.body {
            MessageBody::Payloads(payloads) => {
                header.next_payload = payloads
                    .first()
                    .map_or(PayloadType::None, Payload::payload_type);
                emit_payloads(payloads)?
            }
            MessageBody::Encrypted(ciphertext) => ciphertext.clone(),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&header.to_bytes(body.len())?);
        out.extend_from_slice(&body);
        Ok(out)
    }
}

/// Emits a payload chain (generic headers linked by next-payload fields, last one NONE).
/// The first payload's type goes into the ISAKMP header (or the HASH computation).
pub fn emit_payloads(payloads: &[Payload]) -> Result<Vec<u8>, EmitError> {
    let mut out = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads
            .get(i + 1)
            .map_or(PayloadType::None, Payload::payload_type);
        p.emit(next, &mut out)?;
    }
    Ok(out)
}

fn parse_chain(
    first: PayloadType,
    body: &[u8],
    padding: usize,
) -> Result<(Vec<Payload>, usize), ParseError> {
    let mut iter = PayloadIter::new(first, body);
    let mut payloads = Vec::new();
    for raw in &mut iter {
        payloads.push(raw?.parse()?);
    }
    let end = iter.offset();
    let extra = body.len().saturating_sub(end);
    if extra > padding {
        return Err(ParseError::TrailingGarbage { extra });
    }
    Ok((payloads, end))
}

/// Parses a plaintext payload chain starting with a payload of type `first`; the chain must
/// end exactly at the end of `body`.
pub fn parse_payloads(first: PayloadType, body: &[u8]) -> Result<Vec<Payload>, ParseError> {
    parse_chain(first, body, 0).map(|(p, _)| p)
}

/// Parses a decrypted body whose first payload is of type `first` (the header's next
/// payload), tolerating up to [`MAX_DECRYPTED_PADDING`] bytes of padding after the last
/// payload. Returns the payloads and the offset where the chain ends (the padding starts),
/// which is where hashes over "the rest of the message" stop.
pub fn parse_decrypted_payloads(
    first: PayloadType,
    body: &[u8],
) -> Result<(Vec<Payload>, usize), ParseError> {
    parse_chain(first, body, MAX_DECRYPTED_PADDING)
}

/// Parses a whole ISAKMP datagram (without the NAT-T non-ESP marker).
///
/// Checks: header present, version 1.0, length field equal to the datagram length; when the
/// E flag is clear, the payload chain must cover the body exactly and hold at most
/// [`MAX_PAYLOADS`](super::MAX_PAYLOADS) payloads. When the E flag is set the body is returned
/// as ciphertext. Never panics; allocation is bounded by the datagram's size.
pub fn parse_message(datagram: &[u8]) -> Result<Message, ParseError> {
    let (header, body) = Header::parse_datagram(datagram)?;
    let body = if header.flags.encrypted() {
        MessageBody::Encrypted(body.to_vec())
    } else {
        MessageBody::Payloads(parse_payloads(header.next_payload, body)?)
    };
    Ok(Message { header, body })
}
