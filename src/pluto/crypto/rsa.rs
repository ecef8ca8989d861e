//! RSA keys and IKE signatures: FreeS/WAN raw public keys (RFC 3110 blobs in `0s`/`0x`
//! text), ipsec.secrets RSA blocks, PEM for strongSwan, key generation, and the IKEv1
//! signature scheme.
//!
//! IKEv1 RSA signatures (RFC 2409 5.1) are PKCS#1 v1.5 type-1 padding of the raw HASH_I /
//! HASH_R *without* a DigestInfo prefix — what Pluto and strongSwan put on the wire. Signing
//! uses RSA blinding. All arithmetic is the `rsa` crate's.

use core::fmt;

use ::rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use ::rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use ::rsa::rand_core::CryptoRngCore;
use ::rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
use ::rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use zeroize::{Zeroize, Zeroizing};

use super::text;

/// Smallest modulus accepted, in bits: shorter keys (FreeS/WAN accepted 512) are refused
/// wherever they come from — `leftrsasigkey=`, `ipsec.secrets`, PEM, key generation.
pub const MIN_RSA_BITS: usize = 1024;
/// Keys shorter than this many bits are accepted with a warning.
pub const WARN_RSA_BITS: usize = 2048;
/// Largest modulus accepted, in bits (Pluto's upper bound).
pub const MAX_RSA_BITS: usize = 4096;
/// Public exponent of generated keys (FreeS/WAN used 3; 65537 is today's norm and both load).
pub const DEFAULT_PUBLIC_EXPONENT: u32 = 65537;

/// Why an RSA operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RsaError {
    /// The RFC 3110 blob is malformed; the string says how.
    BadBlob(&'static str),
    /// The text form is not valid `0s`/`0x` data.
    BadText(text::TextError),
    /// Modulus size outside [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`] (or, for generation, not a
    /// multiple of 16).
    BadKeySize(usize),
    /// The key's numbers are inconsistent or unusable (message from the `rsa` crate, or which
    /// ipsec.secrets field disagrees).
    InvalidKey(String),
    /// The signature does not verify.
    BadSignature,
    /// Signing failed (hash too long for the modulus).
    SignFailed(String),
    /// PEM encoding or decoding failed.
    Pem(String),
}

impl fmt::Display for RsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RsaError::BadBlob(why) => write!(f, "bad RSA public key blob: {why}"),
            RsaError::BadText(e) => write!(f, "bad RSA key text: {e}"),
            RsaError::BadKeySize(bits) if *bits < MIN_RSA_BITS => write!(
                f,
                "RSA key of {bits} bits is too short: at least {MIN_RSA_BITS} bits are required ({WARN_RSA_BITS} or more recommended)"
            ),
            RsaError::BadKeySize(bits) => write!(
                f,
                "RSA modulus of {bits} bits is outside {MIN_RSA_BITS}..{MAX_RSA_BITS}"
            ),
            RsaError::InvalidKey(why) => write!(f, "invalid RSA key: {why}"),
            RsaError::BadSignature => f.write_str("RSA signature check failed"),
            RsaError::SignFailed(why) => write!(f, "RSA signing failed: {why}"),
            RsaError::Pem(why) => write!(f, "PEM: {why}"),
        }
    }
}

impl std::error::Error for RsaError {}

fn check_bits(n: &BigUint) -> Result<(), RsaError> {
    let bits = n.bits();
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(RsaError::BadKeySize(bits))
    }
}

/// An RSA public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: RsaPublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} bits, {})", self.bits(), self.key_id())
    }
}

