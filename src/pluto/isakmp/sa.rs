//! The SA payload and its Proposal / Transform substructures with data attributes
//! (RFC 2408 3.4–3.6, RFC 2407 4.5–4.6.1, RFC 2409 appendix A).
//!
//! Nesting is fixed (SA → Proposal → Transform → Attribute), parsed with loops only, and
//! every level is capped ([`MAX_PROPOSALS`], [`MAX_TRANSFORMS`], [`MAX_ATTRIBUTES`]).
//!
//! SA body (IPsec DOI, situation SIT_IDENTITY_ONLY): `DOI(4) Situation(4) Proposal...`.
//! Proposal: generic header, `Proposal#(1) Protocol-Id(1) SPI Size(1) #Transforms(1) SPI
//! Transform...`. Transform: generic header, `Transform#(1) Transform-Id(1) RESERVED2(2)
//! Attributes...`. Attribute: `AF|Type(2)` then either `Value(2)` (TV, AF=1) or
//! `Length(2) Value` (TLV, AF=0).

use super::consts::{Doi, IkeAttrType, IpsecAttrType, PayloadType, ProtocolId, SIT_IDENTITY_ONLY};
use super::error::{EmitError, ParseError};
use super::payload::{emit_generic, split_generic, Reader, GENERIC_HEADER_LEN};

/// Most proposals accepted in one SA payload.
pub const MAX_PROPOSALS: usize = 64;
/// Most transforms accepted in one proposal (the count field is one byte).
pub const MAX_TRANSFORMS: usize = 255;
/// Most data attributes accepted in one transform.
pub const MAX_ATTRIBUTES: usize = 64;

const AF_TV: u16 = 0x8000;

/// Value of a data attribute, in the form it has on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttrValue {
    /// TV form (AF = 1): a 16-bit value.
    Basic(u16),
    /// TLV form (AF = 0): variable-length value (e.g. a 4-byte life duration).
    Variable(Vec<u8>),
}

/// A data attribute of a transform (RFC 2408 3.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// Attribute type (15 bits); its namespace (IKE or IPsec DOI) depends on the proposal.
    pub attr_type: u16,
    /// The value and its form.
    pub value: AttrValue,
}

impl Attribute {
    /// A basic (TV) attribute.
    pub fn basic(attr_type: u16, value: u16) -> Attribute {
        Attribute {
            attr_type,
            value: AttrValue::Basic(value),
        }
    }

    /// A variable (TLV) attribute.
    pub fn variable(attr_type: u16, value: Vec<u8>) -> Attribute {
        Attribute {
            attr_type,
            value: AttrValue::Variable(value),
        }
    }

    /// A duration or other number: TV if it fits 16 bits, else a 4-byte TLV (as Pluto does
    /// for life durations).
    pub fn number(attr_type: u16, value: u32) -> Attribute {
        match u16::try_from(value) {
            Ok(v) => Attribute::basic(attr_type, v),
            Err(_) => Attribute::variable(attr_type, value.to_be_bytes().to_vec()),
        }
    }

    /// The value as a number: the TV value, or a TLV value of at most 8 significant bytes
    /// (big-endian, leading zeros allowed). `None` for longer or empty TLV values.
    pub fn as_u64(&self) -> Option<u64> {
        match &self.value {
            AttrValue::Basic(v) => Some(u64::from(*v)),
            AttrValue::Variable(bytes) => {
                if bytes.is_empty() {
                    return None;
                }
                let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
                let significant = &bytes[first..];
                if significant.len() > 8 {
                    return None;
                }
                Some(
                    significant
                        .iter()
                        .fold(0u64, |acc, &b| acc << 8 | u64::from(b)),
                )
            }
        }
    }

    /// True for the TV form.
    pub fn is_basic(&self) -> bool {
        matches!(self.value, AttrValue::Basic(_))
    }

    /// Encodes a data attribute list (e.g. the lifetimes a RESPONDER-LIFETIME notification
    /// carries, RFC 2407 4.6.3.1).
    pub fn encode_list(attrs: &[Attribute]) -> Result<Vec<u8>, EmitError> {
        let mut out = Vec::new();
        for a in attrs {
            a.emit(&mut out)?;
        }
        Ok(out)
    }

