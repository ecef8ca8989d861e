//! The OpenSSL-backed provider: 3DES-CBC, AES-CBC and AES-GCM through libcrypto's EVP
//! interface (AES-NI/VAES, CLMUL and its 3DES assembly), integrity delegated to
//! [`RustCryptoProvider`] (HMACs with SHA-NI are as fast there).
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
    Aead, AuthAlg, BlockCipher, CryptoError, CryptoProvider, EncAlg, Integrity, RustCryptoProvider,
    GCM_SALT_LEN, GCM_TAG_LEN, MAX_IV_LEN,
};

/// Cipher objects from OpenSSL's libcrypto; integrity from RustCrypto.
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
        RustCryptoProvider.block_cipher(alg, key)?;
        let cipher = match alg {
            EncAlg::TripleDesCbc => Cipher::des_ede3_cbc(),
            EncAlg::AesCbc128 => Cipher::aes_128_cbc(),
            EncAlg::AesCbc192 => Cipher::aes_192_cbc(),
            EncAlg::AesCbc256 => Cipher::aes_256_cbc(),
            _ => return Err(CryptoError::Unsupported("not a CBC cipher")),
        };
        Ok(Box::new(Cbc {
            bs: alg.block_size(),
            enc: keyed(cipher, key, true)?,
            dec: keyed(cipher, key, false)?,
        }))
    }

    fn aead(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
        RustCryptoProvider.aead(alg, key)?;
        let cipher = match alg {
            EncAlg::AesGcm16_128 => Cipher::aes_128_gcm(),
            EncAlg::AesGcm16_256 => Cipher::aes_256_gcm(),
            _ => return Err(CryptoError::Unsupported("not an AEAD")),
        };
        let (k, salt) = key.split_at(key.len() - GCM_SALT_LEN);
        let mut s = [0u8; GCM_SALT_LEN];
        s.copy_from_slice(salt);
        Ok(Box::new(Gcm {
            salt: s,
            enc: keyed(cipher, k, true)?,
            dec: keyed(cipher, k, false)?,
        }))
    }

    fn integrity(&self, alg: AuthAlg, key: &[u8]) -> Result<Box<dyn Integrity>, CryptoError> {
        RustCryptoProvider.integrity(alg, key)
    }
}

/// 3DES-CBC or AES-CBC.
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

/// AES-GCM with a 16-byte tag, RFC 4106 nonce = salt || explicit IV.
struct Gcm {
    salt: [u8; GCM_SALT_LEN],
    enc: Mutex<CipherCtx>,
    dec: Mutex<CipherCtx>,
}

impl Gcm {
    fn nonce(&self, iv: &[u8]) -> Result<[u8; 12], CryptoError> {
        if iv.len() != 8 {
            return Err(CryptoError::BadIvLength {
                expected: 8,
                got: iv.len(),
            });
        }
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(iv);
        Ok(n)
    }

    /// CTR-encrypts `buf` in place under `nonce` (also undoes a decryption: same keystream).
    fn keystream(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        let mut c = lock(&self.enc);
        ossl(c.encrypt_init(None, None, Some(nonce)))?;
        ossl(c.cipher_update(aad, None))?;
        ossl(c.cipher_update_inplace(buf, buf.len()))?;
        Ok(())
    }
}

impl Aead for Gcm {
    fn iv_len(&self) -> usize {
        8
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
        ossl(c.cipher_update_inplace(buf, buf.len()))?;
        let mut fin = [0u8; 16];
        ossl(c.cipher_final(&mut fin))?;
        ossl(c.tag(tag))
    }

    fn open(&self, iv: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        let nonce = self.nonce(iv)?;
        if tag.len() != GCM_TAG_LEN {
            return Err(CryptoError::BadLength);
        }
        let ok = {
            let mut c = lock(&self.dec);
            ossl(c.decrypt_init(None, None, Some(&nonce)))?;
            ossl(c.cipher_update(aad, None))?;
            ossl(c.set_tag(tag))?;
            ossl(c.cipher_update_inplace(buf, buf.len()))?;
            let mut fin = [0u8; 16];
            c.cipher_final(&mut fin).is_ok()
        };
        if ok {
            Ok(())
        } else {
            // OpenSSL decrypts before it checks the tag: put the ciphertext back, so a failed
            // check leaves the buffer as it was (the contract of `Aead::open`).
            self.keystream(&nonce, &[], buf)?;
            Err(CryptoError::AuthFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    /// OpenSSL and RustCrypto produce the same ciphertext for every CBC cipher and every length,
    /// and each decrypts the other's.
    #[test]
    fn cbc_agrees_with_rustcrypto() {
        let mut r = rng();
        for alg in [
            EncAlg::TripleDesCbc,
            EncAlg::AesCbc128,
            EncAlg::AesCbc192,
            EncAlg::AesCbc256,
        ] {
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

    /// Same ciphertext and tag as RustCrypto; a bad tag fails and leaves the buffer unchanged.
    #[test]
    fn gcm_agrees_with_rustcrypto() {
        let mut r = rng();
        for alg in [EncAlg::AesGcm16_128, EncAlg::AesGcm16_256] {
            let mut key = vec![0u8; alg.key_len()];
            r.fill_bytes(&mut key);
            let o = OpenSslProvider.aead(alg, &key).unwrap();
            let rc = RustCryptoProvider.aead(alg, &key).unwrap();
            for len in [0usize, 1, 15, 16, 17, 1400, 4000] {
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
                let sealed = a.clone();
                let mut bad = ta;
                bad[0] ^= 1;
                assert_eq!(
                    o.open(&iv, &aad, &mut a, &bad),
                    Err(CryptoError::AuthFailed)
                );
                assert_eq!(a, sealed, "a failed open must leave the ciphertext");
                assert_eq!(
                    o.open(&iv, &[0u8; 8], &mut a, &ta),
                    Err(CryptoError::AuthFailed)
                );
                assert_eq!(a, sealed);
                o.open(&iv, &aad, &mut a, &ta).unwrap();
                assert_eq!(a, plain);
                rc.open(&iv, &aad, &mut b, &tb).unwrap();
                assert_eq!(b, plain);
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
