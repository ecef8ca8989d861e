//! Cryptographic algorithms for the IPsec datapath, behind a provider trait.
//!
//! The transforms in [`crate::xform`] never name a cipher implementation: they ask a
//! [`CryptoProvider`] for keyed objects ([`BlockCipher`], [`Aead`], [`Integrity`]) and then use
//! them through the traits. [`default_provider`] returns [`DefaultProvider`], which routes each
//! algorithm to the implementation measured fastest: the AEADs to [`RingProvider`] (module
//! [`ring`](self::ring)), 3DES-CBC to [`OpenSslProvider`] (module [`openssl`](self::openssl)),
//! AES-CBC and the HMACs to the pure-Rust [`RustCryptoProvider`] (module [`rustcrypto`]) — the
//! pattern for any faster backend: implement [`CryptoProvider`] for some algorithms, delegate
//! the rest.
//!
//! Keyed objects are built once per SA (key schedules, GHASH keys and the HMAC inner/outer pads
//! are precomputed at construction) and are then used by `&self` from any number of threads: all
//! traits are `Send + Sync` and no per-packet method allocates.
//!
//! Algorithm names follow FreeS/WAN: [`EncAlg::klips_name`] / [`AuthAlg::klips_name`] give the
//! pieces of `/proc/net/ipsec_spi` transform names such as `ESP_3DES_HMAC_SHA1`, and the
//! [`FromStr`] impls accept the names admins write in `ipsec.conf` (`esp=3des-sha1`,
//! `ah=hmac-md5-96`). Single DES and NULL encryption can be parsed (so configuration errors are
//! reported precisely) but every provider refuses to build them.

use std::fmt;
use std::str::FromStr;

pub mod openssl;
pub mod ring;
pub mod rustcrypto;

pub use self::openssl::{OpenSslAeadProvider, OpenSslProvider};
pub use self::ring::RingProvider;
pub use rustcrypto::RustCryptoProvider;

/// Largest IV any supported ESP cipher uses (AES-CBC: 16 bytes); handy for stack buffers.
pub const MAX_IV_LEN: usize = 16;
/// Largest ICV any supported integrity algorithm or AEAD produces (HMAC-SHA2-512-256: 32 bytes).
pub const MAX_ICV_LEN: usize = 32;
/// Length of the AES-GCM ESP salt carried at the end of the keying material (RFC 4106 §8.1).
pub const GCM_SALT_LEN: usize = 4;
/// Length of the AES-GCM ICV used by ESP here (the 16-octet variant of RFC 4106).
pub const GCM_TAG_LEN: usize = 16;
/// Length of the explicit IV of the ESP AEADs (AES-GCM, RFC 4106; ChaCha20-Poly1305, RFC 7634).
pub const AEAD_IV_LEN: usize = 8;

/// The 12-byte nonce of an ESP AEAD: the SA's 4-byte salt followed by the packet's 8-byte
/// explicit IV (RFC 4106 section 4, RFC 7634 section 2). Every AEAD provider builds it here.
pub(crate) fn aead_nonce(salt: &[u8; GCM_SALT_LEN], iv: &[u8]) -> Result<[u8; 12], CryptoError> {
    if iv.len() != AEAD_IV_LEN {
        return Err(CryptoError::BadIvLength {
            expected: AEAD_IV_LEN,
            got: iv.len(),
        });
    }
    let mut n = [0u8; 12];
    n[..GCM_SALT_LEN].copy_from_slice(salt);
    n[GCM_SALT_LEN..].copy_from_slice(iv);
    Ok(n)
}
/// Length of the ChaCha20-Poly1305 salt carried at the end of the keying material (RFC 7634
/// section 2: 32-byte key, then 4 bytes of salt).
pub const CHACHA_SALT_LEN: usize = 4;
/// Length of the Poly1305 tag (RFC 7634 section 2).
pub const CHACHA_TAG_LEN: usize = 16;

/// ESP encryption algorithms known to rswan (the `esp=` cipher part).
///
/// `NullEnc` and `Des` exist only so they can be named and refused with a clear message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncAlg {
    /// Triple DES (EDE, three independent keys) in CBC mode, RFC 2451. FreeS/WAN's only cipher.
    TripleDesCbc,
    /// AES-128 in CBC mode, RFC 3602.
    AesCbc128,
    /// AES-192 in CBC mode, RFC 3602.
    AesCbc192,
    /// AES-256 in CBC mode, RFC 3602.
    AesCbc256,
    /// AES-128 in GCM mode with a 16-octet ICV, RFC 4106 (an AEAD: no separate integrity).
    AesGcm16_128,
    /// AES-256 in GCM mode with a 16-octet ICV, RFC 4106 (an AEAD: no separate integrity).
    AesGcm16_256,
    /// ChaCha20-Poly1305, RFC 7634 (an AEAD: no separate integrity; 8-byte IV, 16-byte tag).
    ChaCha20Poly1305,
    /// ESP NULL encryption (RFC 2410): parsed only to be refused.
    NullEnc,
    /// Single DES: parsed only to be refused (insecure).
    Des,
}

