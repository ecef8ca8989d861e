//! AEADs from `ring` (BoringSSL's AES-GCM and ChaCha20-Poly1305 assembly behind a safe API):
//! AES-GCM-16 (RFC 4106) and ChaCha20-Poly1305 (RFC 7634) for ESP. The key schedule (and GCM's
//! hash key tables) are built once per SA; a packet costs the cipher and a few dozen
//! nanoseconds of set-up (`docs/performance.md`, section 2). Everything else is delegated to
//! [`RustCryptoProvider`] (checks, refusals and the non-AEAD algorithms).
//!
//! Difference from the other providers: when a tag does not verify, `ring` zeroes the buffer
//! instead of leaving the ciphertext (it authenticates while it decrypts); either way no
//! unauthenticated plaintext is left, and the datapath drops the packet.

use ring::aead::CHACHA20_POLY1305;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM, AES_256_GCM};

use super::{
    aead_nonce, check_aead_key, Aead, AuthAlg, BlockCipher, CryptoError, CryptoProvider, EncAlg,
    Integrity, RustCryptoProvider, AEAD_IV_LEN, GCM_SALT_LEN, GCM_TAG_LEN,
};

/// The `ring`-backed AEAD provider (the rest from RustCrypto).
#[derive(Debug, Default, Clone, Copy)]
pub struct RingProvider;

impl CryptoProvider for RingProvider {
    fn name(&self) -> &'static str {
        "ring"
    }

    fn block_cipher(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn BlockCipher>, CryptoError> {
        RustCryptoProvider.block_cipher(alg, key)
    }

    fn aead(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
        check_aead_key(alg, key)?;
        Ok(Box::new(RingAead::new(alg, key)?))
    }

    fn integrity(&self, alg: AuthAlg, key: &[u8]) -> Result<Box<dyn Integrity>, CryptoError> {
        RustCryptoProvider.integrity(alg, key)
    }
}

/// One keyed `ring` AEAD with the ESP salt.
pub(crate) struct RingAead {
    key: LessSafeKey,
    salt: [u8; GCM_SALT_LEN],
}

impl RingAead {
    /// Keys `alg` from keying material = key || 4-byte salt (lengths checked by the caller).
    pub(crate) fn new(alg: EncAlg, keymat: &[u8]) -> Result<RingAead, CryptoError> {
        let algorithm = match alg {
            EncAlg::AesGcm16_128 => &AES_128_GCM,
            EncAlg::AesGcm16_256 => &AES_256_GCM,
            EncAlg::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            _ => return Err(CryptoError::Unsupported("not an AEAD")),
        };
        if keymat.len() < GCM_SALT_LEN {
            return Err(CryptoError::BadLength);
        }
        let (key, salt_bytes) = keymat.split_at(keymat.len() - GCM_SALT_LEN);
        let key = UnboundKey::new(algorithm, key).map_err(|_| CryptoError::BadLength)?;
        let mut salt = [0u8; GCM_SALT_LEN];
        salt.copy_from_slice(salt_bytes);
        Ok(RingAead {
            key: LessSafeKey::new(key),
            salt,
        })
    }

    fn nonce(&self, iv: &[u8]) -> Result<Nonce, CryptoError> {
        aead_nonce(&self.salt, iv).map(Nonce::assume_unique_for_key)
    }
}

impl Aead for RingAead {
    fn iv_len(&self) -> usize {
        AEAD_IV_LEN
    }

    fn tag_len(&self) -> usize {
        GCM_TAG_LEN
    }

    fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), CryptoError> {
        let nonce = self.nonce(iv)?;
        if tag.len() != GCM_TAG_LEN {
            return Err(CryptoError::BadLength);
        }
        let t = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), buf)
            .map_err(|_| CryptoError::BadLength)?;
        tag.copy_from_slice(t.as_ref());
        Ok(())
    }

    fn open(&self, iv: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        let nonce = self.nonce(iv)?;
        let tag: [u8; GCM_TAG_LEN] = tag.try_into().map_err(|_| CryptoError::BadLength)?;
        self.key
            .open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(tag), buf, 0..)
            .map(|_| ())
            .map_err(|_| CryptoError::AuthFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    /// `ring`'s AEADs produce RustCrypto's ciphertext and tag at every length, open each
    /// other's output, and refuse a forgery leaving no plaintext behind.
    #[test]
    fn aeads_agree_with_rustcrypto() {
        let mut r = rand::rngs::StdRng::seed_from_u64(11);
        for alg in [
            EncAlg::AesGcm16_128,
            EncAlg::AesGcm16_256,
            EncAlg::ChaCha20Poly1305,
        ] {
            let mut key = vec![0u8; alg.key_len()];
            r.fill_bytes(&mut key);
            let g = RingProvider.aead(alg, &key).unwrap();
            let rc = RustCryptoProvider.aead(alg, &key).unwrap();
            for len in [0usize, 1, 15, 16, 17, 64, 1400, 9000] {
                let mut iv = [0u8; 8];
                r.fill_bytes(&mut iv);
                let aad = [9u8; 8];
                let mut a = vec![0u8; len];
                r.fill_bytes(&mut a);
                let plain = a.clone();
                let mut b = a.clone();
                let (mut ta, mut tb) = ([0u8; 16], [0u8; 16]);
                g.seal(&iv, &aad, &mut a, &mut ta).unwrap();
                rc.seal(&iv, &aad, &mut b, &mut tb).unwrap();
                assert_eq!((&a, ta), (&b, tb), "{alg} {len}");
                let mut c = a.clone();
                rc.open(&iv, &aad, &mut a, &ta).unwrap();
                g.open(&iv, &aad, &mut b, &tb).unwrap();
                assert_eq!((&a, &b), (&plain, &plain));
                tb[15] ^= 0x80;
                assert_eq!(g.open(&iv, &aad, &mut c, &tb), Err(CryptoError::AuthFailed));
                assert!(
                    len == 0 || c != plain,
                    "{alg} {len}: plaintext left after a forgery"
                );
            }
            assert!(matches!(
                g.seal(&[0; 7], &[], &mut [], &mut [0; 16]),
                Err(CryptoError::BadIvLength { .. })
            ));
        }
        for alg in EncAlg::ALL {
            let key = vec![0x5au8; alg.key_len()];
            if alg.is_aead() {
                assert!(RingProvider.aead(alg, &key).is_ok());
            }
            assert_eq!(
                RingProvider
                    .aead(alg, &key[..key.len().saturating_sub(1)])
                    .err(),
                RustCryptoProvider
                    .aead(alg, &key[..key.len().saturating_sub(1)])
                    .err()
            );
        }
    }
}
