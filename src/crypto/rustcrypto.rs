//! The default [`CryptoProvider`]: RustCrypto's `aes`, `des`, `cbc`, `aes-gcm`,
//! `chacha20poly1305`, `hmac`, `sha1`, `sha2` and `md-5` crates.
//!
//! Performance notes (per-packet hot path):
//! * CBC: the expanded key schedule lives in the object; each call clones it (a memcpy of a few
//!   hundred bytes, no allocation) into a `cbc::Encryptor`/`Decryptor`, which lets the `aes`
//!   crate pipeline several blocks per call when decrypting (AES-NI when the CPU has it).
//! * GCM: `aes_gcm::AesGcm` is built once (AES key schedule + GHASH key) and used by `&self`;
//!   ChaCha20-Poly1305 (no per-key precomputation) the same way.
//! * HMAC: the inner/outer padded states are computed once; each packet clones the keyed state.
//!
//! Nothing here allocates after construction.

use aes::cipher::{self, inout::InOutBuf, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use aes_gcm::aead::AeadInPlace;
use hmac::{Hmac, Mac};

use super::{
    aead_nonce, check_aead_key, check_key_len, refuse_insecure, Aead, AuthAlg, BlockCipher,
    CryptoError, CryptoProvider, EncAlg, Integrity, AEAD_IV_LEN, GCM_SALT_LEN, GCM_TAG_LEN,
};

/// The RustCrypto-backed provider; a zero-sized value, also reachable through
/// [`super::default_provider`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RustCryptoProvider;

impl CryptoProvider for RustCryptoProvider {
    fn name(&self) -> &'static str {
        "rustcrypto"
    }

    fn block_cipher(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn BlockCipher>, CryptoError> {
        refuse_insecure(alg)?;
        if alg.is_aead() {
            return Err(CryptoError::Unsupported(
                "AES-GCM is an AEAD: build it with CryptoProvider::aead",
            ));
        }
        check_key_len(alg.klips_name(), key, alg.key_len(), false)?;
        match alg {
            EncAlg::TripleDesCbc => {
                check_3des_key(key)?;
                Ok(Box::new(CbcCipher::<des::TdesEde3>::new(key)?))
            }
            EncAlg::AesCbc128 => Ok(Box::new(CbcCipher::<aes::Aes128>::new(key)?)),
            EncAlg::AesCbc192 => Ok(Box::new(CbcCipher::<aes::Aes192>::new(key)?)),
            EncAlg::AesCbc256 => Ok(Box::new(CbcCipher::<aes::Aes256>::new(key)?)),
            // Unreachable: refused or AEAD above. Kept as an error rather than a panic.
            _ => Err(CryptoError::Unsupported("not a CBC cipher")),
        }
    }

    fn aead(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
        check_aead_key(alg, key)?;
        match alg {
            EncAlg::AesGcm16_128 => Ok(Box::new(GcmAead::<aes_gcm::Aes128Gcm>::new(key)?)),
            EncAlg::AesGcm16_256 => Ok(Box::new(GcmAead::<aes_gcm::Aes256Gcm>::new(key)?)),
            EncAlg::ChaCha20Poly1305 => Ok(Box::new(
                GcmAead::<chacha20poly1305::ChaCha20Poly1305>::new(key)?,
            )),
            _ => Err(CryptoError::Unsupported("not an AEAD")),
        }
    }

    fn integrity(&self, alg: AuthAlg, key: &[u8]) -> Result<Box<dyn Integrity>, CryptoError> {
        check_key_len(alg.klips_name(), key, alg.key_len(), false)?;
        hmac_integrity(alg, key, alg.icv_len())
    }
}

/// Refuses 3DES keys that collapse to single DES (K1 == K2 or K2 == K3, parity bits ignored).
fn check_3des_key(key: &[u8]) -> Result<(), CryptoError> {
    let same = |a: &[u8], b: &[u8]| a.iter().zip(b).all(|(x, y)| (x ^ y) & 0xfe == 0);
    if key.len() == 24 && (same(&key[0..8], &key[8..16]) || same(&key[8..16], &key[16..24])) {
        return Err(CryptoError::Refused(
            "3DES key with K1 = K2 or K2 = K3 degenerates to single DES and is refused",
        ));
    }
    Ok(())
}

/// Builds a truncated HMAC with an arbitrary ICV length (1..=full output), without checking the
/// key length. The provider checks key lengths before calling this; tests use it directly for
/// the published vectors whose keys are not the IPsec key sizes.
pub(crate) fn hmac_integrity(
    alg: AuthAlg,
    key: &[u8],
    icv_len: usize,
) -> Result<Box<dyn Integrity>, CryptoError> {
    if icv_len == 0 || icv_len > alg.full_mac_len() {
        return Err(CryptoError::BadLength);
    }
    Ok(match alg {
        AuthAlg::HmacMd5_96 => Box::new(HmacIntegrity::<Hmac<md5::Md5>>::new(key, icv_len)?),
        AuthAlg::HmacSha1_96 => Box::new(HmacIntegrity::<Hmac<sha1::Sha1>>::new(key, icv_len)?),
        AuthAlg::HmacSha2_256_128 => {
            Box::new(HmacIntegrity::<Hmac<sha2::Sha256>>::new(key, icv_len)?)
        }
        AuthAlg::HmacSha2_384_192 => {
            Box::new(HmacIntegrity::<Hmac<sha2::Sha384>>::new(key, icv_len)?)
        }
        AuthAlg::HmacSha2_512_256 => {
            Box::new(HmacIntegrity::<Hmac<sha2::Sha512>>::new(key, icv_len)?)
        }
    })
}

/// A block cipher with its key schedule, used in CBC mode.
struct CbcCipher<C> {
    cipher: C,
}

impl<C: KeyInit> CbcCipher<C> {
    fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let cipher = C::new_from_slice(key).map_err(|_| CryptoError::BadLength)?;
        Ok(CbcCipher { cipher })
    }
}

