//! Pseudo-random functions (HMAC) and their underlying hashes, as negotiated by IKE.
//!
//! IKEv1 uses the HMAC of the negotiated phase-1 hash as PRF (RFC 2409 4), and the bare hash
//! for IVs and NAT-D. IKEv2 negotiates the PRF separately; the same enum serves both.

use core::fmt;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A PRF (HMAC over a hash) and, through [`Prf::hash`], its underlying hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    /// HMAC-MD5 (RFC 2104), hash MD5.
    HmacMd5,
    /// HMAC-SHA1, hash SHA-1.
    HmacSha1,
    /// HMAC-SHA2-256, hash SHA-256.
    HmacSha256,
    /// HMAC-SHA2-384, hash SHA-384.
    HmacSha384,
    /// HMAC-SHA2-512, hash SHA-512.
    HmacSha512,
}

fn hmac_parts<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hmac_verify<M: Mac + hmac::digest::KeyInit>(
    key: &[u8],
    parts: &[&[u8]],
    expected: &[u8],
) -> bool {
    let mut mac = match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    // Constant time, and false unless `expected` has the full output length.
    mac.verify_slice(expected).is_ok()
}

fn hash_parts<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut d = D::new();
    for part in parts {
        d.update(part);
    }
    d.finalize().to_vec()
}

impl Prf {
    /// The IKEv1 PRF for a phase-1 hash attribute value (1 MD5, 2 SHA1, 4/5/6 SHA2).
    pub fn from_oakley_hash(value: u16) -> Option<Prf> {
        match value {
            1 => Some(Prf::HmacMd5),
            2 => Some(Prf::HmacSha1),
            4 => Some(Prf::HmacSha256),
            5 => Some(Prf::HmacSha384),
            6 => Some(Prf::HmacSha512),
            _ => None,
        }
    }

    /// Output length in bytes of both the PRF and the hash.
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacMd5 => 16,
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// prf(key, part1 | part2 | ...).
    pub fn prf(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        match self {
            Prf::HmacMd5 => hmac_parts::<Hmac<Md5>>(key, data),
            Prf::HmacSha1 => hmac_parts::<Hmac<Sha1>>(key, data),
            Prf::HmacSha256 => hmac_parts::<Hmac<Sha256>>(key, data),
            Prf::HmacSha384 => hmac_parts::<Hmac<Sha384>>(key, data),
            Prf::HmacSha512 => hmac_parts::<Hmac<Sha512>>(key, data),
        }
    }

    /// Checks in constant time that `expected` is prf(key, part1 | part2 | ...), full length.
    pub fn verify(self, key: &[u8], data: &[&[u8]], expected: &[u8]) -> bool {
        match self {
            Prf::HmacMd5 => hmac_verify::<Hmac<Md5>>(key, data, expected),
            Prf::HmacSha1 => hmac_verify::<Hmac<Sha1>>(key, data, expected),
            Prf::HmacSha256 => hmac_verify::<Hmac<Sha256>>(key, data, expected),
            Prf::HmacSha384 => hmac_verify::<Hmac<Sha384>>(key, data, expected),
            Prf::HmacSha512 => hmac_verify::<Hmac<Sha512>>(key, data, expected),
        }
    }

    /// hash(part1 | part2 | ...) with the underlying hash.
    pub fn hash(self, data: &[&[u8]]) -> Vec<u8> {
        match self {
            Prf::HmacMd5 => hash_parts::<Md5>(data),
            Prf::HmacSha1 => hash_parts::<Sha1>(data),
            Prf::HmacSha256 => hash_parts::<Sha256>(data),
            Prf::HmacSha384 => hash_parts::<Sha384>(data),
            Prf::HmacSha512 => hash_parts::<Sha512>(data),
        }
    }

    /// Pluto's short hash name in algorithm strings (`MD5`, `SHA`, `SHA2_256`, ...).
    pub fn hash_name(self) -> &'static str {
        match self {
            Prf::HmacMd5 => "MD5",
            Prf::HmacSha1 => "SHA",
            Prf::HmacSha256 => "SHA2_256",
            Prf::HmacSha384 => "SHA2_384",
            Prf::HmacSha512 => "SHA2_512",
        }
    }
}

impl fmt::Display for Prf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Prf::HmacMd5 => "HMAC_MD5",
            Prf::HmacSha1 => "HMAC_SHA1",
            Prf::HmacSha256 => "HMAC_SHA2_256",
            Prf::HmacSha384 => "HMAC_SHA2_384",
            Prf::HmacSha512 => "HMAC_SHA2_512",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn rfc2202_md5_sha1() {
        // RFC 2202 test case 2 (key "Jefe").
        let data: &[u8] = b"what do ya want for nothing?";
        assert_eq!(
            Prf::HmacMd5.prf(b"Jefe", &[data]),
            h("750c783e6ab0b503eaa86e310a5db738")
        );
        assert_eq!(
            Prf::HmacSha1.prf(b"Jefe", &[&data[..10], &data[10..]]),
            h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        // RFC 2202 test case 1.
        assert_eq!(
            Prf::HmacSha1.prf(&[0x0b; 20], &[b"Hi There"]),
            h("b617318655057264e28bc0b6fb378c8ef146be00")
        );
    }

    #[test]
    fn rfc4231_sha2() {
        // RFC 4231 test case 2.
        let data: &[u8] = b"what do ya want for nothing?";
        assert_eq!(
            Prf::HmacSha256.prf(b"Jefe", &[data]),
            h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            Prf::HmacSha384.prf(b"Jefe", &[data]),
            h("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")
        );
        assert_eq!(
            Prf::HmacSha512.prf(b"Jefe", &[data]),
            h("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
        );
        // RFC 4231 test case 6: key longer than the block size.
        assert_eq!(
            Prf::HmacSha256.prf(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            ),
            h("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
    }

    #[test]
    fn hashes() {
        assert_eq!(
            Prf::HmacMd5.hash(&[b"a", b"bc"]),
            h("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(
            Prf::HmacSha1.hash(&[b"abc"]),
            h("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        for prf in [
            Prf::HmacMd5,
            Prf::HmacSha1,
            Prf::HmacSha256,
            Prf::HmacSha384,
            Prf::HmacSha512,
        ] {
            assert_eq!(prf.hash(&[b"x"]).len(), prf.output_len());
            assert_eq!(prf.prf(b"k", &[b"x"]).len(), prf.output_len());
            let mac = prf.prf(b"k", &[b"x", b"y"]);
            assert!(prf.verify(b"k", &[b"xy"], &mac));
            assert!(!prf.verify(b"k", &[b"xz"], &mac));
            assert!(!prf.verify(b"K", &[b"xy"], &mac));
            assert!(!prf.verify(b"k", &[b"xy"], &mac[1..]));
        }
        assert_eq!(Prf::from_oakley_hash(2), Some(Prf::HmacSha1));
        assert_eq!(Prf::from_oakley_hash(3), None);
    }
}
