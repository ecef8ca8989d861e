//! The Encrypted payload, SK (RFC 7296 3.14), and its fragment form SKF (RFC 7383 2.5):
//! framing only — the cipher and integrity algorithms are applied by the caller.
//!
//! ```text
//! SK body:  Initialization Vector | Encrypted IKE payloads, Padding, Pad Length | ICV
//! SKF body: Fragment Number(2) Total Fragments(2) | IV | ciphertext | ICV
//! ```
//!
//! Receiving: [`Protected::locate`] splits a datagram, given the IV and ICV lengths of the
//! negotiated algorithms, into the slices the crypto works on, all borrowed from the bytes
//! *as received*: the ICV covers [`Protected::integrity_covered`] (IKE header to the end of
//! the ciphertext) for a classic cipher + integrity pair, and an AEAD's associated data is
//! [`Protected::aad`] (IKE header to the IV, RFC 5282 5.1, RFC 7383 2.5). After decryption,
//! [`parse_decrypted`] strips the padding and parses the inner chain, whose first type is
//! [`Protected::first_inner`].
//!
//! Sending: [`inner_plaintext`] builds the padded plaintext for a block size, and
//! [`SealFrame`] lays out the message (header and SK/SKF header written, lengths filled in)
//! with writable IV, ciphertext and ICV regions.

use core::ops::Range;

use super::consts::PayloadType;
use super::error::{EmitError, ParseError};
use super::frag::FragmentInfo;
use super::header::{Header, HEADER_LEN};
use super::message::{emit_payloads, parse_payloads};
use super::payload::{Payload, PayloadIter, GENERIC_HEADER_LEN, SKF_FIELDS_LEN};

/// Lengths that split an SK payload, from the negotiated algorithms (e.g. AES-CBC with
/// HMAC-SHA2-256-128: IV 16, ICV 16, block 16; AES-GCM-16 and ChaCha20-Poly1305: IV 8,
/// ICV 16, block 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SkParams {
    /// Length of the IV at the start of the body.
    pub iv_len: usize,
    /// Length of the integrity checksum (or AEAD tag) at the end.
    pub icv_len: usize,
    /// Cipher block size the plaintext is padded to (1 for AEAD stream modes; 1..=256).
    pub block_size: usize,
}

/// A protected message located in a received datagram (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected<'a> {
    /// The IKE header.
    pub header: Header,
    /// Payloads before the SK / SKF payload (normally none; integrity-protected, not
    /// encrypted).
    pub cleartext: Vec<Payload>,
    /// Type of the first inner payload (for SKF, meaningful in fragment 1 only).
    pub first_inner: PayloadType,
    /// For an SKF payload, its number and total.
    pub fragment: Option<FragmentInfo>,
    /// AEAD associated data: from the IKE header to the IV.
    pub aad: &'a [u8],
    /// The IV.
    pub iv: &'a [u8],
    /// The ciphertext (payloads, padding and pad length once decrypted).
    pub ciphertext: &'a [u8],
    /// The integrity checksum / AEAD tag.
    pub icv: &'a [u8],
    /// What a non-AEAD ICV is computed over: from the IKE header to the ciphertext's end.
    pub integrity_covered: &'a [u8],
}

impl<'a> Protected<'a> {
    /// Locates the SK or SKF payload of `datagram` (without non-ESP marker) and splits it
    /// with `iv_len` and `icv_len`. Checks the header like [`super::parse_message`] and that
    /// the SK / SKF payload is the last one; [`ParseError::NotEncrypted`] if there is none.
    pub fn locate(
        datagram: &'a [u8],
        iv_len: usize,
        icv_len: usize,
    ) -> Result<Protected<'a>, ParseError> {
        let (header, body) = Header::parse_datagram(datagram)?;
        let mut iter = PayloadIter::new(header.next_payload, body);
        let mut cleartext = Vec::new();
        let mut sk = None;
        for raw in &mut iter {
            let raw = raw?;
            match raw.payload_type {
                PayloadType::Encrypted | PayloadType::EncryptedFragment => sk = Some(raw),
                _ => {
                    if let Some(p) = raw.parse()? {
                        cleartext.push(p);
                    }
                }
            }
        }
        let extra = iter.remaining().len();
        if extra != 0 {
            return Err(ParseError::TrailingGarbage { extra });
        }
        let sk = sk.ok_or(ParseError::NotEncrypted)?;
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type: sk.payload_type,
            reason,
        };
        let mut start = HEADER_LEN + sk.offset + GENERIC_HEADER_LEN;
        let fragment = if sk.payload_type == PayloadType::EncryptedFragment {
            let Payload::EncryptedFragment(skf) =
                Payload::parse(sk.payload_type, sk.next_payload, sk.body())?
            else {
                return Err(malformed("not an SKF payload"));
            };
            start += SKF_FIELDS_LEN;
            Some(FragmentInfo {
                number: skf.number,
                total: skf.total,
            })
        } else {
            None
        };
        let end = HEADER_LEN + sk.offset + sk.bytes.len();
        let ct_start = start
            .checked_add(iv_len)
            .filter(|&s| s <= end)
            .ok_or(malformed("shorter than its IV and ICV"))?;
        let ct_end = end
            .checked_sub(icv_len)
            .filter(|&e| e >= ct_start)
            .ok_or(malformed("shorter than its IV and ICV"))?;
        let slice = |r: Range<usize>| datagram.get(r).ok_or(ParseError::Truncated);
        Ok(Protected {
            header,
            cleartext,
            first_inner: sk.next_payload,
            fragment,
            aad: slice(0..start)?,
            iv: slice(start..ct_start)?,
            ciphertext: slice(ct_start..ct_end)?,
            icv: slice(ct_end..end)?,
            integrity_covered: slice(0..ct_end)?,
        })
    }
}