    /// Decodes a data attribute list (notification data).
    pub fn decode_list(body: &[u8]) -> Result<Vec<Attribute>, ParseError> {
        Attribute::parse_list(body, PayloadType::Notification)
    }

    fn parse_list(body: &[u8], payload_type: PayloadType) -> Result<Vec<Attribute>, ParseError> {
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type,
            reason,
        };
        let mut r = Reader::new(body);
        let mut attrs = Vec::new();
        while !r.is_empty() {
            if attrs.len() >= MAX_ATTRIBUTES {
                return Err(malformed("too many attributes"));
            }
            let af_type = r.u16().ok_or(malformed("attribute header truncated"))?;
            let field = r.u16().ok_or(malformed("attribute header truncated"))?;
            let attr_type = af_type & !AF_TV;
            let value = if af_type & AF_TV != 0 {
                AttrValue::Basic(field)
            } else {
                let v = r.take(field as usize).ok_or(malformed(
                    "attribute value runs past the end of the transform",
                ))?;
                AttrValue::Variable(v.to_vec())
            };
            attrs.push(Attribute { attr_type, value });
        }
        Ok(attrs)
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        if self.attr_type & AF_TV != 0 {
            return Err(EmitError::Inconsistent("attribute type over 0x7fff"));
        }
        match &self.value {
            AttrValue::Basic(v) => {
                out.extend_from_slice(&(self.attr_type | AF_TV).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            AttrValue::Variable(v) => {
                let len = u16::try_from(v.len()).map_err(|_| EmitError::TooLong("attribute"))?;
                out.extend_from_slice(&self.attr_type.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(v);
            }
        }
        Ok(())
    }
}

/// A Transform substructure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transform {
    /// Transform number (Pluto numbers from 0; strongSwan from 1).
    pub number: u8,
    /// Transform ID in the namespace of the proposal's protocol ([`super::IkeTransformId`],
    /// [`super::EspTransformId`], [`super::AhTransformId`], [`super::IpcompTransformId`]).
    pub transform_id: u8,
    /// Data attributes, in order.
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// First attribute of the raw type `attr_type`.
    pub fn attribute(&self, attr_type: u16) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.attr_type == attr_type)
    }

    /// First phase-1 attribute of type `t` (for transforms of ISAKMP proposals).
    pub fn ike_attr(&self, t: IkeAttrType) -> Option<&Attribute> {
        self.attribute(t.value())
    }

    /// First IPsec DOI attribute of type `t` (for AH / ESP / IPComp proposals).
    pub fn ipsec_attr(&self, t: IpsecAttrType) -> Option<&Attribute> {
        self.attribute(t.value())
    }

    fn parse(body: &[u8]) -> Result<Transform, ParseError> {
        let mut r = Reader::new(body);
        let short = ParseError::MalformedPayload {
            payload_type: PayloadType::Transform,
            reason: "transform header truncated",
        };
        let number = r.u8().ok_or(short)?;
        let transform_id = r.u8().ok_or(short)?;
        r.u16().ok_or(short)?; // RESERVED2
        let attributes = Attribute::parse_list(r.rest(), PayloadType::Transform)?;
        Ok(Transform {
            number,
            transform_id,
            attributes,
        })
    }

    fn emit(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), EmitError> {
        let mut body = vec![self.number, self.transform_id, 0, 0];
        for a in &self.attributes {
            a.emit(&mut body)?;
        }
        emit_generic(out, next, 0, &body, "transform")
    }
}

/// A Proposal substructure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// Proposal number; consecutive proposals with the same number are ANDed (e.g. AH+ESP).
    pub number: u8,
    /// Protocol.
    pub protocol: ProtocolId,
    /// SPI: empty or 16 bytes for ISAKMP, 4 for AH/ESP, 2 (CPI) or 4 for IPComp.
    pub spi: Vec<u8>,
    /// Transforms, in order of preference.
    pub transforms: Vec<Transform>,
}