impl EncAlg {
    /// All variants, for tests and for listing supported algorithms.
    pub const ALL: [EncAlg; 9] = [
        EncAlg::TripleDesCbc,
        EncAlg::AesCbc128,
        EncAlg::AesCbc192,
        EncAlg::AesCbc256,
        EncAlg::AesGcm16_128,
        EncAlg::AesGcm16_256,
        EncAlg::ChaCha20Poly1305,
        EncAlg::NullEnc,
        EncAlg::Des,
    ];

    /// Bytes of keying material the SA needs: the cipher key, plus the 4-byte salt for the
    /// AEADs (3DES 24, AES 16/24/32, AES-GCM 16+4 / 32+4, ChaCha20-Poly1305 32+4, NULL 0,
    /// DES 8).
    pub fn key_len(self) -> usize {
        match self {
            EncAlg::TripleDesCbc => 24,
            EncAlg::AesCbc128 => 16,
            EncAlg::AesCbc192 => 24,
            EncAlg::AesCbc256 => 32,
            EncAlg::AesGcm16_128 => 16 + GCM_SALT_LEN,
            EncAlg::AesGcm16_256 => 32 + GCM_SALT_LEN,
            EncAlg::ChaCha20Poly1305 => 32 + CHACHA_SALT_LEN,
            EncAlg::NullEnc => 0,
            EncAlg::Des => 8,
        }
    }

    /// Cipher block size in bytes as ESP sees it: 8 for (3)DES, 16 for AES-CBC, and 1 for the
    /// stream-like modes (GCM, ChaCha20-Poly1305, NULL). ESP padding aligns to
    /// [`EncAlg::pad_align`], not to this.
    pub fn block_size(self) -> usize {
        match self {
            EncAlg::TripleDesCbc | EncAlg::Des => 8,
            EncAlg::AesCbc128 | EncAlg::AesCbc192 | EncAlg::AesCbc256 => 16,
            EncAlg::AesGcm16_128
            | EncAlg::AesGcm16_256
            | EncAlg::ChaCha20Poly1305
            | EncAlg::NullEnc => 1,
        }
    }

    /// The alignment ESP pads the plaintext (payload, padding, pad length, next header) to:
    /// the block size, but at least 4 bytes (RFC 4303 §2.4). 8 for 3DES, 16 for AES-CBC,
    /// 4 for GCM and ChaCha20-Poly1305.
    pub fn pad_align(self) -> usize {
        self.block_size().max(4)
    }

    /// Length in bytes of the explicit IV carried in each ESP packet: 8 for (3)DES, 16 for
    /// AES-CBC, 8 for AES-GCM (RFC 4106 §3.1) and ChaCha20-Poly1305 (RFC 7634 §2), 0 for NULL.
    pub fn iv_len(self) -> usize {
        match self {
            EncAlg::TripleDesCbc | EncAlg::Des => 8,
            EncAlg::AesCbc128 | EncAlg::AesCbc192 | EncAlg::AesCbc256 => 16,
            EncAlg::AesGcm16_128 | EncAlg::AesGcm16_256 | EncAlg::ChaCha20Poly1305 => 8,
            EncAlg::NullEnc => 0,
        }
    }

