//! RFC 7427 Digital Signature authentication (AUTH method 14): the DER AlgorithmIdentifier
//! of each RSA signature scheme rswan speaks, and the AUTH data around it.
//!
//! ```text
//! AUTH data: ASN.1 Length(1) | AlgorithmIdentifier (DER) | Signature Value
//! ```
//! Emitted identifiers are the RFC 7427 appendix A encodings (hash parameters as explicit
//! NULL; RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash, trailer field
//! left at its default). Recognition is structural, so the equivalent encodings that omit the
//! NULL parameters or spell out the default trailer field are recognised too; anything else
//! (other hashes, other salt lengths, SHA-1 defaults) is not.

use super::consts::{HashAlgorithm, PayloadType};
use super::error::{EmitError, ParseError};

/// An RSA signature scheme of RFC 7427 (PKCS#1 v1.5 or RSASSA-PSS with a SHA-2 hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignatureScheme {
    /// sha256WithRSAEncryption (PKCS#1 v1.5).
    RsaPkcs1Sha256,
    /// sha384WithRSAEncryption.
    RsaPkcs1Sha384,
    /// sha512WithRSAEncryption.
    RsaPkcs1Sha512,
    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32.
    RsaPssSha256,
    /// RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48.
    RsaPssSha384,
    /// RSASSA-PSS, SHA-512, MGF1-SHA-512, salt 64.
    RsaPssSha512,
}

/// The six schemes, PSS first (the preference order rswan proposes).
pub const SIGNATURE_SCHEMES: [SignatureScheme; 6] = [
    SignatureScheme::RsaPssSha256,
    SignatureScheme::RsaPssSha384,
    SignatureScheme::RsaPssSha512,
    SignatureScheme::RsaPkcs1Sha256,
    SignatureScheme::RsaPkcs1Sha384,
    SignatureScheme::RsaPkcs1Sha512,
];

const TAG_INTEGER: u8 = 0x02;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_CTX0: u8 = 0xa0;
const TAG_CTX1: u8 = 0xa1;
const TAG_CTX2: u8 = 0xa2;
const TAG_CTX3: u8 = 0xa3;

/// OID contents (without tag and length).
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const OID_SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const OID_SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

/// RFC 7427 A.1.2 and siblings: `SEQUENCE { OID, NULL }` for PKCS#1 v1.5.
const PKCS1_SHA256: [u8; 15] = pkcs1(0x0b);
const PKCS1_SHA384: [u8; 15] = pkcs1(0x0c);
const PKCS1_SHA512: [u8; 15] = pkcs1(0x0d);
/// RFC 7427 A.4.2 and siblings: RSASSA-PSS with explicit parameters.
const PSS_SHA256: [u8; 67] = pss(0x01, 32);
const PSS_SHA384: [u8; 67] = pss(0x02, 48);
const PSS_SHA512: [u8; 67] = pss(0x03, 64);

const fn pkcs1(last: u8) -> [u8; 15] {
    [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, last, 0x05, 0x00,
    ]
}

const fn pss(hash: u8, salt: u8) -> [u8; 67] {
    [
        0x30, 0x41, // AlgorithmIdentifier
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, // id-RSASSA-PSS
        0x30, 0x34, // RSASSA-PSS-params
        0xa0, 0x0f, 0x30, 0x0d, // [0] hashAlgorithm
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, hash, 0x05, 0x00, //
        0xa1, 0x1c, 0x30, 0x1a, // [1] maskGenAlgorithm
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, // id-mgf1
        0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, hash, 0x05,
        0x00, //
        0xa2, 0x03, 0x02, 0x01, salt, // [2] saltLength
    ]
}

