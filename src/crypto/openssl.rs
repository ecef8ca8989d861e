//! The OpenSSL-backed provider: 3DES-CBC through libcrypto's EVP interface (its 3DES is 2.6×
//! RustCrypto's `des` here); everything else is delegated to [`RustCryptoProvider`], which is as
//! fast or faster for AES-CBC and HMAC and faster for AES-GCM on small packets (OpenSSL 3's
//! per-call set-up costs ~0.3 µs; `docs/performance.md` section 2). The provider trait's
//! purpose: a faster backend serves one transform without touching the rest.
//!
//! Key checks and refusals are the RustCrypto provider's (it builds, and drops, its own object
//! first), so both providers accept and refuse exactly the same keys with the same messages.
//! Each keyed object holds one encryption and one decryption context with the key schedule set
//! up once; a packet only sets its IV. The contexts sit behind uncontended mutexes: an SA is
//! served by one datapath thread at a time.

use std::sync::{Mutex, MutexGuard};

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::{CipherCtx, CipherCtxRef};

use super::{
    aead_nonce, check_aead_key, Aead, AuthAlg, BlockCipher, CryptoError, CryptoProvider, EncAlg,
    Integrity, RustCryptoProvider, AEAD_IV_LEN, GCM_SALT_LEN, GCM_TAG_LEN, MAX_IV_LEN,
};

/// 3DES-CBC from OpenSSL's libcrypto; every other algorithm from RustCrypto.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenSslProvider;

/// Any OpenSSL failure after the key checks passed (never expected; never carries key bytes).
fn ossl<T>(r: Result<T, openssl::error::ErrorStack>) -> Result<T, CryptoError> {
    r.map_err(|_| CryptoError::Unsupported("OpenSSL cipher operation failed"))
}

fn lock(m: &Mutex<CipherCtx>) -> MutexGuard<'_, CipherCtx> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A context keyed for `cipher` in one direction, without padding.
fn keyed(cipher: &CipherRef, key: &[u8], encrypt: bool) -> Result<Mutex<CipherCtx>, CryptoError> {
    let mut c = ossl(CipherCtx::new())?;
    if encrypt {
        ossl(c.encrypt_init(Some(cipher), Some(key), None))?;
    } else {
        ossl(c.decrypt_init(Some(cipher), Some(key), None))?;
    }
    c.set_padding(false);
    Ok(Mutex::new(c))
}

impl CryptoProvider for OpenSslProvider {
    fn name(&self) -> &'static str {
        "openssl"
    }

    fn block_cipher(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn BlockCipher>, CryptoError> {
        let rc = RustCryptoProvider.block_cipher(alg, key)?;
        if alg != EncAlg::TripleDesCbc {
            return Ok(rc);
        }
        let cipher = Cipher::des_ede3_cbc();
        Ok(Box::new(Cbc {
            bs: alg.block_size(),
            enc: keyed(cipher, key, true)?,
            dec: keyed(cipher, key, false)?,
        }))
    }

    fn aead(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
        RustCryptoProvider.aead(alg, key)
    }

    fn integrity(&self, alg: AuthAlg, key: &[u8]) -> Result<Box<dyn Integrity>, CryptoError> {
        RustCryptoProvider.integrity(alg, key)
    }
}

/// 3DES-CBC (any CBC cipher of libcrypto would fit).
struct Cbc {
    bs: usize,
    enc: Mutex<CipherCtx>,
    dec: Mutex<CipherCtx>,
}

impl Cbc {
    fn check(&self, iv: &[u8], buf: &[u8]) -> Result<(), CryptoError> {
        if iv.len() != self.bs {
            return Err(CryptoError::BadIvLength {
                expected: self.bs,
                got: iv.len(),
            });
        }
        if !buf.len().is_multiple_of(self.bs) {
            return Err(CryptoError::BadLength);
        }
        Ok(())
    }

    /// Runs `buf` through `ctx` (already given the IV) in place, a block at a time through a
    /// stack buffer (the safe interface needs a separate output one block longer).
    fn run(&self, ctx: &mut CipherCtxRef, buf: &mut [u8]) -> Result<(), CryptoError> {
        const CHUNK: usize = 512;
        let mut out = [0u8; CHUNK + MAX_IV_LEN];
        for piece in buf.chunks_mut(CHUNK) {
            let n = ossl(ctx.cipher_update(piece, Some(&mut out)))?;
            if n != piece.len() {
                return Err(CryptoError::BadLength);
            }
            piece.copy_from_slice(&out[..n]);
        }
        Ok(())
    }
}

