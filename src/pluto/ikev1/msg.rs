//! Payload chains with their raw bytes, and the per-message payload checks.

use crate::pluto::isakmp::{ParseError, Payload, PayloadIter, PayloadType, RawPayload};

/// One payload: raw bytes (for hashes) and parsed form.
pub(crate) struct Item<'a> {
    pub(crate) raw: RawPayload<'a>,
    pub(crate) p: Payload,
}

/// A parsed chain.
pub(crate) struct Chain<'a> {
    pub(crate) items: Vec<Item<'a>>,
    /// Where the last payload ends.
    pub(crate) end: usize,
}

/// Parses a chain; trailing bytes are allowed only when `padded` (decrypted bodies).
pub(crate) fn parse_chain(
    first: PayloadType,
    body: &[u8],
    padded: bool,
) -> Result<Chain<'_>, ParseError> {
    let mut iter = PayloadIter::new(first, body);
    let mut items = Vec::new();
    for raw in &mut iter {
        let raw = raw?;
        let p = raw.parse()?;
        items.push(Item { raw, p });
    }
    let end = iter.offset();
    let extra = body.len().saturating_sub(end);
    if extra > 0 && (!padded || extra > crate::pluto::isakmp::MAX_DECRYPTED_PADDING) {
        return Err(ParseError::TrailingGarbage { extra });
    }
    Ok(Chain { items, end })
}

fn norm(t: PayloadType) -> PayloadType {
    match t {
        PayloadType::NatDDraft => PayloadType::NatD,
        PayloadType::NatOaDraft => PayloadType::NatOa,
        t => t,
    }
}

impl<'a> Chain<'a> {
    /// Checks payload counts: each `(type, min, max)`; any type not listed is refused.
    pub(crate) fn check(&self, allowed: &[(PayloadType, usize, usize)]) -> Result<(), String> {
        for it in &self.items {
            let t = norm(it.raw.payload_type);
            if !allowed.iter().any(|(a, _, _)| *a == t) {
                return Err(format!(
                    "message ignored because it contains an unexpected payload type ({})",
                    it.raw.payload_type
                ));
            }
        }
        for (t, min, max) in allowed {
            let n = self
                .items
                .iter()
                .filter(|i| norm(i.raw.payload_type) == *t)
                .count();
            if n < *min {
                return Err(format!("missing payload {t}; message dropped"));
            }
            if n > *max {
                return Err(format!("duplicate payload {t}; message dropped"));
            }
        }
        Ok(())
    }

    /// The first payload of a type.
    pub(crate) fn get(&self, t: PayloadType) -> Option<&Item<'a>> {
        self.items.iter().find(|i| norm(i.raw.payload_type) == t)
    }

    /// All payloads of a type.
    pub(crate) fn all(&self, t: PayloadType) -> impl Iterator<Item = &Item<'a>> {
        self.items
            .iter()
            .filter(move |i| norm(i.raw.payload_type) == t)
    }
}

pub(crate) use crate::pluto::crypto::ct_eq;