impl SignatureScheme {
    /// The DER AlgorithmIdentifier rswan sends.
    pub fn algorithm_identifier(self) -> &'static [u8] {
        match self {
            SignatureScheme::RsaPkcs1Sha256 => &PKCS1_SHA256,
            SignatureScheme::RsaPkcs1Sha384 => &PKCS1_SHA384,
            SignatureScheme::RsaPkcs1Sha512 => &PKCS1_SHA512,
            SignatureScheme::RsaPssSha256 => &PSS_SHA256,
            SignatureScheme::RsaPssSha384 => &PSS_SHA384,
            SignatureScheme::RsaPssSha512 => &PSS_SHA512,
        }
    }

    /// The hash (for SIGNATURE_HASH_ALGORITHMS).
    pub fn hash(self) -> HashAlgorithm {
        match self {
            SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPssSha256 => {
                HashAlgorithm::Sha2_256
            }
            SignatureScheme::RsaPkcs1Sha384 | SignatureScheme::RsaPssSha384 => {
                HashAlgorithm::Sha2_384
            }
            SignatureScheme::RsaPkcs1Sha512 | SignatureScheme::RsaPssSha512 => {
                HashAlgorithm::Sha2_512
            }
        }
    }

    /// True for RSASSA-PSS.
    pub fn is_pss(self) -> bool {
        matches!(
            self,
            SignatureScheme::RsaPssSha256
                | SignatureScheme::RsaPssSha384
                | SignatureScheme::RsaPssSha512
        )
    }

    /// The PSS salt length (the hash length), `None` for PKCS#1 v1.5.
    pub fn salt_len(self) -> Option<usize> {
        self.is_pss().then(|| hash_len(self.hash()))
    }

    /// A name for logs, strongSwan style (`RSA_EMSA_PSS_SHA2_256`, `RSA_EMSA_PKCS1_SHA2_256`).
    pub fn name(self) -> &'static str {
        match self {
            SignatureScheme::RsaPkcs1Sha256 => "RSA_EMSA_PKCS1_SHA2_256",
            SignatureScheme::RsaPkcs1Sha384 => "RSA_EMSA_PKCS1_SHA2_384",
            SignatureScheme::RsaPkcs1Sha512 => "RSA_EMSA_PKCS1_SHA2_512",
            SignatureScheme::RsaPssSha256 => "RSA_EMSA_PSS_SHA2_256",
            SignatureScheme::RsaPssSha384 => "RSA_EMSA_PSS_SHA2_384",
            SignatureScheme::RsaPssSha512 => "RSA_EMSA_PSS_SHA2_512",
        }
    }

    /// Recognises a DER AlgorithmIdentifier (`None` for anything this module does not speak).
    pub fn from_algorithm_identifier(der: &[u8]) -> Option<SignatureScheme> {
        let (seq, rest) = der_take(der, TAG_SEQUENCE)?;
        if !rest.is_empty() {
            return None;
        }
        let (oid, params) = der_take(seq, TAG_OID)?;
        let pkcs1 = match oid {
            OID_SHA256_RSA => Some(SignatureScheme::RsaPkcs1Sha256),
            OID_SHA384_RSA => Some(SignatureScheme::RsaPkcs1Sha384),
            OID_SHA512_RSA => Some(SignatureScheme::RsaPkcs1Sha512),
            _ => None,
        };
        if let Some(scheme) = pkcs1 {
            return null_or_absent(params).then_some(scheme);
        }
        if oid != OID_RSASSA_PSS {
            return None;
        }
        let (p, rest) = der_take(params, TAG_SEQUENCE)?;
        if !rest.is_empty() {
            return None;
        }
        // Each field is optional, in order; the defaults (SHA-1, MGF1-SHA-1, salt 20) are
        // not schemes rswan speaks, so [0] and [1] must be present.
        let (hash_field, p) = der_take(p, TAG_CTX0)?;
        let hash = hash_algorithm(hash_field)?;
        let (mgf_field, p) = der_take(p, TAG_CTX1)?;
        let (mgf, after) = der_take(mgf_field, TAG_SEQUENCE)?;
        if !after.is_empty() {
            return None;
        }
        let (mgf_oid, mgf_params) = der_take(mgf, TAG_OID)?;
        if mgf_oid != OID_MGF1 || hash_algorithm(mgf_params)? != hash {
            return None;
        }
        let (salt, p) = match der_take(p, TAG_CTX2) {
            Some((field, p)) => (der_small_integer(field)?, p),
            None => (20, p),
        };
        let p = match der_take(p, TAG_CTX3) {
            Some((field, p)) => {
                if der_small_integer(field)? != 1 {
                    return None;
                }
                p
            }
            None => p,
        };
        if !p.is_empty() || salt != hash_len(hash) as u64 {
            return None;
        }
        Some(match hash {
            HashAlgorithm::Sha2_256 => SignatureScheme::RsaPssSha256,
            HashAlgorithm::Sha2_384 => SignatureScheme::RsaPssSha384,
            _ => SignatureScheme::RsaPssSha512,
        })
    }
}

impl core::fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

fn hash_len(h: HashAlgorithm) -> usize {
    match h {
        HashAlgorithm::Sha2_384 => 48,
        HashAlgorithm::Sha2_512 => 64,
        HashAlgorithm::Sha1 => 20,
        _ => 32,
    }
}

