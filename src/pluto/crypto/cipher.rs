//! CBC block ciphers for ISAKMP message encryption (3DES-CBC, AES-CBC 128/192/256).
//!
//! The IV goes in explicitly and the IV for the next message (the last ciphertext block)
//! comes out; IKEv1's IV chaining rules live in the IKEv1 layer. Data must already be padded
//! to the block size.

use core::fmt;

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use des::TdesEde3;

/// A CBC cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// 3DES-EDE-CBC, 24-byte key, 8-byte blocks.
    TripleDesCbc,
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-192-CBC.
    Aes192Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
}

/// Why a cipher call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherError {
    /// Key of the wrong length for the cipher.
    BadKeyLength,
    /// IV not one block long.
    BadIvLength,
    /// Data empty or not a multiple of the block size.
    NotBlockAligned,
}

impl fmt::Display for CipherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CipherError::BadKeyLength => "wrong key length",
            CipherError::BadIvLength => "wrong IV length",
            CipherError::NotBlockAligned => "data is not a whole number of blocks",
        })
    }
}

impl std::error::Error for CipherError {}

fn run_encrypt<C: BlockEncryptMut + KeyIvInit>(
    key: &[u8],
    iv: &[u8],
    data: &mut [u8],
) -> Result<(), CipherError> {
    let enc = C::new_from_slices(key, iv).map_err(|_| CipherError::BadKeyLength)?;
    let len = data.len();
    enc.encrypt_padded_mut::<NoPadding>(data, len)
        .map(|_| ())
        .map_err(|_| CipherError::NotBlockAligned)
}

fn run_decrypt<C: BlockDecryptMut + KeyIvInit>(
    key: &[u8],
    iv: &[u8],
    data: &mut [u8],
) -> Result<(), CipherError> {
    let dec = C::new_from_slices(key, iv).map_err(|_| CipherError::BadKeyLength)?;
    dec.decrypt_padded_mut::<NoPadding>(data)
        .map(|_| ())
        .map_err(|_| CipherError::NotBlockAligned)
}

impl Cipher {
    /// The cipher for an IKEv1 encryption algorithm attribute value and optional key length
    /// attribute (bits): 3DES (5) takes none or 192; AES (7) takes 128/192/256, and 128 when
    /// absent (as strongSwan does).
    pub fn from_oakley(enc_alg: u16, key_bits: Option<u16>) -> Option<Cipher> {
        match (enc_alg, key_bits) {
            (5, None | Some(192)) => Some(Cipher::TripleDesCbc),
            (7, None | Some(128)) => Some(Cipher::Aes128Cbc),
            (7, Some(192)) => Some(Cipher::Aes192Cbc),
            (7, Some(256)) => Some(Cipher::Aes256Cbc),
            _ => None,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Cipher::TripleDesCbc | Cipher::Aes192Cbc => 24,
            Cipher::Aes128Cbc => 16,
            Cipher::Aes256Cbc => 32,
        }
    }

    /// Block (and IV) size in bytes.
    pub fn block_size(self) -> usize {
        match self {
            Cipher::TripleDesCbc => 8,
            _ => 16,
        }
    }

