//! The SA payload with its Proposal and Transform substructures and transform attributes
//! (RFC 7296 3.3).
//!
//! ```text
//! Proposal:  Last Substruc(1) RESERVED(1) Proposal Length(2)
//!            Proposal Num(1) Protocol ID(1) SPI Size(1) Num Transforms(1) SPI Transforms...
//! Transform: Last Substruc(1) RESERVED(1) Transform Length(2)
//!            Transform Type(1) RESERVED(1) Transform ID(2) Attributes...
//! Attribute: A|Type(2) then Value(2) (TV, A=1) or Length(2) Value (TLV, A=0)
//! ```
//! "Last Substruc" is 0 for the last proposal / transform and 2 / 3 before another one.
//! Nesting is fixed (SA → Proposal → Transform → Attribute), parsed with loops only, and every
//! level is capped ([`MAX_PROPOSALS`], [`MAX_TRANSFORMS`], [`MAX_TRANSFORM_ATTRIBUTES`]).

use super::consts::{DhGroup, EncrId, EsnId, IntegId, PayloadType, PrfId, ProtocolId};
use super::consts::{TransformAttrType, TransformType};
use super::error::{EmitError, ParseError};
use super::payload::{emit_generic, split_generic, Reader, Spi, Split, GENERIC_HEADER_LEN};

/// Most proposals accepted in one SA payload.
pub const MAX_PROPOSALS: usize = 64;
/// Most transforms accepted in one proposal (strongSwan's default IKE proposal with every
/// plugin loaded has about 40).
pub const MAX_TRANSFORMS: usize = 128;
/// Most attributes accepted in one transform.
pub const MAX_TRANSFORM_ATTRIBUTES: usize = 16;

const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
const AF_TV: u16 = 0x8000;

/// Splits a proposal or transform off `buf`; running out of bytes inside an SA payload is a
/// malformed SA, not a truncated message.
fn split_sub(buf: &[u8]) -> Result<Split<'_>, ParseError> {
    split_generic(buf, PayloadType::Sa, GENERIC_HEADER_LEN + 4).map_err(|e| match e {
        ParseError::Truncated => ParseError::MalformedPayload {
            payload_type: PayloadType::Sa,
            reason: "proposal or transform header truncated",
        },
        e => e,
    })
}

/// A transform's type and ID, typed by the transform type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformId {
    /// Type 1: encryption algorithm.
    Encr(EncrId),
    /// Type 2: pseudorandom function.
    Prf(PrfId),
    /// Type 3: integrity algorithm.
    Integ(IntegId),
    /// Type 4: Diffie-Hellman group.
    Dh(DhGroup),
    /// Type 5: extended sequence numbers.
    Esn(EsnId),
    /// A transform type this codec does not know (emitting one of the known types this way is
    /// refused, so every transform has one encoding).
    Other {
        /// Raw transform type.
        transform_type: u8,
        /// Raw transform ID.
        id: u16,
    },
}

impl TransformId {
    /// From the raw type and ID.
    pub fn from_raw(transform_type: u8, id: u16) -> TransformId {
        match TransformType::from(transform_type) {
            TransformType::Encr => TransformId::Encr(EncrId::from(id)),
            TransformType::Prf => TransformId::Prf(PrfId::from(id)),
            TransformType::Integ => TransformId::Integ(IntegId::from(id)),
            TransformType::Dh => TransformId::Dh(DhGroup::from(id)),
            TransformType::Esn => TransformId::Esn(EsnId::from(id)),
            TransformType::Unknown(_) => TransformId::Other { transform_type, id },
        }
    }

    /// The transform type.
    pub fn transform_type(self) -> TransformType {
        match self {
            TransformId::Encr(_) => TransformType::Encr,
            TransformId::Prf(_) => TransformType::Prf,
            TransformId::Integ(_) => TransformType::Integ,
            TransformId::Dh(_) => TransformType::Dh,
            TransformId::Esn(_) => TransformType::Esn,
            TransformId::Other { transform_type, .. } => TransformType::from(transform_type),
        }
    }

    /// The raw transform ID.
    pub fn id(self) -> u16 {
        match self {
            TransformId::Encr(v) => v.value(),
            TransformId::Prf(v) => v.value(),
            TransformId::Integ(v) => v.value(),
            TransformId::Dh(v) => v.value(),
            TransformId::Esn(v) => v.value(),
            TransformId::Other { id, .. } => id,
        }
    }
}

/// Value of a transform attribute, in the form it has on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttrValue {
    /// TV form (A = 1): a 16-bit value.
    Tv(u16),
    /// TLV form (A = 0): variable-length value.
    Tlv(Vec<u8>),
}

/// A transform attribute other than Key Length (RFC 7296 defines no other; a proposal with
/// one is normally not acceptable).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransformAttribute {
    /// Attribute type (15 bits).
    pub attr_type: TransformAttrType,
    /// The value and its form.
    pub value: AttrValue,
}