    /// True for combined-mode algorithms (AES-GCM, ChaCha20-Poly1305), which must not be
    /// paired with an [`AuthAlg`] and are served by [`CryptoProvider::aead`].
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            EncAlg::AesGcm16_128 | EncAlg::AesGcm16_256 | EncAlg::ChaCha20Poly1305
        )
    }

    /// ICV length produced by the algorithm itself (16 for AES-GCM and ChaCha20-Poly1305, 0
    /// otherwise).
    pub fn aead_icv_len(self) -> usize {
        match self {
            EncAlg::ChaCha20Poly1305 => CHACHA_TAG_LEN,
            _ if self.is_aead() => GCM_TAG_LEN,
            _ => 0,
        }
    }

    /// Bytes of salt at the end of the keying material (4 for the AEADs, 0 otherwise): the
    /// implicit part of the nonce, `nonce = salt || IV`.
    pub fn salt_len(self) -> usize {
        match self {
            EncAlg::ChaCha20Poly1305 => CHACHA_SALT_LEN,
            _ if self.is_aead() => GCM_SALT_LEN,
            _ => 0,
        }
    }

    /// The KLIPS name, as in `ESP_3DES_HMAC_SHA1` (`3DES`, `AES128`, `AES192`, `AES256`,
    /// `AES128GCM16`, `AES256GCM16`, `CHACHA20_POLY1305`, `NULL`, `DES`).
    pub fn klips_name(self) -> &'static str {
        match self {
            EncAlg::TripleDesCbc => "3DES",
            EncAlg::AesCbc128 => "AES128",
            EncAlg::AesCbc192 => "AES192",
            EncAlg::AesCbc256 => "AES256",
            EncAlg::AesGcm16_128 => "AES128GCM16",
            EncAlg::AesGcm16_256 => "AES256GCM16",
            EncAlg::ChaCha20Poly1305 => "CHACHA20_POLY1305",
            EncAlg::NullEnc => "NULL",
            EncAlg::Des => "DES",
        }
    }

    /// The canonical `ipsec.conf` spelling (`3des`, `aes128`, …, `aes128gcm16`,
    /// `chacha20poly1305`); also what [`fmt::Display`] prints.
    pub fn conf_name(self) -> &'static str {
        match self {
            EncAlg::TripleDesCbc => "3des",
            EncAlg::AesCbc128 => "aes128",
            EncAlg::AesCbc192 => "aes192",
            EncAlg::AesCbc256 => "aes256",
            EncAlg::AesGcm16_128 => "aes128gcm16",
            EncAlg::AesGcm16_256 => "aes256gcm16",
            EncAlg::ChaCha20Poly1305 => "chacha20poly1305",
            EncAlg::NullEnc => "null",
            EncAlg::Des => "des",
        }
    }

    /// Key size in bits for `/proc/net/ipsec_spi` `eklen=` (keying material without the salt).
    pub fn key_bits(self) -> usize {
        (self.key_len() - self.salt_len()) * 8
    }
}

impl fmt::Display for EncAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.conf_name())
    }
}

impl FromStr for EncAlg {
    type Err = ParseAlgError;

    /// Parses an `esp=` cipher name, ASCII case-insensitively: `3des`, `aes128` / `aes`,
    /// `aes192`, `aes256`, `aes128gcm16` / `aes128gcm128`, `aes256gcm16` / `aes256gcm128`,
    /// `chacha20poly1305` / `chacha20_poly1305`, `null`, `des`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let alg = match s.to_ascii_lowercase().as_str() {
            "3des" => EncAlg::TripleDesCbc,
            "aes" | "aes128" => EncAlg::AesCbc128,
            "aes192" => EncAlg::AesCbc192,
            "aes256" => EncAlg::AesCbc256,
            "aes128gcm16" | "aes128gcm128" => EncAlg::AesGcm16_128,
            "aes256gcm16" | "aes256gcm128" => EncAlg::AesGcm16_256,
            "chacha20poly1305" | "chacha20_poly1305" => EncAlg::ChaCha20Poly1305,
            "null" => EncAlg::NullEnc,
            "des" => EncAlg::Des,
            _ => {
                return Err(ParseAlgError {
                    kind: "encryption",
                    name: s.to_string(),
                })
            }
        };
        Ok(alg)
    }
}

/// ESP/AH integrity algorithms (HMACs truncated per RFC 2403/2404/4868).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthAlg {
    /// HMAC-MD5 truncated to 96 bits, RFC 2403.
    HmacMd5_96,
    /// HMAC-SHA-1 truncated to 96 bits, RFC 2404.
    HmacSha1_96,
    /// HMAC-SHA-256 truncated to 128 bits, RFC 4868.
    HmacSha2_256_128,
    /// HMAC-SHA-384 truncated to 192 bits, RFC 4868.
    HmacSha2_384_192,
    /// HMAC-SHA-512 truncated to 256 bits, RFC 4868.
    HmacSha2_512_256,
}

impl AuthAlg {
    /// All variants, for tests and for listing supported algorithms.
    pub const ALL: [AuthAlg; 5] = [
        AuthAlg::HmacMd5_96,
        AuthAlg::HmacSha1_96,
        AuthAlg::HmacSha2_256_128,
        AuthAlg::HmacSha2_384_192,
        AuthAlg::HmacSha2_512_256,
    ];

