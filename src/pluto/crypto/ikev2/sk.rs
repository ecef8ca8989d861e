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

    /// Tests start the AEAD counter where a published vector's IV is.
    #[cfg(test)]
    pub(super) fn set_next_iv(&mut self, iv: u64) {
        self.next_iv = iv;
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
                // The counter, big-endian, right-aligned in the IV (8 bytes for both AEADs).
                let n = iv_len.min(8);
                body[iv_len - n..].copy_from_slice(&iv.to_be_bytes()[8 - n..]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{default_provider, CryptoError, RustCryptoProvider};
    use crate::pluto::crypto::ikev2::keys::tests::case_a;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// An RNG that hands out fixed bytes (for a known CBC IV).
    struct FixedRng(Vec<u8>);

    impl RngCore for FixedRng {
        fn next_u32(&mut self) -> u32 {
            unimplemented!()
        }
        fn next_u64(&mut self) -> u64 {
            unimplemented!()
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            let n = dest.len();
            dest.copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl CryptoRng for FixedRng {}

    fn rng() -> StdRng {
        StdRng::seed_from_u64(5)
    }

    #[test]
    fn rfc7634_appendix_b_ikev2_chacha20_poly1305() {
        // An INFORMATIONAL request (message ID 9) with one Notify payload, encrypted with
        // ChaCha20-Poly1305: AAD = IKE header | SK header, body = IV | ciphertext | tag.
        let keymat = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3");
        let aad = h("c0c1c2c3c4c5c6c7d0d1d2d3d4d5d6d72e202500000000090000004529000029");
        let body = h("1011121314151617610394701f8d017f7c129248896b71bfe25236efd7cdc67066906315b2");
        let inner = h("0000000c000040010000000a");
        let mut c = SkCipher::new(
            default_provider(),
            EncAlg::ChaCha20Poly1305,
            None,
            &keymat,
            &[],
        )
        .unwrap();
        assert_eq!((c.iv_len(), c.icv_len(), c.block_size()), (8, 16, 1));
        assert_eq!(c.body_len(inner.len()), body.len());
        assert_eq!(aad.len() + body.len(), 0x45);
        assert_eq!(c.open(&aad, &body).unwrap(), inner);
        c.set_next_iv(0x1011_1213_1415_1617);
        assert_eq!(c.seal(&mut rng(), &aad, &inner).unwrap(), body);
    }

    #[test]
    fn aes_gcm_ikev2_message_from_another_implementation() {
        // Android's IKE library (IkeCombinedModeCipherTest): an AES-GCM-16-256 INFORMATIONAL
        // message, re-checked with Python's `cryptography` in scripts/ike-crypto-vectors.py.
        let keymat = h("7c04513660dec572d896105254ef92608054f8e6ee19e79ce52ab8697b2b5f2c2aa90c29");
        let aad = h("77c708b4523e39a471dc683c1d4f21362e202508000000060000004129000025");
        let body = h("fbd69d9de2dafc5ef4109834e9f3559758c05edf119917521b885f67f0d14ced43");
        let c =
            SkCipher::new(default_provider(), EncAlg::AesGcm16_256, None, &keymat, &[]).unwrap();
        // 000000080000400f: a Notify payload (NO_ADDITIONAL_ADDRESSES, 16399), Pad Length 0.
        assert_eq!(
            hex::encode(c.open(&aad, &body).unwrap()),
            "000000080000400f"
        );
    }

    #[test]
    fn aes_cbc_hmac_sha256_known_answer() {
        // scripts/ike-crypto-vectors.py, keys of keys::tests case A (SK_ei, SK_ai): the
        // initiator's INFORMATIONAL request, IV e0..ef from the RNG, ICV = HMAC-SHA-256-128
        // over IKE header | SK header | IV | ciphertext.
        let a = case_a();
        let mut c = SkCipher::new(
            default_provider(),
            a.algs.enc,
            a.algs.integ,
            &a.sk_ei,
            &a.sk_ai,
        )
        .unwrap();
        assert_eq!((c.iv_len(), c.icv_len(), c.block_size()), (16, 16, 16));
        let inner = h("0000000c0100000700000000");
        let aad = h("010203040506070811121314151617182e202508000000070000005029000034");
        assert_eq!(c.body_len(inner.len()), 48);
        let iv: Vec<u8> = (0xe0..0xf0).collect();
        let body = c.seal(&mut FixedRng(iv.clone()), &aad, &inner).unwrap();
        assert_eq!(
            hex::encode(&body),
            format!(
                "{}{}{}",
                hex::encode(&iv),
                "fe6f10f0a17e143db02ff6eebef6262a",
                "c87823fdc384bb5e86e85eb532734239"
            )
        );
        assert_eq!(c.open(&aad, &body).unwrap(), inner);
        // The responder's keys do not open it.
        let r = SkCipher::new(
            default_provider(),
            a.algs.enc,
            a.algs.integ,
            &a.sk_er,
            &a.sk_ar,
        )
        .unwrap();
        assert_eq!(
            r.open(&aad, &body).unwrap_err(),
            Ikev2CryptoError::IntegrityFailed
        );
    }

    #[test]
    fn aes_gcm_known_answer_with_counter_iv() {
        // scripts/ike-crypto-vectors.py: keys of keys::tests case B (SK_er of the rekeyed SA),
        // a response carrying two payloads; the first AEAD IV under a key is 0.
        let a = case_a();
        let ni2: Vec<u8> = (0x80..0x90).collect();
        let nr2: Vec<u8> = (0xa0..0xc0).collect();
        let gir_new: Vec<u8> = (0..32u32).map(|i| ((5 * i + 1) % 256) as u8).collect();
        let algs = crate::pluto::crypto::ikev2::IkeSaAlgs {
            prf: crate::pluto::crypto::Prf::HmacSha384,
            enc: EncAlg::AesGcm16_256,
            integ: None,
        };
        let b = a
            .rekey(
                algs,
                &gir_new,
                &ni2,
                &nr2,
                &[0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28],
                &[0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38],
            )
            .unwrap();
        let mut c = SkCipher::new(default_provider(), algs.enc, None, &b.sk_er, &[]).unwrap();
        let inner = h("2900000c01000007000000000000000801000000");
        let aad = h("212223242526272831323334353637382e202520000000000000004d29000031");
        assert_eq!(aad.len() + c.body_len(inner.len()), 0x4d);
        let body = c.seal(&mut rng(), &aad, &inner).unwrap();
        assert_eq!(
            hex::encode(&body),
            "0000000000000000\
             8b3f25ddb77149d0faf73060640779da4f2ec414eeb8183066f0b2e11aaf8a97ec6ae09421"
        );
        assert_eq!(c.open(&aad, &body).unwrap(), inner);
        // The next message gets IV 1.
        let next = c.seal(&mut rng(), &aad, &inner).unwrap();
        assert_eq!(&next[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_ne!(next[8..], body[8..]);
    }

    fn all_ciphers() -> Vec<(EncAlg, Option<AuthAlg>)> {
        vec![
            (EncAlg::TripleDesCbc, Some(AuthAlg::HmacSha1_96)),
            (EncAlg::AesCbc128, Some(AuthAlg::HmacSha2_256_128)),
            (EncAlg::AesCbc192, Some(AuthAlg::HmacSha2_384_192)),
            (EncAlg::AesCbc256, Some(AuthAlg::HmacSha2_512_256)),
            (EncAlg::AesGcm16_128, None),
            (EncAlg::AesGcm16_256, None),
            (EncAlg::ChaCha20Poly1305, None),
        ]
    }

    fn keyed(enc: EncAlg, integ: Option<AuthAlg>, seed: u8) -> SkCipher {
        let ek: Vec<u8> = (0..enc.key_len() as u8).map(|i| i ^ seed).collect();
        let ak: Vec<u8> = (0..integ.map_or(0, |a| a.key_len()) as u8)
            .map(|i| i.wrapping_mul(3) ^ seed)
            .collect();
        SkCipher::new(&RustCryptoProvider, enc, integ, &ek, &ak).unwrap()
    }

    #[test]
    fn round_trips_for_every_algorithm_and_length() {
        let mut r = rng();
        for (enc, integ) in all_ciphers() {
            let mut c = keyed(enc, integ, 1);
            for len in [0usize, 1, 7, 8, 15, 16, 17, 100, 1200] {
                let inner: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let aad = vec![0xa5u8; 32];
                let body = c.seal(&mut r, &aad, &inner).unwrap();
                assert_eq!(body.len(), c.body_len(len), "{enc} {len}");
                let ct_len = body.len() - c.iv_len() - c.icv_len();
                assert_eq!(ct_len % c.block_size(), 0);
                assert!(ct_len > len, "room for the Pad Length");
                assert!(ct_len <= len + c.block_size());
                assert_eq!(c.open(&aad, &body).unwrap(), inner, "{enc} {len}");
                // max_plain_len is the inverse of body_len.
                let max = c.max_plain_len(body.len()).unwrap();
                assert!(max >= len && c.body_len(max) <= body.len());
                assert!(c.body_len(max + 1) > body.len());
            }
            assert_eq!(c.max_plain_len(c.iv_len() + c.icv_len()), None);
            assert_eq!(
                c.max_plain_len(c.iv_len() + c.icv_len() + c.block_size()),
                Some(c.block_size() - 1)
            );
        }
    }

    #[test]
    fn any_altered_byte_fails_the_integrity_check() {
        let mut r = rng();
        for (enc, integ) in all_ciphers() {
            let mut c = keyed(enc, integ, 2);
            let inner = b"inner payloads of an IKE message".to_vec();
            let aad = (0u8..32).collect::<Vec<u8>>();
            let body = c.seal(&mut r, &aad, &inner).unwrap();
            for i in 0..body.len() {
                let mut b = body.clone();
                b[i] ^= 0x40;
                assert_eq!(
                    c.open(&aad, &b).unwrap_err(),
                    Ikev2CryptoError::IntegrityFailed,
                    "{enc} body byte {i}"
                );
            }
            for i in 0..aad.len() {
                let mut a = aad.clone();
                a[i] ^= 1;
                assert_eq!(
                    c.open(&a, &body).unwrap_err(),
                    Ikev2CryptoError::IntegrityFailed,
                    "{enc} aad byte {i}"
                );
            }
            // Another key fails too.
            let other = keyed(enc, integ, 3);
            assert_eq!(
                other.open(&aad, &body).unwrap_err(),
                Ikev2CryptoError::IntegrityFailed
            );
            // Too short, and (CBC) not whole blocks.
            let min = c.iv_len() + c.block_size() + c.icv_len();
            assert_eq!(
                c.open(&aad, &body[..min - 1]).unwrap_err(),
                Ikev2CryptoError::Truncated { got: min - 1, min }
            );
            if c.block_size() > 1 {
                let mut b = body.clone();
                b.remove(c.iv_len());
                assert_eq!(
                    c.open(&aad, &b).unwrap_err(),
                    Ikev2CryptoError::NotBlockAligned
                );
            }
        }
    }

    #[test]
    fn pad_length_beyond_the_plaintext_is_refused() {
        // A correctly authenticated body whose Pad Length (0xff) exceeds the ciphertext:
        // built with the same provider objects the SkCipher uses.
        let p = &RustCryptoProvider;
        let (ek, ak) = ([7u8; 16], [9u8; 32]);
        let c = SkCipher::new(
            p,
            EncAlg::AesCbc128,
            Some(AuthAlg::HmacSha2_256_128),
            &ek,
            &ak,
        )
        .unwrap();
        let aad = [1u8; 32];
        let iv = [2u8; 16];
        let mut ct = [0u8; 16];
        ct[15] = 0xff;
        p.block_cipher(EncAlg::AesCbc128, &ek)
            .unwrap()
            .encrypt(&iv, &mut ct)
            .unwrap();
        let mut icv = [0u8; 16];
        p.integrity(AuthAlg::HmacSha2_256_128, &ak)
            .unwrap()
            .compute(&[&aad, &iv, &ct], &mut icv);
        let body = [&iv[..], &ct, &icv].concat();
        assert_eq!(
            c.open(&aad, &body).unwrap_err(),
            Ikev2CryptoError::BadPadding
        );
        // Pad Length 15 (all of the block but itself) is accepted: empty inner payloads.
        let mut ct = [0u8; 16];
        ct[15] = 15;
        p.block_cipher(EncAlg::AesCbc128, &ek)
            .unwrap()
            .encrypt(&iv, &mut ct)
            .unwrap();
        p.integrity(AuthAlg::HmacSha2_256_128, &ak)
            .unwrap()
            .compute(&[&aad, &iv, &ct], &mut icv);
        let body = [&iv[..], &ct, &icv].concat();
        assert_eq!(c.open(&aad, &body).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn ivs_never_repeat() {
        let mut r = rng();
        // AEAD: a counter per key, refusing to wrap.
        let mut c = keyed(EncAlg::AesGcm16_128, None, 4);
        let ivs: Vec<Vec<u8>> = (0..3)
            .map(|_| c.seal(&mut r, b"aad", b"x").unwrap()[..8].to_vec())
            .collect();
        assert_eq!(
            ivs,
            [
                [0u8; 8].to_vec(),
                1u64.to_be_bytes().to_vec(),
                2u64.to_be_bytes().to_vec()
            ]
        );
        c.set_next_iv(u64::MAX);
        assert_eq!(
            c.seal(&mut r, b"aad", b"x").unwrap_err(),
            Ikev2CryptoError::IvExhausted
        );
        assert_eq!(
            c.seal(&mut r, b"aad", b"x").unwrap_err(),
            Ikev2CryptoError::IvExhausted
        );
        // CBC: a fresh random block each time.
        let mut c = keyed(EncAlg::AesCbc128, Some(AuthAlg::HmacSha1_96), 4);
        let a = c.seal(&mut r, b"aad", b"x").unwrap();
        let b = c.seal(&mut r, b"aad", b"x").unwrap();
        assert_ne!(a[..16], b[..16]);
        assert_ne!(a[16..32], b[16..32]);
    }

    #[test]
    fn construction_is_checked() {
        let p = default_provider();
        assert!(matches!(
            SkCipher::new(
                p,
                EncAlg::AesGcm16_128,
                Some(AuthAlg::HmacSha1_96),
                &[0; 20],
                &[0; 20]
            ),
            Err(Ikev2CryptoError::BadAlgorithms(_))
        ));
        assert!(matches!(
            SkCipher::new(p, EncAlg::AesGcm16_128, None, &[0; 20], &[0; 20]),
            Err(Ikev2CryptoError::BadAlgorithms(_))
        ));
        assert!(matches!(
            SkCipher::new(p, EncAlg::AesCbc128, None, &[0; 16], &[]),
            Err(Ikev2CryptoError::BadAlgorithms(_))
        ));
        assert!(matches!(
            SkCipher::new(p, EncAlg::AesGcm16_256, None, &[0; 32], &[]),
            Err(Ikev2CryptoError::Crypto(CryptoError::BadKeyLength { .. }))
        ));
        assert!(matches!(
            SkCipher::new(
                p,
                EncAlg::AesCbc128,
                Some(AuthAlg::HmacSha1_96),
                &[0; 16],
                &[0; 16]
            ),
            Err(Ikev2CryptoError::Crypto(CryptoError::BadKeyLength { .. }))
        ));
        assert!(matches!(
            SkCipher::new(
                p,
                EncAlg::Des,
                Some(AuthAlg::HmacSha1_96),
                &[1; 8],
                &[0; 20]
            ),
            Err(Ikev2CryptoError::Crypto(CryptoError::Refused(_)))
        ));
        let c = keyed(EncAlg::ChaCha20Poly1305, None, 1);
        assert_eq!(c.enc(), EncAlg::ChaCha20Poly1305);
        assert_eq!(c.integ(), None);
        assert!(format!("{c:?}").starts_with("SkCipher { enc: ChaCha20Poly1305"));
    }
}