/// A Transform substructure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transform {
    /// Type and ID.
    pub id: TransformId,
    /// The Key Length attribute (bits), e.g. 128 or 256 for ENCR_AES_CBC / ENCR_AES_GCM_16.
    pub key_length: Option<u16>,
    /// Any other attributes, in order (normally none).
    pub attributes: Vec<TransformAttribute>,
}

impl Transform {
    /// A transform without attributes.
    pub fn new(id: TransformId) -> Transform {
        Transform {
            id,
            key_length: None,
            attributes: Vec::new(),
        }
    }

    /// An encryption transform with an optional key length.
    pub fn encr(id: EncrId, key_length: Option<u16>) -> Transform {
        Transform {
            id: TransformId::Encr(id),
            key_length,
            attributes: Vec::new(),
        }
    }

    fn parse(body: &[u8]) -> Result<Transform, ParseError> {
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type: PayloadType::Sa,
            reason,
        };
        let mut r = Reader::new(body);
        let (Some(transform_type), Some(_), Some(id)) = (r.u8(), r.u8(), r.u16()) else {
            return Err(malformed("transform header truncated"));
        };
        let mut key_length = None;
        let mut attributes = Vec::new();
        let mut count = 0usize;
        while !r.is_empty() {
            count += 1;
            if count > MAX_TRANSFORM_ATTRIBUTES {
                return Err(malformed("too many transform attributes"));
            }
            let (Some(af_type), Some(field)) = (r.u16(), r.u16()) else {
                return Err(malformed("transform attribute header truncated"));
            };
            let attr_type = TransformAttrType::from(af_type & !AF_TV);
            let value = if af_type & AF_TV != 0 {
                AttrValue::Tv(field)
            } else {
                let v = r
                    .take(field as usize)
                    .ok_or(malformed("transform attribute runs past the transform"))?;
                AttrValue::Tlv(v.to_vec())
            };
            match (attr_type, value) {
                (TransformAttrType::KeyLength, AttrValue::Tv(bits)) => {
                    if key_length.replace(bits).is_some() {
                        return Err(malformed("two Key Length attributes"));
                    }
                }
                (TransformAttrType::KeyLength, AttrValue::Tlv(_)) => {
                    return Err(malformed("Key Length attribute in TLV form"))
                }
                (attr_type, value) => attributes.push(TransformAttribute { attr_type, value }),
            }
        }
        Ok(Transform {
            id: TransformId::from_raw(transform_type, id),
            key_length,
            attributes,
        })
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<(), EmitError> {
        if let TransformId::Other { transform_type, .. } = self.id {
            if !matches!(
                TransformType::from(transform_type),
                TransformType::Unknown(_)
            ) {
                return Err(EmitError::Inconsistent(
                    "TransformId::Other with a known transform type",
                ));
            }
        }
        if self.attributes.len() + usize::from(self.key_length.is_some()) > MAX_TRANSFORM_ATTRIBUTES
        {
            return Err(EmitError::TooLong("transform attribute count"));
        }
        let mut body = vec![self.id.transform_type().value(), 0];
        body.extend_from_slice(&self.id.id().to_be_bytes());
        if let Some(bits) = self.key_length {
            body.extend_from_slice(&(TransformAttrType::KeyLength.value() | AF_TV).to_be_bytes());
            body.extend_from_slice(&bits.to_be_bytes());
        }
        for a in &self.attributes {
            let t = a.attr_type.value();
            if t & AF_TV != 0 {
                return Err(EmitError::Inconsistent("attribute type over 0x7fff"));
            }
            if a.attr_type == TransformAttrType::KeyLength {
                return Err(EmitError::Inconsistent(
                    "Key Length among the other attributes",
                ));
            }
            match &a.value {
                AttrValue::Tv(v) => {
                    body.extend_from_slice(&(t | AF_TV).to_be_bytes());
                    body.extend_from_slice(&v.to_be_bytes());
                }
                AttrValue::Tlv(v) => {
                    let len = u16::try_from(v.len())
                        .map_err(|_| EmitError::TooLong("transform attribute"))?;
                    body.extend_from_slice(&t.to_be_bytes());
                    body.extend_from_slice(&len.to_be_bytes());
                    body.extend_from_slice(v);
                }
            }
        }
        let next = if last { LAST } else { MORE_TRANSFORMS };
        emit_generic(out, next, 0, &body, "transform")
    }
}

/// A Proposal substructure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// Proposal number: 1 for the first, then one more each (RFC 7296 3.3.1); the responder
    /// echoes the number of the proposal it chose. Not checked when parsing.
    pub number: u8,
    /// IKE, AH or ESP.
    pub protocol: ProtocolId,
    /// The sender's SPI: none in IKE_SA_INIT, 8 octets for an IKE SA rekey, 4 for AH / ESP.
    pub spi: Spi,
    /// Transforms (at least one, at most [`MAX_TRANSFORMS`]).
    pub transforms: Vec<Transform>,
}

