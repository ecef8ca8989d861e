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
        #[cfg(feature = "fuzzing")]
        {
            // Fuzzing builds only (never the product): the seeded fuzz harnesses sign the same
            // hashes thousands of times, so signatures (PKCS#1 v1.5 is deterministic) are
            // memoized; without blinding, so that no RNG output is drawn, cached or not.
            use std::collections::HashMap;
            type Memo = HashMap<(Vec<u8>, Vec<u8>), Vec<u8>>;
            thread_local!(static MEMO: std::cell::RefCell<Memo> = Default::default());
            let _ = rng;
            let key = (self.inner.n().to_bytes_be(), hash.to_vec());
            if let Some(sig) = MEMO.with(|m| m.borrow().get(&key).cloned()) {
                return Ok(sig);
            }
            let sig = self
                .inner
                .sign(Pkcs1v15Sign::new_unprefixed(), hash)
                .map_err(|e| RsaError::SignFailed(e.to_string()))?;
            MEMO.with(|m| {
                let mut m = m.borrow_mut();
                if m.len() >= 4096 {
                    m.clear();
                }
                m.insert(key, sig.clone());
            });
            Ok(sig)
        }
        #[cfg(not(feature = "fuzzing"))]
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
        // EMSA-PSS needs emLen >= hLen + sLen + 2 with sLen = hLen (RFC 8017 9.1.1).
        let em_len = (self.inner.n().bits() - 1).div_ceil(8);
        if scheme.is_pss() && em_len < 2 * scheme.hash_len() + 2 {
            return Err(RsaError::SignFailed(format!(
                "a {}-bit key is too short for {scheme}",
                self.inner.n().bits()
            )));
        }
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

