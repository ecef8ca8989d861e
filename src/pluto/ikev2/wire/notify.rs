//! The Notify payload (RFC 7296 3.10) and the data of the notifications rswan sends or reads.
//!
//! ```text
//! Protocol ID(1) SPI Size(1) Notify Message Type(2) SPI Notification Data
//! ```
//! The protocol is only meaningful with an SPI (INVALID_SELECTORS, REKEY_SA,
//! CHILD_SA_NOT_FOUND); otherwise it is sent as 0 and ignored on receipt, but kept as received.

use super::consts::{DhGroup, HashAlgorithm, NotifyType, PayloadType, ProtocolId};
use super::error::{EmitError, ParseError};
use super::payload::{too_short, Reader, Spi};

/// Shortest COOKIE data (RFC 7296 2.6).
pub const MIN_COOKIE_LEN: usize = 1;
/// Longest COOKIE data (RFC 7296 2.6).
pub const MAX_COOKIE_LEN: usize = 64;
/// Most hash algorithms read from a SIGNATURE_HASH_ALGORITHMS notification.
pub const MAX_HASH_ALGORITHMS: usize = 32;

/// A Notify payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotifyPayload {
    /// Protocol of the SA the SPI names ([`ProtocolId::None`] without SPI).
    pub protocol: ProtocolId,
    /// SPI of the SA concerned, usually none.
    pub spi: Spi,
    /// The notify message type.
    pub notify_type: NotifyType,
    /// Notification data.
    pub data: Vec<u8>,
}

fn malformed(reason: &'static str) -> ParseError {
    ParseError::MalformedPayload {
        payload_type: PayloadType::Notify,
        reason,
    }
}

impl NotifyPayload {
    /// A notification about no particular SA (protocol 0, no SPI).
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> NotifyPayload {
        NotifyPayload {
            protocol: ProtocolId::None,
            spi: Spi::None,
            notify_type,
            data,
        }
    }

    /// A notification about a Child SA (e.g. REKEY_SA, CHILD_SA_NOT_FOUND).
    pub fn child(
        notify_type: NotifyType,
        protocol: ProtocolId,
        spi: u32,
        data: Vec<u8>,
    ) -> NotifyPayload {
        NotifyPayload {
            protocol,
            spi: Spi::Child(spi),
            notify_type,
            data,
        }
    }

    /// INVALID_KE_PAYLOAD naming the group the responder wants.
    pub fn invalid_ke_payload(group: DhGroup) -> NotifyPayload {
        Self::new(
            NotifyType::InvalidKePayload,
            group.value().to_be_bytes().to_vec(),
        )
    }

    /// UNSUPPORTED_CRITICAL_PAYLOAD naming the payload type.
    pub fn unsupported_critical_payload(payload_type: u8) -> NotifyPayload {
        Self::new(NotifyType::UnsupportedCriticalPayload, vec![payload_type])
    }

    /// SIGNATURE_HASH_ALGORITHMS listing `hashes` (RFC 7427 4).
    pub fn signature_hash_algorithms(hashes: &[HashAlgorithm]) -> NotifyPayload {
        Self::new(
            NotifyType::SignatureHashAlgorithms,
            encode_hash_algorithms(hashes),
        )
    }

    /// COOKIE with `cookie` (1 to 64 octets).
    pub fn cookie(cookie: Vec<u8>) -> Result<NotifyPayload, EmitError> {
        if !(MIN_COOKIE_LEN..=MAX_COOKIE_LEN).contains(&cookie.len()) {
            return Err(EmitError::Inconsistent(
                "COOKIE of 0 or more than 64 octets",
            ));
        }
        Ok(Self::new(NotifyType::Cookie, cookie))
    }

    /// The group of an INVALID_KE_PAYLOAD notification (data: 2 octets).
    pub fn dh_group(&self) -> Result<DhGroup, ParseError> {
        <[u8; 2]>::try_from(&self.data[..])
            .map(|b| DhGroup::from(u16::from_be_bytes(b)))
            .map_err(|_| malformed("INVALID_KE_PAYLOAD data not 2 octets"))
    }

    /// The hash algorithms of a SIGNATURE_HASH_ALGORITHMS notification.
    pub fn hash_algorithms(&self) -> Result<Vec<HashAlgorithm>, ParseError> {
        decode_hash_algorithms(&self.data)
    }

    /// The cookie of a COOKIE notification, checked for length.
    pub fn cookie_data(&self) -> Result<&[u8], ParseError> {
        if (MIN_COOKIE_LEN..=MAX_COOKIE_LEN).contains(&self.data.len()) {
            Ok(&self.data)
        } else {
            Err(malformed("COOKIE of 0 or more than 64 octets"))
        }
    }

    /// Parses a Notify payload body.
    pub fn parse(body: &[u8]) -> Result<NotifyPayload, ParseError> {
        let mut r = Reader::new(body);
        let (Some(protocol), Some(spi_size), Some(notify_type)) = (r.u8(), r.u8(), r.u16()) else {
            return Err(too_short(PayloadType::Notify, body));
        };
        let spi = r
            .take(spi_size as usize)
            .ok_or(malformed("SPI runs past the end of the payload"))?;
        Ok(NotifyPayload {
            protocol: ProtocolId::from(protocol),
            spi: Spi::from_bytes(spi),
            notify_type: NotifyType::from(notify_type),
            data: r.rest().to_vec(),
        })
    }

    /// Appends the payload body to `out`.
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        out.push(self.protocol.value());
        out.push(self.spi.size_octet()?);
        out.extend_from_slice(&self.notify_type.value().to_be_bytes());
        self.spi.emit(out)?;
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// The data of a SIGNATURE_HASH_ALGORITHMS notification: each hash as 2 octets.
pub fn encode_hash_algorithms(hashes: &[HashAlgorithm]) -> Vec<u8> {
    hashes
        .iter()
        .flat_map(|h| h.value().to_be_bytes())
        .collect()
}

/// Decodes SIGNATURE_HASH_ALGORITHMS data (an even number of octets, at most
/// [`MAX_HASH_ALGORITHMS`] entries; unknown values kept).
pub fn decode_hash_algorithms(data: &[u8]) -> Result<Vec<HashAlgorithm>, ParseError> {
    if !data.len().is_multiple_of(2) {
        return Err(malformed("SIGNATURE_HASH_ALGORITHMS data of odd length"));
    }
    if data.len() / 2 > MAX_HASH_ALGORITHMS {
        return Err(malformed("too many signature hash algorithms"));
    }
    Ok(data
        .chunks_exact(2)
        .map(|c| HashAlgorithm::from(u16::from_be_bytes([c[0], c[1]])))
        .collect())
}
