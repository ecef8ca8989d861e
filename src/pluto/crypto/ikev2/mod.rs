//! Cryptography for IKEv2 (RFC 7296), sans-IO: the key schedule ([`keys`]), protection of
//! the Encrypted (SK) and Encrypted Fragment (SKF) payloads ([`sk`]), the AUTH payload
//! computations ([`auth`]) and the transform IDs of these algorithms ([`ids`]). The tests
//! include IKE_AUTH messages from strongSwan, opened and AUTH-checked here.
//!
//! The ciphers and integrity checks are the datapath's: [`sk::SkCipher`] is keyed through a
//! [`crate::crypto::CryptoProvider`] with the same [`EncAlg`](crate::crypto::EncAlg) /
//! [`AuthAlg`](crate::crypto::AuthAlg) values ESP uses (IKEv2's ENCR_* and AUTH_* transforms
//! are those algorithms), so one provider serves IKE and ESP. PRFs and hashes are
//! [`Prf`](super::Prf); Diffie-Hellman is [`super::dh`]; RSA signatures are [`super::rsa`]
//! ([`SignatureScheme`](super::rsa::SignatureScheme)).
//!
//! Nothing here does I/O or keeps time; the only state is the AEAD IV counter inside each
//! [`sk::SkCipher`]. The wire codec supplies the bytes (nonces, SPIs, the authenticated
//! prefix of a message, ID payload bodies) and the engine stores the keys.

use core::fmt;

use crate::crypto::CryptoError;

pub mod auth;
pub mod ids;
pub mod keys;
pub mod sk;

#[cfg(test)]
mod interop_tests;

pub use auth::{psk_auth, signed_octets, verify_psk_auth};
pub use keys::{
    prf_plus, rekey_skeyseed, skeyseed, ChildAlgs, ChildDirKeys, ChildKeys, IkeSaAlgs, IkeSaKeys,
    Secret,
};
pub use sk::SkCipher;

/// Why an IKEv2 key derivation, SK payload operation or AUTH check failed. Never carries key
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ikev2CryptoError {
    /// prf+ was asked for more than 255 blocks of output (RFC 7296 2.13).
    PrfPlusTooLong {
        /// Bytes requested.
        requested: usize,
        /// The most prf+ can produce with this PRF.
        max: usize,
    },
    /// The algorithm combination cannot protect anything: an AEAD with an integrity
    /// algorithm, a CBC cipher for the IKE SA without one, DES or NULL encryption.
    BadAlgorithms(&'static str),
    /// Building a keyed cipher or integrity object failed (wrong key length, refused
    /// algorithm).
    Crypto(CryptoError),
    /// The SK payload body is shorter than IV, pad length and ICV together.
    Truncated {
        /// Bytes present.
        got: usize,
        /// The least that can be valid.
        min: usize,
    },
    /// The CBC ciphertext is not a whole number of cipher blocks.
    NotBlockAligned,
    /// The ICV or AEAD tag does not verify: the message was altered or keyed differently.
    IntegrityFailed,
    /// The decrypted Pad Length points before the start of the plaintext.
    BadPadding,
    /// The AEAD IV counter of this key is exhausted (2^64 messages).
    IvExhausted,
    /// A shared-key AUTH payload does not match (wrong PSK or tampered octets).
    AuthFailed,
}

impl fmt::Display for Ikev2CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ikev2CryptoError::PrfPlusTooLong { requested, max } => write!(
                f,
                "prf+ cannot produce {requested} bytes (at most {max} with this PRF)"
            ),
            Ikev2CryptoError::BadAlgorithms(why) => f.write_str(why),
            Ikev2CryptoError::Crypto(e) => write!(f, "{e}"),
            Ikev2CryptoError::Truncated { got, min } => write!(
                f,
                "encrypted payload of {got} bytes is shorter than the minimum {min}"
            ),
            Ikev2CryptoError::NotBlockAligned => {
                f.write_str("encrypted payload is not a whole number of cipher blocks")
            }
            Ikev2CryptoError::IntegrityFailed => {
                f.write_str("encrypted payload failed its integrity check")
            }
            Ikev2CryptoError::BadPadding => f.write_str("encrypted payload has a bad pad length"),
            Ikev2CryptoError::IvExhausted => {
                f.write_str("AEAD IV counter exhausted: the IKE SA must be rekeyed")
            }
            Ikev2CryptoError::AuthFailed => f.write_str("shared-key AUTH payload does not match"),
        }
    }
}

impl std::error::Error for Ikev2CryptoError {}

impl From<CryptoError> for Ikev2CryptoError {
    fn from(e: CryptoError) -> Self {
        Ikev2CryptoError::Crypto(e)
    }
}