impl BlockCipher for Cbc {
    fn block_size(&self) -> usize {
        self.bs
    }

    fn iv_len(&self) -> usize {
        self.bs
    }

    fn encrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        self.check(iv, buf)?;
        let mut c = lock(&self.enc);
        ossl(c.encrypt_init(None, None, Some(iv)))?;
        self.run(&mut c, buf)
    }

    fn decrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        self.check(iv, buf)?;
        let mut c = lock(&self.dec);
        ossl(c.decrypt_init(None, None, Some(iv)))?;
        self.run(&mut c, buf)
    }
}

/// An AEAD (AES-GCM, ChaCha20-Poly1305) from libcrypto, keyed once: one encryption and one
/// decryption context with the key schedule set up; a packet only sets its nonce.
pub(crate) struct OsslAead {
    enc: Mutex<CipherCtx>,
    dec: Mutex<CipherCtx>,
    salt: [u8; GCM_SALT_LEN],
}

impl OsslAead {
    /// Keys `alg` from keying material = key || 4-byte salt (lengths checked by the caller).
    pub(crate) fn new(alg: EncAlg, keymat: &[u8]) -> Result<OsslAead, CryptoError> {
        let cipher = match alg {
            EncAlg::AesGcm16_128 => Cipher::aes_128_gcm(),
            EncAlg::AesGcm16_256 => Cipher::aes_256_gcm(),
            EncAlg::ChaCha20Poly1305 => Cipher::chacha20_poly1305(),
            _ => return Err(CryptoError::Unsupported("not an AEAD")),
        };
        if keymat.len() < GCM_SALT_LEN {
            return Err(CryptoError::BadLength);
        }
        let (key, salt_bytes) = keymat.split_at(keymat.len() - GCM_SALT_LEN);
        let mut salt = [0u8; GCM_SALT_LEN];
        salt.copy_from_slice(salt_bytes);
        let ctx = |encrypt: bool| -> Result<Mutex<CipherCtx>, CryptoError> {
            let mut c = ossl(CipherCtx::new())?;
            if encrypt {
                ossl(c.encrypt_init(Some(cipher), Some(key), None))?;
            } else {
                ossl(c.decrypt_init(Some(cipher), Some(key), None))?;
            }
            Ok(Mutex::new(c))
        };
        Ok(OsslAead {
            enc: ctx(true)?,
            dec: ctx(false)?,
            salt,
        })
    }

    fn nonce(&self, iv: &[u8]) -> Result<[u8; 12], CryptoError> {
        aead_nonce(&self.salt, iv)
    }
}

impl Aead for OsslAead {
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
        let mut c = lock(&self.enc);
        ossl(c.encrypt_init(None, None, Some(&nonce)))?;
        ossl(c.cipher_update(aad, None))?;
        let n = buf.len();
        ossl(c.cipher_update_inplace(buf, n))?;
        ossl(c.cipher_final(&mut []))?;
        ossl(c.tag(tag))
    }

    fn open(&self, iv: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        let nonce = self.nonce(iv)?;
        if tag.len() != GCM_TAG_LEN {
            return Err(CryptoError::BadLength);
        }
        let mut c = lock(&self.dec);
        ossl(c.decrypt_init(None, None, Some(&nonce)))?;
        ossl(c.set_tag(tag))?;
        ossl(c.cipher_update(aad, None))?;
        let n = buf.len();
        ossl(c.cipher_update_inplace(buf, n))?;
        if c.cipher_final(&mut []).is_ok() {
            return Ok(());
        }
        // Both ciphers are a keystream XOR: running the same nonce over the output again
        // restores the ciphertext, so a forgery leaves the buffer as it came.
        ossl(c.decrypt_init(None, None, Some(&nonce)))?;
        ossl(c.cipher_update_inplace(buf, n))?;
        Err(CryptoError::AuthFailed)
    }
}

/// Every AEAD from libcrypto (and the rest like [`OpenSslProvider`]): measured against the
/// other providers by `cargo bench --bench xform` (docs/performance.md); the default provider
/// routes each algorithm to the fastest.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenSslAeadProvider;

