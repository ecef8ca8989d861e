//! Protection of the Encrypted payload (SK, RFC 7296 3.14) and the Encrypted Fragment payload
//! (SKF, RFC 7383 2.5).
//!
//! The payload body this module produces and consumes is
//!
//! ```text
//! IV | ciphertext( inner payloads | Padding | Pad Length ) | ICV
//! ```
//!
//! * CBC ciphers with an HMAC (RFC 7296 3.14): a random IV of one block from the caller's
//!   RNG; padding to the block size; the truncated HMAC (HMAC-SHA1-96, -SHA2-256-128,
//!   -SHA2-384-192, -SHA2-512-256) over everything from the first byte of the IKE header to
//!   the end of the ciphertext, i.e. `aad | IV | ciphertext`.
//! * AEADs: AES-GCM with a 16-byte ICV (RFC 5282) and ChaCha20-Poly1305 (RFC 7634): an
//!   8-byte explicit IV from a per-key counter (never repeated under the key), the 12-byte
//!   nonce `salt | IV`, no padding, the 16-byte tag as ICV, and `aad` — the IKE header, any
//!   payloads before SK, and the SK/SKF payload header — as associated data.
//!
//! `aad` is what the wire codec has written before the IV: the IKE header (whose Length must
//! already be the final message length) and the SK or SKF generic header (whose Payload
//! Length must already count IV, ciphertext and ICV). [`SkCipher::body_len`] gives that
//! length before sealing.
//!
//! Keyed objects come from a [`CryptoProvider`], the same one the ESP datapath uses.

use rand::{CryptoRng, RngCore};

use super::Ikev2CryptoError;
use crate::crypto::{Aead, AuthAlg, BlockCipher, CryptoProvider, EncAlg, Integrity};

enum Keyed {
    Cbc {
        cipher: Box<dyn BlockCipher>,
        integ: Box<dyn Integrity>,
    },
    Aead(Box<dyn Aead>),
}

/// One direction of an IKE SA's message protection (SK_ei/SK_ai for messages the original
/// initiator sends, SK_er/SK_ar for the responder's).
pub struct SkCipher {
    enc: EncAlg,
    integ: Option<AuthAlg>,
    keyed: Keyed,
    /// The next AEAD IV (a counter: IVs must never repeat under one key, RFC 5282 3.1 and
    /// RFC 7634 2).
    next_iv: u64,
}

impl std::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkCipher")
            .field("enc", &self.enc)
            .field("integ", &self.integ)
            .finish_non_exhaustive()
    }
}

impl SkCipher {
    /// Keys the protection of one direction: `sk_e` is SK_ei or SK_er ([`EncAlg::key_len`]
    /// bytes, salt included for the AEADs), `sk_a` SK_ai or SK_ar (empty for an AEAD).
    pub fn new(
        provider: &dyn CryptoProvider,
        enc: EncAlg,
        integ: Option<AuthAlg>,
        sk_e: &[u8],
        sk_a: &[u8],
    ) -> Result<SkCipher, Ikev2CryptoError> {
        let keyed = match (enc.is_aead(), integ) {
            (true, None) => {
                if !sk_a.is_empty() {
                    return Err(Ikev2CryptoError::BadAlgorithms(
                        "an AEAD takes no integrity key",
                    ));
                }
                Keyed::Aead(provider.aead(enc, sk_e)?)
            }
            (false, Some(a)) => Keyed::Cbc {
                cipher: provider.block_cipher(enc, sk_e)?,
                integ: provider.integrity(a, sk_a)?,
            },
            (true, Some(_)) => {
                return Err(Ikev2CryptoError::BadAlgorithms(
                    "an AEAD must not have an integrity algorithm",
                ))
            }
            (false, None) => {
                return Err(Ikev2CryptoError::BadAlgorithms(
                    "a CBC cipher needs an integrity algorithm to protect IKE messages",
                ))
            }
        };
        Ok(SkCipher {
            enc,
            integ,
            keyed,
            next_iv: 0,
        })
    }

    /// The encryption algorithm.
    pub fn enc(&self) -> EncAlg {
        self.enc
    }

    /// The integrity algorithm (`None` for AEADs).
    pub fn integ(&self) -> Option<AuthAlg> {
        self.integ
    }

    /// Bytes of IV at the start of the body (the block size for CBC, 8 for the AEADs).
    pub fn iv_len(&self) -> usize {
        match &self.keyed {
            Keyed::Cbc { cipher, .. } => cipher.iv_len(),
            Keyed::Aead(a) => a.iv_len(),
        }
    }

    /// Bytes of ICV at the end of the body (the truncated HMAC, or the 16-byte tag).
    pub fn icv_len(&self) -> usize {
        match &self.keyed {
            Keyed::Cbc { integ, .. } => integ.icv_len(),
            Keyed::Aead(a) => a.tag_len(),
        }
    }