    /// Bytes of keying material the SA needs (16, 20, 32, 48, 64).
    pub fn key_len(self) -> usize {
        match self {
            AuthAlg::HmacMd5_96 => 16,
            AuthAlg::HmacSha1_96 => 20,
            AuthAlg::HmacSha2_256_128 => 32,
            AuthAlg::HmacSha2_384_192 => 48,
            AuthAlg::HmacSha2_512_256 => 64,
        }
    }

    /// Length in bytes of the truncated ICV carried in packets (12, 12, 16, 24, 32).
    pub fn icv_len(self) -> usize {
        match self {
            AuthAlg::HmacMd5_96 | AuthAlg::HmacSha1_96 => 12,
            AuthAlg::HmacSha2_256_128 => 16,
            AuthAlg::HmacSha2_384_192 => 24,
            AuthAlg::HmacSha2_512_256 => 32,
        }
    }

    /// Length in bytes of the untruncated HMAC output (16, 20, 32, 48, 64).
    pub fn full_mac_len(self) -> usize {
        self.key_len()
    }

    /// The KLIPS name, as in `AH_HMAC_MD5` / `ESP_3DES_HMAC_SHA1` (`HMAC_MD5`, `HMAC_SHA1`,
    /// `HMAC_SHA2_256`, `HMAC_SHA2_384`, `HMAC_SHA2_512`).
    pub fn klips_name(self) -> &'static str {
        match self {
            AuthAlg::HmacMd5_96 => "HMAC_MD5",
            AuthAlg::HmacSha1_96 => "HMAC_SHA1",
            AuthAlg::HmacSha2_256_128 => "HMAC_SHA2_256",
            AuthAlg::HmacSha2_384_192 => "HMAC_SHA2_384",
            AuthAlg::HmacSha2_512_256 => "HMAC_SHA2_512",
        }
    }

    /// The `alen=` value FreeS/WAN shows in `/proc/net/ipsec_spi`: the HMAC key/digest size in
    /// bits (128 MD5, 160 SHA-1, 256/384/512 SHA-2).
    pub fn alen_bits(self) -> usize {
        self.key_len() * 8
    }

    /// The canonical `ipsec.conf` spelling (`md5`, `sha1`, `sha2_256`, …); also what
    /// [`fmt::Display`] prints.
    pub fn conf_name(self) -> &'static str {
        match self {
            AuthAlg::HmacMd5_96 => "md5",
            AuthAlg::HmacSha1_96 => "sha1",
            AuthAlg::HmacSha2_256_128 => "sha2_256",
            AuthAlg::HmacSha2_384_192 => "sha2_384",
            AuthAlg::HmacSha2_512_256 => "sha2_512",
        }
    }
}

impl fmt::Display for AuthAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.conf_name())
    }
}

impl FromStr for AuthAlg {
    type Err = ParseAlgError;

    /// Parses an integrity name, ASCII case-insensitively: `md5`, `sha1`, `sha2_256` /
    /// `sha256`, `sha2_384` / `sha384`, `sha2_512` / `sha512`, the FreeS/WAN `ah=` / `--ah`
    /// names `hmac-md5-96`, `hmac-sha1-96`, and the `md5-96` / `sha1-96` forms used inside
    /// `3des-md5-96`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let alg = match s.to_ascii_lowercase().as_str() {
            "md5" | "md5-96" | "hmac-md5-96" | "hmac_md5" => AuthAlg::HmacMd5_96,
            "sha1" | "sha" | "sha1-96" | "hmac-sha1-96" | "hmac_sha1" => AuthAlg::HmacSha1_96,
            "sha2_256" | "sha256" | "sha2_256-128" | "sha256-128" => AuthAlg::HmacSha2_256_128,
            "sha2_384" | "sha384" | "sha2_384-192" | "sha384-192" => AuthAlg::HmacSha2_384_192,
            "sha2_512" | "sha512" | "sha2_512-256" | "sha512-256" => AuthAlg::HmacSha2_512_256,
            _ => {
                return Err(ParseAlgError {
                    kind: "integrity",
                    name: s.to_string(),
                })
            }
        };
        Ok(alg)
    }
}