impl Proposal {
    fn parse(body: &[u8]) -> Result<Proposal, ParseError> {
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type: PayloadType::Proposal,
            reason,
        };
        let mut r = Reader::new(body);
        let number = r.u8().ok_or(malformed("proposal header truncated"))?;
        let protocol = ProtocolId::from(r.u8().ok_or(malformed("proposal header truncated"))?);
        let spi_size = r.u8().ok_or(malformed("proposal header truncated"))?;
        let declared = r.u8().ok_or(malformed("proposal header truncated"))?;
        let spi = r
            .take(spi_size as usize)
            .ok_or(malformed("SPI runs past the end of the proposal"))?
            .to_vec();
        let mut transforms = Vec::new();
        let mut rest = r.rest();
        let mut next = if rest.is_empty() {
            PayloadType::None
        } else {
            PayloadType::Transform
        };
        while next != PayloadType::None {
            if next != PayloadType::Transform {
                return Err(malformed("transform chain holds a non-transform"));
            }
            if transforms.len() >= declared as usize || transforms.len() >= MAX_TRANSFORMS {
                return Err(malformed("more transforms than the proposal declares"));
            }
            let split = split_generic(rest, PayloadType::Transform, GENERIC_HEADER_LEN + 4)?;
            transforms.push(Transform::parse(&split.this[GENERIC_HEADER_LEN..])?);
            next = PayloadType::from(split.next);
            rest = split.rest;
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

    fn emit(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), EmitError> {
        let spi_size = u8::try_from(self.spi.len()).map_err(|_| EmitError::TooLong("SPI"))?;
        let count = u8::try_from(self.transforms.len())
            .map_err(|_| EmitError::TooLong("transform count"))?;
        let mut body = vec![self.number, self.protocol.value(), spi_size, count];
        body.extend_from_slice(&self.spi);
        for (i, t) in self.transforms.iter().enumerate() {
            let next = if i + 1 == self.transforms.len() {
                PayloadType::None
            } else {
                PayloadType::Transform
            };
            t.emit(next, &mut body)?;
        }
        emit_generic(out, next, 0, &body, "proposal")
    }
}

/// The SA payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SaPayload {
    /// DOI; Pluto and strongSwan only accept [`Doi::Ipsec`].
    pub doi: Doi,
    /// Situation bitmask; only [`SIT_IDENTITY_ONLY`] is supported by anybody (other bits
    /// would add label fields that this codec does not parse: they fail as malformed
    /// proposals).
    pub situation: u32,
    /// Proposals, in order.
    pub proposals: Vec<Proposal>,
}

impl SaPayload {
    /// An IPsec DOI, identity-only SA with these proposals.
    pub fn ipsec(proposals: Vec<Proposal>) -> SaPayload {
        SaPayload {
            doi: Doi::Ipsec,
            situation: SIT_IDENTITY_ONLY,
            proposals,
        }
    }

    /// Parses an SA payload body (without the generic header).
    pub fn parse(body: &[u8]) -> Result<SaPayload, ParseError> {
        let mut r = Reader::new(body);
        let short = ParseError::BadPayloadLength {
            payload_type: PayloadType::Sa,
            length: u16::try_from(body.len() + GENERIC_HEADER_LEN).unwrap_or(u16::MAX),
        };
        let doi = Doi::from(r.u32().ok_or(short)?);
        let situation = r.u32().ok_or(short)?;
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type: PayloadType::Sa,
            reason,
        };
        let mut proposals = Vec::new();
        let mut rest = r.remaining();
        let mut next = if rest.is_empty() {
            PayloadType::None
        } else {
            PayloadType::Proposal
        };
        while next != PayloadType::None {
            if next != PayloadType::Proposal {
                return Err(malformed("proposal chain holds a non-proposal"));
            }
            if proposals.len() >= MAX_PROPOSALS {
                return Err(malformed("too many proposals"));
            }
            let split = split_generic(rest, PayloadType::Proposal, GENERIC_HEADER_LEN + 4)?;
            proposals.push(Proposal::parse(&split.this[GENERIC_HEADER_LEN..])?);
            next = PayloadType::from(split.next);
            rest = split.rest;
        }
        if !rest.is_empty() {
            return Err(malformed("data after the last proposal"));
        }
        Ok(SaPayload {
            doi,
            situation,
            proposals,
        })
    }

    /// Appends the SA body (DOI, situation, proposals) to `out`.
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        out.extend_from_slice(&self.doi.value().to_be_bytes());
        out.extend_from_slice(&self.situation.to_be_bytes());
        for (i, p) in self.proposals.iter().enumerate() {
            let next = if i + 1 == self.proposals.len() {
                PayloadType::None
            } else {
                PayloadType::Proposal
            };
            p.emit(next, out)?;
        }
        Ok(())
    }
}