impl<C> CbcCipher<C>
where
    C: cipher::BlockCipher + cipher::BlockSizeUser,
{
    fn check(&self, iv: &[u8], buf: &[u8]) -> Result<(), CryptoError> {
        let bs = C::block_size();
        if iv.len() != bs {
            return Err(CryptoError::BadIvLength {
                expected: bs,
                got: iv.len(),
            });
        }
        if !buf.len().is_multiple_of(bs) {
            return Err(CryptoError::BadLength);
        }
        Ok(())
    }
}

impl<C> BlockCipher for CbcCipher<C>
where
    C: cipher::BlockCipher
        + cipher::BlockEncrypt
        + cipher::BlockDecrypt
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn block_size(&self) -> usize {
        C::block_size()
    }

    fn iv_len(&self) -> usize {
        C::block_size()
    }

    fn encrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        self.check(iv, buf)?;
        let mut enc =
            cbc::Encryptor::<C>::inner_iv_slice_init(self.cipher.clone(), iv).map_err(|_| {
                CryptoError::BadIvLength {
                    expected: C::block_size(),
                    got: iv.len(),
                }
            })?;
        let (blocks, tail) = InOutBuf::from(buf).into_chunks();
        if !tail.is_empty() {
            return Err(CryptoError::BadLength);
        }
        enc.encrypt_blocks_inout_mut(blocks);
        Ok(())
    }

    fn decrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        self.check(iv, buf)?;
        let mut dec =
            cbc::Decryptor::<C>::inner_iv_slice_init(self.cipher.clone(), iv).map_err(|_| {
                CryptoError::BadIvLength {
                    expected: C::block_size(),
                    got: iv.len(),
                }
            })?;
        let (blocks, tail) = InOutBuf::from(buf).into_chunks();
        if !tail.is_empty() {
            return Err(CryptoError::BadLength);
        }
        dec.decrypt_blocks_inout_mut(blocks);
        Ok(())
    }
}

/// AES-GCM keyed once, with the RFC 4106 salt; also ChaCha20-Poly1305 with the RFC 7634 salt
/// (same layout: 4-byte salt, 8-byte IV, 12-byte nonce `salt || iv`, 16-byte tag).
struct GcmAead<A> {
    gcm: A,
    salt: [u8; GCM_SALT_LEN],
}

impl<A: KeyInit> GcmAead<A> {
    fn new(keymat: &[u8]) -> Result<Self, CryptoError> {
        if keymat.len() < GCM_SALT_LEN {
            return Err(CryptoError::BadLength);
        }
        let (key, salt_bytes) = keymat.split_at(keymat.len() - GCM_SALT_LEN);
        let gcm = A::new_from_slice(key).map_err(|_| CryptoError::BadLength)?;
        let mut salt = [0u8; GCM_SALT_LEN];
        salt.copy_from_slice(salt_bytes);
        Ok(GcmAead { gcm, salt })
    }
}

impl<A> GcmAead<A> {
    fn nonce(&self, iv: &[u8]) -> Result<[u8; 12], CryptoError> {
        aead_nonce(&self.salt, iv)
    }
}

impl<A> Aead for GcmAead<A>
where
    A: AeadInPlace<NonceSize = aes_gcm::aead::consts::U12, TagSize = aes_gcm::aead::consts::U16>
        + Send
        + Sync,
{
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
            .gcm
            .encrypt_in_place_detached(&nonce.into(), aad, buf)
            .map_err(|_| CryptoError::BadLength)?;
        tag.copy_from_slice(&t);
        Ok(())
    }

    fn open(&self, iv: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        let nonce = self.nonce(iv)?;
        if tag.len() != GCM_TAG_LEN {
            return Err(CryptoError::BadLength);
        }
        let mut t = aes_gcm::Tag::<aes_gcm::aead::consts::U16>::default();
        t.copy_from_slice(tag);
        self.gcm
            .decrypt_in_place_detached(&nonce.into(), aad, buf, &t)
            .map_err(|_| CryptoError::AuthFailed)
    }
}

/// An HMAC keyed once; cloned per packet and truncated to `icv_len`.
struct HmacIntegrity<M> {
    mac: M,
    icv_len: usize,
}