impl PublicKey {
    /// Builds a key from big-endian modulus and exponent.
    pub fn from_components(modulus: &[u8], exponent: &[u8]) -> Result<PublicKey, RsaError> {
        let n = BigUint::from_bytes_be(modulus);
        let e = BigUint::from_bytes_be(exponent);
        check_bits(&n)?;
        let inner = RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS)
            .map_err(|e| RsaError::InvalidKey(e.to_string()))?;
        Ok(PublicKey { inner })
    }

    /// Parses an RFC 3110 blob: exponent length (1 byte, or 0 then 2 bytes), exponent,
    /// modulus.
    pub fn from_rfc3110(blob: &[u8]) -> Result<PublicKey, RsaError> {
        let (elen, rest) = match blob {
            [0, hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
            [0, ..] => return Err(RsaError::BadBlob("truncated exponent length")),
            [len, rest @ ..] => (usize::from(*len), rest),
            [] => return Err(RsaError::BadBlob("empty")),
        };
        if elen == 0 {
            return Err(RsaError::BadBlob("zero exponent length"));
        }
        if rest.len() <= elen {
            return Err(RsaError::BadBlob("no modulus after the exponent"));
        }
        let (e, n) = rest.split_at(elen);
        Self::from_components(n, e)
    }

    /// The RFC 3110 blob (exponent and modulus without leading zeros).
    pub fn to_rfc3110(&self) -> Vec<u8> {
        let e = self.inner.e().to_bytes_be();
        let n = self.inner.n().to_bytes_be();
        let mut blob = Vec::with_capacity(3 + e.len() + n.len());
        match u8::try_from(e.len()) {
            Ok(len) => blob.push(len),
            Err(_) => {
                // Exponents over 255 bytes cannot be built (the rsa crate caps e at 2^33).
                blob.push(0);
                blob.extend_from_slice(&(e.len().min(0xffff) as u16).to_be_bytes());
            }
        }
        blob.extend_from_slice(&e);
        blob.extend_from_slice(&n);
        blob
    }

    /// Parses the ipsec.conf text form: `0s` base64 or `0x` hex of the RFC 3110 blob.
    pub fn from_text(text: &str) -> Result<PublicKey, RsaError> {
        let blob = text::decode(text).map_err(RsaError::BadText)?;
        Self::from_rfc3110(&blob)
    }

    /// The ipsec.conf text form, `0s` + base64 of the blob (as `leftrsasigkey=` takes it).
    pub fn to_text(&self) -> String {
        text::encode_base64(&self.to_rfc3110())
    }

    /// The key ID Pluto logs: the first 9 base64 characters of the blob (e.g. `AQOF8tZ2N`).
    pub fn key_id(&self) -> String {
        key_id_of_blob(&self.to_rfc3110())
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.inner.n().bits()
    }

    /// Whether the key is shorter than [`WARN_RSA_BITS`] (accepted, but worth a warning).
    pub fn is_weak(&self) -> bool {
        self.bits() < WARN_RSA_BITS
    }

    /// Modulus size in bytes: the length of every signature.
    pub fn modulus_len(&self) -> usize {
        self.inner.size()
    }

    /// The modulus, big-endian.
    pub fn modulus(&self) -> Vec<u8> {
        self.inner.n().to_bytes_be()
    }

    /// The public exponent, big-endian.
    pub fn exponent(&self) -> Vec<u8> {
        self.inner.e().to_bytes_be()
    }

    /// Verifies an IKEv1 signature (PKCS#1 v1.5 type 1, no DigestInfo) over `hash`. The
    /// signature must be exactly [`modulus_len`](Self::modulus_len) bytes.
    pub fn verify(&self, hash: &[u8], signature: &[u8]) -> Result<(), RsaError> {
        self.inner
            .verify(Pkcs1v15Sign::new_unprefixed(), hash, signature)
            .map_err(|_| RsaError::BadSignature)
    }

    /// PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), as strongSwan loads it.
    pub fn to_pem(&self) -> Result<String, RsaError> {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| RsaError::Pem(e.to_string()))
    }

    /// Parses PEM: SubjectPublicKeyInfo (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<PublicKey, RsaError> {
        let inner = RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|e| RsaError::Pem(e.to_string()))?;
        check_bits(inner.n())?;
        Ok(PublicKey { inner })
    }
}

/// Key ID of a raw RFC 3110 blob: its first 9 base64 characters.
pub fn key_id_of_blob(blob: &[u8]) -> String {
    let b64 = text::base64(blob);
    b64.chars().take(9).collect()
}