fn check_block_size(block_size: usize) -> Result<(), EmitError> {
    if !(1..=256).contains(&block_size) {
        return Err(EmitError::Inconsistent("block size outside 1..=256"));
    }
    Ok(())
}

/// Pads an inner chain for encryption (RFC 7296 3.14): `chain`, then the fewest zero octets
/// of padding that make the total a multiple of `block_size` with the Pad Length octet last.
pub fn pad_plaintext(chain: &[u8], block_size: usize) -> Result<Vec<u8>, EmitError> {
    check_block_size(block_size)?;
    let pad = (block_size - (chain.len() + 1) % block_size) % block_size;
    let mut out = Vec::with_capacity(chain.len() + pad + 1);
    out.extend_from_slice(chain);
    out.resize(chain.len() + pad, 0);
    // pad < block_size <= 256.
    out.push(u8::try_from(pad).map_err(|_| EmitError::Inconsistent("padding over 255"))?);
    Ok(out)
}

/// Emits `payloads` as an inner chain (no SK / SKF inside) and pads it: returns the first
/// inner payload type (for the SK payload's next-payload field) and the plaintext to
/// encrypt.
pub fn inner_plaintext(
    payloads: &[Payload],
    block_size: usize,
) -> Result<(PayloadType, Vec<u8>), EmitError> {
    let (first, chain) = emit_inner(payloads)?;
    Ok((first, pad_plaintext(&chain, block_size)?))
}

/// Emits `payloads` as an inner chain, unpadded (what RFC 7383 fragmentation splits).
pub fn emit_inner(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), EmitError> {
    if payloads
        .iter()
        .any(|p| matches!(p, Payload::Encrypted(_) | Payload::EncryptedFragment(_)))
    {
        return Err(EmitError::Inconsistent("Encrypted payload inside SK"));
    }
    emit_payloads(payloads)
}

/// Removes the padding and Pad Length octet from a decrypted SK body: returns the inner
/// chain. Any padding length that fits is accepted (RFC 7296 3.14), any padding contents.
pub fn strip_padding(plaintext: &[u8]) -> Result<&[u8], ParseError> {
    let malformed = |reason| ParseError::MalformedPayload {
        payload_type: PayloadType::Encrypted,
        reason,
    };
    let (&pad, rest) = plaintext
        .split_last()
        .ok_or(malformed("empty plaintext, no Pad Length"))?;
    let end = rest
        .len()
        .checked_sub(pad as usize)
        .ok_or(malformed("Pad Length longer than the plaintext"))?;
    Ok(&rest[..end])
}

/// Parses a decrypted inner chain (padding already removed) whose first payload is of type
/// `first`; an SK or SKF payload inside is refused.
pub fn parse_inner(first: PayloadType, chain: &[u8]) -> Result<Vec<Payload>, ParseError> {
    let payloads = parse_payloads(first, chain)?;
    if let Some(p) = payloads
        .iter()
        .find(|p| matches!(p, Payload::Encrypted(_) | Payload::EncryptedFragment(_)))
    {
        return Err(ParseError::MalformedPayload {
            payload_type: p.payload_type(),
            reason: "Encrypted payload inside an Encrypted payload",
        });
    }
    Ok(payloads)
}

/// [`strip_padding`] then [`parse_inner`].
pub fn parse_decrypted(first: PayloadType, plaintext: &[u8]) -> Result<Vec<Payload>, ParseError> {
    parse_inner(first, strip_padding(plaintext)?)
}