/// Splits one DER element with tag `tag` off `buf`: (contents, rest). Definite lengths up
/// to two octets only (no identifier here is longer).
fn der_take(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = buf.split_first()?;
    if t != tag {
        return None;
    }
    let (&l, rest) = rest.split_first()?;
    let (len, rest) = match l {
        0..=0x7f => (l as usize, rest),
        0x81 => {
            let (&b, rest) = rest.split_first()?;
            (b as usize, rest)
        }
        0x82 => {
            let b = rest.get(..2)?;
            (u16::from_be_bytes([b[0], b[1]]) as usize, rest.get(2..)?)
        }
        _ => return None,
    };
    if len > rest.len() {
        return None;
    }
    Some(rest.split_at(len))
}

fn null_or_absent(params: &[u8]) -> bool {
    params.is_empty() || params == [TAG_NULL, 0]
}

/// A HashAlgorithm field `SEQUENCE { OID, NULL? }` of SHA-256/384/512.
fn hash_algorithm(field: &[u8]) -> Option<HashAlgorithm> {
    let (seq, rest) = der_take(field, TAG_SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (oid, params) = der_take(seq, TAG_OID)?;
    if !null_or_absent(params) {
        return None;
    }
    match oid {
        OID_SHA256 => Some(HashAlgorithm::Sha2_256),
        OID_SHA384 => Some(HashAlgorithm::Sha2_384),
        OID_SHA512 => Some(HashAlgorithm::Sha2_512),
        _ => None,
    }
}

/// An explicit-tag field holding a non-negative INTEGER of at most 4 octets.
fn der_small_integer(field: &[u8]) -> Option<u64> {
    let (int, rest) = der_take(field, TAG_INTEGER)?;
    if !rest.is_empty() || int.is_empty() || int.len() > 4 || int[0] & 0x80 != 0 {
        return None;
    }
    Some(int.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
}

/// The AUTH data of method 14, split: the AlgorithmIdentifier and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignatureAuth {
    /// The DER AlgorithmIdentifier as received.
    pub algorithm_identifier: Vec<u8>,
    /// The signature value.
    pub signature: Vec<u8>,
}

impl SignatureAuth {
    /// The AUTH data for `scheme` and `signature`.
    pub fn new(scheme: SignatureScheme, signature: Vec<u8>) -> SignatureAuth {
        SignatureAuth {
            algorithm_identifier: scheme.algorithm_identifier().to_vec(),
            signature,
        }
    }

    /// The scheme, if it is one rswan speaks.
    pub fn scheme(&self) -> Option<SignatureScheme> {
        SignatureScheme::from_algorithm_identifier(&self.algorithm_identifier)
    }

    /// Splits AUTH data of method 14. The identifier must not be empty and the signature must
    /// follow it.
    pub fn parse(data: &[u8]) -> Result<SignatureAuth, ParseError> {
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type: PayloadType::Auth,
            reason,
        };
        let (&len, rest) = data
            .split_first()
            .ok_or(malformed("empty Digital Signature data"))?;
        if len == 0 || len as usize >= rest.len() {
            return Err(malformed(
                "AlgorithmIdentifier length 0 or not followed by a signature",
            ));
        }
        let (alg, sig) = rest.split_at(len as usize);
        Ok(SignatureAuth {
            algorithm_identifier: alg.to_vec(),
            signature: sig.to_vec(),
        })
    }

    /// The AUTH data: length octet, identifier, signature.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmitError> {
        let len = u8::try_from(self.algorithm_identifier.len())
            .ok()
            .filter(|&l| l > 0)
            .ok_or(EmitError::Inconsistent(
                "AlgorithmIdentifier empty or over 255 octets",
            ))?;
        let mut out = Vec::with_capacity(1 + len as usize + self.signature.len());
        out.push(len);
        out.extend_from_slice(&self.algorithm_identifier);
        out.extend_from_slice(&self.signature);
        Ok(out)
    }
}

impl super::payload::AuthPayload {
    /// An AUTH payload of method 14 (Digital Signature) with `scheme` and `signature`.
    pub fn digital_signature(
        scheme: SignatureScheme,
        signature: Vec<u8>,
    ) -> Result<super::payload::AuthPayload, EmitError> {
        Ok(super::payload::AuthPayload {
            method: super::consts::AuthMethod::DigitalSignature,
            data: SignatureAuth::new(scheme, signature).to_bytes()?,
        })
    }

    /// The identifier and signature of a method-14 AUTH payload (refused for other methods).
    pub fn signature_auth(&self) -> Result<SignatureAuth, ParseError> {
        if self.method != super::consts::AuthMethod::DigitalSignature {
            return Err(ParseError::MalformedPayload {
                payload_type: PayloadType::Auth,
                reason: "not a Digital Signature AUTH payload",
            });
        }
        SignatureAuth::parse(&self.data)
    }
}
