//! Cryptography shared by the IKE engines: Diffie-Hellman (MODP, ECP, Curve25519), PRFs and
//! hashes, CBC encryption of IKEv1 messages (keyed through the datapath's
//! [`crate::crypto::CryptoProvider`], as IKEv2's SK payloads are), RSA keys and signatures (IKEv1 and the
//! IKEv2 schemes), the IKEv2 key schedule, SK payload protection and AUTH computations
//! ([`ikev2`]), and the FreeS/WAN text forms of binary data.
//!
//! Every primitive comes from RustCrypto crates; this module only adapts them.

pub mod cipher;
pub mod dh;
pub mod ikev2;
pub mod prf;
pub mod rsa;
pub mod text;

pub use cipher::{CbcCipher, CipherError};
pub use dh::{DhError, DhGroup, DhKeyPair, SharedSecret};
pub use prf::Prf;
pub use rsa::{PrivateKey, PrivateKeyParts, PublicKey, RsaError, SignatureScheme};

/// Constant-time equality of two byte strings (their lengths are public): for comparing
/// received hashes, MACs and pre-shared keys.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    std::hint::black_box(d) == 0
}