/// A protected message being built: header and SK / SKF header written, IV, ciphertext and
/// ICV regions zeroed for the caller to fill.
///
/// Typical use: `let mut f = SealFrame::new(..)?;` write a fresh IV into `parts().iv`,
/// encrypt the plaintext into `parts().ciphertext` (an AEAD with `parts().aad` as associated
/// data, writing its tag into `parts().icv`); for a classic cipher compute the ICV over
/// `split_for_icv().0` into `split_for_icv().1`; send `into_bytes()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealFrame {
    bytes: Vec<u8>,
    iv: Range<usize>,
    ciphertext: Range<usize>,
    icv: Range<usize>,
}

/// The regions of a [`SealFrame`], borrowed at once.
#[derive(Debug)]
pub struct SealParts<'a> {
    /// AEAD associated data (IKE header to the IV).
    pub aad: &'a [u8],
    /// Where the IV goes.
    pub iv: &'a mut [u8],
    /// Where the ciphertext goes (as long as the padded plaintext).
    pub ciphertext: &'a mut [u8],
    /// Where the ICV / tag goes.
    pub icv: &'a mut [u8],
}

impl SealFrame {
    /// Lays out a message with `header` (its `next_payload` becomes SK, or SKF when
    /// `fragment` is given) whose only payload is an SK / SKF payload with `first_inner` as
    /// next-payload field, an IV of `iv_len`, `ciphertext_len` octets of ciphertext and an
    /// ICV of `icv_len`.
    pub fn new(
        header: &Header,
        first_inner: PayloadType,
        fragment: Option<FragmentInfo>,
        iv_len: usize,
        ciphertext_len: usize,
        icv_len: usize,
    ) -> Result<SealFrame, EmitError> {
        if fragment.is_some_and(|f| f.number == 0 || f.number > f.total) {
            return Err(EmitError::Inconsistent(
                "fragment number 0, or above total fragments",
            ));
        }
        let fields = if fragment.is_some() {
            SKF_FIELDS_LEN
        } else {
            0
        };
        let payload_len = [fields, iv_len, ciphertext_len, icv_len]
            .iter()
            .try_fold(GENERIC_HEADER_LEN, |acc, &n| acc.checked_add(n))
            .and_then(|l| u16::try_from(l).ok())
            .ok_or(EmitError::TooLong("Encrypted payload"))?;
        let mut header = *header;
        header.next_payload = if fragment.is_some() {
            PayloadType::EncryptedFragment
        } else {
            PayloadType::Encrypted
        };
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload_len as usize);
        bytes.extend_from_slice(&header.to_bytes(payload_len as usize)?);
        bytes.push(first_inner.value());
        bytes.push(0);
        bytes.extend_from_slice(&payload_len.to_be_bytes());
        if let Some(f) = fragment {
            bytes.extend_from_slice(&f.number.to_be_bytes());
            bytes.extend_from_slice(&f.total.to_be_bytes());
        }
        let iv = bytes.len()..bytes.len() + iv_len;
        let ciphertext = iv.end..iv.end + ciphertext_len;
        let icv = ciphertext.end..ciphertext.end + icv_len;
        bytes.resize(icv.end, 0);
        Ok(SealFrame {
            bytes,
            iv,
            ciphertext,
            icv,
        })
    }

    /// A frame for encrypting `payloads` (the padded plaintext, returned beside it, is as long
    /// as the ciphertext region).
    pub fn for_payloads(
        header: &Header,
        payloads: &[Payload],
        params: &SkParams,
    ) -> Result<(SealFrame, Vec<u8>), EmitError> {
        let (first, plaintext) = inner_plaintext(payloads, params.block_size)?;
        let frame = SealFrame::new(
            header,
            first,
            None,
            params.iv_len,
            plaintext.len(),
            params.icv_len,
        )?;
        Ok((frame, plaintext))
    }

    /// The regions, for the cipher.
    pub fn parts(&mut self) -> SealParts<'_> {
        let (head, rest) = self.bytes.split_at_mut(self.iv.start);
        let (iv, rest) = rest.split_at_mut(self.iv.len());
        let (ciphertext, icv) = rest.split_at_mut(self.ciphertext.len());
        SealParts {
            aad: head,
            iv,
            ciphertext,
            icv,
        }
    }

    /// What a non-AEAD ICV covers (IKE header to the end of the ciphertext) and where the ICV
    /// goes.
    pub fn split_for_icv(&mut self) -> (&[u8], &mut [u8]) {
        let (covered, icv) = self.bytes.split_at_mut(self.icv.start);
        (covered, icv)
    }

    /// The whole message.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The whole message, to send.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
