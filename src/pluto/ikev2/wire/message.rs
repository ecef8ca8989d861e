//! Whole messages: [`Message`], payload-chain parsing and emission.

use super::consts::{NotifyType, PayloadType};
use super::error::{EmitError, ParseError};
use super::header::{Header, HEADER_LEN};
use super::notify::NotifyPayload;
use super::payload::{Payload, PayloadIter};

/// An IKEv2 message: header and payloads. For a protected message the last payload is the
/// [`Payload::Encrypted`] (or [`Payload::EncryptedFragment`]) still encrypted; see
/// [`super::sk`] to open it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// The header. When emitting, `next_payload` is replaced by the type of the first
    /// payload and the length is computed.
    pub header: Header,
    /// The payloads in order (unknown non-critical payloads were skipped).
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a whole datagram (without the NAT-T non-ESP marker): see [`parse_message`].
    pub fn parse(datagram: &[u8]) -> Result<Message, ParseError> {
        parse_message(datagram)
    }

    /// Serialises the message: header (length and first payload type filled in) and chain.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmitError> {
        let (first, body) = emit_payloads(&self.payloads)?;
        let mut header = self.header;
        header.next_payload = first;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&header.to_bytes(body.len())?);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The first Notify payload of type `t`.
    pub fn notify(&self, t: NotifyType) -> Option<&NotifyPayload> {
        find_notify(&self.payloads, t)
    }

    /// The Notify payloads, in order.
    pub fn notifies(&self) -> impl Iterator<Item = &NotifyPayload> {
        notifies(&self.payloads)
    }
}

/// The Notify payloads of a chain, in order.
pub fn notifies(payloads: &[Payload]) -> impl Iterator<Item = &NotifyPayload> {
    payloads.iter().filter_map(|p| match p {
        Payload::Notify(n) => Some(n),
        _ => None,
    })
}

/// The first Notify payload of type `t` in a chain.
pub fn find_notify(payloads: &[Payload], t: NotifyType) -> Option<&NotifyPayload> {
    notifies(payloads).find(|n| n.notify_type == t)
}

/// Emits a payload chain (generic headers linked by next-payload fields, the last one NONE
/// unless it is SK / SKF) and returns the type of the first payload (for the IKE header, or
/// the SK payload's next-payload field) with the bytes. An SK or SKF payload anywhere but
/// last is refused.
pub fn emit_payloads(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), EmitError> {
    let mut out = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let next = match payloads.get(i + 1) {
            Some(n) => {
                if matches!(p, Payload::Encrypted(_) | Payload::EncryptedFragment(_)) {
                    return Err(EmitError::Inconsistent(
                        "Encrypted payload not the last payload",
                    ));
                }
                n.payload_type()
            }
            None => PayloadType::None,
        };
        p.emit(next, &mut out)?;
    }
    let first = payloads
        .first()
        .map_or(PayloadType::None, Payload::payload_type);
    Ok((first, out))
}

/// Parses a payload chain starting with a payload of type `first`; the chain must end
/// exactly at the end of `body` (an SK / SKF payload, which ends a chain, included).
/// Unknown payloads are skipped unless critical ([`ParseError::UnsupportedCriticalPayload`]).
pub fn parse_payloads(first: PayloadType, body: &[u8]) -> Result<Vec<Payload>, ParseError> {
    let mut iter = PayloadIter::new(first, body);
    let mut payloads = Vec::new();
    for raw in &mut iter {
        if let Some(p) = raw?.parse()? {
            payloads.push(p);
        }
    }
    let extra = iter.remaining().len();
    if extra != 0 {
        return Err(ParseError::TrailingGarbage { extra });
    }
    Ok(payloads)
}

/// Parses a whole IKEv2 datagram (without the NAT-T non-ESP marker).
///
/// Checks: header present, major version 2 (else [`ParseError::UnsupportedVersion`]), length
/// field equal to the datagram length, payload chain covering the body exactly with at most
/// [`MAX_PAYLOADS`](super::MAX_PAYLOADS) payloads. An Encrypted payload is returned as it is
/// (the last payload). The returned header's `next_payload` is the type of the first payload
/// kept (it differs from the wire only when a leading unknown payload was skipped). Never
/// panics; allocation is bounded by the datagram's size.
pub fn parse_message(datagram: &[u8]) -> Result<Message, ParseError> {
    let (mut header, body) = Header::parse_datagram(datagram)?;
    let payloads = parse_payloads(header.next_payload, body)?;
    // Skipped unknown payloads leave no trace: the header names the first payload kept.
    header.next_payload = payloads
        .first()
        .map_or(PayloadType::None, Payload::payload_type);
    Ok(Message { header, payloads })
}