    /// Pluto's name in algorithm strings (`3DES_CBC_192`, `AES_CBC_128`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Cipher::TripleDesCbc => "3DES_CBC_192",
            Cipher::Aes128Cbc => "AES_CBC_128",
            Cipher::Aes192Cbc => "AES_CBC_192",
            Cipher::Aes256Cbc => "AES_CBC_256",
        }
    }

    fn check(self, key: &[u8], iv: &[u8], data: &[u8]) -> Result<(), CipherError> {
        if key.len() != self.key_len() {
            return Err(CipherError::BadKeyLength);
        }
        if iv.len() != self.block_size() {
            return Err(CipherError::BadIvLength);
        }
        if data.is_empty() || !data.len().is_multiple_of(self.block_size()) {
            return Err(CipherError::NotBlockAligned);
        }
        Ok(())
    }

    /// Encrypts `data` in place with CBC; returns the last ciphertext block (the next IV).
    pub fn encrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<Vec<u8>, CipherError> {
        self.check(key, iv, data)?;
        match self {
            Cipher::TripleDesCbc => run_encrypt::<cbc::Encryptor<TdesEde3>>(key, iv, data)?,
            Cipher::Aes128Cbc => run_encrypt::<cbc::Encryptor<Aes128>>(key, iv, data)?,
            Cipher::Aes192Cbc => run_encrypt::<cbc::Encryptor<Aes192>>(key, iv, data)?,
            Cipher::Aes256Cbc => run_encrypt::<cbc::Encryptor<Aes256>>(key, iv, data)?,
        }
        Ok(data[data.len() - self.block_size()..].to_vec())
    }

    /// Decrypts `data` in place with CBC; returns the last ciphertext block (the next IV).
    pub fn decrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<Vec<u8>, CipherError> {
        self.check(key, iv, data)?;
        let next_iv = data[data.len() - self.block_size()..].to_vec();
        match self {
            Cipher::TripleDesCbc => run_decrypt::<cbc::Decryptor<TdesEde3>>(key, iv, data)?,
            Cipher::Aes128Cbc => run_decrypt::<cbc::Decryptor<Aes128>>(key, iv, data)?,
            Cipher::Aes192Cbc => run_decrypt::<cbc::Decryptor<Aes192>>(key, iv, data)?,
            Cipher::Aes256Cbc => run_decrypt::<cbc::Decryptor<Aes256>>(key, iv, data)?,
        }
        Ok(next_iv)
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn aes128_cbc_sp800_38a() {
        // NIST SP 800-38A F.2.1, first two blocks.
        let key = h("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = h("000102030405060708090a0b0c0d0e0f");
        let mut data = h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let next = Cipher::Aes128Cbc.encrypt(&key, &iv, &mut data).unwrap();
        assert_eq!(
            data,
            h("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")
        );
        assert_eq!(next, h("5086cb9b507219ee95db113a917678b2"));
        let back = Cipher::Aes128Cbc.decrypt(&key, &iv, &mut data).unwrap();
        assert_eq!(back, next);
        assert_eq!(
            data,
            h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
        );
    }

    #[test]
    fn aes256_cbc_sp800_38a() {
        // NIST SP 800-38A F.2.5, first block.
        let key = h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let iv = h("000102030405060708090a0b0c0d0e0f");
        let mut data = h("6bc1bee22e409f96e93d7e117393172a");
        Cipher::Aes256Cbc.encrypt(&key, &iv, &mut data).unwrap();
        assert_eq!(data, h("f58c4c04d6e5f1ba779eabfb5f7bfbd6"));
    }

    #[test]
    fn round_trips_and_errors() {
        for c in [
            Cipher::TripleDesCbc,
            Cipher::Aes128Cbc,
            Cipher::Aes192Cbc,
            Cipher::Aes256Cbc,
        ] {
            let key: Vec<u8> = (0..c.key_len() as u8).collect();
            let iv = vec![7u8; c.block_size()];
            let plain: Vec<u8> = (0..(3 * c.block_size()) as u8).collect();
            let mut data = plain.clone();
            let n1 = c.encrypt(&key, &iv, &mut data).unwrap();
            assert_ne!(data, plain);
            let n2 = c.decrypt(&key, &iv, &mut data).unwrap();
            assert_eq!(n1, n2);
            assert_eq!(data, plain);
            assert_eq!(
                c.encrypt(&key[1..], &iv, &mut data),
                Err(CipherError::BadKeyLength)
            );
            assert_eq!(
                c.encrypt(&key, &iv[1..], &mut data),
                Err(CipherError::BadIvLength)
            );
            assert_eq!(
                c.decrypt(&key, &iv, &mut data[1..]),
                Err(CipherError::NotBlockAligned)
            );
            assert_eq!(
                c.encrypt(&key, &iv, &mut []),
                Err(CipherError::NotBlockAligned)
            );
        }
        assert_eq!(Cipher::from_oakley(5, None), Some(Cipher::TripleDesCbc));
        assert_eq!(Cipher::from_oakley(7, Some(256)), Some(Cipher::Aes256Cbc));
        assert_eq!(Cipher::from_oakley(7, Some(100)), None);
        assert_eq!(Cipher::from_oakley(1, None), None);
    }
}