/// Parses one `esp=` transform such as `3des-md5-96`, `3des-sha1`, `aes128-sha2_256`, `aes`
/// (no integrity: FreeS/WAN's `auth=ah` case) or `aes256gcm16` into its parts.
///
/// The first `-`-separated token is the cipher; the rest, if any, is the integrity name. An
/// AEAD cipher with an integrity part is rejected.
pub fn parse_esp_transform(s: &str) -> Result<(EncAlg, Option<AuthAlg>), ParseAlgError> {
    let s = s.trim();
    let (enc, auth) = match s.split_once('-') {
        Some((enc, auth)) => (enc, Some(auth)),
        None => (s, None),
    };
    let enc: EncAlg = enc.parse()?;
    let auth = match auth {
        None => None,
        Some(a) => Some(a.parse::<AuthAlg>()?),
    };
    if enc.is_aead() && auth.is_some() {
        return Err(ParseAlgError {
            kind: "ESP transform (AES-GCM and ChaCha20-Poly1305 take no integrity algorithm)",
            name: s.to_string(),
        });
    }
    Ok((enc, auth))
}

/// An algorithm name that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseAlgError {
    /// What was being parsed ("encryption", "integrity", …).
    pub kind: &'static str,
    /// The offending text.
    pub name: String,
}

impl fmt::Display for ParseAlgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} algorithm \"{}\"", self.kind, self.name)
    }
}

impl std::error::Error for ParseAlgError {}

/// Errors from building or using keyed crypto objects. Never carries key bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The algorithm is deliberately not supported (single DES, NULL encryption, a degenerate
    /// 3DES key); the message says why.
    Refused(&'static str),
    /// The keying material has the wrong length for the algorithm.
    BadKeyLength {
        /// Algorithm display name (`AES128`, `HMAC_SHA1`, …).
        alg: &'static str,
        /// Bits the algorithm needs.
        expected_bits: usize,
        /// Bits that were supplied.
        got_bits: usize,
        /// True when the expected length includes the 32-bit GCM salt.
        with_salt: bool,
    },
    /// The provider cannot serve this algorithm through the requested interface (e.g. a GCM
    /// algorithm asked for as a CBC [`BlockCipher`]) or does not implement it at all.
    Unsupported(&'static str),
    /// An integrity algorithm was combined with an AEAD, or another impossible combination.
    BadCombination(&'static str),
    /// An IV of the wrong length was passed.
    BadIvLength {
        /// Bytes the algorithm needs.
        expected: usize,
        /// Bytes that were supplied.
        got: usize,
    },
    /// A buffer that must be whole cipher blocks is not, or a tag buffer has the wrong size.
    BadLength,
    /// AEAD tag verification failed (the buffer holds no plaintext: see [`Aead::open`]).
    AuthFailed,
    /// The operating system's random number generator failed (needed for the random start of
    /// an AEAD IV counter).
    NoRandomness,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::Refused(why) => f.write_str(why),
            CryptoError::BadKeyLength {
                alg,
                expected_bits,
                got_bits,
                with_salt,
            } => {
                if *with_salt {
                    write!(
                        f,
                        "{alg} needs {expected_bits} bits of keying material ({}-bit key + 32-bit salt), got {got_bits} bits",
                        expected_bits - 32
                    )
                } else {
                    write!(
                        f,
                        "{alg} needs a {expected_bits}-bit key, got {got_bits} bits"
                    )
                }
            }
            CryptoError::Unsupported(what) => write!(f, "unsupported: {what}"),
            CryptoError::BadCombination(what) => f.write_str(what),
            CryptoError::BadIvLength { expected, got } => {
                write!(f, "IV must be {expected} bytes, got {got}")
            }
            CryptoError::BadLength => f.write_str("buffer length is not valid for the cipher"),
            CryptoError::AuthFailed => f.write_str("authentication failed"),
            CryptoError::NoRandomness => {
                f.write_str("the operating system's random number generator failed")
            }
        }
    }
}

impl std::error::Error for CryptoError {}