/// The fields of an ipsec.secrets `: RSA { … }` block, big-endian, in their fixed order.
/// Wiped on drop. Empty `exponent1` / `exponent2` / `coefficient` mean "not given".
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PrivateKeyParts {
    /// Modulus n.
    pub modulus: Vec<u8>,
    /// Public exponent e.
    pub public_exponent: Vec<u8>,
    /// Private exponent d.
    pub private_exponent: Vec<u8>,
    /// Prime p.
    pub prime1: Vec<u8>,
    /// Prime q.
    pub prime2: Vec<u8>,
    /// d mod (p-1).
    pub exponent1: Vec<u8>,
    /// d mod (q-1).
    pub exponent2: Vec<u8>,
    /// q^-1 mod p.
    pub coefficient: Vec<u8>,
}

impl fmt::Debug for PrivateKeyParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKeyParts({} byte modulus, <secret>)",
            self.modulus.len()
        )
    }
}

impl Drop for PrivateKeyParts {
    fn drop(&mut self) {
        self.private_exponent.zeroize();
        self.prime1.zeroize();
        self.prime2.zeroize();
        self.exponent1.zeroize();
        self.exponent2.zeroize();
        self.coefficient.zeroize();
    }
}

/// An RSA private key (the `rsa` crate wipes its numbers on drop).
#[derive(Clone)]
pub struct PrivateKey {
    inner: RsaPrivateKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({} bits, {})",
            self.public_key().bits(),
            self.public_key().key_id()
        )
    }
}

fn secret_bytes(n: &BigUint) -> Vec<u8> {
    n.to_bytes_be()
}

impl PrivateKey {
    /// Builds a key from ipsec.secrets fields; checks that they are consistent (n = p·q, d
    /// inverts e, and the CRT values when given).
    pub fn from_parts(parts: &PrivateKeyParts) -> Result<PrivateKey, RsaError> {
        let n = BigUint::from_bytes_be(&parts.modulus);
        check_bits(&n)?;
        let e = BigUint::from_bytes_be(&parts.public_exponent);
        let d = BigUint::from_bytes_be(&parts.private_exponent);
        let p = BigUint::from_bytes_be(&parts.prime1);
        let q = BigUint::from_bytes_be(&parts.prime2);
        let inner = RsaPrivateKey::from_components(n, e, d, vec![p, q])
            .map_err(|e| RsaError::InvalidKey(e.to_string()))?;
        let key = PrivateKey { inner };
        let check = |given: &[u8], computed: Option<BigUint>, name: &str| {
            if given.is_empty() {
                return Ok(());
            }
            match computed {
                Some(c) if c == BigUint::from_bytes_be(given) => Ok(()),
                _ => Err(RsaError::InvalidKey(format!(
                    "{name} does not match the key"
                ))),
            }
        };
        check(&parts.exponent1, key.inner.dp().cloned(), "Exponent1")?;
        check(&parts.exponent2, key.inner.dq().cloned(), "Exponent2")?;
        check(
            &parts.coefficient,
            key.inner.crt_coefficient(),
            "Coefficient",
        )?;
        Ok(key)
    }

    /// The ipsec.secrets fields of this key.
    pub fn to_parts(&self) -> PrivateKeyParts {
        let k = &self.inner;
        let primes = k.primes();
        let get = |i: usize| primes.get(i).map(secret_bytes).unwrap_or_default();
        PrivateKeyParts {
            modulus: k.n().to_bytes_be(),
            public_exponent: k.e().to_bytes_be(),
            private_exponent: secret_bytes(k.d()),
            prime1: get(0),
            prime2: get(1),
            exponent1: k.dp().map(secret_bytes).unwrap_or_default(),
            exponent2: k.dq().map(secret_bytes).unwrap_or_default(),
            coefficient: k
                .crt_coefficient()
                .as_ref()
                .map(secret_bytes)
                .unwrap_or_default(),
        }
    }