/// IKEv2 signature schemes against signatures made by an independent implementation
/// (Python's `cryptography` over OpenSSL, scripts/ike-crypto-vectors.py, one run's key and
/// signatures pasted here).
#[cfg(test)]
mod ikev2_signature_tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const KEY_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEAnrdLkdR2VyozWJJaDK+I2iTNwGrNkiClQ4I2zzB9QJQ9FHFQ\n\
aja0M1hNwPddLISSdMR1bmHYWfmtzBpZn+3HwQ/TvQJd++cRsrf39LGMyl7nZHli\n\
oHV7SrPxTF9UurawSLYY3LMdExd2vxztkieFUHOQo11jPycPo3FAq9hrGH3wNerA\n\
LtIcUjzJnRvnk5955avSUGCQj+jRZDc1OgeypglVugcJMyh+CIOFwUh4fkkj0BaQ\n\
Y+WFLxTZybJqbFf1MvDLyTKPV2VrcLTXYEwZogUxeG4aV6STpLJDnkS30g4Bl8F8\n\
dFILmJuem04e55JYvzXb3s334XiySUWV79lzmQIDAQABAoIBABmP1cjv2fth3ZEn\n\
SP+ACd9wS/7wdJlTTqqXvzIRUirjdQ7kzRm+I7mdQDCS5lu0Ik5SEcOsWIbtMnOL\n\
zuF2D1TlsqlfRzm51lzdSj8LlWxGaqgA8MR9B1VZs8QkGmZT5AJh6ZEp+8XGYqaX\n\
ByAh41O4uRPGh6R1Kwycwdira1wvMzkVEcGgNY8XhgcjUZ9MfUrFQ4/yRn7W0YpV\n\
9qPI0AzjKex9sDGmA5zl8FwasbULGKMIP5pExqewZVXQfXWk/lupdkV2DD+TgXZL\n\
EftSQt/sTCTKneTQkKBpnT4Vv5IDJNuyxNglRX6hHUSsWqvZKeDtYA0A/gBCLtky\n\
v8EUgf0CgYEA2DdMLsbc+aXBWl+uLx5zBHWmtgI8Sr1xiMhOpK5P8bn2zZlaw1ll\n\
H2k3vPRxkUI/Fi1PhTrGCTNj3pTlKudfikDJPDCQbMRRcH9A1MW9zfJ74AvJMEsy\n\
aHxSPzBHby2kguRr9oL21UPJunCIPfZrYk4UOlPAtnfZnDJBzimjOkcCgYEAu+uA\n\
D3w8EtpYJGaOCFXJUZWAxe6V0Z5vBzFGq56HIObzGm+B7uRn1DtIpjy+5X6e+uJs\n\
LE2dreLtRqF83TDYymS1yZbUr+93lxIJmgLqHb6Lnt1uQOpoF66v92/VOYN7cipC\n\
kVgeB0HEC3asL3ijdu/aFSDLW4cogZ9bEkMc8x8CgYB/Dn/GPTY9vhoRcYh6R/pu\n\
9HQzIL0tboX5SzxrqcNw2UcfKq8bfLzf6ITIlRznr3ZDIf1I3XDil0Bo3DaPL8gF\n\
Bm064Y79W6A/64e9gTY4f/YrgsGHj6jfna73Uvenbbru8CxBgFRsnpk85kQppVUV\n\
P6zDWdQ1ZdiK4T2qWO2CoQKBgGRgMHEVDQmM81POK8Or/vLDBpuzCveCxw9ydKsq\n\
7EbY1bWjJiYyfntQh0e0Xss6zTR5SQqJEtZUxiTaEVYcx0+kZ62cEVNAeAKLsfE/\n\
6UmmA/IBmOi3zI4J0xg59gzYfFHI3PHBvZhmuo7c/rAEolvfVf+/GqBzG2HRetXQ\n\
X2BFAoGBAJJl33Kl8nWS9+KrV1/C2HVNCCuTmH+8KkKMg5JADfrArNGOmAQ57Kur\n\
AwvXsucMCe9owYHlmsTiURIhMMglaAkH/wUVMumOfred67rpqouXyq1rG95NeZ3b\n\
vReFaFM9wTR7wq2rzpLri8lcBjJErBHvJGnbTMVmdI1/Voes56cK\n\
-----END RSA PRIVATE KEY-----\n";

    const MESSAGE: &[u8] = b"IKEv2 signed octets: RealMessage | Nonce | prf(SK_p, ID')";

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// The signatures Python made over [`MESSAGE`], per scheme.
    fn python_signatures() -> Vec<(SignatureScheme, &'static str)> {
        vec![
            (
                SignatureScheme::Pkcs1Sha1Method1,
                "38eba49f1345519cb584b3bcb9bf4961782e17225c9a876d5be70a9b02b1325b\
                 09df41ca32d6382130f25f9f848a2e62daf855158c24c82040a049d5abc766cb\
                 edb6a0e530a5ca80e96d6a38fd305c2a23fa150c5c8d76c4d6619fc0993cc7d0\
                 6526655bddab48dcb6d1f54e5331da0e59fa17ed08bc6cdf117a0ce1ed49f30b\
                 d830b5ce6edf3bdb11bbb0c8d1d61af9c236fc2df8b0c9f00e37404968b35df7\
                 22d519c291fc67660306792b77e8b871943fc98f15c4935e68304026336e30bc\
                 93ed48cd487a22815308f73027b5ca83fe29f82f0c0aaffb8d09fb80d4dd1bdb\
                 1c6bd0163cd227011268066319cc5a033cc78e772072d35968c72f1cdb23ed71",
            ),
            (
                SignatureScheme::Pkcs1Sha256,
                "131510b1bd152e304d0a3294d615b726d32f842c70097f641cae310f2883891f\
                 05b9794353b3853f9a85b87df352134bd604714c9da89174375fbe98a9744e75\
                 151fef0a2ddcbe3649191c777ad8d31b164b7b324af72d2200cb44d210f1aa8e\
                 1df9ea51b2e3d0140f03ad96e71ecb10f47f0aa0b3546d31f791ea94ba3e39ab\
                 94dadb19d3fb53a069e16209edf5d507ca43e1afb448759648ae24150ac9c207\
                 05f9ba9506c4f3e26138a0c029f4df0c7bf41e381d6ad598510869d4225ea256\
                 80c0364ab0f951fafa7273defbfde8ac038b8339f15daabe7001d9da894ea74a\
                 f9f19b57259e79baf240378db5f8da8591e8972d826d9ca5898a2bd14f756de8",
            ),
            (
                SignatureScheme::Pkcs1Sha384,
                "743d447c5c64055ac486c08c1d3c42dfbfd8f9e035dadf820fae2d9f403e0f97\
                 38f6925d1bc6c637f9d5abcd8ddc9ee08feeaae1f222a080d66fecce4736c844\
                 a39ddc415524e4a29aacb478953c1186d936c8142bbb18f7b6242b3722f56764\
                 94fed13a3ed7654ec66152b31b24f534de0338bd4b4548524e0eeaa44e5aba94\
                 a4b6a2786d145fcbc9838b7ed5ff3d7ab338c0e91dfb12704fc7604fef451e3f\
                 1077ea21626a5ca469c5297b4ff37b4d62e28206feeb6dea3a03f6fd51c3dcca\
                 cdefd8f5ee3070077003b5c8a2fe0d19a6777c095d998f3d23551ec922813cd1\
                 e0317913ba635e39512ed44489a3e2059485ca4df5d956b928a6b6ec8e2b914e",
            ),
            (
                SignatureScheme::Pkcs1Sha512,
                "30022e365221e9645b73b137f7bdf0188f07cafa5792964eb39adaf58d1b26e3\
                 0fed846c9dcdbc7d0635cb8574dca079aeae67f51eb5017e4552db2728d60782\
                 ce3740d8e57881a6d665d6b96f12b2c92a9d718a70bb4b30fdf19dd0e774672a\
                 901f4db2a1547e0ea042f1dd6b4fe5cc3091398040a300fe042564729052ba9a\
                 dada79449cd97c4b27281905c54bbf0071877b181439ec85ee43da6a785a9e0b\
                 fe0db50ab08d7234a1d0f9cb2bea1c52a14963e5d5a237c5082f7d5e6dc4c220\
                 dcbdc4d9683a5a58592dc6a1c7f706f1883b0ee4a9de06d11e4812197d04dc59\
                 e69e28baec8d1fbb091fecf4cfd16c198bf16a2f4304231bcb0f41ea876e30c2",
            ),
            (
                SignatureScheme::PssSha256,
                "3a79edf5120016eb861070ca1f5b5910725f7a7679f741949074a157a85e3212\
                 eda0cea913f6fe68904c62f6e5fd1cca3ac053c57cb20d816b23eb8c6bd36125\
                 e3eb5d8b47502e8fe6c1e8cd2b9701d1e98393afd0d77b9136d9f9b7b55c826a\
                 01f6db587310a17a0d49fe8e12862e9783ac9930a45f190185ec0fb6a772c99f\
                 7d35fc040b938087935a25a48c648d3df0fd985e440efa8b29dff068c7da468d\
                 2e8fde3d660bbc8fb37527e1cbb86f3aa2cfc2204d5e86b4962c8d8f3209ed80\
                 3192ed0c0794f6741ec1b2fbf0b45636e73ebc415ae6dd5e564583b50e1b03aa\
                 a4157626887122d5f4fbc380409f7b7c0366aed3c0be456e99c8ffe3385b7a15",
            ),
            (
                SignatureScheme::PssSha384,
                "5b378a76e39a0e482a82a5bb3873e8688ea91395cb3ff3b8e44d7175a5b3cb37\
                 8bbe59f05a126f1dda405d57598a31e4256135500b3e4abe1891288cb21d3738\
                 d2bc4478cc8f889ac876d43bf6473dfdba2cb4a251e53789701232e35c8f9e4d\
                 d9d4c7d660e5d35fb340c3835350de56d9d694337c86b6c6f9a2d8167a07b224\
                 ffe15daa018d3be9adf1c4ea621dd1c8febcb93652687c5597f3558f8ae26ad1\
                 4f4f9a994015919950359057fffda37add97e8e97a853a7a6858cc721e89f5cd\
                 8ba36037415cf303ca60f742c6e421f522ed52b09f1b6d5b2d42c6e1f3078af8\
                 bcd4d3d68f3811cf9396ccc82c1beaa8a0c452d2987c64830e77339a97739d4f",
            ),
            (
                SignatureScheme::PssSha512,
                "8ec29e9f50ba703f6aecad425a1e89bfbbcfbf75d5368a1e4f448fc39d192a5b\
                 19d3412122c9ed3e49a148061cfb45b6d3352bd0685d8fb0d9dc7e2f0a8e7d15\
                 840cd482a738faa167bc16029f622ae4732d19959c1cde60384e2b0251f97760\
                 3809aa7bb962c8777b0242e02daa4b92438c5232cbe9548174f84233a69be115\
                 0b4a1b7a469713f03987a6531e2e02c56b8dfad90b42e108c4ffc28b015a595b\
                 e5880d8faa6e13ea53ff0c0684a18c8f326568a2e77ba1ae2c1ed1c552c4cf85\
                 65d84479cdfff2112b4f69038c1737931fd5248ce2bfc126ced9d35c14cd05eb\
                 933e8ceae27cfe56396fd14cd20de0e1ff4dcd67431fd774946fb93a4fbf81d5",
            ),
        ]
    }

    /// PSS over SHA-256 with a 20-byte salt (not the hash length).
    const PSS_SHA256_SALT20: &str = "10c2215eba9295e8f032316c10bf4e1648fa1f1918986d6c374332a0ee18024d\
                                    914e620a6980a776dd0c893c26c489b148be51482e0c4addf1134f594056617d\
                                    b363967079411615f9cf405c702bf45574afb41a90cc8a0f02bfb4133d9fb8eb\
                                    59cbe462449470085c07baed49e3a092c455614098dbfe291fb68911980ec210\
                                    4670e9a831f74d0d8179773d59a64d4de4a2602ded09360e99ca7e77cf385974\
                                    1c6a9084fce47a3a8322bf74be4c16c20d57a45b61affe1773161030ed2762b7\
                                    d82d7d6dc4afd4a410f9ddf9c6c3fb404f0485a9323379b0abb56cda96aa24d4\
                                    bf17fba21c52ff66f7197b3ec7d4ebbf1a7179659f51b3c8d9b6da14853805d2";

    fn key() -> PrivateKey {
        PrivateKey::from_pem(KEY_PEM).unwrap()
    }

    #[test]
    fn verifies_signatures_of_another_implementation() {
        let public = key().public_key();
        assert_eq!(public.bits(), 2048);
        for (scheme, sig) in python_signatures() {
            let sig = h(sig);
            public.verify_ikev2(scheme, MESSAGE, &sig).unwrap();
            // Other data, another scheme, a damaged or shortened signature: refused.
            assert_eq!(
                public.verify_ikev2(scheme, b"other octets", &sig),
                Err(RsaError::BadSignature),
                "{scheme}"
            );
            for other in SignatureScheme::ALL {
                if other != scheme {
                    assert_eq!(
                        public.verify_ikev2(other, MESSAGE, &sig),
                        Err(RsaError::BadSignature),
                        "{scheme} checked as {other}"
                    );
                }
            }
            let mut bad = sig.clone();
            bad[100] ^= 1;
            assert_eq!(
                public.verify_ikev2(scheme, MESSAGE, &bad),
                Err(RsaError::BadSignature)
            );
            assert_eq!(
                public.verify_ikev2(scheme, MESSAGE, &sig[1..]),
                Err(RsaError::BadSignature)
            );
            // The IKEv1 verifier (no DigestInfo) does not accept them either.
            assert!(public.verify(&sig[..20], &sig).is_err());
        }
        // The PSS salt must be as long as the hash.
        assert_eq!(
            public.verify_ikev2(SignatureScheme::PssSha256, MESSAGE, &h(PSS_SHA256_SALT20)),
            Err(RsaError::BadSignature)
        );
    }

    #[test]
    fn signs_as_the_other_implementation_does() {
        let k = key();
        let mut rng = StdRng::seed_from_u64(11);
        for (scheme, python) in python_signatures() {
            let sig = k.sign_ikev2(&mut rng, scheme, MESSAGE).unwrap();
            assert_eq!(sig.len(), 256);
            k.public_key().verify_ikev2(scheme, MESSAGE, &sig).unwrap();
            if scheme.is_pss() {
                // Randomized: a new salt each time.
                let again = k.sign_ikev2(&mut rng, scheme, MESSAGE).unwrap();
                assert_ne!(again, sig);
                k.public_key()
                    .verify_ikev2(scheme, MESSAGE, &again)
                    .unwrap();
            } else {
                // PKCS#1 v1.5 is deterministic: byte for byte what Python produced.
                assert_eq!(hex::encode(&sig), python, "{scheme}");
            }
        }
    }

    #[test]
    fn wrong_key_is_refused() {
        let mut rng = StdRng::seed_from_u64(12);
        let other = PrivateKey::generate(&mut rng, 2048).unwrap();
        for scheme in SignatureScheme::ALL {
            let sig = other.sign_ikev2(&mut rng, scheme, MESSAGE).unwrap();
            other
                .public_key()
                .verify_ikev2(scheme, MESSAGE, &sig)
                .unwrap();
            assert_eq!(
                key().public_key().verify_ikev2(scheme, MESSAGE, &sig),
                Err(RsaError::BadSignature),
                "{scheme}"
            );
        }
    }

    #[test]
    fn pss_sha512_needs_a_long_enough_modulus() {
        let mut rng = StdRng::seed_from_u64(13);
        let small = PrivateKey::generate(&mut rng, 1024).unwrap();
        assert_eq!(
            small.sign_ikev2(&mut rng, SignatureScheme::PssSha512, MESSAGE),
            Err(RsaError::SignFailed(
                "a 1024-bit key is too short for RSA-PSS-SHA2_512".into()
            ))
        );
        for scheme in SignatureScheme::ALL {
            if scheme != SignatureScheme::PssSha512 {
                let sig = small.sign_ikev2(&mut rng, scheme, MESSAGE).unwrap();
                small
                    .public_key()
                    .verify_ikev2(scheme, MESSAGE, &sig)
                    .unwrap();
            }
        }
    }

    #[test]
    fn scheme_properties() {
        let table: Vec<(u8, usize, bool)> = SignatureScheme::ALL
            .iter()
            .map(|s| (s.auth_method(), s.hash_len(), s.is_pss()))
            .collect();
        assert_eq!(
            table,
            [
                (1, 20, false),
                (14, 32, false),
                (14, 48, false),
                (14, 64, false),
                (14, 32, true),
                (14, 48, true),
                (14, 64, true)
            ]
        );
        assert_eq!(SignatureScheme::PssSha384.to_string(), "RSA-PSS-SHA2_384");
        assert_eq!(SignatureScheme::Pkcs1Sha1Method1.name(), "RSA-PKCS1-SHA1");
    }
}