fn spi_fits(protocol: ProtocolId, spi: &Spi) -> bool {
    match protocol {
        ProtocolId::Ike => matches!(spi, Spi::None | Spi::Ike(_)),
        ProtocolId::Ah | ProtocolId::Esp => matches!(spi, Spi::Child(_)),
        ProtocolId::None | ProtocolId::Unknown(_) => true,
    }
}

impl Proposal {
    /// The transforms of one type, in order.
    pub fn transforms_of(&self, t: TransformType) -> impl Iterator<Item = &Transform> {
        self.transforms
            .iter()
            .filter(move |x| x.id.transform_type() == t)
    }

    fn parse(body: &[u8]) -> Result<Proposal, ParseError> {
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type: PayloadType::Sa,
            reason,
        };
        let mut r = Reader::new(body);
        let (Some(number), Some(protocol), Some(spi_size), Some(declared)) =
            (r.u8(), r.u8(), r.u8(), r.u8())
        else {
            return Err(malformed("proposal header truncated"));
        };
        let protocol = ProtocolId::from(protocol);
        let spi = Spi::from_bytes(
            r.take(spi_size as usize)
                .ok_or(malformed("SPI runs past the end of the proposal"))?,
        );
        if !spi_fits(protocol, &spi) {
            return Err(malformed("SPI size wrong for the protocol"));
        }
        if declared == 0 {
            return Err(malformed("proposal without transforms"));
        }
        let mut transforms = Vec::new();
        let mut rest = r.rest();
        loop {
            if transforms.len() >= declared as usize || transforms.len() >= MAX_TRANSFORMS {
                return Err(malformed("more transforms than the proposal declares"));
            }
            let split = split_sub(rest)?;
            transforms.push(Transform::parse(split.body())?);
            rest = split.rest;
            match split.next {
                LAST => break,
                MORE_TRANSFORMS => {}
                _ => return Err(malformed("bad Last Substruc of a transform")),
            }
        }
        if !rest.is_empty() {
            return Err(malformed("data after the last transform"));
        }
        if transforms.len() != declared as usize {
            return Err(malformed("fewer transforms than the proposal declares"));
        }
        Ok(Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<(), EmitError> {
        if !spi_fits(self.protocol, &self.spi) {
            return Err(EmitError::Inconsistent("SPI size wrong for the protocol"));
        }
        if self.transforms.is_empty() {
            return Err(EmitError::Inconsistent("proposal without transforms"));
        }
        if self.transforms.len() > MAX_TRANSFORMS {
            return Err(EmitError::TooLong("transform count"));
        }
        let count = u8::try_from(self.transforms.len())
            .map_err(|_| EmitError::TooLong("transform count"))?;
        let mut body = vec![
            self.number,
            self.protocol.value(),
            self.spi.size_octet()?,
            count,
        ];
        self.spi.emit(&mut body)?;
        for (i, t) in self.transforms.iter().enumerate() {
            t.emit(i + 1 == self.transforms.len(), &mut body)?;
        }
        let next = if last { LAST } else { MORE_PROPOSALS };
        emit_generic(out, next, 0, &body, "proposal")
    }
}

/// The SA payload: one or more proposals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SaPayload {
    /// Proposals, in order of preference (a response carries exactly one).
    pub proposals: Vec<Proposal>,
}

impl SaPayload {
    /// Parses an SA payload body (without the generic header).
    pub fn parse(body: &[u8]) -> Result<SaPayload, ParseError> {
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type: PayloadType::Sa,
            reason,
        };
        if body.is_empty() {
            return Err(malformed("SA without proposals"));
        }
        let mut proposals = Vec::new();
        let mut rest = body;
        loop {
            if proposals.len() >= MAX_PROPOSALS {
                return Err(malformed("too many proposals"));
            }
            let split = split_sub(rest)?;
            proposals.push(Proposal::parse(split.body())?);
            rest = split.rest;
            match split.next {
                LAST => break,
                MORE_PROPOSALS => {}
                _ => return Err(malformed("bad Last Substruc of a proposal")),
            }
        }
        if !rest.is_empty() {
            return Err(malformed("data after the last proposal"));
        }
        Ok(SaPayload { proposals })
    }

    /// Appends the SA body (the proposals) to `out`.
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        if self.proposals.is_empty() {
            return Err(EmitError::Inconsistent("SA without proposals"));
        }
        if self.proposals.len() > MAX_PROPOSALS {
            return Err(EmitError::TooLong("proposal count"));
        }
        for (i, p) in self.proposals.iter().enumerate() {
            p.emit(i + 1 == self.proposals.len(), out)?;
        }
        Ok(())
    }
}