/// A keyed block cipher in CBC mode (3DES-CBC, AES-CBC), encrypting whole blocks in place.
///
/// The key schedule is computed once at construction; each call only takes the per-packet IV.
pub trait BlockCipher: Send + Sync {
    /// Cipher block size in bytes (8 or 16).
    fn block_size(&self) -> usize;
    /// IV length in bytes (equal to the block size for CBC).
    fn iv_len(&self) -> usize;
    /// CBC-encrypts `buf` in place with `iv`. `buf.len()` must be a multiple of
    /// [`BlockCipher::block_size`] (else [`CryptoError::BadLength`], buffer untouched) and `iv`
    /// exactly [`BlockCipher::iv_len`] bytes (else [`CryptoError::BadIvLength`]).
    fn encrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError>;
    /// CBC-decrypts `buf` in place with `iv`; same length rules as [`BlockCipher::encrypt`].
    fn decrypt(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError>;
}

/// A keyed AEAD for ESP (AES-GCM per RFC 4106, ChaCha20-Poly1305 per RFC 7634): the 4-byte
/// salt from the end of the keying material is held inside, and the 12-byte nonce is
/// `salt || iv`.
pub trait Aead: Send + Sync {
    /// Length of the explicit per-packet IV (8).
    fn iv_len(&self) -> usize;
    /// Length of the authentication tag (16).
    fn tag_len(&self) -> usize;
    /// Encrypts `buf` in place and writes the tag into `tag` (exactly
    /// [`Aead::tag_len`] bytes). `iv` must be [`Aead::iv_len`] bytes; `aad` is authenticated
    /// but not encrypted (ESP: SPI || sequence number). On error nothing is written.
    fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), CryptoError>;
    /// Checks `tag` over `aad` and the ciphertext in `buf`, then decrypts `buf` in place.
    /// On [`CryptoError::AuthFailed`] (or any other error) `buf` holds no plaintext: it is left
    /// unchanged, except that [`RingProvider`] zeroes it when the tag does not verify (it
    /// decrypts while it authenticates).
    fn open(&self, iv: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), CryptoError>;
}

/// A keyed integrity check (truncated HMAC). The HMAC is keyed once at construction and the
/// keyed state is cloned per packet.
pub trait Integrity: Send + Sync {
    /// Length of the (truncated) ICV in bytes.
    fn icv_len(&self) -> usize;
    /// Computes the ICV over the concatenation of `parts` and writes it to `icv`.
    ///
    /// `icv` should be exactly [`Integrity::icv_len`] bytes; if it is shorter only its length
    /// is written, if it is longer the excess is left untouched (never panics).
    fn compute(&self, parts: &[&[u8]], icv: &mut [u8]);
    /// Checks, in constant time, that `icv` is the ICV of the concatenation of `parts`.
    /// Returns false if `icv` is not exactly [`Integrity::icv_len`] bytes.
    fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> bool;
}