    /// Generates a key of `bits` bits (a multiple of 16 within
    /// [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`]) with e = [`DEFAULT_PUBLIC_EXPONENT`], for
    /// `ipsec newhostkey` / `ipsec rsasigkey`.
    pub fn generate<R: CryptoRngCore>(rng: &mut R, bits: usize) -> Result<PrivateKey, RsaError> {
        Self::generate_with_exponent(rng, bits, DEFAULT_PUBLIC_EXPONENT)
    }

    /// Generates a key with the given odd public exponent (3 for FreeS/WAN-style keys).
    pub fn generate_with_exponent<R: CryptoRngCore>(
        rng: &mut R,
        bits: usize,
        exponent: u32,
    ) -> Result<PrivateKey, RsaError> {
        if !bits.is_multiple_of(16) || !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(RsaError::BadKeySize(bits));
        }
        if exponent < 3 || exponent.is_multiple_of(2) {
            return Err(RsaError::InvalidKey(
                "public exponent must be odd and ≥ 3".into(),
            ));
        }
        let inner = RsaPrivateKey::new_with_exp(rng, bits, &BigUint::from(exponent))
            .map_err(|e| RsaError::InvalidKey(e.to_string()))?;
        Ok(PrivateKey { inner })
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.to_public_key(),
        }
    }

    /// Signs `hash` the IKEv1 way (PKCS#1 v1.5 type 1, no DigestInfo), with blinding drawn
    /// from `rng`. The signature is as long as the modulus.
    pub fn sign<R: CryptoRngCore>(&self, rng: &mut R, hash: &[u8]) -> Result<Vec<u8>, RsaError> {
        self.inner
            .sign_with_rng(rng, Pkcs1v15Sign::new_unprefixed(), hash)
            .map_err(|e| RsaError::SignFailed(e.to_string()))
    }

    /// PEM PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`), as strongSwan's `private/` takes it.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, RsaError> {
        self.inner
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| RsaError::Pem(e.to_string()))
    }

    /// Parses PEM: PKCS#1 (`RSA PRIVATE KEY`) or unencrypted PKCS#8 (`PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<PrivateKey, RsaError> {
        let inner = RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|e| RsaError::Pem(e.to_string()))?;
        check_bits(inner.n())?;
        Ok(PrivateKey { inner })
    }

    /// The indented body of an ipsec.secrets `: RSA {` … `}` block (spec 2): a comment line
    /// (e.g. `RSA 2048 bits   west   Mon Jan  5 12:00:00 2004`), `#pubkey=`, then the eight
    /// fields in their fixed order as `0x` hex, each line starting with a tab.
    pub fn to_secrets_body(&self, comment: &str) -> Zeroizing<String> {
        let parts = self.to_parts();
        let mut s = Zeroizing::new(String::new());
        s.push_str(&format!("\t# {comment}\n"));
        s.push_str(&format!("\t#pubkey={}\n", self.public_key().to_text()));
        let fields: [(&str, &[u8]); 8] = [
            ("Modulus", &parts.modulus),
            ("PublicExponent", &parts.public_exponent),
            ("PrivateExponent", &parts.private_exponent),
            ("Prime1", &parts.prime1),
            ("Prime2", &parts.prime2),
            ("Exponent1", &parts.exponent1),
            ("Exponent2", &parts.exponent2),
            ("Coefficient", &parts.coefficient),
        ];
        for (name, value) in fields {
            if name == "PrivateExponent" {
                s.push_str("\t# everything after this point is secret\n");
            }
            let hex = Zeroizing::new(text::encode_hex(value));
            s.push_str(&format!("\t{name}: {}\n", hex.as_str()));
        }
        s
    }
}

/// An IKEv2 RSA signature scheme: auth method 1 (RFC 7296 3.8, RSASSA-PKCS1-v1_5 with a
/// SHA-1 DigestInfo) or one of the RFC 7427 Digital Signature (method 14) schemes. PSS uses
/// MGF1 with the same hash and a salt as long as the hash (RFC 8247 3.2's recommendation,
/// what the AlgorithmIdentifier the wire codec writes says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// Auth method 1: RSASSA-PKCS1-v1_5 over SHA-1.
    Pkcs1Sha1Method1,
    /// RFC 7427: sha256WithRSAEncryption.
    Pkcs1Sha256,
    /// RFC 7427: sha384WithRSAEncryption.
    Pkcs1Sha384,
    /// RFC 7427: sha512WithRSAEncryption.
    Pkcs1Sha512,
    /// RFC 7427: RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt.
    PssSha256,
    /// RFC 7427: RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-byte salt.
    PssSha384,
    /// RFC 7427: RSASSA-PSS, SHA-512, MGF1-SHA-512, 64-byte salt.
    PssSha512,
}

