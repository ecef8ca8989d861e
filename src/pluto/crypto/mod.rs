//! Cryptography shared by the IKE engines (IKEv1 now, IKEv2 later): MODP Diffie-Hellman,
//! PRFs and hashes, CBC ciphers for message encryption, RSA keys and signatures, and the
//! FreeS/WAN text forms of binary data.
//!
//! Every primitive comes from RustCrypto crates; this module only adapts them.

pub mod cipher;
pub mod dh;
pub mod prf;
pub mod rsa;
pub mod text;

pub use cipher::{Cipher, CipherError};
pub use dh::{DhError, DhGroup, DhKeyPair, SharedSecret};
pub use prf::Prf;
pub use rsa::{PrivateKey, PrivateKeyParts, PublicKey, RsaError};