/// A source of keyed crypto objects. Implementations must check key lengths and refuse
/// [`EncAlg::Des`] and [`EncAlg::NullEnc`].
pub trait CryptoProvider: Send + Sync {
    /// Short name for logs (`"rustcrypto"`).
    fn name(&self) -> &'static str;
    /// Builds a CBC block cipher for a non-AEAD [`EncAlg`] from `key`
    /// ([`EncAlg::key_len`] bytes).
    fn block_cipher(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn BlockCipher>, CryptoError>;
    /// Builds an AEAD for an AEAD [`EncAlg`] from `key` (cipher key followed by the 4-byte salt,
    /// [`EncAlg::key_len`] bytes in all).
    fn aead(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError>;
    /// Builds a truncated-HMAC integrity check from `key` ([`AuthAlg::key_len`] bytes).
    fn integrity(&self, alg: AuthAlg, key: &[u8]) -> Result<Box<dyn Integrity>, CryptoError>;
}

/// The datapath's provider: every algorithm from the implementation measured fastest on the
/// reference machine with per-call set-up included (`cargo bench --bench xform`,
/// docs/performance.md section 2): the AEADs (AES-GCM, ChaCha20-Poly1305) from `ring`
/// ([`RingProvider`]: 1.7–4× RustCrypto and 1.1–2× OpenSSL from 64 to 1400 bytes), 3DES-CBC
/// from OpenSSL ([`OpenSslProvider`]: 2.6× RustCrypto), AES-CBC and the HMACs from RustCrypto
/// (no slower than OpenSSL's).
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultProvider;

impl CryptoProvider for DefaultProvider {
    fn name(&self) -> &'static str {
        "default"
    }

    fn block_cipher(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn BlockCipher>, CryptoError> {
        OpenSslProvider.block_cipher(alg, key)
    }

    fn aead(&self, alg: EncAlg, key: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
        RingProvider.aead(alg, key)
    }

    fn integrity(&self, alg: AuthAlg, key: &[u8]) -> Result<Box<dyn Integrity>, CryptoError> {
        RustCryptoProvider.integrity(alg, key)
    }
}

static DEFAULT_PROVIDER: DefaultProvider = DefaultProvider;

/// The provider the datapath uses: [`DefaultProvider`], which routes each algorithm to the
/// fastest implementation measured here.
pub fn default_provider() -> &'static dyn CryptoProvider {
    &DEFAULT_PROVIDER
}

/// Refuses the algorithms that exist only to be named.
pub(crate) fn refuse_insecure(alg: EncAlg) -> Result<(), CryptoError> {
    match alg {
        EncAlg::Des => Err(CryptoError::Refused(
            "single DES is not supported: it is insecure",
        )),
        EncAlg::NullEnc => Err(CryptoError::Refused("NULL encryption is not supported")),
        _ => Ok(()),
    }
}

/// The checks every provider's [`CryptoProvider::aead`] makes before keying: `alg` is an AEAD
/// (not DES or NULL) and `key` is its key plus the 4-byte salt, so all providers refuse the
/// same input with the same error.
pub(crate) fn check_aead_key(alg: EncAlg, key: &[u8]) -> Result<(), CryptoError> {
    refuse_insecure(alg)?;
    if !alg.is_aead() {
        return Err(CryptoError::Unsupported(
            "not an AEAD: build CBC ciphers with CryptoProvider::block_cipher",
        ));
    }
    check_key_len(alg.klips_name(), key, alg.key_len(), true)
}

/// Checks `key.len()` against `expected` and returns the precise error message if it differs.
pub(crate) fn check_key_len(
    alg: &'static str,
    key: &[u8],
    expected: usize,
    with_salt: bool,
) -> Result<(), CryptoError> {
    if key.len() == expected {
        Ok(())
    } else {
        Err(CryptoError::BadKeyLength {
            alg,
            expected_bits: expected * 8,
            got_bits: key.len() * 8,
            with_salt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enc_alg_properties() {
        assert_eq!(EncAlg::TripleDesCbc.key_len(), 24);
        assert_eq!(EncAlg::AesCbc128.key_len(), 16);
        assert_eq!(EncAlg::AesCbc192.key_len(), 24);
        assert_eq!(EncAlg::AesCbc256.key_len(), 32);
        assert_eq!(EncAlg::AesGcm16_128.key_len(), 20);
        assert_eq!(EncAlg::AesGcm16_256.key_len(), 36);
        assert_eq!(EncAlg::TripleDesCbc.iv_len(), 8);
        assert_eq!(EncAlg::AesCbc192.iv_len(), 16);
        assert_eq!(EncAlg::AesGcm16_256.iv_len(), 8);
        assert_eq!(EncAlg::TripleDesCbc.pad_align(), 8);
        assert_eq!(EncAlg::AesCbc256.pad_align(), 16);
        assert_eq!(EncAlg::AesGcm16_128.pad_align(), 4);
        assert!(EncAlg::AesGcm16_128.is_aead());
        assert!(!EncAlg::AesCbc128.is_aead());
        assert_eq!(EncAlg::TripleDesCbc.key_bits(), 192);
        assert_eq!(EncAlg::AesGcm16_256.key_bits(), 256);
        assert_eq!(EncAlg::TripleDesCbc.klips_name(), "3DES");
        assert_eq!(EncAlg::AesCbc128.klips_name(), "AES128");
        // RFC 7634: 32-byte key + 4-byte salt, 8-byte IV, 16-byte tag, 4-byte alignment.
        let c = EncAlg::ChaCha20Poly1305;
        assert!(c.is_aead());
        assert_eq!((c.key_len(), c.salt_len(), c.key_bits()), (36, 4, 256));
        assert_eq!((c.iv_len(), c.aead_icv_len(), c.pad_align()), (8, 16, 4));
        assert_eq!(c.block_size(), 1);
        assert_eq!(c.klips_name(), "CHACHA20_POLY1305");
        assert_eq!(EncAlg::AesGcm16_128.salt_len(), 4);
        assert_eq!(EncAlg::AesCbc128.salt_len(), 0);
        assert_eq!(EncAlg::AesGcm16_128.aead_icv_len(), 16);
        assert_eq!(EncAlg::AesCbc128.aead_icv_len(), 0);
    }

    #[test]
    fn auth_alg_properties() {
        let want = [
            (AuthAlg::HmacMd5_96, 16, 12, "HMAC_MD5", 128),
            (AuthAlg::HmacSha1_96, 20, 12, "HMAC_SHA1", 160),
            (AuthAlg::HmacSha2_256_128, 32, 16, "HMAC_SHA2_256", 256),
            (AuthAlg::HmacSha2_384_192, 48, 24, "HMAC_SHA2_384", 384),
            (AuthAlg::HmacSha2_512_256, 64, 32, "HMAC_SHA2_512", 512),
        ];
        for (alg, k, icv, name, alen) in want {
            assert_eq!(alg.key_len(), k);
            assert_eq!(alg.icv_len(), icv);
            assert_eq!(alg.klips_name(), name);
            assert_eq!(alg.alen_bits(), alen);
            assert!(alg.icv_len() <= MAX_ICV_LEN);
        }
    }

    #[test]
    fn parse_enc_names() {
        let cases = [
            ("3des", EncAlg::TripleDesCbc),
            ("3DES", EncAlg::TripleDesCbc),
            ("aes", EncAlg::AesCbc128),
            ("aes128", EncAlg::AesCbc128),
            ("aes192", EncAlg::AesCbc192),
            ("aes256", EncAlg::AesCbc256),
            ("aes128gcm16", EncAlg::AesGcm16_128),
            ("aes128gcm128", EncAlg::AesGcm16_128),
            ("aes256gcm16", EncAlg::AesGcm16_256),
            ("chacha20poly1305", EncAlg::ChaCha20Poly1305),
            ("ChaCha20_Poly1305", EncAlg::ChaCha20Poly1305),
            ("null", EncAlg::NullEnc),
            ("des", EncAlg::Des),
        ];
        for (s, alg) in cases {
            assert_eq!(s.parse::<EncAlg>(), Ok(alg), "{s}");
        }
        for alg in EncAlg::ALL {
            assert_eq!(alg.conf_name().parse::<EncAlg>(), Ok(alg));
            assert_eq!(alg.to_string(), alg.conf_name());
        }
        let err = "blowfish".parse::<EncAlg>().unwrap_err();
        assert_eq!(err.to_string(), "unknown encryption algorithm \"blowfish\"");
    }

    #[test]
    fn parse_auth_names() {
        let cases = [
            ("md5", AuthAlg::HmacMd5_96),
            ("sha1", AuthAlg::HmacSha1_96),
            ("sha2_256", AuthAlg::HmacSha2_256_128),
            ("sha256", AuthAlg::HmacSha2_256_128),
            ("sha2_384", AuthAlg::HmacSha2_384_192),
            ("sha384", AuthAlg::HmacSha2_384_192),
            ("sha2_512", AuthAlg::HmacSha2_512_256),
            ("sha512", AuthAlg::HmacSha2_512_256),
            ("hmac-md5-96", AuthAlg::HmacMd5_96),
            ("hmac-sha1-96", AuthAlg::HmacSha1_96),
            ("HMAC-SHA1-96", AuthAlg::HmacSha1_96),
        ];
        for (s, alg) in cases {
            assert_eq!(s.parse::<AuthAlg>(), Ok(alg), "{s}");
        }
        for alg in AuthAlg::ALL {
            assert_eq!(alg.conf_name().parse::<AuthAlg>(), Ok(alg));
        }
        assert!("crc32".parse::<AuthAlg>().is_err());
    }

    #[test]
    fn parse_esp_transforms() {
        assert_eq!(
            parse_esp_transform("3des-md5-96"),
            Ok((EncAlg::TripleDesCbc, Some(AuthAlg::HmacMd5_96)))
        );
        assert_eq!(
            parse_esp_transform("3des-sha1-96"),
            Ok((EncAlg::TripleDesCbc, Some(AuthAlg::HmacSha1_96)))
        );
        assert_eq!(
            parse_esp_transform("aes256-sha2_512"),
            Ok((EncAlg::AesCbc256, Some(AuthAlg::HmacSha2_512_256)))
        );
        assert_eq!(
            parse_esp_transform("3des"),
            Ok((EncAlg::TripleDesCbc, None))
        );
        assert_eq!(
            parse_esp_transform("aes128gcm16"),
            Ok((EncAlg::AesGcm16_128, None))
        );
        assert!(parse_esp_transform("aes128gcm16-sha1").is_err());
        assert_eq!(
            parse_esp_transform("chacha20poly1305"),
            Ok((EncAlg::ChaCha20Poly1305, None))
        );
        assert!(parse_esp_transform("chacha20poly1305-sha2_256").is_err());
        assert!(parse_esp_transform("3des-foo").is_err());
        assert!(parse_esp_transform("").is_err());
    }

    #[test]
    fn error_messages() {
        let e = CryptoError::BadKeyLength {
            alg: "AES128",
            expected_bits: 128,
            got_bits: 64,
            with_salt: false,
        };
        assert_eq!(e.to_string(), "AES128 needs a 128-bit key, got 64 bits");
        let e = CryptoError::BadKeyLength {
            alg: "AES128GCM16",
            expected_bits: 160,
            got_bits: 128,
            with_salt: true,
        };
        assert_eq!(
            e.to_string(),
            "AES128GCM16 needs 160 bits of keying material (128-bit key + 32-bit salt), got 128 bits"
        );
    }
}