impl SignatureScheme {
    /// Every scheme.
    pub const ALL: [SignatureScheme; 7] = [
        SignatureScheme::Pkcs1Sha1Method1,
        SignatureScheme::Pkcs1Sha256,
        SignatureScheme::Pkcs1Sha384,
        SignatureScheme::Pkcs1Sha512,
        SignatureScheme::PssSha256,
        SignatureScheme::PssSha384,
        SignatureScheme::PssSha512,
    ];

    /// The AUTH payload's Auth Method: 1 (RSA Digital Signature) or 14 (Digital Signature).
    pub fn auth_method(self) -> u8 {
        match self {
            SignatureScheme::Pkcs1Sha1Method1 => 1,
            _ => 14,
        }
    }

    /// True for RSASSA-PSS.
    pub fn is_pss(self) -> bool {
        matches!(
            self,
            SignatureScheme::PssSha256 | SignatureScheme::PssSha384 | SignatureScheme::PssSha512
        )
    }

    /// Length of the hash in bytes (20, 32, 48, 64), also the PSS salt length.
    pub fn hash_len(self) -> usize {
        match self {
            SignatureScheme::Pkcs1Sha1Method1 => 20,
            SignatureScheme::Pkcs1Sha256 | SignatureScheme::PssSha256 => 32,
            SignatureScheme::Pkcs1Sha384 | SignatureScheme::PssSha384 => 48,
            SignatureScheme::Pkcs1Sha512 | SignatureScheme::PssSha512 => 64,
        }
    }

    /// A name for logs (`RSA-PKCS1-SHA1`, `RSA-PKCS1-SHA2_256`, `RSA-PSS-SHA2_384`, …).
    pub fn name(self) -> &'static str {
        match self {
            SignatureScheme::Pkcs1Sha1Method1 => "RSA-PKCS1-SHA1",
            SignatureScheme::Pkcs1Sha256 => "RSA-PKCS1-SHA2_256",
            SignatureScheme::Pkcs1Sha384 => "RSA-PKCS1-SHA2_384",
            SignatureScheme::Pkcs1Sha512 => "RSA-PKCS1-SHA2_512",
            SignatureScheme::PssSha256 => "RSA-PSS-SHA2_256",
            SignatureScheme::PssSha384 => "RSA-PSS-SHA2_384",
            SignatureScheme::PssSha512 => "RSA-PSS-SHA2_512",
        }
    }

    /// The message hash and the `rsa` crate padding scheme.
    fn prepare(self, data: &[u8]) -> (Vec<u8>, Padding) {
        use sha1::Sha1;
        use sha2::{Digest, Sha256, Sha384, Sha512};
        match self {
            SignatureScheme::Pkcs1Sha1Method1 => (
                Sha1::digest(data).to_vec(),
                Padding::Pkcs1(Pkcs1v15Sign::new::<Sha1>()),
            ),
            SignatureScheme::Pkcs1Sha256 => (
                Sha256::digest(data).to_vec(),
                Padding::Pkcs1(Pkcs1v15Sign::new::<Sha256>()),
            ),
            SignatureScheme::Pkcs1Sha384 => (
                Sha384::digest(data).to_vec(),
                Padding::Pkcs1(Pkcs1v15Sign::new::<Sha384>()),
            ),
            SignatureScheme::Pkcs1Sha512 => (
                Sha512::digest(data).to_vec(),
                Padding::Pkcs1(Pkcs1v15Sign::new::<Sha512>()),
            ),
            SignatureScheme::PssSha256 => (
                Sha256::digest(data).to_vec(),
                Padding::Pss(::rsa::Pss::new::<Sha256>()),
            ),
            SignatureScheme::PssSha384 => (
                Sha384::digest(data).to_vec(),
                Padding::Pss(::rsa::Pss::new::<Sha384>()),
            ),
            SignatureScheme::PssSha512 => (
                Sha512::digest(data).to_vec(),
                Padding::Pss(::rsa::Pss::new::<Sha512>()),
            ),
        }
    }
}