    /// What the plaintext plus Pad Length is padded to: the block size for CBC, 1 (no
    /// padding) for the AEADs.
    pub fn block_size(&self) -> usize {
        match &self.keyed {
            Keyed::Cbc { cipher, .. } => cipher.block_size(),
            Keyed::Aead(_) => 1,
        }
    }

    fn padded_len(&self, plain_len: usize) -> usize {
        (plain_len + 1).div_ceil(self.block_size()) * self.block_size()
    }

    /// Length of the body [`SkCipher::seal`] produces for `plain_len` bytes of inner
    /// payloads: IV + padded ciphertext (with the Pad Length byte) + ICV. The SK payload's
    /// length is this plus its 4-byte generic header (SKF: 8 bytes).
    pub fn body_len(&self, plain_len: usize) -> usize {
        self.iv_len() + self.padded_len(plain_len) + self.icv_len()
    }

    /// The most inner-payload bytes whose body fits in `body_len` bytes (for IKE
    /// fragmentation, RFC 7383 2.5.1), or `None` if not even an empty one fits.
    pub fn max_plain_len(&self, body_len: usize) -> Option<usize> {
        let room = body_len.checked_sub(self.iv_len() + self.icv_len())?;
        let whole = room - room % self.block_size();
        whole.checked_sub(1)
    }

    /// Encrypts and authenticates `plain` (the inner payloads) into an SK/SKF body:
    /// `IV | ciphertext | ICV`. `aad` is the message from the IKE header through the SK/SKF
    /// payload header, with its lengths already final ([`SkCipher::body_len`]). CBC IVs come
    /// from `rng`; AEAD IVs from this key's counter.
    pub fn seal<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        aad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, Ikev2CryptoError> {
        let iv_len = self.iv_len();
        let ct_len = self.padded_len(plain.len());
        let pad = ct_len - plain.len() - 1;
        let mut body = Vec::with_capacity(iv_len + ct_len + self.icv_len());
        body.resize(iv_len, 0);
        match &self.keyed {
            Keyed::Cbc { .. } => rng.fill_bytes(&mut body[..iv_len]),
            Keyed::Aead(_) => {
                let iv = self.next_iv;
                self.next_iv = iv.checked_add(1).ok_or(Ikev2CryptoError::IvExhausted)?;
                body.copy_from_slice(&iv.to_be_bytes()[8 - iv_len..]);
            }
        }
        body.extend_from_slice(plain);
        // Padding may be any value (RFC 7296 3.14); zeros. pad < block size ≤ 16.
        body.resize(iv_len + plain.len() + pad, 0);
        body.push(pad as u8);
        let icv_len = self.icv_len();
        body.resize(iv_len + ct_len + icv_len, 0);
        let (iv, rest) = body.split_at_mut(iv_len);
        let (ct, icv) = rest.split_at_mut(ct_len);
        match &self.keyed {
            Keyed::Cbc { cipher, integ } => {
                cipher.encrypt(iv, ct)?;
                integ.compute(&[aad, iv, ct], icv);
            }
            Keyed::Aead(a) => a.seal(iv, aad, ct, icv)?,
        }
        Ok(body)
    }

    /// Checks the ICV of an SK/SKF `body` (`IV | ciphertext | ICV`) over `aad` (the message
    /// up to the body, as received), decrypts it and strips the padding; returns the inner
    /// payloads. Nothing is decrypted unless the ICV verifies.
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, Ikev2CryptoError> {
        let (iv_len, icv_len, bs) = (self.iv_len(), self.icv_len(), self.block_size());
        let min = iv_len + bs.max(1) + icv_len;
        if body.len() < min {
            return Err(Ikev2CryptoError::Truncated {
                got: body.len(),
                min,
            });
        }
        let (iv, rest) = body.split_at(iv_len);
        let (ct, icv) = rest.split_at(rest.len() - icv_len);
        if ct.len() % bs != 0 {
            return Err(Ikev2CryptoError::NotBlockAligned);
        }
        let mut plain = ct.to_vec();
        match &self.keyed {
            Keyed::Cbc { cipher, integ } => {
                if !integ.verify(&[aad, iv, ct], icv) {
                    return Err(Ikev2CryptoError::IntegrityFailed);
                }
                cipher.decrypt(iv, &mut plain)?;
            }
            Keyed::Aead(a) => a
                .open(iv, aad, &mut plain, icv)
                .map_err(|_| Ikev2CryptoError::IntegrityFailed)?,
        }
        // Any pad length that fits is accepted (RFC 7296 3.14).
        let pad = usize::from(plain[plain.len() - 1]);
        if pad + 1 > plain.len() {
            return Err(Ikev2CryptoError::BadPadding);
        }
        plain.truncate(plain.len() - 1 - pad);
        Ok(plain)
    }
}