impl CryptoProvider for OpenSslAeadProvider {
    fn name(&self) -> &'static str {
        "openssl-aead"
    }

    fn block_cipher(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn BlockCipher>, CryptoError> {
        OpenSslProvider.block_cipher(alg, key)
    }

    fn aead(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
        check_aead_key(alg, key)?;
        Ok(Box::new(OsslAead::new(alg, key)?))
    }

    fn integrity(&self, alg: AuthAlg, key: &[u8]) -> Result<Box<dyn Integrity>, CryptoError> {
        OpenSslProvider.integrity(alg, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    /// OpenSSL and RustCrypto produce the same 3DES ciphertext for every length, and each
    /// decrypts the other's.
    #[test]
    fn tdes_agrees_with_rustcrypto() {
        let mut r = rng();
        for alg in [EncAlg::TripleDesCbc] {
            let mut key = vec![0u8; alg.key_len()];
            r.fill_bytes(&mut key);
            let o = OpenSslProvider.block_cipher(alg, &key).unwrap();
            let rc = RustCryptoProvider.block_cipher(alg, &key).unwrap();
            for blocks in [1usize, 2, 31, 32, 33, 90, 200] {
                let mut iv = vec![0u8; alg.block_size()];
                r.fill_bytes(&mut iv);
                let mut a = vec![0u8; blocks * alg.block_size()];
                r.fill_bytes(&mut a);
                let plain = a.clone();
                let mut b = a.clone();
                o.encrypt(&iv, &mut a).unwrap();
                rc.encrypt(&iv, &mut b).unwrap();
                assert_eq!(a, b, "{alg} {blocks} blocks");
                rc.decrypt(&iv, &mut a).unwrap();
                o.decrypt(&iv, &mut b).unwrap();
                assert_eq!(a, plain);
                assert_eq!(b, plain);
            }
            let mut odd = vec![0u8; alg.block_size() + 1];
            assert_eq!(
                o.encrypt(&[0; 16][..alg.block_size()], &mut odd),
                Err(CryptoError::BadLength)
            );
            assert!(matches!(
                o.encrypt(&[0; 3], &mut []),
                Err(CryptoError::BadIvLength { .. })
            ));
        }
    }

    /// OpenSSL's AEADs produce RustCrypto's ciphertext and tag at every length, open each
    /// other's output, and refuse a forgery leaving the buffer as it was.
    #[test]
    fn aeads_agree_with_rustcrypto() {
        let mut r = rng();
        for alg in [
            EncAlg::AesGcm16_128,
            EncAlg::AesGcm16_256,
            EncAlg::ChaCha20Poly1305,
        ] {
            let mut key = vec![0u8; alg.key_len()];
            r.fill_bytes(&mut key);
            let o = OpenSslAeadProvider.aead(alg, &key).unwrap();
            let rc = RustCryptoProvider.aead(alg, &key).unwrap();
            for len in [0usize, 1, 15, 16, 17, 64, 1400, 9000] {
                let mut iv = [0u8; 8];
                r.fill_bytes(&mut iv);
                let aad = [1u8, 2, 3, 4, 5, 6, 7, 8];
                let mut a = vec![0u8; len];
                r.fill_bytes(&mut a);
                let plain = a.clone();
                let mut b = a.clone();
                let (mut ta, mut tb) = ([0u8; 16], [0u8; 16]);
                o.seal(&iv, &aad, &mut a, &mut ta).unwrap();
                rc.seal(&iv, &aad, &mut b, &mut tb).unwrap();
                assert_eq!((&a, ta), (&b, tb), "{alg} {len}");
                let mut c = a.clone();
                rc.open(&iv, &aad, &mut a, &ta).unwrap();
                o.open(&iv, &aad, &mut b, &tb).unwrap();
                assert_eq!(a, plain);
                assert_eq!(b, plain);
                let before = c.clone();
                tb[0] ^= 1;
                assert_eq!(o.open(&iv, &aad, &mut c, &tb), Err(CryptoError::AuthFailed));
                assert_eq!(
                    c, before,
                    "{alg} {len}: forgery must leave the buffer alone"
                );
            }
        }
    }

    /// Refusals and key-length errors are the RustCrypto provider's, word for word.
    #[test]
    fn refusals_match_rustcrypto() {
        for alg in EncAlg::ALL {
            for len in [0usize, 8, 16, 20, 24, 32, 36] {
                let key = vec![0x5au8; len];
                let (o, rc) = if alg.is_aead() {
                    assert_eq!(
                        OpenSslAeadProvider.aead(alg, &key).err(),
                        RustCryptoProvider.aead(alg, &key).err()
                    );
                    (
                        OpenSslProvider.aead(alg, &key).err(),
                        RustCryptoProvider.aead(alg, &key).err(),
                    )
                } else {
                    (
                        OpenSslProvider.block_cipher(alg, &key).err(),
                        RustCryptoProvider.block_cipher(alg, &key).err(),
                    )
                };
                assert_eq!(o, rc, "{alg} with {len} bytes");
            }
        }
    }
}