/// The `rsa` crate's padding for a [`SignatureScheme`] (its trait is not object safe).
enum Padding {
    Pkcs1(Pkcs1v15Sign),
    Pss(::rsa::Pss),
}

impl fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PublicKey {
    /// Verifies an IKEv2 AUTH signature: `signature` (exactly
    /// [`modulus_len`](Self::modulus_len) bytes) over `data` (the signed octets, hashed here)
    /// with `scheme`.
    pub fn verify_ikev2(
        &self,
        scheme: SignatureScheme,
        data: &[u8],
        signature: &[u8],
    ) -> Result<(), RsaError> {
        if signature.len() != self.modulus_len() {
            return Err(RsaError::BadSignature);
        }
        let (hash, padding) = scheme.prepare(data);
        match padding {
            Padding::Pkcs1(p) => self.inner.verify(p, &hash, signature),
            Padding::Pss(p) => self.inner.verify(p, &hash, signature),
        }
        .map_err(|_| RsaError::BadSignature)
    }
}

impl PrivateKey {
    /// Signs `data` (the IKEv2 signed octets, hashed here) with `scheme`; blinding and the
    /// PSS salt come from `rng`. The signature is as long as the modulus.
    pub fn sign_ikev2<R: CryptoRngCore>(
        &self,
        rng: &mut R,
        scheme: SignatureScheme,
        data: &[u8],
    ) -> Result<Vec<u8>, RsaError> {
        let (hash, padding) = scheme.prepare(data);
        match padding {
            Padding::Pkcs1(p) => self.inner.sign_with_rng(rng, p, &hash),
            Padding::Pss(p) => self.inner.sign_with_rng(rng, p, &hash),
        }
        .map_err(|e| RsaError::SignFailed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::sync::OnceLock;

    /// One 1024-bit e=65537 key and one 1024-bit e=3 key for all tests (generation is slow).
    fn keys() -> &'static (PrivateKey, PrivateKey) {
        static KEYS: OnceLock<(PrivateKey, PrivateKey)> = OnceLock::new();
        KEYS.get_or_init(|| {
            let mut rng = StdRng::seed_from_u64(1);
            (
                PrivateKey::generate(&mut rng, 1024).unwrap(),
                PrivateKey::generate_with_exponent(&mut rng, 1024, 3).unwrap(),
            )
        })
    }

    #[test]
    fn sign_verify() {
        let (k, k3) = keys();
        let mut rng = StdRng::seed_from_u64(2);
        let hash = [0x5au8; 20];
        let sig = k.sign(&mut rng, &hash).unwrap();
        assert_eq!(sig.len(), 128);
        assert_eq!(k.public_key().modulus_len(), 128);
        k.public_key().verify(&hash, &sig).unwrap();
        // Wrong hash, wrong key, wrong length fail.
        assert_eq!(
            k.public_key().verify(&[0x5b; 20], &sig),
            Err(RsaError::BadSignature)
        );
        assert_eq!(
            k3.public_key().verify(&hash, &sig),
            Err(RsaError::BadSignature)
        );
        assert_eq!(
            k.public_key().verify(&hash, &sig[1..]),
            Err(RsaError::BadSignature)
        );
        // e = 3 keys sign and verify too, MD5-sized hashes as well.
        let sig3 = k3.sign(&mut rng, &[1u8; 16]).unwrap();
        k3.public_key().verify(&[1u8; 16], &sig3).unwrap();
        assert_eq!(k3.public_key().exponent(), vec![3]);
    }

    #[test]
    fn signature_is_unprefixed_pkcs1_type1() {
        // Raw RSA of the signature (s^e mod n) must be 00 01 FF..FF 00 hash.
        let (k, _) = keys();
        let mut rng = StdRng::seed_from_u64(3);
        let hash = [0x11u8; 20];
        let sig = k.sign(&mut rng, &hash).unwrap();
        let pubkey = k.public_key();
        let s = BigUint::from_bytes_be(&sig);
        let m = s.modpow(
            &BigUint::from_bytes_be(&pubkey.exponent()),
            &BigUint::from_bytes_be(&pubkey.modulus()),
        );
        let mut em = m.to_bytes_be();
        while em.len() < 128 {
            em.insert(0, 0);
        }
        assert_eq!(&em[..2], &[0, 1]);
        assert!(em[2..128 - 21].iter().all(|&b| b == 0xff));
        assert_eq!(em[128 - 21], 0);
        assert_eq!(&em[128 - 20..], &hash);
    }

    #[test]
    fn blob_and_text_round_trip() {
        let (k, k3) = keys();
        for key in [k, k3] {
            let pubkey = key.public_key();
            let blob = pubkey.to_rfc3110();
            assert_eq!(PublicKey::from_rfc3110(&blob).unwrap(), pubkey);
            let text = pubkey.to_text();
            assert!(text.starts_with("0sA"));
            assert_eq!(PublicKey::from_text(&text).unwrap(), pubkey);
            let hex = crate::pluto::crypto::text::encode_hex(&blob);
            assert_eq!(PublicKey::from_text(&hex).unwrap(), pubkey);
            assert_eq!(pubkey.key_id(), text[2..11].to_string());
        }
        // e = 3 ⇒ blob 01 03 … ⇒ text 0sAQO / 0sAQP (spec 3).
        let t3 = k3.public_key().to_text();
        assert!(t3.starts_with("0sAQO") || t3.starts_with("0sAQP"), "{t3}");
        // e = 65537 ⇒ blob 03 01 00 01 ⇒ 0sAwEAA.
        assert!(k.public_key().to_text().starts_with("0sAwEAA"));
        // Long exponent-length form is accepted.
        let pubkey = k3.public_key();
        let mut long = vec![0, 0, 1, 3];
        long.extend_from_slice(&pubkey.modulus());
        assert_eq!(PublicKey::from_rfc3110(&long).unwrap(), pubkey);
    }

    #[test]
    fn known_key_id() {
        // Blob 01 03 85 f2 d6 76 37 ...: base64 "AQOF8tZ2N..." ⇒ key ID AQOF8tZ2N (spec 3).
        let mut blob = vec![0x01, 0x03, 0x85, 0xf2, 0xd6, 0x76, 0x37];
        blob.extend_from_slice(&[0xab; 60]);
        assert_eq!(key_id_of_blob(&blob), "AQOF8tZ2N");
    }

    #[test]
    fn bad_blobs() {
        assert!(matches!(
            PublicKey::from_rfc3110(&[]),
            Err(RsaError::BadBlob(_))
        ));
        assert!(matches!(
            PublicKey::from_rfc3110(&[0, 1]),
            Err(RsaError::BadBlob(_))
        ));
        assert!(matches!(
            PublicKey::from_rfc3110(&[1, 3]),
            Err(RsaError::BadBlob(_))
        ));
        assert!(matches!(
            PublicKey::from_rfc3110(&[5, 3, 1]),
            Err(RsaError::BadBlob(_))
        ));
        // 256-bit modulus: too small.
        let mut small = vec![1, 3, 0xc1];
        small.extend_from_slice(&[0x55; 31]);
        assert_eq!(
            PublicKey::from_rfc3110(&small),
            Err(RsaError::BadKeySize(256))
        );
        // Even modulus.
        let mut even = vec![1, 3, 0xc1];
        even.extend_from_slice(&[0x54; 127]);
        assert!(matches!(
            PublicKey::from_rfc3110(&even),
            Err(RsaError::InvalidKey(_))
        ));
        assert!(matches!(
            PublicKey::from_text("0s!!"),
            Err(RsaError::BadText(_))
        ));
    }

    #[test]
    fn parts_round_trip_and_checks() {
        let (k, k3) = keys();
        for key in [k, k3] {
            let parts = key.to_parts();
            let back = PrivateKey::from_parts(&parts).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            let mut bad = parts.clone();
            bad.coefficient[0] ^= 1;
            assert!(matches!(
                PrivateKey::from_parts(&bad),
                Err(RsaError::InvalidKey(_))
            ));
            let mut bad = parts.clone();
            if let Some(b) = bad.exponent1.last_mut() {
                *b ^= 2;
            }
            assert!(matches!(
                PrivateKey::from_parts(&bad),
                Err(RsaError::InvalidKey(_))
            ));
            let mut bad = parts.clone();
            if let Some(b) = bad.private_exponent.last_mut() {
                *b ^= 2;
            }
            assert!(PrivateKey::from_parts(&bad).is_err());
            let mut minimal = parts.clone();
            minimal.exponent1.clear();
            minimal.exponent2.clear();
            minimal.coefficient.clear();
            assert!(PrivateKey::from_parts(&minimal).is_ok());
        }
        let body = k3.to_secrets_body("RSA 1024 bits   test   Thu Jan  1 00:00:00 1970");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(
            lines[0],
            "\t# RSA 1024 bits   test   Thu Jan  1 00:00:00 1970"
        );
        assert!(lines[1].starts_with("\t#pubkey=0sAQ"));
        assert!(lines[2].starts_with("\tModulus: 0x"));
        assert_eq!(lines[3], "\tPublicExponent: 0x03");
        assert_eq!(lines[4], "\t# everything after this point is secret");
        assert!(lines[5].starts_with("\tPrivateExponent: 0x"));
        assert!(lines[10].starts_with("\tCoefficient: 0x"));
        assert_eq!(lines.len(), 11);
    }

    #[test]
    fn pem_round_trip() {
        let (k, _) = keys();
        let pem = k.public_key().to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(PublicKey::from_pem(&pem).unwrap(), k.public_key());
        let priv_pem = k.to_pem().unwrap();
        assert!(priv_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let back = PrivateKey::from_pem(&priv_pem).unwrap();
        assert_eq!(back.public_key(), k.public_key());
        assert!(PublicKey::from_pem("garbage").is_err());
    }

    /// Public keys below 1024 bits are refused however they arrive; 1024-bit ones are
    /// accepted but weak; 2048-bit ones are not weak.
    #[test]
    fn short_public_keys_are_refused() {
        let modulus = |bits: usize| {
            let mut m = vec![0x55u8; bits / 8];
            m[0] = 0xc5;
            *m.last_mut().unwrap() |= 1;
            m
        };
        for bits in [512, 768, 1016] {
            assert_eq!(
                PublicKey::from_components(&modulus(bits), &[3]),
                Err(RsaError::BadKeySize(bits))
            );
            let mut blob = vec![1, 3];
            blob.extend_from_slice(&modulus(bits));
            assert_eq!(
                PublicKey::from_rfc3110(&blob),
                Err(RsaError::BadKeySize(bits))
            );
        }
        let (k, _) = keys();
        assert!(k.public_key().is_weak());
        let strong = PublicKey::from_components(&modulus(2048), &[3]).unwrap();
        assert!(!strong.is_weak());
    }

    #[test]
    fn generation_limits() {
        let mut rng = StdRng::seed_from_u64(4);
        assert_eq!(
            PrivateKey::generate(&mut rng, 1000).unwrap_err(),
            RsaError::BadKeySize(1000)
        );
        assert_eq!(
            PrivateKey::generate(&mut rng, 256).unwrap_err(),
            RsaError::BadKeySize(256)
        );
        assert!(PrivateKey::generate_with_exponent(&mut rng, 1024, 4).is_err());
        assert_eq!(
            PrivateKey::generate(&mut rng, 768).unwrap_err().to_string(),
            "RSA key of 768 bits is too short: at least 1024 bits are required (2048 or more recommended)"
        );
        let (k, _) = keys();
        assert_eq!(k.public_key().bits(), 1024);
    }
}
