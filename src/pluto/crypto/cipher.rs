//! CBC encryption of IKE messages (IKEv1: 3DES-CBC, AES-CBC 128/192/256), keyed through a
//! [`CryptoProvider`] — the same one the ESP datapath uses, so IKE and ESP share one
//! implementation of each cipher.
//!
//! The IV goes in explicitly and the IV for the next message (the last ciphertext block)
//! comes out; IKEv1's IV chaining rules live in the IKEv1 layer. Data must already be padded
//! to the block size.

use core::fmt;
use std::sync::Arc;

use crate::crypto::{BlockCipher, CryptoError, CryptoProvider, EncAlg};

/// A keyed CBC cipher (the key schedule is computed once, when the SA's keys are derived).
/// Cloning shares the keyed object.
#[derive(Clone)]
pub struct CbcCipher {
    alg: EncAlg,
    keyed: Arc<dyn BlockCipher>,
}

impl fmt::Debug for CbcCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CbcCipher")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a cipher call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherError {
    /// Key of the wrong length for the cipher.
    BadKeyLength,
    /// IV not one block long.
    BadIvLength,
    /// Data empty or not a multiple of the block size.
    NotBlockAligned,
    /// Not a CBC cipher (an AEAD, or one no provider builds).
    NotCbc(EncAlg),
    /// The provider refused the key or failed.
    Provider(CryptoError),
}

impl fmt::Display for CipherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CipherError::BadKeyLength => f.write_str("wrong key length"),
            CipherError::BadIvLength => f.write_str("wrong IV length"),
            CipherError::NotBlockAligned => f.write_str("data is not a whole number of blocks"),
            CipherError::NotCbc(a) => write!(f, "{a} is not a CBC cipher"),
            CipherError::Provider(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CipherError {}

impl CbcCipher {
    /// Keys `alg` (a CBC cipher: 3DES or AES-CBC) with `key` ([`EncAlg::key_len`] bytes)
    /// through `provider`.
    pub fn new(
        provider: &dyn CryptoProvider,
        alg: EncAlg,
        key: &[u8],
    ) -> Result<CbcCipher, CipherError> {
        if alg.is_aead() || alg.block_size() < 8 {
            return Err(CipherError::NotCbc(alg));
        }
        if key.len() != alg.key_len() {
            return Err(CipherError::BadKeyLength);
        }
        let keyed = provider.block_cipher(alg, key).map_err(|e| match e {
            CryptoError::BadKeyLength { .. } => CipherError::BadKeyLength,
            e => CipherError::Provider(e),
        })?;
        Ok(CbcCipher {
            alg,
            keyed: Arc::from(keyed),
        })
    }

    /// The algorithm.
    pub fn alg(&self) -> EncAlg {
        self.alg
    }

    /// Block (and IV) size in bytes.
    pub fn block_size(&self) -> usize {
        self.keyed.block_size()
    }

    fn check(&self, iv: &[u8], data: &[u8]) -> Result<(), CipherError> {
        if iv.len() != self.keyed.iv_len() {
            return Err(CipherError::BadIvLength);
        }
        if data.is_empty() || !data.len().is_multiple_of(self.block_size()) {
            return Err(CipherError::NotBlockAligned);
        }
        Ok(())
    }

    /// Encrypts `data` in place with CBC; returns the last ciphertext block (the next IV).
    pub fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<Vec<u8>, CipherError> {
        self.check(iv, data)?;
        self.keyed
            .encrypt(iv, data)
            .map_err(CipherError::Provider)?;
        Ok(data[data.len() - self.block_size()..].to_vec())
    }

    /// Decrypts `data` in place with CBC; returns the last ciphertext block (the next IV).
    pub fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<Vec<u8>, CipherError> {
        self.check(iv, data)?;
        let next_iv = data[data.len() - self.block_size()..].to_vec();
        self.keyed
            .decrypt(iv, data)
            .map_err(CipherError::Provider)?;
        Ok(next_iv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{default_provider, RustCryptoProvider};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn aes128_cbc_sp800_38a() {
        // NIST SP 800-38A F.2.1, first two blocks, through both providers.
        let key = h("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = h("000102030405060708090a0b0c0d0e0f");
        for p in [
            default_provider(),
            &RustCryptoProvider as &dyn CryptoProvider,
        ] {
            let c = CbcCipher::new(p, EncAlg::AesCbc128, &key).unwrap();
            let mut data = h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
            let next = c.encrypt(&iv, &mut data).unwrap();
            assert_eq!(
                data,
                h("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")
            );
            assert_eq!(next, h("5086cb9b507219ee95db113a917678b2"));
            let back = c.decrypt(&iv, &mut data).unwrap();
            assert_eq!(back, next);
            assert_eq!(
                data,
                h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
            );
        }
    }

    #[test]
    fn aes256_cbc_sp800_38a() {
        // NIST SP 800-38A F.2.5, first block.
        let key = h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let iv = h("000102030405060708090a0b0c0d0e0f");
        let mut data = h("6bc1bee22e409f96e93d7e117393172a");
        let c = CbcCipher::new(default_provider(), EncAlg::AesCbc256, &key).unwrap();
        c.encrypt(&iv, &mut data).unwrap();
        assert_eq!(data, h("f58c4c04d6e5f1ba779eabfb5f7bfbd6"));
    }

    #[test]
    fn round_trips_and_errors() {
        for alg in [
            EncAlg::TripleDesCbc,
            EncAlg::AesCbc128,
            EncAlg::AesCbc192,
            EncAlg::AesCbc256,
        ] {
            let key: Vec<u8> = (0..alg.key_len() as u8)
                .map(|b| b.wrapping_mul(37))
                .collect();
            let c = CbcCipher::new(default_provider(), alg, &key).unwrap();
            let bs = c.block_size();
            assert_eq!(bs, alg.block_size());
            let iv = vec![7u8; bs];
            let plain: Vec<u8> = (0..(3 * bs) as u8).collect();
            let mut data = plain.clone();
            let n1 = c.encrypt(&iv, &mut data).unwrap();
            assert_ne!(data, plain);
            let n2 = c.decrypt(&iv, &mut data).unwrap();
            assert_eq!(n1, n2);
            assert_eq!(data, plain);
            assert_eq!(
                CbcCipher::new(default_provider(), alg, &key[1..]).unwrap_err(),
                CipherError::BadKeyLength
            );
            assert_eq!(
                c.encrypt(&iv[1..], &mut data),
                Err(CipherError::BadIvLength)
            );
            assert_eq!(
                c.decrypt(&iv, &mut data[1..]),
                Err(CipherError::NotBlockAligned)
            );
            assert_eq!(c.encrypt(&iv, &mut []), Err(CipherError::NotBlockAligned));
        }
        assert_eq!(
            CbcCipher::new(default_provider(), EncAlg::AesGcm16_128, &[0; 20]).unwrap_err(),
            CipherError::NotCbc(EncAlg::AesGcm16_128)
        );
    }
}