impl<M: Mac + KeyInit> HmacIntegrity<M> {
    fn new(key: &[u8], icv_len: usize) -> Result<Self, CryptoError> {
        let mac = <M as Mac>::new_from_slice(key).map_err(|_| CryptoError::BadLength)?;
        Ok(HmacIntegrity { mac, icv_len })
    }
}

impl<M> Integrity for HmacIntegrity<M>
where
    M: Mac + Clone + Send + Sync,
{
    fn icv_len(&self) -> usize {
        self.icv_len
    }

    fn compute(&self, parts: &[&[u8]], icv: &mut [u8]) {
        let mut m = self.mac.clone();
        for p in parts {
            m.update(p);
        }
        let full = m.finalize().into_bytes();
        let n = icv.len().min(self.icv_len).min(full.len());
        icv[..n].copy_from_slice(&full[..n]);
    }

    fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> bool {
        if icv.len() != self.icv_len {
            return false;
        }
        let mut m = self.mac.clone();
        for p in parts {
            m.update(p);
        }
        // Constant-time comparison of the leftmost icv.len() bytes (subtle, inside `digest`).
        m.verify_truncated_left(icv).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cipher crates wipe their expanded keys on drop: `ZeroizeOnDrop` exists only with
    /// their `zeroize` feature (Cargo.toml), so this stops compiling if it is turned off.
    #[test]
    fn cipher_key_schedules_are_wiped_on_drop() {
        fn wiped<T: zeroize::ZeroizeOnDrop>() {}
        wiped::<aes::Aes128>();
        wiped::<aes::Aes192>();
        wiped::<aes::Aes256>();
        wiped::<des::TdesEde3>();
        wiped::<cbc::Encryptor<aes::Aes256>>();
        wiped::<cbc::Decryptor<des::TdesEde3>>();
        wiped::<chacha20poly1305::ChaCha20Poly1305>();
    }

    /// These vectors test the pure-Rust provider itself (the default one, OpenSSL, is checked
    /// against it in `crypto::openssl`).
    fn rc() -> &'static dyn CryptoProvider {
        &RustCryptoProvider
    }

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    // ---- RFC 3602 section 4, cases 1-4 (AES-128-CBC) -------------------------------------

    #[test]
    fn rfc3602_aes_cbc_cases_1_to_4() {
        let cases: [(&str, &str, Vec<u8>, &str); 4] = [
            (
                "06a9214036b8a15b512e03d534120006",
                "3dafba429d9eb430b422da802c9fac41",
                b"Single block msg".to_vec(),
                "e353779c1079aeb82708942dbe77181a",
            ),
            (
                "c286696d887c9aa0611bbb3e2025a45a",
                "562e17996d093d28ddb3ba695a2e6f58",
                (0u8..0x20).collect(),
                "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
            ),
            (
                "6c3ea0477630ce21a2ce334aa746c2cd",
                "c782dc4c098c66cbd9cd27d825682c81",
                b"This is a 48-byte message (exactly 3 AES blocks)".to_vec(),
                "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5\
                 021c19216bad525c8579695d83ba2684",
            ),
            (
                "56e47a38c5598974bc46903dba290349",
                "8ce82eefbea0da3c44699ed7db51b7d9",
                (0xa0u8..0xe0).collect(),
                "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e\
                 35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
            ),
        ];
        let p = rc();
        for (i, (key, iv, pt, ct)) in cases.iter().enumerate() {
            let c = p.block_cipher(EncAlg::AesCbc128, &h(key)).unwrap();
            assert_eq!(c.block_size(), 16);
            assert_eq!(c.iv_len(), 16);
            let mut buf = pt.clone();
            c.encrypt(&h(iv), &mut buf).unwrap();
            assert_eq!(hex::encode(&buf), ct.replace(' ', ""), "case {}", i + 1);
            c.decrypt(&h(iv), &mut buf).unwrap();
            assert_eq!(&buf, pt, "case {} decrypt", i + 1);
        }
    }

    // ---- NIST SP 800-67 Rev.1 appendix B and SP 800-20 (3DES) ------------------------------

    #[test]
    fn sp800_67_tdes_example() {
        // Keys K1 K2 K3, "The qufck brown fox jump" (sic) in ECB; ECB of each block is CBC with
        // a zero IV over that block alone.
        let key = h("0123456789abcdef23456789abcdef01456789abcdef0123");
        let pt = b"The qufck brown fox jump";
        let ct = h("a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900");
        let c = rc().block_cipher(EncAlg::TripleDesCbc, &key).unwrap();
        assert_eq!(c.block_size(), 8);
        for i in 0..3 {
            let mut block = pt[i * 8..i * 8 + 8].to_vec();
            c.encrypt(&[0u8; 8], &mut block).unwrap();
            assert_eq!(block, &ct[i * 8..i * 8 + 8], "block {i}");
            c.decrypt(&[0u8; 8], &mut block).unwrap();
            assert_eq!(block, &pt[i * 8..i * 8 + 8]);
        }
        // CBC chaining over the whole message: C[i] = E(P[i] ^ C[i-1]), C[-1] = IV.
        let iv = h("0102030405060708");
        let mut buf = pt.to_vec();
        c.encrypt(&iv, &mut buf).unwrap();
        let mut prev = iv.clone();
        for i in 0..3 {
            let mut x: Vec<u8> = pt[i * 8..i * 8 + 8]
                .iter()
                .zip(&prev)
                .map(|(a, b)| a ^ b)
                .collect();
            c.encrypt(&[0u8; 8], &mut x).unwrap();
            assert_eq!(x, &buf[i * 8..i * 8 + 8], "chained block {i}");
            prev = x;
        }
        c.decrypt(&iv, &mut buf).unwrap();
        assert_eq!(&buf, pt);
    }

    #[test]
    fn sp800_20_tdes_variable_plaintext_kat() {
        // SP 800-20 Table A.1 (TMOVS variable plaintext known answer test), keys
        // K1 = K2 = K3 = 0101010101010101. Such a key is refused by the provider (it is single
        // DES), so the test builds the cipher object directly.
        let c = CbcCipher::<des::TdesEde3>::new(&[0x01; 24]).unwrap();
        for (pt, ct) in [
            ("8000000000000000", "95f8a5e5dd31d900"),
            ("4000000000000000", "dd7f121ca5015619"),
            ("2000000000000000", "2e8653104f3834ea"),
        ] {
            let mut b = h(pt);
            c.encrypt(&[0u8; 8], &mut b).unwrap();
            assert_eq!(hex::encode(&b), ct);
            c.decrypt(&[0u8; 8], &mut b).unwrap();
            assert_eq!(hex::encode(&b), pt);
        }
        let err = rc()
            .block_cipher(EncAlg::TripleDesCbc, &[0x01; 24])
            .err()
            .unwrap();
        assert!(matches!(err, CryptoError::Refused(_)));
    }

    // ---- McGrew-Viega GCM spec test cases 2, 3, 4 (AES-128) and 14, 15, 16 (AES-256) --------

    struct GcmCase {
        name: &'static str,
        key: &'static str,
        iv: &'static str,
        pt: &'static str,
        aad: &'static str,
        ct: &'static str,
        tag: &'static str,
    }

    const GCM_P64: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                           1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    const GCM_P60: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                           1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    const GCM_A: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

    fn gcm_cases() -> Vec<GcmCase> {
        vec![
            GcmCase {
                name: "TC2",
                key: "00000000000000000000000000000000",
                iv: "000000000000000000000000",
                pt: "00000000000000000000000000000000",
                aad: "",
                ct: "0388dace60b6a392f328c2b971b2fe78",
                tag: "ab6e47d42cec13bdf53a67b21257bddf",
            },
            GcmCase {
                name: "TC3",
                key: "feffe9928665731c6d6a8f9467308308",
                iv: "cafebabefacedbaddecaf888",
                pt: GCM_P64,
                aad: "",
                ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                     21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
                tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
            },
            GcmCase {
                name: "TC4",
                key: "feffe9928665731c6d6a8f9467308308",
                iv: "cafebabefacedbaddecaf888",
                pt: GCM_P60,
                aad: GCM_A,
                ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                     21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
                tag: "5bc94fbc3221a5db94fae95ae7121a47",
            },
            GcmCase {
                name: "TC14",
                key: "0000000000000000000000000000000000000000000000000000000000000000",
                iv: "000000000000000000000000",
                pt: "00000000000000000000000000000000",
                aad: "",
                ct: "cea7403d4d606b6e074ec5d3baf39d18",
                tag: "d0d1c8a799996bf0265b98b5d48ab919",
            },
            GcmCase {
                name: "TC15",
                key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                iv: "cafebabefacedbaddecaf888",
                pt: GCM_P64,
                aad: "",
                ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                     8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
                tag: "b094dac5d93471bdec1a502270e3cc6c",
            },
            GcmCase {
                name: "TC16",
                key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                iv: "cafebabefacedbaddecaf888",
                pt: GCM_P60,
                aad: GCM_A,
                ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                     8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                tag: "76fc6ece0f4e1768cddf8853bb2d551b",
            },
        ]
    }

    #[test]
    fn gcm_spec_vectors_via_esp_salt_split() {
        // RFC 4106: keying material = key || salt, nonce = salt || 8-byte IV. A 96-bit GCM IV
        // therefore maps to salt = IV[0..4], ESP IV = IV[4..12].
        let p = rc();
        for c in gcm_cases() {
            let iv12 = h(c.iv);
            let mut keymat = h(c.key);
            keymat.extend_from_slice(&iv12[..4]);
            let alg = if keymat.len() == 20 {
                EncAlg::AesGcm16_128
            } else {
                EncAlg::AesGcm16_256
            };
            let a = p.aead(alg, &keymat).unwrap();
            assert_eq!(a.iv_len(), 8);
            assert_eq!(a.tag_len(), 16);
            let pt = h(c.pt);
            let mut buf = pt.clone();
            let mut tag = [0u8; 16];
            a.seal(&iv12[4..], &h(c.aad), &mut buf, &mut tag).unwrap();
            assert_eq!(hex::encode(&buf), c.ct.replace(' ', ""), "{} ct", c.name);
            assert_eq!(hex::encode(tag), c.tag, "{} tag", c.name);
            a.open(&iv12[4..], &h(c.aad), &mut buf, &tag).unwrap();
            assert_eq!(buf, pt, "{} open", c.name);

            // Tampering with the tag, the ciphertext or the AAD fails and leaves buf intact.
            let mut sealed = pt.clone();
            a.seal(&iv12[4..], &h(c.aad), &mut sealed, &mut tag)
                .unwrap();
            let mut bad_tag = tag;
            bad_tag[15] ^= 1;
            let mut b = sealed.clone();
            assert_eq!(
                a.open(&iv12[4..], &h(c.aad), &mut b, &bad_tag),
                Err(CryptoError::AuthFailed)
            );
            assert_eq!(b, sealed);
            let mut b = sealed.clone();
            b[0] ^= 0x80;
            assert_eq!(
                a.open(&iv12[4..], &h(c.aad), &mut b, &tag),
                Err(CryptoError::AuthFailed)
            );
            let mut aad = h(c.aad);
            aad.push(0);
            let mut b = sealed.clone();
            assert_eq!(
                a.open(&iv12[4..], &aad, &mut b, &tag),
                Err(CryptoError::AuthFailed)
            );
        }
    }

    // ---- RFC 7634 appendix A (ChaCha20-Poly1305 for ESP) --------------------------------------

    const RFC7634_KEYMAT: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f\
                                  a0a1a2a3";
    const RFC7634_PLAIN: &str = "45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec10\
                                 0007362708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223\
                                 2425262728292a2b2c2d2e2f303132333435363701020204";
    const RFC7634_CIPHER: &str = "24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6\
                                  14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3\
                                  cbec163fac469b502773f6fb94e664da9165b82829f641e0";
    const RFC7634_TAG: &str = "76aaa8266b7fb0f7b11b369907e1ad43";

    #[test]
    fn rfc7634_appendix_a_chacha20_poly1305() {
        // KEYMAT = key (32) || salt a0a1a2a3; IV 1011121314151617; AAD = SPI 01020304 ||
        // seq 00000005; the plaintext includes the ESP trailer (pad 01 02, pad length 2, next
        // header 4).
        let a = rc()
            .aead(EncAlg::ChaCha20Poly1305, &h(RFC7634_KEYMAT))
            .unwrap();
        assert_eq!(a.iv_len(), 8);
        assert_eq!(a.tag_len(), 16);
        let iv = h("1011121314151617");
        let aad = h("0102030400000005");
        let mut buf = h(RFC7634_PLAIN);
        let mut tag = [0u8; 16];
        a.seal(&iv, &aad, &mut buf, &mut tag).unwrap();
        assert_eq!(hex::encode(&buf), RFC7634_CIPHER.replace(' ', ""));
        assert_eq!(hex::encode(tag), RFC7634_TAG);
        a.open(&iv, &aad, &mut buf, &tag).unwrap();
        assert_eq!(buf, h(RFC7634_PLAIN));
        // Tampering with tag, ciphertext, AAD or IV fails and leaves the buffer as it was.
        let mut sealed = buf.clone();
        a.seal(&iv, &aad, &mut sealed, &mut tag).unwrap();
        let mut bad_tag = tag;
        bad_tag[0] ^= 1;
        let mut b = sealed.clone();
        assert_eq!(
            a.open(&iv, &aad, &mut b, &bad_tag),
            Err(CryptoError::AuthFailed)
        );
        assert_eq!(b, sealed);
        b[10] ^= 4;
        assert_eq!(
            a.open(&iv, &aad, &mut b, &tag),
            Err(CryptoError::AuthFailed)
        );
        let mut b = sealed.clone();
        assert_eq!(
            a.open(&iv, &aad[..7], &mut b, &tag),
            Err(CryptoError::AuthFailed)
        );
        assert_eq!(
            a.open(&h("1011121314151618"), &aad, &mut b, &tag),
            Err(CryptoError::AuthFailed)
        );
        assert_eq!(b, sealed);
        // The salt is part of the nonce: another salt, another ciphertext.
        let mut keymat = h(RFC7634_KEYMAT);
        keymat[35] ^= 1;
        let other = rc().aead(EncAlg::ChaCha20Poly1305, &keymat).unwrap();
        assert_eq!(
            other.open(&iv, &aad, &mut b, &tag),
            Err(CryptoError::AuthFailed)
        );
        // Key length, IV length and the block-cipher interface are checked.
        let e = rc()
            .aead(EncAlg::ChaCha20Poly1305, &[0u8; 32])
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "CHACHA20_POLY1305 needs 288 bits of keying material (256-bit key + 32-bit salt), got 256 bits"
        );
        assert!(matches!(
            rc().block_cipher(EncAlg::ChaCha20Poly1305, &h(RFC7634_KEYMAT)),
            Err(CryptoError::Unsupported(_))
        ));
        assert!(matches!(
            a.seal(&[0u8; 12], &aad, &mut buf, &mut tag),
            Err(CryptoError::BadIvLength {
                expected: 8,
                got: 12
            })
        ));
    }

    /// The whole RFC 7634 appendix A packet through the ESP transform: encapsulation gives the
    /// published bytes (SPI | seq | IV | ciphertext | tag), and decapsulation gives back the
    /// IPv4 datagram. (Lives here rather than in `xform::esp` to keep this change out of that
    /// file; it exercises the datapath's dispatch of the new algorithm.)
    #[test]
    fn rfc7634_appendix_a_esp_packet() {
        use crate::xform::esp::EspCrypto;
        let keymat = h(RFC7634_KEYMAT);
        for p in [rc(), super::super::default_provider()] {
            let e = EspCrypto::new(p, EncAlg::ChaCha20Poly1305, &keymat, None, &[]).unwrap();
            assert!(e.is_aead());
            assert_eq!((e.iv_len(), e.icv_len(), e.pad_align()), (8, 16, 4));
            let plain = h(RFC7634_PLAIN);
            let datagram = &plain[..plain.len() - 4];
            let mut out = Vec::new();
            e.try_encapsulate(
                0x0102_0304,
                5,
                4,
                datagram,
                &h("1011121314151617"),
                &mut out,
            )
            .unwrap();
            let want = format!(
                "0102030400000005{}{}{}",
                "1011121314151617",
                RFC7634_CIPHER.replace(' ', ""),
                RFC7634_TAG
            );
            assert_eq!(hex::encode(&out), want);
            let (nh, range) = e.open(&mut out).unwrap();
            assert_eq!(nh, 4);
            assert_eq!(&out[range], datagram);
        }
    }

    #[test]
    fn gcm_bad_lengths_do_not_panic() {
        let a = rc().aead(EncAlg::AesGcm16_128, &[7u8; 20]).unwrap();
        let mut buf = [0u8; 5];
        let mut tag = [0u8; 16];
        assert!(matches!(
            a.seal(&[0u8; 12], &[], &mut buf, &mut tag),
            Err(CryptoError::BadIvLength {
                expected: 8,
                got: 12
            })
        ));
        assert_eq!(
            a.seal(&[0u8; 8], &[], &mut buf, &mut tag[..12]),
            Err(CryptoError::BadLength)
        );
        assert_eq!(
            a.open(&[0u8; 8], &[], &mut buf, &tag[..15]),
            Err(CryptoError::BadLength)
        );
    }

    // ---- RFC 2202 (HMAC-MD5, HMAC-SHA-1) ---------------------------------------------------

    /// (key, data, full MAC) for RFC 2202 test cases 1-7.
    fn rfc2202(md5: bool) -> Vec<(Vec<u8>, Vec<u8>, &'static str)> {
        let k1 = if md5 { 16 } else { 20 };
        let macs: [&str; 7] = if md5 {
            [
                "9294727a3638bb1c13f48ef8158bfc9d",
                "750c783e6ab0b503eaa86e310a5db738",
                "56be34521d144c88dbb8c733f0e8b3f6",
                "697eaf0aca3a3aea3a75164746ffaa79",
                "56461ef2342edc00f9bab995690efd4c",
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
                "6f630fad67cda0ee1fb1f562db3aa53e",
            ]
        } else {
            [
                "b617318655057264e28bc0b6fb378c8ef146be00",
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
                "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
                "4c9007f4026250c6bc8414f9bf50c86c2d7235da",
                "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04",
                "aa4ae5e15272d00e95705637ce8a3b55ed402112",
                "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
            ]
        };
        vec![
            (vec![0x0b; k1], b"Hi There".to_vec(), macs[0]),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                macs[1],
            ),
            (vec![0xaa; k1], vec![0xdd; 50], macs[2]),
            ((1u8..=25).collect(), vec![0xcd; 50], macs[3]),
            (vec![0x0c; k1], b"Test With Truncation".to_vec(), macs[4]),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                macs[5],
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"
                    .to_vec(),
                macs[6],
            ),
        ]
    }

    fn check_full_and_truncated(alg: AuthAlg, key: &[u8], data: &[u8], full: &str) {
        let full = h(full);
        // Full MAC through the test-only length override.
        let i = hmac_integrity(alg, key, full.len()).unwrap();
        let mut out = vec![0u8; full.len()];
        i.compute(&[data], &mut out);
        assert_eq!(out, full, "{alg:?} full");
        assert!(i.verify(&[data], &full));
        // Truncated ICV; through the provider when the key has the IPsec key length.
        let t = if key.len() == alg.key_len() {
            rc().integrity(alg, key).unwrap()
        } else {
            hmac_integrity(alg, key, alg.icv_len()).unwrap()
        };
        let n = alg.icv_len();
        assert_eq!(t.icv_len(), n);
        let mut icv = vec![0u8; n];
        // Split the data into parts to exercise the scatter interface.
        let (a, b) = data.split_at(data.len() / 3);
        t.compute(&[a, &[], b], &mut icv);
        assert_eq!(icv, &full[..n], "{alg:?} truncated");
        assert!(t.verify(&[data], &icv));
        let mut bad = icv.clone();
        bad[n - 1] ^= 1;
        assert!(!t.verify(&[data], &bad));
        assert!(!t.verify(&[data], &icv[..n - 1]));
        assert!(!t.verify(&[data], &full));
    }

    #[test]
    fn rfc2202_hmac_md5() {
        for (key, data, mac) in rfc2202(true) {
            check_full_and_truncated(AuthAlg::HmacMd5_96, &key, &data, mac);
        }
        // RFC 2202 case 5 states HMAC-MD5-96 explicitly.
        let i = rc().integrity(AuthAlg::HmacMd5_96, &[0x0c; 16]).unwrap();
        let mut icv = [0u8; 12];
        i.compute(&[b"Test With Truncation"], &mut icv);
        assert_eq!(hex::encode(icv), "56461ef2342edc00f9bab995");
    }

    #[test]
    fn rfc2202_hmac_sha1() {
        for (key, data, mac) in rfc2202(false) {
            check_full_and_truncated(AuthAlg::HmacSha1_96, &key, &data, mac);
        }
        // RFC 2202 case 5 states HMAC-SHA1-96 explicitly.
        let i = rc().integrity(AuthAlg::HmacSha1_96, &[0x0c; 20]).unwrap();
        let mut icv = [0u8; 12];
        i.compute(&[b"Test With Truncation"], &mut icv);
        assert_eq!(hex::encode(icv), "4c1a03424b55e07fe7f27be1");
    }

    // ---- RFC 4231 (HMAC-SHA-256/384/512) ----------------------------------------------------

    #[test]
    fn rfc4231_hmac_sha2() {
        let big = b"This is a test using a larger than block-size key and a larger than \
block-size data. The key needs to be hashed before being used by the HMAC algorithm.";
        // (key, data, [sha256, sha384, sha512]) for cases 1, 2, 3, 4, 6, 7.
        let cases: Vec<(Vec<u8>, Vec<u8>, [&str; 3])> = vec![
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                [
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                     faea9ea9076ede7f4af152e8b2fa9cb6",
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                     daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                ],
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                [
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                     8e2240ca5e69e2c78b3239ecfab21649",
                    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                     9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
                ],
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                [
                    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
                    "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b\
                     2a5ab39dc13814b94e3ab6e101a34f27",
                    "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39\
                     bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
                ],
            ),
            (
                (1u8..=0x19).collect(),
                vec![0xcd; 50],
                [
                    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                    "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e\
                     6801dd23c4a7d679ccf8a386c674cffb",
                    "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db\
                     a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
                ],
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                [
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
                     0c2ef6ab4030fe8296248df163f44952",
                    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                     6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
                ],
            ),
            (
                vec![0xaa; 131],
                big.to_vec(),
                [
                    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
                    "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5\
                     a678cc31e799176d3860e6110c46523e",
                    "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944\
                     b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
                ],
            ),
        ];
        let algs = [
            AuthAlg::HmacSha2_256_128,
            AuthAlg::HmacSha2_384_192,
            AuthAlg::HmacSha2_512_256,
        ];
        for (key, data, macs) in &cases {
            for (alg, mac) in algs.iter().zip(macs) {
                check_full_and_truncated(*alg, key, data, &mac.replace(' ', ""));
            }
        }
    }

    #[test]
    fn rfc4231_case5_truncation_to_128_bits() {
        let key = [0x0c; 20];
        let data = b"Test With Truncation";
        for (alg, want) in [
            (
                AuthAlg::HmacSha2_256_128,
                "a3b6167473100ee06e0c796c2955552b",
            ),
            (
                AuthAlg::HmacSha2_384_192,
                "3abf34c3503b2a23a46efc619baef897",
            ),
            (
                AuthAlg::HmacSha2_512_256,
                "415fad6271580a531d4179bc891d87a6",
            ),
        ] {
            let i = hmac_integrity(alg, &key, 16).unwrap();
            let mut icv = [0u8; 16];
            i.compute(&[data], &mut icv);
            assert_eq!(hex::encode(icv), want, "{alg:?}");
            assert!(i.verify(&[data], &icv));
        }
    }

    // ---- RFC 4868 section 2.7.2 authenticator vectors (IPsec key sizes, via the provider) -----

    #[test]
    fn rfc4868_auth_vectors() {
        for (alg, key_len, want) in [
            (
                AuthAlg::HmacSha2_256_128,
                32,
                "198a607eb44bfbc69903a0f1cf2bbdc5",
            ),
            (
                AuthAlg::HmacSha2_384_192,
                48,
                "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973",
            ),
            (
                AuthAlg::HmacSha2_512_256,
                64,
                "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8",
            ),
        ] {
            let i = rc().integrity(alg, &vec![0x0b; key_len]).unwrap();
            let mut icv = vec![0u8; alg.icv_len()];
            i.compute(&[b"Hi There"], &mut icv);
            assert_eq!(hex::encode(&icv), want, "{alg:?}");
            assert!(i.verify(&[b"Hi ", b"There"], &icv));
        }
    }

    // ---- provider construction rules -------------------------------------------------------

    #[test]
    fn provider_refuses_des_and_null() {
        let p = rc();
        assert_eq!(p.name(), "rustcrypto");
        let e = p.block_cipher(EncAlg::Des, &[1u8; 8]).err().unwrap();
        assert_eq!(e.to_string(), "single DES is not supported: it is insecure");
        let e = p.block_cipher(EncAlg::NullEnc, &[]).err().unwrap();
        assert_eq!(e.to_string(), "NULL encryption is not supported");
        assert!(matches!(
            p.aead(EncAlg::Des, &[1u8; 8]),
            Err(CryptoError::Refused(_))
        ));
        assert!(matches!(
            p.aead(EncAlg::NullEnc, &[]),
            Err(CryptoError::Refused(_))
        ));
    }

    #[test]
    fn provider_checks_key_lengths() {
        let p = rc();
        let e = p.block_cipher(EncAlg::AesCbc128, &[0u8; 8]).err().unwrap();
        assert_eq!(e.to_string(), "AES128 needs a 128-bit key, got 64 bits");
        let e = p
            .block_cipher(EncAlg::TripleDesCbc, &[0u8; 16])
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "3DES needs a 192-bit key, got 128 bits");
        let e = p.aead(EncAlg::AesGcm16_256, &[0u8; 32]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "AES256GCM16 needs 288 bits of keying material (256-bit key + 32-bit salt), got 256 bits"
        );
        let e = p.integrity(AuthAlg::HmacSha1_96, &[0u8; 16]).err().unwrap();
        assert_eq!(e.to_string(), "HMAC_SHA1 needs a 160-bit key, got 128 bits");
        for alg in EncAlg::ALL {
            if matches!(alg, EncAlg::Des | EncAlg::NullEnc) {
                continue;
            }
            let key: Vec<u8> = (0..alg.key_len() as u8).collect();
            if alg.is_aead() {
                assert!(p.aead(alg, &key).is_ok());
                assert!(matches!(
                    p.block_cipher(alg, &key),
                    Err(CryptoError::Unsupported(_))
                ));
            } else {
                assert!(p.block_cipher(alg, &key).is_ok());
                assert!(matches!(
                    p.aead(alg, &key),
                    Err(CryptoError::Unsupported(_))
                ));
            }
        }
        for alg in AuthAlg::ALL {
            assert!(p.integrity(alg, &vec![1u8; alg.key_len()]).is_ok());
            assert!(p.integrity(alg, &vec![1u8; alg.key_len() + 1]).is_err());
        }
    }

    #[test]
    fn cbc_bad_lengths_do_not_panic() {
        let p = rc();
        let c = p.block_cipher(EncAlg::AesCbc256, &[3u8; 32]).unwrap();
        let mut buf = [0u8; 17];
        assert_eq!(c.encrypt(&[0u8; 16], &mut buf), Err(CryptoError::BadLength));
        assert_eq!(buf, [0u8; 17]);
        assert_eq!(c.decrypt(&[0u8; 16], &mut buf), Err(CryptoError::BadLength));
        assert!(matches!(
            c.encrypt(&[0u8; 8], &mut buf[..16]),
            Err(CryptoError::BadIvLength {
                expected: 16,
                got: 8
            })
        ));
        // Empty input is zero whole blocks: fine.
        assert_eq!(c.encrypt(&[0u8; 16], &mut []), Ok(()));
        let d = p
            .block_cipher(EncAlg::TripleDesCbc, &(0..24).collect::<Vec<u8>>())
            .unwrap();
        let mut buf = [0u8; 12];
        assert_eq!(d.decrypt(&[0u8; 8], &mut buf), Err(CryptoError::BadLength));
    }

    #[test]
    fn integrity_compute_with_odd_buffers() {
        let i = rc().integrity(AuthAlg::HmacSha1_96, &[9u8; 20]).unwrap();
        let mut full = [0u8; 12];
        i.compute(&[b"abc"], &mut full);
        let mut short = [0u8; 4];
        i.compute(&[b"abc"], &mut short);
        assert_eq!(short, full[..4]);
        let mut long = [0xeeu8; 20];
        i.compute(&[b"abc"], &mut long);
        assert_eq!(long[..12], full);
        assert_eq!(long[12..], [0xee; 8]);
        assert!(!i.verify(&[b"abc"], &[]));
    }

    #[test]
    fn provider_objects_are_shareable_across_threads() {
        let p = rc();
        let c: std::sync::Arc<dyn BlockCipher> = p
            .block_cipher(EncAlg::AesCbc128, &[5u8; 16])
            .unwrap()
            .into();
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut b = [t; 64];
                    c.encrypt(&[t; 16], &mut b).unwrap();
                    c.decrypt(&[t; 16], &mut b).unwrap();
                    b == [t; 64]
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
    }
}
